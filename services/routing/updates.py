"""Applying a batch of queue updates (mash.queue-updates.v1) — pure, no I/O, no clock reads.

Routing reads the batch's items and their clocks once (a :class:`LifecycleState`, locked
for the transaction), applies each update in offset order with
:func:`~services.routing.lifecycle.apply_update` against a :class:`LifecycleView` that every
step updates, and writes what the steps produced (:class:`UpdateWrites`) with a fixed number
of statements.

Why a batch gives the same result as its updates one by one (one transaction each):

- One by one, an update reads its item, writes the item's new state, meets clocks (a clock
  met before keeps its first time), starts clocks (one started before keeps its due time),
  and then claims the item's clocks that have run out unmet (:meth:`ClockRow.missed`) and
  have no breach yet. The view starts from the same rows and each step makes exactly those
  changes to it, breaches included, so a later update of the same item sees what an earlier
  one left: its status, its clocks, and the breaches already claimed (a clock claimed after
  one update stays breached even if a later one meets it on time, as one by one has it).
- A refused update (unknown item, step not allowed) changes nothing in the view.
- The view holds an item and its clocks as the record gives them back
  (:func:`~services.routing.rows.as_stored`, due times in UTC), so a later step announces
  them byte for byte as one by one did, reading them back.
- The writes are each item's last state, each clock's first start and first meeting, each
  breach, and the history rows in step order; each update's events are emitted in the order
  one by one emitted them (the item's new status, then its breaches).
- The batch reads "now" once (one transaction, one instant), where one by one read it for
  each update; and it waits for a clock another worker's scan holds where one by one's
  claim skipped it — that scan breaches it, so either way the clock breaches once.
- The referrer's automatic acknowledgement meets an item's acknowledge-referrer clock (at
  the time it was issued, see :mod:`services.routing.deadlines`) in the first valid step on
  the item, before that step's own meetings and claim: one by one, that step would have
  met it the same way, and the later ones read it met.
- A strategy discussion recorded as held reaches the siblings' items that join it
  (:func:`~services.routing.lifecycle.join_discussion_held`): one by one read them (locked)
  with the s47 item and wrote their outcome in the same transaction. The view holds them
  from the start (read with the batch's items, locked for the whole transaction) and the
  step changes them in the view, so a later update of a sibling's item sees the outcome
  as one by one did; the step claims none of their clocks (it meets none), and announces
  them after the s47 item.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from schemas.events import QueueItem
from schemas.inbound import QueueUpdate
from services.common.calendar import WorkingCalendar
from services.routing.announcements import Announcement, breached, item_reached
from services.routing.deadlines import ACKNOWLEDGE_REFERRER, REFERRER_ACKNOWLEDGED, DeadlineConfig
from services.routing.lifecycle import (
    InvalidTransition,
    Transition,
    apply_update,
    join_discussion_held,
)
from services.routing.rows import (
    ClockRow,
    DueBreach,
    HistoryEntry,
    MetClocks,
    as_stored,
    breach_id,
)


@dataclass(frozen=True)
class LifecycleState:
    """What a batch of queue updates reads from the record before it applies them."""

    items: Sequence[QueueItem]
    """The items the batch's updates name (those that exist), and the items that join the
    strategy discussions the batch records held."""
    clocks: Sequence[ClockRow]
    """Every clock of those items."""
    acknowledged: Mapping[str, datetime] = field(default_factory=dict)
    """Item id -> when notifications acknowledged the item's referrer (if it has)."""


@dataclass
class UpdateStep:
    """What one update of a batch does, as applying it alone would have done it."""

    event_id: str
    update: QueueUpdate
    unknown_item: bool = False
    """Refused: no queue item has this id."""
    invalid: str | None = None
    """Refused: why the item's queue and status do not allow this step."""
    transition: Transition | None = None
    acknowledged: MetClocks | None = None
    """The acknowledge-referrer clock the referrer's acknowledgement met, found by this step."""
    met: MetClocks | None = None
    """The clocks this step met (those not met before)."""
    history: HistoryEntry | None = None
    breaches: list[DueBreach] = field(default_factory=list)
    """The item's clocks breached once this step applied, in claim order."""
    joined: list[QueueItem] = field(default_factory=list)
    """Siblings' items that join the strategy discussion this step records held, as they
    become (with its outcome)."""
    joined_history: list[HistoryEntry] = field(default_factory=list)
    """One history row for each item of ``joined``."""
    announcements: list[Announcement] = field(default_factory=list)
    """The events the update emits, in order: the item's new status, the joined items,
    then the breaches (none for a refused update)."""


