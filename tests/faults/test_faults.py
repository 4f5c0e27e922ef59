"""The fault suite: simulated traffic through the real pipeline while its parts crash, its
broker and database go away, and workers come and go — then a count of what came out.

Each scenario runs on fresh topics, consumer groups and database, on the suite's private
broker and PostgreSQL. After each, the pipeline must drain by itself (nothing restarted by
hand: only a crashed worker is started again, as a supervisor would), every worker still
running must be ready, and the checker (:mod:`tests.faults.tally`) must find nothing lost,
nothing duplicated and nothing out of order. Seeds are fixed and printed in the table.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable

import pytest

from deploy.local.pipeline import PROGRESS_SQL, SERVICES
from tests.faults.corpus import Hostile, hostile_corpus
from tests.faults.harness import FaultStack, Pipeline, Traffic, kill_schedule, wait_drained
from tests.faults.tally import Row, tally
from tests.support import Isolated, fetchval, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(900)]

SEED = 20261130


@functools.cache
def poison() -> tuple[Hostile, ...]:
    """The poison mixed into valid traffic: a slice of the hostile corpus."""
    return tuple(hostile_corpus(SEED, count=300))


#: Seconds a server stays down in the outage scenarios.
OUTAGE_SECONDS = 30.0


async def start_ready(pipeline: Pipeline, workers: tuple[str, ...] = SERVICES) -> None:
    """Start ``workers`` and wait until each is ready (partitions assigned)."""
    pipeline.start_all(workers)

    async def ready() -> bool:
        return await pipeline.all_ready()

    await wait_until(ready, timeout=180, what="every worker to be ready")


async def until_mid_stream(world: Isolated, traffic: Traffic, share: float = 0.1) -> None:
    """Wait until a ``share`` of the contacts have travelled the whole way (the fault then
    lands on a pipeline that is working, with more behind)."""

    event_ids = list(traffic.expected(world.topology).event_ids)  # generated once

    async def some() -> bool:
        travelled: int = await fetchval(world.dsn, PROGRESS_SQL, event_ids)
        return travelled >= traffic.contacts * share

    await wait_until(some, timeout=180, what=f"{share:.0%} of the contacts to travel the pipeline")


async def run_scenario(
    name: str,
    world: Isolated,
    pipeline: Pipeline,
    traffic: Traffic,
    fault: Callable[[], Awaitable[None]],
    rows: list[Row],
    *,
    while_sending: bool = True,
) -> Row:
    """Send the traffic, inject the fault meanwhile (or, for an outage of the broker or
    database the senders need too, once everything is sent), drain, check, add the row."""
    expected = traffic.expected(world.topology)
    sending = asyncio.create_task(traffic.send(world, pipeline.run_dir))
    if not while_sending:
        await sending
    await fault()
    await sending
    drain_seconds = await wait_drained(world, expected)

    async def ready() -> bool:
        return await pipeline.all_ready([w for w, up in pipeline.alive().items() if up])

    await wait_until(ready, timeout=120, what="every running worker to be ready again")
    row = await tally(world, f"{name} (seed {traffic.seed})", expected, drain_seconds)
    rows.append(row)
    print(row)
    assert (row.lost, row.duplicated, row.out_of_order) == (0, 0, 0), row
    return row


async def test_ten_and_more_random_kills_lose_and_duplicate_nothing(
    world: Isolated, pipeline: Pipeline, fault_rows: list[Row]
) -> None:
    """a) 12 kill -9s at seeded random moments across the four services, poison mixed in."""
    await start_ready(pipeline)
    traffic = Traffic(SEED, contacts=400, rate=10.0, hostile=poison())
    schedule = kill_schedule(SEED, kills=12, window=45.0, workers=SERVICES)
    print("kill schedule:", [(round(t, 1), w) for t, w in schedule])

    async def kills() -> None:
        started = time.monotonic()
        for moment, worker in schedule:
            await asyncio.sleep(max(0.0, started + moment - time.monotonic()))
            pipeline.kill(worker)
            pipeline.start(worker)  # a supervisor restarts the crashed process

    await run_scenario("kill -9 x12", world, pipeline, traffic, kills, fault_rows)
    assert all(pipeline.alive().values())


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
async def test_a_broker_restart_is_ridden_out_without_a_restart_by_hand(
    world: Isolated, pipeline: Pipeline, fault_stack: FaultStack, fault_rows: list[Row], kill: bool
) -> None:
    """b) the broker stopped (gracefully, or killed) mid-stream, down a while, restarted."""
    await start_ready(pipeline)
    traffic = Traffic(SEED + 1, contacts=300, rate=100.0, hostile=poison())
    down_for = OUTAGE_SECONDS if not kill else OUTAGE_SECONDS / 3

    async def outage() -> None:
        await until_mid_stream(world, traffic)
        fault_stack.stop_kafka(kill=kill)

        async def not_ready() -> bool:
            return not await pipeline.all_ready()

        # Readiness says so while the broker is away.
        await wait_until(not_ready, timeout=30, what="a worker to report not ready")
        await asyncio.sleep(down_for)  # the outage itself, not a wait for anything
        fault_stack.up()  # start what was stopped

    name = "broker kill -9" if kill else f"broker stopped {OUTAGE_SECONDS:.0f}s"
    await run_scenario(name, world, pipeline, traffic, outage, fault_rows, while_sending=False)
    assert all(pipeline.alive().values()), "no worker may die of a broker restart"


async def test_a_database_outage_is_ridden_out(
    world: Isolated, pipeline: Pipeline, fault_stack: FaultStack, fault_rows: list[Row]
) -> None:
    """c) PostgreSQL stopped (fast shutdown) mid-stream for 30 s, then started again."""
    await start_ready(pipeline)
    traffic = Traffic(SEED + 2, contacts=300, rate=100.0)

    async def outage() -> None:
        await until_mid_stream(world, traffic)
        fault_stack.stop_postgres()
        await asyncio.sleep(OUTAGE_SECONDS)  # the outage itself, not a wait for anything
        fault_stack.up()  # start what was stopped

    await run_scenario(
        f"postgres stopped {OUTAGE_SECONDS:.0f}s",
        world,
        pipeline,
        traffic,
        outage,
        fault_rows,
        while_sending=False,
    )
    assert all(pipeline.alive().values())


async def test_scale_out_and_a_lost_worker_keep_every_key_in_order(
    world: Isolated, pipeline: Pipeline, fault_rows: list[Row]
) -> None:
    """d) two workers of each service; mid-stream a third joins and one is killed."""
    await start_ready(pipeline, (*SERVICES, *(f"{s}-2" for s in SERVICES)))
    traffic = Traffic(SEED + 3, contacts=400, rate=10.0, hostile=poison())

    async def rebalances() -> None:
        await until_mid_stream(world, traffic)
        for service in SERVICES:
            pipeline.start(f"{service}-3")
        await until_mid_stream(world, traffic, share=0.4)
        for service in SERVICES:
            pipeline.kill(service)  # the first worker of each, partitions move

    row = await run_scenario("scale-out 2->3->2", world, pipeline, traffic, rebalances, fault_rows)
    survivors = {w for w, up in pipeline.alive().items() if up}
    assert survivors == {f"{s}-{n}" for s in SERVICES for n in (2, 3)}
    # No event overtaken by a later one for the same child or queue item.
    refused = await fetchval(
        world.dsn,
        "SELECT count(*) FROM dead_letters"
        " WHERE reason IN ('unknown_reference', 'invalid_transition')",
    )
    assert (refused, row.out_of_order) == (0, 0)
