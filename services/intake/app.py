"""Intake: validate each inbound police notification and referral, record it as a contact
in the system of record, and emit it on ``mash.contacts.v1``. Thin I/O around
:mod:`services.intake.contacts` (pure).
"""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.events import Contact
from schemas.inbound import PoliceNotification, Referral
from schemas.types import ce_type_of
from services.common.pipeline import Received, consume_topic, one_by_one
from services.common.runtime import ServiceRuntime
from services.common.topics import CONTACTS, INBOUND_POLICE, INBOUND_REFERRALS
from services.common.topology import Topology, load_topology
from services.intake import store
from services.intake.contacts import (
    build_contact,
    identify_children,
    incident_date,
    source_of,
)

SERVICE = "intake"
POLICE_TYPES = {ce_type_of(PoliceNotification): PoliceNotification}
REFERRAL_TYPES = {ce_type_of(Referral): Referral}


class Intake:
    """The intake service's effect: one inbound payload -> one recorded contact."""

    def __init__(self, runtime: ServiceRuntime, topology: Topology) -> None:
        self.runtime = runtime
        self.topology = topology

    async def record(self, received: Received) -> str:
        """Record the contact and enqueue it; a repeat by source reference has no effect."""
        payload = received.payload
        assert isinstance(payload, PoliceNotification | Referral)
        source = source_of(payload, received.event, received.message)
        conn = received.conn
        if await store.contact_exists(conn, source.system, source.reference):
            self.runtime.metrics.duplicates_skipped.labels(topic=received.message.topic).inc()
            await received.audit(
                "inbound_event", received.event.id, "duplicate_source_reference", {}
            )
            return "duplicate_source"
        children = identify_children(payload, source.system)
        incident = incident_date(payload)
        received_at = (
            payload.reported_at if isinstance(payload, PoliceNotification) else payload.received_at
        )
        history = await store.load_history(
            conn, [c.child.subject_id for c in children], received_at, incident, source.system
        )
        contact: Contact = build_contact(
            payload,
            received.event,
            received.message,
            self.topology,
            history,
            datetime.now(UTC),
        )
        await store.record_contact(conn, contact, children, incident, received.message)
        age = (contact.recorded_at - received_at).total_seconds()
        received.after_commit(
            lambda: self.runtime.metrics.report_age_seconds.observe(max(0.0, age))
        )
        await received.audit(
            "contact",
            contact.contact_id,
            "recorded",
            {
                "hub": contact.hub,
                "event_id": received.event.id,
                "child_count": len(children),
                "out_of_area": contact.out_of_area,
                "address_unresolved": contact.address_unresolved,
                "re_referral": contact.re_referral,
                "open_case": contact.open_case,
                "linked_contact_ids": contact.linked_contact_ids,
            },
        )
        await received.emit(
            CONTACTS,
            key=contact.subject_key,
            event_id=contact.contact_id,
            data=contact,
            time=contact.recorded_at,
        )
        self.runtime.log.info(
            "contact_recorded",
            contact_id=contact.contact_id,
            event_id=received.event.id,
            hub=contact.hub,
        )
        return "applied"


def build(runtime: ServiceRuntime) -> Intake:
    """Register intake's agents on the runtime's Faust app."""
    intake = Intake(runtime, load_topology(runtime.settings.topology))

    consume_topic(runtime, INBOUND_POLICE, POLICE_TYPES, one_by_one(intake.record), stage=SERVICE)
    consume_topic(
        runtime, INBOUND_REFERRALS, REFERRAL_TYPES, one_by_one(intake.record), stage=SERVICE
    )

    return intake
