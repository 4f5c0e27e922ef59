"""The image build script's two pure parts: which Debian mirror debootstrap uses (the one
apt already uses) and the containers.conf setting that lets containers start here."""

from __future__ import annotations

import tomllib
from pathlib import Path

from deploy.image.build import (
    FALLBACK_MIRROR,
    apt_mirror,
    ca_bundle,
    with_empty_default_ulimits,
)

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


def _apt(tmp_path: Path, files: dict[str, str]) -> Path:
    (tmp_path / "sources.list.d").mkdir()
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_the_mirror_comes_from_a_deb822_sources_file(tmp_path: Path) -> None:
    apt = _apt(tmp_path, {"sources.list.d/debian.sources": DEB822})
    assert apt_mirror(apt) == "http://mirror.example/debian"


def test_a_one_line_entry_for_the_suite_wins_over_other_suites(tmp_path: Path) -> None:
    apt = _apt(
        tmp_path,
        {
            "sources.list": "# deb http://old.example/debian bookworm main\n"
            "deb http://security.example/debian-security bookworm-security main\n"
            "deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main\n",
            "sources.list.d/debian.sources": DEB822,
        },
    )
    assert apt_mirror(apt) == "http://one.example/debian"


def test_disabled_and_foreign_sources_are_ignored(tmp_path: Path) -> None:
    apt = _apt(
        tmp_path,
        {
            "sources.list.d/cloud.list.disabled": "deb http://no.example/debian bookworm main\n",
            "sources.list.d/node.sources": "Types: deb\nURIs: https://node.example\n"
            "Suites: nodistro\nComponents: main\n",
            "sources.list.d/off.sources": "Enabled: no\nTypes: deb\nURIs: http://off.example\n"
            "Suites: bookworm\n",
        },
    )
    assert apt_mirror(apt) == FALLBACK_MIRROR


def _ulimits(text: str) -> object:
    return tomllib.loads(text)["containers"]["default_ulimits"]


def test_no_file_gets_the_table_and_the_setting() -> None:
    assert _ulimits(with_empty_default_ulimits("")) == []


def test_an_existing_setting_is_replaced_and_the_rest_kept() -> None:
    conf = (
        '[containers]\n# a comment\ndefault_ulimits = [\n  "nofile=1048576:1048576",\n]\n'
        'log_driver = "k8s-file"\n\n[engine]\nruntime = "runc"\n'
    )
    out = with_empty_default_ulimits(conf)
    parsed = tomllib.loads(out)
    assert parsed["containers"] == {"default_ulimits": [], "log_driver": "k8s-file"}
    assert parsed["engine"] == {"runtime": "runc"}
    assert "# a comment" in out


def test_a_table_without_the_setting_gets_it_and_a_second_pass_changes_nothing() -> None:
    conf = '[engine]\nruntime = "runc"\n\n[containers]\nlog_driver = "k8s-file"\n'
    once = with_empty_default_ulimits(conf)
    assert _ulimits(once) == []
    assert tomllib.loads(once)["engine"] == {"runtime": "runc"}
    assert with_empty_default_ulimits(once) == once


def test_a_setting_in_another_table_is_not_touched() -> None:
    conf = '[engine]\ndefault_ulimits = ["x"]\n'
    out = with_empty_default_ulimits(conf)
    parsed = tomllib.loads(out)
    assert parsed["engine"]["default_ulimits"] == ["x"]
    assert parsed["containers"]["default_ulimits"] == []


def test_the_ca_bundle_is_pips_own_when_set(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert ca_bundle({"PIP_CERT": str(bundle)}) == bundle
    assert ca_bundle({"PIP_CERT": str(tmp_path / "missing.pem")}) != tmp_path / "missing.pem"
