"""Inbound payloads: exactly what upstream systems publish (docs/contract.md, "Inbound topics").

Cross-field rules are enforced twice: by ``model_validator``s at run time, and as
``if``/``then`` clauses in the exported JSON Schema (``json_schema_extra``) so that
non-Python producers validating against the schema files see the same rules. The NHS
number check digit is the one rule JSON Schema cannot express.

Over 400 lines on purpose: every inbound payload of the contract in one module, so
producers' rules are read in one place beside the schemas they export.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self, get_args

from pydantic import ConfigDict, Field, StringConstraints, model_validator
from pydantic.config import JsonDict

from schemas.base import (
    ClosureReason,
    ContractModel,
    FactorCode,
    Identifier,
    IsoDate,
    LongText,
    Name,
    NhsNumber,
    NonBlankText,
    Outcome,
    Phone,
    Postcode,
    ReferralSource,
    SchoolUrn,
    ShortText,
    Timestamp,
)

__all__ = [
    "Address",
    "Adult",
    "CaseChild",
    "CaseStatus",
    "Child",
    "Consent",
    "Indicators",
    "Officer",
    "PoliceChild",
    "PoliceNotification",
    "PractitionerDecision",
    "QueueUpdate",
    "Referral",
    "Referrer",
]

Gender = Literal["male", "female", "other", "unknown"]
IncidentType = Literal[
    "domestic_abuse",
    "child_neglect",
    "child_physical_abuse",
    "child_sexual_abuse",
    "missing_child",
    "child_sexual_exploitation",
    "child_criminal_exploitation",
    "online_harm",
    "child_coming_to_notice",
]
PpnGrade = Literal["high", "medium", "low"]
DashRisk = Literal["standard", "medium", "high"]
AdultRole = Literal["victim", "suspect", "parent", "other"]
Disclosure = Literal["none", "sexual", "physical", "emotional", "neglect"]
ConsentOverrideReason = Literal[
    "risk_of_significant_harm", "undue_delay", "prejudice_to_investigation"
]
PractitionerAgency = Literal[
    "police", "childrens_social_care", "health", "education", "early_help", "housing", "other"
]
QueueUpdateStatus = Literal[
    "acknowledged", "strategy_discussion_held", "assessment_completed", "icpc_held", "closed"
]
StrategyOutcome = Literal["s47_single_agency", "s47_joint", "no_s47"]
CaseType = Literal["early_help", "child_in_need", "child_protection_plan", "looked_after"]
"""A case type of the council's case management system (``mash.inbound.case-status.v1``)."""
CaseState = Literal["open", "closed"]

# Upper bounds on list sizes: far above any real contact, low enough that a runaway
# producer is refused rather than fanned out into thousands of queue items.
MAX_CHILDREN = 30
MAX_ADULTS = 50
MAX_FACTORS = len(get_args(FactorCode))

