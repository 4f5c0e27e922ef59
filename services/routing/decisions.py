"""Routing a batch of decisions — pure, no I/O, no clock reads.

The pipeline hands routing the new decisions of a batch, in offset order, to apply in one
transaction. Routing reads once what the batch needs from the record (a
:class:`RecordState`), plans each decision in turn with
:func:`~services.routing.queues.plan_routing` against a :class:`RecordView` that every step
updates, and then writes what the steps produced (:class:`BatchWrites`) with a fixed number
of statements, whatever the batch's size.

Why a batch gives the same result as its decisions one by one (one transaction each):

- One by one, a decision reads three things, as the decisions before it left them: whether
  routing_decisions holds it (a replay), whether it holds a decision superseding it, and
  the open items of its children (locked). The view starts from those rows for every
  decision and child of the batch (locked for the whole transaction) and each step applies
  to it exactly the changes one by one writes: it records the decision (and what it
  supersedes), opens the new items, closes the moved or escalated ones. Nothing else in the
  batch writes those rows: the batch holds decisions only, and the record's locks keep a
  queue update or another worker from moving the same items meanwhile.
- So each step calls the same pure functions with the same inputs, and yields the same
  items, clocks, history rows, routing_decisions rows and events, with the same (derived)
  ids, in the same order: history rows are inserted in step order (their ``seq``), and each
  decision's events are emitted in the order one by one emitted them (closed items, opened
  items, the Routed event, breaches), so every key keeps its order on every topic.
- What one by one skipped because the row already existed is skipped here too: an item the
  record (or an earlier step) already holds is not opened again, an item already closed is
  not closed again, and a history row is written once per id (the first one).
- The view holds an item a step wrote as the record gives it back (:func:`as_stored`), so a
  later step that closes it announces it byte for byte as one by one did, reading it back.
- Breaches at routing time: one by one claims, after each decision, the run-out clocks of
  the items it opened; no later decision can have met those clocks by then. The batch
  claims them once, for all the items it opened, after inserting their clocks and before it
  marks any clock met — the same clocks, in the same order for each decision.

Two differences are deliberate: the batch reads "now" once (one transaction, one instant),
where one by one read it for each decision — with a clock that does not move between the
two reads (every test's file clock) the results are identical; and when several applied
decisions supersede one, the audit names the first recorded (one by one named any).

Held s47 decisions (the hub's confirmation gate, docs/domain.md "Domestic-abuse joint
screening"): a decision marked ``awaiting_practitioners`` is placed as any other (its items
opened, an open case escalated) but its items are marked awaiting practitioners and run
the screening decision clock; routing records it ``held`` and announces no routing (the
referrer hears of an outcome only once it takes effect). The same decision without the
mark — police and children's social care have confirmed it — is its **release**: the
routing takes effect on the items the hold opened (the mark cleared, the screening decision
clock met, now), the Routed event goes out, and the record says ``routed``. Its other
clocks ran from the start, as they would without the gate (from receipt and from the
automated decision, which the release does not change). A release is one more change of
the view, like a closing, so the argument above holds for it too: its items' run-out
clocks are claimed with the batch's, before any clock is marked met.

One module, though above 400 lines, on purpose: the argument above is about the view,
its steps and their writes together, and reads best next to them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from schemas.events import Decision, QueueItem
from services.common.calendar import WorkingCalendar
from services.routing.announcements import Announcement, item_opened, item_reached, routed
from services.routing.deadlines import RELEASED, SCREENING_DECISION, DeadlineConfig
from services.routing.queues import (
    Closure,
    ClosureKind,
    OpenItem,
    Placement,
    RoutingPlan,
    plan_routing,
    queue_item_id,
    routing_plan,
)
from services.routing.rows import DueBreach, HistoryEntry, MetClocks, as_stored

#: Who routing's own changes are recorded as in an item's history.
ROUTING_ACTOR = "routing"

Verdict = Literal["routed", "held", "released", "superseded", "duplicate_decision", "unknown_hub"]
"""What routing does with a decision: route it, place it awaiting practitioners (held by the
s47 confirmation gate), let a held one take effect (released), set it aside (an override of
it was applied), skip it (already applied under another event id), or refuse it (unknown
hub)."""

#: What routing_decisions records for each verdict that records anything.
EFFECTS: dict[str, str] = {
    "routed": "routed",
    "superseded": "superseded",
    "held": "held",
    "released": "routed",
}


@dataclass(frozen=True)
class RecordState:
    """What a batch of decisions reads from the record before it plans them."""

    applied: frozenset[str]
    """The batch's decision ids routing has already applied or set aside."""
    superseded_by: Mapping[str, str]
    """The batch's decision ids -> an applied decision that supersedes each."""
    items: Sequence[QueueItem]
    """The items of the batch's children that are not closed, and any item (closed too)
    with the id a decision of the batch would give the item it opens."""
    held: frozenset[str] = frozenset()
    """The batch's decision ids routing holds awaiting practitioners (recorded ``held``)."""


