"""Clocks that can be met, on the real broker and database, with routing's clock in a file
the test moves (issue 13, found items 1, 7 and 8):

- an s47 decision held by the hub's confirmation gate is on the hub's s47 queue, awaiting
  practitioners, with its screening decision clock: one breach if it is missed, met when
  police and children's social care have confirmed it and the routing takes effect — with
  routing alone, and end to end from a contact through screening (gate on) to routing;
- the ICPC clock is met by ``icpc_held``, not only by closing the item;
- the acknowledge-referrer clock is met by the automatic acknowledgement notifications
  issues, at the time it was issued, whether it went out before or after the routing.

The held decisions are the example red s47 (received Tue 12 Mar 2024 23:05:10Z, decided
23:05:12Z): screening decision due 4 clock hours after receipt, 13 Mar 03:05:10Z; strategy
discussion 03:05:12Z; acknowledgement one working day after receipt, 13 Mar 23:05:10Z.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas import examples as ex
from schemas.events import Contact, Decision
from schemas.inbound import PractitionerDecision
from services.common.ids import derive_id
from services.common.topics import CONTACTS, DECISIONS, PRACTITIONER_DECISIONS, ROUTED
from services.screening.practitioner import held_event_id
from tests.integration.harness import Handled
from tests.integration.routing_harness import (
    RoutingUnderTest,
    breach_pairs,
    decision,
    queue_update,
)
from tests.integration.screening_harness import child, police_contact
from tests.support import Record, Stack, fetch, wait_until

pytestmark = pytest.mark.integration

START = datetime(2024, 3, 12, 23, 6, tzinfo=UTC)
SCREENING_DUE = datetime(2024, 3, 13, 3, 5, 10, tzinfo=UTC)
NWC = "north-west-central"
HELD = "mash_queue_items_awaiting_practitioners"


@pytest.fixture
async def routing(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RoutingUnderTest]:
    harness = await RoutingUnderTest.start(stack, tmp_path_factory.mktemp("clocks-met"), START)
    yield harness
    await harness.stop()


def has(item_id: str, deadline: str) -> Callable[[list[Record]], bool]:
    return lambda records: (item_id, deadline) in breach_pairs(records)


def released(held: Decision) -> Decision:
    """The held decision as screening publishes it once police and CSC have confirmed it."""
    return held.model_copy(update={"awaiting_practitioners": False})


async def hold(routing: RoutingUnderTest, held: Decision) -> Handled:
    """Publish a held decision as screening does (its own event id) and wait for routing."""
    sent = await routing.send_decision(held, event_id=held_event_id(held.decision_id))
    return await routing.handled(DECISIONS, *sent)


async def only_item(routing: RoutingUnderTest, contact_id: str) -> dict[str, Any]:
    (item,) = await routing.items(contact_id)
    return item


async def routed_events(routing: RoutingUnderTest, decision_id: str) -> list[dict[str, Any]]:
    """The Routed events routing enqueued for a decision (the outbox: none means none)."""
    return await routing.outbox_events(ROUTED, derive_id("routed", decision_id))


async def held_gauge(routing: RoutingUnderTest, expected: float) -> None:
    async def shows() -> bool:
        return routing.metric(HELD, hub=NWC) == expected

    await wait_until(shows, timeout=30, what=f"{HELD} at {expected}")


# --- item 1: a held decision is on the hub's queue with its clock -------------------------


async def test_a_held_s47_is_on_the_queue_with_its_clock_and_breaches_once_if_missed(
    routing: RoutingUnderTest,
) -> None:
    late, on_time = decision(awaiting_practitioners=True), decision(awaiting_practitioners=True)
    for held in (late, on_time):
        assert (await hold(routing, held)).outcome == "awaiting_practitioners"
    late_id = (await only_item(routing, late.contact_id))["queue_item_id"]
    on_time_id = (await only_item(routing, on_time.contact_id))["queue_item_id"]
    item = await only_item(routing, late.contact_id)
    assert (item["queue"], item["status"], item["awaiting_practitioners"]) == ("s47", "open", True)
    clocks = await routing.deadlines(late_id)
    assert clocks["screening_decision"]["due_at"] == SCREENING_DUE
    assert set(clocks) == {"screening_decision", "acknowledge_referrer", "strategy_discussion"}
    # Visible to the hub (its queue topic and the gauge), but not routed: nobody outside the
    # hub hears of an outcome that has not taken effect.
    assert await routed_events(routing, late.decision_id) == []
    await routing.outbox_drained()
    announced = [
        r.json()
        for r in await routing.queue_events(NWC, "s47")
        if r.json()["queue_item_id"] == late_id
    ]
    assert [e["awaiting_practitioners"] for e in announced] == [True]
    assert "screening_decision" in announced[0]["deadlines"]
    await held_gauge(routing, 2)
    # The s47 work waits for the confirmation.
    refused = await routing.update(queue_update(late_id, "strategy_discussion_held"))
    assert refused.dead_letter == "invalid_transition"

    # Police and CSC confirm one at 01:00: the routing takes effect and meets the clock.
    routing.set_clock(datetime(2024, 3, 13, 1, 0, tzinfo=UTC))
    assert (await routing.route(released(on_time))).outcome == "released"
    item = await only_item(routing, on_time.contact_id)
    assert (item["queue_item_id"], item["awaiting_practitioners"]) == (on_time_id, False)
    met = (await routing.deadlines(on_time_id))["screening_decision"]
    assert (met["met_by"], met["met_at"]) == ("released", datetime(2024, 3, 13, 1, 0, tzinfo=UTC))
    assert len(await routed_events(routing, on_time.decision_id)) == 1
    await held_gauge(routing, 1)

    # Past the screening decision's due time (not yet the strategy discussion's): the
    # other one breaches, once.
    routing.set_clock(datetime(2024, 3, 13, 3, 5, 11, tzinfo=UTC))
    records = await routing.breaches_until(has(late_id, "screening_decision"))
    assert breach_pairs(records) == [(late_id, "screening_decision")]

    # Its late release meets the clock late: no second breach.
    assert (await routing.route(released(late))).outcome == "released"
    clock = (await routing.deadlines(late_id))["screening_decision"]
    assert clock["met_by"] == "released"
    assert clock["breach_id"] is not None
    await held_gauge(routing, 0)
    # A replay of the hold or of the release changes nothing.
    again = await routing.send_decision(late, event_id=f"{held_event_id(late.decision_id)}-again")
    assert (await routing.handled(DECISIONS, *again)).outcome == "duplicate_decision"
    again = await routing.send_decision(released(late), event_id=f"{late.decision_id}-again")
    assert (await routing.handled(DECISIONS, *again)).outcome == "duplicate_decision"

    # Later scans (the strategy discussions breach now) add no screening decision breach.
    routing.set_clock(datetime(2024, 3, 13, 3, 10, tzinfo=UTC))
    records = await routing.breaches_until(
        lambda rs: (
            has(late_id, "strategy_discussion")(rs) and has(on_time_id, "strategy_discussion")(rs)
        )
    )
    assert [p for p in breach_pairs(records) if p[1] == "screening_decision"] == [
        (late_id, "screening_decision")
    ]
    assert len(await routed_events(routing, late.decision_id)) == 1


async def test_held_by_screening_shown_by_routing_and_released_by_the_practitioners(
    routing: RoutingUnderTest,
) -> None:
    """End to end: a contact screened with the gate on is held by screening, shown on the
    hub's s47 queue by routing, and takes effect when police and CSC confirm it."""
    # Screening on the real time, not routing's file clock: its decision is made now.
    routing.processes.start(
        "screening",
        {
            "MASH_METRICS_PORT": "0",
            "MASH_SCREENING_S47_CONFIRMATION": "true",
            "MASH_CLOCK_FILE": "",
        },
    )
    tag = derive_id("held-e2e", routing.world.prefix)[:8]
    contact_id, key = f"CON-{tag}", f"HH-{tag}"
    # Received 12 Mar 22:40Z (T0 + 1 h): screening decision due 13 Mar 02:40Z.
    contact = police_contact(contact_id, subject_key=key, children=[child(f"S-{tag}", key)])
    await routing.send(CONTACTS, contact, key=key, event_id=f"evt-{contact_id}")

    async def held_item() -> dict[str, Any] | None:
        items = await routing.items(contact_id)
        return items[0] if items and items[0]["awaiting_practitioners"] else None

    item = await routing.wait(held_item, 90, "the held item on the s47 queue")
    item_id = item["queue_item_id"]
    assert (item["queue"], item["outcome"]) == ("s47", "s47")
    clock = (await routing.deadlines(item_id))["screening_decision"]
    assert clock["due_at"] == datetime(2024, 3, 13, 2, 40, tzinfo=UTC)
    assert await routed_events(routing, item["decision_id"]) == []

    for agency in ("police", "childrens_social_care"):
        confirm = PractitionerDecision.model_validate(
            ex.practitioner_decision(
                contact_id=contact_id, kind="confirm", outcome=None, agency=agency
            )
        )
        await routing.send(
            PRACTITIONER_DECISIONS, confirm, key=contact_id, event_id=f"{tag}-{agency}"
        )

    async def in_effect() -> dict[str, Any] | None:
        (now,) = await routing.items(contact_id)
        return None if now["awaiting_practitioners"] else now

    item = await routing.wait(in_effect, 90, "the routing to take effect")
    assert item["queue_item_id"] == item_id  # the same item: the hub's work carries on
    clock = (await routing.deadlines(item_id))["screening_decision"]
    assert (clock["met_by"], clock["met_at"]) == ("released", START)
    assert len(await routed_events(routing, item["decision_id"])) == 1

    # Past every due time but the strategy discussion's (from the decision, made now):
    # the acknowledgement breaches (no notifications here), the screening decision never.
    routing.set_clock(datetime(2024, 3, 14, 9, 0, tzinfo=UTC))
    records = await routing.breaches_until(has(item_id, "acknowledge_referrer"))
    assert breach_pairs(records) == [(item_id, "acknowledge_referrer")]


