"""Where a decision puts each child — pure, no I/O, no clock reads.

docs/domain.md, "Threshold levels", "Per child" and "Open cases": each child of an effective
decision gets one queue item on its hub's queue for the child's own outcome (none for no
further action): a rules decision screens each child (``Decision.subjects``), a
practitioner's decision applies to every child. A child
whose case is already open goes to the queue holding that case, as an update — unless
the new level is 4 and the open case is not on s47, which escalates the case to s47. A
later decision about the same contact (a practitioner override) moves the child's item:
the old one is closed, the new one opened, and both stay on record; a decision that
leaves the placement as it was keeps the item (and its running clocks).

docs/domain.md, "Per child": a sibling of a level-4 child in the same contact (rule
``R3-SIBLING``, below level 4 itself) joins that child's strategy discussion: its item names
the s47 item on which the same decision puts the level-4 child (the first one, in the
decision's order, when several children are at level 4) — wherever the sibling's own item
goes (its own queue, or an open case it updates).

docs/domain.md, "Identity and history": a child with an open early-help case and a level-3
concern steps up to assessment (``DecisionSubject.step_up``): a new initial-assessment item
with the assessment's own clocks, in the decision's hub, marked ``step_up`` — not an update
of the early-help case, whether the council holds that case or routing does (an open
single-agency item stays open: it is the other agency's to close). Only where routing
already holds the child's case on an assessment queue (initial assessment or s47) is the
contact an update of that case, as any other: the child is past early help already.

docs/domain.md, "Domestic-abuse joint screening": an automated s47 decision held by the hub's
confirmation gate (``Decision.awaiting_practitioners``) is placed exactly as it would be
without the gate — so the hold is on the hub's queue, never invisible — but its items are
marked awaiting practitioners and also run the screening decision clock. When police and
children's social care have confirmed it, the same decision comes again without the mark
and the routing takes effect on those items (:mod:`services.routing.decisions`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast

from schemas.base import QueueName
from schemas.events import Decision, DecisionSubject, QueueItem
from services.common.calendar import WorkingCalendar
from services.common.ids import derive_id
from services.routing.deadlines import DeadlineConfig, deadlines_for

#: docs/domain.md: level/outcome -> queue; no further action has no queue.
QUEUE_FOR_OUTCOME: dict[str, str | None] = {
    "no_further_action": None,
    "single_agency": "single-agency",
    "initial_assessment": "initial-assessment",
    "s47": "s47",
}

#: When a child has several open items, the case is held by the most serious queue.
QUEUE_SEVERITY: dict[str, int] = {"s47": 3, "initial-assessment": 2, "single-agency": 1}

#: The rule that lifts a sibling of a level-4 child (docs/domain.md "Per child").
SIBLING_RULE = "R3-SIBLING"

PlacementKind = Literal[
    "new", "step_up", "open_case_update", "escalation", "unchanged", "released", "none"
]
ClosureKind = Literal["moved", "escalated"]


@dataclass(frozen=True)
class OpenItem:
    """An open queue item as routing sees it when it places a new decision."""

    queue_item_id: str
    contact_id: str
    decision_id: str
    subject_id: str
    hub: str
    queue: str
    target_agency: str | None
    rag: str
    open_case_update: bool
    routed_at: datetime
    awaiting_practitioners: bool = False
    joins_strategy_discussion_of: str | None = None
    step_up: bool = False


@dataclass(frozen=True)
class Closure:
    """An open item the decision closes, why, and which item takes its place (if any)."""

    item: OpenItem
    kind: ClosureKind
    replaced_by: str | None


@dataclass(frozen=True)
class Placement:
    """What the decision does for one child."""

    subject_id: str
    kind: PlacementKind
    opened: QueueItem | None = None
    kept: OpenItem | None = None
    closed: tuple[Closure, ...] = ()

    @property
    def current(self) -> tuple[str, str, str] | None:
        """(item id, hub, queue) of the child's item after the decision, if it has one."""
        if self.opened is not None:
            return self.opened.queue_item_id, self.opened.hub, self.opened.queue
        if self.kept is not None:
            return self.kept.queue_item_id, self.kept.hub, self.kept.queue
        return None


