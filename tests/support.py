"""Test helpers for the real broker and database: isolation, publishing, reading topics,
and waiting on conditions with a timeout (never a fixed sleep)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord

from deploy.local import stack as local_stack
from deploy.local.pipeline import ServiceProcesses, database_role_env
from deploy.local.postgres_access import role_database_url
from mash.jsonl import ReplayRecord
from services.common import database_roles
from services.common.kafka import ensure_topics
from services.common.lag import stop_consumer
from services.common.topics import TopicNames, TopicSpec
from services.common.topology import load_topology

REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")
#: How often wait_until re-checks its condition.
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Stack:
    """Addresses of the real Kafka broker and PostgreSQL the tests use."""

    bootstrap: str
    dsn: str


def stack_up() -> Stack:
    """Start (or check) the local stack with the project's own script; honour external ones."""
    subprocess.run([sys.executable, str(REPO / "deploy/local/stack.py"), "up"], check=True)
    env = subprocess.run(
        [sys.executable, str(REPO / "deploy/local/stack.py"), "env"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    values = dict(
        line.removeprefix("export ").split("=", 1) for line in env.splitlines() if "=" in line
    )
    return Stack(
        bootstrap=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", values["KAFKA_BOOTSTRAP_SERVERS"]),
        dsn=os.environ.get("DATABASE_URL", values["DATABASE_URL"]),
    )


@dataclass(frozen=True)
class SecureStack:
    """The secured broker (``stack.py up --secure``): SASL_SSL with SCRAM-SHA-512, trusting
    the local CA; each principal's generated password is in ``credentials_dir``."""

    bootstrap: str
    ca_file: Path
    credentials_dir: Path
    controller: str
    mtls_bootstrap: str
    """The mutual-TLS client listener (a client certificate of the local CA logs in)."""

    def password(self, principal: str) -> str:
        """The generated password of ``principal``."""
        return (self.credentials_dir / f"{principal}.password").read_text().strip()

    def options(
        self,
        principal: str,
        *,
        password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> dict[str, Any]:
        """Keyword arguments of an aiokafka client logged in as ``principal``: its own
        password and TLS trusting only the local CA, unless told otherwise."""
        return {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": "SASL_SSL",
            "ssl_context": ssl_context or ssl.create_default_context(cafile=str(self.ca_file)),
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": principal,
            "sasl_plain_password": self.password(principal) if password is None else password,
            "client_id": f"test-{principal}",
        }


def secure_stack_up() -> SecureStack:
    """Start (or check) the secured broker with the project's script, apply the principals
    file with the project's command, and return how to reach the broker."""
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    subprocess.run(
        [sys.executable, str(REPO / "deploy/local/stack.py"), "up", "--secure"],
        check=True,
        timeout=300,
        env=env,
    )
    subprocess.run(
        [sys.executable, "-m", "deploy.security.acls", "apply"],
        check=True,
        timeout=120,
        cwd=REPO,
        env=env,
    )
    summary = json.loads(local_stack.Config.from_environ(env).secured().connection_file.read_text())
    return SecureStack(
        bootstrap=summary["bootstrap_servers"],
        ca_file=Path(summary["ca_file"]),
        credentials_dir=Path(summary["credentials_dir"]),
        controller=summary["controller"],
        mtls_bootstrap=summary["mtls_bootstrap_servers"],
    )


async def create_product_topics(
    secure_stack: SecureStack, specs: Sequence[TopicSpec], timeout: float = 30.0
) -> None:
    """Create the topics of ``specs`` on the secured broker as the admin super user (as an
    operator would: no service may create them), and wait until each has a leader."""
    admin = secure_stack.options("admin")
    security = {k: v for k, v in admin.items() if k != "bootstrap_servers"}
    await ensure_topics(
        [admin["bootstrap_servers"]], specs, wait_seconds=timeout, security=security
    )


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def wait_until(
    check: Callable[[], Awaitable[T]], *, timeout: float = 60.0, what: str = "condition"
) -> T:
    """Poll ``check`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(POLL_SECONDS)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value {last!r}")


async def fresh_database(stack: Stack, *, migrate: bool = True) -> str:
    """Create a database for one test (module) and return its (superuser) DSN: migrated
    with the roles' grants applied, as ``mash db migrate`` does, unless not ``migrate``
    (then empty)."""
    name = f"mash_test_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(stack.dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = stack.dsn.rpartition("/")
    dsn = f"{base}/{name}"
    if migrate:
        conn = await asyncpg.connect(dsn)
        try:
            await database_roles.migrate(conn, database_roles.load_roles())
        finally:
            await conn.close()
    return dsn


def database_name(dsn: str) -> str:
    """The database a DSN names (its path, without the query)."""
    return dsn.rpartition("/")[2].partition("?")[0]


def local_stack_config() -> local_stack.Config:
    """The local stack's configuration, as the stack script sees this environment."""
    return local_stack.Config.from_environ(os.environ)


@dataclass
class Isolated:
    """One isolated pipeline world: its topic prefix, consumer-group suffix and database."""

    stack: Stack
    prefix: str
    dsn: str
    topology: str = "two-hubs"
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def topics(self) -> TopicNames:
        """Deployed topic names of this world."""
        return TopicNames(self.prefix)

    def env(self) -> dict[str, str]:
        """Environment for a service process of this world."""
        return {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.stack.bootstrap,
            "DATABASE_URL": self.dsn,
            "MASH_TOPIC_PREFIX": self.prefix,
            "MASH_GROUP_SUFFIX": "-" + self.prefix.rstrip("."),
            "MASH_METRICS_PORT": "0",
            "MASH_TOPOLOGY": self.topology,
            "MASH_OUTBOX_POLL_SECONDS": "0.2",
            # A killed worker's partitions move after 6 s (the broker's minimum), not 30 s.
            "MASH_SESSION_TIMEOUT_SECONDS": "6",
            "MASH_HEARTBEAT_INTERVAL_SECONDS": "1",
            **self.extra_env,
        }

    def role_env(self) -> dict[str, dict[str, str]]:
        """Per service, the DATABASE_URL of its own role's login user on this world's
        database (verified TLS), so services run under least privilege; empty (every
        service as the superuser) when the database is not the local stack's."""
        cfg = local_stack_config()
        if cfg.external_database is not None or not self.dsn.startswith(cfg.database_url + "_"):
            return {}
        return database_role_env(cfg, database_name(self.dsn))

    def role_dsn(self, role: str) -> str:
        """The DSN of database role ``role``'s login user on this world's database (verified
        TLS); the world's own (superuser) DSN when the database is not the local stack's."""
        cfg = local_stack_config()
        if cfg.external_database is not None or not self.dsn.startswith(cfg.database_url + "_"):
            return self.dsn
        return role_database_url(cfg, role, database_name(self.dsn))

    async def create_topics(self, partitions: int = 4) -> None:
        """Create every product topic of this world."""
        hubs = load_topology(self.topology).hub_ids
        await ensure_topics([self.stack.bootstrap], self.topics.all_specs(hubs, partitions))


async def isolated_world(stack: Stack, **kwargs: Any) -> Isolated:
    """A new isolated world with its topics created and a migrated, empty database."""
    world = Isolated(stack, f"t{uuid.uuid4().hex[:8]}.", await fresh_database(stack), **kwargs)
    await world.create_topics()
    return world


def start_pipeline(world: Isolated, run_dir: Path) -> ServiceProcesses:
    """Start the four services of ``world`` as real processes, each as its own database
    role (:meth:`Isolated.role_env`)."""
    services = ServiceProcesses(world.env(), run_dir=run_dir, role_env=world.role_env())
    services.start_all()
    return services


def mash_env(world: Isolated) -> dict[str, str]:
    """Environment of the ``mash`` CLI aimed at ``world``: its broker and topic prefix."""
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": world.stack.bootstrap,
        "MASH_TOPIC_PREFIX": world.prefix,
        "PYTHONPATH": str(REPO),
    }


#: The ``mash`` console script, run from the source tree with this interpreter.
MASH = [sys.executable, "-m", "mash"]


def start_mash(world: Isolated, cwd: Path, *args: str) -> subprocess.Popen[str]:
    """``mash`` as a separate process in ``world``, its output piped (for signals mid-run)."""
    return subprocess.Popen(
        [*MASH, *args],
        cwd=cwd,
        env=mash_env(world),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_mash(
    world: Isolated, cwd: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``mash`` in ``world`` to completion (``env`` instead of :func:`mash_env`)."""
    return subprocess.run(
        [*MASH, *args],
        cwd=cwd,
        env=mash_env(world) if env is None else env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def mash_into_closed_pipe(
    cwd: Path, env: Mapping[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    """``mash`` with stdout a pipe whose reader has already gone (``mash ... | head -0``)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [*MASH, *args],
            cwd=cwd,
            env=env,
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write)


#: A record to publish: (topic, key, value, headers).
Outgoing = tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]


async def publish(bootstrap: str, records: Iterable[Outgoing]) -> None:
    """Publish (topic, key, value, headers) records and wait for the broker's acks."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for topic, key, value, headers in records:
            await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


@dataclass(frozen=True)
class Record:
    """A record read back from a topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, str]
    timestamp: int

    def json(self) -> Any:
        """The value parsed as JSON."""
        return json.loads(self.value)


async def partitions_of(bootstrap: str, topic: str) -> list[int]:
    """Partition numbers of ``topic`` (empty if it does not exist)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(
        p["partition"] for t in described if t["error_code"] == 0 for p in t["partitions"]
    )


async def read_messages(
    bootstrap: str, topic: str, partitions: Iterable[int] | None = None
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record currently in ``topic`` (the given partitions, else all of them, from the
    beginning) as aiokafka hands it over: raw key, value and headers."""
    if partitions is None:
        partitions = await partitions_of(bootstrap, topic)
    tps = [TopicPartition(topic, p) for p in partitions]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[ConsumerRecord[bytes, bytes]] = []
        remaining = {tp for tp in tps if end[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, msgs in batch.items():
                for m in msgs:
                    out.append(m)
                    if m.offset + 1 >= end[tp]:
                        remaining.discard(tp)
        return out
    finally:
        await stop_consumer(consumer)


async def read_topic(bootstrap: str, topic: str) -> list[Record]:
    """Every record currently in ``topic`` (all partitions, from the beginning)."""
    return [
        Record(
            m.topic,
            m.partition,
            m.offset,
            m.key,
            m.value or b"",
            {k: (v or b"").decode("utf-8", "replace") for k, v in m.headers},
            m.timestamp,
        )
        for m in await read_messages(bootstrap, topic)
    ]


async def read_exact(bootstrap: str, topic: str, partitions: int) -> list[ReplayRecord]:
    """Every record of ``topic`` (partitions ``0..partitions-1``) with its raw bytes, as
    ``mash replay`` sees them, in (partition, offset) order."""
    out = [
        ReplayRecord(m.topic, m.key, m.value, tuple(m.headers), m.partition, m.offset, m.timestamp)
        for m in await read_messages(bootstrap, topic, range(partitions))
    ]
    return sorted(out, key=lambda r: (r.partition or 0, r.offset or 0))


async def records_until(
    bootstrap: str,
    topic: str | Sequence[str],
    done: Callable[[list[Record]], bool],
    *,
    timeout: float = 60.0,
) -> list[Record]:
    """Re-read ``topic`` (or each of several, e.g. every feedback topic) until
    ``done(records)`` holds; fail after ``timeout`` seconds."""
    topics = [topic] if isinstance(topic, str) else list(topic)

    async def check() -> list[Record] | None:
        records = [r for t in topics for r in await read_topic(bootstrap, t)]
        return records if done(records) else None

    result = await wait_until(check, timeout=timeout, what=f"records on {', '.join(topics)}")
    assert result is not None
    return result


async def group_caught_up(bootstrap: str, group: str, topics: Iterable[str]) -> bool:
    """Whether consumer ``group`` has committed the end offset of every partition of ``topics``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        tps = [TopicPartition(t, p) for t in topics for p in await partitions_of(bootstrap, t)]
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            if ends[tp] == 0:
                continue
            meta = committed.get(tp)
            if meta is None or meta.offset < ends[tp]:
                return False
        return True
    finally:
        await stop_consumer(consumer)
        await admin.close()


async def fetchval(dsn: str, sql: str, *args: Any) -> Any:
    """One value from the world's database."""
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def fetch(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Rows from the world's database."""
    conn = await asyncpg.connect(dsn)
    try:
        rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
        return rows
    finally:
        await conn.close()
