"""Contacts for the screening tests, built from :mod:`schemas.examples`.

Police contacts have their incident on 2024-03-12 (London date), referrals are received
on 2024-03-13; ages in the tests are worked out against those dates.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from schemas import examples
from schemas.events import Contact, Decision
from services.screening.engine import evaluate
from services.screening.facts import ScreeningHistory
from services.screening.ruleset import default_rule_set

POLICE_DAY = "2024-03-12"
REFERRAL_DAY = "2024-03-13"
DECIDED_AT = datetime(2024, 3, 13, 10, 0, tzinfo=UTC)


def kid(
    subject_id: str = "SUBJ-1",
    *,
    dob: str | None = "2016-01-01",
    edd: str | None = None,
    present: bool | None = True,
    resident: bool | None = True,
    urn: str | None = examples.SCHOOL_URN,
    indicators: dict[str, Any] | None = None,
    council_cases: list[str] | None = None,
    matched: list[str] | None = None,
) -> dict[str, Any]:
    """A contact child (a police child by default; pass present/resident None for referrals);
    ``council_cases``: the council's open cases; ``matched``: probably matched subjects."""
    return {
        "subject_id": subject_id,
        "child_ref": f"C-{subject_id}",
        "household_key": "HH-1",
        "given_name": "Testchild" if dob else None,
        "family_name": "Example-One",
        "date_of_birth": dob,
        "expected_date_of_birth": edd,
        "postcode": examples.POSTCODE_NORTH,
        "no_fixed_abode": False,
        "school_urn": urn,
        "present_at_incident": present,
        "resident": resident,
        "indicators": indicators,
        "council_cases": council_cases or [],
        "matched_subject_ids": matched or [],
    }


def police(
    incident_type: str = "domestic_abuse",
    *,
    dash: str | None = "standard",
    ppn: str = "medium",
    crime: bool = False,
    factors: Iterable[str] = (),
    children: list[dict[str, Any]] | None = None,
    **overrides: Any,
) -> Contact:
    """A police contact (incident 2024-03-12 21:40 UTC); one 8-year-old present and resident."""
    return Contact.model_validate(
        examples.contact(
            incident_type=incident_type,
            dash_risk=dash,
            ppn_grade=ppn,
            crime_reference_present=crime,
            factors=list(factors),
            children=children or [kid()],
            **overrides,
        )
    )


def referral(
    factors: Iterable[str] = ("16A",),
    *,
    source: str = "2A",
    children: list[dict[str, Any]] | None = None,
    re_referral: bool = False,
    **indicators: Any,
) -> Contact:
    """A referral contact received 2024-03-13; one 8-year-old; indicators as keywords."""
    return Contact.model_validate(
        examples.contact(
            source=examples.source_coordinates(
                kind="referral",
                system="urn:referrals:portal",
                reference="REF-TEST-0001",
                agency_id="school-999001",
                referral_source=source,
                topic="mash.inbound.referrals.v1",
            ),
            received_at=f"{REFERRAL_DAY}T09:15:00+00:00",
            recorded_at=f"{REFERRAL_DAY}T09:15:01+00:00",
            incident_type=None,
            incident_at=None,
            ppn_grade=None,
            dash_risk=None,
            crime_reference_present=False,
            factors=list(factors),
            indicators=indicators,
            children=children or [kid(present=None, resident=None)],
            re_referral=re_referral,
        )
    )


def ref_kid(subject_id: str = "SUBJ-1", **kwargs: Any) -> dict[str, Any]:
    """A referral child (no police presence flags)."""
    return kid(subject_id, present=None, resident=None, **kwargs)


def hist(
    da: int = 0, low: int = 0, missing: int = 0, subject_id: str = "SUBJ-1"
) -> ScreeningHistory:
    """What earlier contacts count for: household DA notifications, the child's
    low-graded police notifications and missing episodes."""
    return ScreeningHistory(
        da_incidents_365d=da,
        low_graded_police_90d={subject_id: low},
        missing_episodes_90d={subject_id: missing},
    )


def decide(contact: Contact, history: ScreeningHistory | None = None) -> Decision:
    """The decision under the shipped default rule set."""
    return evaluate(contact, history or ScreeningHistory(), default_rule_set(), DECIDED_AT)


def rule_ids(decision: Decision) -> list[str]:
    """The ids of the rules a decision lists, in order."""
    return [hit.id for hit in decision.rules]
