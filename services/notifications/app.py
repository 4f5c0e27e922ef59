"""Notifications: feedback to referrers through the firewall, Operation Encompass notices
to schools, and webhook delivery to agencies without Kafka. Thin I/O around the pure
:mod:`~services.notifications.feedback`, :mod:`~services.notifications.encompass`,
:mod:`~services.notifications.firewall` and :mod:`~services.notifications.plan`.

Every outbound event is written, in the transaction that consumes its cause, together with
its audit row (``disclosures``), its business row (``feedback`` / ``encompass_notices``),
its outbox row and, for agencies with a webhook, its ``webhook_deliveries`` row.

Each topic has a batch effect (``services/common/pipeline.py``): it loads the state the
batch needs set-based, decides every event in order in memory
(:mod:`~services.notifications.plan`, which says why that equals one by one), writes the
batch's rows with one statement per table, and emits, counts and logs only what was new.
Statements per batch, whatever its size: contacts at most 6 (feedback, notices, unmatched
children, withheld children, disclosures, webhook deliveries; each only when the batch has
such rows, and withheld children come only from restricted notifications); routings at
most 5 (lock, read feedback, feedback, disclosures, webhook deliveries).

A restricted police notification (a live investigation holds more than is shared) gets
its acknowledgement, and its outcome once routed, like any other: those carry no police
detail (the firewall's allow-lists). Its Operation Encompass notices are withheld
(:mod:`~services.notifications.encompass`): each child is recorded in
``encompass_withheld`` with the reason, logged by id and counted in
``mash_encompass_withheld_total{reason}``.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from schemas.events import Contact, Routed
from schemas.types import ce_type_of
from services.common.calendar import WorkingCalendar
from services.common.ids import derive_id
from services.common.outbox import PRODUCT_SOURCE
from services.common.pipeline import consume_topic
from services.common.received import Received, Rejected
from services.common.runtime import ServiceRuntime
from services.common.topics import CONTACTS, ROUTED, SCHOOL_NOTIFICATIONS
from services.common.topology import Topology, load_topology
from services.notifications import encompass, plan, store
from services.notifications.delivery import WebhookSender
from services.notifications.firewall import ALLOW_LIST_VERSION, Disclosure
from services.notifications.webhooks import WebhookConfig, load_webhooks

if TYPE_CHECKING:
    from services.common.db import Connection

SERVICE = "notifications"
CONTACT_TYPES = {ce_type_of(Contact): Contact}
ROUTED_TYPES = {ce_type_of(Routed): Routed}

E = TypeVar("E", Contact, Routed)
"""An event notifications consumes."""


@dataclass(frozen=True)
class Written:
    """What a batch's inserts found new."""

    issued: Set[str]
    """Ids of the feedback events and notices whose rows are new (they go out)."""
    unmatched: Set[tuple[str, str]]
    """(contact id, subject id) of the children newly left for the police desk."""
    withheld: Set[tuple[str, str]]
    """(contact id, subject id) of the children newly recorded as withheld."""
    to_deliver: Set[str]
    """Ids of the new feedback events with a webhook delivery."""


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

    async def on_contacts(self, batch: Sequence[Received[Contact]]) -> None:
        """Recorded contacts: acknowledge each; for police domestic abuse, tell the schools.

        Contacts need no state read first: whether a row is new is what its insert says.
        Decided in order (see :mod:`~services.notifications.plan` for why a batch gives
        the same result as its events one by one).
        """
        ledger = plan.Ledger()
        plans = [
            plan.contact_plan(r.payload, ledger, self.calendar, self.runtime.clock()) for r in batch
        ]
        await self._carry_out(batch, plans)

    async def on_routings(self, batch: Sequence[Received[Routed]]) -> None:
        """Routings: report each outcome, or an update when what the referrer knows changed.

        The batch's contacts are locked (in key order), then their feedback is read, in two
        statements; each routing is then decided in order against that and what the
        earlier routings of the batch issued (:mod:`~services.notifications.plan`).
        """
        if not batch:
            return
        routings = [r.payload for r in batch]
        contact_ids = sorted({r.contact_id for r in routings})
        conn = batch[0].conn
        await store.lock_contacts(conn, contact_ids)
        ledger = plan.Ledger(await store.recorded_feedback(conn, contact_ids))
        plans = [plan.routed_plan(r, ledger, self.topology, self.runtime.clock()) for r in routings]
        await self._carry_out(batch, plans)

    async def _carry_out(self, batch: Sequence[Received[E]], plans: Sequence[plan.Plan]) -> None:
        """Write the batch's rows, then, event by event in order, emit and count what was
        new and set each event's outcome (or refuse it)."""
        if not batch:
            return
        written = await self._write(batch[0].conn, plans)
        for received, planned in zip(batch, plans, strict=True):
            with received.logged():
                if planned.refused:
                    received.refused = Rejected.unknown_reference(
                        "hub", "the hub is not in this deployment's topology"
                    )
                    continue
                for issue in planned.issues:
                    if issue.event_id in written.issued:
                        await self._disclose_on_kafka(received, issue, written)
                for child in planned.unmatched:
                    if (child.contact_id, child.subject_id) in written.unmatched:
                        self._unmatched(received, child)
                for held in planned.withheld:
                    if (held.contact_id, held.subject_id) in written.withheld:
                        self._withheld(received, held)
                received.outcome = planned.outcome(written.issued)

    async def _write(self, conn: Connection, plans: Sequence[plan.Plan]) -> Written:
        """Insert every claimed row of the batch: at most one statement per table.

        Disclosures and webhook deliveries are written for the new rows only, as they were
        one by one; their own insert skips any recorded before.
        """
        issues = [i for p in plans for i in p.issues]
        issued = await store.insert_feedback(
            conn, [i.feedback for i in issues if i.feedback is not None]
        )
        issued |= await store.insert_notices(
            conn, [i.notice for i in issues if i.notice is not None]
        )
        unmatched = await store.insert_unmatched(conn, [c for p in plans for c in p.unmatched])
        withheld = await store.insert_withheld(conn, [c for p in plans for c in p.withheld])
        new = [i for i in issues if i.event_id in issued]
        await store.insert_disclosures(conn, [self._disclosure_row(i) for i in new])
        deliveries = [row for i in new if (row := self._delivery_row(i)) is not None]
        await store.insert_deliveries(conn, deliveries)
        return Written(issued, unmatched, withheld, frozenset(d.event_id for d in deliveries))

    def _disclosure_row(self, issue: plan.Issue) -> store.DisclosureRow:
        """The audit of one event leaving on Kafka."""
        d = issue.disclosure
        return store.DisclosureRow(
            disclosure_id=derive_id("disclosure", "kafka", d.event_id),
            event_id=d.event_id,
            contact_id=issue.contact_id,
            channel="kafka",
            destination=self.runtime.topics(issue.topic),
            recipient=d.recipient,
            audience=d.audience,
            rule=d.rule,
            allow_list=ALLOW_LIST_VERSION,
            fields=d.fields,
            disclosed_at=issue.at,
        )

    def _delivery_row(self, issue: plan.Issue) -> store.DeliveryRow | None:
        """The webhook delivery of a feedback event, if its agency has an endpoint."""
        d = issue.disclosure
        if issue.feedback is None or self.webhooks is None or self.sender is None:
            return None
        if self.webhooks.endpoint(d.recipient) is None:
            return None
        return store.DeliveryRow(
            delivery_id=derive_id("webhook-delivery", d.event_id, d.recipient),
            event_id=d.event_id,
            contact_id=issue.contact_id,
            agency_id=d.recipient,
            audience=d.audience,
            ce_source=f"{PRODUCT_SOURCE}:{self.runtime.service}",
            ce_time=issue.at,
            data=d.event.model_dump_json().encode(),
        )

    async def _disclose_on_kafka(
        self, received: Received[E], issue: plan.Issue, written: Written
    ) -> None:
        """Enqueue a new event (its disclosure is recorded), then count and log it."""
        d = issue.disclosure
        await received.emit(
            issue.topic, key=d.recipient, event_id=d.event_id, data=d.event, time=issue.at
        )
        received.after_commit(
            lambda: self.runtime.metrics.disclosures.labels(
                audience=d.audience, channel="kafka"
            ).inc()
        )
        if issue.feedback is not None:
            self._feedback_issued(received, issue.feedback, d, written)
        elif issue.notice is not None:
            self._notice_issued(received, issue.notice)

    def _feedback_issued(
        self, received: Received[E], row: store.FeedbackRow, d: Disclosure, written: Written
    ) -> None:
        if d.event_id in written.to_deliver and self.sender is not None:
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

    def _notice_issued(self, received: Received[E], row: store.NoticeRow) -> None:
        received.after_commit(self.runtime.metrics.encompass_notices_due.inc)
        self.runtime.log.info(
            "encompass_notice_issued",
            contact_id=row.contact_id,
            notice_id=row.notice_id,
            subject_id=row.subject_id,
        )

    def _unmatched(self, received: Received[E], child: encompass.Unmatched) -> None:
        received.after_commit(
            lambda: self.runtime.metrics.encompass_unmatched.labels(reason=child.reason).inc()
        )
        self.runtime.log.warning(
            "encompass_unmatched",
            contact_id=child.contact_id,
            subject_id=child.subject_id,
            reason=child.reason,
        )

    def _withheld(self, received: Received[E], child: encompass.Withheld) -> None:
        """Once committed, count and log (ids only) a child whose notice is withheld."""
        metrics, log = self.runtime.metrics, self.runtime.log

        def committed() -> None:
            metrics.encompass_withheld.labels(reason=child.reason).inc()
            log.info(
                "encompass_withheld",
                contact_id=child.contact_id,
                subject_id=child.subject_id,
                reason=child.reason,
            )

        received.after_commit(committed)

    async def watch_encompass(self) -> None:
        """Forever: count notices as sent once the broker has them and keep the unsent
        gauge fresh, every ``outbox_poll_seconds`` (backing off while the database is
        down: the next round catches up)."""
        await self.runtime.every(
            self.runtime.settings.outbox_poll_seconds,
            self.count_notices,
            work="encompass_watch",
            failed="encompass_watch_failed",
        )

    async def count_notices(self) -> None:
        """One round of :meth:`watch_encompass`."""
        metrics = self.runtime.metrics
        async with self.runtime.pool.acquire() as conn:
            sent = await store.mark_notices_sent(conn, self.runtime.topics(SCHOOL_NOTIFICATIONS))
            waiting, overdue = await store.unsent_notices(conn)
        for on_time in sent:
            metrics.encompass_notices_sent.labels(timeliness="on_time" if on_time else "late").inc()
        metrics.encompass_notices_unsent.labels(overdue="false").set(waiting)
        metrics.encompass_notices_unsent.labels(overdue="true").set(overdue)


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

    consume_topic(runtime, CONTACTS, CONTACT_TYPES, notifications.on_contacts)
    consume_topic(runtime, ROUTED, ROUTED_TYPES, notifications.on_routings)
    app.task(notifications.watch_encompass)
    if notifications.sender is not None:
        app.task(notifications.sender.run)
        runtime.log.info(
            "webhooks_enabled", endpoint_count=len(notifications.sender.config.endpoints)
        )
    return notifications
