"""Feedback through the firewall: audiences, contents, and when outcomes and updates go."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas import examples as ex
from schemas.events import Contact, Feedback, Routed
from services.common.topology import load_topology
from services.notifications.feedback import (
    OUTCOME_TEXT,
    WORDING,
    Reported,
    acknowledgement,
    audience_of,
    on_routed,
)
from services.notifications.firewall import ALLOW_LIST

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
TOPOLOGY = load_topology("two-hubs")
#: The whole allow-list of a feedback event (docs/contract.md: "nothing else").
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


def routed(source: dict[str, Any] | None = None, **fields: Any) -> Routed:
    data = ex.routed(**fields)
    data["contact_source"] = {**data["contact_source"], **(source or {})}
    return Routed.model_validate(data)


def professional(**fields: Any) -> Routed:
    return routed({"kind": "referral", "referral_source": "3A", "agency_id": "gp-1"}, **fields)


def reported_from(r: Routed, sequence: int = 0) -> Reported:
    return Reported(r.outcome, r.hub, sequence, r.decided_at, r.routed_at)


def test_the_feedback_model_is_the_professional_allow_list() -> None:
    assert set(Feedback.model_fields) == ALLOWED
    assert ALLOW_LIST["professional"] == ALLOWED
    assert ALLOW_LIST["police_force"] == ALLOWED
    assert ALLOW_LIST["public"] == {
        "feedback_id",
        "kind",
        "referrer_reference",
        "contact_reference",
        "issued_at",
    }


@pytest.mark.parametrize(
    ("kind", "code", "audience"),
    [
        ("police", "6", "police_force"),
        ("referral", "2A", "professional"),
        ("referral", "3A", "professional"),
        ("referral", "4", "professional"),
        ("referral", "10", "professional"),
        ("referral", "1A", "public"),
        ("referral", "1B", "public"),
        ("referral", "1C", "public"),
        ("referral", "1D", "public"),
        ("referral", "9", "public"),
    ],
)
def test_audience(kind: str, code: str, audience: str) -> None:
    r = routed({"kind": kind, "referral_source": code})
    assert audience_of(r.contact_source) == audience


def test_acknowledgement_carries_only_the_two_references_keyed_by_the_agency() -> None:
    contact = Contact.model_validate(ex.contact())
    d = acknowledgement(contact, NOW)
    fb = d.event
    assert isinstance(fb, Feedback)
    assert fb.kind == "acknowledgement"
    assert fb.referrer_reference == contact.source.reference
    assert fb.contact_reference == contact.contact_reference
    assert (fb.outcome, fb.outcome_text, fb.hub, fb.hub_contact) == (None, None, None, None)
    assert d.recipient == "west-midlands"
    assert d.audience == "police_force"
    assert d.rule == "feedback.acknowledgement"
    assert d.fields == (
        "contact_reference",
        "feedback_id",
        "issued_at",
        "kind",
        "referrer_reference",
    )


def test_a_professional_hears_the_first_outcome_in_plain_words_with_the_hub_contact() -> None:
    r = professional()
    decided = on_routed(r, None, TOPOLOGY, NOW)
    assert decided.why == "outcome"
    assert decided.sequence == 0
    assert decided.disclosure is not None
    fb = decided.disclosure.event
    assert isinstance(fb, Feedback)
    assert fb.kind == "outcome"
    assert fb.outcome == r.outcome
    assert fb.outcome_text == OUTCOME_TEXT[r.outcome]
    assert fb.hub == r.hub
    assert fb.hub_contact == TOPOLOGY.hub(r.hub).contact_point
    assert decided.disclosure.recipient == "gp-1"


def test_the_police_force_hears_the_outcome_too() -> None:
    decided = on_routed(routed(), None, TOPOLOGY, NOW)
    assert decided.disclosure is not None
    assert decided.disclosure.audience == "police_force"
    assert decided.disclosure.recipient == "west-midlands"
    assert decided.why == "outcome"


@pytest.mark.parametrize("code", ["1A", "1B", "1C", "1D", "9"])
def test_the_public_get_no_outcome_and_no_update(code: str) -> None:
    r = routed({"kind": "referral", "referral_source": code})
    assert on_routed(r, None, TOPOLOGY, NOW).why == "public_referrer"
    changed = routed({"kind": "referral", "referral_source": code}, outcome="initial_assessment")
    assert on_routed(changed, reported_from(r), TOPOLOGY, NOW).disclosure is None


def test_a_practitioner_override_that_changes_the_outcome_is_an_update() -> None:
    first = professional()
    override = professional(
        routed_id="RTD-TEST-0002",
        decision_id="DEC-TEST-0002",
        decision_source="practitioner",
        outcome="initial_assessment",
        level=3,
        rag="amber",
        queue="initial-assessment",
        decided_at="2024-03-13T11:00:00+00:00",
        routed_at="2024-03-13T11:00:01+00:00",
    )
    decided = on_routed(override, reported_from(first), TOPOLOGY, NOW)
    assert decided.why == "update"
    assert decided.sequence == 1
    assert decided.disclosure is not None
    fb = decided.disclosure.event
    assert isinstance(fb, Feedback)
    assert fb.kind == "update"
    assert fb.outcome == "initial_assessment"
    assert fb.outcome_text is not None
    assert fb.outcome_text.startswith(WORDING.update_preface)
    assert fb.outcome_text.endswith(OUTCOME_TEXT["initial_assessment"])
    assert decided.disclosure.rule == "feedback.update"


def test_a_re_routing_to_another_hub_is_an_update_too() -> None:
    first = professional()
    moved = professional(routed_id="RTD-TEST-0003", hub="east-south", routed_at=NOW.isoformat())
    decided = on_routed(moved, reported_from(first), TOPOLOGY, NOW)
    assert decided.why == "update"
    assert decided.disclosure is not None
    assert isinstance(decided.disclosure.event, Feedback)
    assert decided.disclosure.event.hub_contact == TOPOLOGY.hub("east-south").contact_point


def test_a_practitioner_confirming_the_reported_outcome_sends_nothing() -> None:
    first = professional()
    confirm = professional(
        routed_id="RTD-TEST-0004", decision_source="practitioner", routed_at=NOW.isoformat()
    )
    assert on_routed(confirm, reported_from(first), TOPOLOGY, NOW).why == "unchanged"


def test_an_old_routing_replayed_after_a_change_is_stale() -> None:
    first = professional()
    later = professional(
        routed_id="RTD-TEST-0005",
        outcome="single_agency",
        decided_at=(first.decided_at + timedelta(hours=1)).isoformat(),
    )
    assert on_routed(first, reported_from(later, 1), TOPOLOGY, NOW).why == "stale"


def test_successive_updates_are_numbered_and_have_their_own_stable_ids() -> None:
    outcomes = ["s47", "initial_assessment", "s47", "initial_assessment"]
    reported: Reported | None = None
    ids: list[str] = []
    start = datetime(2024, 3, 13, 9, 0, tzinfo=UTC)
    for n, outcome in enumerate(outcomes):
        r = professional(
            routed_id=f"RTD-SEQ-{n}",
            outcome=outcome,
            decided_at=(start + timedelta(hours=n)).isoformat(),
            routed_at=(start + timedelta(hours=n, seconds=1)).isoformat(),
        )
        decided = on_routed(r, reported, TOPOLOGY, NOW)
        assert decided.sequence == n
        assert decided.why == ("outcome" if n == 0 else "update")
        assert decided.disclosure is not None
        # A replay of the same routing after a restart derives the same id.
        again = on_routed(r, reported, TOPOLOGY, NOW + timedelta(days=1))
        assert again.disclosure is not None
        assert again.disclosure.event_id == decided.disclosure.event_id
        ids.append(decided.disclosure.event_id)
        reported = reported_from(r, decided.sequence)
    assert len(set(ids)) == len(outcomes)


def test_a_routing_to_a_hub_outside_the_topology_is_refused() -> None:
    r = professional(hub="nowhere-hub")
    assert on_routed(r, None, TOPOLOGY, NOW).why == "unknown_hub"


def test_feedback_ids_differ_by_kind_and_contact() -> None:
    contact = Contact.model_validate(ex.contact())
    ack = acknowledgement(contact, NOW).event_id
    outcome = on_routed(routed(), None, TOPOLOGY, NOW).disclosure
    assert outcome is not None
    other = on_routed(routed(contact_id="CON-OTHER"), None, TOPOLOGY, NOW).disclosure
    assert other is not None
    assert len({ack, outcome.event_id, other.event_id}) == 3


def test_every_outcome_has_plain_words_without_jargon() -> None:
    assert set(OUTCOME_TEXT) == {"no_further_action", "single_agency", "initial_assessment", "s47"}
    jargon = {"s47", "s17", "section", "rag", "threshold", "mash", "strategy", "level"}
    for text in [*OUTCOME_TEXT.values(), WORDING.update_preface]:
        assert not set(re.findall(r"[a-z0-9]+", text.lower())) & jargon, text
