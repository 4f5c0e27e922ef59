"""The council's cases against the real broker and database: intake records each case
status from the council's case management system as its case's latest status, which
contacts then find by subject id or person key; late, repeated and invalid events."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from schemas import examples as ex
from schemas.inbound import CaseStatus
from services.common.topics import DEAD_LETTER, INBOUND_CASE_STATUS
from services.intake import store
from services.intake.council_cases import OpenCouncilCase, council_case_id
from services.intake.linking import person_key
from tests.integration.harness import metric_value
from tests.integration.intake_harness import IntakeUnderTest
from tests.support import Record, fetch

pytestmark = pytest.mark.integration

OPENED = datetime(2025, 4, 1, 9, tzinfo=UTC)
SYSTEM = "liquidlogic-lcs"


def status(
    child_ref: str, state: str, at: datetime, family: str = "Example-Three", **overrides: Any
) -> CaseStatus:
    """A case status about the example child, under its own ``child_ref`` (and family name:
    each test's child is another child)."""
    child = {**ex.case_status()["child"], "child_ref": child_ref, "family_name": family}
    return CaseStatus.model_validate(
        ex.case_status(child=child, status=state, at=at.isoformat(), **overrides)
    )


async def send(intake: IntakeUnderTest, payload: CaseStatus, **kw: Any) -> tuple[int, int]:
    """Publish a case status keyed by the case system's child id."""
    return await intake.send(
        INBOUND_CASE_STATUS,
        payload,
        key=payload.child.child_ref,
        source="urn:council:liquidlogic",
        **kw,
    )


async def outcome(intake: IntakeUnderTest, coordinates: tuple[int, int]) -> str | None:
    """The inbox outcome intake gave the case status at these coordinates."""
    handled = await intake.handled(INBOUND_CASE_STATUS, *coordinates)
    assert handled.dead_letter is None, handled
    return "duplicate_event_id" if handled.duplicate else handled.outcome


async def case_row(intake: IntakeUnderTest, child_ref: str, case_type: str) -> Any:
    rows = await fetch(
        intake.world.dsn,
        "SELECT * FROM council_cases WHERE council_case_id = $1",
        council_case_id(SYSTEM, child_ref, case_type),
    )
    assert len(rows) == 1
    return rows[0]


async def open_cases(
    intake: IntakeUnderTest, subject_ids: list[str], person_keys: list[str]
) -> list[OpenCouncilCase]:
    conn = await asyncpg.connect(intake.world.dsn)
    try:
        return await store.open_council_cases(conn, subject_ids, person_keys)
    finally:
        await conn.close()


async def test_an_open_case_is_found_by_subject_id_and_by_person_key(
    intake: IntakeUnderTest,
) -> None:
    assert await outcome(intake, await send(intake, status("LCS-OPEN-1", "open", OPENED))) == (
        "applied"
    )
    row = await case_row(intake, "LCS-OPEN-1", "early_help")
    assert (row["status"], row["at"], row["hub"]) == ("open", OPENED, "north-west-central")
    people = person_key("Testchild", "Example-Three", date(2021, 8, 9))
    assert row["person_key"] == people
    values = " ".join(str(v) for v in dict(row).values()).casefold()
    assert "testchild" not in values
    assert "example-three" not in values
    assert "2021-08-09" not in values
    expected = [OpenCouncilCase(row["subject_id"], people, "early_help", "north-west-central")]
    assert await open_cases(intake, [row["subject_id"]], []) == expected
    assert people is not None
    assert await open_cases(intake, ["another-child"], [people]) == expected, "a family moved"
    assert await open_cases(intake, ["another-child"], ["another-person"]) == []
    audit = await fetch(
        intake.world.dsn,
        "SELECT action, detail FROM audit_log WHERE entity_type = 'council_case'"
        " AND entity_id = $1",
        row["council_case_id"],
    )
    assert [a["action"] for a in audit] == ["open"]
    assert "Testchild" not in audit[0]["detail"]


async def test_a_later_close_closes_the_case_and_an_older_open_does_not_reopen_it(
    intake: IntakeUnderTest,
) -> None:
    ref = "LCS-CLOSE-1"
    need = {"case_type": "child_in_need", "family": "Example-Closed"}
    opened = await send(intake, status(ref, "open", OPENED, **need))
    assert await outcome(intake, opened) == "applied"
    subject = (await case_row(intake, ref, "child_in_need"))["subject_id"]
    assert [c.case_type for c in await open_cases(intake, [subject], [])] == ["child_in_need"]

    closed_at = OPENED + timedelta(days=30)
    closed = await send(intake, status(ref, "closed", closed_at, **need))
    assert await outcome(intake, closed) == "applied"
    assert (await case_row(intake, ref, "child_in_need"))["status"] == "closed"
    assert await open_cases(intake, [subject], []) == []

    # The case system re-sends an open status from before the close (late, out of order).
    late = await send(intake, status(ref, "open", OPENED + timedelta(days=1), **need))
    assert await outcome(intake, late) == "superseded"
    row = await case_row(intake, ref, "child_in_need")
    assert (row["status"], row["at"]) == ("closed", closed_at)
    assert await open_cases(intake, [subject], []) == []


async def test_a_repeated_case_status_is_a_duplicate(intake: IntakeUnderTest) -> None:
    payload = status("LCS-DUP-1", "open", OPENED, "Example-Repeat", case_type="looked_after")
    first = await send(intake, payload, event_id="case-dup-1")
    again = await send(intake, payload, event_id="case-dup-1", structured=True)
    assert await outcome(intake, first) == "applied"
    assert await outcome(intake, again) == "duplicate_event_id"
    # The same status sent again under another event id: a duplicate by source.
    resent = await send(intake, payload, event_id="case-dup-2")
    assert await outcome(intake, resent) == "duplicate_source"
    row = await case_row(intake, "LCS-DUP-1", "looked_after")
    assert row["event_id"] == "case-dup-1"
    topic = intake.world.topics(INBOUND_CASE_STATUS)
    assert metric_value(intake.metrics(), "mash_duplicates_skipped_total", topic=topic) >= 2


def headers(ce_id: str) -> list[tuple[str, bytes]]:
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", ce_id.encode()),
        ("ce_source", b"urn:council:liquidlogic"),
        ("ce_type", b"uk.gov.mash.case-status.v1"),
        ("content-type", b"application/json"),
    ]


