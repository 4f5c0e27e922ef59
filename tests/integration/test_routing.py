"""Routing alone against the real broker and database: fan-out per child, no further
action, open cases and escalation, overrides moving items, the lifecycle (valid and
invalid steps), and what ops see (history, gauge, counters).

Decisions are built from ``schemas.examples.decision`` (received 2024-03-12 23:05:10Z,
decided 23:05:12Z) and published straight onto the world's decisions topic. Routing's clock
stays at 23:06 that evening in this module, before any clock runs out, so no breach
interferes (breaches are tested in test_routing_breaches.py).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas import examples as ex
from schemas.events import Decision
from services.common.calendar import LONDON
from services.common.topics import DEAD_LETTER
from tests.integration.routing_harness import (
    RoutingUnderTest,
    decision,
    queue_update,
)
from tests.support import Stack, fetch, fetchval, wait_until

pytestmark = pytest.mark.integration

NOW = datetime(2024, 3, 12, 23, 6, tzinfo=UTC)
NWC, ES = "north-west-central", "east-south"


@pytest.fixture(scope="module")
async def routing(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RoutingUnderTest]:
    harness = await RoutingUnderTest.start(stack, tmp_path_factory.mktemp("routing"), NOW)
    yield harness
    await harness.stop()


def child(subject_id: str, ref: str = "C-1") -> dict[str, str]:
    return {"subject_id": subject_id, "child_ref": ref}


def override_of(rules: Decision, **overrides: Any) -> Decision:
    """A practitioner's decision superseding ``rules``: same contact and children."""
    return decision(
        decision_id=f"{rules.decision_id}-P",
        contact_id=rules.contact_id,
        contact_reference=rules.contact_reference,
        subjects=[s.model_dump() for s in rules.subjects],
        source="practitioner",
        supersedes_decision_id=rules.decision_id,
        **overrides,
    )


async def test_each_child_of_a_decision_gets_its_own_item_on_its_hubs_queue(
    routing: RoutingUnderTest,
) -> None:
    d = decision(
        outcome="initial_assessment",
        level=3,
        rag="amber",
        hub=ES,
        subjects=[child("S-A1", "C-1"), child("S-A2", "C-2"), child("S-A3", "C-3")],
    )
    assert (await routing.route(d)).outcome == "routed"
    items = await routing.items(d.contact_id)
    assert sorted(i["subject_id"] for i in items) == ["S-A1", "S-A2", "S-A3"]
    assert {(i["hub"], i["queue"], i["status"]) for i in items} == {
        (ES, "initial-assessment", "open")
    }
    events = [
        r.json()
        for r in await routing.queue_events(ES, "initial-assessment")
        if r.json()["contact_id"] == d.contact_id
    ]
    assert sorted(e["subject_id"] for e in events) == ["S-A1", "S-A2", "S-A3"]
    assert {e["queue_item_id"] for e in events} == {i["queue_item_id"] for i in items}
    # Deadlines worked by hand: received Tue 12 Mar 2024 23:05:10 (GMT) -> acknowledgement
    # Wed 13 Mar 23:05:10; the 45-working-day assessment from Tue 12 Mar, across Good
    # Friday (29 Mar) and Easter Monday (1 Apr): 13-15 Mar = 1..3, 18-22 = 4..8,
    # 25-28 = 9..12, 2-5 Apr = 13..16, 8-12 = 17..21, 15-19 = 22..26, 22-26 = 27..31,
    # 29 Apr-3 May = 32..36, (6 May Early May bank holiday) 7-10 May = 37..40,
    # 13-17 May = 41..45 -> Fri 17 May 2024, the same London wall-clock time (now BST).
    due = {k: datetime.fromisoformat(v) for k, v in events[0]["deadlines"].items()}
    assert due == {
        "acknowledge_referrer": datetime(2024, 3, 13, 23, 5, 10, tzinfo=LONDON),
        "assessment": datetime(2024, 5, 17, 23, 5, 10, tzinfo=LONDON),
    }
    stored = await routing.deadlines(items[0]["queue_item_id"])
    assert {k: v["due_at"] for k, v in stored.items()} == due
    # Each event keyed by the child; one routed event naming all three items.
    assert all(r.key is not None for r in await routing.queue_events(ES, "initial-assessment"))
    (routed,) = await routing.routed(d.decision_id)
    assert (routed["hub"], routed["queue"]) == (ES, "initial-assessment")
    assert sorted(routed["queue_item_ids"]) == sorted(i["queue_item_id"] for i in items)
    for item in items:
        assert await routing.history(item["queue_item_id"]) == [("opened", None, "open")]


