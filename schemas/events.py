"""Internal and outbound events: what mash-router's services publish (docs/contract.md).

These are produced by our own services, so their job is mostly to keep producers honest
(unknown fields are still rejected) and to give consumers a schema. The intake firewall
shows in the shapes: no narrative, adults or officer details appear in any of them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from schemas.base import (
    ClosureReason,
    ContractModel,
    FactorCode,
    Identifier,
    IsoDate,
    Outcome,
    Postcode,
    QueueName,
    Rag,
    ReferralSource,
    SchoolUrn,
    Timestamp,
)
from schemas.inbound import CaseType, Consent, Indicators, StrategyOutcome

__all__ = [
    "Contact",
    "ContactChild",
    "DeadLetter",
    "DeadLetterHeader",
    "DeadLetterReason",
    "Decision",
    "DecisionSubject",
    "Feedback",
    "FieldError",
    "QueueItem",
    "Routed",
    "RuleHit",
    "SchoolNotification",
    "SlaBreach",
    "SourceCoordinates",
]

# Hub ids appear inside topic names (mash.queue.<hub>.<queue>.v1), so they are held to
# a slug that is always a legal Kafka topic component.
HubId = Annotated[
    str, StringConstraints(min_length=1, max_length=60, pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
]
Level = Annotated[int, Field(ge=1, le=4)]
Base64 = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/]*={0,2}$")]
KafkaInt = Annotated[int, Field(ge=0)]
QueueItemStatus = Literal[
    "open",
    "acknowledged",
    "strategy_discussion_held",
    "assessment_completed",
    "icpc_held",
    "closed",
]
DecisionSource = Literal["rules", "practitioner"]
ChildMatchBasis = Literal["nhs_number", "demographic", "sender", "probable"]


class FieldError(ContractModel):
    """One validation problem: where it is and what is wrong."""

    path: str
    """Dotted path into the payload, e.g. 'children.0.nhs_number'; '' for the whole message
    (or the header name, e.g. 'ce_type', for envelope problems)."""
    message: str


class DeadLetterReason(StrEnum):
    """Why a message was dead-lettered."""

    MALFORMED_JSON = "malformed_json"
    SCHEMA_VIOLATION = "schema_violation"
    UNKNOWN_TYPE = "unknown_type"
    MISSING_HEADER = "missing_header"
    TOO_LARGE = "too_large"
    UNSUPPORTED_VERSION = "unsupported_version"
    # Well-formed events that cannot be applied (beyond docs/contract.md's envelope reasons):
    UNKNOWN_REFERENCE = "unknown_reference"
    """The event names a contact or queue item this hub does not hold."""
    INVALID_TRANSITION = "invalid_transition"
    """The event asks for a change the current state forbids (e.g. closing a closed item)."""


class SourceCoordinates(ContractModel):
    """Where a contact came from: the inbound event and its position on Kafka."""

    kind: Literal["police", "referral"]
    system: Identifier
    """The inbound ce_source, e.g. 'urn:police:west-midlands:niche'."""
    event_id: Identifier
    """The inbound ce_id (the idempotency key)."""
    reference: Identifier
    """The sender's reference: notification_id or referral_id."""
    agency_id: Identifier
    """Where feedback goes: referrer.agency_id, or the force for police."""
    referral_source: ReferralSource
    """Census referral source; '6' for police."""
    topic: Identifier
    partition: KafkaInt
    offset: KafkaInt


class ContactChild(ContractModel):
    """A child on a recorded contact, with the subject id assigned by intake."""

    subject_id: Identifier
    child_ref: Identifier
    """The sender's id for this child."""
    household_key: Identifier | None
    given_name: str | None
    family_name: str | None
    date_of_birth: IsoDate | None
    expected_date_of_birth: IsoDate | None
    postcode: Postcode | None
    no_fixed_abode: bool
    school_urn: SchoolUrn | None
    present_at_incident: bool | None
    """Police contacts only."""
    resident: bool | None
    """Police contacts only."""
    indicators: Indicators | None = None
    """The child's own indicators, when the sender gave them (else the contact's apply)."""
    match_basis: ChildMatchBasis | None = None
    """How the child was matched: its own id's basis, or ``probable`` when its history was
    linked by a probable match (docs/domain.md "Identity and history") for a practitioner to
    confirm. None on contacts recorded before it was carried."""
    matched_subject_ids: list[Identifier] = Field(default_factory=list)
    """Subjects probably the same child (same names and birth date, another postcode)."""
    matched_contact_ids: list[Identifier] = Field(default_factory=list)
    """The recorded contacts about those subjects whose history was linked."""
    council_cases: list[CaseType] = Field(default_factory=list)
    """Case types the council's case management system holds open for the child."""