# --- item 8: the ICPC clock is met by the conference ----------------------------------------


async def test_holding_the_icpc_meets_its_clock(routing: RoutingUnderTest) -> None:
    held_on_time, missed = decision(), decision()
    for d in (held_on_time, missed):
        assert (await routing.route(d)).outcome == "routed"
    on_time_id = (await only_item(routing, held_on_time.contact_id))["queue_item_id"]
    missed_id = (await only_item(routing, missed.contact_id))["queue_item_id"]
    # Strategy discussions Wed 13 Mar 01:00Z: ICPC due 15 working days later, Fri 5 Apr
    # 01:00 London (00:00Z): Good Friday 29 Mar and Easter Monday 1 Apr are bank holidays.
    for item_id in (on_time_id, missed_id):
        discussed = queue_update(
            item_id, "strategy_discussion_held", at="2024-03-13T01:00:00+00:00"
        )
        assert (await routing.update(discussed)).outcome == "applied"
    conference = queue_update(on_time_id, "icpc_held", at="2024-03-27T10:00:00+00:00")
    assert (await routing.update(conference)).outcome == "applied"
    item = await only_item(routing, held_on_time.contact_id)
    assert item["status"] == "icpc_held"
    icpc = (await routing.deadlines(on_time_id))["icpc"]
    assert icpc["met_by"] == "icpc_held"
    assert icpc["met_at"] == datetime(2024, 3, 27, 10, 0, tzinfo=UTC)
    assert await routing.history(on_time_id) == [
        ("opened", None, "open"),
        ("strategy_discussion_held", "open", "strategy_discussion_held"),
        ("icpc_held", "strategy_discussion_held", "icpc_held"),
    ]
    # The item can still be closed afterwards.
    closed = queue_update(on_time_id, "closed", at="2024-03-28T10:00:00+00:00")
    assert (await routing.update(closed)).outcome == "applied"

    routing.set_clock(datetime(2024, 4, 5, 9, 0, tzinfo=UTC))
    records = await routing.breaches_until(has(missed_id, "icpc"))
    assert [p for p in breach_pairs(records) if p[1] == "icpc"] == [(missed_id, "icpc")]