@dataclass(frozen=True)
class RoutingPlan:
    """Everything one decision changes, child by child."""

    placements: tuple[Placement, ...]
    hub: str
    """The hub named on mash.routed.v1: the items' hub if they share one, else the decision's."""
    queue: str | None
    """The queue named on mash.routed.v1 (None for no further action)."""

    @property
    def closures(self) -> list[Closure]:
        """The items the decision closes (moved or escalated), in child order."""
        return [c for p in self.placements for c in p.closed]

    @property
    def opened(self) -> list[QueueItem]:
        """The items the decision opens, in child order."""
        return [p.opened for p in self.placements if p.opened is not None]

    @property
    def item_ids(self) -> list[str]:
        """The children's current item ids (opened or kept), in child order."""
        return [c[0] for p in self.placements if (c := p.current) is not None]


def queue_item_id(decision_id: str, subject_id: str) -> str:
    """The stable id of the item a decision opens for a child."""
    return derive_id("queue-item", decision_id, subject_id)


def open_case_of(items: Sequence[OpenItem]) -> OpenItem | None:
    """The item holding a child's open case: the most serious queue, then the oldest."""
    if not items:
        return None
    return min(items, key=lambda i: (-QUEUE_SEVERITY.get(i.queue, 0), i.routed_at, i.queue_item_id))


def _same_place(kept: OpenItem, item: QueueItem) -> bool:
    return (
        kept.hub,
        kept.queue,
        kept.target_agency,
        kept.rag,
        kept.open_case_update,
        kept.joins_strategy_discussion_of,
        kept.step_up,
    ) == (
        item.hub,
        item.queue,
        item.target_agency,
        item.rag,
        item.open_case_update,
        item.joins_strategy_discussion_of,
        item.step_up,
    )


@dataclass(frozen=True)
class ChildScreening:
    """What the decision says about one child: its own, else the decision's."""

    level: int
    outcome: str
    rag: str
    target_agency: str | None

    @classmethod
    def of(cls, decision: Decision, subject: DecisionSubject) -> ChildScreening:
        """The child's own screening when the decision gives one (rules decisions)."""
        if subject.level is None or subject.outcome is None or subject.rag is None:
            return cls(decision.level, decision.outcome, decision.rag, decision.target_agency)
        return cls(subject.level, subject.outcome, subject.rag, subject.target_agency)


def joins_strategy_discussion(subject: DecisionSubject) -> bool:
    """Whether the child, below level 4 itself, is the sibling of a level-4 child of the
    contact (rule ``R3-SIBLING``): it joins that child's strategy discussion."""
    return (
        subject.level is not None
        and subject.level < 4
        and any(hit.id == SIBLING_RULE for hit in subject.rules)
    )


def _steps_up(child: ChildScreening, subject: DecisionSubject, case: OpenItem | None) -> bool:
    """Whether the child steps up from early help to a new assessment: screening says so
    (level 3), and routing holds no case of the child's on an assessment queue already."""
    return (
        subject.step_up
        and child.outcome == "initial_assessment"
        and (case is None or QUEUE_SEVERITY[case.queue] < QUEUE_SEVERITY["initial-assessment"])
    )


