"""A queue item's lifecycle (mash.queue-updates.v1) — pure, no I/O, no clock reads.

The hub's case-work system reports each step; this module says whether the step is
allowed from where the item is, which statutory clocks it meets, and which clock it
starts (the ICPC clock, from the time the strategy discussion was held; ``icpc_held``
meets it).

An item whose s47 routing awaits practitioners (the hub's confirmation gate) is on the
queue so the hold is seen and its clock runs, but the s47 work has not been decided yet:
until police and children's social care confirm it (or a practitioner overrides it, which
moves the item) the hub can only acknowledge it.

A sibling's item that joins the strategy discussion of an s47 item (R3-SIBLING,
``joins_strategy_discussion_of``) hears of it when the discussion is recorded as held
(:func:`join_discussion_held`): the hub working the sibling sees that the discussion took
place and its outcome. That is all: the sibling's status and clocks are its own queue's
(its assessment still runs), and s47 enquiries for the sibling are a practitioner's
decision (an override, which moves the sibling's item to s47).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from schemas.events import QueueItem
from schemas.inbound import QueueUpdate
from services.common.calendar import WorkingCalendar
from services.routing.deadlines import ICPC, DeadlineConfig, clocks_met_by, icpc_deadline

_NOT_CLOSED = frozenset(
    {"open", "acknowledged", "strategy_discussion_held", "assessment_completed", "icpc_held"}
)

#: queue -> new status -> the statuses it may follow. A step not listed is refused.
#: s47 follows Working Together: strategy discussion, then the s47 enquiry (assessment),
#: then the initial child protection conference (ICPC) where the discussion decided on s47
#: enquiries (see :data:`ICPC_OUTCOMES`); a single-agency item is worked by another agency,
#: so it has no assessment here.
TRANSITIONS: Mapping[str, Mapping[str, frozenset[str]]] = {
    "single-agency": {
        "acknowledged": frozenset({"open"}),
        "closed": _NOT_CLOSED,
    },
    "initial-assessment": {
        "acknowledged": frozenset({"open"}),
        "assessment_completed": frozenset({"open", "acknowledged"}),
        "closed": _NOT_CLOSED,
    },
    "s47": {
        "acknowledged": frozenset({"open"}),
        "strategy_discussion_held": frozenset({"open", "acknowledged"}),
        "assessment_completed": frozenset({"strategy_discussion_held"}),
        "icpc_held": frozenset({"strategy_discussion_held", "assessment_completed"}),
        "closed": _NOT_CLOSED,
    },
}

#: What a practitioner may do with an item awaiting practitioners' confirmation.
WHILE_AWAITING_PRACTITIONERS = frozenset({"acknowledged"})

#: Strategy outcomes after which an initial child protection conference may follow.
ICPC_OUTCOMES = frozenset({"s47_single_agency", "s47_joint"})


class InvalidTransition(ValueError):
    """The update asks for a step the item's queue and status do not allow."""


@dataclass(frozen=True)
class Transition:
    """The effect of one valid update on an item."""

    item: QueueItem
    """The item after the update (status, time, codes, and any new deadline)."""
    previous_status: str
    met: frozenset[str]
    """Clocks of the item this step meets."""
    started: Mapping[str, datetime]
    """Clocks this step starts (name -> due time)."""


def apply_update(
    item: QueueItem, update: QueueUpdate, config: DeadlineConfig, calendar: WorkingCalendar
) -> Transition:
    """Apply ``update`` to ``item``; raise :class:`InvalidTransition` if it is not allowed."""
    allowed = TRANSITIONS.get(item.queue, {}).get(update.status)
    if item.status == "closed":
        raise InvalidTransition(f"queue item is closed; it cannot become {update.status}")
    if allowed is None:
        raise InvalidTransition(f"an item on the {item.queue} queue cannot become {update.status}")
    if item.status not in allowed:
        raise InvalidTransition(f"{item.status} item cannot become {update.status}")
    if item.awaiting_practitioners and update.status not in WHILE_AWAITING_PRACTITIONERS:
        raise InvalidTransition(
            f"item awaits confirmation by police and children's social care; it cannot become "
            f"{update.status} until they confirm it or a practitioner overrides the decision"
        )
    if update.status == "icpc_held" and item.strategy_outcome not in ICPC_OUTCOMES:
        raise InvalidTransition(
            f"no ICPC follows strategy outcome {item.strategy_outcome}; it cannot become icpc_held"
        )
    started: dict[str, datetime] = {}
    if update.status == "strategy_discussion_held" and update.strategy_outcome in ICPC_OUTCOMES:
        started[ICPC] = icpc_deadline(update.at, calendar, config)
    updated = item.model_copy(
        update={
            "status": update.status,
            "status_at": update.at,
            "strategy_outcome": update.strategy_outcome or item.strategy_outcome,
            "closure_reason": update.closure_reason,
            "deadlines": {**item.deadlines, **started},
        }
    )
    return Transition(
        item=updated,
        previous_status=item.status,
        met=clocks_met_by(update.status, config) & set(item.deadlines),
        started=started,
    )


def join_discussion_held(item: QueueItem, discussion: QueueItem) -> QueueItem | None:
    """``item``, a sibling's item joining the strategy discussion of ``discussion`` (an s47
    item just recorded ``strategy_discussion_held``), once it takes the discussion's
    outcome; None when there is nothing to change (the item is closed, or does not join
    that discussion)."""
    if item.status == "closed" or item.joins_strategy_discussion_of != discussion.queue_item_id:
        return None
    return item.model_copy(update={"strategy_outcome": discussion.strategy_outcome})
