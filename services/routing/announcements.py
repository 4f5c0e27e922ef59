"""What routing announces — pure, no I/O, no clock reads: each event a step emits, with
its topic, key, id and time, built by the planners (:mod:`services.routing.decisions`,
:mod:`services.routing.updates`) so that the app only enqueues them.

Every id is derived from what the event announces (an item and the status it reached, a
decision's routing, a clock's breach), never drawn: a replay or a retried batch emits
the same ids, which consumers de-duplicate on. Keys keep each child's queue events, a
contact's routing and an item's breaches on one partition each, in the order emitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas.base import ContractModel
from schemas.events import Decision, QueueItem, Routed, SlaBreach
from services.common.ids import derive_id
from services.common.topics import ROUTED, SLA_BREACHES, queue_topic
from services.routing.queues import RoutingPlan
from services.routing.rows import DueBreach


@dataclass(frozen=True)
class Announcement:
    """One event a step emits, as the app hands it to the outbox."""

    topic: str
    """The contract topic name (the runtime maps it to the deployment's)."""
    key: str | None
    event_id: str
    data: ContractModel
    time: datetime
    opens: str | None = None
    """The queue item whose opening this announces: emitted only when the record inserted
    it (an item another worker inserted first is that worker's to announce)."""


def status_event_id(queue_item_id: str, status: str) -> str:
    """Id of the event announcing that an item reached ``status`` (each happens once)."""
    return derive_id("queue-item-status", queue_item_id, status)


def item_opened(item: QueueItem) -> Announcement:
    """An item the decision opens, on its hub's queue, under the item's own id."""
    return Announcement(
        queue_topic(item.hub, item.queue),
        item.subject_id,
        item.queue_item_id,
        item,
        item.routed_at,
        opens=item.queue_item_id,
    )


def item_reached(item: QueueItem, status: str, at: datetime) -> Announcement:
    """An item, as it is once it reached ``status`` (closed, released, a lifecycle step, a
    strategy discussion joined), on its hub's queue."""
    return Announcement(
        queue_topic(item.hub, item.queue),
        item.subject_id,
        status_event_id(item.queue_item_id, status),
        item,
        at,
    )


def routed_event(decision: Decision, plan: RoutingPlan, now: datetime) -> Routed:
    """The mash.routed.v1 event announcing where ``decision`` put its children."""
    return Routed(
        routed_id=derive_id("routed", decision.decision_id),
        contact_id=decision.contact_id,
        contact_reference=decision.contact_reference,
        decision_id=decision.decision_id,
        decision_source=decision.source,
        level=decision.level,
        outcome=decision.outcome,
        rag=decision.rag,
        target_agency=decision.target_agency,
        hub=plan.hub,
        queue=plan.queue,
        queue_item_ids=plan.item_ids,
        contact_source=decision.contact_source,
        received_at=decision.received_at,
        decided_at=decision.decided_at,
        routed_at=now,
    )


def routed(decision: Decision, plan: RoutingPlan, now: datetime) -> Announcement:
    """The decision's routing, keyed by its contact (notifications reads it per contact)."""
    event = routed_event(decision, plan, now)
    return Announcement(ROUTED, decision.contact_id, event.routed_id, event, now)


def breach_event(claimed: DueBreach, now: datetime) -> SlaBreach:
    """The mash.sla.breaches.v1 event of a clock claimed as run out at ``now``."""
    return SlaBreach(
        breach_id=claimed.breach_id,
        queue_item_id=claimed.queue_item_id,
        deadline=claimed.deadline,
        due_at=claimed.due_at,
        breached_at=now,
        hub=claimed.hub,
        queue=claimed.queue,
    )


def breached(claimed: DueBreach, now: datetime) -> Announcement:
    """A claimed clock's breach, keyed by its item."""
    breach = breach_event(claimed, now)
    return Announcement(SLA_BREACHES, breach.queue_item_id, breach.breach_id, breach, now)