@dataclass(frozen=True)
class Closing:
    """An item a decision closes: as it is once closed, why (moved or escalated), and when."""

    item: QueueItem
    kind: ClosureKind
    at: datetime


@dataclass
class DecisionStep:
    """What one decision of a batch does, as routing it alone would have done it."""

    decision: Decision
    verdict: Verdict
    superseded_by: str | None = None
    """For ``superseded``: the decision that overrides this one."""
    plan: RoutingPlan | None = None
    """For ``routed``: where each child goes."""
    closings: list[Closing] = field(default_factory=list)
    """Items this decision closes, in the order it closes them."""
    opened: list[QueueItem] = field(default_factory=list)
    """Items this decision adds to the record, in child order."""
    released: list[QueueItem] = field(default_factory=list)
    """For ``released``: the held items the routing now takes effect on, as they become."""
    released_at: datetime | None = None
    """For ``released``: when the routing took effect (meets the screening decision clock)."""
    history: list[HistoryEntry] = field(default_factory=list)
    announcements: list[Announcement] = field(default_factory=list)
    """The events the decision emits, in order (closed items, opened items, released
    items, the Routed event — none for a held decision, which has not taken effect); the
    breaches the batch claims for its items follow them (:func:`breaches_by_step`)."""

    @property
    def effect(self) -> str | None:
        """What routing_decisions records for it (None: nothing is recorded)."""
        return EFFECTS.get(self.verdict)

    @property
    def opened_ids(self) -> list[str]:
        """Ids of the items whose run-out clocks breach now: those the plan opens, and the
        held items a release takes effect on."""
        if self.plan is None:
            return []
        return [i.queue_item_id for i in self.plan.opened] + [
            i.queue_item_id for i in self.released
        ]


def open_item_of(item: QueueItem) -> OpenItem:
    """A queue item as :func:`~services.routing.queues.plan_routing` sees it."""
    return OpenItem(
        queue_item_id=item.queue_item_id,
        contact_id=item.contact_id,
        decision_id=item.decision_id,
        subject_id=item.subject_id,
        hub=item.hub,
        queue=item.queue,
        target_agency=item.target_agency,
        rag=item.rag,
        open_case_update=item.open_case_update,
        routed_at=item.routed_at,
        awaiting_practitioners=item.awaiting_practitioners,
        joins_strategy_discussion_of=item.joins_strategy_discussion_of,
        step_up=item.step_up,
    )