# (case id, payload, expected reason, the path an error names)
BAD_CASE_STATUSES: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown-status", ex.case_status(status="pending"), "schema_violation", "status"),
    ("no-case-type", {**ex.case_status(), "case_type": None}, "schema_violation", "case_type"),
    (
        "born-child-without-names",
        ex.case_status(child={"child_ref": "LCS-BAD-3", "date_of_birth": "2020-01-01"}),
        "schema_violation",
        "child",
    ),
    ("unknown-hub", ex.case_status(hub="atlantis"), "unknown_reference", "hub"),
]


@pytest.mark.parametrize(
    ("case", "payload", "reason", "path"),
    BAD_CASE_STATUSES,
    ids=[case[0] for case in BAD_CASE_STATUSES],
)
async def test_an_invalid_case_status_is_dead_lettered_with_its_reason(
    intake: IntakeUnderTest, case: str, payload: dict[str, Any], reason: str, path: str
) -> None:
    value = json.dumps(payload).encode()
    coordinates = await intake.send_raw(
        INBOUND_CASE_STATUS, value, headers(f"case-bad-{case}"), key=b"LCS-BAD"
    )
    handled = await intake.handled(INBOUND_CASE_STATUS, *coordinates)
    assert handled.dead_letter == reason
    original_topic = intake.world.topics(INBOUND_CASE_STATUS)

    def this_one(record: Record) -> bool:
        body = record.json()
        return bool(
            body["original_topic"] == original_topic
            and (body["partition"], body["offset"]) == coordinates
        )

    published = await intake.records_until(DEAD_LETTER, lambda rs: any(map(this_one, rs)))
    [letter] = [r.json() for r in published if this_one(r)]
    assert letter["reason"] == reason
    assert letter["service"] == "intake"
    assert letter["original_key"] == base64.b64encode(b"LCS-BAD").decode()
    assert base64.b64decode(letter["original_value"]) == value
    assert letter["errors"], "every dead letter says what was wrong"
    assert all(set(e) == {"path", "message"} for e in letter["errors"])
    assert any(e["path"].startswith(path) for e in letter["errors"]), letter["errors"]
    rows = await fetch(
        intake.world.dsn,
        "SELECT count(*) AS n FROM council_cases WHERE event_id = $1",
        f"case-bad-{case}",
    )
    assert rows[0]["n"] == 0, "nothing recorded"