async def test_no_further_action_is_recorded_with_no_item(routing: RoutingUnderTest) -> None:
    d = decision(outcome="no_further_action", level=1, rag="blue")
    assert (await routing.route(d)).outcome == "routed"
    assert await routing.items(d.contact_id) == []
    (routed,) = await routing.routed(d.decision_id)
    assert routed["queue"] is None
    assert routed["queue_item_ids"] == []
    effect = await fetchval(
        routing.world.dsn,
        "SELECT effect FROM routing_decisions WHERE decision_id = $1",
        d.decision_id,
    )
    assert effect == "routed"


async def test_a_decision_for_a_hub_outside_the_topology_is_dead_lettered(
    routing: RoutingUnderTest,
) -> None:
    d = decision(hub="four-areas-north")
    assert (await routing.route(d)).dead_letter == "unknown_reference"
    assert await routing.items(d.contact_id) == []
    assert await routing.routed(d.decision_id) == []


async def test_a_child_with_an_open_case_is_routed_to_the_case_as_an_update(
    routing: RoutingUnderTest,
) -> None:
    first = decision(
        outcome="single_agency", level=2, rag="green", target_agency="early_help", hub=ES
    )
    subject = first.subjects[0].subject_id
    await routing.route(first)
    # A later contact about the same child, decided level 3 in the other hub.
    later = decision(
        outcome="initial_assessment", level=3, rag="amber", hub=NWC, subjects=[child(subject)]
    )
    assert (await routing.route(later)).outcome == "routed"
    (item,) = await routing.items(later.contact_id)
    assert (item["hub"], item["queue"], item["open_case_update"]) == (ES, "single-agency", True)
    assert set((await routing.deadlines(item["queue_item_id"])).keys()) == {"acknowledge_referrer"}
    # The open case itself is untouched.
    (case,) = await routing.items(first.contact_id)
    assert case["status"] == "open"
    events = [
        r.json()
        for r in await routing.queue_events(ES, "single-agency")
        if r.json()["queue_item_id"] == item["queue_item_id"]
    ]
    assert [e["open_case_update"] for e in events] == [True]


async def test_level_4_escalates_an_open_case_to_s47(routing: RoutingUnderTest) -> None:
    first = decision(outcome="initial_assessment", level=3, rag="amber", hub=ES)
    subject = first.subjects[0].subject_id
    await routing.route(first)
    (case,) = await routing.items(first.contact_id)
    later = decision(outcome="s47", level=4, rag="red", hub=NWC, subjects=[child(subject)])
    assert (await routing.route(later)).outcome == "routed"
    (escalated,) = await routing.items(later.contact_id)
    assert (escalated["hub"], escalated["queue"], escalated["open_case_update"]) == (
        ES,
        "s47",
        False,
    )
    assert "strategy_discussion" in await routing.deadlines(escalated["queue_item_id"])
    (closed,) = await routing.items(first.contact_id)
    assert (closed["status"], closed["replaced_by"]) == ("closed", escalated["queue_item_id"])
    assert await routing.history(case["queue_item_id"]) == [
        ("opened", None, "open"),
        ("escalated", "open", "closed"),
    ]
    old_events = [
        r.json()
        for r in await routing.queue_events(ES, "initial-assessment")
        if r.json()["queue_item_id"] == case["queue_item_id"]
    ]
    assert [e["status"] for e in old_events] == ["open", "closed"]
    assert old_events[-1]["replaced_by"] == escalated["queue_item_id"]


