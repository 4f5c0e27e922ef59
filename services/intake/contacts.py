"""Turn one validated inbound payload into a recorded contact — pure, no I/O.

What is known only from the database (re-referral, open case, linked contacts) is passed
in as :class:`ContactHistory`, so the whole construction is testable without Postgres. A
batch of them is decided in :mod:`services.intake.batch`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from schemas.cloudevents import CloudEvent
from schemas.events import Contact, ContactChild, SourceCoordinates
from schemas.inbound import Child, PoliceChild, PoliceNotification, Referral
from services.common.ids import contact_reference, derive_id
from services.common.kafka import InboundMessage
from services.common.topology import HubResolution, Topology
from services.intake.linking import MatchBasis, household_key, identify, person_key

LONDON = ZoneInfo("Europe/London")

#: Census referral source of a police notification.
POLICE_REFERRAL_SOURCE = "6"

#: Re-referral window (docs/domain.md: a referral within 12 months of a previous one).
RE_REFERRAL_WINDOW = timedelta(days=365)
#: At most this many of a probable match's contacts are named on the contact (the most
#: recent): enough for a practitioner to check the match, bounded for the event's size.
MATCHED_CONTACTS_NAMED = 20


@dataclass(frozen=True)
class ChildHistory:
    """What the system of record links to one child beyond its own subject id."""

    matched_subject_ids: Sequence[str] = ()
    """Subjects probably the same child (docs/domain.md "Identity and history")."""
    matched_contact_ids: Sequence[str] = ()
    """The most recent recorded contacts about those subjects."""
    council_cases: Sequence[str] = ()
    """Case types the council holds open for the child (or a probable match of it)."""


@dataclass(frozen=True)
class ContactHistory:
    """What the system of record already knows about the contact's children."""

    re_referral: bool = False
    open_case: bool = False
    linked_contact_ids: Sequence[str] = field(default_factory=tuple)
    children: Mapping[str, ChildHistory] = field(default_factory=dict)
    """Per subject id: probable matches and open council cases."""
    subject_key: str | None = None
    """The key of the family's earlier contacts when one of the children was seen before
    (so its history follows it to a new address); None: the contact's own."""


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


@dataclass(frozen=True)
class IdentifiedChild:
    """A child of the contact as recorded, and how its subject id was matched."""

    child: ContactChild
    basis: MatchBasis
    person_key: str | None = None
    """What a probable match shares (:func:`~services.intake.linking.person_key`)."""


def identify_children(
    payload: PoliceNotification | Referral, source_system: str
) -> list[IdentifiedChild]:
    """Each child of the contact with its subject id, match basis and household key."""
    out: list[IdentifiedChild] = []
    for child in payload.children:
        postcode = child.address.postcode if child.address else None
        line1 = child.address.line1 if child.address else None
        sid, basis = identify(
            nhs_number=child.nhs_number,
            given_name=child.given_name,
            family_name=child.family_name,
            birth_date=child.date_of_birth or child.expected_date_of_birth,
            postcode=None if child.no_fixed_abode else postcode,
            source_system=source_system,
            child_ref=child.child_ref,
        )
        recorded = ContactChild(
            subject_id=sid,
            child_ref=child.child_ref,
            household_key=None if child.no_fixed_abode else household_key(postcode, line1),
            given_name=child.given_name,
            family_name=child.family_name,
            date_of_birth=child.date_of_birth,
            expected_date_of_birth=child.expected_date_of_birth,
            postcode=postcode,
            no_fixed_abode=child.no_fixed_abode,
            school_urn=child.school_urn,
            present_at_incident=_police_flag(child, "present_at_incident"),
            resident=_police_flag(child, "resident"),
            indicators=child.indicators,
            match_basis=basis,
        )
        birth = child.date_of_birth or child.expected_date_of_birth
        people = person_key(child.given_name, child.family_name, birth)
        out.append(IdentifiedChild(recorded, basis, people))
    return out


def received_at_of(payload: PoliceNotification | Referral) -> datetime:
    """When the hub received the contact: the police report time, or the referral's."""
    return payload.reported_at if isinstance(payload, PoliceNotification) else payload.received_at