# A lower-case slug such as "west-midlands"; forces are named this way in ce_source too.
ForceSlug = Annotated[
    str, StringConstraints(min_length=1, max_length=60, pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
]
# A lower-case agency slug such as "early_help", as used for target agencies.
AgencySlug = Annotated[
    str, StringConstraints(min_length=1, max_length=60, pattern=r"^[a-z][a-z0-9_]*$")
]
# The council's case management system, e.g. "liquidlogic-lcs", and a hub id as the
# topology names it, e.g. "north-west-central": slugs like a force's.
CaseSystemSlug = ForceSlug
HubSlug = ForceSlug
Upn = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{13}$")]
Email = Annotated[
    str, StringConstraints(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
]


def _string(name: str) -> JsonDict:
    """JSON Schema fragment: property ``name`` is present and a string (not null)."""
    return {"required": [name], "properties": {name: {"type": "string"}}}


def _const(name: str, value: str | bool) -> JsonDict:
    """JSON Schema fragment: property ``name`` is present and equals ``value``."""
    return {"required": [name], "properties": {name: {"const": value}}}


def _absent_or_null(name: str) -> JsonDict:
    """JSON Schema fragment: property ``name`` is absent or null."""
    return {"properties": {name: {"type": "null"}}}


def _check_child_refs(children: list[PoliceChild] | list[Child]) -> None:
    # child_ref is how the sender tells its children apart; a repeat would merge two
    # children (or double one) downstream.
    refs = [child.child_ref for child in children]
    if len(set(refs)) != len(refs):
        raise ValueError("child_ref must be unique within a message")


def _check_factors(factors: list[str]) -> None:
    # Census code 21 means "no factors identified"; alongside other codes it is a
    # contradiction that would make screening ambiguous.
    if "21" in factors and len(factors) > 1:
        raise ValueError("factor 21 (no factors) must not be combined with other factors")


_FACTOR_21_ALONE: JsonDict = {
    "if": {
        "required": ["factors"],
        "properties": {"factors": {"type": "array", "contains": {"const": "21"}}},
    },
    # "type" repeats what "if" already established, for validators in strict mode (Ajv).
    "then": {"properties": {"factors": {"type": "array", "maxItems": 1}}},
}


class Address(ContractModel):
    """A postal address. ``postcode`` may only be absent for a child of no fixed abode."""

    line1: ShortText
    """First line of the address."""
    line2: ShortText | None = None
    town: ShortText | None = None
    postcode: Postcode | None = None
    """UK postcode (normalised to e.g. 'B6 4AA'); decides the hub."""


class Indicators(ContractModel):
    """Structured risk indicators given by a referrer. Every field has a neutral default."""

    immediate_danger: bool = False
    injury_observed: bool = False
    disclosure: Disclosure = "none"
    forced_marriage: bool = False
    missing_episodes_90d: Annotated[int, Field(ge=0, le=1000)] = 0
    """Missing episodes in the last 90 days."""


class Child(ContractModel):
    """A child subject of a contact, as the sender knows them.

    Exactly one of ``date_of_birth`` and ``expected_date_of_birth`` (for an unborn child).
    A born child must have ``given_name`` and ``family_name``; an unborn child may lack
    either. ``address`` with a ``postcode`` is required unless ``no_fixed_abode`` is true,
    in which case ``address`` is optional (a last known address may still be given).
    """

    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [
                {"oneOf": [_string("date_of_birth"), _string("expected_date_of_birth")]},
                {
                    "if": _string("date_of_birth"),
                    "then": {"allOf": [_string("given_name"), _string("family_name")]},
                },
                {
                    "if": _const("no_fixed_abode", True),
                    "else": {
                        "required": ["address"],
                        "properties": {"address": {"type": "object", **_string("postcode")}},
                    },
                },
            ]
        }
    )

    child_ref: Identifier
    """The sender's own id for this child; unique within the message."""
    given_name: Name | None = None
    family_name: Name | None = None
    date_of_birth: IsoDate | None = None
    expected_date_of_birth: IsoDate | None = None
    """For an unborn child, instead of date_of_birth."""
    gender: Gender
    nhs_number: NhsNumber | None = None
    upn: Upn | None = None
    """Unique pupil number (13 upper-case letters/digits)."""
    address: Address | None = None
    no_fixed_abode: bool = False
    school_urn: SchoolUrn | None = None
    indicators: Indicators | None = None
    """This child's own indicators (an injury seen on this child, this child's disclosure).
    When given they replace the contact's ``indicators`` for this child; when absent the
    contact's apply to every child."""

    @model_validator(mode="after")
    def _check_child(self) -> Self:
        if (self.date_of_birth is None) == (self.expected_date_of_birth is None):
            raise ValueError("exactly one of date_of_birth and expected_date_of_birth is required")
        if self.date_of_birth is not None and (self.given_name is None or self.family_name is None):
            raise ValueError("given_name and family_name are required for a born child")
        if not self.no_fixed_abode and (self.address is None or self.address.postcode is None):
            raise ValueError("address.postcode is required unless no_fixed_abode is true")
        return self


class PoliceChild(Child):
    """A child in a police notification: a :class:`Child` plus the incident circumstances."""

    present_at_incident: bool
    """The child was present at the incident."""
    resident: bool
    """The child lives at the address of the incident."""


class Adult(ContractModel):
    """An adult named in a police notification (never leaves intake)."""

    role: AdultRole
    given_name: Name
    family_name: Name
    date_of_birth: IsoDate | None = None


class Officer(ContractModel):
    """The reporting officer's contact details (never leave intake)."""

    collar_number: Annotated[str, StringConstraints(min_length=1, max_length=20, pattern=r"\S")]
    unit: ShortText
    phone: Phone


