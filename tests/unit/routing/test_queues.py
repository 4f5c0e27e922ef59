"""Outcome -> queue, one queue item per child."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from schemas import examples as ex
from schemas.events import Decision
from services.common.calendar import WorkingCalendar
from services.routing.deadlines import load_deadline_config
from services.routing.decisions import open_item_of
from services.routing.queues import (
    OpenItem,
    RoutingPlan,
    open_case_of,
    plan_routing,
    queue_items_for,
)

CAL = WorkingCalendar()
CONFIG = load_deadline_config()
ROUTED_AT = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def decision(**overrides: object) -> Decision:
    return Decision.model_validate({**ex.decision(), **overrides})


@pytest.mark.parametrize(
    ("outcome", "level", "rag", "queue"),
    [
        ("single_agency", 2, "green", "single-agency"),
        ("initial_assessment", 3, "amber", "initial-assessment"),
        ("s47", 4, "red", "s47"),
    ],
)
def test_each_outcome_goes_to_its_queue(outcome: str, level: int, rag: str, queue: str) -> None:
    d = decision(outcome=outcome, level=level, rag=rag)
    items = queue_items_for(d, ROUTED_AT, CAL, CONFIG)
    assert [i.queue for i in items] == [queue] * len(d.subjects)
    assert all(i.deadlines for i in items)


def test_no_further_action_creates_no_queue_item() -> None:
    d = decision(outcome="no_further_action", level=1, rag="blue", target_agency=None)
    assert queue_items_for(d, ROUTED_AT, CAL, CONFIG) == []


def test_every_child_gets_its_own_item_with_a_stable_id() -> None:
    subjects = [
        {"subject_id": "s-1", "child_ref": "C-1"},
        {"subject_id": "s-2", "child_ref": "C-2"},
    ]
    d = decision(outcome="s47", level=4, rag="red", subjects=subjects)
    first = queue_items_for(d, ROUTED_AT, CAL, CONFIG)
    again = queue_items_for(d, ROUTED_AT, CAL, CONFIG)
    assert [i.subject_id for i in first] == ["s-1", "s-2"]
    assert len({i.queue_item_id for i in first}) == 2
    assert [i.queue_item_id for i in first] == [i.queue_item_id for i in again]


# --- open cases, escalation and overrides ------------------------------------------------

NWC, ES = "north-west-central", "east-south"


def open_item(
    queue: str,
    *,
    contact_id: str = "CON-OTHER",
    decision_id: str = "DEC-OTHER",
    subject_id: str = "SUBJ-TEST-0001",
    hub: str = ES,
    rag: str = "amber",
    target_agency: str | None = None,
    open_case_update: bool = False,
    item_id: str | None = None,
) -> OpenItem:
    return OpenItem(
        queue_item_id=item_id or f"QI-{queue}-{contact_id}",
        contact_id=contact_id,
        decision_id=decision_id,
        subject_id=subject_id,
        hub=hub,
        queue=queue,
        target_agency=target_agency,
        rag=rag,
        open_case_update=open_case_update,
        routed_at=datetime(2024, 3, 1, 10, 0, tzinfo=UTC),
    )


def plan(d: Decision, *items: OpenItem) -> RoutingPlan:
    by_subject: dict[str, list[OpenItem]] = {}
    for i in items:
        by_subject.setdefault(i.subject_id, []).append(i)
    return plan_routing(d, by_subject, ROUTED_AT, CONFIG, lambda _hub: CAL)


def test_a_child_with_an_open_case_goes_to_the_queue_holding_it_as_an_update() -> None:
    # Level 3 about a child whose case is open on east-south's single-agency queue: the
    # contact joins that case, in that hub, even though the decision names another hub.
    d = decision(outcome="initial_assessment", level=3, rag="amber", hub=NWC)
    result = plan(d, open_item("single-agency", rag="green"))
    (placement,) = result.placements
    assert placement.kind == "open_case_update"
    assert placement.opened is not None
    assert (placement.opened.hub, placement.opened.queue) == (ES, "single-agency")
    assert placement.opened.open_case_update is True
    assert placement.closed == ()
    # The open case's own clocks already run: only the acknowledgement starts.
    assert set(placement.opened.deadlines) == {"acknowledge_referrer"}
    assert (result.hub, result.queue) == (ES, "single-agency")


def test_no_further_action_about_an_open_case_still_reaches_the_case() -> None:
    d = decision(outcome="no_further_action", level=1, rag="blue", target_agency=None)
    (placement,) = plan(d, open_item("initial-assessment")).placements
    assert placement.kind == "open_case_update"
    assert placement.opened is not None
    assert placement.opened.queue == "initial-assessment"


def test_level_4_escalates_an_open_case_that_is_not_s47() -> None:
    d = decision(outcome="s47", level=4, rag="red", hub=NWC)
    case = open_item("initial-assessment")
    (placement,) = plan(d, case).placements
    assert placement.kind == "escalation"
    assert placement.opened is not None
    # Escalated in the hub holding the case, with the full s47 clocks.
    assert (placement.opened.hub, placement.opened.queue) == (ES, "s47")
    assert placement.opened.open_case_update is False
    assert set(placement.opened.deadlines) == {"acknowledge_referrer", "strategy_discussion"}
    assert [(c.item, c.kind, c.replaced_by) for c in placement.closed] == [
        (case, "escalated", placement.opened.queue_item_id)
    ]


def test_level_4_about_an_open_s47_case_is_an_update_not_an_escalation() -> None:
    d = decision(outcome="s47", level=4, rag="red")
    (placement,) = plan(d, open_item("s47", rag="red")).placements
    assert placement.kind == "open_case_update"
    assert placement.closed == ()


def test_the_most_serious_open_queue_holds_the_case() -> None:
    d = decision(outcome="single_agency", level=2, rag="green", target_agency="health")
    items = [open_item("single-agency", contact_id="C1"), open_item("s47", contact_id="C2")]
    assert open_case_of(items) == items[1]
    (placement,) = plan(d, *items).placements
    assert placement.opened is not None
    assert placement.opened.queue == "s47"


def test_an_override_moves_the_item_and_names_its_replacement() -> None:
    old = open_item(
        "s47", contact_id="CON-TEST-0001", decision_id="DEC-TEST-0001", hub=NWC, rag="red"
    )
    override = decision(
        decision_id="DEC-OVERRIDE",
        outcome="initial_assessment",
        level=3,
        rag="amber",
        source="practitioner",
        supersedes_decision_id="DEC-TEST-0001",
    )
    (placement,) = plan(override, old).placements
    assert placement.kind == "new"
    assert placement.opened is not None
    assert (placement.opened.hub, placement.opened.queue) == (NWC, "initial-assessment")
    assert [(c.item, c.kind, c.replaced_by) for c in placement.closed] == [
        (old, "moved", placement.opened.queue_item_id)
    ]


def test_an_override_to_no_further_action_closes_the_item_and_opens_none() -> None:
    old = open_item("s47", contact_id="CON-TEST-0001", decision_id="DEC-TEST-0001", hub=NWC)
    override = decision(
        decision_id="DEC-NFA",
        outcome="no_further_action",
        level=1,
        rag="blue",
        source="practitioner",
        supersedes_decision_id="DEC-TEST-0001",
    )
    result = plan(override, old)
    (placement,) = result.placements
    assert placement.kind == "none"
    assert [(c.item, c.kind, c.replaced_by) for c in placement.closed] == [(old, "moved", None)]
    assert result.item_ids == []
    assert result.queue is None


def test_a_confirmation_keeps_the_item_and_its_clocks() -> None:
    old = open_item(
        "s47", contact_id="CON-TEST-0001", decision_id="DEC-TEST-0001", hub=NWC, rag="red"
    )
    confirm = decision(
        decision_id="DEC-CONFIRM", source="practitioner", supersedes_decision_id="DEC-TEST-0001"
    )
    result = plan(confirm, old)
    (placement,) = result.placements
    assert placement.kind == "unchanged"
    assert placement.kept == old
    assert placement.opened is None
    assert placement.closed == ()
    assert result.item_ids == [old.queue_item_id]


def test_the_open_case_flag_without_an_open_item_is_kept_visible() -> None:
    d = decision(outcome="initial_assessment", level=3, rag="amber", open_case=True)
    (placement,) = plan(d).placements
    assert placement.kind == "new"
    assert placement.opened is not None
    assert placement.opened.open_case_update is True
    # Its own queue's clocks: routing holds no case whose clocks already run.
    assert "assessment" in placement.opened.deadlines


def test_multi_child_decision_places_each_child_on_its_own() -> None:
    subjects = [
        {"subject_id": "s-open", "child_ref": "C-1"},
        {"subject_id": "s-new", "child_ref": "C-2"},
    ]
    d = decision(outcome="initial_assessment", level=3, rag="amber", subjects=subjects, hub=NWC)
    result = plan(d, open_item("s47", subject_id="s-open"))
    kinds = {p.subject_id: p.kind for p in result.placements}
    assert kinds == {"s-open": "open_case_update", "s-new": "new"}
    queues = [(i.subject_id, i.hub, i.queue, i.open_case_update) for i in result.opened]
    assert queues == [
        ("s-open", ES, "s47", True),
        ("s-new", NWC, "initial-assessment", False),
    ]
    # Items in two hubs and queues: mash.routed.v1 names the decision's own.
    assert (result.hub, result.queue) == (NWC, "initial-assessment")


# --- per child (docs/domain.md "Per child") -------------------------------------------------------


def test_each_child_goes_to_the_queue_of_its_own_level() -> None:
    subjects = [
        ex.decision_subject("s-baby", 4),
        ex.decision_subject("s-sibling", 3),
        ex.decision_subject("s-elder", 2, target_agency="early_help"),
        ex.decision_subject("s-none", 1),
    ]
    d = decision(outcome="s47", level=4, rag="red", target_agency=None, subjects=subjects)
    result = plan(d)
    assert [(p.subject_id, p.kind) for p in result.placements][-1] == ("s-none", "none")
    assert [(i.subject_id, i.queue, i.outcome, i.rag, i.target_agency) for i in result.opened] == [
        ("s-baby", "s47", "s47", "red", None),
        ("s-sibling", "initial-assessment", "initial_assessment", "amber", None),
        ("s-elder", "single-agency", "single_agency", "green", "early_help"),
    ]
    # Each item runs its own queue's clocks.
    clocks = {i.subject_id: set(i.deadlines) for i in result.opened}
    assert "strategy_discussion" in clocks["s-baby"]
    assert "assessment" in clocks["s-sibling"]
    assert "single_agency_acknowledgement" in clocks["s-elder"]


def test_only_a_child_at_level_4_escalates_its_open_case() -> None:
    subjects = [
        ex.decision_subject("s-baby", 4),
        ex.decision_subject("s-sibling", 3),
    ]
    d = decision(outcome="s47", level=4, rag="red", target_agency=None, subjects=subjects)
    result = plan(
        d,
        open_item("single-agency", subject_id="s-baby", item_id="QI-BABY"),
        open_item("single-agency", subject_id="s-sibling", item_id="QI-SIB"),
    )
    kinds = {p.subject_id: p.kind for p in result.placements}
    assert kinds == {"s-baby": "escalation", "s-sibling": "open_case_update"}


# --- siblings join the strategy discussion (docs/domain.md "Per child", R3-SIBLING) ---------------


def sibling(subject_id: str, *rules: str) -> dict[str, object]:
    """A child lifted to level 3 as the sibling of a child at level 4."""
    return {
        **ex.decision_subject(subject_id, 3),
        "rules": [{"id": r, "reason": "A test rule."} for r in ("R3-SIBLING", *rules)],
    }


def at_level_4(subject_id: str, *rules: str) -> dict[str, object]:
    return {
        **ex.decision_subject(subject_id, 4),
        "rules": [{"id": r, "reason": "A test rule."} for r in ("R4-INJ-BABY", *rules)],
    }


def sibling_group(*subjects: dict[str, object], **overrides: object) -> Decision:
    return decision(
        outcome="s47", level=4, rag="red", target_agency=None, subjects=list(subjects), **overrides
    )


def test_a_sibling_of_a_level_4_child_is_assessed_and_joins_its_strategy_discussion() -> None:
    # The sibling comes first: it is placed after the child whose discussion it joins.
    d = sibling_group(sibling("s-sibling"), at_level_4("s-baby"), hub=NWC)
    result = plan(d)
    by_child = {i.subject_id: i for i in result.opened}
    baby, sib = by_child["s-baby"], by_child["s-sibling"]
    assert baby.queue == "s47"
    assert (sib.subject_id, sib.queue, sib.outcome) == (
        "s-sibling",
        "initial-assessment",
        "initial_assessment",
    )
    assert sib.joins_strategy_discussion_of == baby.queue_item_id
    assert baby.joins_strategy_discussion_of is None
    # The sibling's own queue's clocks; the discussion's clock is the baby's.
    assert "assessment" in sib.deadlines
    assert "strategy_discussion" not in sib.deadlines
    assert [p.subject_id for p in result.placements] == ["s-sibling", "s-baby"]


def test_siblings_join_the_discussion_of_the_first_child_at_level_4() -> None:
    # Two children at level 4 (each also a sibling of the other): each keeps its own s47
    # item and discussion; the level-3 sibling joins the first one's.
    d = sibling_group(
        at_level_4("s-first", "R3-SIBLING"), at_level_4("s-second", "R3-SIBLING"), sibling("s-3")
    )
    by_child = {i.subject_id: i for i in plan(d).opened}
    assert by_child["s-3"].joins_strategy_discussion_of == by_child["s-first"].queue_item_id
    assert by_child["s-first"].joins_strategy_discussion_of is None
    assert by_child["s-second"].joins_strategy_discussion_of is None


def test_a_child_without_the_sibling_rule_joins_no_discussion() -> None:
    d = sibling_group(at_level_4("s-baby"), ex.decision_subject("s-other", 3))
    by_child = {i.subject_id: i for i in plan(d).opened}
    assert by_child["s-other"].joins_strategy_discussion_of is None


def test_a_sibling_joins_the_escalated_discussion_and_keeps_the_link_on_its_open_case() -> None:
    # The baby's open assessment escalates to s47 (in the hub holding it); the sibling's
    # contact updates its own open case, and still joins the baby's discussion.
    d = sibling_group(at_level_4("s-baby"), sibling("s-sibling"), hub=NWC)
    result = plan(
        d,
        open_item("initial-assessment", subject_id="s-baby", item_id="QI-BABY"),
        open_item("single-agency", subject_id="s-sibling", item_id="QI-SIB", rag="green"),
    )
    kinds = {p.subject_id: p.kind for p in result.placements}
    assert kinds == {"s-baby": "escalation", "s-sibling": "open_case_update"}
    by_child = {i.subject_id: i for i in result.opened}
    assert (by_child["s-baby"].hub, by_child["s-baby"].queue) == (ES, "s47")
    assert by_child["s-sibling"].open_case_update is True
    assert by_child["s-sibling"].joins_strategy_discussion_of == by_child["s-baby"].queue_item_id


def test_a_later_decision_placing_the_children_alike_keeps_both_items() -> None:
    first = sibling_group(at_level_4("s-baby"), sibling("s-sibling"))
    opened = plan(first).opened
    kept = [open_item_of(i) for i in opened]
    again = sibling_group(
        at_level_4("s-baby"),
        sibling("s-sibling"),
        decision_id="DEC-AGAIN",
        supersedes_decision_id=first.decision_id,
    )
    result = plan(again, *kept)
    assert [p.kind for p in result.placements] == ["unchanged", "unchanged"]
    # Without the sibling's link the sibling's item would move: the link is part of where
    # the child is.
    unlinked = [
        k if k.subject_id == "s-baby" else replace(k, joins_strategy_discussion_of=None)
        for k in kept
    ]
    moved = plan(again, *unlinked)
    assert [p.kind for p in moved.placements] == ["unchanged", "new"]
    (opened_again,) = moved.opened
    assert opened_again.joins_strategy_discussion_of == kept[0].queue_item_id


# --- step-up from early help (docs/domain.md "Identity and history") ------------------------------


def stepping_up(subject_id: str = "SUBJ-TEST-0001") -> dict[str, object]:
    return {**ex.decision_subject(subject_id, 3), "step_up": True}


def assessment_decision(*subjects: dict[str, object], **overrides: object) -> Decision:
    return decision(
        outcome="initial_assessment",
        level=3,
        rag="amber",
        target_agency=None,
        subjects=list(subjects),
        **overrides,
    )


def test_a_child_stepping_up_from_a_council_early_help_case_gets_a_new_assessment() -> None:
    # The open case is the council's: routing holds none for the child.
    d = assessment_decision(stepping_up(), open_case=True, hub=NWC)
    (placement,) = plan(d).placements
    assert placement.kind == "step_up"
    item = placement.opened
    assert item is not None
    assert (item.hub, item.queue, item.step_up, item.open_case_update) == (
        NWC,
        "initial-assessment",
        True,
        False,
    )
    assert set(item.deadlines) == {"acknowledge_referrer", "assessment"}


def test_a_child_stepping_up_from_routings_early_help_item_gets_a_new_assessment() -> None:
    # Routing holds the early-help case on the single-agency queue: the child is assessed
    # (not an update of that case), and the early-help item stays open for its agency.
    early_help = open_item("single-agency", rag="green", target_agency="early_help")
    d = assessment_decision(stepping_up(), open_case=True, hub=NWC)
    (placement,) = plan(d, early_help).placements
    assert placement.kind == "step_up"
    assert placement.closed == ()
    assert placement.opened is not None
    assert (placement.opened.hub, placement.opened.queue) == (NWC, "initial-assessment")
    assert (placement.opened.step_up, placement.opened.open_case_update) == (True, False)
    assert "assessment" in placement.opened.deadlines


@pytest.mark.parametrize("queue", ["initial-assessment", "s47"])
def test_a_child_already_assessed_here_updates_its_case_rather_than_stepping_up(
    queue: str,
) -> None:
    d = assessment_decision(stepping_up(), open_case=True)
    (placement,) = plan(d, open_item(queue)).placements
    assert placement.kind == "open_case_update"
    assert placement.opened is not None
    assert (placement.opened.queue, placement.opened.step_up) == (queue, False)


def test_only_a_child_screened_for_assessment_steps_up() -> None:
    # A step-up mark on a child routed elsewhere (or a practitioner's decision for all the
    # children) does not make an assessment.
    single = {
        **ex.decision_subject("SUBJ-TEST-0001", 2, target_agency="early_help"),
        "step_up": True,
    }
    d = decision(
        outcome="single_agency", level=2, rag="green", target_agency="early_help", subjects=[single]
    )
    (placement,) = plan(d).placements
    assert placement.opened is not None
    assert (placement.opened.queue, placement.opened.step_up) == ("single-agency", False)


# --- an open case routing does not hold (the council's) ------------------------------------


def test_a_contact_about_a_council_case_routes_each_child_by_its_own_outcome() -> None:
    # Decision.open_case is true because of the council's case management system: no
    # queue item here holds the case. Every child is still routed by its own screening,
    # with its own queue's clocks and the open-case flag visible; none is dropped.
    subjects = [
        ex.decision_subject("s-4", 4),
        ex.decision_subject("s-3", 3),
        ex.decision_subject("s-2", 2, target_agency="health"),
        ex.decision_subject("s-1", 1),
    ]
    d = decision(
        outcome="s47",
        level=4,
        rag="red",
        target_agency=None,
        subjects=subjects,
        open_case=True,
        hub=ES,
    )
    result = plan(d)
    assert [(p.subject_id, p.kind) for p in result.placements] == [
        ("s-4", "new"),
        ("s-3", "new"),
        ("s-2", "new"),
        ("s-1", "none"),
    ]
    assert [(i.subject_id, i.hub, i.queue, i.open_case_update) for i in result.opened] == [
        ("s-4", ES, "s47", True),
        ("s-3", ES, "initial-assessment", True),
        ("s-2", ES, "single-agency", True),
    ]
    clocks = {i.subject_id: set(i.deadlines) for i in result.opened}
    assert "strategy_discussion" in clocks["s-4"]
    assert "assessment" in clocks["s-3"]
    assert "single_agency_acknowledgement" in clocks["s-2"]
    assert result.closures == []