def incident_date(payload: PoliceNotification | Referral) -> date:
    """The London date of the incident (police) or of receipt (referral), for linking."""
    moment = payload.occurred_at if isinstance(payload, PoliceNotification) else payload.received_at
    return moment.astimezone(LONDON).date()


def resolve_hub(payload: PoliceNotification | Referral, topology: Topology) -> HubResolution:
    """The hub of the contact: the first child's home postcode that resolves; for police
    notifications about children without one, the incident location; else the default hub.
    """
    for child in payload.children:
        if child.no_fixed_abode or child.address is None or child.address.postcode is None:
            continue
        return topology.resolve(child.address.postcode)
    if isinstance(payload, PoliceNotification):
        return topology.resolve(payload.location_postcode)
    return topology.resolve(None)


def _police_flag(child: Child, name: str) -> bool | None:
    return bool(getattr(child, name)) if isinstance(child, PoliceChild) else None


def subject_key(children: Sequence[ContactChild]) -> str:
    """Kafka key of a contact: the household of its first child, else that child.

    Siblings share a household, so a multi-child contact and every later contact about
    the household land on one partition, where the per-household history lives.
    """
    first = children[0]
    return first.household_key or first.subject_id


@dataclass(frozen=True)
class Arrival:
    """An inbound event as intake decides it: the payload and what is read off it."""

    payload: PoliceNotification | Referral
    event: CloudEvent
    message: InboundMessage
    source: SourceCoordinates
    children: list[IdentifiedChild]
    incident: date
    received_at: datetime

    @property
    def subject_ids(self) -> list[str]:
        """The subject ids of the contact's children, each once, in the children's order."""
        return list(dict.fromkeys(c.child.subject_id for c in self.children))


def arrival_of(
    payload: PoliceNotification | Referral, event: CloudEvent, message: InboundMessage
) -> Arrival:
    """Read the source, children, incident date and receipt time off an inbound event."""
    source = source_of(payload, event, message)
    return Arrival(
        payload=payload,
        event=event,
        message=message,
        source=source,
        children=identify_children(payload, source.system),
        incident=incident_date(payload),
        received_at=received_at_of(payload),
    )


def contact_of(
    arrival: Arrival, resolution: HubResolution, history: ContactHistory, recorded_at: datetime
) -> Contact:
    """The recorded contact for an arrival in its hub (``resolution``, resolved once by the
    caller: the same hub the history was looked up in), given its history."""
    payload, source = arrival.payload, arrival.source
    children = [
        _with_history(c.child, history.children.get(c.child.subject_id)) for c in arrival.children
    ]
    cid = contact_id_for(source.system, source.reference)
    police = payload if isinstance(payload, PoliceNotification) else None
    return Contact(
        contact_id=cid,
        contact_reference=contact_reference(cid),
        subject_key=history.subject_key or subject_key(children),
        received_at=arrival.received_at,
        recorded_at=recorded_at,
        source=source,
        incident_type=police.incident_type if police else None,
        incident_at=police.occurred_at if police else None,
        ppn_grade=police.ppn_grade if police else None,
        dash_risk=police.dash_risk if police else None,
        crime_reference_present=bool(police and police.crime_reference),
        restricted=bool(police and police.restricted),
        dash_score=police.dash_score if police else None,
        consent=None if police else payload.consent,  # type: ignore[union-attr]
        factors=list(payload.factors),
        indicators=None if police else payload.indicators,  # type: ignore[union-attr]
        children=children,
        hub=resolution.hub,
        out_of_area=resolution.out_of_area,
        address_unresolved=resolution.unresolved,
        open_case=history.open_case,
        re_referral=history.re_referral,
        linked_contact_ids=list(history.linked_contact_ids),
    )


def _with_history(child: ContactChild, history: ChildHistory | None) -> ContactChild:
    """The child as recorded, with its probable matches and open council cases."""
    if history is None:
        return child
    update: dict[str, object] = {"council_cases": sorted(set(history.council_cases))}
    if history.matched_subject_ids:
        update |= {
            "match_basis": "probable",
            "matched_subject_ids": list(history.matched_subject_ids),
            "matched_contact_ids": list(history.matched_contact_ids),
        }
    return child.model_copy(update=update)
