"""``screen()``: the backward-compatible entry point used by the screening service."""

from __future__ import annotations

from schemas.events import Contact
from schemas.examples import contact
from services.common.ids import derive_id
from services.screening.engine import ScreeningHistory, evaluate
from services.screening.rules import default_rule_set, screen
from tests.unit.screening.builders import DECIDED_AT, police


def test_screen_is_evaluate_with_the_default_rule_set_and_no_history() -> None:
    example = Contact.model_validate(contact())
    decision = screen(example, DECIDED_AT)
    assert decision == evaluate(example, ScreeningHistory(), default_rule_set(), DECIDED_AT)
    assert decision.decision_id == derive_id("decision", example.contact_id, "rules", "default-v1")
    assert [hit.id for hit in decision.rules] == ["R4-DA-HIGH"]
    assert decision.decided_at == DECIDED_AT


def test_screen_accepts_history() -> None:
    history = ScreeningHistory(da_incidents_365d=2)
    assert screen(police(), DECIDED_AT, history).level == 3
    assert screen(police(), DECIDED_AT).level == 2
