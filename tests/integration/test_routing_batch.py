"""Events that arrive together are applied in one transaction exactly as one at a time.

The same events go to two routing processes on the real broker and database, each in a
world of its own: one at a time to the first (each event its own batch), all at once to the
second (routing is stopped while they are published, so its first poll takes them as one
batch — proven by the transaction ids on their inbox and dead-letter rows: one, or two if
the linger timer split the first poll).

Decisions that depend on each other: a decision and the override that moves its item;
another contact about the same child joining the open case; a level 4 escalating it; a
replay; an override published before the decision it supersedes; a hub outside the
topology. Queue updates that depend on each other: an s47 item worked to the end, steps an
item does not allow, an item nobody has. Routing's clock is months on, so every clock has
run out and breaches with the routing, or with the update that starts it.

Both worlds must hold the same record — queue items, history in order, clocks and breaches,
routing_decisions, inbox outcomes, audit, dead letters, the events enqueued for each key in
order — and show the same counters.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from schemas.events import Decision
from schemas.inbound import QueueUpdate
from services.common.outbox import INGRESS_HEADER
from services.common.topics import DEAD_LETTER, DECISIONS, QUEUE_UPDATES, ROUTED, SLA_BREACHES
from services.routing.queues import queue_item_id
from tests.integration.harness import Handled
from tests.integration.routing_harness import RoutingUnderTest, decision, queue_update
from tests.support import Stack, fetch

pytestmark = pytest.mark.integration

#: Months after the decisions (12 March 2024): every clock they start has run out.
NOW = datetime(2024, 6, 3, 12, 0, tzinfo=UTC)
ES = "east-south"
#: One key for every event: one partition, so the offset order is the order sent.
KEY = "one-partition"
COUNTERS = ("mash_routed_total", "mash_sla_breaches_total")

Sent = Decision | QueueUpdate


def child(subject_id: str, ref: str = "C-1") -> dict[str, str]:
    return {"subject_id": subject_id, "child_ref": ref}


def decisions() -> list[tuple[str, Decision]]:
    """(event id, decision) in the order published."""
    tag = uuid.uuid4().hex[:8]
    x, y, z = (f"SUBJ-{n}-{tag}" for n in "XYZ")

    def about(name: str, *children: str, **overrides: Any) -> Decision:
        return decision(
            decision_id=f"DEC-{name}-{tag}",
            contact_id=f"CON-{name[0]}-{tag}",
            contact_reference=f"MASH-{name[0]}-{tag}",
            subjects=[child(s, f"C-{n}") for n, s in enumerate(children)],
            **overrides,
        )

    a = about("A", x)  # rules: s47, red
    a_moved = about(
        "A-P",
        x,
        outcome="initial_assessment",
        level=3,
        rag="amber",
        source="practitioner",
        supersedes_decision_id=a.decision_id,
    )
    # Another contact about x (and y): x joins the open case, y goes to the ES queue.
    b = about(
        "B", x, y, outcome="single_agency", level=2, rag="green", target_agency="health", hub=ES
    )
    elsewhere = about("E", x, hub="four-areas-north")
    c = about("C", x, hub=ES)  # level 4: escalates x's open case to s47
    d = about("D", z)
    d_override = about(
        "D-P",
        z,
        outcome="single_agency",
        level=2,
        rag="green",
        target_agency="early_help",
        source="practitioner",
        supersedes_decision_id=d.decision_id,
    )
    return [
        (a.decision_id, a),
        (a_moved.decision_id, a_moved),
        (b.decision_id, b),
        (elsewhere.decision_id, elsewhere),
        (c.decision_id, c),
        (f"{a.decision_id}-replayed", a),
        (d_override.decision_id, d_override),
        (d.decision_id, d),
    ]


def work() -> list[tuple[str, Decision]]:
    """(event id, decision) giving one item on each queue: s47, initial assessment, single
    agency."""
    tag = uuid.uuid4().hex[:8]
    found = []
    for name, overrides in [
        ("S47", {}),
        ("IA", {"outcome": "initial_assessment", "level": 3, "rag": "amber"}),
        ("SA", {"outcome": "single_agency", "level": 2, "rag": "green", "target_agency": "health"}),
    ]:
        d = decision(
            decision_id=f"DEC-{name}-{tag}",
            contact_id=f"CON-{name}-{tag}",
            contact_reference=f"MASH-{name}-{tag}",
            subjects=[child(f"SUBJ-{name}-{tag}")],
            **overrides,
        )
        found.append((d.decision_id, d))
    return found


def updates(routed: Sequence[tuple[str, Decision]]) -> list[tuple[str, QueueUpdate]]:
    """(event id, update) for the items of :func:`work`: the s47 item worked to the end, its
    ICPC clock run out before it was closed on time; steps the items do not allow; an item
    nobody has; the other items moved in between."""
    s47, ia, single = (queue_item_id(d.decision_id, d.subjects[0].subject_id) for _, d in routed)
    tag = routed[0][1].decision_id
    steps = [
        (s47, "acknowledged", "2024-03-13T01:00:00+00:00"),
        (s47, "strategy_discussion_held", "2024-03-13T02:00:00+00:00"),
        (ia, "strategy_discussion_held", "2024-03-13T02:00:00+00:00"),  # not on this queue
        (s47, "assessment_completed", "2024-03-20T10:00:00+00:00"),
        (f"QI-NOBODY-{tag}", "acknowledged", "2024-03-13T02:00:00+00:00"),
        (ia, "acknowledged", "2024-03-14T12:00:00+00:00"),
        (s47, "closed", "2024-03-21T10:00:00+00:00"),  # before the ICPC was due
        (single, "closed", "2024-03-21T10:00:00+00:00"),
        (s47, "acknowledged", "2024-03-22T10:00:00+00:00"),  # closed: refused
    ]
    return [
        (f"UPD-{n}-{tag}", queue_update(item, status, at=at))
        for n, (item, status, at) in enumerate(steps)
    ]


def what(handled: Handled) -> str | None:
    return handled.outcome or handled.dead_letter


async def send(routing: RoutingUnderTest, event_id: str, payload: Sent) -> tuple[str, int, int]:
    topic = DECISIONS if isinstance(payload, Decision) else QUEUE_UPDATES
    return topic, *await routing.send(topic, payload, key=KEY, event_id=event_id)


async def one_at_a_time(
    routing: RoutingUnderTest, events: Sequence[tuple[str, Sent]]
) -> list[str | None]:
    return [what(await routing.handled(*await send(routing, e, p))) for e, p in events]


async def all_at_once(
    routing: RoutingUnderTest, events: Sequence[tuple[str, Sent]]
) -> list[str | None]:
    routing.processes.stop("routing")
    coordinates = [await send(routing, e, p) for e, p in events]
    routing.processes.start("routing")
    return [what(await routing.handled(*c)) for c in coordinates]


async def transactions(routing: RoutingUnderTest, topic: str) -> int:
    """How many transactions wrote routing's inbox and dead-letter rows for ``topic``."""
    rows = await fetch(
        routing.world.dsn,
        "SELECT count(DISTINCT x) AS n FROM (SELECT xmin::text AS x FROM processed_events"
        " WHERE service = 'routing' AND topic = $1"
        " UNION ALL SELECT xmin::text FROM dead_letters WHERE original_topic = $1) t",
        routing.world.topics(topic),
    )
    return int(rows[0]["n"])


