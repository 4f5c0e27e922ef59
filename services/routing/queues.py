"""Outcome -> queue, and the queue items a decision creates — pure, no I/O."""

from __future__ import annotations

from datetime import datetime

from schemas.events import Decision, QueueItem
from services.common.calendar import WorkingCalendar
from services.common.ids import derive_id
from services.routing.deadlines import DeadlineConfig, deadlines_for

#: DOMAIN.md: level/outcome -> queue; no further action has no queue.
QUEUE_FOR_OUTCOME: dict[str, str | None] = {
    "no_further_action": None,
    "single_agency": "single-agency",
    "initial_assessment": "initial-assessment",
    "s47": "s47",
}


def queue_items_for(
    decision: Decision,
    routed_at: datetime,
    calendar: WorkingCalendar,
    config: DeadlineConfig,
) -> list[QueueItem]:
    """One open queue item per child of the decision (none for no further action)."""
    queue = QUEUE_FOR_OUTCOME[decision.outcome]
    if queue is None:
        return []
    deadlines = deadlines_for(
        queue,
        decision.rag,
        decision.target_agency,
        decision.received_at,
        decision.decided_at,
        calendar,
        config,
    )
    return [
        QueueItem(
            queue_item_id=derive_id("queue-item", decision.decision_id, subject.subject_id),
            contact_id=decision.contact_id,
            decision_id=decision.decision_id,
            subject_id=subject.subject_id,
            hub=decision.hub,
            queue=queue,
            outcome=decision.outcome,
            target_agency=decision.target_agency,
            rag=decision.rag,
            deadlines=deadlines,
            open_case_update=decision.open_case,
            status="open",
            routed_at=routed_at,
        )
        for subject in decision.subjects
    ]
