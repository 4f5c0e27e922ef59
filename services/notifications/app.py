"""Notifications: feedback to referrers through the firewall, Operation Encompass notices
to schools, and webhook delivery to agencies without Kafka. Thin I/O around the pure
:mod:`~services.notifications.feedback`, :mod:`~services.notifications.encompass` and
:mod:`~services.notifications.firewall`.

Every outbound event is written, in the transaction that consumes its cause, together with
its audit row (``disclosures``), its business row (``feedback`` / ``encompass_notices``),
its outbox row and, for agencies with a webhook, its ``webhook_deliveries`` row.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from schemas.events import Contact, Routed, SchoolNotification
from schemas.types import ce_type_of
from services.common.calendar import WorkingCalendar
from services.common.ids import derive_id
from services.common.outbox import PRODUCT_SOURCE
from services.common.pipeline import Received, Rejected, consume_topic, one_by_one
from services.common.runtime import ServiceRuntime
from services.common.topics import CONTACTS, FEEDBACK, ROUTED, SCHOOL_NOTIFICATIONS
from services.common.topology import Topology, load_topology
from services.notifications import encompass, feedback, store
from services.notifications.delivery import WebhookSender
from services.notifications.firewall import ALLOW_LIST_VERSION, Disclosure
from services.notifications.webhooks import WebhookConfig, load_webhooks

SERVICE = "notifications"
CONTACT_TYPES = {ce_type_of(Contact): Contact}
ROUTED_TYPES = {ce_type_of(Routed): Routed}


class Notifications:
    """The notifications service's effects."""

    def __init__(
        self,
        runtime: ServiceRuntime,
        topology: Topology,
        calendar: WorkingCalendar,
        webhooks: WebhookConfig | None = None,
    ) -> None:
        self.runtime = runtime
        self.topology = topology
        self.calendar = calendar
        self.webhooks = webhooks
        self.sender = None if webhooks is None else WebhookSender(runtime, webhooks)

    async def _disclose_on_kafka(
        self, received: Received, topic: str, contact_id: str, d: Disclosure, at: datetime
    ) -> None:
        """Audit the disclosure, then enqueue the event (same transaction)."""
        await store.record_disclosure(
            received.conn,
            store.DisclosureRow(
                disclosure_id=derive_id("disclosure", "kafka", d.event_id),
                event_id=d.event_id,
                contact_id=contact_id,
                channel="kafka",
                destination=self.runtime.topics(topic),
                recipient=d.recipient,
                audience=d.audience,
                rule=d.rule,
                allow_list=ALLOW_LIST_VERSION,
                fields=d.fields,
                disclosed_at=at,
            ),
        )
        await received.emit(topic, key=d.recipient, event_id=d.event_id, data=d.event, time=at)
        received.after_commit(
            lambda: self.runtime.metrics.disclosures.labels(
                audience=d.audience, channel="kafka"
            ).inc()
        )

    async def _issue_feedback(
        self, received: Received, row: store.FeedbackRow, d: Disclosure
    ) -> bool:
        """Record, audit and enqueue one feedback event; False if it was issued before."""
        if not await store.record_feedback(received.conn, row):
            return False
        await self._disclose_on_kafka(received, FEEDBACK, row.contact_id, d, row.issued_at)
        endpoint = None if self.webhooks is None else self.webhooks.endpoint(d.recipient)
        if endpoint is not None and self.sender is not None:
            await store.enqueue_delivery(
                received.conn,
                delivery_id=derive_id("webhook-delivery", d.event_id, d.recipient),
                event_id=d.event_id,
                contact_id=row.contact_id,
                agency_id=d.recipient,
                audience=d.audience,
                ce_source=f"{PRODUCT_SOURCE}:{self.runtime.service}",
                ce_time=row.issued_at,
                data=d.event.model_dump_json().encode(),
            )
            received.after_commit(self.sender.notify)
        received.after_commit(
            lambda: self.runtime.metrics.feedback_sent.labels(
                agency_type=d.audience, kind=row.kind
            ).inc()
        )
        self.runtime.log.info(
            "feedback_issued",
            contact_id=row.contact_id,
            feedback_id=row.feedback_id,
            kind=row.kind,
            agency_type=d.audience,
        )
        return True

    async def on_contact(self, received: Received) -> str:
        """A recorded contact: acknowledge it; for police domestic abuse, tell the schools."""
        contact = received.payload
        assert isinstance(contact, Contact)
        now = datetime.now(UTC)
        ack = feedback.acknowledgement(contact, now)
        issued = await self._issue_feedback(
            received,
            store.FeedbackRow(
                feedback_id=ack.event_id,
                contact_id=contact.contact_id,
                kind="acknowledgement",
                agency_id=contact.source.agency_id,
                audience=ack.audience,
                issued_at=now,
            ),
            ack,
        )
        scheme = encompass.school_notices(contact, self.calendar)
        for notice in scheme.notices:
            await self._issue_notice(received, contact, notice, now)
        for child in scheme.unmatched:
            await self._record_unmatched(received, child)
        return "applied" if issued else "already_acknowledged"

    async def _issue_notice(
        self, received: Received, contact: Contact, notice: encompass.SchoolNotice, now: datetime
    ) -> None:
        event = notice.disclosure.event
        assert isinstance(event, SchoolNotification)
        if not await store.record_notice(
            received.conn,
            notice_id=event.notice_id,
            contact_id=contact.contact_id,
            subject_id=notice.subject_id,
            school_urn=event.school_urn,
            police_reference=event.police_reference,
            incident_at=event.incident_at,
            due_by=event.due_by,
        ):
            return
        await self._disclose_on_kafka(
            received, SCHOOL_NOTIFICATIONS, contact.contact_id, notice.disclosure, now
        )
        received.after_commit(self.runtime.metrics.encompass_notices_due.inc)
        self.runtime.log.info(
            "encompass_notice_issued",
            contact_id=contact.contact_id,
            notice_id=event.notice_id,
            subject_id=notice.subject_id,
        )

    async def _record_unmatched(self, received: Received, child: encompass.Unmatched) -> None:
        if not await store.record_unmatched(received.conn, child):
            return
        received.after_commit(
            lambda: self.runtime.metrics.encompass_unmatched.labels(reason=child.reason).inc()
        )
        self.runtime.log.warning(
            "encompass_unmatched",
            contact_id=child.contact_id,
            subject_id=child.subject_id,
            reason=child.reason,
        )

    async def on_routed(self, received: Received) -> str:
        """A routing: report the outcome, or an update when what the referrer knows changed."""
        routed = received.payload
        assert isinstance(routed, Routed)
        await store.lock_contact(received.conn, routed.contact_id)
        reported = await store.last_reported(received.conn, routed.contact_id)
        now = datetime.now(UTC)
        decided = feedback.on_routed(routed, reported, self.topology, now)
        if decided.why == "unknown_hub":
            raise Rejected.unknown_reference("hub", "the hub is not in this deployment's topology")
        # Acknowledge first if the contact has not been read yet (a no-op otherwise): same
        # agency key, same transaction, so the acknowledgement is published first.
        ack = feedback.acknowledgement_before(routed, now)
        await self._issue_feedback(
            received,
            store.FeedbackRow(
                feedback_id=ack.event_id,
                contact_id=routed.contact_id,
                kind="acknowledgement",
                agency_id=ack.recipient,
                audience=ack.audience,
                issued_at=now,
            ),
            ack,
        )
        if decided.disclosure is None:
            return decided.why
        d = decided.disclosure
        issued = await self._issue_feedback(
            received,
            store.FeedbackRow(
                feedback_id=d.event_id,
                contact_id=routed.contact_id,
                kind=decided.why,
                agency_id=d.recipient,
                audience=d.audience,
                issued_at=now,
                sequence=decided.sequence,
                outcome=routed.outcome,
                hub=routed.hub,
                routed_id=routed.routed_id,
                decided_at=routed.decided_at,
                routed_at=routed.routed_at,
            ),
            d,
        )
        return decided.why if issued else "duplicate_feedback"

    async def watch_encompass(self) -> None:
        """Count notices as sent once the broker has them; keep the unsent gauge fresh."""
        await self.runtime.ready()
        metrics = self.runtime.metrics
        topic = self.runtime.topics(SCHOOL_NOTIFICATIONS)
        while True:
            try:
                async with self.runtime.pool.acquire() as conn:
                    sent = await store.mark_notices_sent(conn, topic)
                    waiting, overdue = await store.unsent_notices(conn)
                for on_time in sent:
                    metrics.encompass_notices_sent.labels(
                        timeliness="on_time" if on_time else "late"
                    ).inc()
                metrics.encompass_notices_unsent.labels(overdue="false").set(waiting)
                metrics.encompass_notices_unsent.labels(overdue="true").set(overdue)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database down: the next round catches up
                self.runtime.log.warning("encompass_watch_failed", error_type=type(exc).__name__)
            await asyncio.sleep(self.runtime.settings.outbox_poll_seconds)


def build(runtime: ServiceRuntime) -> Notifications:
    """Register notifications' agents and background tasks on the runtime's Faust app."""
    path = runtime.settings.webhooks_config
    notifications = Notifications(
        runtime,
        load_topology(runtime.settings.topology),
        WorkingCalendar(),
        None if not path else load_webhooks(path),
    )
    app = runtime.app

    consume_topic(
        runtime,
        CONTACTS,
        CONTACT_TYPES,
        one_by_one(notifications.on_contact),
        stage="notifications_contact",
    )
    consume_topic(
        runtime,
        ROUTED,
        ROUTED_TYPES,
        one_by_one(notifications.on_routed),
        stage="notifications_routed",
    )
    app.task(notifications.watch_encompass)
    if notifications.sender is not None:
        app.task(notifications.sender.run)
        runtime.log.info(
            "webhooks_enabled", endpoint_count=len(notifications.sender.config.endpoints)
        )
    return notifications
