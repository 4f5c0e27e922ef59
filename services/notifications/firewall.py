"""The MASH firewall: the one declared list of fields that may leave the hub — pure, no I/O.

What partners share inside the hub stays inside the hub (docs/domain.md, "The firewall"). This
module is the only place that says what may go out, and it says it as an **allow-list**
per audience. Every outbound event (feedback to a referrer, an Operation Encompass notice
to a school, and so every webhook body, which is built from a feedback event) is made by
:func:`disclose`, which copies only the audience's allowed fields out of what it is
offered into the outbound model — and the outbound models forbid extra fields. So a
narrative, an adult's name, DASH answers, rule reasons, another agency's information or a
``restricted`` flag cannot leave: there is no field to put them in, and anything a caller
offers beyond the list is dropped here, by construction.

A **restricted** police notification (a live investigation holds more than is shared)
keeps its police detail for the hub's s47 queue. :data:`POLICE_DETAIL` names that detail
as an outbound field would carry it, and only the audiences in
:data:`GIVEN_POLICE_DETAIL` may be given any: the ``school`` (an Operation Encompass
notice carries the police reference and the incident time), and for a restricted
notification no notice is made at all (``encompass.py``). The feedback audiences (and so
every webhook body) carry no police detail, restricted or not: checked when this module
loads.

Widening the list is a decision about what a teacher, a GP or a police force may learn:
it is a change to this file, reviewed like code, never a configuration switch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from schemas.base import ContractModel
from schemas.events import Feedback, SchoolNotification

Audience = Literal["professional", "public", "police_force", "school"]
"""Who receives an outbound event.

* ``professional`` — an agency referrer (school, GP, health visitor, housing...);
* ``public`` — a member of the public (census sources 1A-1D, 9): acknowledgement only;
* ``police_force`` — the force that sent a police notification: a professional too, so it
  hears the outcome, but never other agencies' information;
* ``school`` — a school's designated safeguarding lead, under Operation Encompass.
"""

Outbound = Feedback | SchoolNotification

_FEEDBACK_TO_A_PROFESSIONAL = frozenset(
    {
        "feedback_id",
        "kind",
        "referrer_reference",  # their own reference
        "contact_reference",  # ours
        "outcome",  # the outcome code ...
        "outcome_text",  # ... and in plain words
        "hub",
        "hub_contact",  # a contact point at the hub
        "issued_at",
    }
)

#: THE allow-list: the fields each audience may receive. Nothing else ever leaves the hub.
ALLOW_LIST: Mapping[Audience, frozenset[str]] = MappingProxyType(
    {
        "professional": _FEEDBACK_TO_A_PROFESSIONAL,
        # Police forces are professionals: the outcome, nothing of other agencies'.
        "police_force": _FEEDBACK_TO_A_PROFESSIONAL,
        # Members of the public: that we have it, and our reference (no outcome detail).
        "public": frozenset(
            {"feedback_id", "kind", "referrer_reference", "contact_reference", "issued_at"}
        ),
        # Operation Encompass: only what the scheme allows a school to be told.
        "school": frozenset(
            {
                "notice_id",
                "school_urn",
                "child_given_name",
                "child_family_name",
                "child_date_of_birth",
                "police_reference",
                "incident_at",
                "child_present",
                "due_by",
            }
        ),
    }
)

#: A police notification's detail, by the names an outbound field would carry it under.
POLICE_DETAIL = frozenset(
    {
        "police_reference",
        "incident_at",
        "incident_type",
        "child_present",
        "crime_reference",
        "ppn_grade",
        "dash_risk",
        "dash_score",
        "rules",
        "marac_referral",
        "restricted",
    }
)

#: The only audiences given any police detail; never about a restricted notification.
GIVEN_POLICE_DETAIL: frozenset[Audience] = frozenset({"school"})

#: The outbound model each audience's events are built as (each forbids extra fields).
OUTBOUND_MODEL: Mapping[Audience, type[Outbound]] = MappingProxyType(
    {
        "professional": Feedback,
        "police_force": Feedback,
        "public": Feedback,
        "school": SchoolNotification,
    }
)

#: The field holding each outbound model's event id.
_ID_FIELD: Mapping[type[ContractModel], str] = MappingProxyType(
    {Feedback: "feedback_id", SchoolNotification: "notice_id"}
)


def _fingerprint() -> str:
    text = ";".join(f"{a}={','.join(sorted(f))}" for a, f in sorted(ALLOW_LIST.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


#: Recorded with every disclosure, so an audit shows which version of the list applied.
ALLOW_LIST_VERSION = f"firewall-v1-{_fingerprint()}"


def _check_declaration() -> None:
    # The list must only name fields the outbound model has (a typo would silently
    # withhold a field), and must hold the model's required fields; police detail goes
    # to no audience outside GIVEN_POLICE_DETAIL.
    for audience, allowed in ALLOW_LIST.items():
        if audience not in GIVEN_POLICE_DETAIL and allowed & POLICE_DETAIL:
            raise RuntimeError(
                f"allow-list of {audience} names police detail {sorted(allowed & POLICE_DETAIL)}"
            )
        model = OUTBOUND_MODEL[audience]
        unknown = allowed - set(model.model_fields)
        required = {n for n, f in model.model_fields.items() if f.is_required()}
        if unknown or not required <= allowed:
            raise RuntimeError(
                f"allow-list of {audience} names unknown fields {sorted(unknown)} "
                f"or omits required ones {sorted(required - allowed)}"
            )


_check_declaration()


@dataclass(frozen=True)
class Disclosure:
    """One outbound event and what the audit records about it (ids and field names only)."""

    audience: Audience
    rule: str
    """Why it may leave, e.g. 'feedback.outcome' or 'operation_encompass'."""
    recipient: str
    """Who receives it: the referrer's agency id (police: the force) or the school URN."""
    event: Outbound
    fields: tuple[str, ...]
    """Names of the fields that carry a value in ``event`` (never the values)."""

    @property
    def event_id(self) -> str:
        """The outbound event's id (feedback_id or notice_id)."""
        value: str = getattr(self.event, _ID_FIELD[type(self.event)])
        return value


def disclose(
    audience: Audience, rule: str, recipient: str, offered: Mapping[str, object]
) -> Disclosure:
    """Build the outbound event for ``audience`` from ``offered`` through the allow-list.

    Only the audience's allowed fields are copied; everything else offered is dropped.
    The outbound model then validates what is left and refuses any field it does not
    have, so a mistake in a caller fails loudly instead of leaking.
    """
    allowed = ALLOW_LIST[audience]
    values = {name: value for name, value in offered.items() if name in allowed}
    event = OUTBOUND_MODEL[audience].model_validate(values)
    carried = tuple(sorted(n for n in allowed if getattr(event, n, None) is not None))
    return Disclosure(audience, rule, recipient, event, carried)
