"""Turn a validated inbound payload into a recorded contact — pure, no I/O.

What is known only from the database (re-referral, open case, linked contacts) is passed
in as :class:`ContactHistory`, so the whole construction is testable without Postgres.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from schemas.cloudevents import CloudEvent
from schemas.events import Contact, ContactChild, SourceCoordinates
from schemas.inbound import Child, PoliceChild, PoliceNotification, Referral
from services.common.ids import contact_reference, derive_id
from services.common.kafka import InboundMessage
from services.common.topology import Topology
from services.intake.linking import household_key, subject_id

#: Census referral source of a police notification.
POLICE_REFERRAL_SOURCE = "6"


@dataclass(frozen=True)
class ContactHistory:
    """What the system of record already knows about the contact's children."""

    re_referral: bool = False
    open_case: bool = False
    linked_contact_ids: Sequence[str] = field(default_factory=tuple)


def contact_id_for(source_system: str, source_reference: str) -> str:
    """One contact per (sending system, its own reference): the de-duplication identity."""
    return derive_id("contact", source_system, source_reference)


def source_of(
    payload: PoliceNotification | Referral, event: CloudEvent, message: InboundMessage
) -> SourceCoordinates:
    """Where a contact came from: system, event, reference, referrer and Kafka position."""
    if isinstance(payload, PoliceNotification):
        kind, reference, agency, code = (
            "police",
            payload.notification_id,
            payload.force,
            POLICE_REFERRAL_SOURCE,
        )
    else:
        kind, reference, agency, code = (
            "referral",
            payload.referral_id,
            payload.referrer.agency_id,
            payload.referral_source,
        )
    return SourceCoordinates(
        kind=kind,
        system=event.source,
        event_id=event.id,
        reference=reference,
        agency_id=agency,
        referral_source=code,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
    )


def contact_children(
    payload: PoliceNotification | Referral, source_system: str
) -> list[ContactChild]:
    """Each child of the contact with its subject id and household key."""
    out: list[ContactChild] = []
    for child in payload.children:
        postcode = child.address.postcode if child.address else None
        line1 = child.address.line1 if child.address else None
        out.append(
            ContactChild(
                subject_id=subject_id(
                    nhs_number=child.nhs_number,
                    family_name=child.family_name,
                    birth_date=child.date_of_birth or child.expected_date_of_birth,
                    postcode=postcode,
                    source_system=source_system,
                    child_ref=child.child_ref,
                ),
                child_ref=child.child_ref,
                household_key=household_key(postcode, line1),
                given_name=child.given_name,
                family_name=child.family_name,
                date_of_birth=child.date_of_birth,
                expected_date_of_birth=child.expected_date_of_birth,
                postcode=postcode,
                no_fixed_abode=child.no_fixed_abode,
                school_urn=child.school_urn,
                present_at_incident=_police_flag(child, "present_at_incident"),
                resident=_police_flag(child, "resident"),
            )
        )
    return out


def _police_flag(child: Child, name: str) -> bool | None:
    return bool(getattr(child, name)) if isinstance(child, PoliceChild) else None


def subject_key(children: Sequence[ContactChild]) -> str:
    """Kafka key of a contact: the household of its first child, else that child.

    Siblings share a household, so a multi-child contact and every later contact about
    the household land on one partition, where the per-household history lives.
    """
    first = children[0]
    return first.household_key or first.subject_id


def build_contact(
    payload: PoliceNotification | Referral,
    event: CloudEvent,
    message: InboundMessage,
    topology: Topology,
    history: ContactHistory,
    recorded_at: datetime,
) -> Contact:
    """The recorded contact for a validated inbound payload."""
    source = source_of(payload, event, message)
    children = contact_children(payload, source.system)
    first = payload.children[0]
    resolution = topology.resolve(
        first.address.postcode if first.address else None, no_fixed_abode=first.no_fixed_abode
    )
    cid = contact_id_for(source.system, source.reference)
    police = payload if isinstance(payload, PoliceNotification) else None
    referral = payload if isinstance(payload, Referral) else None
    return Contact(
        contact_id=cid,
        contact_reference=contact_reference(cid),
        subject_key=subject_key(children),
        received_at=police.reported_at if police else referral.received_at,  # type: ignore[union-attr]
        recorded_at=recorded_at,
        source=source,
        incident_type=police.incident_type if police else None,
        incident_at=police.occurred_at if police else None,
        ppn_grade=police.ppn_grade if police else None,
        dash_risk=police.dash_risk if police else None,
        crime_reference_present=bool(police and police.crime_reference),
        restricted=bool(police and police.restricted),
        factors=list(payload.factors),
        indicators=referral.indicators if referral else None,
        children=children,
        hub=resolution.hub,
        out_of_area=resolution.out_of_area,
        open_case=history.open_case,
        re_referral=history.re_referral,
        linked_contact_ids=list(history.linked_contact_ids),
    )
