"""Command-line tools the deployment and contract checks run, fetched on first use from the
registries this project may reach (the Go module proxy, the npm registry) into
``.run/tools/``, at pinned versions, so a fresh machine needs nothing installed by hand.

Debian packages (podman, debootstrap, runc, kcat) are not fetched here: `.ci/run` installs
them, and :func:`require_command` fails with the package to install when one is missing
(a test that needs a tool fails rather than skips).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / ".run" / "tools"
#: A generous bound on one fetch: a cold Go build of kustomize takes about a minute here.
FETCH_TIMEOUT_SECONDS = 900


class ToolUnavailable(RuntimeError):
    """A tool could not be found or fetched; the message says what to install."""


def require_command(name: str, debian_package: str) -> str:
    """The path of ``name`` on PATH, or :class:`ToolUnavailable` naming its Debian package."""
    path = shutil.which(name)
    if path is None:
        raise ToolUnavailable(
            f"{name} is not installed: apt-get install {debian_package} (.ci/run does this)"
        )
    return path


def _run(argv: list[str], env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env=env,
        timeout=FETCH_TIMEOUT_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        raise ToolUnavailable(f"{' '.join(argv)} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GOFLAGS", "-buildvcs=false")
    return env


def go_binary(package: str, version: str, name: str) -> Path:
    """``go install package@version`` into .run/tools/go/bin (once) and return the binary."""
    binary = TOOLS / "go" / "bin" / version / name
    if binary.exists():
        return binary
    go = require_command("go", "golang-go")
    env = _go_env()
    env["GOBIN"] = str(binary.parent)
    binary.parent.mkdir(parents=True, exist_ok=True)
    _run([go, "install", f"{package}@{version}"], env=env)
    if not binary.exists():
        raise ToolUnavailable(f"go install {package}@{version} made no {name}")
    return binary


def go_module_dir(module: str, version: str) -> Path:
    """The unpacked source of a Go module at ``version`` (downloaded once into Go's module
    cache), for files a module ships, such as JSON Schemas and CRDs."""
    go = require_command("go", "golang-go")
    listing = json.loads(_run([go, "mod", "download", "-json", f"{module}@{version}"], _go_env()))
    if listing.get("Error"):
        raise ToolUnavailable(f"go mod download {module}@{version}: {listing['Error']}")
    return Path(listing["Dir"])


def npm_binary(packages: dict[str, str], name: str) -> Path:
    """Install the npm ``packages`` (name → exact version) into one prefix under
    .run/tools/npm (once) and return ``node_modules/.bin/<name>``."""
    key = "-".join(
        f"{package.replace('/', '_').replace('@', '')}-{version}"
        for package, version in sorted(packages.items())
    )
    prefix = TOOLS / "npm" / key
    binary = prefix / "node_modules" / ".bin" / name
    if binary.exists():
        return binary
    npm = require_command("npm", "npm")
    prefix.mkdir(parents=True, exist_ok=True)
    specs = [f"{p}@{v}" for p, v in sorted(packages.items())]
    _run([npm, "install", "--no-save", "--no-package-lock", "--prefix", str(prefix), *specs])
    if not binary.exists():
        raise ToolUnavailable(f"npm install {' '.join(specs)} made no {name}")
    return binary
