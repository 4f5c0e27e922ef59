"""A restricted police notification on its decision: marked, no school promised, and
decided exactly as if it were not restricted."""

from __future__ import annotations

from schemas import examples as ex
from schemas.inbound import PractitionerDecision
from services.screening.practitioner import override_decision
from services.screening.ruleset import default_rule_set
from tests.unit.screening.builders import decide, police


def test_a_restricted_notification_is_marked_and_promises_no_school_notice() -> None:
    assert decide(police(dash="high")).encompass_required is True, "the scheme applies"
    decision = decide(police(dash="high", restricted=True))
    assert decision.restricted is True
    assert decision.encompass_required is False


def test_restriction_changes_what_is_shared_never_what_is_decided() -> None:
    restricted = police(dash="high", restricted=True)
    decision = decide(restricted)
    open_one = decide(police(dash="high"))
    same = {"restricted", "encompass_required"}
    assert decision.model_dump(exclude=same) == open_one.model_dump(exclude=same)
    assert decision.marac_referral is True
    assert "R4-DA-HIGH" in [hit.id for hit in decision.rules]


def test_an_unrestricted_decision_is_left_as_it_is() -> None:
    plain = decide(police(dash="high"))
    assert plain.restricted is False
    assert plain.encompass_required is True


def test_a_practitioner_override_keeps_the_restriction() -> None:
    contact = police(dash="high", restricted=True)
    automated = decide(contact)
    override = override_decision(
        automated,
        automated.outcome,
        automated.decision_id,
        PractitionerDecision.model_validate(ex.practitioner_decision()),
        "evt-override",
        default_rule_set().levels,
    )
    assert override.outcome == "initial_assessment"
    assert override.restricted is True
    assert override.encompass_required is False