async def test_an_override_moves_the_item_once_and_a_replay_changes_nothing(
    routing: RoutingUnderTest,
) -> None:
    rules = decision(outcome="s47", level=4, rag="red")
    await routing.route(rules)
    (old,) = await routing.items(rules.contact_id)
    override = override_of(
        rules,
        outcome="initial_assessment",
        level=3,
        rag="amber",
        decided_at="2024-03-12T23:30:00+00:00",
    )
    assert (await routing.route(override)).outcome == "routed"
    items = {i["queue_item_id"]: i for i in await routing.items(rules.contact_id)}
    assert len(items) == 2
    new = next(i for i in items.values() if i["queue_item_id"] != old["queue_item_id"])
    assert (items[old["queue_item_id"]]["status"], items[old["queue_item_id"]]["replaced_by"]) == (
        "closed",
        new["queue_item_id"],
    )
    assert (new["queue"], new["status"], new["decision_id"]) == (
        "initial-assessment",
        "open",
        override.decision_id,
    )
    assert await routing.history(old["queue_item_id"]) == [
        ("opened", None, "open"),
        ("moved", "open", "closed"),
    ]
    # Both visible: the old item opened then closed on s47, the new one on its queue.
    s47 = [
        r.json()["status"]
        for r in await routing.queue_events(NWC, "s47")
        if r.json()["queue_item_id"] == old["queue_item_id"]
    ]
    assert s47 == ["open", "closed"]
    ia = [
        r.json()["status"]
        for r in await routing.queue_events(NWC, "initial-assessment")
        if r.json()["queue_item_id"] == new["queue_item_id"]
    ]
    assert ia == ["open"]
    (routed,) = await routing.routed(override.decision_id)
    assert routed["queue_item_ids"] == [new["queue_item_id"]]
    assert routed["decision_source"] == "practitioner"

    # Replayed: the same event again, and the same decision under a new event id.
    outbox = await fetchval(routing.world.dsn, "SELECT count(*) FROM outbox")
    assert (
        await routing.handled("mash.decisions.v1", *await routing.send_decision(override))
    ).duplicate
    again = await routing.handled(
        "mash.decisions.v1",
        *await routing.send_decision(override, event_id=f"{override.decision_id}-replayed"),
    )
    assert again.outcome == "duplicate_decision"
    assert {i["queue_item_id"]: i["status"] for i in await routing.items(rules.contact_id)} == {
        old["queue_item_id"]: "closed",
        new["queue_item_id"]: "open",
    }
    assert await fetchval(routing.world.dsn, "SELECT count(*) FROM outbox") == outbox


async def test_a_decision_arriving_after_its_override_is_set_aside(
    routing: RoutingUnderTest,
) -> None:
    rules = decision(outcome="s47", level=4, rag="red")
    override = override_of(
        rules, outcome="single_agency", level=2, rag="green", target_agency="health"
    )
    assert (await routing.route(override)).outcome == "routed"
    assert (await routing.route(rules)).outcome == "superseded"
    (item,) = await routing.items(rules.contact_id)
    assert (item["decision_id"], item["queue"]) == (override.decision_id, "single-agency")
    assert await routing.routed(rules.decision_id) == []


