"""A queue item's lifecycle: allowed steps per queue, clocks met, the ICPC clock."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from schemas import examples as ex
from schemas.events import QueueItem
from schemas.inbound import QueueUpdate
from services.common.calendar import LONDON, WorkingCalendar
from services.routing.deadlines import load_deadline_config
from services.routing.lifecycle import InvalidTransition, apply_update, join_discussion_held

CAL = WorkingCalendar()
CONFIG = load_deadline_config()

S47_CLOCKS = {
    "acknowledge_referrer": "2024-03-13T23:05:10+00:00",
    "strategy_discussion": "2024-03-13T03:05:12+00:00",
}


def item(queue: str = "s47", status: str = "open", **overrides: Any) -> QueueItem:
    deadlines = {
        "s47": S47_CLOCKS,
        "initial-assessment": {
            "acknowledge_referrer": "2024-03-13T23:05:10+00:00",
            "assessment": "2024-05-15T23:05:10+00:00",
        },
        "single-agency": {
            "acknowledge_referrer": "2024-03-13T23:05:10+00:00",
            "single_agency_acknowledgement": "2024-03-15T23:05:12+00:00",
        },
    }[queue]
    return QueueItem.model_validate(
        ex.queue_item(queue=queue, status=status, deadlines=deadlines, **overrides)
    )


def update(status: str, **overrides: Any) -> QueueUpdate:
    extra: dict[str, Any] = {}
    if status == "strategy_discussion_held":
        extra["strategy_outcome"] = "s47_joint"
    if status == "closed":
        extra["closure_reason"] = "RC8"
    return QueueUpdate.model_validate(ex.queue_update(status=status, **{**extra, **overrides}))


@pytest.mark.parametrize(
    ("queue", "steps"),
    [
        ("s47", ["acknowledged", "strategy_discussion_held", "assessment_completed", "closed"]),
        ("s47", ["strategy_discussion_held", "closed"]),
        ("s47", ["strategy_discussion_held", "icpc_held", "closed"]),
        (
            "s47",
            [
                "acknowledged",
                "strategy_discussion_held",
                "assessment_completed",
                "icpc_held",
                "closed",
            ],
        ),
        ("initial-assessment", ["acknowledged", "assessment_completed", "closed"]),
        ("initial-assessment", ["assessment_completed", "closed"]),
        ("single-agency", ["acknowledged", "closed"]),
        ("single-agency", ["closed"]),
    ],
)
def test_the_usual_paths_are_allowed(queue: str, steps: list[str]) -> None:
    current = item(queue)
    for status in steps:
        current = apply_update(current, update(status), CONFIG, CAL).item
        assert current.status == status
    assert current.closure_reason == "RC8"


@pytest.mark.parametrize(
    ("queue", "status", "step", "message"),
    [
        ("s47", "closed", "closed", "queue item is closed; it cannot become closed"),
        ("s47", "closed", "acknowledged", "queue item is closed"),
        ("s47", "acknowledged", "acknowledged", "acknowledged item cannot become acknowledged"),
        ("s47", "open", "assessment_completed", "open item cannot become assessment_completed"),
        (
            "s47",
            "strategy_discussion_held",
            "strategy_discussion_held",
            "strategy_discussion_held item cannot become strategy_discussion_held",
        ),
        (
            "initial-assessment",
            "open",
            "strategy_discussion_held",
            "an item on the initial-assessment queue cannot become strategy_discussion_held",
        ),
        (
            "single-agency",
            "acknowledged",
            "assessment_completed",
            "an item on the single-agency queue cannot become assessment_completed",
        ),
        (
            "initial-assessment",
            "assessment_completed",
            "acknowledged",
            "assessment_completed item cannot become acknowledged",
        ),
        ("s47", "acknowledged", "icpc_held", "acknowledged item cannot become icpc_held"),
        ("s47", "icpc_held", "icpc_held", "icpc_held item cannot become icpc_held"),
        (
            "initial-assessment",
            "assessment_completed",
            "icpc_held",
            "an item on the initial-assessment queue cannot become icpc_held",
        ),
    ],
)
def test_invalid_steps_are_refused_with_a_reason(
    queue: str, status: str, step: str, message: str
) -> None:
    with pytest.raises(InvalidTransition, match=message):
        apply_update(item(queue, status), update(step), CONFIG, CAL)


def test_acknowledging_meets_the_acknowledgement_clocks_only() -> None:
    step = apply_update(item("single-agency"), update("acknowledged"), CONFIG, CAL)
    assert step.met == {"acknowledge_referrer", "single_agency_acknowledgement"}
    assert step.previous_status == "open"
    assert step.started == {}


def test_strategy_discussion_meets_its_clock_and_starts_the_icpc_clock() -> None:
    # Held Tue 13 Apr 2027 11:00 London: ICPC 15 working days later, across the Early May
    # bank holiday (Mon 3 May): 14-16 Apr = 1..3, 19-23 = 4..8, 26-30 = 9..13, Tue 4 May =
    # 14, Wed 5 May = 15.
    held = datetime(2027, 4, 13, 11, 0, tzinfo=LONDON)
    step = apply_update(
        item("s47", "acknowledged"),
        update("strategy_discussion_held", at=held.isoformat()),
        CONFIG,
        CAL,
    )
    assert step.met == {"acknowledge_referrer", "strategy_discussion"}
    assert step.started == {"icpc": datetime(2027, 5, 5, 11, 0, tzinfo=LONDON)}
    assert step.item.deadlines["icpc"] == datetime(2027, 5, 5, 11, 0, tzinfo=LONDON)
    assert step.item.strategy_outcome == "s47_joint"
    assert step.item.status_at == held
    # The clocks the item had keep their times.
    assert step.item.deadlines["strategy_discussion"] == item().deadlines["strategy_discussion"]


def test_no_s47_outcome_starts_no_icpc_clock() -> None:
    step = apply_update(
        item("s47"), update("strategy_discussion_held", strategy_outcome="no_s47"), CONFIG, CAL
    )
    assert step.started == {}
    assert "icpc" not in step.item.deadlines


def test_closing_meets_every_clock_the_item_has() -> None:
    held = apply_update(item("s47"), update("strategy_discussion_held"), CONFIG, CAL).item
    step = apply_update(held, update("closed"), CONFIG, CAL)
    assert step.met == {"acknowledge_referrer", "strategy_discussion", "icpc"}
    assert step.item.status == "closed"
    assert step.item.strategy_outcome == "s47_joint"  # kept from the discussion


def test_holding_the_icpc_meets_its_clock() -> None:
    held = datetime(2027, 4, 13, 11, 0, tzinfo=LONDON)
    discussed = apply_update(
        item("s47"), update("strategy_discussion_held", at=held.isoformat()), CONFIG, CAL
    ).item
    conference = datetime(2027, 4, 30, 10, 0, tzinfo=LONDON)
    step = apply_update(discussed, update("icpc_held", at=conference.isoformat()), CONFIG, CAL)
    assert step.met == {"icpc"}
    assert step.item.status == "icpc_held"
    assert step.item.status_at == conference
    assert step.item.strategy_outcome == "s47_joint"  # kept from the discussion
    assert step.started == {}


def test_no_icpc_is_held_after_a_discussion_that_decided_no_s47() -> None:
    discussed = apply_update(
        item("s47"), update("strategy_discussion_held", strategy_outcome="no_s47"), CONFIG, CAL
    ).item
    with pytest.raises(InvalidTransition, match="no ICPC follows strategy outcome no_s47"):
        apply_update(discussed, update("icpc_held"), CONFIG, CAL)


def test_an_item_awaiting_practitioners_can_only_be_acknowledged() -> None:
    held = item("s47", awaiting_practitioners=True)
    for step in ("strategy_discussion_held", "closed"):
        with pytest.raises(InvalidTransition, match="awaits confirmation by police"):
            apply_update(held, update(step), CONFIG, CAL)
    acknowledged = apply_update(held, update("acknowledged"), CONFIG, CAL)
    assert acknowledged.item.status == "acknowledged"
    assert acknowledged.item.awaiting_practitioners is True  # still held


# --- a sibling joining the strategy discussion (R3-SIBLING) --------------------------------


def test_a_sibling_takes_the_outcome_of_the_discussion_it_joins_and_keeps_the_rest() -> None:
    baby = item()
    held = apply_update(baby, update("strategy_discussion_held"), CONFIG, CAL).item
    sibling = item(
        "initial-assessment",
        "acknowledged",
        queue_item_id="QI-SIBLING",
        subject_id="SUBJ-SIBLING",
        outcome="initial_assessment",
        rag="amber",
        joins_strategy_discussion_of=baby.queue_item_id,
    )
    joined = join_discussion_held(sibling, held)
    assert joined is not None
    assert joined.strategy_outcome == "s47_joint"
    # Its own status, time and clocks: the assessment still runs.
    assert joined.model_dump(exclude={"strategy_outcome"}) == sibling.model_dump(
        exclude={"strategy_outcome"}
    )
    # Once it has the outcome, the sibling's own steps keep it.
    completed = apply_update(joined, update("assessment_completed"), CONFIG, CAL).item
    assert completed.strategy_outcome == "s47_joint"


def test_a_closed_item_or_one_joining_another_discussion_is_left_alone() -> None:
    held = apply_update(item(), update("strategy_discussion_held"), CONFIG, CAL).item
    other = item("initial-assessment", joins_strategy_discussion_of="QI-ANOTHER")
    closed = item("initial-assessment", "closed", joins_strategy_discussion_of=held.queue_item_id)
    assert join_discussion_held(other, held) is None
    assert join_discussion_held(closed, held) is None
