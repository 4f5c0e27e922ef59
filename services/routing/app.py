"""Routing: put each decided child on its hub's queue with its statutory clocks, follow each
item's lifecycle, and raise one SLA breach per missed clock.

Thin I/O around :mod:`services.routing.decisions` and :mod:`services.routing.updates`
(pure, on :mod:`services.routing.queues` and :mod:`services.routing.lifecycle`); the SQL
is in :mod:`services.routing.store`. Two agents consume through the one pipeline,
mash.decisions.v1 and mash.queue-updates.v1, each a batch at a time: load, plan, write,
announce — a fixed number of statements per batch. Two background tasks need no traffic:
the breach scheduler and the open-items gauge. Every time is read from the runtime's
injected clock (:mod:`services.common.clock`), never from the system directly.

The plans carry the events each step emits, ids included
(:mod:`services.routing.announcements`): the app only enqueues them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from schemas.events import Decision
from schemas.inbound import QueueUpdate
from schemas.types import ce_type_of
from services.common.calendar import WorkingCalendar
from services.common.clock import Clock
from services.common.outbox import enqueue_rows, outbox_row
from services.common.pipeline import consume_topic
from services.common.received import Received, Rejected
from services.common.runtime import ServiceRuntime
from services.common.topics import DECISIONS, QUEUE_UPDATES
from services.common.topology import load_topology
from services.routing import store
from services.routing.announcements import Announcement, breached
from services.routing.deadlines import DeadlineConfig, calendar_for, load_deadline_config
from services.routing.decisions import (
    BatchWrites,
    DecisionStep,
    batch_writes,
    breaches_by_step,
    plan_batch,
)
from services.routing.gauges import RecordGauges
from services.routing.rows import DueBreach
from services.routing.updates import UpdateStep, UpdateWrites, plan_updates, update_writes

if TYPE_CHECKING:
    from services.common.db import Connection

SERVICE = "routing"
DECISION_TYPES = {ce_type_of(Decision): Decision}
QUEUE_UPDATE_TYPES = {ce_type_of(QueueUpdate): QueueUpdate}
#: Breaches claimed per scheduler transaction.
BREACH_BATCH = 500


class Routing:
    """Routing's effects and background work."""

    def __init__(
        self,
        runtime: ServiceRuntime,
        config: DeadlineConfig | None = None,
    ) -> None:
        self.runtime = runtime
        self.config = config or load_deadline_config()
        self.clock: Clock = runtime.clock
        self.hubs = load_topology(runtime.settings.topology).hub_ids
        self.gauges = RecordGauges(runtime.metrics, self.hubs)
        self._calendars: dict[str, WorkingCalendar] = {}
        unknown = sorted(set(self.config.office_hours.by_hub) - set(self.hubs))
        if unknown:
            runtime.log.warning("office_hours_for_unknown_hubs", hub=",".join(unknown))

    def calendar(self, hub: str) -> WorkingCalendar:
        """The working calendar of ``hub`` (its office hours), built once."""
        if hub not in self._calendars:
            self._calendars[hub] = calendar_for(hub, self.config)
        return self._calendars[hub]

    # --- decisions -----------------------------------------------------------------------

    async def route(self, batch: Sequence[Received[Decision]]) -> None:
        """Route a batch of decisions in offset order exactly as routing them one by one
        would (why: :mod:`services.routing.decisions`), in a fixed number of statements: read
        the record once, plan every decision in memory, write every row, then announce each
        decision's changes in its own order."""
        conn = batch[0].conn
        now = self.clock()
        decisions = [r.payload for r in batch]
        state = await store.load_record(conn, decisions)
        steps = plan_batch(decisions, state, now, self.config, self.calendar, self.hubs)
        inserted, due = await self._write(conn, batch_writes(steps), now)
        shares = breaches_by_step(steps, due)
        for received, step, breaches in zip(batch, steps, shares, strict=True):
            with received.logged():
                await self._announce(received, step, inserted, breaches, now)

    @staticmethod
    async def _write(
        conn: Connection, writes: BatchWrites, now: datetime
    ) -> tuple[set[str], list[DueBreach]]:
        """Write a batch's rows (nine statements at most); return the ids of the items
        inserted and the breaches claimed.

        The acknowledge-referrer clocks of the items opened or closed are met first by the
        referrer's automatic acknowledgement where notifications has issued it (at its
        time). A clock that had already run out when its item was routed (a late or replayed
        decision) is breached now, with the routing, not at the next scheduler scan: the
        claim comes after the new items' clocks are in and before any closing or release
        meets a clock, as in one by one (see :mod:`services.routing.decisions`).
        """
        inserted = await store.insert_items(conn, writes.opened)
        await store.add_deadlines(
            conn,
            {i.queue_item_id: i.deadlines for i in writes.opened if i.queue_item_id in inserted},
        )
        await store.meet_acknowledgements(
            conn, [*sorted(inserted), *(c.item.queue_item_id for c in writes.closings)]
        )
        due: list[DueBreach] = []
        if writes.breach_candidates:
            due = await store.claim_breaches(
                conn, now, limit=None, queue_item_ids=writes.breach_candidates
            )
        await store.save_statuses(conn, writes.saved)
        await store.meet_deadlines(conn, writes.met())
        await store.add_history(conn, writes.history)
        await store.record_decisions(conn, writes.decisions, now)
        return inserted, due

    async def _announce(
        self,
        received: Received[Decision],
        step: DecisionStep,
        inserted: set[str],
        breaches: Sequence[DueBreach],
        now: datetime,
    ) -> None:
        """Set a decision's outcome (or refusal), audit it and emit its events in order:
        closed items, opened (or released) items, the Routed event, breaches. A held
        decision has no Routed event: it has not taken effect, so nobody outside the hub
        hears of it; its release has."""
        decision = step.decision
        if step.verdict == "duplicate_decision":
            # The same decision under another event id (a replay): no second effect.
            await received.audit("decision", decision.decision_id, "already_routed", {})
            received.outcome = "duplicate_decision"
            return
        if step.verdict == "superseded":
            # Arrived after the decision that overrides it: it is no longer effective.
            await received.audit(
                "decision", decision.decision_id, "superseded", {"decision_id": step.superseded_by}
            )
            received.outcome = "superseded"
            return
        if step.verdict == "unknown_hub":
            # Its queue topics do not exist: publishing there would stall the outbox.
            received.refused = Rejected.unknown_reference(
                "hub", "hub is not in the active topology"
            )
            return
        plan = step.plan
        assert plan is not None  # every routed step has its plan
        for event in [*step.announcements, *(breached(claimed, now) for claimed in breaches)]:
            if event.opens is None or event.opens in inserted:
                await self._emit(received, event)
        for item in step.opened:
            if item.queue_item_id in inserted:
                received.after_commit(
                    functools.partial(
                        self.runtime.metrics.routed.labels(queue=item.queue, hub=item.hub).inc
                    )
                )
        for claimed in breaches:
            received.after_commit(functools.partial(self._count_breach, claimed))
        self.runtime.log.info(
            "contact_held_for_confirmation" if step.verdict == "held" else "contact_routed",
            contact_id=decision.contact_id,
            decision_id=decision.decision_id,
            queue_item_ids=step.opened_ids,
            closed_count=len(plan.closures),
            hub=plan.hub,
            queue=plan.queue,
        )
        received.outcome = {"held": "awaiting_practitioners", "released": "released"}.get(
            step.verdict, "routed"
        )

    @staticmethod
    async def _emit(
        received: Received[Decision] | Received[QueueUpdate], event: Announcement
    ) -> None:
        """Enqueue one event a plan announces, with the batch."""
        await received.emit(
            event.topic, key=event.key, event_id=event.event_id, data=event.data, time=event.time
        )

    # --- lifecycle -----------------------------------------------------------------------

    async def update(self, batch: Sequence[Received[QueueUpdate]]) -> None:
        """Apply a batch of lifecycle steps in offset order exactly as applying them one by
        one would (why: :mod:`services.routing.updates`), in a fixed number of statements;
        refuse each step its item does not allow (dead letter with a reason)."""
        conn = batch[0].conn
        now = self.clock()
        updates = [(r.event.id, r.payload) for r in batch]
        state = await store.load_lifecycle(
            conn,
            [u.queue_item_id for _, u in updates],
            discussions=[
                u.queue_item_id for _, u in updates if u.status == "strategy_discussion_held"
            ],
        )
        steps = plan_updates(updates, state, now, self.config, self.calendar)
        await self._write_updates(conn, update_writes(steps), now)
        for received, step in zip(batch, steps, strict=True):
            with received.logged():
                await self._announce_update(received, step)

    @staticmethod
    async def _write_updates(conn: Connection, writes: UpdateWrites, now: datetime) -> None:
        """Write a batch of updates' rows (five statements at most). A clock met late, or a
        new clock already run out, is breached now, with the update that missed it."""
        await store.save_statuses(conn, writes.items)
        await store.add_deadlines(conn, writes.started)
        await store.meet_deadlines(conn, writes.met)
        await store.mark_breached(conn, now, writes.breaches)
        await store.add_history(conn, writes.history)

    async def _announce_update(self, received: Received[QueueUpdate], step: UpdateStep) -> None:
        """Set an update's outcome (or refusal) and emit the item's new status, then the
        siblings' items that joined the strategy discussion it records, then the breaches
        the step claimed."""
        if step.unknown_item:
            received.refused = Rejected.unknown_reference(
                "queue_item_id", "no queue item has this id"
            )
            return
        if step.invalid is not None:
            received.refused = Rejected.invalid_transition("status", step.invalid)
            return
        assert step.transition is not None  # a step not refused has its transition
        item, update = step.transition.item, step.update
        for event in step.announcements:
            await self._emit(received, event)
        for claimed in step.breaches:
            received.after_commit(functools.partial(self._count_breach, claimed))
        self.runtime.log.info(
            "queue_item_updated",
            queue_item_id=item.queue_item_id,
            status=update.status,
            hub=item.hub,
            queue=item.queue,
        )
        received.outcome = "applied"

    # --- SLA breaches --------------------------------------------------------------------

    def _count_breach(self, claimed: DueBreach) -> None:
        self.runtime.metrics.sla_breaches.labels(
            hub=claimed.hub, queue=claimed.queue, deadline=claimed.deadline
        ).inc()
        self.runtime.log.warning(
            "sla_breached",
            queue_item_id=claimed.queue_item_id,
            breach_id=claimed.breach_id,
            deadline=claimed.deadline,
            hub=claimed.hub,
            queue=claimed.queue,
        )

    async def scan_breaches(self) -> int:
        """Meet the acknowledge-referrer clocks of referrers acknowledged since routing,
        then claim every clock run out by now and enqueue its breach; return how many."""
        now = self.clock()
        runtime = self.runtime
        total = 0
        async with runtime.pool.acquire() as conn, conn.transaction():
            await store.meet_acknowledgements(conn)
        while True:
            async with runtime.pool.acquire() as conn, conn.transaction():
                due = await store.claim_breaches(conn, now, limit=BREACH_BATCH)
                await enqueue_rows(
                    conn,
                    runtime.service,
                    [
                        outbox_row(
                            service=runtime.service,
                            topic=runtime.topics(event.topic),
                            key=event.key,
                            event_id=event.event_id,
                            data=event.data,
                            time=event.time,
                        )
                        for event in (breached(claimed, now) for claimed in due)
                    ],
                )
            if due:
                runtime.relay.notify()
            for claimed in due:
                self._count_breach(claimed)
            total += len(due)
            if len(due) < BREACH_BATCH:
                return total

    async def watch_deadlines(self) -> None:
        """Forever: look for missed clocks every ``sla_scan_seconds`` (no traffic needed)."""
        await self.runtime.every(
            self.runtime.settings.sla_scan_seconds,
            self._scan_round,
            work="sla_scan",
            failed="routing_task_failed",
            fields=lambda: {"kind": "sla"},
        )

    async def _scan_round(self) -> None:
        await self.scan_breaches()

    # --- what ops see --------------------------------------------------------------------

    async def refresh_gauge(self) -> int:
        """Set the gauges counted from the record (open items by hub, queue and RAG; clocks
        due within the hour or overdue) from the database; return the open items."""
        async with self.runtime.pool.acquire() as conn:
            return await self.gauges.refresh(conn, self.clock())

    async def watch_queues(self) -> None:
        """Forever: refresh the record gauges every ``record_gauges_seconds``."""
        await self.runtime.every(
            self.runtime.settings.record_gauges_seconds,
            self._gauge_round,
            work="record_gauges",
            failed="routing_task_failed",
            fields=lambda: {"kind": "gauge"},
        )

    async def _gauge_round(self) -> None:
        await self.refresh_gauge()


def build(runtime: ServiceRuntime) -> Routing:
    """Register routing's agents and background tasks on the runtime's Faust app."""
    routing = Routing(runtime)
    app = runtime.app

    consume_topic(runtime, DECISIONS, DECISION_TYPES, routing.route)
    consume_topic(runtime, QUEUE_UPDATES, QUEUE_UPDATE_TYPES, routing.update)

    app.task(routing.watch_deadlines)
    app.task(routing.watch_queues)
    return routing
