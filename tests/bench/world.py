"""One benchmark world: a fresh topic prefix and database on a stack, the four services
started as ``make run`` starts them (one process each, production settings), and its
clean-up afterwards.

Each service connects as its own database login (``mash_bench_<service>``, a member of
the service's group role ``mash_<service>``, so it runs under least privilege as in
production) and PostgreSQL's per-role statistics (pg_stat_statements) say which service
ran which statements; nothing in ``services/`` knows about it.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from deploy.local.pipeline import SERVICES, ServiceProcesses
from tests.support import Isolated, Stack, fetchval, free_port, fresh_database

#: Settings the test worlds shorten (tests/support.py); a benchmark runs with the defaults.
TEST_ONLY_SETTINGS = (
    "MASH_OUTBOX_POLL_SECONDS",
    "MASH_SESSION_TIMEOUT_SECONDS",
    "MASH_HEARTBEAT_INTERVAL_SECONDS",
)
#: How long the four services may take to start and be assigned their partitions.
READY_TIMEOUT = 120.0
#: How often a waiting loop re-checks its condition.
POLL_SECONDS = 0.5

#: Every contact whose routing notifications has handled (the old bench's condition).
HANDLED_SQL = """
SELECT count(*), extract(epoch FROM max(processed_at)) * 1000
FROM processed_events
WHERE service = 'notifications' AND topic = $1 AND outcome <> 'pending'
"""


class BenchTimeout(Exception):
    """A benchmark step did not finish in time (the message says which, and where to look)."""


def role_of(service: str) -> str:
    """Database role a service connects as in a benchmark world."""
    return f"mash_bench_{service}"


async def ensure_roles(dsn: str) -> None:
    """Create the per-service login roles, each a member of its service's group role (the
    rights of services/common/database_roles.yaml) and of nothing else; the group roles
    exist once a database has been migrated (:func:`fresh_database`)."""
    conn = await asyncpg.connect(dsn)
    try:
        for service in SERVICES:
            role, group = role_of(service), f"mash_{service}"
            exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
            if not exists:
                await conn.execute(f'CREATE ROLE "{role}" LOGIN')
            # A login made by an older bench was a member of the owner role instead.
            for (other,) in await conn.fetch(
                "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid"
                " JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = $1 AND g.rolname <> $2",
                role,
                group,
            ):
                await conn.execute(f'REVOKE "{other}" FROM "{role}"')
            await conn.execute(f'GRANT "{group}" TO "{role}"')
    finally:
        await conn.close()


def dsn_as(dsn: str, role: str) -> str:
    """``dsn`` with its user replaced by ``role`` (trust authentication: no password)."""
    scheme, _, rest = dsn.partition("://")
    _, _, host_part = rest.rpartition("@")
    return f"{scheme}://{role}@{host_part}"


@dataclass
class BenchWorld:
    """A fresh prefix + database with the four services of the pipeline running on it."""

    world: Isolated
    run_dir: Path
    ports: dict[str, int] = field(default_factory=dict)
    processes: ServiceProcesses | None = None

    @property
    def database(self) -> str:
        """Name of this world's database."""
        return self.world.dsn.rsplit("/", 1)[1]

    @property
    def routed_topic(self) -> str:
        """The routed topic whose handling marks a contact as done."""
        return self.world.topics("mash.routed.v1")

    def start(self) -> None:
        """Start the four services (production settings, their own metrics ports)."""
        env = self.world.env()
        for name in TEST_ONLY_SETTINGS:
            env.pop(name, None)
        env["MASH_DATA_DIR"] = str(self.run_dir / "faust")
        self.processes = ServiceProcesses(env, run_dir=self.run_dir)
        for service in SERVICES:
            self.ports[service] = free_port()
            self.processes.start(
                service,
                {
                    "MASH_METRICS_PORT": str(self.ports[service]),
                    "DATABASE_URL": dsn_as(self.world.dsn, role_of(service)),
                },
            )

    def pids(self) -> dict[str, int]:
        """PID of each service process."""
        assert self.processes is not None
        return {s: p.pid for s, p in self.processes.procs.items()}

    def _ready(self, service: str) -> bool:
        url = f"http://127.0.0.1:{self.ports[service]}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    async def wait_ready(self, timeout: float = READY_TIMEOUT) -> float:
        """Wait until every service answers /readyz 200 (partitions assigned, database and
        broker reachable); return the seconds it took."""
        started = time.monotonic()
        waiting = list(SERVICES)
        while waiting:
            self.check_alive()
            ready = await asyncio.gather(*(asyncio.to_thread(self._ready, s) for s in waiting))
            waiting = [s for s, ok in zip(waiting, ready, strict=True) if not ok]
            if waiting and time.monotonic() - started > timeout:
                raise BenchTimeout(
                    f"{', '.join(waiting)} not ready after {timeout:.0f}s\n" + self.log_tails()
                )
            if waiting:
                await asyncio.sleep(POLL_SECONDS)
        return time.monotonic() - started

    def check_alive(self) -> None:
        """Fail at once when a service process has exited."""
        assert self.processes is not None
        for service, proc in self.processes.procs.items():
            if proc.poll() is not None:
                raise BenchTimeout(
                    f"{service} exited with status {proc.returncode}\n" + self.log_tails()
                )

    async def wait_handled(
        self, expected: int, timeout: float, conn: asyncpg.Connection[asyncpg.Record]
    ) -> tuple[float, int]:
        """Wait until notifications has handled ``expected`` routings. Returns the epoch
        ms of the last one (the ``now()`` of its transaction) and how many queries (each
        its own transaction) the wait ran on ``conn``, a connection to this world."""
        deadline = time.monotonic() + timeout
        done = polls = 0
        while True:
            row = await conn.fetchrow(HANDLED_SQL, self.routed_topic)
            polls += 1
            assert row is not None
            done = int(row[0])
            if done >= expected:
                return float(row[1]), polls
            self.check_alive()
            if time.monotonic() > deadline:
                raise BenchTimeout(
                    f"{done} of {expected} contacts handled after {timeout:.0f}s "
                    f"(logs in {self.run_dir / 'logs'})\n" + self.log_tails()
                )
            await asyncio.sleep(POLL_SECONDS)

    def stop(self) -> None:
        """Stop the services gracefully (their database sessions end with them)."""
        if self.processes is not None:
            self.processes.stop_all()

    def log_tails(self, lines: int = 8) -> str:
        """The last lines of each service's log."""
        out = []
        for log in sorted((self.run_dir / "logs").glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {log}\n" + "\n".join(tail))
        return "\n".join(out)

    async def count(self, sql: str) -> int:
        """One count from this world's database."""
        return int(await fetchval(self.world.dsn, sql))


async def new_world(stack: Stack, run_dir: Path, tag: str) -> BenchWorld:
    """A world with a fresh ``b<hex>.`` prefix, its topics, a migrated database, the
    per-service roles; services not started yet."""
    prefix = f"b{uuid.uuid4().hex[:8]}."
    world = Isolated(stack, prefix, await fresh_database(stack))  # migrated, with grants
    await ensure_roles(stack.dsn)
    await world.create_topics()
    folder = run_dir / f"{tag}-{prefix.rstrip('.')}"
    folder.mkdir(parents=True, exist_ok=True)
    return BenchWorld(world, folder)


def _belongs(topic: str, prefix: str) -> bool:
    stem = prefix.rstrip(".")
    return topic.startswith(prefix) or f"-{stem}-" in topic


async def drop_world(bench: BenchWorld) -> None:
    """Delete the world's topics (Faust's own included) and database, and its run folder."""
    bench.stop()
    stack = bench.world.stack
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if _belongs(t, bench.world.prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()
    conn = await asyncpg.connect(stack.dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{bench.database}" WITH (FORCE)')
    finally:
        await conn.close()
    shutil.rmtree(bench.run_dir, ignore_errors=True)
