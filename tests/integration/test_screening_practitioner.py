"""Practitioner decisions on the real broker: confirm, override, unknown contact, invalid
override, and the s47 confirmation gate — screening alone as a process, fed events."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from schemas.events import Contact
from services.common.topics import CONTACTS, DECISIONS, PRACTITIONER_DECISIONS
from services.screening.practitioner import held_event_id
from tests.integration.screening_harness import ScreeningUnderTest, child, police_contact
from tests.support import Stack, fetch, fetchval, read_topic, wait_until

pytestmark = pytest.mark.integration

FREE_TEXT = "Synthetic reason: the practitioner's own words, which never leave the hub."


@pytest.fixture(scope="module")
async def screening(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ScreeningUnderTest]:
    """Screening (gate off, the default) running alone in a fresh world."""
    harness = await ScreeningUnderTest.start(stack, tmp_path_factory.mktemp("screening"))
    yield harness
    await harness.stop()


@pytest.fixture(scope="module")
async def gated(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ScreeningUnderTest]:
    """Screening with the s47 confirmation gate on."""
    harness = await ScreeningUnderTest.start(
        stack,
        tmp_path_factory.mktemp("gated"),
        env={"MASH_SCREENING_S47_CONFIRMATION": "true"},
    )
    yield harness
    await harness.stop()


def high_risk(contact_id: str) -> Contact:
    """A police DA notification, DASH high, child present: automated s47 (R4-DA-HIGH)."""
    key = f"HH-{contact_id}"
    return police_contact(contact_id, subject_key=key, children=[child(f"S-{contact_id}", key)])


def standard_risk(contact_id: str) -> Contact:
    """A police DA notification, DASH standard: automated single agency (R2-DA-STD)."""
    key = f"HH-{contact_id}"
    return police_contact(
        contact_id,
        subject_key=key,
        children=[child(f"S-{contact_id}", key)],
        dash_risk="standard",
        ppn_grade="medium",
        crime_reference_present=False,
    )


async def _outbox_count(harness: ScreeningUnderTest, decision_id: str) -> int:
    return len(await harness.outbox_events(DECISIONS, decision_id))


async def test_confirm_then_override_keeps_both_and_publishes_the_override(
    screening: ScreeningUnderTest,
) -> None:
    contact = high_risk("CON-PR-1")
    await screening.send_contact(contact)
    automated = await screening.automated_decision("CON-PR-1")
    assert (automated["outcome"], automated["status"]) == ("s47", "effective")

    confirm = await screening.send_practitioner(
        "pr-1-confirm", contact_id="CON-PR-1", kind="confirm", outcome=None, agency="police"
    )
    assert await screening.fate(PRACTITIONER_DECISIONS, *confirm) == "confirmed"

    override = await screening.send_practitioner(
        "pr-1-override",
        contact_id="CON-PR-1",
        kind="override",
        outcome="initial_assessment",
        agency="childrens_social_care",
        practitioner_id="PRAC-CSC-7",
        reason=FREE_TEXT,
    )
    assert await screening.fate(PRACTITIONER_DECISIONS, *override) == "overridden"

    rows = {d["source"]: d for d in await screening.decisions("CON-PR-1")}
    assert rows["rules"]["status"] == "superseded"  # the automated one is kept
    new = rows["practitioner"]
    assert (new["status"], new["outcome"], new["level"], new["rag"]) == (
        "effective",
        "initial_assessment",
        3,
        "amber",
    )
    assert new["supersedes_decision_id"] == automated["decision_id"]
    assert (new["practitioner_id"], new["practitioner_agency"]) == (
        "PRAC-CSC-7",
        "childrens_social_care",
    )

    published = await wait_until(
        lambda: _two_published(screening, "CON-PR-1"), timeout=60, what="the override event"
    )
    first, second = published
    assert first["decision_id"] == automated["decision_id"]
    assert second["source"] == "practitioner"
    assert second["supersedes_decision_id"] == automated["decision_id"]
    assert second["rules"] == [
        {
            "id": "PRACTITIONER-OVERRIDE",
            "reason": "Practitioner override by children's social care: "
            "s47 strategy discussion changed to initial assessment.",
        }
    ]
    for same in ("hub", "contact_source", "received_at", "joint_screening"):
        assert second[same] == first[same]
    # The same children; the rules' per-child levels stay with the automated decision.
    children_before, children_after = first["subjects"], second["subjects"]
    assert isinstance(children_before, list)
    assert isinstance(children_after, list)
    assert [s["subject_id"] for s in children_after] == [s["subject_id"] for s in children_before]
    assert [s["level"] for s in children_after] == [None]
    records = await read_topic(screening.world.stack.bootstrap, screening.world.topics(DECISIONS))
    assert all(FREE_TEXT.encode() not in r.value for r in records), "free text stays inside"

    audit = await fetch(
        screening.world.dsn,
        "SELECT kind, result, reason, practitioner_id, agency FROM practitioner_decisions"
        " WHERE contact_id = $1 ORDER BY recorded_at",
        "CON-PR-1",
    )
    assert [(a["kind"], a["result"]) for a in audit] == [
        ("confirm", "confirmed"),
        ("override", "overridden"),
    ]
    assert audit[1]["reason"] == FREE_TEXT  # who, agency, reason, when: in the record
    actors = await fetch(
        screening.world.dsn,
        "SELECT actor, action FROM audit_log WHERE action LIKE 'practitioner_%'"
        " AND detail->>'contact_id' = $1 ORDER BY id",
        "CON-PR-1",
    )
    assert [(a["actor"], a["action"]) for a in actors] == [
        ("PRAC-TEST-01", "practitioner_confirmed"),
        ("PRAC-CSC-7", "practitioner_overridden"),
    ]

    # Overriding to the outcome already in force changes nothing: refused.
    again = await screening.send_practitioner(
        "pr-1-again", contact_id="CON-PR-1", kind="override", outcome="initial_assessment"
    )
    assert await screening.fate(PRACTITIONER_DECISIONS, *again) == "dead_letter:invalid_transition"

    # A second override supersedes the first override, not the automated decision.
    lower = await screening.send_practitioner(
        "pr-1-lower",
        contact_id="CON-PR-1",
        kind="override",
        outcome="single_agency",
        target_agency="early_help",
    )
    assert await screening.fate(PRACTITIONER_DECISIONS, *lower) == "overridden"
    current = [d for d in await screening.decisions("CON-PR-1") if d["status"] == "effective"]
    assert len(current) == 1
    assert current[0]["outcome"] == "single_agency"
    assert current[0]["supersedes_decision_id"] == new["decision_id"]


async def _two_published(harness: ScreeningUnderTest, contact_id: str) -> list[dict[str, object]]:
    found = await harness.published_for(contact_id)
    return found if len(found) >= 2 else []


async def test_a_decision_about_an_unknown_contact_is_dead_lettered(
    screening: ScreeningUnderTest,
) -> None:
    unknown = await screening.send_practitioner("pr-unknown", contact_id="CON-NEVER-SEEN")
    assert await screening.fate(PRACTITIONER_DECISIONS, *unknown) == "dead_letter:unknown_reference"
    assert await screening.decisions("CON-NEVER-SEEN") == []


async def test_the_s47_gate_holds_an_automated_s47_until_police_and_csc_confirm(
    gated: ScreeningUnderTest,
) -> None:
    held_at = await gated.send_contact(high_risk("CON-G-1"))
    assert await gated.fate(CONTACTS, *held_at) == "awaiting_confirmation"
    held = await gated.automated_decision("CON-G-1")
    assert (held["outcome"], held["status"]) == ("s47", "awaiting_confirmation")

    # The hold is announced at once, marked awaiting practitioners, under its own event id
    # (routing puts it on the hub's s47 queue with its clock); the decision's own id is
    # kept for the release. Not s47: published at once, unmarked, gate or not.
    await gated.send_contact(standard_risk("CON-G-2"))
    unheld = await wait_until(
        lambda: gated.published_for("CON-G-2"), timeout=60, what="the unheld decision"
    )
    assert [d["awaiting_practitioners"] for d in unheld] == [False]
    announced = await wait_until(
        lambda: gated.published_for("CON-G-1"), timeout=60, what="the held decision"
    )
    assert [(d["decision_id"], d["outcome"], d["awaiting_practitioners"]) for d in announced] == [
        (held["decision_id"], "s47", True)
    ]
    assert len(await gated.outbox_events(DECISIONS, held_event_id(held["decision_id"]))) == 1

    for n, agency in enumerate(("police", "police")):
        confirm = await gated.send_practitioner(
            f"g-1-{n}",
            contact_id="CON-G-1",
            kind="confirm",
            outcome=None,
            agency=agency,
            practitioner_id=f"PRAC-POL-{n}",
        )
        assert await gated.fate(PRACTITIONER_DECISIONS, *confirm) == "confirmed"
    assert await _outbox_count(gated, held["decision_id"]) == 0, "police alone do not release"

    csc = await gated.send_practitioner(
        "g-1-csc", contact_id="CON-G-1", kind="confirm", outcome=None
    )
    assert await gated.fate(PRACTITIONER_DECISIONS, *csc) == "released"
    released = await wait_until(
        lambda: _two_published(gated, "CON-G-1"), timeout=60, what="the released decision"
    )
    assert [
        (d["decision_id"], d["source"], d["outcome"], d["awaiting_practitioners"]) for d in released
    ] == [
        (held["decision_id"], "rules", "s47", True),
        (held["decision_id"], "rules", "s47", False),
    ]
    assert released[1]["decided_at"] == released[0]["decided_at"]  # clocks run from it
    row = (await gated.decisions("CON-G-1"))[0]
    assert row["status"] == "effective"
    released_at = await fetchval(
        gated.world.dsn,
        "SELECT released_at FROM decisions WHERE decision_id = $1",
        held["decision_id"],
    )
    assert released_at is not None


async def test_an_override_while_held_is_the_first_effective_decision(
    gated: ScreeningUnderTest,
) -> None:
    await gated.send_contact(high_risk("CON-G-3"))
    held = await gated.automated_decision("CON-G-3")
    assert held["status"] == "awaiting_confirmation"
    override = await gated.send_practitioner(
        "g-3-override",
        contact_id="CON-G-3",
        kind="override",
        outcome="single_agency",
        target_agency="early_help",
        agency="police",
    )
    assert await gated.fate(PRACTITIONER_DECISIONS, *override) == "overridden"
    published = await wait_until(
        lambda: _two_published(gated, "CON-G-3"), timeout=60, what="the override"
    )
    hold, only = published
    assert (hold["decision_id"], hold["awaiting_practitioners"]) == (held["decision_id"], True)
    assert (only["source"], only["outcome"], only["target_agency"]) == (
        "practitioner",
        "single_agency",
        "early_help",
    )
    assert only["awaiting_practitioners"] is False
    # Nothing effective was superseded (routing moves the held item: same contact).
    assert only["supersedes_decision_id"] is None
    statuses = {d["source"]: d["status"] for d in await gated.decisions("CON-G-3")}
    assert statuses == {"rules": "superseded", "practitioner": "effective"}
    assert await _outbox_count(gated, held["decision_id"]) == 0

    # Later confirmations are recorded but release nothing: the gate is resolved.
    for agency in ("police", "childrens_social_care"):
        late = await gated.send_practitioner(
            f"g-3-{agency}", contact_id="CON-G-3", kind="confirm", outcome=None, agency=agency
        )
        assert await gated.fate(PRACTITIONER_DECISIONS, *late) == "confirmed"
    assert await _outbox_count(gated, held["decision_id"]) == 0