class PoliceNotification(ContractModel):
    """A police child-concern or domestic-abuse notification (PPN).

    ``dash_risk`` is required when ``incident_type`` is ``domestic_abuse`` and optional
    otherwise (a DASH may have been done for another incident type).
    """

    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [
                {"if": _const("incident_type", "domestic_abuse"), "then": _string("dash_risk")},
                _FACTOR_21_ALONE,
            ]
        }
    )

    notification_id: Identifier
    """The force's own id for this notification; also the Kafka key."""
    force: ForceSlug
    """Police force slug, e.g. 'west-midlands'; feedback is keyed by it."""
    incident_type: IncidentType
    occurred_at: Timestamp
    reported_at: Timestamp
    location_postcode: Postcode
    crime_reference: Identifier | None = None
    ppn_grade: PpnGrade
    dash_risk: DashRisk | None = None
    """DASH risk level; required for domestic_abuse."""
    dash_score: Annotated[int, Field(ge=0, le=27)] | None = None
    """Number of 'yes' answers on the DASH checklist (0-27)."""
    children: Annotated[list[PoliceChild], Field(min_length=1, max_length=MAX_CHILDREN)]
    adults: Annotated[list[Adult], Field(max_length=MAX_ADULTS)] = []
    factors: Annotated[list[FactorCode], Field(max_length=MAX_FACTORS)] = []
    """Census factor codes; '21' (no factors) only on its own."""
    officer: Officer
    narrative: LongText = ""
    """Free text; confidential, never leaves intake."""
    restricted: bool = False
    """A live investigation holds more than is shared."""

    @model_validator(mode="after")
    def _check_notification(self) -> Self:
        if self.incident_type == "domestic_abuse" and self.dash_risk is None:
            raise ValueError("dash_risk is required when incident_type is domestic_abuse")
        _check_child_refs(self.children)
        _check_factors(list(self.factors))
        return self


class Referrer(ContractModel):
    """Who made a referral; feedback goes to ``agency_id``."""

    agency_id: Identifier
    """Where feedback goes (the Kafka key of its agency's mash.feedback.<agency>.v1)."""
    organisation: ShortText
    name: ShortText
    role: ShortText
    email: Email
    phone: Phone


class Consent(ContractModel):
    """Consent to share. Without consent an ``override_reason`` is required (and only then)."""

    model_config = ConfigDict(
        json_schema_extra={
            "if": _const("obtained", False),
            "then": _string("override_reason"),
            "else": _absent_or_null("override_reason"),
        }
    )

    obtained: bool
    override_reason: ConsentOverrideReason | None = None

    @model_validator(mode="after")
    def _check_consent(self) -> Self:
        if not self.obtained and self.override_reason is None:
            raise ValueError("override_reason is required when consent was not obtained")
        if self.obtained and self.override_reason is not None:
            raise ValueError("override_reason must be absent when consent was obtained")
        return self


class Referral(ContractModel):
    """A referral from an agency or member of the public."""

    model_config = ConfigDict(json_schema_extra=_FACTOR_21_ALONE)

    referral_id: Identifier
    """The referrer's own reference; also the Kafka key."""
    received_at: Timestamp
    referral_source: ReferralSource
    referrer: Referrer
    children: Annotated[list[Child], Field(min_length=1, max_length=MAX_CHILDREN)]
    factors: Annotated[list[FactorCode], Field(min_length=1, max_length=MAX_FACTORS)]
    """Census factor codes, at least one; '21' (no factors) only on its own."""
    indicators: Indicators = Field(default_factory=Indicators)
    consent: Consent
    narrative: LongText = ""
    """Free text; confidential, never leaves intake."""

    @model_validator(mode="after")
    def _check_referral(self) -> Self:
        _check_child_refs(self.children)
        _check_factors(list(self.factors))
        return self


