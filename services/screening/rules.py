"""Threshold rules: (contact, facts) -> decision. Pure: no I/O, no Faust, no clock reads.

This first cut carries a handful of DOMAIN.md's ``default-v1`` rules; the full rule set
moves to a practitioner-readable rule file in the screening issue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from schemas.events import Contact, ContactChild, Decision, DecisionSubject, RuleHit
from services.common.ids import derive_id

RULE_SET_VERSION = "default-v1-foundation"

#: Threshold level -> (outcome, RAG), DOMAIN.md "Threshold levels and outcomes".
LEVELS: dict[int, tuple[str, str]] = {
    1: ("no_further_action", "blue"),
    2: ("single_agency", "green"),
    3: ("initial_assessment", "amber"),
    4: ("s47", "red"),
}


@dataclass(frozen=True)
class RuleResult:
    """One rule that fired: its id, level, reason and (level 2) target agency."""

    id: str
    level: int
    reason: str
    target_agency: str | None = None


def age_in_years(child: ContactChild, on: date) -> int:
    """Whole years of age on ``on``; unborn children count as 0 (under 1)."""
    born = child.date_of_birth
    if born is None:
        return 0
    years = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    return max(years, 0)


def _child_affected(child: ContactChild) -> bool:
    # A referral's children are its subjects; a police child must be present or resident.
    return child.present_at_incident is not False or child.resident is not False


def _sexual_abuse(contact: Contact, _on: date) -> RuleResult | None:
    disclosure = contact.indicators.disclosure if contact.indicators else "none"
    if (
        {"19B", "19C"} & set(contact.factors)
        or contact.incident_type == "child_sexual_abuse"
        or disclosure == "sexual"
    ):
        return RuleResult("R4-SEX", 4, "Disclosure or allegation of sexual abuse.")
    return None


def _immediate_danger(contact: Contact, _on: date) -> RuleResult | None:
    if contact.indicators is not None and contact.indicators.immediate_danger:
        return RuleResult("R4-DANGER", 4, "The referrer reports the child is in immediate danger.")
    if contact.incident_type == "child_physical_abuse" and contact.crime_reference_present:
        return RuleResult("R4-DANGER", 4, "Police report physical abuse of a child as a crime.")
    return None


def _domestic_abuse(contact: Contact, on: date) -> RuleResult | None:
    if contact.incident_type != "domestic_abuse":
        return None
    affected = [c for c in contact.children if _child_affected(c)]
    if not affected:
        return None
    if contact.dash_risk == "high":
        return RuleResult(
            "R4-DA-HIGH", 4, "Domestic abuse assessed high risk with a child present or resident."
        )
    if contact.dash_risk == "medium":
        return RuleResult(
            "R3-DA-MED", 3, "Domestic abuse assessed medium risk with a child present or resident."
        )
    youngest = min(age_in_years(c, on) for c in affected)
    agency = "health" if youngest < 5 else "education"
    return RuleResult(
        "R2-DA-STD",
        2,
        "Domestic abuse assessed standard risk with a child present or resident.",
        agency,
    )


RULES: tuple[Callable[[Contact, date], RuleResult | None], ...] = (
    _sexual_abuse,
    _immediate_danger,
    _domestic_abuse,
)


def screen(contact: Contact, decided_at: datetime) -> Decision:
    """The automated decision for ``contact``: the highest level any rule gives it."""
    on = (contact.incident_at or contact.received_at).date()
    fired = [r for rule in RULES if (r := rule(contact, on)) is not None]
    if not fired:
        fired = [RuleResult("R1-NONE", 1, "No threshold rule applies: universal services.")]
    level = max(r.level for r in fired)
    outcome, rag = LEVELS[level]
    target = next((r.target_agency for r in fired if r.level == level and r.target_agency), None)
    joint = contact.incident_type == "domestic_abuse"
    return Decision(
        decision_id=derive_id("decision", contact.contact_id, "rules", RULE_SET_VERSION),
        contact_id=contact.contact_id,
        contact_reference=contact.contact_reference,
        level=level,
        outcome=outcome,
        target_agency=target,
        rag=rag,
        rules=[RuleHit(id=r.id, reason=r.reason) for r in fired],
        rule_set_version=RULE_SET_VERSION,
        rule_set_hash="foundation",
        joint_screening=joint,
        participating_agencies=["police", "childrens_social_care", "health"] if joint else [],
        marac_referral=joint and contact.dash_risk == "high",
        encompass_required=joint
        and any(c.school_urn and 5 <= age_in_years(c, on) < 16 for c in contact.children),
        source="rules",
        decided_at=decided_at,
        hub=contact.hub,
        subjects=[
            DecisionSubject(subject_id=c.subject_id, child_ref=c.child_ref)
            for c in contact.children
        ],
        open_case=contact.open_case,
        received_at=contact.received_at,
        contact_source=contact.source,
    )
