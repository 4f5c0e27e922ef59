"""The plans say which events routing emits, with their ids, topics, keys and times: the app
only enqueues them (:mod:`services.routing.announcements`)."""

from __future__ import annotations

from schemas.events import QueueItem, Routed, SlaBreach
from services.common.ids import derive_id
from services.routing.announcements import (
    Announcement,
    breached,
    item_opened,
    item_reached,
    status_event_id,
)
from services.routing.decisions import breaches_by_step
from services.routing.rows import DueBreach, breach_id
from tests.unit.routing.test_decisions_batch import (
    NOW,
    OUTCOMES,
    at_once,
    decision,
    held,
    released,
)
from tests.unit.routing.test_updates_batch import (
    NOWS,
    TIMES,
    Lifecycle,
    apply,
    items,
    update,
)


def shape(events: list[Announcement]) -> list[tuple[str, str | None, str, str]]:
    """(topic, key, event id, event type) of each announcement, in order."""
    return [(e.topic, e.key, e.event_id, type(e.data).__name__) for e in events]


def test_a_routed_decision_announces_its_items_then_its_routing() -> None:
    (step,) = at_once([decision("D1", "C1", ["X", "Y"], as_=OUTCOMES[2])])[0]
    x, y = step.opened
    assert shape(step.announcements) == [
        ("mash.queue.north-west-central.initial-assessment.v1", "X", x.queue_item_id, "QueueItem"),
        ("mash.queue.north-west-central.initial-assessment.v1", "Y", y.queue_item_id, "QueueItem"),
        ("mash.routed.v1", "C1", derive_id("routed", "D1"), "Routed"),
    ]
    assert [e.opens for e in step.announcements] == [x.queue_item_id, y.queue_item_id, None]
    assert [e.time for e in step.announcements] == [NOW, NOW, NOW]
    routed = step.announcements[-1].data
    assert isinstance(routed, Routed)
    assert (routed.routed_id, routed.queue_item_ids, routed.routed_at) == (
        derive_id("routed", "D1"),
        [x.queue_item_id, y.queue_item_id],
        NOW,
    )


def test_an_override_announces_the_closed_item_before_the_new_one() -> None:
    first = decision("D1", "C1", ["X"], as_=OUTCOMES[2])
    override = decision("D1-P", "C1", ["X"], as_=OUTCOMES[1], source="practitioner")
    _, moved = at_once([first, override])[0]
    (closing,) = moved.closings
    (new,) = moved.opened
    assert [(e.event_id, e.data) for e in moved.announcements[:2]] == [
        (status_event_id(closing.item.queue_item_id, "closed"), closing.item),
        (new.queue_item_id, new),
    ]
    assert moved.announcements[0].opens is None
    assert moved.announcements[2].event_id == derive_id("routed", "D1-P")


def test_a_held_decision_announces_its_items_but_no_routing_until_released() -> None:
    d = held("D1", "C1", ["X"])
    hold, release = at_once([d, released(d)])[0]
    (item,) = hold.opened
    assert shape(hold.announcements) == [
        ("mash.queue.north-west-central.s47.v1", "X", item.queue_item_id, "QueueItem")
    ]
    (now_effective,) = release.released
    assert shape(release.announcements) == [
        (
            "mash.queue.north-west-central.s47.v1",
            "X",
            status_event_id(item.queue_item_id, "released"),
            "QueueItem",
        ),
        ("mash.routed.v1", "C1", derive_id("routed", "D1"), "Routed"),
    ]
    assert release.announcements[0].data == now_effective


def test_decisions_set_aside_announce_nothing() -> None:
    d = decision("D1", "C1", ["X"])
    steps = at_once([d, d, decision("D2", "C2", ["Y"], hub="nowhere")])[0]
    assert [s.verdict for s in steps] == ["routed", "duplicate_decision", "unknown_hub"]
    assert [len(s.announcements) for s in steps] == [2, 0, 0]


def test_each_decision_gets_the_breaches_of_the_items_it_opened() -> None:
    steps = at_once([decision("D1", "C1", ["X"]), decision("D2", "C2", ["Y"])])[0]
    (x,) = steps[0].opened
    (y,) = steps[1].opened
    due = [claim(y, "strategy_discussion"), claim(x, "screening_decision"), claim(y, "icpc")]
    assert breaches_by_step(steps, due) == [[due[1]], [due[0], due[2]]]


def claim(item: QueueItem, deadline: str) -> DueBreach:
    return DueBreach(
        item.queue_item_id,
        deadline,
        item.routed_at,
        item.hub,
        item.queue,
        breach_id(item.queue_item_id, deadline),
    )


def test_a_breach_is_announced_under_its_clocks_id_keyed_by_its_item() -> None:
    (x,) = at_once([decision("D1", "C1", ["X"])])[0][0].opened
    event = breached(claim(x, "strategy_discussion"), NOW)
    assert (event.topic, event.key, event.event_id, event.time) == (
        "mash.sla.breaches.v1",
        x.queue_item_id,
        breach_id(x.queue_item_id, "strategy_discussion"),
        NOW,
    )
    assert isinstance(event.data, SlaBreach)
    assert event.data.breached_at == NOW


def test_an_update_announces_the_items_status_then_joined_siblings_then_breaches() -> None:
    s47 = items()[0].queue_item_id
    (step,) = apply(
        Lifecycle.routed(),
        [("E1", update(s47, "strategy_discussion_held", TIMES[1], outcome="no_s47"))],
        NOWS[2],
    )
    assert step.transition is not None
    (joined,) = step.joined
    assert step.breaches  # every clock had run out by then
    assert step.announcements == [
        item_reached(step.transition.item, "strategy_discussion_held", NOWS[2]),
        item_reached(joined, "strategy_discussion_joined", NOWS[2]),
        *(breached(b, NOWS[2]) for b in step.breaches),
    ]
    assert step.announcements[0].event_id == status_event_id(s47, "strategy_discussion_held")


def test_a_refused_update_announces_nothing() -> None:
    (step,) = apply(
        Lifecycle.routed(), [("E1", update("QI-NOBODY", "acknowledged", TIMES[0]))], NOWS[0]
    )
    assert step.unknown_item
    assert step.announcements == []


def test_an_opened_item_is_announced_under_its_own_id_when_routed() -> None:
    (x,) = at_once([decision("D1", "C1", ["X"])])[0][0].opened
    assert item_opened(x) == Announcement(
        "mash.queue.north-west-central.s47.v1",
        "X",
        x.queue_item_id,
        x,
        x.routed_at,
        x.queue_item_id,
    )
