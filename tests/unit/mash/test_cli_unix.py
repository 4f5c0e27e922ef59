"""``mash`` behaves like a Unix tool: ``-`` is stdin or stdout, a closed pipe ends it
quietly, ``--version``, one ``--json`` with stable keys, and errors that are one line
naming what the user typed. Nothing here needs a broker (the broker side is in
tests/integration/test_mash_unix.py)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from mash.cli import build_parser, main
from mash.simulation import DEFAULT_CALIBRATION
from services.common.kafka import make_app
from services.common.settings import Settings
from services.screening.ruleset import RULESETS_DIR
from tests.support import REPO, mash_into_closed_pipe
from tests.unit.screening.test_history import T0, police_at
from tests.unit.screening.test_whatif import candidate, write_jsonl

MASH = [sys.executable, "-m", "mash"]
README = (REPO / "README.md").read_text(encoding="utf-8")
TOOLING = README.split("## Developer tooling: `mash`", 1)[1].split("\n## ", 1)[0]

#: The documented top-level keys of each ``--json`` (README, "Developer tooling").
SIMULATE_KEYS = {
    "contacts", "police", "referrals", "repeats", "children", "by_source",
    "by_incident_type", "by_dash_risk", "by_hub", "out_of_area", "no_fixed_abode",
    "bad_by_reason",
}  # fmt: skip
WHATIF_KEYS = {
    "baseline", "candidate", "screened", "duplicates", "moved_count", "matrix",
    "baseline_totals", "candidate_totals", "moved", "skipped",
}  # fmt: skip
DA_MEDIUM = "  - id: R3-DA-MED\n    level: 3\n    outcome: initial_assessment"
DA_MEDIUM_S47 = "  - id: R3-DA-MED\n    level: 4\n    outcome: s47"


def subcommands() -> list[str]:
    """Every ``mash`` subcommand, as the parser knows them."""
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(action.choices)


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("mash: error: ")
    return err


def contacts_file(tmp_path: Path) -> Path:
    """Two contacts; the candidate below moves the first (DASH medium) to s47."""
    return write_jsonl(
        tmp_path / "contacts.jsonl",
        [
            police_at("MED-1", T0, dash="medium", key="HH-A").model_dump_json(),
            police_at("STD-1", T0, dash="standard", key="HH-B").model_dump_json(),
        ],
    )


def into_closed_pipe(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``mash`` with stdout a pipe whose reader has already gone (no broker needed)."""
    return mash_into_closed_pipe(cwd, {**os.environ, "PYTHONPATH": str(REPO)}, *args)


# --- 1. a closed pipe ----------------------------------------------------------------------


@pytest.mark.parametrize("command", [None, *subcommands()])
def test_help_into_a_closed_pipe_exits_141_without_a_traceback(
    command: str | None, tmp_path: Path
) -> None:
    done = into_closed_pipe(tmp_path, *([command] if command else []), "--help")
    assert done.returncode == 141, done.stderr
    assert done.stderr == ""


@pytest.mark.parametrize(
    "args",
    [
        ["--version"],
        ["simulate", "--count", "300", "--to-file", "-"],
        ["simulate", "--count", "30", "--to-file", "sim.jsonl", "--json"],
        ["simulate", "--count", "30", "--to-file", "sim.jsonl"],  # the rich table
        ["whatif", "contacts.jsonl", "--candidate", "default-v3", "--json"],
        ["whatif", "contacts.jsonl", "--candidate", "default-v3"],
    ],
)
def test_output_into_a_closed_pipe_exits_141_without_a_traceback(
    args: list[str], tmp_path: Path
) -> None:
    contacts_file(tmp_path)
    done = into_closed_pipe(tmp_path, *args)
    assert done.returncode == 141, done.stderr
    assert "Traceback" not in done.stderr
    assert "BrokenPipe" not in done.stderr


# --- 2, 3. - is stdin or stdout ------------------------------------------------------------


def test_simulate_to_stdout_writes_the_file_s_bytes_and_the_summary_on_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    common = ["simulate", "--seed", "4", "--count", "30", "--bad-rate", "0.1"]
    assert main([*common, "--to-file", "sim.jsonl", "--summary", "none"]) == 0
    capsys.readouterr()
    assert main([*common, "--to-file", "-"]) == 0
    out, err = capsys.readouterr()
    assert out == (tmp_path / "sim.jsonl").read_text(encoding="utf-8")
    assert "simulated contacts" in err, "the summary table moves to stderr"
    assert not (tmp_path / "-").exists()


def test_simulate_reads_its_calibration_from_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    common = ["simulate", "--seed", "4", "--count", "30", "--summary", "none", "--to-file"]
    assert main([*common, "shipped.jsonl"]) == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO(DEFAULT_CALIBRATION.read_text()))
    assert main([*common, "stdin.jsonl", "--calibration", "-"]) == 0
    assert (tmp_path / "stdin.jsonl").read_bytes() == (tmp_path / "shipped.jsonl").read_bytes()


