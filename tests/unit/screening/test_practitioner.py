"""Practitioner confirm/override and the s47 confirmation gate, as pure functions."""

from __future__ import annotations

from typing import Any

import pytest

from schemas import examples
from schemas.events import Decision
from schemas.inbound import PractitionerDecision
from services.common.ids import derive_id
from services.screening.practitioner import (
    OVERRIDE_RULE_ID,
    ContactDecisions,
    InvalidTransition,
    apply_practitioner_decision,
    awaits_confirmation,
    held_decision,
    held_event_id,
)
from services.screening.ruleset import default_rule_set
from tests.unit.screening.builders import decide, police

LEVELS = default_rule_set().levels


def automated_s47() -> Decision:
    """The rule engine's s47 decision (DASH high, child present)."""
    decision = decide(police(dash="high"))
    assert decision.outcome == "s47"
    return decision


def practitioner(**overrides: Any) -> PractitionerDecision:
    """A practitioner decision about the builders' contact."""
    return PractitionerDecision.model_validate(
        examples.practitioner_decision(contact_id=automated_s47().contact_id, **overrides)
    )


def state(*, held: bool = False, confirmed: frozenset[str] = frozenset()) -> ContactDecisions:
    """A contact whose automated s47 is in force (or held by the gate)."""
    automated = automated_s47()
    return ContactDecisions(
        subject_key="HH-1",
        automated=automated,
        effective=None if held else automated,
        confirmed_by=confirmed,
    )


def test_the_gate_holds_only_automated_s47_decisions_and_only_when_on() -> None:
    assert awaits_confirmation(automated_s47(), gate_on=True)
    assert not awaits_confirmation(automated_s47(), gate_on=False)
    assert not awaits_confirmation(decide(police(dash="standard")), gate_on=True)


def test_a_confirm_of_an_effective_decision_changes_nothing() -> None:
    result = apply_practitioner_decision(
        state(), practitioner(kind="confirm", outcome=None), "evt-1", LEVELS
    )
    assert (result.kind, result.emit) == ("confirmed", None)
    assert result.decision_id == automated_s47().decision_id


@pytest.mark.parametrize(
    ("already", "agency", "kind"),
    [
        (frozenset(), "police", "confirmed"),
        (frozenset({"police"}), "police", "confirmed"),
        (frozenset({"police"}), "health", "confirmed"),
        (frozenset({"police"}), "childrens_social_care", "released"),
        (frozenset({"childrens_social_care"}), "police", "released"),
    ],
)
def test_a_held_s47_is_released_by_police_and_childrens_social_care(
    already: frozenset[str], agency: str, kind: str
) -> None:
    result = apply_practitioner_decision(
        state(held=True, confirmed=already),
        practitioner(kind="confirm", outcome=None, agency=agency),
        "evt-1",
        LEVELS,
    )
    assert result.kind == kind
    # Released unchanged: same id and time, so the statutory clocks start at the decision.
    assert result.emit == (automated_s47() if kind == "released" else None)


def test_a_held_decision_is_announced_marked_and_released_unmarked() -> None:
    """The hold is announced at once (routing shows it on the s47 queue with its clock),
    under its own event id; the release is the same decision, no longer marked."""
    automated = automated_s47()
    announced = held_decision(automated)
    assert announced.awaiting_practitioners is True
    assert announced.model_copy(update={"awaiting_practitioners": False}) == automated
    assert held_event_id(automated.decision_id) not in (automated.decision_id, None)
    assert held_event_id(automated.decision_id) == held_event_id(automated.decision_id)
    result = apply_practitioner_decision(
        state(held=True, confirmed=frozenset({"police"})),
        practitioner(kind="confirm", outcome=None, agency="childrens_social_care"),
        "evt-1",
        LEVELS,
    )
    assert result.emit is not None
    assert (result.kind, result.emit.awaiting_practitioners) == ("released", False)


def test_an_override_is_a_new_practitioner_decision_that_keeps_the_routing_context() -> None:
    given = practitioner(outcome="initial_assessment", agency="childrens_social_care")
    result = apply_practitioner_decision(state(), given, "evt-9", LEVELS)
    automated = automated_s47()
    assert result.kind == "overridden"
    assert result.superseded_decision_id == automated.decision_id
    new = result.emit
    assert new is not None
    assert new.decision_id == derive_id("decision", automated.contact_id, "practitioner", "evt-9")
    assert (new.source, new.level, new.outcome, new.rag) == (
        "practitioner",
        3,
        "initial_assessment",
        "amber",
    )
    assert new.supersedes_decision_id == automated.decision_id
    assert new.decided_at == given.decided_at
    assert [hit.model_dump() for hit in new.rules] == [
        {
            "id": OVERRIDE_RULE_ID,
            "reason": "Practitioner override by children's social care: "
            "s47 strategy discussion changed to initial assessment.",
        }
    ]
    assert given.reason not in new.model_dump_json()  # free text stays in the record
    for same in ("hub", "contact_source", "joint_screening", "rule_set_version"):
        assert getattr(new, same) == getattr(automated, same)
    # The same children, without the rules' per-child levels: the override is for all.
    assert [(s.subject_id, s.child_ref) for s in new.subjects] == [
        (s.subject_id, s.child_ref) for s in automated.subjects
    ]
    assert automated.subjects[0].level == 4
    assert [(s.level, s.outcome, s.rules) for s in new.subjects] == [(None, None, [])]


def test_an_override_to_single_agency_carries_its_target_and_others_none() -> None:
    to_early_help = apply_practitioner_decision(
        state(), practitioner(outcome="single_agency", target_agency="early_help"), "e1", LEVELS
    ).emit
    assert to_early_help is not None
    assert (to_early_help.target_agency, to_early_help.rag) == ("early_help", "green")
    nfa = apply_practitioner_decision(
        state(), practitioner(outcome="no_further_action", target_agency="health"), "e2", LEVELS
    ).emit
    assert nfa is not None
    assert (nfa.target_agency, nfa.level, nfa.rag) == (None, 1, "blue")


def test_an_override_to_the_outcome_in_force_is_refused() -> None:
    with pytest.raises(InvalidTransition, match="unchanged"):
        apply_practitioner_decision(state(), practitioner(outcome="s47"), "e1", LEVELS)


def test_changing_only_the_target_agency_is_a_real_override() -> None:
    first = apply_practitioner_decision(
        state(), practitioner(outcome="single_agency", target_agency="early_help"), "e1", LEVELS
    ).emit
    assert first is not None
    after = ContactDecisions("HH-1", automated_s47(), first)
    again = practitioner(outcome="single_agency", target_agency="early_help")
    with pytest.raises(InvalidTransition):
        apply_practitioner_decision(after, again, "e2", LEVELS)
    moved = apply_practitioner_decision(
        after, practitioner(outcome="single_agency", target_agency="health"), "e3", LEVELS
    )
    assert moved.emit is not None
    assert moved.emit.supersedes_decision_id == first.decision_id
    assert "single agency changed to single agency" in moved.emit.rules[0].reason


def test_an_override_while_held_supersedes_nothing_that_was_in_force() -> None:
    result = apply_practitioner_decision(
        state(held=True), practitioner(outcome="initial_assessment"), "e1", LEVELS
    )
    assert result.emit is not None
    assert result.emit.supersedes_decision_id is None
    assert result.superseded_decision_id == automated_s47().decision_id
    with pytest.raises(InvalidTransition):  # "overriding" a held s47 to s47 is a confirm
        apply_practitioner_decision(state(held=True), practitioner(outcome="s47"), "e2", LEVELS)
