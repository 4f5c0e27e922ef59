"""Build the mash-router container image on a machine that reaches no container registry.

    python3 deploy/image/build.py              # base image (once), then the product image
    python3 deploy/image/build.py --base-only  # only the base image

No registry holds ``python:3.11-slim`` for us here, so the base is made from Debian's own
packages: ``debootstrap --variant=minbase`` of bookworm (Python 3.11) from the mirror apt
already uses, imported as ``localhost/mash-base:bookworm`` and kept (built again only when
``podman image exists`` says it is gone). The product image is then built from the
repository's ``Containerfile`` with ``--build-arg BASE=<that base>``; where a registry is
reachable, ``podman build -f Containerfile .`` alone uses the official Python image.

This machine's hybrid cgroups make crun fail, and the default ``nofile`` ulimit cannot be
set in its containers, so every podman call here uses ``--runtime runc`` and
``/etc/containers/containers.conf`` is made to say ``default_ulimits = []``.

Standard library only (like ``deploy/local/stack.py``): it runs before any venv exists.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[2]
BASE_IMAGE = "localhost/mash-base:bookworm"
IMAGE = "localhost/mash-router:local"
SUITE = "bookworm"
#: What the base must carry: the interpreter, venv/ensurepip for the builder stage, and
#: the CA bundle for pip's downloads and the services' TLS.
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
FALLBACK_MIRROR = "http://deb.debian.org/debian"
APT_DIR = Path("/etc/apt")
CONTAINERS_CONF = Path("/etc/containers/containers.conf")
RUNTIME = "runc"
INSTALL_HINT = "apt-get install podman debootstrap runc"
#: The host's CA bundle (with any local CA added by update-ca-certificates): what pip in
#: the builder stage trusts, so a build behind a TLS-inspecting proxy reaches PyPI.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
#: An imported root filesystem has no configuration at all; give it the usual PATH.
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class BuildError(RuntimeError):
    """The build cannot go on; the message is one line saying why (and what to install)."""


def require(command: str) -> str:
    """The path of ``command``, or BuildError naming the packages to install."""
    path = shutil.which(command)
    if path is None:
        raise BuildError(f"{command} not found: {INSTALL_HINT}")
    return path


# ----------------------------------------------------------------------------- the mirror


def apt_mirror(apt_dir: Path = APT_DIR, suite: str = SUITE) -> str:
    """The Debian mirror apt already uses for ``suite`` (sources.list, sources.list.d's
    ``*.list`` and deb822 ``*.sources``), so debootstrap goes where apt is allowed to go;
    the public mirror when none names the suite."""
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    for path in files:
        for uri in _one_line_uris(_read(path), suite):
            return uri
    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        for uri in _deb822_uris(_read(path), suite):
            return uri
    return FALLBACK_MIRROR


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _one_line_uris(text: str, suite: str) -> Iterable[str]:
    """URIs of ``deb [options] URI suite components`` lines for ``suite``."""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        line = re.sub(r"\[[^]]*\]", " ", line)  # [arch=amd64 signed-by=...]
        words = line.split()
        if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
            yield words[1].rstrip("/")


def _deb822_uris(text: str, suite: str) -> Iterable[str]:
    """URIs of the deb822 stanzas (``Types: deb``, ``Suites: ... suite ...``) for ``suite``."""
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for raw in stanza.splitlines():
            if raw.lstrip().startswith("#") or ":" not in raw or raw[:1].isspace():
                continue
            name, value = raw.split(":", 1)
            fields[name.strip().lower()] = value.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        if "deb" in fields.get("types", "").split() and suite in fields.get("suites", "").split():
            yield from (uri.rstrip("/") for uri in fields.get("uris", "").split())


# ------------------------------------------------------------------ containers.conf


def with_empty_default_ulimits(text: str) -> str:
    """``text`` (a containers.conf) with ``default_ulimits = []`` in its ``[containers]``
    table: an existing setting there is replaced, else the line is added (and the table
    too when missing). Other tables and comments are kept as they are."""
    lines = text.splitlines()
    setting = "default_ulimits = []"
    table = None
    header_at = None
    for number, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("[") and not stripped.startswith("[["):
            table = stripped.strip("[]").strip()
            if table == "containers" and header_at is None:
                header_at = number
            continue
        if table == "containers" and re.match(r"default_ulimits\s*=", stripped):
            if stripped == setting and "]" in stripped:
                return text
            lines[number] = setting
            # A multi-line array: drop its continuation lines up to the closing bracket.
            end = number
            if "]" not in stripped:
                end = next((i for i in range(number + 1, len(lines)) if "]" in lines[i]), number)
            del lines[number + 1 : end + 1]
            return "\n".join(lines) + "\n"
    if header_at is None:
        prefix = "\n".join(lines).rstrip("\n")
        return (prefix + "\n\n" if prefix else "") + "[containers]\n" + setting + "\n"
    lines.insert(header_at + 1, setting)
    return "\n".join(lines) + "\n"


def ensure_containers_conf(path: Path = CONTAINERS_CONF) -> None:
    """Make ``path`` say ``default_ulimits = []`` (written only when it changes)."""
    before = _read(path)
    after = with_empty_default_ulimits(before)
    if after != before:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(after)
        print(f"build: {path}: [containers] default_ulimits = []")


# ----------------------------------------------------------------------------- images


def _run(argv: Sequence[str], stdin: IO[bytes] | None = None) -> None:
    print("$ " + " ".join(argv), flush=True)
    done = subprocess.run(list(argv), stdin=stdin, check=False)
    if done.returncode != 0:
        raise BuildError(f"{argv[0]} {argv[1]} failed with exit code {done.returncode}")


def image_exists(podman: str, image: str) -> bool:
    """Whether podman's local storage holds ``image``."""
    return subprocess.run([podman, "image", "exists", image], check=False).returncode == 0


