"""Screening's system of record on the real broker and database: each child's own level,
outcome and RAG are kept beside the contact's, and a restricted police notification's
decision says so (and promises no Operation Encompass notice)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.integration.screening_harness import ScreeningUnderTest, child, police_contact
from tests.support import Stack, fetchval

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def screening(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ScreeningUnderTest]:
    """Screening running alone in a fresh world."""
    harness = await ScreeningUnderTest.start(stack, tmp_path_factory.mktemp("screening-record"))
    yield harness
    await harness.stop()


async def stored_subjects(screening: ScreeningUnderTest, decision_id: str) -> list[dict[str, Any]]:
    """The decision row's ``subjects`` column."""
    raw = await fetchval(
        screening.world.dsn, "SELECT subjects FROM decisions WHERE decision_id = $1", decision_id
    )
    assert raw is not None, "each child's screening is stored"
    subjects = json.loads(raw)
    assert isinstance(subjects, list)
    return subjects


async def test_each_childs_own_level_outcome_and_rag_are_in_the_record(
    screening: ScreeningUnderTest,
) -> None:
    household = "HH-REC-1"
    contact = police_contact(
        "CON-REC-1",
        subject_key=household,
        children=[
            child("SUBJ-REC-SEEN", household),  # present: DASH high is level 4 for this child
            child("SUBJ-REC-AWAY", household, present_at_incident=False, resident=False),
        ],
        dash_risk="high",
    )
    await screening.send_contact(contact)
    row = await screening.automated_decision(contact.contact_id)
    (published,) = await screening.published_for(contact.contact_id)
    subjects = await stored_subjects(screening, row["decision_id"])
    assert subjects == published["subjects"], "the record holds what was decided per child"
    levels = {s["subject_id"]: (s["level"], s["outcome"], s["rag"]) for s in subjects}
    assert levels == {
        "SUBJ-REC-SEEN": (4, "s47", "red"),
        "SUBJ-REC-AWAY": (3, "initial_assessment", "amber"),  # a level-4 child's sibling
    }
    assert (row["level"], row["outcome"]) == (4, "s47"), "the contact takes the highest"
    by_child = {s["subject_id"]: [hit["id"] for hit in s["rules"]] for s in subjects}
    assert "R4-DA-HIGH" in by_child["SUBJ-REC-SEEN"]
    assert "R4-DA-HIGH" not in by_child["SUBJ-REC-AWAY"]


async def test_a_restricted_notification_is_decided_alike_but_marked_and_tells_no_school(
    screening: ScreeningUnderTest,
) -> None:
    contacts = {
        restricted: police_contact(
            f"CON-REC-{'R' if restricted else 'O'}",
            subject_key=f"HH-REC-{'R' if restricted else 'O'}",
            children=[child(f"SUBJ-REC-{'R' if restricted else 'O'}", None)],
            dash_risk="medium",
            restricted=restricted,
        )
        for restricted in (True, False)
    }
    for contact in contacts.values():
        await screening.send_contact(contact)
    published = {}
    for restricted, contact in contacts.items():
        await screening.automated_decision(contact.contact_id)
        (published[restricted],) = await screening.published_for(contact.contact_id)
    marked, open_one = published[True], published[False]
    assert (marked["restricted"], marked["encompass_required"]) == (True, False)
    assert (open_one["restricted"], open_one["encompass_required"]) == (False, True)
    assert (marked["level"], marked["outcome"], marked["rag"]) == (
        open_one["level"],
        open_one["outcome"],
        open_one["rag"],
    )
    assert [hit["id"] for hit in marked["rules"]] == [hit["id"] for hit in open_one["rules"]]
    payload = await fetchval(
        screening.world.dsn,
        "SELECT payload->>'restricted' FROM decisions WHERE decision_id = $1",
        marked["decision_id"],
    )
    assert payload == "true", "the record keeps the mark too"