async def test_an_s47_item_goes_through_its_lifecycle_and_records_each_step(
    routing: RoutingUnderTest,
) -> None:
    d = decision(outcome="s47", level=4, rag="red")
    await routing.route(d)
    (item,) = await routing.items(d.contact_id)
    item_id = item["queue_item_id"]
    steps = [
        ("acknowledged", "2024-03-12T23:20:00+00:00"),
        # Held Wed 13 Mar 2024 01:00: ICPC 15 working days on, 14 Mar = 1 ... 29 Mar is
        # Good Friday and 1 Apr Easter Monday: 14-15 = 1..2, 18-22 = 3..7, 25-28 = 8..11,
        # 2-5 Apr = 12..15 -> Fri 5 Apr 2024 01:00 London (BST from 31 Mar, so 00:00Z).
        ("strategy_discussion_held", "2024-03-13T01:00:00+00:00"),
        ("assessment_completed", "2024-03-20T10:00:00+00:00"),
        ("closed", "2024-03-21T10:00:00+00:00"),
    ]
    for status, at in steps:
        assert (await routing.update(queue_update(item_id, status, at=at))).outcome == "applied"
    (done,) = await routing.items(d.contact_id)
    assert (done["status"], done["closure_reason"], done["strategy_outcome"]) == (
        "closed",
        "RC8",
        "s47_joint",
    )
    clocks = await routing.deadlines(item_id)
    assert clocks["icpc"]["due_at"] == datetime(2024, 4, 5, 1, 0, tzinfo=LONDON)
    assert {k: v["met_by"] for k, v in clocks.items()} == {
        "acknowledge_referrer": "acknowledged",
        "strategy_discussion": "strategy_discussion_held",
        "icpc": "closed",
    }
    assert await routing.history(item_id) == [
        ("opened", None, "open"),
        ("acknowledged", "open", "acknowledged"),
        ("strategy_discussion_held", "acknowledged", "strategy_discussion_held"),
        ("assessment_completed", "strategy_discussion_held", "assessment_completed"),
        ("closed", "assessment_completed", "closed"),
    ]
    events = [
        r.json()
        for r in await routing.queue_events(NWC, "s47")
        if r.json()["queue_item_id"] == item_id
    ]
    assert [e["status"] for e in events] == [
        "open",
        "acknowledged",
        "strategy_discussion_held",
        "assessment_completed",
        "closed",
    ]
    assert "icpc" not in events[1]["deadlines"]
    assert "icpc" in events[2]["deadlines"]
    assert events[-1]["closure_reason"] == "RC8"


@pytest.mark.parametrize(
    ("queue", "outcome", "level", "rag", "before", "step", "reason"),
    [
        ("s47", "s47", 4, "red", ["closed"], "closed", "invalid_transition"),
        ("s47", "s47", 4, "red", ["closed"], "acknowledged", "invalid_transition"),
        ("s47", "s47", 4, "red", ["acknowledged"], "acknowledged", "invalid_transition"),
        ("s47", "s47", 4, "red", [], "assessment_completed", "invalid_transition"),
        (
            "single-agency",
            "single_agency",
            2,
            "green",
            [],
            "strategy_discussion_held",
            "invalid_transition",
        ),
    ],
)
async def test_an_invalid_step_is_dead_lettered_and_changes_nothing(
    routing: RoutingUnderTest,
    queue: str,
    outcome: str,
    level: int,
    rag: str,
    before: list[str],
    step: str,
    reason: str,
) -> None:
    d = decision(outcome=outcome, level=level, rag=rag, target_agency="health")
    await routing.route(d)
    (item,) = await routing.items(d.contact_id)
    assert item["queue"] == queue
    for status in before:
        assert (await routing.update(queue_update(item["queue_item_id"], status))).outcome
    history = await routing.history(item["queue_item_id"])
    handled = await routing.update(queue_update(item["queue_item_id"], step))
    assert handled.dead_letter == reason
    assert await routing.history(item["queue_item_id"]) == history
    (after,) = await routing.items(d.contact_id)
    assert after["status"] == (before[-1] if before else "open")


async def test_an_update_for_an_unknown_item_is_dead_lettered(routing: RoutingUnderTest) -> None:
    coordinates = await routing.send_update(queue_update("QI-NOBODY-HAS-THIS", "acknowledged"))
    assert (await routing.handled("mash.queue-updates.v1", *coordinates)).dead_letter == (
        "unknown_reference"
    )

    async def on_topic() -> bool:
        return any(
            r.json()["reason"] == "unknown_reference"
            and r.json()["offset"] == coordinates[1]
            and r.json()["errors"][0]["path"] == "queue_item_id"
            for r in await routing.topic(DEAD_LETTER)
        )

    await wait_until(on_topic, timeout=30, what="the dead letter on its topic")


