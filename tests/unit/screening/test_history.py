"""The per-household screening history: what earlier contacts count for, idempotent by
contact id, measured on incident time. Pure: no broker, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import examples
from schemas.events import Contact
from services.screening.facts import ScreeningHistory, Windows
from services.screening.history import (
    RETENTION,
    HistoryBook,
    HouseholdHistory,
    entry_for,
)
from services.screening.ruleset import load_rule_set
from tests.unit.screening.builders import decide, kid, rule_ids

T0 = datetime(2024, 3, 12, 21, 40, tzinfo=UTC)
HOUSEHOLD = "HH-1"
DA_WINDOW = timedelta(days=Windows().da_notifications)


def police_at(
    contact_id: str,
    at: datetime,
    *,
    subjects: tuple[str, ...] = ("SUBJ-1",),
    incident: str = "domestic_abuse",
    dash: str | None = "standard",
    ppn: str = "medium",
    factors: tuple[str, ...] = (),
    key: str = HOUSEHOLD,
) -> Contact:
    """A police contact whose incident is at ``at``."""
    return Contact.model_validate(
        examples.contact(
            contact_id=contact_id,
            subject_key=key,
            incident_at=at.isoformat(),
            received_at=(at + timedelta(hours=1)).isoformat(),
            recorded_at=(at + timedelta(hours=1)).isoformat(),
            incident_type=incident,
            dash_risk=dash,
            ppn_grade=ppn,
            crime_reference_present=False,
            factors=list(factors),
            children=[kid(s) for s in subjects],
        )
    )


def referral_at(contact_id: str, at: datetime, factors: tuple[str, ...], **ind: Any) -> Contact:
    """A referral received at ``at`` (no incident time) about SUBJ-1."""
    return Contact.model_validate(
        examples.contact(
            contact_id=contact_id,
            subject_key=HOUSEHOLD,
            source=examples.source_coordinates(
                kind="referral", referral_source="2A", topic="mash.inbound.referrals.v1"
            ),
            received_at=at.isoformat(),
            recorded_at=at.isoformat(),
            incident_type=None,
            incident_at=None,
            ppn_grade=None,
            dash_risk=None,
            crime_reference_present=False,
            factors=list(factors),
            indicators=ind,
            children=[kid("SUBJ-1", present=None, resident=None)],
        )
    )


def facts_after(contacts: list[Contact]) -> list[ScreeningHistory]:
    """Record each contact in order and return the facts each was screened with."""
    return HistoryBook().record_all(contacts)


def test_an_empty_history_counts_nothing() -> None:
    facts = HouseholdHistory().facts_for(police_at("C1", T0))
    assert facts == ScreeningHistory(
        da_incidents_365d=0, low_graded_police_90d={"SUBJ-1": 0}, missing_episodes_90d={"SUBJ-1": 0}
    )


def test_a_contact_never_counts_for_itself() -> None:
    first = police_at("C1", T0)
    history = HouseholdHistory().record(first)
    assert history.facts_for(first).da_incidents_365d == 0


def test_recording_a_contact_twice_changes_nothing() -> None:
    first = police_at("C1", T0)
    once = HouseholdHistory().record(first)
    assert once.record(first) is once
    later = police_at("C2", T0 + timedelta(days=10))
    assert once.record(first).facts_for(later) == once.facts_for(later)


def test_the_third_domestic_abuse_notification_sees_two_before_it() -> None:
    contacts = [police_at(f"C{n}", T0 + timedelta(days=100 * n)) for n in range(3)]
    assert [f.da_incidents_365d for f in facts_after(contacts)] == [0, 1, 2]
    third = decide(contacts[2], facts_after(contacts)[2])
    assert "R3-DA-REPEAT" in rule_ids(third)


@pytest.mark.parametrize(
    ("gap", "counted"),
    [(DA_WINDOW, 1), (DA_WINDOW + timedelta(seconds=1), 0), (timedelta(0), 1)],
)
def test_the_domestic_abuse_window_is_365_days_inclusive(gap: timedelta, counted: int) -> None:
    earlier = police_at("C1", T0)
    later = police_at("C2", T0 + gap)
    assert HouseholdHistory().record(earlier).facts_for(later).da_incidents_365d == counted


def test_the_default_windows_are_the_shipped_rule_sets() -> None:
    # docs/domain.md: 365 days for repeat domestic abuse, 90 for escalation and missing episodes.
    assert load_rule_set().windows == Windows(365, 90, 90) == load_rule_set("default-v1").windows


@pytest.mark.parametrize("days", [30, 180, 730])
def test_a_rule_sets_window_decides_what_an_earlier_contact_counts_for(days: int) -> None:
    # Item 10 of the domain issue: the windows were constants, so whatif could not vary them.
    earlier = police_at("C1", T0)
    history = HouseholdHistory().record(earlier)
    windows = Windows(da_notifications=days, low_graded_police=days, missing_episodes=days)
    inside = police_at("C2", T0 + timedelta(days=days))
    outside = police_at("C3", T0 + timedelta(days=days, seconds=1))
    assert history.facts_for(inside, windows).da_incidents_365d == 1
    assert history.facts_for(inside, windows).low_graded_police_90d == {"SUBJ-1": 1}
    assert history.facts_for(outside, windows).da_incidents_365d == 0
    assert history.facts_for(outside, windows).low_graded_police_90d == {"SUBJ-1": 0}


def test_history_is_kept_for_the_longest_window_a_rule_set_may_set() -> None:
    earlier = police_at("C1", T0)
    latest = police_at("C2", T0 + timedelta(days=730))
    history = HouseholdHistory().record(earlier).record(latest)
    assert history.has("C1")
    assert history.facts_for(latest, Windows(da_notifications=730)).da_incidents_365d == 1


def test_domestic_abuse_counts_for_the_household_and_grades_for_each_child() -> None:
    # Siblings: the household count grows, each child's own count does not.
    contacts = [
        police_at(f"C{n}", T0 + timedelta(days=n), subjects=(f"SUBJ-{n}",)) for n in range(3)
    ]
    third = facts_after(contacts)[2]
    assert third.da_incidents_365d == 2
    assert third.low_graded_police_90d == {"SUBJ-2": 0}


def test_only_low_or_standard_graded_police_notifications_count_as_low_graded() -> None:
    contacts = [
        police_at("C1", T0, incident="child_coming_to_notice", dash=None, ppn="low"),
        police_at("C2", T0 + timedelta(days=1), dash="standard", ppn="medium"),
        police_at("C3", T0 + timedelta(days=2), dash="high", ppn="high"),
        referral_at("C4", T0 + timedelta(days=3), ("20",)),
        police_at("C5", T0 + timedelta(days=4), incident="child_coming_to_notice", dash=None),
    ]
    assert facts_after(contacts)[4].low_graded_police_90d == {"SUBJ-1": 2}
    assert entry_for(contacts[2]).low_graded == ()
    assert entry_for(contacts[3]).counts_for_anything() is False


def test_three_low_graded_notifications_in_90_days_escalate() -> None:
    contacts = [
        police_at(
            f"C{n}", T0 + timedelta(days=44 * n), incident="online_harm", dash=None, ppn="low"
        )
        for n in range(3)
    ]
    facts = facts_after(contacts)
    assert [f.low_graded_police_90d["SUBJ-1"] for f in facts] == [0, 1, 2]
    assert rule_ids(decide(contacts[2], facts[2])) == ["R3-ESCALATE"]
    # 91 days apart, the first no longer counts.
    late = police_at("C9", T0 + timedelta(days=91), incident="online_harm", dash=None, ppn="low")
    history = HouseholdHistory().record(contacts[0])
    assert history.facts_for(late).low_graded_police_90d == {"SUBJ-1": 0}


def test_missing_episodes_are_counted_per_child_over_90_days() -> None:
    contacts = [
        referral_at("C1", T0, ("10A",)),
        police_at("C2", T0 + timedelta(days=20), incident="missing_child", dash=None, ppn="low"),
        referral_at("C3", T0 + timedelta(days=40), ("10A",)),
    ]
    facts = facts_after(contacts)
    assert [f.missing_episodes_90d["SUBJ-1"] for f in facts] == [0, 1, 2]
    assert "R3-MISSING" in rule_ids(decide(contacts[2], facts[2]))


def test_previous_means_an_earlier_incident_not_an_earlier_arrival() -> None:
    early, middle, late = (police_at(f"C{n}", T0 + timedelta(days=30 * n)) for n in range(3))
    # The late incident arrives first, then the early one: the early one sees nothing.
    history = HouseholdHistory().record(late).record(middle)
    assert history.record(early).facts_for(early).da_incidents_365d == 0
    assert history.record(early).facts_for(late).da_incidents_365d == 2


def test_replaying_the_first_contact_after_the_third_gives_it_its_original_facts() -> None:
    contacts = [police_at(f"C{n}", T0 + timedelta(days=10 * n)) for n in range(3)]
    book = HistoryBook()
    original = book.record_all(contacts)
    assert book.record(contacts[0]) == original[0]
    assert book.record(contacts[2]) == original[2]


def test_entries_beyond_retention_are_dropped_and_not_added_back() -> None:
    old = police_at("C-OLD", T0)
    new = police_at("C-NEW", T0 + RETENTION + timedelta(days=1))
    history = HouseholdHistory().record(old).record(new)
    assert not history.has("C-OLD")
    assert history.record(old) is history  # a replay of an ancient contact changes nothing


def test_json_round_trip_and_empty_value() -> None:
    contacts = [
        police_at("C1", T0, subjects=("SUBJ-1", "SUBJ-2")),
        referral_at("C2", T0 + timedelta(days=1), ("10A",)),
    ]
    history = HouseholdHistory()
    for contact in contacts:
        history = history.record(contact)
    assert HouseholdHistory.from_json(history.to_json()) == history
    assert HouseholdHistory.from_json(None) == HouseholdHistory()
    assert b"Testchild" not in history.to_json()  # ids and times only


@pytest.mark.parametrize("raw", [b"not json", b'{"format": 99, "entries": []}', b'{"format": 1}'])
def test_an_unreadable_table_value_is_an_error(raw: bytes) -> None:
    with pytest.raises(ValueError, match="history"):
        HouseholdHistory.from_json(raw)


_DAYS = st.lists(st.integers(min_value=0, max_value=500), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(days=_DAYS, replays=st.lists(st.integers(min_value=0, max_value=7), max_size=6))
def test_replays_never_change_what_any_contact_is_screened_with(
    days: list[int], replays: list[int]
) -> None:
    contacts = [police_at(f"C{n}", T0 + timedelta(days=d), ppn="low") for n, d in enumerate(days)]
    clean = HistoryBook()
    expected = clean.record_all(contacts)
    noisy = HistoryBook()
    got: dict[str, ScreeningHistory] = {}
    for n, contact in enumerate(contacts):
        got.setdefault(contact.contact_id, noisy.record(contact))
        for r in replays:  # redeliver some earlier contacts after this one
            if r <= n:
                noisy.record(contacts[r])
    assert [got[c.contact_id] for c in contacts] == expected
    assert noisy.get(HOUSEHOLD) == clean.get(HOUSEHOLD)


def test_a_moved_childs_own_counts_include_its_probable_matches() -> None:
    # The same child at its old address had another subject id; intake names it.
    history = HouseholdHistory()
    for n in (1, 2):
        history = history.record(police_at(f"OLD-{n}", T0 + timedelta(days=n), subjects=("OLD",)))
    later = T0 + timedelta(days=30)
    moved = police_at("NEW", later, subjects=("NEW",))
    linked = moved.model_copy(
        update={"children": [moved.children[0].model_copy(update={"matched_subject_ids": ["OLD"]})]}
    )
    assert history.facts_for(linked).low_graded_police_90d == {"NEW": 2}
    assert history.facts_for(moved).low_graded_police_90d == {"NEW": 0}
    assert history.facts_for(moved).da_incidents_365d == 2, "the family's key: the household's"