class Contact(ContractModel):
    """A recorded contact (topic mash.contacts.v1, keyed by subject key).

    No narrative, adults or officer: they never leave intake.
    """

    contact_id: Identifier
    contact_reference: Identifier
    """Our reference, given to the referrer in the acknowledgement."""
    subject_key: Identifier
    received_at: Timestamp
    recorded_at: Timestamp
    source: SourceCoordinates
    incident_type: str | None
    incident_at: Timestamp | None
    ppn_grade: str | None
    dash_risk: str | None
    crime_reference_present: bool
    restricted: bool
    """A live police investigation holds more than is shared: the police detail reaches
    only the hub's s47 queue."""
    dash_score: Annotated[int, Field(ge=0, le=27)] | None = None
    """Police domestic-abuse notifications: the DASH score when the force gave one."""
    consent: Consent | None = None
    """Referrals: consent to share, or the lawful basis for sharing without it."""
    factors: list[FactorCode]
    indicators: Indicators | None
    """Referrals only."""
    children: Annotated[list[ContactChild], Field(min_length=1)]
    hub: HubId
    """The hub whose area holds the child's home postcode (or the default hub)."""
    out_of_area: bool
    """The postcode is outside every hub's area (e.g. B90): routed to the default hub."""
    address_unresolved: bool = False
    """No usable postcode (no fixed abode, unreadable): routed to the default hub."""
    open_case: bool
    """One of the children has an open queue item or an open council case (its own, or a
    probably matched subject's)."""
    re_referral: bool
    """A previous contact about one of the children was received in the last 12 months."""
    linked_contact_ids: list[Identifier]
    """Contacts about the same child and incident date that came through another channel."""


class RuleHit(ContractModel):
    """A rule that fired, with its plain-English one-line reason."""

    id: Identifier
    """Rule id, e.g. 'R4-DA-HIGH'."""
    reason: str


class DecisionSubject(ContractModel):
    """A child the decision is about, with the child's own screening (docs/domain.md "Per child").

    Rules decisions give each child its own level, outcome, RAG, target agency and rules
    (the decision's own are the contact's: the highest). A practitioner's decision and
    decisions made before per-child screening leave them out: the decision's apply.
    """

    subject_id: Identifier
    child_ref: Identifier
    level: Level | None = None
    outcome: Outcome | None = None
    rag: Rag | None = None
    target_agency: str | None = None
    rules: list[RuleHit] = Field(default_factory=list)
    """The rules that fired for this child."""
    step_up: bool = False
    """The child has an open early-help case and a level-3 concern: it steps up to
    assessment rather than updating the early-help case."""


class Decision(ContractModel):
    """A screening decision (topic mash.decisions.v1, keyed by subject key).

    Automated (``source='rules'``) or a practitioner's (``source='practitioner'``); an
    override supersedes the earlier decision and both are kept.
    """

    decision_id: Identifier
    contact_id: Identifier
    contact_reference: Identifier
    level: Level
    outcome: Outcome
    target_agency: str | None
    rag: Rag
    rules: Annotated[list[RuleHit], Field(min_length=1)]
    """Every rule that fired."""
    rule_set_version: Identifier
    rule_set_hash: Identifier
    joint_screening: bool
    participating_agencies: list[str]
    joint_screening_views: dict[str, list[str]] = Field(default_factory=dict)
    """Police domestic abuse: what each participating agency's view brought to the
    decision, as fact codes (police: ``dash_<risk>``, ``da_notifications_<n>``; children's
    social care: ``open_case``, ``re_referral``, ``council_<case type>``; health:
    ``child_under_1``, ``unborn``). An agency with nothing to add lists none."""
    marac_referral: bool
    encompass_required: bool
    """Whether the notifications service tells a school (or the police desk) under
    Operation Encompass: never for a ``restricted`` notification."""
    restricted: bool = False
    """The contact is a restricted police notification (a live investigation holds more
    than is shared): its police detail (these rules' reasons, DASH and PPN grades, the
    MARAC flag) is for the hub's s47 queue only. No school is told, and the flag itself
    never leaves the hub (services/notifications/firewall.py)."""
    source: DecisionSource
    decided_at: Timestamp
    hub: HubId
    subjects: Annotated[list[DecisionSubject], Field(min_length=1)]
    open_case: bool
    received_at: Timestamp
    contact_source: SourceCoordinates
    supersedes_decision_id: Identifier | None = None
    awaiting_practitioners: bool = False
    """True on the event announcing an automated s47 decision held by the hub's
    confirmation gate: routing shows it on the s47 queue, awaiting practitioners, with the
    screening-decision clock. The same decision (same id) follows with False when police
    and children's social care have confirmed it and the routing takes effect."""


