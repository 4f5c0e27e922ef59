"""Domestic-abuse joint screening flags (DOMAIN.md): joint, MARAC and Operation Encompass.

Police incident date 2024-03-12: a child born 2019-03-12 is exactly 5, one born 2008-03-13
is 15, one born 2008-03-12 is 16.
"""

from __future__ import annotations

import pytest

from schemas.events import Contact
from services.screening.engine import JOINT_SCREENING_AGENCIES
from tests.unit.screening.builders import decide, kid, police, referral


@pytest.mark.parametrize("dash", ["standard", "medium", "high"])
def test_police_domestic_abuse_is_screened_jointly(dash: str) -> None:
    decision = decide(police(dash=dash))
    assert decision.joint_screening is True
    assert decision.participating_agencies == list(JOINT_SCREENING_AGENCIES)
    assert decision.participating_agencies == ["police", "childrens_social_care", "health"]
    assert decision.marac_referral is (dash == "high")


def test_marac_even_when_no_child_was_present() -> None:
    decision = decide(police(dash="high", children=[kid(present=False, resident=False)]))
    assert decision.level == 1
    assert (decision.joint_screening, decision.marac_referral) == (True, True)


@pytest.mark.parametrize(
    ("child", "encompass"),
    [
        (kid(dob="2016-01-01"), True),
        (kid(dob="2019-03-12"), True),  # 5 on the incident date
        (kid(dob="2008-03-13"), True),  # 15
        (kid(dob="2016-01-01", urn=None), False),
        (kid(dob="2019-03-13"), False),  # 4, turns 5 the next day
        (kid(dob="2008-03-12"), False),  # 16 on the incident date
        (kid(dob=None, edd="2024-06-01", urn=None), False),
    ],
)
def test_encompass_only_for_school_age_children_with_a_school(
    child: dict[str, object], encompass: bool
) -> None:
    assert decide(police(children=[child])).encompass_required is encompass


def test_encompass_if_any_child_qualifies() -> None:
    children = [kid("A", dob="2022-01-01", urn=None), kid("B", dob="2014-06-01")]
    assert decide(police(children=children)).encompass_required is True


@pytest.mark.parametrize(
    "contact",
    [
        police("child_neglect", dash=None),
        police("missing_child", dash=None),
        referral(["3B"]),
        referral(["16A"], source="6"),
    ],
)
def test_other_contacts_are_not_joint(contact: Contact) -> None:
    decision = decide(contact)
    assert decision.joint_screening is False
    assert decision.participating_agencies == []
    assert decision.marac_referral is False
    assert decision.encompass_required is False


def test_decision_carries_rule_set_identity_and_routing_context() -> None:
    contact = police(dash="high", open_case=True, hub="east-south")
    decision = decide(contact)
    assert decision.source == "rules"
    assert decision.rule_set_version == "default-v1"
    assert len(decision.rule_set_hash) == 64
    assert decision.contact_id == contact.contact_id
    assert decision.contact_reference == contact.contact_reference
    assert decision.hub == "east-south"
    assert decision.open_case is True
    assert decision.received_at == contact.received_at
    assert decision.contact_source == contact.source
    assert [s.subject_id for s in decision.subjects] == ["SUBJ-1"]


def test_reasons_carry_no_police_detail() -> None:
    decision = decide(police(dash="high", factors=["3B", "2B"]), None)
    text = " ".join(hit.reason for hit in decision.rules)
    for secret in ("Testchild", "Example", "CRIME", "WM-TEST", "narrative", "score"):
        assert secret not in text
