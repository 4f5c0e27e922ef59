"""Routing: put each decided child on its hub's queue with its statutory clocks, follow each
item's lifecycle, and raise one SLA breach per missed clock.

Thin I/O around :mod:`services.routing.queues` and :mod:`services.routing.lifecycle`
(pure). Two agents consume through the one pipeline (mash.decisions.v1 and
mash.queue-updates.v1); two background tasks need no traffic: the breach scheduler and
the open-items gauge. Every time is read from the injected clock
(:mod:`services.routing.clock`), never from the system directly.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from schemas.events import (
    Decision,
    QueueItem,
    Routed,
    SlaBreach,
)
from schemas.inbound import QueueUpdate
from schemas.types import ce_type_of
from services.common.calendar import WorkingCalendar
from services.common.ids import derive_id
from services.common.outbox import enqueue_event
from services.common.pipeline import Received, Rejected, consume_topic, one_by_one
from services.common.runtime import ServiceRuntime
from services.common.topics import (
    DECISIONS,
    QUEUE_UPDATES,
    ROUTED,
    SLA_BREACHES,
    queue_topic,
)
from services.common.topology import load_topology
from services.routing import store
from services.routing.clock import Clock, clock_from
from services.routing.deadlines import DeadlineConfig, calendar_for, load_deadline_config
from services.routing.gauges import RecordGauges
from services.routing.lifecycle import InvalidTransition, apply_update
from services.routing.queues import Closure, plan_routing

SERVICE = "routing"
DECISION_TYPES = {ce_type_of(Decision): Decision}
QUEUE_UPDATE_TYPES = {ce_type_of(QueueUpdate): QueueUpdate}
#: Who routing's own changes are recorded as in an item's history.
ROUTING_ACTOR = "routing"
#: Breaches claimed per scheduler transaction.
BREACH_BATCH = 500

Emit = Callable[[str, str, str, Any, datetime], Awaitable[None]]
"""(topic, key, event_id, data, time) -> enqueue in the current transaction."""


def status_event_id(queue_item_id: str, status: str) -> str:
    """Id of the event announcing that an item reached ``status`` (each happens once)."""
    return derive_id("queue-item-status", queue_item_id, status)


class Routing:
    """Routing's effects and background work."""

    def __init__(
        self,
        runtime: ServiceRuntime,
        config: DeadlineConfig | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.runtime = runtime
        self.config = config or load_deadline_config()
        self.clock = clock or clock_from(runtime.settings.clock_file)
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

    async def route(self, received: Received) -> str:
        """Place each child of an effective decision; record and announce every change."""
        decision = received.payload
        assert isinstance(decision, Decision)
        conn = received.conn
        now = self.clock()
        if await store.decision_applied(conn, decision.decision_id):
            # The same decision under another event id (a replay): no second effect.
            await received.audit("decision", decision.decision_id, "already_routed", {})
            return "duplicate_decision"
        newer = await store.superseded_by(conn, decision.decision_id)
        if newer is not None:
            # Arrived after the decision that overrides it: it is no longer effective.
            await store.record_decision(conn, decision, "superseded", now)
            await received.audit(
                "decision", decision.decision_id, "superseded", {"decision_id": newer}
            )
            return "superseded"
        if decision.hub not in self.hubs:
            # Its queue topics do not exist: publishing there would stall the outbox.
            raise Rejected.unknown_reference("hub", "hub is not in the active topology")
        subjects = [s.subject_id for s in decision.subjects]
        open_items = await store.open_items_for(conn, subjects)
        plan = plan_routing(decision, open_items, now, self.config, self.calendar)
        for closure in plan.closures:
            await self._close(received, closure, decision, now)
        for item in plan.opened:
            await self._open(received, item, decision)
        for placement in plan.placements:
            if placement.kept is not None:
                await store.add_history(
                    conn,
                    queue_item_id=placement.kept.queue_item_id,
                    action="confirmed",
                    cause=decision.decision_id,
                    from_status=None,
                    to_status="open",
                    at=decision.decided_at,
                    actor=ROUTING_ACTOR,
                    detail={"decision_id": decision.decision_id, "source": decision.source},
                )
        await store.record_decision(conn, decision, "routed", now)
        routed = Routed(
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
        await received.emit(
            ROUTED, key=decision.contact_id, event_id=routed.routed_id, data=routed, time=now
        )
        # A clock that had already run out when the item was routed (a late or replayed
        # decision) is breached now, with the routing, not at the next scheduler scan.
        opened_ids = [i.queue_item_id for i in plan.opened]
        if opened_ids:
            await self._emit_breaches(received, now, opened_ids)
        self.runtime.log.info(
            "contact_routed",
            contact_id=decision.contact_id,
            decision_id=decision.decision_id,
            queue_item_ids=opened_ids,
            closed_count=len(plan.closures),
            hub=plan.hub,
            queue=plan.queue,
        )
        return "routed"

    async def _open(self, received: Received, item: QueueItem, decision: Decision) -> None:
        if not await store.insert_item(received.conn, item):
            return
        await store.add_history(
            received.conn,
            queue_item_id=item.queue_item_id,
            action="opened",
            cause=decision.decision_id,
            from_status=None,
            to_status="open",
            at=item.routed_at,
            actor=ROUTING_ACTOR,
            detail={
                "decision_id": decision.decision_id,
                "source": decision.source,
                "open_case_update": item.open_case_update,
            },
        )
        await received.emit(
            queue_topic(item.hub, item.queue),
            key=item.subject_id,
            event_id=item.queue_item_id,
            data=item,
            time=item.routed_at,
        )
        received.after_commit(
            functools.partial(
                self.runtime.metrics.routed.labels(queue=item.queue, hub=item.hub).inc
            )
        )

    async def _close(
        self, received: Received, closure: Closure, decision: Decision, now: datetime
    ) -> None:
        """Close an item a decision moves (override) or escalates (open case to s47)."""
        conn = received.conn
        item = await store.load_item(conn, closure.item.queue_item_id)
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
        await store.save_status(conn, closed)
        # The item's clocks stop with it; one already run out stays a breach (met late).
        await store.meet_deadlines(conn, item.queue_item_id, item.deadlines, now, closure.kind)
        await store.add_history(
            conn,
            queue_item_id=item.queue_item_id,
            action=closure.kind,
            cause=decision.decision_id,
            from_status=item.status,
            to_status="closed",
            at=now,
            actor=ROUTING_ACTOR,
            detail={"decision_id": decision.decision_id, "replaced_by": closure.replaced_by},
        )
        await received.emit(
            queue_topic(item.hub, item.queue),
            key=item.subject_id,
            event_id=status_event_id(item.queue_item_id, "closed"),
            data=closed,
            time=now,
        )

    # --- lifecycle -----------------------------------------------------------------------

    async def update(self, received: Received) -> str:
        """Apply one lifecycle step to an item, or refuse it (dead letter with a reason)."""
        update = received.payload
        assert isinstance(update, QueueUpdate)
        conn = received.conn
        item = await store.load_item(conn, update.queue_item_id)
        if item is None:
            raise Rejected.unknown_reference("queue_item_id", "no queue item has this id")
        try:
            step = apply_update(item, update, self.config, self.calendar(item.hub))
        except InvalidTransition as exc:
            raise Rejected.invalid_transition("status", str(exc)) from None
        await store.save_status(conn, step.item)
        await store.meet_deadlines(conn, item.queue_item_id, step.met, update.at, update.status)
        await store.add_deadlines(conn, item.queue_item_id, step.started)
        await store.add_history(
            conn,
            queue_item_id=item.queue_item_id,
            action=update.status,
            cause=received.event.id,
            from_status=step.previous_status,
            to_status=update.status,
            at=update.at,
            actor=update.by,
            detail={
                "event_id": received.event.id,
                "strategy_outcome": update.strategy_outcome,
                "closure_reason": update.closure_reason,
                "met": sorted(step.met),
                "started": sorted(step.started),
            },
        )
        now = self.clock()
        await received.emit(
            queue_topic(item.hub, item.queue),
            key=item.subject_id,
            event_id=status_event_id(item.queue_item_id, update.status),
            data=step.item,
            time=now,
        )
        # A clock met late, or a new clock already run out, is a breach now.
        await self._emit_breaches(received, now, [item.queue_item_id])
        self.runtime.log.info(
            "queue_item_updated",
            queue_item_id=item.queue_item_id,
            status=update.status,
            hub=item.hub,
            queue=item.queue,
        )
        return "applied"

    # --- SLA breaches --------------------------------------------------------------------

    async def _emit_breaches(
        self, received: Received, now: datetime, queue_item_ids: list[str]
    ) -> None:
        due = await store.claim_breaches(
            received.conn, now, limit=BREACH_BATCH, queue_item_ids=queue_item_ids
        )
        for claimed in due:
            breach = self._breach(claimed, now)
            await received.emit(
                SLA_BREACHES,
                key=breach.queue_item_id,
                event_id=breach.breach_id,
                data=breach,
                time=now,
            )
            received.after_commit(functools.partial(self._count_breach, claimed))

    @staticmethod
    def _breach(claimed: store.DueBreach, now: datetime) -> SlaBreach:
        return SlaBreach(
            breach_id=claimed.breach_id,
            queue_item_id=claimed.queue_item_id,
            deadline=claimed.deadline,
            due_at=claimed.due_at,
            breached_at=now,
            hub=claimed.hub,
            queue=claimed.queue,
        )

    def _count_breach(self, claimed: store.DueBreach) -> None:
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
        """Claim every clock run out by now and enqueue its breach; return how many."""
        now = self.clock()
        runtime = self.runtime
        total = 0
        while True:
            async with runtime.pool.acquire() as conn, conn.transaction():
                due = await store.claim_breaches(conn, now, limit=BREACH_BATCH)
                for claimed in due:
                    breach = self._breach(claimed, now)
                    await enqueue_event(
                        conn,
                        service=runtime.service,
                        topic=runtime.topics(SLA_BREACHES),
                        key=breach.queue_item_id,
                        event_id=breach.breach_id,
                        data=breach,
                        time=now,
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
        await self._every(self.runtime.settings.sla_scan_seconds, self.scan_breaches, "sla")

    # --- what ops see --------------------------------------------------------------------

    async def refresh_gauge(self) -> int:
        """Set the gauges counted from the record (open items by hub, queue and RAG; clocks
        due within the hour or overdue) from the database; return the open items."""
        async with self.runtime.pool.acquire() as conn:
            return await self.gauges.refresh(conn, self.clock())

    async def watch_queues(self) -> None:
        """Forever: refresh the record gauges every ``record_gauges_seconds``."""
        await self._every(self.runtime.settings.record_gauges_seconds, self.refresh_gauge, "gauge")

    async def _every(self, seconds: float, job: Callable[[], Awaitable[int]], stage: str) -> None:
        await self.runtime.ready()
        delay = seconds
        while True:
            try:
                await job()
                delay = seconds
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database down or clock file unreadable: retry
                self.runtime.metrics.retries.labels(stage=stage).inc()
                self.runtime.log.warning(
                    "routing_task_failed",
                    kind=stage,
                    error_type=type(exc).__name__,
                    delay_seconds=delay,
                )
                delay = min(delay * 2, self.runtime.settings.retry_max_seconds)
            await asyncio.sleep(delay)


def build(runtime: ServiceRuntime) -> Routing:
    """Register routing's agents and background tasks on the runtime's Faust app."""
    routing = Routing(runtime)
    app = runtime.app

    consume_topic(runtime, DECISIONS, DECISION_TYPES, one_by_one(routing.route), stage=SERVICE)
    consume_topic(
        runtime,
        QUEUE_UPDATES,
        QUEUE_UPDATE_TYPES,
        one_by_one(routing.update),
        stage=f"{SERVICE}_lifecycle",
    )

    app.task(routing.watch_deadlines)
    app.task(routing.watch_queues)
    return routing