class PractitionerDecision(ContractModel):
    """A practitioner confirming or overriding a screening decision.

    An override needs ``outcome``; an override to ``single_agency`` also needs
    ``target_agency``. On a confirm, ``outcome`` may be given but is informational.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [
                {"if": _const("kind", "override"), "then": _string("outcome")},
                {
                    "if": {
                        "allOf": [_const("kind", "override"), _const("outcome", "single_agency")]
                    },
                    "then": _string("target_agency"),
                },
            ]
        }
    )

    contact_id: Identifier
    practitioner_id: Identifier
    agency: PractitionerAgency
    """The practitioner's own agency."""
    kind: Literal["confirm", "override"]
    outcome: Outcome | None = None
    """The new outcome; required for an override."""
    target_agency: AgencySlug | None = None
    """Named agency for a single_agency outcome, e.g. 'early_help'."""
    reason: NonBlankText
    decided_at: Timestamp

    @model_validator(mode="after")
    def _check_decision(self) -> Self:
        if self.kind == "override" and self.outcome is None:
            raise ValueError("outcome is required for an override")
        if self.kind == "override" and self.outcome == "single_agency" and not self.target_agency:
            raise ValueError("target_agency is required for an override to single_agency")
        return self


class QueueUpdate(ContractModel):
    """A change of status of a queue item, from the hub's case-work system.

    ``strategy_outcome`` is required for (and only for) ``strategy_discussion_held``;
    ``closure_reason`` is required for (and only for) ``closed``.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [
                {
                    "if": _const("status", "strategy_discussion_held"),
                    "then": _string("strategy_outcome"),
                    "else": _absent_or_null("strategy_outcome"),
                },
                {
                    "if": _const("status", "closed"),
                    "then": _string("closure_reason"),
                    "else": _absent_or_null("closure_reason"),
                },
            ]
        }
    )

    queue_item_id: Identifier
    status: QueueUpdateStatus
    at: Timestamp
    by: Identifier
    """Who made the change (practitioner id)."""
    strategy_outcome: StrategyOutcome | None = None
    closure_reason: ClosureReason | None = None

    @model_validator(mode="after")
    def _check_update(self) -> Self:
        held = self.status == "strategy_discussion_held"
        if held and self.strategy_outcome is None:
            raise ValueError("strategy_outcome is required when status is strategy_discussion_held")
        if not held and self.strategy_outcome is not None:
            raise ValueError(
                "strategy_outcome is only allowed when status is strategy_discussion_held"
            )
        closed = self.status == "closed"
        if closed and self.closure_reason is None:
            raise ValueError("closure_reason is required when status is closed")
        if not closed and self.closure_reason is not None:
            raise ValueError("closure_reason is only allowed when status is closed")
        return self


class CaseChild(ContractModel):
    """A child as the council's case management system knows them: the identifiers intake
    matches a child on (docs/domain.md "Identity and history"), nothing more.

    Exactly one of ``date_of_birth`` and ``expected_date_of_birth`` (an unborn child, e.g.
    a pre-birth child protection plan). A born child must have ``given_name`` and
    ``family_name``. ``address`` is optional, and so is its postcode.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [
                {"oneOf": [_string("date_of_birth"), _string("expected_date_of_birth")]},
                {
                    "if": _string("date_of_birth"),
                    "then": {"allOf": [_string("given_name"), _string("family_name")]},
                },
            ]
        }
    )

    child_ref: Identifier
    """The case system's own id for this child; also the Kafka key."""
    given_name: Name | None = None
    family_name: Name | None = None
    date_of_birth: IsoDate | None = None
    expected_date_of_birth: IsoDate | None = None
    """For an unborn child, instead of date_of_birth."""
    nhs_number: NhsNumber | None = None
    address: Address | None = None
    """The child's address as the case system holds it, when it holds one."""

    @model_validator(mode="after")
    def _check_case_child(self) -> Self:
        if (self.date_of_birth is None) == (self.expected_date_of_birth is None):
            raise ValueError("exactly one of date_of_birth and expected_date_of_birth is required")
        if self.date_of_birth is not None and (self.given_name is None or self.family_name is None):
            raise ValueError("given_name and family_name are required for a born child")
        return self


class CaseStatus(ContractModel):
    """A case opened or closed in the council's case management system (Liquidlogic,
    Mosaic, ...): the second place open cases come from, beside the hub's own queue items.

    A case is one (``case_system``, ``child.child_ref``, ``case_type``); the status with
    the latest ``at`` is the case's status, whatever order the events arrive in.
    """

    case_system: CaseSystemSlug
    """The case management system, e.g. 'liquidlogic-lcs'."""
    child: CaseChild
    case_type: CaseType
    status: CaseState
    at: Timestamp
    """When the case was opened or closed in the case system."""
    team: ShortText | None = None
    """The council team holding the case."""
    hub: HubSlug | None = None
    """The hub whose area holds the case, as the topology names it."""
