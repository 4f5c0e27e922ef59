"""The container image, built by the project's own script (deploy/image/build.py) and run
with podman as production runs it: as uid 10001, root filesystem read-only, a tmpfs on
MASH_DATA_DIR. The mash CLI works through the entry point with no network at all; the
image migrates an empty database with ``mash db migrate``; and the four services, each in
its own container under its own database role (as the end-to-end tests start them), answer
/readyz with 200 from inside their containers, each as PID 1.

Without podman, debootstrap or runc this module fails (naming the package), never skips.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from deploy.image import build
from deploy.image.entrypoint import SERVICES
from tests.external_tools import require_command
from tests.support import (
    REPO,
    Isolated,
    Stack,
    fetch,
    free_port,
    fresh_database,
    wait_until,
)

pytestmark = [
    pytest.mark.integration,
    # The first build on a fresh machine debootstraps the base (about 2 minutes) and
    # downloads the pinned packages (about 1 minute): more than the suite's default.
    pytest.mark.timeout(1500),
]

BUILD_TIMEOUT_SECONDS = 1200
#: The image's MASH_DATA_DIR, here a tmpfs owned by the container's user (podman's U).
DATA_TMPFS = "/var/lib/mash:rw,U"
#: Who is connected to this database, and whether over TLS.
SESSIONS_SQL = """
SELECT DISTINCT a.usename, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
WHERE a.datname = current_database() AND a.usename IS NOT NULL
"""
MIGRATIONS = sorted((REPO / "services/common/migrations").glob("*.sql"))
#: Asks a URL from inside a container; prints the HTTP status, 0 when nothing answers.
STATUS_OF = """\
import sys, urllib.error, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=2).status)
except urllib.error.HTTPError as exc:
    print(exc.code)
except OSError:
    print(0)
