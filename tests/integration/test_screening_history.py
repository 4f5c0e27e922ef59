"""The stateful rules on the real broker: screening alone as a process, fed contacts.

Each test kills screening with SIGKILL between the second and third contact of a series,
replays the first contact while it is down (the same event again, and the same contact
under a new event id), restarts it, and sends the third. The third is screened with the
history rebuilt from the changelog topic — screening keeps no history in PostgreSQL — and
the replayed first contact is not counted twice.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from schemas.events import Contact
from services.common.topics import CONTACTS
from services.screening.ruleset import DEFAULT_RULE_SET
from tests.integration.screening_harness import ScreeningUnderTest, child, police_contact
from tests.support import Stack

pytestmark = pytest.mark.integration


@pytest.fixture
async def screening(stack: Stack, tmp_path: Path) -> AsyncIterator[ScreeningUnderTest]:
    """Screening running alone in a fresh world."""
    harness = await ScreeningUnderTest.start(stack, tmp_path)
    yield harness
    await harness.stop()


def _rule_ids(decision: dict[str, object]) -> list[str]:
    rules = decision["rules"]
    assert isinstance(rules, list)
    return [str(hit["id"]) for hit in rules]


async def _crash_and_replay_first(screening: ScreeningUnderTest, first: Contact) -> None:
    """Commit, check the changelog, SIGKILL, replay the first contact twice, restart."""
    await screening.wait_caught_up()
    changelog = await screening.changelog()
    assert any(r.key == json.dumps(first.subject_key).encode() for r in changelog), (
        "the household's history is on the changelog topic"
    )
    screening.kill()
    # The same event again (a replay of the topic) and the same contact under a new id
    # (re-sent by another route): neither may count the first notification twice.
    replay = await screening.send_contact(first)
    resent = await screening.send_contact(first, event_id=f"{first.contact_id}-again")
    screening.restart()
    assert await screening.fate(CONTACTS, *replay, timeout=90) == "duplicate_event_id"
    assert await screening.fate(CONTACTS, *resent, timeout=90) == "duplicate_decision"


async def test_third_domestic_abuse_notification_in_a_year_is_a_repeat_after_a_crash(
    screening: ScreeningUnderTest,
) -> None:
    household = "HH-INT-DA-1"
    # Three siblings, one notification each: the household count reaches 3, while no
    # single child has three low-graded notifications (R3-ESCALATE stays quiet).
    contacts = [
        police_contact(
            f"CON-DA-{n}",
            subject_key=household,
            children=[child(f"SUBJ-DA-{n}", household)],
            day=day,
            dash_risk="standard",
            ppn_grade="medium",
            crime_reference_present=False,
        )
        for n, day in ((1, 0), (2, 120), (3, 300))
    ]
    for contact in contacts[:2]:
        await screening.send_contact(contact)
    for contact in contacts[:2]:
        decision = await screening.automated_decision(contact.contact_id)
        assert _rule_ids(decision) == ["R2-DA-STD"]
        assert decision["rule_set_version"] == DEFAULT_RULE_SET
        assert decision["rule_set_hash"]

    await _crash_and_replay_first(screening, contacts[0])
    await screening.send_contact(contacts[2])

    third = await screening.automated_decision(contacts[2].contact_id)
    assert third["outcome"] == "initial_assessment"
    assert _rule_ids(third) == ["R3-DA-REPEAT"]
    assert third["rules"][0]["reason"] == (
        "Repeat domestic abuse: 3 police notifications for the household in 365 days."
    )
    published = await screening.published_for(contacts[2].contact_id)
    assert [d["outcome"] for d in published] == ["initial_assessment"]
    for contact in contacts:
        assert len(await screening.decisions(contact.contact_id)) == 1


async def test_three_low_graded_police_notifications_about_a_child_escalate_after_a_crash(
    screening: ScreeningUnderTest,
) -> None:
    subject = "SUBJ-ESC-1"  # no household known: the subject id is the key
    contacts = [
        police_contact(
            f"CON-ESC-{n}",
            subject_key=subject,
            children=[child(subject, None)],
            day=day,
            incident_type="child_coming_to_notice",
            ppn_grade="low",
            dash_risk=None,
            crime_reference_present=False,
            factors=[],
        )
        for n, day in ((1, 0), (2, 30), (3, 60))
    ]
    for contact in contacts[:2]:
        await screening.send_contact(contact)
    for contact in contacts[:2]:
        decision = await screening.automated_decision(contact.contact_id)
        assert decision["outcome"] == "no_further_action"

    await _crash_and_replay_first(screening, contacts[0])
    await screening.send_contact(contacts[2])

    third = await screening.automated_decision(contacts[2].contact_id)
    assert third["outcome"] == "initial_assessment"
    assert _rule_ids(third) == ["R3-ESCALATE"]
    assert third["rules"][0]["reason"] == (
        "Escalating concern: 3 police notifications about the child in 90 days."
    )
