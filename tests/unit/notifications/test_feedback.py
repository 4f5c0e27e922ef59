"""Feedback through the firewall: audiences, acknowledgement and outcome contents."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from schemas import examples as ex
from schemas.events import Contact, Feedback, Routed
from services.common.topology import load_topology
from services.notifications.feedback import (
    OUTCOME_TEXT,
    acknowledgement,
    audience_of,
    outcome,
)

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
TOPOLOGY = load_topology("two-hubs")
#: The whole allow-list of a feedback event (CONTRACT.md: "nothing else").
ALLOWED = {
    "feedback_id",
    "kind",
    "referrer_reference",
    "contact_reference",
    "outcome",
    "outcome_text",
    "hub",
    "hub_contact",
    "issued_at",
}


def routed(**source: Any) -> Routed:
    data = ex.routed()
    data["contact_source"] = {**data["contact_source"], **source}
    return Routed.model_validate(data)


def test_the_feedback_model_is_the_allow_list() -> None:
    assert set(Feedback.model_fields) == ALLOWED


@pytest.mark.parametrize(
    ("kind", "code", "audience"),
    [
        ("police", "6", "police_force"),
        ("referral", "2A", "professional"),
        ("referral", "3A", "professional"),
        ("referral", "1A", "public"),
        ("referral", "1D", "public"),
        ("referral", "9", "public"),
    ],
)
def test_audience(kind: str, code: str, audience: str) -> None:
    assert audience_of(routed(kind=kind, referral_source=code).contact_source) == audience


def test_acknowledgement_carries_only_the_two_references() -> None:
    contact = Contact.model_validate(ex.contact())
    fb = acknowledgement(contact, NOW)
    assert fb.kind == "acknowledgement"
    assert fb.referrer_reference == contact.source.reference
    assert fb.contact_reference == contact.contact_reference
    assert fb.outcome is None
    assert fb.outcome_text is None
    assert fb.hub is None


def test_a_professional_hears_the_outcome_in_plain_words_with_the_hub_contact() -> None:
    r = routed(kind="referral", referral_source="3A")
    fb = outcome(r, TOPOLOGY, NOW)
    assert fb is not None
    assert fb.outcome == r.outcome
    assert fb.outcome_text == OUTCOME_TEXT[r.outcome]
    assert fb.hub == r.hub
    assert fb.hub_contact == TOPOLOGY.hub(r.hub).contact_point


def test_the_public_get_no_outcome() -> None:
    assert outcome(routed(kind="referral", referral_source="1B"), TOPOLOGY, NOW) is None


def test_feedback_ids_are_stable_across_replays() -> None:
    r = routed(kind="referral", referral_source="2A")
    first, second = outcome(r, TOPOLOGY, NOW), outcome(r, TOPOLOGY, NOW)
    assert first is not None
    assert second is not None
    assert first.feedback_id == second.feedback_id
    assert (
        first.feedback_id != acknowledgement(Contact.model_validate(ex.contact()), NOW).feedback_id
    )


def test_every_outcome_has_plain_words_without_jargon() -> None:
    for text in OUTCOME_TEXT.values():
        assert "s47" not in text
        assert "section" not in text.lower()