def test_whatif_reads_contacts_from_stdin_and_writes_json_to_stdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = candidate(tmp_path, DA_MEDIUM, DA_MEDIUM_S47)
    source = contacts_file(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO(source.read_text()))
    assert main(["whatif", "-", "--candidate", str(rules), "--json"]) == 0
    out, err = capsys.readouterr()
    body = json.loads(out)  # JSON only: the report is replaced, not mixed in
    assert set(body) == WHATIF_KEYS
    assert (body["screened"], body["moved_count"]) == (2, 1)
    assert body["candidate"]["path"] == str(rules)
    assert body["baseline"]["path"] == "default-v3", "the name given, not the install's path"
    assert err == ""


def test_whatif_csv_to_stdout_sends_the_report_to_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = candidate(tmp_path, DA_MEDIUM, DA_MEDIUM_S47)
    argv = ["whatif", str(contacts_file(tmp_path)), "--candidate", str(rules)]
    assert main([*argv, "--csv", "-", "--json", str(tmp_path / "whatif.json")]) == 0
    out, err = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["contact_id"], r["from"], r["to"]) for r in rows] == [
        ("MED-1", "initial_assessment", "s47")
    ]
    assert "MED-1: initial_assessment -> s47" in err
    assert set(json.loads((tmp_path / "whatif.json").read_text())) == WHATIF_KEYS
    assert main([*argv, "--csv", "-", "--json"]) == 2
    assert "both go to stdout" in one_error_line(capsys)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--checkpoint", "-", "--to-file", "x.jsonl"], "--checkpoint must be a file"),
        (["--to-file", "-", "--resume"], "cannot resume into stdout"),
    ],
)
def test_replay_refuses_what_stdout_cannot_do_before_connecting(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["replay", "--bootstrap-servers", "127.0.0.1:1", "--from-topic", "mash.contacts.v1"]
    assert main([*common, *argv]) == 2
    assert says in one_error_line(capsys)


# --- 4. --version --------------------------------------------------------------------------


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"mash {version('mash-router')}\n"


# --- 6. errors -----------------------------------------------------------------------------


def test_whatif_errors_are_one_mash_line_naming_what_was_typed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    contacts_file(tmp_path)
    candidate(tmp_path, "level: 4\n", "level: 5\n", version="bad-v1")
    for rule_set, says in (
        ("default-v9", "rule set default-v9: no shipped rule set 'default-v9'"),
        ("bad-v1.yaml", "rule set bad-v1.yaml: rule R4-SEX: level must be 1, 2, 3 or 4"),
        ("nope.yaml", "rule set nope.yaml: cannot read rule set"),
    ):
        assert main(["whatif", "contacts.jsonl", "--candidate", rule_set]) == 2
        line = one_error_line(capsys)
        assert says in line
        assert str(RULESETS_DIR) not in line
        assert str(tmp_path) not in line
    assert main(["whatif", "missing.jsonl", "--candidate", "default-v3"]) == 1
    assert one_error_line(capsys) == (
        "mash: error: cannot read missing.jsonl (No such file or directory)"
    )
    assert main(["whatif", "contacts.jsonl"]) == 2
    assert "--candidate" in one_error_line(capsys)


# --- 8. --json -----------------------------------------------------------------------------


def test_simulate_json_is_the_json_summary_with_its_documented_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["simulate", "--seed", "4", "--count", "30", "--to-file", str(tmp_path / "s.jsonl")]
    assert main([*argv, "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert set(body) == SIMULATE_KEYS
    assert body["contacts"] == 30
    assert main([*argv, "--overwrite", "--summary", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == body


def test_the_json_keys_are_documented() -> None:
    for key in sorted(SIMULATE_KEYS | WHATIF_KEYS):
        assert f"`{key}`" in TOOLING, f"README's tooling section documents --json key {key}"


# --- 9. the README says where mash lives ---------------------------------------------------


def test_the_readme_says_where_mash_lives() -> None:
    opening = TOOLING.split("\n### ", 1)[0]
    assert ".venv/bin/mash" in opening
    assert "make venv" in opening


# --- 10. Faust's data folders --------------------------------------------------------------


def test_faust_keeps_its_data_under_the_data_dir_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert Settings().data_dir == ".run/faust"
    app = make_app("screening", Settings(data_dir=str(tmp_path / "data"), group_suffix="-t1"))
    app._create_directories()  # what the worker does at start
    assert app.conf.datadir == tmp_path / "data" / "mash-screening-t1-data"
    assert app.conf.tabledir.is_dir()
    assert [p.name for p in tmp_path.iterdir()] == ["data"]