# --- item 7: the acknowledge-referrer clock is met by the acknowledgement --------------------


@pytest.fixture
async def with_notifications(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RoutingUnderTest]:
    """Routing at the real time (notifications stamps its acknowledgements with it), and
    notifications running in the same world."""
    harness = await RoutingUnderTest.start(stack, tmp_path_factory.mktemp("acknowledged"))
    harness.processes.start("notifications", {"MASH_METRICS_PORT": "0"})
    yield harness
    await harness.stop()


async def acknowledged_at(routing: RoutingUnderTest, contact_id: str) -> datetime:
    """Wait until notifications has acknowledged the contact's referrer; when it did."""

    async def issued() -> datetime | None:
        rows = await fetch(
            routing.world.dsn,
            "SELECT issued_at FROM feedback WHERE contact_id = $1 AND kind = 'acknowledgement'",
            contact_id,
        )
        return rows[0]["issued_at"] if rows else None

    return await routing.wait(issued, 90, f"the acknowledgement of {contact_id}")


async def acknowledgement_clock(
    routing: RoutingUnderTest, contact_id: str, *, met: bool
) -> dict[str, Any]:
    async def look() -> dict[str, Any] | None:
        items = await routing.items(contact_id)
        if not items:
            return None
        clock = (await routing.deadlines(items[0]["queue_item_id"]))["acknowledge_referrer"]
        return clock if (clock["met_at"] is not None) == met else None

    return await routing.wait(look, 90, f"the acknowledgement clock of {contact_id}")