"""


@dataclass(frozen=True)
class Image:
    """The built image and the podman that runs it (always with runc, see build.py)."""

    podman: str
    tag: str

    def podman_cmd(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``podman <args>`` to completion, output captured."""
        return subprocess.run(
            [self.podman, *args], capture_output=True, text=True, timeout=timeout, check=False
        )

    def run(self, *args: str, options: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
        """A throw-away container of the image with ``args``: no network, read-only root."""
        return self.podman_cmd(
            "run",
            "--rm",
            *RUN_OPTIONS,
            "--network",
            "none",
            *options,
            self.tag,
            *args,
        )


#: How every container here starts: runc and the host's ulimits (crun and the default
#: nofile ulimit fail on this machine's cgroups), read-only root, a tmpfs for the data.
RUN_OPTIONS = ("--runtime", build.RUNTIME, "--ulimit", "host", "--read-only", "--tmpfs", DATA_TMPFS)


@pytest.fixture(scope="module")
def image() -> Image:
    """The image as deploy/image/build.py builds it (the base once, cached by podman)."""
    podman = require_command("podman", "podman")
    require_command("debootstrap", "debootstrap")
    require_command("runc", "runc")
    done = subprocess.run(
        [sys.executable, str(REPO / "deploy/image/build.py")],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
        check=False,
    )
    assert done.returncode == 0, f"build.py failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return Image(podman, build.IMAGE)


def test_the_cli_runs_through_the_entry_point_as_non_root_without_network(image: Image) -> None:
    user = image.podman_cmd("image", "inspect", "--format", "{{.Config.User}}", image.tag)
    assert user.stdout.strip() == "10001:10001"
    who = image.run(
        "-c",
        "import os; print(os.getuid(), os.getgid())",
        options=("--entrypoint", "/opt/mash/bin/python"),
    )
    assert who.stdout.split() == ["10001", "10001"], who.stderr

    helped = image.run("--help")
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: mash")
    simulated = image.run("simulate", "--count", "3", "--seed", "5", "--to-file", "-")
    assert simulated.returncode == 0, simulated.stderr
    assert len(simulated.stdout.splitlines()) >= 3  # the calibration file is in the image

    nothing = image.run()
    assert nothing.returncode == 2
    assert nothing.stderr.startswith("usage:")
    assert "intake|screening|routing|notifications" in nothing.stderr


# ----------------------------------------------------------------------- the services


def product_env(world: Isolated) -> dict[str, str]:
    """The product's settings of ``world`` (broker, database, MASH_*), without the rest of
    the host's environment, which a container must not inherit."""
    return {
        key: value
        for key, value in world.env().items()
        if (key.startswith("MASH_") or key in {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"})
        and key != "MASH_DATA_DIR"
    }


def trust_mounts(env: Mapping[str, str]) -> list[str]:
    """Read-only mounts of the CA files the database URLs trust (``sslrootcert``), at the
    same paths inside the container."""
    files = {
        path
        for key in ("DATABASE_URL", "MASH_DATABASE_URL")
        if key in env
        for path in parse_qs(urlsplit(env[key]).query).get("sslrootcert", [])
    }
    return [f"--volume={path}:{path}:ro" for path in sorted(files)]


def env_file(directory: Path, name: str, env: Mapping[str, str]) -> Path:
    """``env`` as a podman env file (0600: the URLs hold passwords), not on command lines."""
    path = directory / f"{name}.env"
    path.touch(mode=0o600)
    path.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    return path


@pytest.fixture
def containers(image: Image) -> Iterator[list[str]]:
    """Names of the containers a test started; removed (with their logs shown) after it."""
    names: list[str] = []
    yield names
    for name in names:
        logs = image.podman_cmd("logs", "--tail", "15", name)
        print(f"--- {name} (last lines)", logs.stdout, logs.stderr, sep="\n")
    if names:
        image.podman_cmd("rm", "--force", "--volumes", "--time", "10", *names)


async def test_the_four_services_answer_readyz_from_inside_their_containers(
    image: Image, stack: Stack, containers: list[str], tmp_path: Path
) -> None:
    world = Isolated(stack, f"t{uuid.uuid4().hex[:8]}.", await fresh_database(stack, migrate=False))
    host_net = ("--network", "host")  # only to reach the stack on 127.0.0.1

    # The image brings the migrations: `mash db migrate` from it, as the operator would.
    operator = product_env(world)
    migrated = await asyncio.to_thread(
        image.podman_cmd,
        "run",
        "--rm",
        *RUN_OPTIONS,
        *host_net,
        *trust_mounts(operator),
        f"--env-file={env_file(tmp_path, 'operator', operator)}",
        image.tag,
        "db",
        "migrate",
    )
    assert migrated.returncode == 0, migrated.stderr
    assert f": {len(MIGRATIONS)} migration(s)" in migrated.stdout.splitlines()[-1]
    await world.create_topics()

    ports = {service: free_port() for service in SERVICES}
    roles = world.role_env()
    for service in SERVICES:
        env = {**operator, **roles.get(service, {}), "MASH_METRICS_PORT": str(ports[service])}
        name = f"mash-{world.prefix.rstrip('.')}-{service}"
        containers.append(name)
        started = image.podman_cmd(
            "run",
            "--detach",
            f"--name={name}",
            *RUN_OPTIONS,
            *host_net,
            *trust_mounts(env),
            f"--env-file={env_file(tmp_path, service, env)}",
            image.tag,
            service,
        )
        assert started.returncode == 0, started.stderr

    async def readyz(service: str) -> int:
        name = f"mash-{world.prefix.rstrip('.')}-{service}"
        url = f"http://127.0.0.1:{ports[service]}/readyz"
        asked = await asyncio.to_thread(
            image.podman_cmd, "exec", name, "/opt/mash/bin/python", "-c", STATUS_OF, url
        )
        if asked.returncode != 0:  # the container is gone: no use waiting
            logs = image.podman_cmd("logs", "--tail", "20", name)
            raise AssertionError(f"{service} stopped:\n{logs.stdout}{logs.stderr}")
        return int(asked.stdout.strip() or 0)

    async def all_ready() -> dict[str, int] | None:
        statuses = {s: await readyz(s) for s in SERVICES}
        return None if set(statuses.values()) != {200} else statuses

    try:
        await wait_until(all_ready, timeout=180, what="/readyz 200 inside each container")
    except AssertionError as exc:
        statuses = {s: await readyz(s) for s in SERVICES}
        raise AssertionError(f"{exc}; /readyz: {statuses}") from None

    if roles:  # the local stack: each service logged in as its own role, over TLS
        sessions = await fetch(world.dsn, SESSIONS_SQL)
        assert {(r["usename"], r["ssl"]) for r in sessions} >= {
            (f"mash_{service}_login", True) for service in SERVICES
        }
    for service in SERVICES:
        name = f"mash-{world.prefix.rstrip('.')}-{service}"
        pid1 = image.podman_cmd("exec", name, "cat", "/proc/1/cmdline")
        assert pid1.stdout.split("\0")[:3] == ["/opt/mash/bin/python", "-m", f"services.{service}"]
        uid = image.podman_cmd("exec", name, "id", "-u")
        assert uid.stdout.strip() == "10001"