async def record(routing: RoutingUnderTest) -> dict[str, Any]:
    """Everything routing wrote, without what names the world (topic prefix) or the wall
    clock (updated_at, audit and dead-letter times)."""
    dsn, prefix = routing.world.dsn, routing.world.prefix

    async def rows(sql: str) -> list[dict[str, Any]]:
        found = [dict(r) for r in await fetch(dsn, sql)]
        for row in found:
            for column in ("topic", "original_topic"):
                if column in row:
                    row[column] = row[column].removeprefix(prefix)
        return found

    outbox: dict[tuple[str, str], list[tuple[str, bytes, Any]]] = {}
    for r in await rows("SELECT topic, key, event_id, value, headers FROM outbox ORDER BY id"):
        if r["topic"] == DEAD_LETTER:  # its body names the world's topic; compared below
            continue
        headers = [h for h in json.loads(r["headers"]) if h[0] != INGRESS_HEADER]
        entry = (r["event_id"], bytes(r["value"]), headers)  # byte for byte
        outbox.setdefault((r["topic"], bytes(r["key"]).decode()), []).append(entry)
    return {
        "items": await rows(
            "SELECT queue_item_id, contact_id, decision_id, subject_id, hub, queue, outcome,"
            " rag, target_agency, status, deadlines, open_case_update, routed_at, status_at,"
            " strategy_outcome, closure_reason, replaced_by FROM queue_items"
            " ORDER BY queue_item_id"
        ),
        "history": await rows(
            "SELECT history_id, queue_item_id, action, from_status, to_status, at, actor, detail"
            " FROM queue_item_history ORDER BY seq"
        ),
        "clocks": await rows("SELECT * FROM queue_item_deadlines ORDER BY queue_item_id, deadline"),
        "decisions": await rows("SELECT * FROM routing_decisions ORDER BY decision_id"),
        "inbox": await rows(
            'SELECT event_id, topic, "partition", "offset", outcome FROM processed_events'
            ' WHERE service = \'routing\' ORDER BY topic, "partition", "offset"'
        ),
        "audit": await rows(
            "SELECT entity_type, entity_id, action, detail FROM audit_log"
            " WHERE service = 'routing' ORDER BY id"
        ),
        "dead letters": await rows(
            'SELECT original_topic, "partition", "offset", reason, errors FROM dead_letters'
            ' ORDER BY original_topic, "partition", "offset"'
        ),
        "outbox": outbox,
    }