async def test_the_automatic_acknowledgement_meets_the_acknowledge_referrer_clock(
    with_notifications: RoutingUnderTest,
) -> None:
    routing = with_notifications
    received = datetime.now(UTC) - timedelta(minutes=5)
    times = {
        "received_at": received.isoformat(),
        "decided_at": (received + timedelta(seconds=2)).isoformat(),
    }

    # Acknowledged when the contact was recorded, before it was routed: met at routing.
    first = decision(**times)
    contact = Contact.model_validate(
        ex.contact(
            contact_id=first.contact_id,
            contact_reference=first.contact_reference,
            subject_key=first.subjects[0].subject_id,
            received_at=received.isoformat(),
            recorded_at=(received + timedelta(seconds=1)).isoformat(),
            source=ex.source_coordinates(
                event_id=f"evt-{first.contact_id}", reference=f"WM-{first.contact_id}"
            ),
            children=[{**ex.contact()["children"][0], "subject_id": first.subjects[0].subject_id}],
        )
    )
    await routing.send(CONTACTS, contact, key=contact.subject_key, event_id=contact.contact_id)
    issued = await acknowledged_at(routing, first.contact_id)
    assert (await routing.route(first)).outcome == "routed"
    clock = await acknowledgement_clock(routing, first.contact_id, met=True)
    assert (clock["met_by"], clock["met_at"]) == ("referrer_acknowledged", issued)

    # Routed before its contact reached notifications: notifications acknowledges the
    # referrer from the routing, and routing's scan meets the clock at that time.
    second = decision(**times)
    assert (await routing.route(second)).outcome == "routed"
    issued = await acknowledged_at(routing, second.contact_id)
    clock = await acknowledgement_clock(routing, second.contact_id, met=True)
    assert (clock["met_by"], clock["met_at"]) == ("referrer_acknowledged", issued)
    assert clock["breached_at"] is None