def build_base(podman: str, image: str = BASE_IMAGE) -> None:
    """debootstrap a minimal bookworm with Python 3.11 and import it as ``image``, unless
    it exists already."""
    if image_exists(podman, image):
        print(f"build: {image} exists (podman image rm {image} to make it again)")
        return
    debootstrap = require("debootstrap")
    mirror = apt_mirror()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mash-base-", dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs"
        include = ",".join(BASE_PACKAGES)
        _run([debootstrap, "--variant=minbase", f"--include={include}", SUITE, str(rootfs), mirror])
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / leftover).glob("*"):
                if entry.is_file():
                    entry.unlink()
        print(f"build: debootstrap took {time.monotonic() - started:.0f} s", flush=True)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        try:
            _run(
                [podman, "import", "--change", f"ENV PATH={BASE_PATH}", "-", image],
                stdin=tar.stdout,
            )
        finally:
            if tar.stdout is not None:
                tar.stdout.close()
            tar.wait()
        if tar.returncode != 0:
            raise BuildError(f"tar of the base root filesystem failed ({tar.returncode})")
    print(f"build: {image} made in {time.monotonic() - started:.0f} s", flush=True)


def ca_bundle(environ: Mapping[str, str] = os.environ) -> Path | None:
    """The CA bundle the host's pip trusts (PIP_CERT, else the system bundle), if any."""
    for candidate in (environ.get("PIP_CERT", ""), str(HOST_CA_BUNDLE)):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def build_image(podman: str, base: str = BASE_IMAGE, tag: str = IMAGE) -> None:
    """``podman build`` of the Containerfile on ``base``. The builder stage downloads the
    pinned packages from PyPI, hence the host's network and CA bundle for the build (not
    for running)."""
    started = time.monotonic()
    argv = [podman, "build", "--runtime", RUNTIME, "--network", "host"]
    bundle = ca_bundle()
    if bundle is not None:
        argv += ["--secret", f"id=ca-bundle,src={bundle}"]
    argv += ["--build-arg", f"BASE={base}", "-t", tag, "-f", str(REPO / "Containerfile")]
    _run([*argv, str(REPO)])
    print(f"build: {tag} built in {time.monotonic() - started:.0f} s", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Build the base image (once) and, unless ``--base-only``, the product image."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base-only", action="store_true", help="build only the base image")
    parser.add_argument("--tag", default=IMAGE, help=f"the product image's name ({IMAGE})")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        podman = require("podman")
        require(RUNTIME)
        ensure_containers_conf()
        build_base(podman)
        if not args.base_only:
            build_image(podman, tag=args.tag)
    except BuildError as exc:
        print(f"build: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. containers.conf not writable (not root)
        print(f"build: error: {exc}", file=sys.stderr)
        return 1
    print(f"build: done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
