"""The benchmark's passes over the real pipeline: throughput (simulated traffic published
as fast as the broker takes it, or replayed with ``mash replay``), latency at fixed offered
rates, and the memory soak.

Every pass gets a fresh world (topic prefix + database) and starts the four services as
``make run`` does; measuring starts once all four answer /readyz, so start-up is not in
the figures.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from deploy.local.pipeline import SERVICES
from schemas.events import QueueItem
from schemas.types import ce_type_of
from services.common.outbox import INGRESS_HEADER
from services.common.topics import QUEUE_NAMES
from services.common.topology import load_topology
from tests.bench import measure
from tests.bench.traffic import INBOUND, Traffic, publish, simulate_now
from tests.bench.world import BenchTimeout, BenchWorld, drop_world, new_world, role_of
from tests.support import Stack, read_messages

QUEUE_ITEM_TYPE = ce_type_of(QueueItem)
#: How long, after the services stop, their sessions may take to leave PostgreSQL.
SESSIONS_TIMEOUT = 30.0

Feed = Callable[[BenchWorld], Awaitable[None]]


@dataclass
class ServiceCost:
    """What one service spent during a pass."""

    cpu_seconds: float
    peak_rss_mb: float
    statements: int | None = None
    commits: int | None = None
    pool_resets: int | None = None


@dataclass
class PassResult:
    """One throughput pass: contacts, seconds from first inbound record to the last routing
    handled, and what each service spent meanwhile."""

    name: str
    contacts: int
    seconds: float
    services: dict[str, ServiceCost] = field(default_factory=dict)
    transactions: int | None = None
    machine_cpu_seconds: float = 0.0
    stack_cpu_seconds: dict[str, float] = field(default_factory=dict)
    """CPU seconds of the local Kafka broker and PostgreSQL during the pass."""
    prefix: str = ""
    database: str = ""

    @property
    def per_second(self) -> float:
        """Contacts a second."""
        return self.contacts / self.seconds


async def _sql_snapshot(stack: Stack, bench: BenchWorld, stats: bool) -> measure.SqlCounts | None:
    if not stats:
        return None
    return await measure.sql_counts(stack.dsn, bench.database, [role_of(s) for s in SERVICES])


async def _settled_transactions(stack: Stack, database: str) -> int:
    """Transactions of ``database`` once every session has gone (a backend's counters
    reach pg_stat_database when it exits) and the figure has stopped moving."""
    deadline = time.monotonic() + SESSIONS_TIMEOUT
    while True:
        if not await measure.sessions(stack.dsn, database) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    last = await measure.transactions(stack.dsn, database)
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = await measure.transactions(stack.dsn, database)
        if now == last:
            break
        last = now
    return last


async def throughput_pass(
    stack: Stack,
    run_dir: Path,
    name: str,
    contacts: int,
    feed: Feed,
    *,
    timeout: float,
    stats: bool,
    keep: bool = False,
) -> PassResult:
    """Start the services on a fresh world, ``feed`` it, wait until ``contacts`` routings
    are handled; measure the rate and what each service spent. ``keep`` leaves the world
    (topics, database) for a later pass to read; the caller drops it."""
    bench = await new_world(stack, run_dir, name)
    measured = False
    try:
        bench.start()
        await bench.wait_ready()
        pids = bench.pids()
        transactions_before = await measure.transactions(stack.dsn, bench.database)
        sql_before = await _sql_snapshot(stack, bench, stats)
        cpu_before = measure.sample_cpu(pids)
        conn = await asyncpg.connect(bench.world.dsn)
        try:
            await feed(bench)
            end_ms, polls = await bench.wait_handled(contacts, timeout, conn)
        finally:
            await conn.close()
        cpu_after = measure.sample_cpu(pids)
        peaks = {s: measure.memory_mb(pid)[1] for s, pid in pids.items()}
        sql_after = await _sql_snapshot(stack, bench, stats)
        start_ms = await measure.first_timestamp_ms(
            stack.bootstrap, [bench.world.topics(t) for t in INBOUND]
        )
        assert start_ms is not None
        bench.stop()
        transactions_after = await _settled_transactions(stack, bench.database)
        result = PassResult(
            name,
            contacts,
            (end_ms - start_ms) / 1000,
            transactions=transactions_after - transactions_before - polls,
            machine_cpu_seconds=cpu_after.machine - cpu_before.machine,
            stack_cpu_seconds={k: v - cpu_before.stack[k] for k, v in cpu_after.stack.items()},
            prefix=bench.world.prefix,
            database=bench.database,
        )
        for s in SERVICES:
            cost = ServiceCost(cpu_after.by_name[s] - cpu_before.by_name[s], peaks[s])
            if sql_before is not None and sql_after is not None:
                role = role_of(s)
                cost.statements = _delta(sql_after.statements, sql_before.statements, role)
                cost.commits = _delta(sql_after.commits, sql_before.commits, role)
                cost.pool_resets = _delta(sql_after.resets, sql_before.resets, role)
            result.services[s] = cost
        measured = True
        return result
    finally:
        if keep and measured:
            bench.stop()
        else:
            await drop_world(bench)


def _delta(after: Mapping[str, int], before: Mapping[str, int], key: str) -> int:
    return after.get(key, 0) - before.get(key, 0)


def publishing(traffic: Traffic) -> Feed:
    """A feed that publishes ``traffic`` as fast as the broker takes it."""

    async def feed(bench: BenchWorld) -> None:
        await publish(bench.world.stack.bootstrap, bench.world.prefix, traffic)

    return feed


# --------------------------------------------------------------------------- latency


@dataclass(frozen=True)
class Window:
    """One offered rate: when its records were published and when the last was handled."""

    rate: float
    contacts: int
    first_ms: int
    last_ms: int
    handled_ms: float


@dataclass
class LatencyResult:
    """Percentiles (ms) per offered rate and stage, with what was offered and achieved."""

    windows: list[Window]
    stages: dict[str, dict[str, dict[str, float | int | None]]]


def _ingress(headers: Sequence[tuple[str, bytes]]) -> int | None:
    for name, value in headers:
        if name == INGRESS_HEADER and value:
            return int(value)
    return None


def _header(headers: Sequence[tuple[str, bytes]], wanted: str) -> str | None:
    for name, value in headers:
        if name == wanted:
            return value.decode() if value is not None else None
    return None


async def stage_latencies(bench: BenchWorld) -> dict[str, list[tuple[int, int]]]:
    """(ingress ms, latency ms) of every queue item and outcome feedback event in the
    world: the event's record timestamp (stamped by the relay's producer) minus its
    ``mash-ingress-ms`` header."""
    world = bench.world
    hubs = load_topology(world.topology).hub_ids
    queue_topics = [world.topics.queue(h, q) for h in hubs for q in QUEUE_NAMES]
    out: dict[str, list[tuple[int, int]]] = {"queue_item": [], "outcome_feedback": []}
    for topic in queue_topics:
        for m in await read_messages(world.stack.bootstrap, topic):
            ingress = _ingress(m.headers)
            if ingress is not None and _header(m.headers, "ce_type") == QUEUE_ITEM_TYPE:
                out["queue_item"].append((ingress, m.timestamp - ingress))
    feedback = [
        m for t in world.topics.feedback() for m in await read_messages(world.stack.bootstrap, t)
    ]
    for m in feedback:
        ingress = _ingress(m.headers)
        if ingress is not None and json.loads(m.value or b"{}").get("kind") == "outcome":
            out["outcome_feedback"].append((ingress, m.timestamp - ingress))
    return out


async def latency_pass(
    stack: Stack,
    run_dir: Path,
    rates: Sequence[float],
    seconds: float,
    *,
    seed: int,
    timeout: float,
) -> LatencyResult:
    """Offer each rate (contacts a second, paced) for ``seconds`` on one world, one rate
    after the other, each drained before the next; then read the latencies per rate."""
    bench = await new_world(stack, run_dir, "latency")
    try:
        bench.start()
        await bench.wait_ready()
        windows: list[Window] = []
        handled = 0
        conn = await asyncpg.connect(bench.world.dsn)
        try:
            for n, rate in enumerate(rates):
                traffic = simulate_now(max(1, round(rate * seconds)), seed + 100 + n)
                messages_per_second = rate * len(traffic.records) / traffic.contacts
                first_ms = math.floor(time.time() * 1000)
                await publish(stack.bootstrap, bench.world.prefix, traffic, messages_per_second)
                last_ms = math.ceil(time.time() * 1000)
                handled += traffic.contacts
                end_ms, _ = await bench.wait_handled(handled, timeout, conn)
                windows.append(Window(rate, traffic.contacts, first_ms, last_ms, end_ms))
        finally:
            await conn.close()
        samples = await stage_latencies(bench)
    finally:
        await drop_world(bench)
    stages: dict[str, dict[str, dict[str, float | int | None]]] = {}
    for w in windows:
        stages[_rate_key(w.rate)] = {
            stage: measure.percentiles(
                [lat for ingress, lat in values if w.first_ms <= ingress <= w.last_ms]
            )
            for stage, values in samples.items()
        }
    return LatencyResult(windows, stages)


def _rate_key(rate: float) -> str:
    return f"{rate:g}"


# --------------------------------------------------------------------------- memory


@dataclass(frozen=True)
class RssSample:
    """Resident memory (MiB) of each service after ``handled`` contacts."""

    at: float
    handled: int
    rss_mb: dict[str, float]


async def memory_pass(
    stack: Stack,
    run_dir: Path,
    contacts: int,
    *,
    seed: int,
    chunk: int,
    every: float,
    timeout: float,
) -> tuple[list[RssSample], dict[str, float]]:
    """Feed ``contacts`` (in chunks of simulated traffic, published as fast as the broker
    takes them) and sample each service's RSS every ``every`` seconds until all are
    handled. Returns the samples and each service's peak (VmHWM)."""
    bench = await new_world(stack, run_dir, "memory")
    samples: list[RssSample] = []
    try:
        bench.start()
        await bench.wait_ready()
        pids = bench.pids()
        conn = await asyncpg.connect(bench.world.dsn)
        started = time.monotonic()

        async def feed() -> int:
            total = 0
            for n in range(math.ceil(contacts / chunk)):
                size = min(chunk, contacts - n * chunk)
                traffic = await asyncio.to_thread(simulate_now, size, seed + 1000 + n)
                await publish(stack.bootstrap, bench.world.prefix, traffic)
                total += traffic.contacts
            return total

        feeding = asyncio.create_task(feed())
        try:
            while True:
                row = await conn.fetchrow(
                    "SELECT count(*) FROM processed_events WHERE service = 'notifications'"
                    " AND topic = $1 AND outcome <> 'pending'",
                    bench.routed_topic,
                )
                assert row is not None
                handled = int(row[0])
                rss = {s: measure.memory_mb(pid)[0] for s, pid in pids.items()}
                samples.append(RssSample(time.monotonic() - started, handled, rss))
                if feeding.done() and handled >= feeding.result():
                    break
                bench.check_alive()
                if time.monotonic() - started > timeout:
                    raise BenchTimeout(
                        f"{handled} of {contacts} handled after {timeout:.0f}s\n"
                        + bench.log_tails()
                    )
                await asyncio.sleep(every)
        finally:
            feeding.cancel()
            await asyncio.gather(feeding, return_exceptions=True)
            await conn.close()
        peaks = {s: measure.memory_mb(pid)[1] for s, pid in pids.items()}
        return samples, peaks
    finally:
        await drop_world(bench)
