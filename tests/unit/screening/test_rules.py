"""Every rule of the shipped rule set (default-v3): a case that fires and a case that only
just does not.

Police incidents are on 2024-03-12 and referrals arrive on 2024-03-13 (London dates), so
a referral child born 2023-03-13 is exactly 1 and one born 2023-03-14 is 11 months old.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from schemas.events import Contact
from services.screening.facts import ScreeningHistory
from services.screening.ruleset import load_rule_set
from tests.unit.screening.builders import (
    decide,
    hist,
    kid,
    police,
    ref_kid,
    referral,
    rule_ids,
)

NONE = ScreeningHistory()

# Referral ages (received 2024-03-13).
BABY_11_MONTHS = "2023-03-14"
ONE_TODAY = "2023-03-13"
FOUR = "2019-03-14"
FIVE_TODAY = "2019-03-13"
SEVEN = "2016-11-02"
DUE = "2024-09-01"  # expected date of birth of an unborn child
# Police ages (incident 2024-03-12).
POLICE_FOUR = "2019-03-13"
POLICE_FIVE_TODAY = "2019-03-12"


@dataclass(frozen=True)
class Case:
    rule: str
    contact: Contact
    fires: bool
    history: ScreeningHistory = NONE


CASES: dict[str, Case] = {
    # R4-SEX
    "sex/19C": Case("R4-SEX", referral(["19C"]), True),
    "sex/19B": Case("R4-SEX", referral(["19B"]), True),
    "sex/disclosure": Case("R4-SEX", referral([], disclosure="sexual"), True),
    "sex/police-incident": Case("R4-SEX", police("child_sexual_abuse", dash=None), True),
    "sex/emotional-only": Case("R4-SEX", referral(["17A"], disclosure="emotional"), False),
    # R4-INJ-BABY
    "inj-baby/11-months": Case(
        "R4-INJ-BABY",
        referral([], children=[ref_kid(dob=BABY_11_MONTHS)], injury_observed=True),
        True,
    ),
    "inj-baby/unborn": Case(
        "R4-INJ-BABY",
        referral([], children=[ref_kid(dob=None, edd=DUE)], injury_observed=True),
        True,
    ),
    "inj-baby/exactly-1": Case(
        "R4-INJ-BABY",
        referral([], children=[ref_kid(dob=ONE_TODAY)], injury_observed=True),
        False,
    ),
    "inj-baby/no-injury": Case(
        "R4-INJ-BABY", referral([], children=[ref_kid(dob=BABY_11_MONTHS)]), False
    ),
    # R4-DANGER
    "danger/flag": Case("R4-DANGER", referral([], immediate_danger=True), True),
    "danger/police-crime": Case(
        "R4-DANGER", police("child_physical_abuse", dash=None, crime=True), True
    ),
    "danger/police-no-crime": Case(
        "R4-DANGER", police("child_physical_abuse", dash=None, crime=False), False
    ),
    "danger/da-with-crime": Case("R4-DANGER", police(crime=True), False),
    # R4-FGM
    "fgm/22A": Case("R4-FGM", referral(["22A"]), True),
    "fgm/forced-marriage": Case("R4-FGM", referral([], forced_marriage=True), True),
    "fgm/faith": Case("R4-FGM", referral(["23A"]), False),
    # R4-CSE
    "cse/11A": Case("R4-CSE", referral(["11A"]), True),
    "cse/12A": Case("R4-CSE", referral(["12A"]), True),
    "cse/cce-only": Case("R4-CSE", referral(["24A"]), False),
    # R4-PHYS
    "phys/18C-injury": Case("R4-PHYS", referral(["18C"], injury_observed=True), True),
    "phys/18C-no-injury": Case("R4-PHYS", referral(["18C"]), False),
    "phys/18B-injury": Case("R4-PHYS", referral(["18B"], injury_observed=True), False),
    # R4-DA-HIGH
    "da-high/present": Case("R4-DA-HIGH", police(dash="high"), True),
    "da-high/resident-only": Case(
        "R4-DA-HIGH", police(dash="high", children=[kid(present=False, resident=True)]), True
    ),
    "da-high/present-only": Case(
        "R4-DA-HIGH", police(dash="high", children=[kid(present=True, resident=False)]), True
    ),
    "da-high/neither": Case(
        "R4-DA-HIGH", police(dash="high", children=[kid(present=False, resident=False)]), False
    ),
    "da-high/medium": Case("R4-DA-HIGH", police(dash="medium"), False),
    # R3-DA-MED
    "da-med/medium": Case("R3-DA-MED", police(dash="medium"), True),
    "da-med/standard": Case("R3-DA-MED", police(dash="standard"), False),
    "da-med/neither": Case(
        "R3-DA-MED", police(dash="medium", children=[kid(present=False, resident=False)]), False
    ),
    # R3-DA-REPEAT: third or later in 365 days => 2 previous
    "da-repeat/third": Case("R3-DA-REPEAT", police(), True, hist(da=2)),
    "da-repeat/second": Case("R3-DA-REPEAT", police(), False, hist(da=1)),
    "da-repeat/high-third": Case("R3-DA-REPEAT", police(dash="high"), True, hist(da=5)),
    "da-repeat/neither": Case(
        "R3-DA-REPEAT",
        police(children=[kid(present=False, resident=False)]),
        False,
        hist(da=2),
    ),
    "da-repeat/not-da": Case(
        "R3-DA-REPEAT", police("child_coming_to_notice", dash=None), False, hist(da=2)
    ),
    # R3-ESCALATE: three police notifications in 90 days => 2 previous low-graded
    "escalate/third-low": Case("R3-ESCALATE", police(ppn="low"), True, hist(low=2)),
    "escalate/second-low": Case("R3-ESCALATE", police(ppn="low"), False, hist(low=1)),
    "escalate/other-child": Case(
        "R3-ESCALATE", police(ppn="low"), False, hist(low=2, subject_id="SUBJ-OTHER")
    ),
    "escalate/referral-after-two": Case("R3-ESCALATE", referral(["20"]), False, hist(low=2)),
    # R3-NEGLECT
    "neglect3/age-4": Case("R3-NEGLECT", referral(children=[ref_kid(dob=FOUR)]), True),
    "neglect3/unborn": Case("R3-NEGLECT", referral(children=[ref_kid(dob=None, edd=DUE)]), True),
    "neglect3/re-referral": Case(
        "R3-NEGLECT", referral(children=[ref_kid(dob=SEVEN)], re_referral=True), True
    ),
    "neglect3/disclosure": Case(
        "R3-NEGLECT", referral([], children=[ref_kid(dob=FOUR)], disclosure="neglect"), True
    ),
    "neglect3/police": Case(
        "R3-NEGLECT", police("child_neglect", dash=None, children=[kid(dob=POLICE_FOUR)]), True
    ),
    "neglect3/five-today": Case("R3-NEGLECT", referral(children=[ref_kid(dob=FIVE_TODAY)]), False),
    "neglect3/police-five-today": Case(
        "R3-NEGLECT",
        police("child_neglect", dash=None, children=[kid(dob=POLICE_FIVE_TODAY)]),
        False,
    ),
    # R3-PARENT-YOUNG
    "parent-young/1B": Case(
        "R3-PARENT-YOUNG", referral(["1B"], children=[ref_kid(dob=FOUR)]), True
    ),
    "parent-young/2B": Case(
        "R3-PARENT-YOUNG", referral(["2B"], children=[ref_kid(dob=None, edd=DUE)]), True
    ),
    "parent-young/4B": Case(
        "R3-PARENT-YOUNG", referral(["4B"], children=[ref_kid(dob=FOUR)]), True
    ),
    "parent-young/five-today": Case(
        "R3-PARENT-YOUNG", referral(["1B"], children=[ref_kid(dob=FIVE_TODAY)]), False
    ),
    "parent-young/child-own": Case(
        "R3-PARENT-YOUNG", referral(["1A"], children=[ref_kid(dob=FOUR)]), False
    ),
    # R3-EMO
    "emo/17A": Case("R3-EMO", referral(["17A"]), True),
    "emo/18C-no-injury": Case("R3-EMO", referral(["18C"]), True),
    "emo/18B": Case("R3-EMO", referral(["18B"]), True),
    "emo/disclosure": Case("R3-EMO", referral([], disclosure="emotional"), True),
    "emo/18C-injury": Case("R3-EMO", referral(["18C"], injury_observed=True), False),
    "emo/neglect": Case("R3-EMO", referral(["16A"]), False),
    # R3-MISSING: three or more episodes in 90 days, this one included
    "missing/referrer-3": Case("R3-MISSING", referral(["10A"], missing_episodes_90d=3), True),
    "missing/referrer-2": Case("R3-MISSING", referral(["10A"], missing_episodes_90d=2), False),
    "missing/police-third": Case(
        "R3-MISSING", police("missing_child", dash=None), True, hist(missing=2)
    ),
    "missing/police-second": Case(
        "R3-MISSING", police("missing_child", dash=None), False, hist(missing=1)
    ),
    "missing/10A-third": Case("R3-MISSING", referral(["10A"]), True, hist(missing=2)),
    "missing/no-new-episode": Case("R3-MISSING", referral(["20"]), False, hist(missing=2)),
    # R3-CCE
    "cce/24A": Case("R3-CCE", referral(["24A"]), True),
    "cce/13A": Case("R3-CCE", referral(["13A"]), True),
    "cce/behaviour": Case("R3-CCE", referral(["14A"]), False),
    # R2-DA-STD: first or second in 365 days
    "da-std/first": Case("R2-DA-STD", police(), True),
    "da-std/second": Case("R2-DA-STD", police(), True, hist(da=1)),
    "da-std/third": Case("R2-DA-STD", police(), False, hist(da=2)),
    "da-std/neither": Case(
        "R2-DA-STD", police(children=[kid(present=False, resident=False)]), False
    ),
    "da-std/medium": Case("R2-DA-STD", police(dash="medium"), False),
    # R2-NEGLECT
    "neglect2/age-7": Case("R2-NEGLECT", referral(children=[ref_kid(dob=SEVEN)]), True),
    "neglect2/five-today": Case("R2-NEGLECT", referral(children=[ref_kid(dob=FIVE_TODAY)]), True),
    "neglect2/age-4": Case("R2-NEGLECT", referral(children=[ref_kid(dob=FOUR)]), False),
    "neglect2/re-referral": Case(
        "R2-NEGLECT", referral(children=[ref_kid(dob=SEVEN)], re_referral=True), False
    ),
    # R2-PARENT
    "parent/five-today": Case(
        "R2-PARENT", referral(["4B"], children=[ref_kid(dob=FIVE_TODAY)]), True
    ),
    "parent/age-4": Case("R2-PARENT", referral(["4B"], children=[ref_kid(dob=FOUR)]), False),
    # R2-SELFHARM
    "selfharm/15A": Case("R2-SELFHARM", referral(["15A"]), True),
    "selfharm/4A": Case("R2-SELFHARM", referral(["4A"]), True),
    "selfharm/parent-4B": Case("R2-SELFHARM", referral(["4B"]), False),
    # R2-NEEDS
    "needs/7A": Case("R2-NEEDS", referral(["7A"]), True),
    "needs/5A": Case("R2-NEEDS", referral(["5A"]), True),
    "needs/6A": Case("R2-NEEDS", referral(["6A"]), True),
    "needs/14A": Case("R2-NEEDS", referral(["14A"]), True),
    "needs/missing-once": Case("R2-NEEDS", referral(["10A"]), True),
    "needs/missing-twice": Case("R2-NEEDS", referral(["10A"], missing_episodes_90d=2), True),
    "needs/missing-3": Case("R2-NEEDS", referral(["10A"], missing_episodes_90d=3), False),
    "needs/parent-disability": Case("R2-NEEDS", referral(["5B", "6B"]), False),
    # R2-HOUSING
    "housing/only-20": Case("R2-HOUSING", referral(["20"], source="4"), True),
    "housing/no-factors": Case("R2-HOUSING", referral([], source="4"), True),
    "housing/20-and-21": Case("R2-HOUSING", referral(["20", "21"], source="4"), True),
    # Item 9 of the domain issue: a concern no rule covers (3A) no longer drops it to 1.
    "housing/another-factor": Case("R2-HOUSING", referral(["20", "3A"], source="4"), True),
    "housing/not-housing": Case("R2-HOUSING", referral(["20"], source="2A"), False),
    # R3-DA-BABY
    "da-baby/unborn": Case("R3-DA-BABY", police(children=[kid(dob=None, edd=DUE)]), True),
    "da-baby/one-today": Case("R3-DA-BABY", police(children=[kid(dob="2023-03-12")]), False),
    # R3-SIBLING
    "sibling/of-level-4": Case(
        "R3-SIBLING",
        police(dash="high", children=[kid("A", present=False, resident=False), kid("B")]),
        True,
    ),
    "sibling/of-level-3": Case(
        "R3-SIBLING",
        police(dash="medium", children=[kid("A", present=False, resident=False), kid("B")]),
        False,
    ),
    # R4-DA-CP-PLAN: children's social care's view decides (docs/domain.md, joint screening)
    "da-cp-plan/standard": Case(
        "R4-DA-CP-PLAN", police(children=[kid(council_cases=["child_protection_plan"])]), True
    ),
    "da-cp-plan/child-in-need": Case(
        "R4-DA-CP-PLAN", police(children=[kid(council_cases=["child_in_need"])]), False
    ),
    "da-cp-plan/not-da": Case(
        "R4-DA-CP-PLAN",
        referral(["16A"], children=[ref_kid(council_cases=["child_protection_plan"])]),
        False,
    ),
    # R1-NONE
    "none/factor-21": Case("R1-NONE", referral(["21"]), True),
    "none/da-no-child-present": Case(
        "R1-NONE", police(dash="high", children=[kid(present=False, resident=False)]), True
    ),
    "none/anything-fires": Case("R1-NONE", referral(["16A"]), False),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_rule_fires_or_not(case: Case) -> None:
    decision = decide(case.contact, case.history)
    assert (case.rule in rule_ids(decision)) is case.fires, rule_ids(decision)


DOMAIN_RULES = {
    "R4-SEX", "R4-INJ-BABY", "R4-DANGER", "R4-FGM", "R4-CSE", "R4-PHYS", "R4-DA-HIGH",
    "R4-DA-CP-PLAN",
    "R3-DA-MED", "R3-DA-REPEAT", "R3-DA-BABY", "R3-ESCALATE", "R3-NEGLECT", "R3-PARENT-YOUNG",
    "R3-EMO", "R3-MISSING", "R3-SIBLING", "R3-CCE", "R2-DA-STD", "R2-NEGLECT", "R2-PARENT",
    "R2-SELFHARM", "R2-NEEDS", "R2-HOUSING", "R1-NONE",
}  # fmt: skip


def test_every_rule_has_a_firing_and_a_not_firing_case() -> None:
    firing = {c.rule for c in CASES.values() if c.fires}
    not_firing = {c.rule for c in CASES.values() if not c.fires}
    shipped = load_rule_set()
    assert {r.id for r in shipped.rules} | {shipped.fallback.id} == DOMAIN_RULES
    assert firing == DOMAIN_RULES
    assert not_firing == DOMAIN_RULES


@pytest.mark.parametrize(
    ("contact", "history", "level", "outcome", "rag"),
    [
        (police(dash="high"), NONE, 4, "s47", "red"),
        (police(dash="medium"), NONE, 3, "initial_assessment", "amber"),
        (police(), NONE, 2, "single_agency", "green"),
        (police(), hist(da=2), 3, "initial_assessment", "amber"),
        (referral(["21"]), NONE, 1, "no_further_action", "blue"),
    ],
)
def test_level_outcome_and_rag_come_from_the_level_table(
    contact: Contact, history: ScreeningHistory, level: int, outcome: str, rag: str
) -> None:
    decision = decide(contact, history)
    assert (decision.level, decision.outcome, decision.rag) == (level, outcome, rag)


@pytest.mark.parametrize(
    ("contact", "agency"),
    [
        (police(children=[kid(dob=POLICE_FOUR)]), "health"),
        (police(children=[kid(dob=POLICE_FIVE_TODAY)]), "education"),
        (police(children=[kid(dob="2008-03-13")]), "education"),  # 15
        (police(children=[kid(dob="2008-03-12")]), "early_help"),  # 16 today
        # Several children: the first row of the age table that fits any of them.
        (police(children=[kid("A", dob="2016-01-01"), kid("B", dob=POLICE_FOUR)]), "health"),
        (referral(["16A"], children=[ref_kid(dob=SEVEN)]), "early_help"),
        (referral(["15A"]), "health"),
        (referral(["20"], source="4"), "housing"),
        # Two level-2 rules: the first in file order gives the agency.
        (police(factors=["16A"]), "education"),
    ],
)
def test_target_agency_of_level_2_decisions(contact: Contact, agency: str) -> None:
    decision = decide(contact)
    assert decision.level == 2
    assert decision.target_agency == agency


@pytest.mark.parametrize(
    "contact",
    [
        police(dash="high"),
        police(dash="medium"),
        referral(["21"]),
        police(factors=["16A"], dash="medium"),
    ],
)
def test_no_target_agency_outside_level_2(contact: Contact) -> None:
    decision = decide(contact)
    assert decision.level != 2
    assert decision.target_agency is None


def test_rules_listed_once_each_by_level_then_file_order() -> None:
    contact = referral(
        ["16A", "17A", "1B", "15A", "19C"],
        children=[ref_kid("A", dob=FOUR), ref_kid("B", dob=FOUR), ref_kid("C", dob=SEVEN)],
    )
    decision = decide(contact)
    assert rule_ids(decision) == [
        "R4-SEX",
        "R3-NEGLECT",
        "R3-PARENT-YOUNG",
        "R3-EMO",
        "R3-SIBLING",  # every child is a sibling of a child at level 4
        "R2-NEGLECT",  # the 7-year-old
        "R2-PARENT",
        "R2-SELFHARM",
    ]
    assert decision.level == 4


def test_reasons_interpolate_counts_but_never_names() -> None:
    contact = police("missing_child", dash=None, ppn="low")
    decision = decide(contact, hist(missing=3, low=4))
    reasons = {hit.id: hit.reason for hit in decision.rules}
    assert reasons["R3-MISSING"] == "The child has been missing 4 times in 90 days."
    assert reasons["R3-ESCALATE"] == (
        "Escalating concern: 5 police notifications about the child in 90 days."
    )
    for hit in decision.rules:
        assert "Testchild" not in hit.reason
        assert "Example" not in hit.reason
    repeat = decide(police(), hist(da=4))
    assert "5 police notifications for the household" in repeat.rules[0].reason


def test_age_is_taken_on_the_london_date_of_the_incident() -> None:
    # 23:30 UTC on 30 June is 00:30 on 1 July in London (BST): the child is 1 that day.
    late = police(incident_at="2024-06-30T23:30:00+00:00", received_at="2024-07-01T00:10:00+00:00")
    baby = [ref_kid(dob="2023-07-01")]
    on_birthday = referral([], children=baby, injury_observed=True).model_copy(
        update={"incident_at": late.incident_at, "received_at": late.received_at}
    )
    assert "R4-INJ-BABY" not in rule_ids(decide(on_birthday))
    day_before = on_birthday.model_copy(
        update={"incident_at": on_birthday.incident_at.replace(hour=22)}  # type: ignore[union-attr]
    )
    assert "R4-INJ-BABY" in rule_ids(decide(day_before))


def test_missing_episodes_take_the_larger_of_recorded_and_reported() -> None:
    # Two recorded + this one = 3, referrer says 1: 3.
    assert "R3-MISSING" in rule_ids(
        decide(referral(["10A"], missing_episodes_90d=1), hist(missing=2))
    )
    # One recorded + this one = 2, referrer says 2: still 2 (not added together).
    assert "R3-MISSING" not in rule_ids(
        decide(referral(["10A"], missing_episodes_90d=2), hist(missing=1))
    )


def test_escalation_counts_a_higher_graded_notification_too() -> None:
    # Two low-graded before, then a medium DASH with the child elsewhere: still escalation.
    contact = police(dash="medium", ppn="high", children=[kid(present=False, resident=False)])
    assert rule_ids(decide(contact, hist(low=2))) == ["R3-ESCALATE"]


def test_a_rule_fires_if_it_holds_for_any_child() -> None:
    contact = police(
        dash="high", children=[kid("A", present=False, resident=False), kid("B", present=True)]
    )
    decision = decide(contact)
    assert rule_ids(decision) == ["R4-DA-HIGH", "R3-SIBLING"]
    # A was neither present nor resident: not R4-DA-HIGH itself, but B's sibling.
    assert [(s.subject_id, s.level) for s in decision.subjects] == [("A", 3), ("B", 4)]
    history = ScreeningHistory(missing_episodes_90d={"B": 2})
    two = referral(["10A"], children=[ref_kid("A"), ref_kid("B")])
    assert rule_ids(decide(two, history)) == ["R3-MISSING", "R2-NEEDS"]


def test_an_injury_on_an_older_child_is_not_an_injury_on_the_baby() -> None:
    # Item 5 of the domain issue: with the injury given for the eight-year-old, the
    # unborn sibling is not "a child under one with an observed injury".
    children = [
        ref_kid("OLDER", dob=SEVEN, indicators={"injury_observed": True}),
        ref_kid("UNBORN", dob=None, edd=DUE),
    ]
    decision = decide(referral(["18C"], children=children))
    assert "R4-INJ-BABY" not in rule_ids(decision)
    assert "R4-PHYS" in rule_ids(decision)  # the older child's injury still counts


def test_indicators_for_the_whole_contact_apply_to_every_child() -> None:
    children = [ref_kid("OLDER", dob=SEVEN), ref_kid("UNBORN", dob=None, edd=DUE)]
    decision = decide(referral(["18C"], children=children, injury_observed=True))
    assert "R4-INJ-BABY" in rule_ids(decision)


def test_a_childs_own_indicators_replace_the_contacts_for_that_child() -> None:
    children = [
        ref_kid("BABY", dob=BABY_11_MONTHS, indicators={"injury_observed": False}),
        ref_kid("OLDER", dob=SEVEN),
    ]
    decision = decide(referral(["18C"], children=children, injury_observed=True))
    assert "R4-INJ-BABY" not in rule_ids(decision)
    assert "R4-PHYS" in rule_ids(decision)


def test_each_child_gets_its_own_level_outcome_rag_agency_and_rules() -> None:
    # docs/domain.md "Per child": facts about one child give that child's level; the contact
    # takes the highest. Neglect: the four-year-old is R3-NEGLECT, the seven-year-old
    # R2-NEGLECT (early help).
    contact = referral(["16A"], children=[ref_kid("YOUNG", dob=FOUR), ref_kid("OLDER", dob=SEVEN)])
    decision = decide(contact)
    assert (decision.level, decision.outcome) == (3, "initial_assessment")
    young, older = decision.subjects
    assert (young.subject_id, young.level, young.outcome, young.rag) == (
        "YOUNG",
        3,
        "initial_assessment",
        "amber",
    )
    assert [h.id for h in young.rules] == ["R3-NEGLECT"]
    assert young.target_agency is None
    assert (older.subject_id, older.level, older.outcome, older.rag) == (
        "OLDER",
        2,
        "single_agency",
        "green",
    )
    assert [h.id for h in older.rules] == ["R2-NEGLECT"]
    assert older.target_agency == "early_help"


def test_a_sibling_of_a_child_at_level_4_is_at_least_level_3() -> None:
    contact = referral(
        ["1B"],
        children=[
            ref_kid("BABY", dob=BABY_11_MONTHS, indicators={"injury_observed": True}),
            ref_kid("OLDER", dob=SEVEN),
        ],
    )
    baby, older = decide(contact).subjects
    assert baby.level == 4
    assert baby.rules[0].id == "R4-INJ-BABY"
    assert older.level == 3
    assert [h.id for h in older.rules] == ["R3-SIBLING", "R2-PARENT"]


def test_a_child_no_rule_holds_for_gets_the_fallback() -> None:
    contact = police(
        dash="medium", children=[kid("IN", present=True), kid("OUT", present=False, resident=False)]
    )
    inside, outside = decide(contact).subjects
    assert (inside.level, outside.level) == (3, 1)
    assert [h.id for h in outside.rules] == ["R1-NONE"]
    assert outside.outcome == "no_further_action"


def test_an_early_help_child_with_a_level_3_concern_steps_up_to_assessment() -> None:
    early_help = kid(council_cases=["early_help"])
    stepped = decide(police(dash="medium", children=[early_help]))
    assert (stepped.level, stepped.subjects[0].step_up) == (3, True)
    # Level 2 stays with early help; without an early-help case there is nothing to step up.
    assert decide(police(children=[early_help])).subjects[0].step_up is False
    assert decide(police(dash="medium")).subjects[0].step_up is False