class QueueItem(ContractModel):
    """A unit of work for a hub queue (topic mash.queue.<hub>.<queue>.v1), one per child."""

    queue_item_id: Identifier
    contact_id: Identifier
    decision_id: Identifier
    subject_id: Identifier
    hub: HubId
    queue: QueueName
    outcome: Outcome
    target_agency: str | None = None
    rag: Rag
    deadlines: dict[str, Timestamp]
    """Deadline name -> due time."""
    open_case_update: bool
    status: QueueItemStatus
    routed_at: Timestamp
    status_at: Timestamp | None = None
    """When the item reached ``status`` (None while it is open as routed)."""
    strategy_outcome: StrategyOutcome | None = None
    """Set when the strategy discussion was held: the item's own, or, on an item that joins
    another's discussion (``joins_strategy_discussion_of``), that discussion's."""
    closure_reason: ClosureReason | None = None
    """Census closure reason when the hub closed the item (None when it was moved)."""
    replaced_by: Identifier | None = None
    """The item that took this one's place when an override or an s47 escalation moved it."""
    awaiting_practitioners: bool = False
    """The item's s47 routing is held until police and children's social care confirm it:
    its ``screening_decision`` clock runs meanwhile, and only ``acknowledged`` is allowed."""
    joins_strategy_discussion_of: Identifier | None = None
    """R3-SIBLING (docs/domain.md "Per child"): the s47 item on which the same decision put the
    level-4 child whose strategy discussion this sibling joins. When that discussion is
    recorded as held, this item takes its ``strategy_outcome`` (its own status and clocks
    stay: moving the sibling to s47 is a practitioner's decision)."""
    step_up: bool = False
    """The child has an open early-help case and a level-3 concern: this is a new
    assessment stepped up from early help, not an update of the early-help case."""


class Routed(ContractModel):
    """One per routing or re-routing (topic mash.routed.v1, keyed by contact id)."""

    routed_id: Identifier
    contact_id: Identifier
    contact_reference: Identifier
    decision_id: Identifier
    decision_source: DecisionSource
    level: Level
    outcome: Outcome
    rag: Rag
    target_agency: str | None = None
    hub: HubId
    queue: QueueName | None
    """None for no_further_action."""
    queue_item_ids: list[Identifier]
    contact_source: SourceCoordinates
    received_at: Timestamp
    decided_at: Timestamp
    routed_at: Timestamp


class Feedback(ContractModel):
    """Feedback to a referrer through the firewall (topic mash.feedback.<agency>.v1).

    Nothing else may be added: no narratives, DASH answers, adults' details, rule reasons
    or restricted-investigation flags.
    """

    feedback_id: Identifier
    kind: Literal["acknowledgement", "outcome", "update"]
    referrer_reference: Identifier
    contact_reference: Identifier
    outcome: Outcome | None = None
    outcome_text: str | None = None
    hub: HubId | None = None
    hub_contact: str | None = None
    issued_at: Timestamp


class SchoolNotification(ContractModel):
    """An Operation Encompass notice to a school (topic mash.notifications.schools.v1)."""

    notice_id: Identifier
    school_urn: SchoolUrn
    child_given_name: str
    child_family_name: str
    child_date_of_birth: IsoDate
    police_reference: Identifier
    incident_at: Timestamp
    child_present: bool
    due_by: Timestamp
    """08:30 on the next school day after the incident."""


class SlaBreach(ContractModel):
    """A missed deadline (topic mash.sla.breaches.v1); at most one per item and deadline."""

    breach_id: Identifier
    queue_item_id: Identifier
    deadline: Identifier
    """The deadline's name, a key of QueueItem.deadlines."""
    due_at: Timestamp
    breached_at: Timestamp
    hub: HubId
    queue: QueueName


class DeadLetterHeader(ContractModel):
    """A Kafka header of the original message; value base64-encoded (None if null)."""

    key: str
    value: Base64 | None


class DeadLetter(ContractModel):
    """A message that could not be accepted (topic mash.deadletter.v1)."""

    dead_letter_id: Identifier
    original_topic: Identifier
    partition: KafkaInt
    offset: KafkaInt
    original_key: Base64 | None
    """The original key, base64-encoded; None if the key was null."""
    original_value: Base64 | None
    """The original value, base64-encoded; None if the value was null."""
    headers: list[DeadLetterHeader]
    reason: DeadLetterReason
    errors: list[FieldError]
    service: Identifier
    """The service that refused the message."""
    at: Timestamp
