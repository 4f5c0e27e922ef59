"""Feedback to the referrer through the MASH firewall — pure, no I/O.

The :class:`~schemas.events.Feedback` model forbids extra fields, and every value here is
copied from an allow-listed field (references, outcome, hub, times): nothing else can
leave. Members of the public get an acknowledgement only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from schemas.events import Contact, Feedback, Routed, SourceCoordinates
from services.common.ids import derive_id
from services.common.topology import Topology

Audience = Literal["police_force", "professional", "public"]

#: Census referral sources of members of the public (DOMAIN.md feedback rules).
PUBLIC_SOURCES = frozenset({"1A", "1B", "1C", "1D", "9"})

#: The outcome in words a teacher or GP understands.
OUTCOME_TEXT = {
    "no_further_action": (
        "The hub has recorded your concern. No further action by children's social care is "
        "needed now; universal services and advice remain available."
    ),
    "single_agency": "The hub has asked a single agency to support the child and family.",
    "initial_assessment": ("Children's social care will carry out a child and family assessment."),
    "s47": (
        "Children's social care, police and health will urgently discuss how to keep the "
        "child safe."
    ),
}


def audience_of(source: SourceCoordinates) -> Audience:
    """Who the referrer is, for the firewall: a police force, a professional, the public."""
    if source.kind == "police":
        return "police_force"
    if source.referral_source in PUBLIC_SOURCES:
        return "public"
    return "professional"


def acknowledgement(contact: Contact, issued_at: datetime) -> Feedback:
    """The acknowledgement every referrer gets once the contact is recorded."""
    return Feedback(
        feedback_id=derive_id("feedback", contact.contact_id, "acknowledgement"),
        kind="acknowledgement",
        referrer_reference=contact.source.reference,
        contact_reference=contact.contact_reference,
        issued_at=issued_at,
    )


def outcome(routed: Routed, topology: Topology, issued_at: datetime) -> Feedback | None:
    """The outcome feedback after routing; None for members of the public."""
    if audience_of(routed.contact_source) == "public":
        return None
    hub = topology.hub(routed.hub)
    return Feedback(
        feedback_id=derive_id("feedback", routed.contact_id, "outcome"),
        kind="outcome",
        referrer_reference=routed.contact_source.reference,
        contact_reference=routed.contact_reference,
        outcome=routed.outcome,
        outcome_text=OUTCOME_TEXT[routed.outcome],
        hub=hub.id,
        hub_contact=hub.contact_point,
        issued_at=issued_at,
    )