async def test_open_items_are_exported_per_hub_and_queue(routing: RoutingUnderTest) -> None:
    d = decision(outcome="initial_assessment", level=3, rag="amber", hub=NWC)
    await routing.route(d)
    assert (await _open_counts(routing))[(NWC, "initial-assessment")] >= 1

    async def gauge_matches() -> bool:
        current = await _open_counts(routing)
        return all(
            routing.metric("mash_queue_open_items", hub=hub, queue=queue)
            == current.get((hub, queue), 0)
            for hub in (NWC, ES)
            for queue in ("single-agency", "initial-assessment", "s47")
        )

    await wait_until(gauge_matches, timeout=30, what="the open-items gauge to match the database")
    routed = routing.metric("mash_routed_total", hub=NWC, queue="initial-assessment")
    assert routed is not None
    assert routed >= 1


async def _open_counts(routing: RoutingUnderTest) -> dict[tuple[str, str], int]:
    rows = await fetch(
        routing.world.dsn,
        "SELECT hub, queue, count(*) AS n FROM queue_items WHERE status <> 'closed'"
        " GROUP BY hub, queue",
    )
    return {(r["hub"], r["queue"]): int(r["n"]) for r in rows}


# --- per child: siblings, step-up, the council's open cases --------------------------------


async def queue_events_until(
    routing: RoutingUnderTest,
    hub: str,
    queue: str,
    item_id: str,
    done: Callable[[list[dict[str, Any]]], bool],
) -> list[dict[str, Any]]:
    """An item's events on its queue topic, re-read until ``done(events)`` holds."""

    async def look() -> list[dict[str, Any]] | None:
        events = [
            r.json()
            for r in await routing.queue_events(hub, queue)
            if r.json()["queue_item_id"] == item_id
        ]
        return events if done(events) else None

    return await routing.wait(look, 30, f"the events of {item_id} on {hub} {queue}")


async def test_a_sibling_is_assessed_and_joins_the_level_4_childs_strategy_discussion(
    routing: RoutingUnderTest,
) -> None:
    tag = uuid.uuid4().hex[:8]
    # The sibling first: its item names an item the same statement inserts after it.
    d = decision(
        outcome="s47",
        level=4,
        rag="red",
        hub=NWC,
        subjects=[
            ex.decision_subject(f"SIB-{tag}", 3, ["R3-SIBLING"]),
            ex.decision_subject(f"BABY-{tag}", 4, ["R4-INJ-BABY"]),
        ],
    )
    assert (await routing.route(d)).outcome == "routed"
    items = {i["subject_id"]: i for i in await routing.items(d.contact_id)}
    baby, sibling = items[f"BABY-{tag}"], items[f"SIB-{tag}"]
    assert (baby["queue"], baby["joins_strategy_discussion_of"]) == ("s47", None)
    assert (sibling["queue"], sibling["outcome"], sibling["joins_strategy_discussion_of"]) == (
        "initial-assessment",
        "initial_assessment",
        baby["queue_item_id"],
    )
    (opened,) = await queue_events_until(
        routing, NWC, "initial-assessment", sibling["queue_item_id"], lambda e: len(e) == 1
    )
    assert opened["joins_strategy_discussion_of"] == baby["queue_item_id"]
    assert opened["strategy_outcome"] is None
    clocks_before = await routing.deadlines(sibling["queue_item_id"])

    # The hub records the strategy discussion on the baby's item: the sibling hears of it.
    held = queue_update(
        baby["queue_item_id"],
        "strategy_discussion_held",
        at="2024-03-13T01:00:00+00:00",
        strategy_outcome="s47_single_agency",
    )
    assert (await routing.update(held)).outcome == "applied"
    after = {i["subject_id"]: i for i in await routing.items(d.contact_id)}
    assert (after[f"SIB-{tag}"]["status"], after[f"SIB-{tag}"]["strategy_outcome"]) == (
        "open",
        "s47_single_agency",
    )
    assert await routing.history(sibling["queue_item_id"]) == [
        ("opened", None, "open"),
        ("strategy_discussion_joined", "open", "open"),
    ]
    # Its own clocks are untouched: the assessment still runs.
    assert await routing.deadlines(sibling["queue_item_id"]) == clocks_before
    events = await queue_events_until(
        routing, NWC, "initial-assessment", sibling["queue_item_id"], lambda e: len(e) == 2
    )
    assert [(e["status"], e["strategy_outcome"]) for e in events] == [
        ("open", None),
        ("open", "s47_single_agency"),
    ]


