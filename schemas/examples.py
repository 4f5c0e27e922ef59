"""Deterministic, obviously fictional payloads for tests and the simulator.

Every builder returns a fresh JSON-ready ``dict`` (strings for dates and times) that
validates against its model; keyword overrides replace top-level keys (a shallow merge),
so nested changes are made by passing a whole new value, e.g.
``referral(children=[child(no_fixed_abode=True, address=None)])``.

The people are synthetic: given names like "Testchild", family names like "Example-One",
NHS numbers from the 999 test range with valid check digits (see :data:`NHS_NUMBERS`),
Birmingham postcodes picked only for their district (B6 is in the North area, B11 in
the South). Times are fixed (March 2024), never "now", so results are reproducible.

Long on purpose: one small builder per contract payload, each read alone.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

__all__ = [
    "INVALID_NHS_NUMBER",
    "NHS_NUMBERS",
    "POSTCODE_NORTH",
    "POSTCODE_OUT_OF_AREA",
    "POSTCODE_SOUTH",
    "SCHOOL_URN",
    "adult",
    "case_status",
    "child",
    "contact",
    "dead_letter",
    "decision",
    "decision_subject",
    "feedback",
    "officer",
    "police_child",
    "police_notification",
    "practitioner_decision",
    "queue_item",
    "queue_update",
    "referral",
    "referrer",
    "routed",
    "school_notification",
    "sla_breach",
    "source_coordinates",
]

NHS_NUMBERS: tuple[str, ...] = (
    "9990000018",
    "9990000026",
    "9990000034",
    "9990000042",
    "9990000050",
    "9990000069",
)
"""Synthetic NHS numbers (999 test range) with valid modulus-11 check digits."""

INVALID_NHS_NUMBER = "9990000019"
"""The first of :data:`NHS_NUMBERS` with its check digit changed: must be refused."""

POSTCODE_NORTH = "B6 4AA"
"""A postcode in district B6 (North area; hub north-west-central by default)."""
POSTCODE_SOUTH = "B11 1AA"
"""A postcode in district B11 (South area; hub east-south by default)."""
POSTCODE_OUT_OF_AREA = "B90 1AA"
"""A postcode in district B90 (Solihull): out of area."""
SCHOOL_URN = "999001"
"""A fictional school URN."""


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = {**base, **overrides}
    # Deep-copy so callers can mutate what they get without touching shared defaults.
    return copy.deepcopy(merged)


def child(**overrides: Any) -> dict[str, Any]:
    """A valid referral child: Testchild Example-One, born 2019-05-17, living in B6 (North).

    For an unborn child pass ``date_of_birth=None, expected_date_of_birth="2024-09-01"``.
    """
    base: dict[str, Any] = {
        "child_ref": "C-1",
        "given_name": "Testchild",
        "family_name": "Example-One",
        "date_of_birth": "2019-05-17",
        "gender": "female",
        "nhs_number": NHS_NUMBERS[0],
        "address": {"line1": "1 Example Street", "town": "Birmingham", "postcode": POSTCODE_NORTH},
        "no_fixed_abode": False,
        "school_urn": SCHOOL_URN,
    }
    return _merge(base, overrides)


def police_child(**overrides: Any) -> dict[str, Any]:
    """A valid police-notification child: :func:`child` present at the incident and resident."""
    return _merge(child(present_at_incident=True, resident=True), overrides)


def adult(**overrides: Any) -> dict[str, Any]:
    """A valid adult for a police notification: Testadult Example-One, a parent and victim."""
    base: dict[str, Any] = {
        "role": "victim",
        "given_name": "Testadult",
        "family_name": "Example-One",
        "date_of_birth": "1990-01-01",
    }
    return _merge(base, overrides)


def officer(**overrides: Any) -> dict[str, Any]:
    """A valid (fictional) reporting officer."""
    base: dict[str, Any] = {
        "collar_number": "TEST1234",
        "unit": "Example Response Unit",
        "phone": "0121 496 0000",  # Ofcom's drama range: never a real line
    }
    return _merge(base, overrides)


def police_notification(**overrides: Any) -> dict[str, Any]:
    """A valid police notification: domestic abuse, DASH high, one child present, in B6.

    With the default rule set this is level 4 (R4-DA-HIGH) and a MARAC referral.
    """
    base: dict[str, Any] = {
        "notification_id": "WM-TEST-0001",
        "force": "west-midlands",
        "incident_type": "domestic_abuse",
        "occurred_at": "2024-03-12T21:40:00+00:00",
        "reported_at": "2024-03-12T23:05:00+00:00",
        "location_postcode": POSTCODE_NORTH,
        "crime_reference": "CRIME-TEST-0001",
        "ppn_grade": "high",
        "dash_risk": "high",
        "dash_score": 15,
        "children": [police_child()],
        "adults": [adult(), adult(role="suspect", given_name="Testsuspect")],
        "factors": ["3B"],
        "officer": officer(),
        "narrative": "Synthetic narrative for testing. No real person is described.",
        "restricted": False,
    }
    return _merge(base, overrides)


def referrer(**overrides: Any) -> dict[str, Any]:
    """A valid (fictional) referrer: a designated safeguarding lead at a school."""
    base: dict[str, Any] = {
        "agency_id": "school-999001",
        "organisation": "Example Primary School",
        "name": "Testreferrer Example-Two",
        "role": "Designated safeguarding lead",
        "email": "dsl@school.example",
        "phone": "0121 496 0001",
    }
    return _merge(base, overrides)


def referral(**overrides: Any) -> dict[str, Any]:
    """A valid school referral (source 2A) about one child in B11 (South) with neglect (16A).

    Consent obtained, no indicators raised. The child is 7, so with the default rule set
    this is level 2 (R2-NEGLECT, early help); pass a younger child for R3-NEGLECT.
    """
    base: dict[str, Any] = {
        "referral_id": "REF-TEST-0001",
        "received_at": "2024-03-13T09:15:00+00:00",
        "referral_source": "2A",
        "referrer": referrer(),
        "children": [
            child(
                child_ref="C-2",
                given_name="Testchild",
                family_name="Example-Two",
                date_of_birth="2016-11-02",
                gender="male",
                nhs_number=NHS_NUMBERS[1],
                address={
                    "line1": "2 Example Road",
                    "town": "Birmingham",
                    "postcode": POSTCODE_SOUTH,
                },
            )
        ],
        "factors": ["16A"],
        "indicators": {
            "immediate_danger": False,
            "injury_observed": False,
            "disclosure": "none",
            "forced_marriage": False,
            "missing_episodes_90d": 0,
        },
        "consent": {"obtained": True},
        "narrative": "Synthetic narrative for testing. No real person is described.",
    }
    return _merge(base, overrides)


def practitioner_decision(**overrides: Any) -> dict[str, Any]:
    """A valid practitioner override to initial_assessment for contact ``CON-TEST-0001``."""
    base: dict[str, Any] = {
        "contact_id": "CON-TEST-0001",
        "practitioner_id": "PRAC-TEST-01",
        "agency": "childrens_social_care",
        "kind": "override",
        "outcome": "initial_assessment",
        "reason": "Synthetic reason: further information from health lowers the level.",
        "decided_at": "2024-03-13T11:00:00+00:00",
    }
    return _merge(base, overrides)


def queue_update(**overrides: Any) -> dict[str, Any]:
    """A valid queue update: item ``QI-TEST-0001`` acknowledged."""
    base: dict[str, Any] = {
        "queue_item_id": "QI-TEST-0001",
        "status": "acknowledged",
        "at": "2024-03-13T12:00:00+00:00",
        "by": "PRAC-TEST-01",
    }
    return _merge(base, overrides)


def case_status(**overrides: Any) -> dict[str, Any]:
    """A valid case status: the council's case system opened an early-help case for
    Testchild Example-Three (no NHS number), born 2021-08-09, living in B6 (North)."""
    base: dict[str, Any] = {
        "case_system": "liquidlogic-lcs",
        "child": {
            "child_ref": "LCS-TEST-0001",
            "given_name": "Testchild",
            "family_name": "Example-Three",
            "date_of_birth": "2021-08-09",
            "address": {"line1": "3 Example Street", "postcode": POSTCODE_NORTH},
        },
        "case_type": "early_help",
        "status": "open",
        "at": "2024-03-01T10:00:00+00:00",
        "team": "Example Early Help Team North",
        "hub": "north-west-central",
    }
    return _merge(base, overrides)


# --- Internal and outbound events -----------------------------------------------------
# These follow the police notification above through the pipeline, so ids line up:
# contact CON-TEST-0001 -> decision DEC-TEST-0001 -> queue item QI-TEST-0001.


def source_coordinates(**overrides: Any) -> dict[str, Any]:
    """Source coordinates of :func:`police_notification` read from the inbound topic."""
    base: dict[str, Any] = {
        "kind": "police",
        "system": "urn:police:west-midlands:niche",
        "event_id": "evt-test-0001",
        "reference": "WM-TEST-0001",
        "agency_id": "west-midlands",
        "referral_source": "6",
        "topic": "mash.inbound.police-notifications.v1",
        "partition": 0,
        "offset": 42,
    }
    return _merge(base, overrides)


def contact(**overrides: Any) -> dict[str, Any]:
    """A recorded contact for :func:`police_notification` (hub north-west-central)."""
    base: dict[str, Any] = {
        "contact_id": "CON-TEST-0001",
        "contact_reference": "MASH-TEST-0001",
        "subject_key": "SUBJ-TEST-0001",
        "received_at": "2024-03-12T23:05:10+00:00",
        "recorded_at": "2024-03-12T23:05:11+00:00",
        "source": source_coordinates(),
        "incident_type": "domestic_abuse",
        "incident_at": "2024-03-12T21:40:00+00:00",
        "ppn_grade": "high",
        "dash_risk": "high",
        "crime_reference_present": True,
        "restricted": False,
        "factors": ["3B"],
        "indicators": None,
        "children": [
            {
                "subject_id": "SUBJ-TEST-0001",
                "child_ref": "C-1",
                "household_key": "HH-TEST-0001",
                "given_name": "Testchild",
                "family_name": "Example-One",
                "date_of_birth": "2019-05-17",
                "expected_date_of_birth": None,
                "postcode": POSTCODE_NORTH,
                "no_fixed_abode": False,
                "school_urn": SCHOOL_URN,
                "present_at_incident": True,
                "resident": True,
            }
        ],
        "hub": "north-west-central",
        "out_of_area": False,
        "open_case": False,
        "re_referral": False,
        "linked_contact_ids": [],
    }
    return _merge(base, overrides)


#: Each level's outcome, RAG and (level 2) single agency in :func:`decision_subject`.
_LEVELS: dict[int, tuple[str, str, str | None]] = {
    1: ("no_further_action", "blue", None),
    2: ("single_agency", "green", "health"),
    3: ("initial_assessment", "amber", None),
    4: ("s47", "red", None),
}


def decision_subject(
    subject_id: str = "SUBJ-TEST-0001",
    level: int = 4,
    rules: Sequence[str] = ("R-TEST",),
    **overrides: Any,
) -> dict[str, Any]:
    """A child as a rules decision gives it: its own level with that level's outcome and
    RAG (and, at level 2, the health agency), and the rules that fired for it."""
    outcome, rag, agency = _LEVELS[level]
    base: dict[str, Any] = {
        "subject_id": subject_id,
        "child_ref": f"C-{subject_id}",
        "level": level,
        "outcome": outcome,
        "rag": rag,
        "target_agency": agency,
        "rules": [{"id": rule, "reason": "A test rule."} for rule in rules],
    }
    return _merge(base, overrides)


def decision(**overrides: Any) -> dict[str, Any]:
    """An automated level-4 decision on :func:`contact` (R4-DA-HIGH, joint screening)."""
    base: dict[str, Any] = {
        "decision_id": "DEC-TEST-0001",
        "contact_id": "CON-TEST-0001",
        "contact_reference": "MASH-TEST-0001",
        "level": 4,
        "outcome": "s47",
        "target_agency": None,
        "rag": "red",
        "rules": [
            {
                "id": "R4-DA-HIGH",
                "reason": "Domestic abuse assessed as high risk with a child present or resident.",
            }
        ],
        "rule_set_version": "default-v1",
        "rule_set_hash": "sha256-test",
        "joint_screening": True,
        "participating_agencies": ["police", "childrens_social_care", "health"],
        "marac_referral": True,
        "encompass_required": True,
        "source": "rules",
        "decided_at": "2024-03-12T23:05:12+00:00",
        "hub": "north-west-central",
        "subjects": [{"subject_id": "SUBJ-TEST-0001", "child_ref": "C-1"}],
        "open_case": False,
        "received_at": "2024-03-12T23:05:10+00:00",
        "contact_source": source_coordinates(),
        "supersedes_decision_id": None,
    }
    return _merge(base, overrides)


def queue_item(**overrides: Any) -> dict[str, Any]:
    """The s47 queue item routed from :func:`decision`."""
    base: dict[str, Any] = {
        "queue_item_id": "QI-TEST-0001",
        "contact_id": "CON-TEST-0001",
        "decision_id": "DEC-TEST-0001",
        "subject_id": "SUBJ-TEST-0001",
        "hub": "north-west-central",
        "queue": "s47",
        "outcome": "s47",
        "target_agency": None,
        "rag": "red",
        "deadlines": {"strategy_discussion": "2024-03-13T03:05:12+00:00"},
        "open_case_update": False,
        "status": "open",
        "routed_at": "2024-03-12T23:05:13+00:00",
    }
    return _merge(base, overrides)


def routed(**overrides: Any) -> dict[str, Any]:
    """The routing record for :func:`decision` and :func:`queue_item`."""
    base: dict[str, Any] = {
        "routed_id": "RTD-TEST-0001",
        "contact_id": "CON-TEST-0001",
        "contact_reference": "MASH-TEST-0001",
        "decision_id": "DEC-TEST-0001",
        "decision_source": "rules",
        "level": 4,
        "outcome": "s47",
        "rag": "red",
        "target_agency": None,
        "hub": "north-west-central",
        "queue": "s47",
        "queue_item_ids": ["QI-TEST-0001"],
        "contact_source": source_coordinates(),
        "received_at": "2024-03-12T23:05:10+00:00",
        "decided_at": "2024-03-12T23:05:12+00:00",
        "routed_at": "2024-03-12T23:05:13+00:00",
    }
    return _merge(base, overrides)


def feedback(**overrides: Any) -> dict[str, Any]:
    """An outcome feedback message to the force for :func:`police_notification`."""
    base: dict[str, Any] = {
        "feedback_id": "FB-TEST-0001",
        "kind": "outcome",
        "referrer_reference": "WM-TEST-0001",
        "contact_reference": "MASH-TEST-0001",
        "outcome": "s47",
        "outcome_text": "A strategy discussion will be held.",
        "hub": "north-west-central",
        "hub_contact": "mash-north@council.example",
        "issued_at": "2024-03-12T23:05:14+00:00",
    }
    return _merge(base, overrides)


def school_notification(**overrides: Any) -> dict[str, Any]:
    """The Operation Encompass notice for the child in :func:`police_notification`."""
    base: dict[str, Any] = {
        "notice_id": "ENC-TEST-0001",
        "school_urn": SCHOOL_URN,
        "child_given_name": "Testchild",
        "child_family_name": "Example-One",
        "child_date_of_birth": "2019-05-17",
        "police_reference": "WM-TEST-0001",
        "incident_at": "2024-03-12T21:40:00+00:00",
        "child_present": True,
        "due_by": "2024-03-13T08:30:00+00:00",
    }
    return _merge(base, overrides)


def sla_breach(**overrides: Any) -> dict[str, Any]:
    """A missed strategy-discussion deadline on :func:`queue_item`."""
    base: dict[str, Any] = {
        "breach_id": "BR-TEST-0001",
        "queue_item_id": "QI-TEST-0001",
        "deadline": "strategy_discussion",
        "due_at": "2024-03-13T03:05:12+00:00",
        "breached_at": "2024-03-13T03:05:30+00:00",
        "hub": "north-west-central",
        "queue": "s47",
    }
    return _merge(base, overrides)


def dead_letter(**overrides: Any) -> dict[str, Any]:
    """A dead letter for a value that was not JSON (``b"not json"``)."""
    base: dict[str, Any] = {
        "dead_letter_id": "DL-TEST-0001",
        "original_topic": "mash.inbound.referrals.v1",
        "partition": 0,
        "offset": 7,
        "original_key": "UkVGLVRFU1QtMDAwMQ==",
        "original_value": "bm90IGpzb24=",
        "headers": [{"key": "ce_id", "value": "ZXZ0LXRlc3QtMDAwMg=="}, {"key": "x", "value": None}],
        "reason": "malformed_json",
        "errors": [{"path": "", "message": "value is not JSON: Expecting value"}],
        "service": "intake",
        "at": "2024-03-13T09:15:01+00:00",
    }
    return _merge(base, overrides)
