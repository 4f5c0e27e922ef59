"""What the pipeline benchmark reads: process CPU and memory from /proc, PostgreSQL's own
counters (pg_stat_statements, pg_stat_database), Kafka record timestamps, percentiles.

Nothing here decides anything; each function returns numbers.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.common.lag import stop_consumer
from tests.support import partitions_of

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STATEMENTS_EXTENSION = "pg_stat_statements"
#: How long reading the first records of a few partitions may take.
READ_TIMEOUT = 60.0


# --------------------------------------------------------------------------- processes


def _stat_fields(pid: int | str) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (None: gone meanwhile)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _used(fields: Sequence[str], first: int = 11) -> float:
    """utime + stime (``first`` = 11), or the reaped children's cutime + cstime (13)."""
    return (int(fields[first]) + int(fields[first + 1])) / CLOCK_TICKS


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (utime + stime)."""
    fields = _stat_fields(pid)
    if fields is None:
        raise ProcessLookupError(pid)
    return _used(fields)


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of process ``pid`` in MiB: resident now, and its peak so far."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024  # kB
    return values["VmRSS"], values["VmHWM"]


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent not idle (all cores), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def stack_cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by this machine's Kafka broker (the JVM running
    ``kafka.Kafka``) and PostgreSQL (every ``postgres`` process, plus the time exited
    backends left in the postmaster's children counters), from /proc; 0 when not local."""
    kafka = postgres = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            cmdline = (entry / "cmdline").read_bytes() if comm == "java" else b""
        except OSError:
            continue
        if comm != "postgres" and b"kafka.Kafka" not in cmdline:
            continue
        fields = _stat_fields(entry.name)
        if fields is None:
            continue
        if comm == "java":
            kafka += _used(fields)
            continue
        postgres += _used(fields)
        parent = Path(f"/proc/{fields[1]}/comm")
        if not (parent.exists() and parent.read_text().strip() == "postgres"):
            # The postmaster: its reaped children (backends that exited) count too.
            postgres += _used(fields, first=13)
    return {"kafka": kafka, "postgresql": postgres}


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds of each process by name, and of the whole machine, at one instant."""

    by_name: Mapping[str, float]
    machine: float
    stack: Mapping[str, float]


def sample_cpu(pids: Mapping[str, int]) -> CpuSample:
    """CPU seconds of each named process, of the local Kafka and PostgreSQL, and of the
    machine, now."""
    return CpuSample(
        {n: cpu_seconds(p) for n, p in pids.items()}, machine_busy_seconds(), stack_cpu_seconds()
    )


def machine_info() -> dict[str, object]:
    """nproc, CPU model, memory and kernel of this machine."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": os.uname().release,
    }


# --------------------------------------------------------------------------- PostgreSQL


async def statements_available(admin_dsn: str) -> bool:
    """Whether pg_stat_statements is loaded; creates the extension in ``admin_dsn``'s
    database when it is (the view lives there and shows every database's statements)."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        preload = await conn.fetchval("SHOW shared_preload_libraries")
        if STATEMENTS_EXTENSION not in str(preload):
            return False
        await conn.execute(f"CREATE EXTENSION IF NOT EXISTS {STATEMENTS_EXTENSION}")
        return True
    finally:
        await conn.close()


@dataclass(frozen=True)
class SqlCounts:
    """Per database role: statements executed, explicit transactions (COMMITs), and the
    statements asyncpg's pool runs to reset a connection it takes back."""

    statements: Mapping[str, int]
    commits: Mapping[str, int]
    resets: Mapping[str, int]


#: What asyncpg's pool sends (one round trip, four statements) when a connection is
#: released: ``Connection.reset()``.
POOL_RESET = ("SELECT pg_advisory_unlock_all()", "CLOSE ALL", "UNLISTEN *", "RESET ALL")

STATEMENTS_SQL = """
SELECT r.rolname AS role,
       sum(s.calls)::bigint AS calls,
       coalesce(sum(s.calls) FILTER (WHERE s.query ~* '^\\s*(commit|end)\\y'), 0)::bigint
           AS commits,
       coalesce(sum(s.calls) FILTER (WHERE s.query = ANY($3::text[])), 0)::bigint AS resets
FROM pg_stat_statements s
JOIN pg_roles r ON r.oid = s.userid
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = $1)
  AND r.rolname = ANY($2::text[])
GROUP BY r.rolname
"""


async def sql_counts(admin_dsn: str, database: str, roles: Sequence[str]) -> SqlCounts:
    """Statements, COMMITs and pool-reset statements so far of each role in ``roles`` on
    ``database``."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        rows = await conn.fetch(STATEMENTS_SQL, database, list(roles), list(POOL_RESET))
    finally:
        await conn.close()
    return SqlCounts(
        {r["role"]: int(r["calls"]) for r in rows},
        {r["role"]: int(r["commits"]) for r in rows},
        {r["role"]: int(r["resets"]) for r in rows},
    )


async def transactions(admin_dsn: str, database: str) -> int:
    """Transactions committed or rolled back so far in ``database`` (pg_stat_database)."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        value = await conn.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1",
            database,
        )
    finally:
        await conn.close()
    return int(value or 0)


async def sessions(admin_dsn: str, database: str) -> int:
    """Client sessions connected to ``database`` now."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        value = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    finally:
        await conn.close()
    return int(value)


# --------------------------------------------------------------------------- Kafka


async def first_timestamp_ms(bootstrap: str, topics: Sequence[str]) -> int | None:
    """The earliest record timestamp on ``topics``: the first record of each partition (a
    producer stamps its records in order, so each partition's first is its earliest)."""
    tps = [TopicPartition(t, p) for t in topics for p in await partitions_of(bootstrap, t)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        wanted = [tp for tp in tps if ends[tp] > starts[tp]]
        if not wanted:
            return None
        consumer.assign(wanted)
        await consumer.seek_to_beginning(*wanted)
        first: dict[TopicPartition, int] = {}
        deadline = time.monotonic() + READ_TIMEOUT
        while len(first) < len(wanted):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"first records of {sorted(topics)} unread after {READ_TIMEOUT}s"
                )
            batch = await consumer.getmany(
                *[tp for tp in wanted if tp not in first], timeout_ms=1000
            )
            for tp, records in batch.items():
                if records and tp not in first:
                    first[tp] = records[0].timestamp
        return min(first.values())
    finally:
        await stop_consumer(consumer)


# --------------------------------------------------------------------------- statistics


def percentiles(values: Sequence[float]) -> dict[str, float | int | None]:
    """p50, p95, p99 (and the sample size ``n``) of ``values``; None when empty."""
    if not values:
        return {"p50": None, "p95": None, "p99": None, "n": 0}
    if len(values) == 1:
        v = float(values[0])
        return {"p50": v, "p95": v, "p99": v, "n": 1}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98], "n": len(values)}
