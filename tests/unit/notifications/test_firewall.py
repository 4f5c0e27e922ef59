"""The firewall's allow-list: what is offered beyond it is dropped, by construction."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from schemas.events import Feedback, SchoolNotification
from services.notifications.firewall import (
    ALLOW_LIST,
    ALLOW_LIST_VERSION,
    OUTBOUND_MODEL,
    Audience,
    disclose,
)

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
EVERYTHING = {
    "feedback_id": "FB-1",
    "kind": "outcome",
    "referrer_reference": "REF-1",
    "contact_reference": "MASH-1",
    "outcome": "s47",
    "outcome_text": "words",
    "hub": "east-south",
    "hub_contact": "mash-es@example.invalid",
    "issued_at": NOW,
    # Offered by mistake: none of these may leave.
    "narrative": "Synthetic narrative",
    "adults": [{"given_name": "Testadult"}],
    "dash_risk": "high",
    "rules": [{"id": "R4-DA-HIGH", "reason": "police intelligence"}],
    "restricted": True,
    "target_agency": "police",
}


def test_every_audience_has_an_outbound_model_whose_fields_include_its_allow_list() -> None:
    assert set(ALLOW_LIST) == {"professional", "public", "police_force", "school"}
    for audience, allowed in ALLOW_LIST.items():
        assert allowed <= set(OUTBOUND_MODEL[audience].model_fields)
    assert set(SchoolNotification.model_fields) == ALLOW_LIST["school"]
    assert ALLOW_LIST_VERSION.startswith("firewall-v1-")


@pytest.mark.parametrize("audience", ["professional", "police_force"])
def test_what_is_offered_beyond_the_list_is_dropped(audience: Audience) -> None:
    d = disclose(audience, "feedback.outcome", "agency-1", EVERYTHING)
    dumped = d.event.model_dump()
    assert set(dumped) == set(Feedback.model_fields)
    text = d.event.model_dump_json()
    for secret in ("Synthetic narrative", "Testadult", "high", "R4-DA-HIGH", "intelligence"):
        assert secret not in text
    assert "restricted" not in text
    assert d.fields == tuple(sorted(ALLOW_LIST[audience]))
    assert d.recipient == "agency-1"
    assert d.event_id == "FB-1"


def test_the_public_allow_list_withholds_the_outcome_even_when_offered() -> None:
    d = disclose("public", "feedback.acknowledgement", "public", EVERYTHING)
    assert isinstance(d.event, Feedback)
    assert (d.event.outcome, d.event.outcome_text, d.event.hub, d.event.hub_contact) == (
        None,
        None,
        None,
        None,
    )
    assert set(d.fields) == ALLOW_LIST["public"]


def test_a_missing_required_field_fails_loudly_rather_than_sending_something_partial() -> None:
    with pytest.raises(ValidationError):
        disclose("school", "operation_encompass", "999001", {"notice_id": "N-1"})
