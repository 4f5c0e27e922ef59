"""Feedback to the referrer: acknowledgement, outcome and updates — pure, no I/O.

Every feedback event is made by :func:`services.notifications.firewall.disclose`, so only
the audience's allow-listed fields can leave (see ``firewall.py``). The outcome wording is
data (``outcome-text.yaml``) that practitioners own.

When feedback is given (docs/domain.md, "Feedback"):

* **acknowledgement** — once, when the contact is recorded (``mash.contacts.v1``), or
  just before the outcome if the routing is read before the contact;
* **outcome** — once, for the first routing of the contact (``mash.routed.v1``);
* **update** — when a later routing (a practitioner override, or a re-routing) changes
  what the referrer was told: the outcome, or the hub they should contact. A routing that
  leaves both as reported (a practitioner *confirming* the outcome) tells the referrer
  nothing new and sends nothing.

Several successive updates: each change is its own ``update`` with a sequence number
(1, 2, ...) and an id derived from the contact and the routing that caused it, so the
referrer always ends up holding the latest decision, and a replay — of one routing or of
the whole topic — derives the same ids and sends nothing twice. A routing older than the
one last reported (by decision time, then routing time) is stale and ignored, so a
replayed old routing can never put back an outcome that has since changed.

Members of the public (census sources 1A-1D and 9) get the acknowledgement only.

A restricted police notification is fed back like any other: only the force that sent it
(and restricted it) hears of it, and feedback has no field for police detail, rule
reasons or the restriction itself (``firewall.py``), so there is nothing to withhold. The
outcome words are the fixed text of ``outcome-text.yaml``, never the rules' reasons.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.base import Outcome
from schemas.events import Contact, Routed, SourceCoordinates
from services.common.ids import derive_id
from services.common.topology import Topology
from services.common.yaml_files import load_yaml_model
from services.notifications.firewall import Disclosure, disclose

FeedbackAudience = Literal["professional", "public", "police_force"]

#: Census referral sources of members of the public (docs/domain.md feedback rules).
PUBLIC_SOURCES = frozenset({"1A", "1B", "1C", "1D", "9"})

#: The wording practitioners own.
WORDING_FILE = Path(__file__).with_name("outcome-text.yaml")


class Wording(BaseModel):
    """Plain-words outcome text (``outcome-text.yaml``): one per outcome, all required."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    outcomes: dict[Outcome, str] = Field(min_length=4)
    update_preface: str = Field(min_length=1)

    def text(self, outcome: Outcome, *, update: bool = False) -> str:
        """What the referrer reads about ``outcome`` (with the update preface if asked)."""
        words = self.outcomes[outcome]
        return f"{self.update_preface} {words}" if update else words


class WordingError(ValueError):
    """The outcome wording file is missing, unreadable or incomplete (one-line message)."""


def load_wording(path: Path = WORDING_FILE) -> Wording:
    """Read and check the outcome wording; WordingError names the file and the problem."""
    return load_yaml_model(path, Wording, WordingError, what="outcome wording")


WORDING = load_wording()
#: The outcome in words a teacher or GP understands.
OUTCOME_TEXT: Mapping[Outcome, str] = WORDING.outcomes


def audience_of(source: SourceCoordinates) -> FeedbackAudience:
    """Who the referrer is, for the firewall: a police force, a professional, the public."""
    if source.kind == "police":
        return "police_force"
    if source.referral_source in PUBLIC_SOURCES:
        return "public"
    return "professional"


def acknowledgement(contact: Contact, issued_at: datetime) -> Disclosure:
    """The acknowledgement every referrer gets once the contact is recorded."""
    return _acknowledgement(
        contact.contact_id, contact.contact_reference, contact.source, issued_at
    )


def acknowledgement_before(routed: Routed, issued_at: datetime) -> Disclosure:
    """The same acknowledgement, from a routing that overtook its contact.

    Contacts and routings travel on different topics, so a routing can be read first
    (a lagging consumer, a replay). The referrer must still hear "we have it" before
    "this is what we decided": the routing carries everything the acknowledgement needs,
    and its id is the same, so whichever arrives first issues it, once.
    """
    return _acknowledgement(
        routed.contact_id, routed.contact_reference, routed.contact_source, issued_at
    )


def _acknowledgement(
    contact_id: str, contact_reference: str, source: SourceCoordinates, issued_at: datetime
) -> Disclosure:
    return disclose(
        audience_of(source),
        "feedback.acknowledgement",
        source.agency_id,
        {
            "feedback_id": derive_id("feedback", contact_id, "acknowledgement"),
            "kind": "acknowledgement",
            "referrer_reference": source.reference,
            "contact_reference": contact_reference,
            "issued_at": issued_at,
        },
    )


@dataclass(frozen=True)
class Reported:
    """What the referrer was last told about one contact (its outcome or latest update)."""

    outcome: str
    hub: str
    sequence: int
    """0 for the outcome, then 1, 2, ... for each update."""
    decided_at: datetime
    routed_at: datetime


Why = Literal["outcome", "update", "public_referrer", "stale", "unchanged", "unknown_hub"]


@dataclass(frozen=True)
class RoutingFeedback:
    """What to tell the referrer about one routing, and why (the inbox outcome word)."""

    why: Why
    disclosure: Disclosure | None = None
    sequence: int = 0


def on_routed(
    routed: Routed,
    reported: Reported | None,
    topology: Topology,
    issued_at: datetime,
    wording: Wording = WORDING,
) -> RoutingFeedback:
    """Decide the feedback for a routing, given what the referrer was last told."""
    audience = audience_of(routed.contact_source)
    if audience == "public":
        return RoutingFeedback("public_referrer")
    if routed.hub not in topology.hub_ids:
        return RoutingFeedback("unknown_hub")
    if reported is None:
        kind: Literal["outcome", "update"] = "outcome"
        sequence = 0
        feedback_id = derive_id("feedback", routed.contact_id, "outcome")
    else:
        if (routed.decided_at, routed.routed_at) < (reported.decided_at, reported.routed_at):
            return RoutingFeedback("stale")
        if (routed.outcome, routed.hub) == (reported.outcome, reported.hub):
            return RoutingFeedback("unchanged")
        kind, sequence = "update", reported.sequence + 1
        feedback_id = derive_id("feedback", routed.contact_id, "update", routed.routed_id)
    disclosure = disclose(
        audience,
        f"feedback.{kind}",
        routed.contact_source.agency_id,
        {
            "feedback_id": feedback_id,
            "kind": kind,
            "referrer_reference": routed.contact_source.reference,
            "contact_reference": routed.contact_reference,
            "outcome": routed.outcome,
            "outcome_text": wording.text(routed.outcome, update=kind == "update"),
            "hub": routed.hub,
            "hub_contact": topology.hub(routed.hub).contact_point,
            "issued_at": issued_at,
        },
    )
    return RoutingFeedback(kind, disclosure, sequence)