class LifecycleView:
    """The items of a batch of updates and their clocks, as its updates so far left them."""

    def __init__(self, state: LifecycleState) -> None:
        self.items: dict[str, QueueItem] = {i.queue_item_id: i for i in state.items}
        self.joining: dict[str, list[str]] = {}
        """s47 item id -> the ids of the items that join its strategy discussion."""
        for item in state.items:
            if item.joins_strategy_discussion_of is not None:
                self.joining.setdefault(item.joins_strategy_discussion_of, []).append(
                    item.queue_item_id
                )
        self.acknowledged: dict[str, datetime] = dict(state.acknowledged)
        self.clocks: dict[str, dict[str, ClockRow]] = {}
        for clock in state.clocks:
            self.clocks.setdefault(clock.queue_item_id, {})[clock.deadline] = clock

    def apply(
        self,
        event_id: str,
        update: QueueUpdate,
        now: datetime,
        config: DeadlineConfig,
        calendar: Callable[[str], WorkingCalendar],
    ) -> UpdateStep:
        """Apply ``update`` (event ``event_id``) to the view, or refuse it."""
        item = self.items.get(update.queue_item_id)
        if item is None:
            return UpdateStep(event_id, update, unknown_item=True)
        try:
            transition = apply_update(item, update, config, calendar(item.hub))
        except InvalidTransition as exc:
            return UpdateStep(event_id, update, invalid=str(exc))
        self.items[item.queue_item_id] = as_stored(transition.item)
        clocks = self.clocks.setdefault(item.queue_item_id, {})
        acknowledged = self._acknowledge(item.queue_item_id, clocks)
        met = sorted(n for n in transition.met if n in clocks and clocks[n].met_at is None)
        for name in met:
            clocks[name] = replace(clocks[name], met_at=update.at, met_by=update.status)
        for name, due in transition.started.items():
            # As the record gives it back (timestamptz comes back in UTC): a breach of this
            # clock names its due time as one by one named it.
            clocks.setdefault(name, ClockRow(item.queue_item_id, name, due.astimezone(UTC)))
        joined, joined_history = self._join(event_id, update, transition)
        breaches = self._claim(item, clocks, now)
        return UpdateStep(
            event_id,
            update,
            transition=transition,
            acknowledged=acknowledged,
            met=MetClocks(item.queue_item_id, met, update.at, update.status),
            history=HistoryEntry(
                queue_item_id=item.queue_item_id,
                action=update.status,
                cause=event_id,
                from_status=transition.previous_status,
                to_status=update.status,
                at=update.at,
                actor=update.by,
                detail={
                    "event_id": event_id,
                    "strategy_outcome": update.strategy_outcome,
                    "closure_reason": update.closure_reason,
                    "met": sorted(transition.met),
                    "started": sorted(transition.started),
                },
            ),
            breaches=breaches,
            joined=joined,
            joined_history=joined_history,
            announcements=[
                item_reached(transition.item, update.status, now),
                # Once: the discussion it joins is recorded held once.
                *(item_reached(j, "strategy_discussion_joined", now) for j in joined),
                *(breached(claimed, now) for claimed in breaches),
            ],
        )

    def _join(
        self, event_id: str, update: QueueUpdate, transition: Transition
    ) -> tuple[list[QueueItem], list[HistoryEntry]]:
        """The siblings' items that take the outcome of the strategy discussion ``update``
        records held, in id order, and their history rows (none for another step)."""
        if update.status != "strategy_discussion_held":
            return [], []
        discussion = transition.item
        joined: list[QueueItem] = []
        history: list[HistoryEntry] = []
        for item_id in sorted(self.joining.get(discussion.queue_item_id, ())):
            sibling = self.items[item_id]
            changed = join_discussion_held(sibling, discussion)
            if changed is None:
                continue
            self.items[item_id] = changed
            joined.append(changed)
            history.append(
                HistoryEntry(
                    queue_item_id=item_id,
                    action="strategy_discussion_joined",
                    cause=event_id,
                    from_status=sibling.status,
                    to_status=changed.status,
                    at=update.at,
                    actor=update.by,
                    detail={
                        "event_id": event_id,
                        "strategy_discussion_of": discussion.queue_item_id,
                        "strategy_outcome": discussion.strategy_outcome,
                    },
                )
            )
        return joined, history

    def _acknowledge(self, item_id: str, clocks: dict[str, ClockRow]) -> MetClocks | None:
        """Meet the item's acknowledge-referrer clock, if still unmet, by the referrer's
        acknowledgement (at the time it was issued); None when there is nothing to meet."""
        at = self.acknowledged.get(item_id)
        clock = clocks.get(ACKNOWLEDGE_REFERRER)
        if at is None or clock is None or clock.met_at is not None:
            return None
        clocks[ACKNOWLEDGE_REFERRER] = replace(clock, met_at=at, met_by=REFERRER_ACKNOWLEDGED)
        return MetClocks(item_id, [ACKNOWLEDGE_REFERRER], at, REFERRER_ACKNOWLEDGED)

    @staticmethod
    def _claim(item: QueueItem, clocks: dict[str, ClockRow], now: datetime) -> list[DueBreach]:
        """Breach the item's missed clocks at ``now``, in the claim's order."""
        claimed = []
        for clock in sorted(clocks.values(), key=lambda c: (c.due_at, c.deadline)):
            if clock.missed(now):
                clocks[clock.deadline] = replace(clock, breached_at=now)
                claimed.append(
                    DueBreach(
                        queue_item_id=item.queue_item_id,
                        deadline=clock.deadline,
                        due_at=clock.due_at,
                        hub=item.hub,
                        queue=item.queue,
                        breach_id=breach_id(item.queue_item_id, clock.deadline),
                    )
                )
        return claimed