def counters(routing: RoutingUnderTest) -> dict[str, float]:
    """Routing's routed and breach counters, by series."""
    found = {}
    for line in routing.metrics().splitlines():
        series, _, value = line.rpartition(" ")
        if series.split("{")[0] in COUNTERS:
            found[series] = float(value)
    return found


async def counted(routing: RoutingUnderTest) -> tuple[int, int]:
    """What the counters count, from the record: items routed, clocks breached."""
    rows = await fetch(
        routing.world.dsn,
        "SELECT (SELECT count(*) FROM queue_items) AS items,"
        " (SELECT count(*) FROM queue_item_deadlines WHERE breach_id IS NOT NULL) AS breached",
    )
    return int(rows[0]["items"]), int(rows[0]["breached"])


async def counted_since(
    routing: RoutingUnderTest, base: dict[str, float], since: tuple[int, int]
) -> dict[str, float]:
    """Wait until the counters have counted what the record gained since ``since`` (they
    move once the transaction has committed); return what they gained since ``base``."""
    items, breached = await counted(routing)

    async def gained() -> list[dict[str, float]] | None:
        try:
            found = counters(routing)
        except OSError:  # the process is still starting
            return None
        delta = {k: v - base.get(k, 0.0) for k, v in found.items() if v != base.get(k, 0.0)}
        routed = sum(v for k, v in delta.items() if k.startswith("mash_routed_total"))
        breaches = sum(v for k, v in delta.items() if k.startswith("mash_sla_breaches_total"))
        done = (routed, breaches) == (items - since[0], breached - since[1])
        return [delta] if done else None  # a list: gaining nothing is an answer too

    (delta,) = await routing.wait(gained, 30, "the counters")
    return delta


@dataclass
class Outcome:
    """What a routing process did with the events of a batch."""

    handled: list[str | None]
    """Inbox outcome or dead-letter reason of each event of the batch, in order."""
    record: dict[str, Any]
    counters: dict[str, float]
    """What the counters gained with the batch."""


