"""Notifications: feedback to the referring agency through the firewall."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from schemas.events import Contact, Feedback, Routed, SourceCoordinates
from schemas.types import ce_type_of
from services.common.kafka import inbound_message, raw_topic
from services.common.pipeline import Received, consume
from services.common.runtime import ServiceRuntime
from services.common.topics import CONTACTS, FEEDBACK, ROUTED
from services.common.topology import load_topology
from services.notifications import feedback as firewall
from services.notifications import store

SERVICE = "notifications"
CONTACT_TYPES = {ce_type_of(Contact): Contact}
ROUTED_TYPES = {ce_type_of(Routed): Routed}


class Notifications:
    """The notifications service's effects: acknowledge contacts, report outcomes."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.topology = load_topology(runtime.settings.topology)

    async def _send(
        self, received: Received, contact_id: str, source: SourceCoordinates, fb: Feedback
    ) -> str:
        audience = firewall.audience_of(source)
        if not await store.record_feedback(
            received.conn,
            feedback_id=fb.feedback_id,
            contact_id=contact_id,
            kind=fb.kind,
            agency_id=source.agency_id,
            audience=audience,
            issued_at=fb.issued_at,
        ):
            return "duplicate_feedback"
        await received.audit(
            "feedback",
            fb.feedback_id,
            "disclosed",
            {"contact_id": contact_id, "kind": fb.kind, "audience": audience},
        )
        await received.emit(
            FEEDBACK, key=source.agency_id, event_id=fb.feedback_id, data=fb, time=fb.issued_at
        )
        received.after_commit(
            lambda: self.runtime.metrics.feedback_sent.labels(
                agency_type=audience, kind=fb.kind
            ).inc()
        )
        self.runtime.log.info(
            "feedback_issued", contact_id=contact_id, feedback_id=fb.feedback_id, kind=fb.kind
        )
        return "applied"

    async def acknowledge(self, received: Received) -> str:
        """Acknowledge a recorded contact to its referrer."""
        contact = received.payload
        assert isinstance(contact, Contact)
        fb = firewall.acknowledgement(contact, datetime.now(UTC))
        return await self._send(received, contact.contact_id, contact.source, fb)

    async def report_outcome(self, received: Received) -> str:
        """Tell a professional referrer the outcome once the contact is routed."""
        routed = received.payload
        assert isinstance(routed, Routed)
        fb = firewall.outcome(routed, self.topology, datetime.now(UTC))
        if fb is None:
            return "public_referrer_no_outcome"
        return await self._send(received, routed.contact_id, routed.contact_source, fb)


def build(runtime: ServiceRuntime) -> Notifications:
    """Register notifications' agents on the runtime's Faust app."""
    notifications = Notifications(runtime)
    app = runtime.app

    @app.agent(raw_topic(app, runtime.topics(CONTACTS)), concurrency=1)
    async def contacts(stream: Any) -> None:
        async for event in stream.events():
            await consume(
                runtime,
                inbound_message(event),
                CONTACT_TYPES,
                notifications.acknowledge,
                stage="notifications_acknowledgement",
            )

    @app.agent(raw_topic(app, runtime.topics(ROUTED)), concurrency=1)
    async def routed(stream: Any) -> None:
        async for event in stream.events():
            await consume(
                runtime,
                inbound_message(event),
                ROUTED_TYPES,
                notifications.report_outcome,
                stage="notifications_outcome",
            )

    return notifications