class RecordView:
    """The part of the routing record a batch touches, as its decisions so far left it."""

    def __init__(self, state: RecordState) -> None:
        self.applied: set[str] = set(state.applied)
        self.superseded_by: dict[str, str] = dict(state.superseded_by)
        self.held: set[str] = set(state.held)
        self.items: dict[str, QueueItem] = {}
        self.by_child: dict[str, list[str]] = {}
        for item in state.items:
            self._put(item)

    def _put(self, item: QueueItem) -> None:
        if item.queue_item_id not in self.items:
            self.by_child.setdefault(item.subject_id, []).append(item.queue_item_id)
        self.items[item.queue_item_id] = item

    def open_items(self, subject_ids: Iterable[str]) -> dict[str, list[OpenItem]]:
        """Each child's items that are not closed, oldest first (as the record orders them)."""
        found: dict[str, list[OpenItem]] = {}
        for subject_id in dict.fromkeys(subject_ids):
            items = [self.items[i] for i in self.by_child.get(subject_id, ())]
            still_open = sorted(
                (i for i in items if i.status != "closed"),
                key=lambda i: (i.routed_at, i.queue_item_id),
            )
            if still_open:
                found[subject_id] = [open_item_of(i) for i in still_open]
        return found

    def route(
        self,
        decision: Decision,
        now: datetime,
        config: DeadlineConfig,
        calendar: Callable[[str], WorkingCalendar],
        hubs: Collection[str],
    ) -> DecisionStep:
        """Plan ``decision`` against the view, then apply its changes to the view."""
        if decision.decision_id in self.applied:
            if (
                decision.decision_id in self.held
                and not decision.awaiting_practitioners
                and decision.decision_id not in self.superseded_by
            ):
                return self._release(decision, now)
            return DecisionStep(decision, "duplicate_decision")
        newer = self.superseded_by.get(decision.decision_id)
        if newer is not None:
            self._record(decision)
            return DecisionStep(decision, "superseded", superseded_by=newer)
        if decision.hub not in hubs:
            return DecisionStep(decision, "unknown_hub")
        children = [s.subject_id for s in decision.subjects]
        plan = plan_routing(decision, self.open_items(children), now, config, calendar)
        held = decision.awaiting_practitioners
        step = DecisionStep(decision, "held" if held else "routed", plan=plan)
        for closure in plan.closures:
            self._close(step, closure, now)
        for item in plan.opened:
            self._open(step, item)
        for placement in plan.placements:
            if placement.kept is not None:
                step.history.append(
                    HistoryEntry(
                        queue_item_id=placement.kept.queue_item_id,
                        action="confirmed",
                        cause=decision.decision_id,
                        from_status=None,
                        to_status="open",
                        at=decision.decided_at,
                        actor=ROUTING_ACTOR,
                        detail={"decision_id": decision.decision_id, "source": decision.source},
                    )
                )
        self._record(decision, held=held)
        return _announced(step, now)

    def _record(self, decision: Decision, *, held: bool = False) -> None:
        self.applied.add(decision.decision_id)
        if held:
            self.held.add(decision.decision_id)
        if decision.supersedes_decision_id is not None:
            self.superseded_by.setdefault(decision.supersedes_decision_id, decision.decision_id)

    def _release(self, decision: Decision, now: datetime) -> DecisionStep:
        """The held ``decision`` takes effect: on each child's held item (still open) the
        mark is cleared; the children are where the hold put them."""
        self.held.discard(decision.decision_id)
        step = DecisionStep(decision, "released", released_at=now)
        placements: list[Placement] = []
        for subject in decision.subjects:
            item = self.items.get(queue_item_id(decision.decision_id, subject.subject_id))
            if item is None or item.status == "closed":
                # Moved by an override since (then no release comes): nothing to take effect.
                placements.append(Placement(subject.subject_id, "none"))
                continue
            if item.awaiting_practitioners:
                released = item.model_copy(update={"awaiting_practitioners": False})
                self._put(released)
                step.released.append(released)
                step.history.append(
                    HistoryEntry(
                        queue_item_id=item.queue_item_id,
                        action="released",
                        cause=decision.decision_id,
                        from_status=item.status,
                        to_status=item.status,
                        at=now,
                        actor=ROUTING_ACTOR,
                        detail={"decision_id": decision.decision_id, "source": decision.source},
                    )
                )
            placements.append(
                Placement(
                    subject.subject_id,
                    "released",
                    kept=open_item_of(self.items[item.queue_item_id]),
                )
            )
        step.plan = routing_plan(decision, tuple(placements))
        return _announced(step, now)

    def _close(self, step: DecisionStep, closure: Closure, now: datetime) -> None:
        """Close an item the decision moves (override) or escalates (open case to s47)."""
        item = self.items.get(closure.item.queue_item_id)
        if item is None or item.status == "closed":
            return
        closed = item.model_copy(
            update={
                "status": "closed",
                "status_at": now,
                "closure_reason": None,
                "replaced_by": closure.replaced_by,
            }
        )
        self._put(closed)
        step.closings.append(Closing(closed, closure.kind, now))
        step.history.append(
            HistoryEntry(
                queue_item_id=item.queue_item_id,
                action=closure.kind,
                cause=step.decision.decision_id,
                from_status=item.status,
                to_status="closed",
                at=now,
                actor=ROUTING_ACTOR,
                detail={
                    "decision_id": step.decision.decision_id,
                    "replaced_by": closure.replaced_by,
                },
            )
        )

    def _open(self, step: DecisionStep, item: QueueItem) -> None:
        """Add an item the decision opens (unless the record already holds it)."""
        if item.queue_item_id in self.items:
            return
        self._put(as_stored(item))
        step.opened.append(item)
        decision = step.decision
        detail: dict[str, object] = {
            "decision_id": decision.decision_id,
            "source": decision.source,
            "open_case_update": item.open_case_update,
        }
        # Only when set, so that other items' rows read as they always did.
        if item.step_up:
            detail["step_up"] = True
        if item.joins_strategy_discussion_of is not None:
            detail["joins_strategy_discussion_of"] = item.joins_strategy_discussion_of
        step.history.append(
            HistoryEntry(
                queue_item_id=item.queue_item_id,
                action="opened",
                cause=decision.decision_id,
                from_status=None,
                to_status="open",
                at=item.routed_at,
                actor=ROUTING_ACTOR,
                detail=detail,
            )
        )


