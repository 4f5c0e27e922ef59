"""SLA breaches against the real broker and database, with routing's clock in a file the
test moves (no waiting in real time): one breach per missed clock — not zero, not two —
across restarts (including one between the deadline passing and the breach being
emitted), replays and two routing workers scanning together.

Every decision is the example red s47 (received Tue 12 Mar 2024 23:05:10Z, decided
23:05:12Z): strategy discussion due 4 clock hours after the decision, 13 Mar 03:05:12Z;
acknowledgement due one working day after receipt, Wed 13 Mar 23:05:10Z (GMT).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest

from services.common.topics import DECISIONS
from tests.integration.routing_harness import (
    RoutingUnderTest,
    breach_pairs,
    decision,
    queue_update,
)
from tests.support import Record, Stack, fetch, wait_until

pytestmark = pytest.mark.integration

START = datetime(2024, 3, 12, 23, 6, tzinfo=UTC)
STRATEGY_DUE = datetime(2024, 3, 13, 3, 5, 12, tzinfo=UTC)
ACK_DUE = datetime(2024, 3, 13, 23, 5, 10, tzinfo=UTC)
NWC = "north-west-central"


@pytest.fixture
async def routing(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RoutingUnderTest]:
    harness = await RoutingUnderTest.start(stack, tmp_path_factory.mktemp("breaches"), START)
    yield harness
    await harness.stop()


async def routed_item(routing: RoutingUnderTest, **overrides: object) -> str:
    """Route a red s47 decision; return its one item id."""
    d = decision(**overrides)
    assert (await routing.route(d)).outcome == "routed"
    (item,) = await routing.items(d.contact_id)
    item_id: str = item["queue_item_id"]
    return item_id


def has(item_id: str, deadline: str) -> Callable[[list[Record]], bool]:
    return lambda records: (item_id, deadline) in breach_pairs(records)


async def breached_rows(routing: RoutingUnderTest) -> list[tuple[str, str]]:
    rows = await fetch(
        routing.world.dsn,
        "SELECT queue_item_id, deadline FROM queue_item_deadlines WHERE breached_at IS NOT NULL",
    )
    return sorted((r["queue_item_id"], r["deadline"]) for r in rows)


async def test_each_missed_clock_breaches_once_and_met_clocks_never(
    routing: RoutingUnderTest,
) -> None:
    on_time = await routed_item(routing)  # acknowledged before it was due
    sentinel = await routed_item(routing)  # nothing done: misses both clocks
    closed = await routed_item(routing)  # closed before anything was due
    late = await routed_item(routing)  # acknowledged after it was due
    updates = [
        queue_update(on_time, "acknowledged", at="2024-03-13T01:00:00+00:00"),
        queue_update(closed, "closed", at="2024-03-13T02:00:00+00:00"),
        queue_update(late, "acknowledged", at="2024-03-14T01:00:00+00:00"),
    ]
    for u in updates:
        assert (await routing.update(u)).outcome == "applied"
    assert await routing.breaches() == [], "nothing is due yet"

    # Past the strategy discussion deadline.
    routing.set_clock(datetime(2024, 3, 13, 3, 10, tzinfo=UTC))
    records = await routing.breaches_until(has(sentinel, "strategy_discussion"))
    assert breach_pairs(records) == sorted(
        [
            (on_time, "strategy_discussion"),
            (sentinel, "strategy_discussion"),
            (late, "strategy_discussion"),
        ]
    )
    breach = next(r for r in records if r.json()["queue_item_id"] == sentinel)
    body = breach.json()
    assert datetime.fromisoformat(body["due_at"]) == STRATEGY_DUE
    assert datetime.fromisoformat(body["breached_at"]) == datetime(2024, 3, 13, 3, 10, tzinfo=UTC)
    assert (body["hub"], body["queue"]) == (NWC, "s47")
    assert breach.headers["ce_id"] == body["breach_id"]
    assert breach.headers["ce_type"] == "uk.gov.mash.sla-breach.v1"
    assert breach.key == sentinel.encode()

    # Past the acknowledgement deadline: the sentinel missed it, and an acknowledgement
    # after the due time is still a miss; on time and closed ones never breach.
    routing.set_clock(datetime(2024, 3, 14, 0, 0, tzinfo=UTC))
    records = await routing.breaches_until(has(sentinel, "acknowledge_referrer"))
    expected = sorted(
        [
            (on_time, "strategy_discussion"),
            (sentinel, "strategy_discussion"),
            (late, "strategy_discussion"),
            (sentinel, "acknowledge_referrer"),
            (late, "acknowledge_referrer"),
        ]
    )
    assert breach_pairs(records) == expected
    assert len({r.headers["ce_id"] for r in records}) == len(records)
    assert await breached_rows(routing) == expected
    assert (
        routing.metric(
            "mash_sla_breaches_total", hub=NWC, queue="s47", deadline="strategy_discussion"
        )
        == 3
    )
    assert (
        routing.metric(
            "mash_sla_breaches_total", hub=NWC, queue="s47", deadline="acknowledge_referrer"
        )
        == 2
    )


async def test_a_restart_between_the_deadline_and_the_breach_emits_it_exactly_once(
    routing: RoutingUnderTest,
) -> None:
    early = decision()
    # Decided ten hours later: its strategy discussion is due 13 Mar 13:05:12Z.
    later = decision(
        received_at="2024-03-13T09:05:10+00:00", decided_at="2024-03-13T09:05:12+00:00"
    )
    await routing.route(early)
    await routing.route(later)
    (early_item,) = await routing.items(early.contact_id)
    (later_item,) = await routing.items(later.contact_id)
    early_id, later_id = early_item["queue_item_id"], later_item["queue_item_id"]
    await routing.outbox_drained()

    # Routing is down while the deadline passes; it comes back and emits the breach.
    routing.processes.stop("routing")
    routing.set_clock(datetime(2024, 3, 13, 4, 0, tzinfo=UTC))
    routing.processes.start("routing")
    records = await routing.breaches_until(has(early_id, "strategy_discussion"))
    assert breach_pairs(records) == [(early_id, "strategy_discussion")]

    # Crash it (SIGKILL: no graceful anything) and bring it back past the later deadline.
    await routing.outbox_drained()
    routing.processes.stop("routing", kill=True)
    routing.set_clock(datetime(2024, 3, 13, 14, 0, tzinfo=UTC))
    routing.processes.start("routing")
    # A replay of the early decision under a new event id changes nothing either.
    replay = await routing.handled(
        DECISIONS, *await routing.send_decision(early, event_id=f"{early.decision_id}-again")
    )
    assert replay.outcome == "duplicate_decision"
    records = await routing.breaches_until(has(later_id, "strategy_discussion"))
    # The restarted process scanned (the later breach is there): still one for early.
    assert breach_pairs(records) == sorted(
        [(early_id, "strategy_discussion"), (later_id, "strategy_discussion")]
    )
    assert await breached_rows(routing) == breach_pairs(records)


async def test_a_clock_already_run_out_when_routed_breaches_with_the_routing(
    routing: RoutingUnderTest,
) -> None:
    routing.set_clock(datetime(2024, 3, 20, 12, 0, tzinfo=UTC))
    d = decision()
    assert (await routing.route(d)).outcome == "routed"
    (item,) = await routing.items(d.contact_id)
    # Both breaches were enqueued in the routing transaction itself.
    rows = await fetch(
        routing.world.dsn,
        "SELECT count(*) AS n FROM outbox WHERE topic = $1",
        routing.world.topics("mash.sla.breaches.v1"),
    )
    assert rows[0]["n"] == 2
    records = await routing.breaches_until(lambda rs: len(rs) >= 2)
    assert breach_pairs(records) == sorted(
        [
            (item["queue_item_id"], "acknowledge_referrer"),
            (item["queue_item_id"], "strategy_discussion"),
        ]
    )
    assert {datetime.fromisoformat(r.json()["breached_at"]) for r in records} == {
        datetime(2024, 3, 20, 12, 0, tzinfo=UTC)
    }


async def test_two_routing_workers_scanning_together_breach_each_clock_once(
    routing: RoutingUnderTest,
) -> None:
    routing.second.start("routing")

    async def second_ready() -> bool:
        log = routing.second.log_dir / "routing.log"
        return log.exists() and "service_ready" in log.read_text(errors="replace")

    await wait_until(second_ready, timeout=60, what="the second routing worker")
    first_wave = [await routed_item(routing) for _ in range(8)]
    # Decided the next morning: strategy discussions due 13 Mar 13:05:12Z.
    second_wave = [
        await routed_item(
            routing,
            received_at="2024-03-13T09:05:10+00:00",
            decided_at="2024-03-13T09:05:12+00:00",
        )
        for _ in range(4)
    ]
    routing.set_clock(datetime(2024, 3, 13, 4, 0, tzinfo=UTC))
    await routing.breaches_until(lambda rs: len(rs) >= len(first_wave))
    # Both workers keep scanning; a later wave proves they scanned after the first one.
    routing.set_clock(datetime(2024, 3, 13, 14, 0, tzinfo=UTC))
    total = len(first_wave) + len(second_wave)
    records = await routing.breaches_until(lambda rs: len(rs) >= total)
    expected = sorted((i, "strategy_discussion") for i in first_wave + second_wave)
    assert breach_pairs(records) == expected
    assert len({r.headers["ce_id"] for r in records}) == total
    assert await breached_rows(routing) == expected
