"""Outcome -> queue, one queue item per child."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas import examples as ex
from schemas.events import Decision
from services.common.calendar import WorkingCalendar
from services.routing.deadlines import load_deadline_config
from services.routing.queues import queue_items_for

CAL = WorkingCalendar()
CONFIG = load_deadline_config()
ROUTED_AT = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def decision(**overrides: object) -> Decision:
    return Decision.model_validate({**ex.decision(), **overrides})


@pytest.mark.parametrize(
    ("outcome", "level", "rag", "queue"),
    [
        ("single_agency", 2, "green", "single-agency"),
        ("initial_assessment", 3, "amber", "initial-assessment"),
        ("s47", 4, "red", "s47"),
    ],
)
def test_each_outcome_goes_to_its_queue(outcome: str, level: int, rag: str, queue: str) -> None:
    d = decision(outcome=outcome, level=level, rag=rag)
    items = queue_items_for(d, ROUTED_AT, CAL, CONFIG)
    assert [i.queue for i in items] == [queue] * len(d.subjects)
    assert all(i.deadlines for i in items)


def test_no_further_action_creates_no_queue_item() -> None:
    d = decision(outcome="no_further_action", level=1, rag="blue", target_agency=None)
    assert queue_items_for(d, ROUTED_AT, CAL, CONFIG) == []


def test_every_child_gets_its_own_item_with_a_stable_id() -> None:
    subjects = [
        {"subject_id": "s-1", "child_ref": "C-1"},
        {"subject_id": "s-2", "child_ref": "C-2"},
    ]
    d = decision(outcome="s47", level=4, rag="red", subjects=subjects)
    first = queue_items_for(d, ROUTED_AT, CAL, CONFIG)
    again = queue_items_for(d, ROUTED_AT, CAL, CONFIG)
    assert [i.subject_id for i in first] == ["s-1", "s-2"]
    assert len({i.queue_item_id for i in first}) == 2
    assert [i.queue_item_id for i in first] == [i.queue_item_id for i in again]
