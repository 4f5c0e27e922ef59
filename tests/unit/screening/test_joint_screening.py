"""Domestic-abuse joint screening flags (docs/domain.md): joint, MARAC and Operation Encompass.

Police incident date 2024-03-12: a child born 2019-03-12 is exactly 5, one born 2008-03-13
is 15, one born 2008-03-12 is 16.
"""

from __future__ import annotations

import pytest

from schemas.events import Contact
from services.screening.rules import JOINT_SCREENING_AGENCIES
from services.screening.ruleset import DEFAULT_RULE_SET
from tests.unit.screening.builders import decide, hist, kid, police, referral, rule_ids


@pytest.mark.parametrize("dash", ["standard", "medium", "high"])
def test_police_domestic_abuse_is_screened_jointly(dash: str) -> None:
    decision = decide(police(dash=dash))
    assert decision.joint_screening is True
    assert decision.participating_agencies == list(JOINT_SCREENING_AGENCIES)
    assert decision.participating_agencies == ["police", "childrens_social_care", "health"]
    assert decision.marac_referral is (dash == "high")


def test_each_agencys_view_is_listed_with_the_facts_it_brought() -> None:
    # Item 2 of the domain issue: the agencies were a constant label. The decision now says
    # what each view brought, and those facts decide (the unborn child, the CP plan).
    unborn = kid("SUBJ-U", dob=None, edd="2024-06-01", urn=None)
    on_a_plan = kid("SUBJ-P", council_cases=["child_protection_plan"])
    contact = police(dash="standard", children=[unborn, on_a_plan], open_case=True)
    decision = decide(contact, hist(da=1))
    assert decision.joint_screening_views == {
        "police": ["dash_standard", "da_notifications_2"],
        "childrens_social_care": ["open_case", "council_child_protection_plan"],
        "health": ["unborn"],
    }
    assert {"R4-DA-CP-PLAN", "R3-DA-BABY"} <= set(rule_ids(decision))
    plain = decide(police(dash="high"))
    assert plain.joint_screening_views == {
        "police": ["dash_high", "da_notifications_1"],
        "childrens_social_care": [],
        "health": [],
    }
    baby = decide(police(children=[kid(dob="2023-06-01")]))
    assert baby.joint_screening_views["health"] == ["child_under_1"]
    assert decide(referral(["16A"])).joint_screening_views == {}


def test_repeat_domestic_abuse_is_a_marac_referral_whatever_the_dash_level() -> None:
    # Item 4 of the domain issue: R3-DA-REPEAT is MARAC's "potential escalation" criterion.
    decision = decide(police(dash="standard"), hist(da=2))
    assert "R3-DA-REPEAT" in rule_ids(decision)
    assert (decision.level, decision.marac_referral) == (3, True)
    assert decide(police(dash="standard"), hist(da=1)).marac_referral is False


@pytest.mark.parametrize(
    ("child", "level"),
    [
        (kid(dob="2023-06-01", urn=None), 3),  # nine months old
        (kid(dob=None, edd="2024-06-01", urn=None), 3),  # unborn
        (kid(dob="2023-03-12", urn=None), 2),  # one on the incident date
        (kid(dob="2023-06-01", urn=None, present=False, resident=False), 1),
    ],
)
def test_a_baby_or_unborn_child_lifts_standard_domestic_abuse_to_assessment(
    child: dict[str, object], level: int
) -> None:
    # Health's view in joint screening changes the decision (R3-DA-BABY), not only a label.
    decision = decide(police(dash="standard", children=[child]))
    assert decision.level == level
    assert ("R3-DA-BABY" in rule_ids(decision)) is (level == 3)


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
        # School age without a school: the police desk is asked to find it (still action).
        (kid(dob="2016-01-01", urn=None), True),
        # Outside school age but the police gave a school (reception, sixth form): notified.
        (kid(dob="2019-03-13"), True),  # 4, turns 5 the next day
        (kid(dob="2008-03-12"), True),  # 16 on the incident date
        (kid(dob="2019-03-13", urn=None), False),  # 4, at no school
        (kid(dob="2008-03-12", urn=None), False),  # 16, at no school
        (kid(dob=None, edd="2024-06-01", urn=None), False),
    ],
)
def test_encompass_for_school_age_children_and_any_child_with_a_school(
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
    assert decision.rule_set_version == DEFAULT_RULE_SET
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
