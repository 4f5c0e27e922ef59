"""Routing: put each decided contact on its hub's queue with its statutory deadlines."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from schemas.events import Decision, Routed
from schemas.types import ce_type_of
from services.common.calendar import WorkingCalendar
from services.common.ids import derive_id
from services.common.kafka import inbound_message, raw_topic
from services.common.pipeline import Received, consume
from services.common.runtime import ServiceRuntime
from services.common.topics import DECISIONS, ROUTED, queue_topic
from services.routing import store
from services.routing.deadlines import load_deadline_config
from services.routing.queues import QUEUE_FOR_OUTCOME, queue_items_for

SERVICE = "routing"
DECISION_TYPES = {ce_type_of(Decision): Decision}


class Routing:
    """The routing service's effect: one decision -> queue items + one routed event."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.calendar = WorkingCalendar()
        self.deadlines = load_deadline_config()

    async def route(self, received: Received) -> str:
        """Create the decision's queue items, record them and enqueue their events."""
        decision = received.payload
        assert isinstance(decision, Decision)
        routed_at = datetime.now(UTC)
        items = queue_items_for(decision, routed_at, self.calendar, self.deadlines)
        for item in items:
            if not await store.record_queue_item(received.conn, item):
                continue
            await received.audit(
                "queue_item",
                item.queue_item_id,
                "opened",
                {"contact_id": item.contact_id, "hub": item.hub, "queue": item.queue},
            )
            await received.emit(
                queue_topic(item.hub, item.queue),
                key=item.subject_id,
                event_id=item.queue_item_id,
                data=item,
                time=routed_at,
            )
            received.after_commit(
                functools.partial(
                    self.runtime.metrics.routed.labels(queue=item.queue, hub=item.hub).inc
                )
            )
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
            hub=decision.hub,
            queue=QUEUE_FOR_OUTCOME[decision.outcome],
            queue_item_ids=[i.queue_item_id for i in items],
            contact_source=decision.contact_source,
            received_at=decision.received_at,
            decided_at=decision.decided_at,
            routed_at=routed_at,
        )
        await received.emit(
            ROUTED, key=decision.contact_id, event_id=routed.routed_id, data=routed, time=routed_at
        )
        latency = (routed_at - decision.received_at).total_seconds()
        received.after_commit(lambda: self.runtime.metrics.end_to_end_seconds.observe(latency))
        self.runtime.log.info(
            "contact_routed",
            contact_id=decision.contact_id,
            decision_id=decision.decision_id,
            queue_item_count=len(items),
            hub=decision.hub,
        )
        return "applied"


def build(runtime: ServiceRuntime) -> Routing:
    """Register routing's agents on the runtime's Faust app."""
    routing = Routing(runtime)
    app = runtime.app

    @app.agent(raw_topic(app, runtime.topics(DECISIONS)), concurrency=1)
    async def decisions(stream: Any) -> None:
        async for event in stream.events():
            await consume(
                runtime, inbound_message(event), DECISION_TYPES, routing.route, stage=SERVICE
            )

    return routing