def plan_updates(
    updates: Sequence[tuple[str, QueueUpdate]],
    state: LifecycleState,
    now: datetime,
    config: DeadlineConfig,
    calendar: Callable[[str], WorkingCalendar],
) -> list[UpdateStep]:
    """Apply (event id, update) pairs in order, each seeing what the ones before it did."""
    view = LifecycleView(state)
    return [view.apply(event_id, u, now, config, calendar) for event_id, u in updates]


@dataclass(frozen=True)
class UpdateWrites:
    """Every row a batch of updates writes."""

    items: list[QueueItem]
    """Each item's last state."""
    started: dict[str, dict[str, datetime]]
    """Item id -> clocks started (name -> due time)."""
    met: list[MetClocks]
    breaches: list[DueBreach]
    history: list[HistoryEntry]


def update_writes(steps: Sequence[UpdateStep]) -> UpdateWrites:
    """What ``steps`` write, for a fixed number of statements."""
    items: dict[str, QueueItem] = {}
    started: dict[str, dict[str, datetime]] = {}
    for step in steps:
        if step.transition is not None:
            item = step.transition.item
            items[item.queue_item_id] = item
            clocks = started.setdefault(item.queue_item_id, {})
            for name, due in step.transition.started.items():
                clocks.setdefault(name, due)
        for joined in step.joined:
            items[joined.queue_item_id] = joined
    return UpdateWrites(
        items=list(items.values()),
        started={i: clocks for i, clocks in started.items() if clocks},
        met=[m for s in steps for m in (s.acknowledged, s.met) if m is not None and m.names],
        breaches=[b for s in steps for b in s.breaches],
        history=[h for s in steps for h in (s.history, *s.joined_history) if h is not None],
    )