async def run(
    stack: Stack,
    run_dir: Path,
    before: Sequence[tuple[str, Sent]],
    batch: Sequence[tuple[str, Sent]],
    *,
    at_once: bool,
) -> tuple[Outcome, RoutingUnderTest]:
    """Send ``before`` one at a time, then ``batch`` one at a time or all at once, to a
    routing process of its own (returned running, for more checks)."""
    env = {"MASH_BATCH_LINGER_SECONDS": "1"} if at_once else {}
    routing = await RoutingUnderTest.start(stack, run_dir, NOW, env=env)
    try:
        await one_at_a_time(routing, before)
        since = await counted(routing)
        base = await counted_since(routing, {}, (0, 0))
        if at_once:
            handled = await all_at_once(routing, batch)
            base = {}  # a new process: its counters started from zero
        else:
            handled = await one_at_a_time(routing, batch)
        seen = await record(routing)
        return Outcome(handled, seen, await counted_since(routing, base, since)), routing
    except BaseException:
        await routing.stop()
        raise


async def assert_same_at_once(
    stack: Stack,
    tmp_path_factory: pytest.TempPathFactory,
    before: Sequence[tuple[str, Sent]],
    batch: Sequence[tuple[str, Sent]],
) -> Outcome:
    """Run ``batch`` one at a time in one world and all at once in another; check both
    leave the same record and counters; return the first world's outcome."""
    expected, single = await run(
        stack, tmp_path_factory.mktemp("one-at-a-time"), before, batch, at_once=False
    )
    await single.stop()
    found, batched = await run(
        stack, tmp_path_factory.mktemp("at-once"), before, batch, at_once=True
    )
    try:
        topic = DECISIONS if isinstance(batch[0][1], Decision) else QUEUE_UPDATES
        # One transaction, or two if the linger timer happened to fire while Faust was
        # still handing the fetched records over: never one per event.
        applied_in = await transactions(batched, topic)
        assert applied_in <= 2, f"{len(batch)} events took {applied_in} transactions"
        assert found.handled == expected.handled
        for part in expected.record:
            assert found.record[part] == expected.record[part], part
        assert found.counters == expected.counters
        # The broker got each key's events in the order they were enqueued.
        await batched.outbox_drained()
        for contract in (ROUTED, SLA_BREACHES):
            on_topic: dict[str, list[str]] = {}
            for r in await batched.topic(contract):
                on_topic.setdefault((r.key or b"").decode(), []).append(r.headers["ce_id"])
            enqueued = {
                key: [event_id for event_id, _, _ in events]
                for (topic, key), events in found.record["outbox"].items()
                if topic == contract
            }
            assert on_topic == enqueued, contract
    finally:
        await batched.stop()
    return expected


async def test_decisions_routed_in_one_batch_leave_what_one_at_a_time_leaves(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    sent = decisions()
    expected = await assert_same_at_once(stack, tmp_path_factory, [], sent)
    assert expected.handled == [
        "routed",
        "routed",
        "routed",
        "unknown_reference",
        "routed",
        "duplicate_decision",
        "routed",
        "superseded",
    ]
    # What one at a time does with them (so that "the same" is not "both wrong").
    record = expected.record
    history = [(h["queue_item_id"], h["action"]) for h in record["history"]]
    a = next(i for i in record["items"] if i["decision_id"] == sent[0][1].decision_id)
    assert [action for i, action in history if i == a["queue_item_id"]] == ["opened", "moved"]
    assert [action for _, action in history].count("escalated") == 1
    assert {i["open_case_update"] for i in record["items"]} == {True, False}
    assert any(c["breach_id"] for c in record["clocks"])


async def test_queue_updates_applied_in_one_batch_leave_what_one_at_a_time_leaves(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    routed = work()
    sent = updates(routed)
    expected = await assert_same_at_once(stack, tmp_path_factory, routed, sent)
    assert expected.handled == [
        "applied",
        "applied",
        "invalid_transition",
        "applied",
        "unknown_reference",
        "applied",
        "applied",
        "applied",
        "invalid_transition",
    ]
    # The ICPC clock had run out when the strategy discussion was reported: it breached
    # then, and the item closed before the ICPC was due keeps that breach.
    s47 = sent[0][1].queue_item_id
    icpc = next(
        c for c in expected.record["clocks"] if (c["queue_item_id"], c["deadline"]) == (s47, "icpc")
    )
    assert icpc["breach_id"] is not None
    assert icpc["met_by"] == "closed"
    assert icpc["met_at"] <= icpc["due_at"]