def _place_child(
    decision: Decision,
    subject: DecisionSubject,
    open_items: Sequence[OpenItem],
    flagged_only: bool,
    routed_at: datetime,
    config: DeadlineConfig,
    calendar: Callable[[str], WorkingCalendar],
    discussion: str | None = None,
) -> Placement:
    """Place one child; ``discussion`` is the s47 item whose strategy discussion it joins."""
    # Items this contact already has from an earlier decision: the override moves them.
    subject_id = subject.subject_id
    child = ChildScreening.of(decision, subject)
    earlier = [
        i
        for i in open_items
        if i.contact_id == decision.contact_id and i.decision_id != decision.decision_id
    ]
    case = open_case_of([i for i in open_items if i.contact_id != decision.contact_id])
    closures: list[Closure] = []
    new_id = queue_item_id(decision.decision_id, subject_id)
    kind: PlacementKind
    if case is not None and child.level == 4 and case.queue != "s47":
        kind, hub, queue, update = "escalation", case.hub, "s47", False
        closures.append(Closure(case, "escalated", new_id))
    elif _steps_up(child, subject, case):
        # A new assessment, not an update of the early-help case (held by the council, or
        # by routing on the single-agency queue, where it stays open).
        kind, hub, queue, update = "step_up", decision.hub, "initial-assessment", False
    elif case is not None:
        kind, hub, queue, update = "open_case_update", case.hub, case.queue, True
    else:
        target = QUEUE_FOR_OUTCOME[child.outcome]
        if target is None:
            closures += [Closure(i, "moved", None) for i in earlier]
            return Placement(subject_id, "none", closed=tuple(closures))
        # The decision says the contact has an open case, but routing holds none for any
        # child (the case is held elsewhere or closed since): keep the flag visible.
        kind, hub, queue, update = "new", decision.hub, target, flagged_only
    held = decision.awaiting_practitioners
    item = QueueItem(
        queue_item_id=new_id,
        contact_id=decision.contact_id,
        decision_id=decision.decision_id,
        subject_id=subject_id,
        hub=hub,
        queue=cast(QueueName, queue),
        outcome=child.outcome,
        target_agency=child.target_agency,
        rag=child.rag,
        deadlines=deadlines_for(
            queue,
            child.rag,
            child.target_agency,
            decision.received_at,
            decision.decided_at,
            calendar(hub),
            config,
            awaiting_practitioners=held,
            # Only an update to a case routing holds joins clocks that already run.
            open_case_update=kind == "open_case_update",
        ),
        open_case_update=update,
        status="open",
        routed_at=routed_at,
        awaiting_practitioners=held,
        joins_strategy_discussion_of=discussion,
        step_up=kind == "step_up",
    )
    if len(earlier) == 1 and _same_place(earlier[0], item):
        # A confirmation (or an override that changes nothing here): the item and its
        # clocks stay as they are.
        return Placement(subject_id, "unchanged", kept=earlier[0], closed=tuple(closures))
    closures += [Closure(i, "moved", new_id) for i in earlier]
    return Placement(subject_id, kind, opened=item, closed=tuple(closures))


def plan_routing(
    decision: Decision,
    open_items: Mapping[str, Sequence[OpenItem]],
    routed_at: datetime,
    config: DeadlineConfig,
    calendar: Callable[[str], WorkingCalendar],
) -> RoutingPlan:
    """What ``decision`` does to each of its children's queue items.

    ``open_items`` maps each child's subject id to its open items (any contact);
    ``calendar`` gives a hub's working calendar (its office hours). The children who join a
    strategy discussion are placed once the others are, so that their items can name the
    s47 item of the discussion (:func:`strategy_discussion_of`).
    """
    flagged_only = decision.open_case and not any(
        i.contact_id != decision.contact_id
        for s in decision.subjects
        for i in open_items.get(s.subject_id, ())
    )

    def place(subject: DecisionSubject, discussion: str | None = None) -> Placement:
        return _place_child(
            decision,
            subject,
            open_items.get(subject.subject_id, ()),
            flagged_only,
            routed_at,
            config,
            calendar,
            discussion,
        )

    placed = {
        i: place(s) for i, s in enumerate(decision.subjects) if not joins_strategy_discussion(s)
    }
    discussion = strategy_discussion_of(decision, placed)
    placements = tuple(
        placed[i] if i in placed else place(s, discussion) for i, s in enumerate(decision.subjects)
    )
    return routing_plan(decision, placements)


def strategy_discussion_of(decision: Decision, placed: Mapping[int, Placement]) -> str | None:
    """The s47 item whose strategy discussion the siblings of the decision join: the item of
    the first child (in the decision's order) at level 4 that ``placed`` (child index ->
    placement) has on the s47 queue; None when no child is."""
    for index, subject in enumerate(decision.subjects):
        placement = placed.get(index)
        current = None if placement is None else placement.current
        if (
            current is not None
            and current[2] == "s47"
            and ChildScreening.of(decision, subject).level == 4
        ):
            return current[0]
    return None


def routing_plan(decision: Decision, placements: tuple[Placement, ...]) -> RoutingPlan:
    """The plan of ``placements``, naming the hub and queue mash.routed.v1 announces."""
    current = [c for p in placements if (c := p.current) is not None]
    hubs = {hub for _, hub, _ in current}
    queues = {queue for _, _, queue in current}
    return RoutingPlan(
        placements=placements,
        hub=hubs.pop() if len(hubs) == 1 else decision.hub,
        queue=queues.pop() if len(queues) == 1 else QUEUE_FOR_OUTCOME[decision.outcome],
    )


def queue_items_for(
    decision: Decision,
    routed_at: datetime,
    calendar: WorkingCalendar,
    config: DeadlineConfig,
) -> list[QueueItem]:
    """One open queue item per child of a decision about children with no open case."""
    return plan_routing(decision, {}, routed_at, config, lambda _hub: calendar).opened