async def test_a_child_stepping_up_from_early_help_gets_a_new_assessment(
    routing: RoutingUnderTest,
) -> None:
    early_help = decision(
        outcome="single_agency", level=2, rag="green", target_agency="early_help", hub=ES
    )
    subject = early_help.subjects[0].subject_id
    await routing.route(early_help)
    (case,) = await routing.items(early_help.contact_id)
    later = decision(
        outcome="initial_assessment",
        level=3,
        rag="amber",
        hub=NWC,
        open_case=True,
        subjects=[ex.decision_subject(subject, 3, ["R3-NEGLECT"], step_up=True)],
    )
    assert (await routing.route(later)).outcome == "routed"
    (item,) = await routing.items(later.contact_id)
    # A new assessment in the decision's hub, not an update of the early-help item.
    assert (item["hub"], item["queue"], item["open_case_update"], item["step_up"]) == (
        NWC,
        "initial-assessment",
        False,
        True,
    )
    assert set(await routing.deadlines(item["queue_item_id"])) == {
        "acknowledge_referrer",
        "assessment",
    }
    (still,) = await routing.items(early_help.contact_id)
    assert (still["queue_item_id"], still["status"]) == (case["queue_item_id"], "open")
    (event,) = await queue_events_until(
        routing, NWC, "initial-assessment", item["queue_item_id"], lambda e: len(e) == 1
    )
    assert (event["step_up"], event["open_case_update"]) == (True, False)


async def test_a_contact_about_a_council_case_with_no_item_here_routes_every_child(
    routing: RoutingUnderTest,
) -> None:
    # Decision.open_case is true because of the council's case management system: routing
    # holds no item for these children. Each is routed by its own outcome; none dropped.
    tag = uuid.uuid4().hex[:8]
    d = decision(
        outcome="s47",
        level=4,
        rag="red",
        hub=ES,
        open_case=True,
        subjects=[
            ex.decision_subject(f"L4-{tag}", 4, ["R4-SEX"]),
            ex.decision_subject(f"L3-{tag}", 3, ["R3-EMO"]),
            ex.decision_subject(f"L2-{tag}", 2, ["R2-SELFHARM"], target_agency="health"),
            ex.decision_subject(f"L1-{tag}", 1, ["R1-NONE"]),
            ex.decision_subject(f"EH-{tag}", 3, ["R3-NEGLECT"], step_up=True),
        ],
    )
    assert (await routing.route(d)).outcome == "routed"
    items = {i["subject_id"]: i for i in await routing.items(d.contact_id)}
    placed = {
        s: (i["hub"], i["queue"], i["open_case_update"], i["step_up"]) for s, i in items.items()
    }
    assert placed == {
        f"L4-{tag}": (ES, "s47", True, False),
        f"L3-{tag}": (ES, "initial-assessment", True, False),
        f"L2-{tag}": (ES, "single-agency", True, False),
        f"EH-{tag}": (ES, "initial-assessment", False, True),
    }
    assert "strategy_discussion" in await routing.deadlines(items[f"L4-{tag}"]["queue_item_id"])
    assert "assessment" in await routing.deadlines(items[f"L3-{tag}"]["queue_item_id"])
    (routed,) = await routing.routed(d.decision_id)
    assert sorted(routed["queue_item_ids"]) == sorted(i["queue_item_id"] for i in items.values())