def _announced(step: DecisionStep, now: datetime) -> DecisionStep:
    """``step`` with the events it emits, in the order one by one emitted them."""
    assert step.plan is not None  # only routed, held and released steps announce
    step.announcements = [
        *(item_reached(c.item, "closed", c.at) for c in step.closings),
        *(item_opened(item) for item in step.opened),
        *(item_reached(item, "released", now) for item in step.released),
    ]
    if step.verdict != "held":
        step.announcements.append(routed(step.decision, step.plan, now))
    return step


def plan_batch(
    decisions: Sequence[Decision],
    state: RecordState,
    now: datetime,
    config: DeadlineConfig,
    calendar: Callable[[str], WorkingCalendar],
    hubs: Collection[str],
) -> list[DecisionStep]:
    """Plan ``decisions`` in order, each seeing what the ones before it changed."""
    view = RecordView(state)
    return [view.route(d, now, config, calendar, hubs) for d in decisions]


@dataclass(frozen=True)
class BatchWrites:
    """Every row a batch of decisions writes, gathered in step order."""

    opened: list[QueueItem]
    closings: list[Closing]
    history: list[HistoryEntry]
    """In the order one by one recorded them (the store keeps the first of an id)."""
    decisions: list[tuple[Decision, str]]
    """(decision, effect) for routing_decisions: one per decision, the last (a hold and its
    release in one batch record ``routed``, as the release's update would leave it)."""
    breach_candidates: list[str]
    """Ids of the items opened (or released) by the batch, whose run-out clocks breach
    with it."""
    releases: list[tuple[QueueItem, datetime]] = field(default_factory=list)
    """Held items the batch released, as released, and when."""

    @property
    def saved(self) -> list[QueueItem]:
        """Each existing item the batch changed (released or closed), in its last state."""
        last: dict[str, QueueItem] = {}
        for item in [*(i for i, _ in self.releases), *(c.item for c in self.closings)]:
            last[item.queue_item_id] = item
        return list(last.values())

    def met(self) -> list[MetClocks]:
        """The clocks the batch stops, each once, at its first meeting: a released item's
        screening decision clock when its routing took effect, and every clock of a closed
        item at its closing (one already run out stays a breach: met late)."""
        found: list[MetClocks] = []
        seen: set[tuple[str, str]] = set()
        meetings = [
            *(
                (i.queue_item_id, [SCREENING_DECISION], at, RELEASED)
                for i, at in self.releases
                if SCREENING_DECISION in i.deadlines
            ),
            *((c.item.queue_item_id, list(c.item.deadlines), c.at, c.kind) for c in self.closings),
        ]
        for item_id, names, at, met_by in meetings:
            new = [n for n in names if (item_id, n) not in seen]
            seen.update((item_id, n) for n in new)
            found.append(MetClocks(item_id, new, at, met_by))
        return found


def batch_writes(steps: Sequence[DecisionStep]) -> BatchWrites:
    """What ``steps`` write, for a fixed number of statements."""
    decisions: dict[str, tuple[Decision, str]] = {}
    for step in steps:
        if step.effect is not None:
            decisions.pop(step.decision.decision_id, None)
            decisions[step.decision.decision_id] = (step.decision, step.effect)
    return BatchWrites(
        opened=[i for s in steps for i in s.opened],
        closings=[c for s in steps for c in s.closings],
        history=[h for s in steps for h in s.history],
        decisions=list(decisions.values()),
        breach_candidates=list(dict.fromkeys(i for s in steps for i in s.opened_ids)),
        releases=[
            (i, s.released_at) for s in steps if s.released_at is not None for i in s.released
        ],
    )


def breaches_by_step(
    steps: Sequence[DecisionStep], due: Sequence[DueBreach]
) -> list[list[DueBreach]]:
    """Each step's share of the breaches claimed for the batch: those of the items it
    opened (or released), in claim order (as one by one claimed them after that decision)."""
    owner: dict[str, int] = {}
    for index, step in enumerate(steps):
        for item_id in step.opened_ids:
            owner.setdefault(item_id, index)
    shares: list[list[DueBreach]] = [[] for _ in steps]
    for claimed in due:
        shares[owner[claimed.queue_item_id]].append(claimed)
    return shares
