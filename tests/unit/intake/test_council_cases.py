"""The council's cases: a case status as intake records it (identified, hashes only), the
case's latest status whatever the arrival order, repeats, and the contract model."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import examples as ex
from schemas.cloudevents import CloudEvent
from schemas.inbound import CaseStatus
from services.intake.council_cases import (
    CouncilCase,
    RecordedStatus,
    cases_to_record,
    council_case_id,
    council_case_of,
    decide_case_statuses,
    verdict_on,
)
from services.intake.linking import identify, person_key

AT = datetime(2024, 3, 1, 10, tzinfo=UTC)
RECORDED_AT = datetime(2024, 3, 1, 10, 5, tzinfo=UTC)


def event(event_id: str = "evt-case-1") -> CloudEvent:
    return CloudEvent(
        id=event_id,
        source="urn:council:liquidlogic",
        type="uk.gov.mash.case-status.v1",
        time=None,
        subject=None,
        data=None,
        mode="binary",
    )


def case(
    status: str = "open", at: datetime = AT, *, event_id: str = "evt-case-1", **overrides: Any
) -> CouncilCase:
    payload = CaseStatus.model_validate(
        ex.case_status(status=status, at=at.isoformat(), **overrides)
    )
    return council_case_of(payload, event(event_id), RECORDED_AT)


# --- the row ---------------------------------------------------------------------------------


def test_a_case_status_is_identified_as_a_contact_child_is_with_the_case_system_as_sender() -> None:
    row = case()
    subject, basis = identify(
        nhs_number=None,
        given_name="Testchild",
        family_name="Example-Three",
        birth_date=date(2021, 8, 9),
        postcode="B6 4AA",
        source_system="liquidlogic-lcs",
        child_ref="LCS-TEST-0001",
    )
    assert (row.subject_id, basis) == (subject, "demographic")
    assert row.person_key == person_key("Testchild", "Example-Three", date(2021, 8, 9))
    assert row.council_case_id == council_case_id("liquidlogic-lcs", "LCS-TEST-0001", "early_help")
    assert (row.case_system, row.child_ref, row.case_type) == (
        "liquidlogic-lcs",
        "LCS-TEST-0001",
        "early_help",
    )
    assert (row.status, row.at, row.team, row.hub) == (
        "open",
        AT,
        "Example Early Help Team North",
        "north-west-central",
    )
    assert (row.event_id, row.recorded_at) == ("evt-case-1", RECORDED_AT)


def test_the_row_holds_no_name_date_of_birth_or_address() -> None:
    row = case()
    values = " ".join(str(v) for v in vars(row).values()).casefold()
    for personal in ("testchild", "example-three", "2021-08-09", "b6 4aa", "example street"):
        assert personal not in values


def test_an_nhs_number_identifies_the_child_across_systems() -> None:
    child = {**ex.case_status()["child"], "nhs_number": ex.NHS_NUMBERS[2]}
    lcs = case(child=child)
    mosaic = case(case_system="mosaic", child={**child, "child_ref": "MOS-1", "address": None})
    assert lcs.subject_id == mosaic.subject_id
    assert lcs.council_case_id != mosaic.council_case_id, "two systems, two cases"


def test_without_a_postcode_the_child_is_the_case_systems_own_and_found_by_person_key() -> None:
    moved = case(child={**ex.case_status()["child"], "address": None})
    at_home = case()
    assert moved.subject_id != at_home.subject_id
    assert moved.person_key == at_home.person_key is not None


def test_an_unborn_child_is_keyed_by_its_expected_date_of_birth() -> None:
    unborn = case(
        case_type="child_protection_plan",
        child={"child_ref": "LCS-UNBORN-1", "expected_date_of_birth": "2024-09-01"},
    )
    assert unborn.person_key is None, "no family name: no probable match"
    named = case(
        child={
            "child_ref": "LCS-UNBORN-2",
            "family_name": "Example-Four",
            "expected_date_of_birth": "2024-09-01",
        }
    )
    assert named.person_key == person_key(None, "Example-Four", date(2024, 9, 1))


# --- the latest status -------------------------------------------------------------------------


def test_a_new_case_is_recorded() -> None:
    assert verdict_on(case(), None) == "recorded"


@pytest.mark.parametrize(
    ("recorded", "status", "at", "verdict"),
    [
        (RecordedStatus("open", AT), "closed", AT + timedelta(days=1), "recorded"),
        (RecordedStatus("closed", AT), "open", AT + timedelta(seconds=1), "recorded"),
        (RecordedStatus("open", AT), "open", AT + timedelta(days=1), "recorded"),
        (RecordedStatus("closed", AT), "open", AT - timedelta(days=1), "superseded"),
        (RecordedStatus("open", AT), "closed", AT - timedelta(microseconds=1), "superseded"),
        (RecordedStatus("open", AT), "open", AT, "repeat"),
        (RecordedStatus("closed", AT), "closed", AT, "repeat"),
        (RecordedStatus("closed", AT), "open", AT, "recorded"),
        (RecordedStatus("open", AT), "closed", AT, "superseded"),
    ],
    ids=[
        "later-close",
        "later-reopen",
        "later-open-again",
        "older-open-after-close",
        "older-close",
        "same-open",
        "same-close",
        "same-time-open-wins",
        "same-time-close-loses",
    ],
)
def test_the_latest_status_wins(
    recorded: RecordedStatus, status: str, at: datetime, verdict: str
) -> None:
    assert verdict_on(case(status, at), recorded) == verdict


def test_a_batch_sees_its_earlier_statuses_and_writes_one_row_per_case() -> None:
    opened = case("open", AT, event_id="e1")
    closed = case("closed", AT + timedelta(days=2), event_id="e2")
    late_open = case("open", AT + timedelta(days=1), event_id="e3")
    again = case("closed", AT + timedelta(days=2), event_id="e4")
    other = case("open", AT, event_id="e5", case_type="child_in_need")
    batch = [opened, closed, late_open, again, other]
    verdicts = decide_case_statuses(batch, {})
    assert verdicts == ["recorded", "recorded", "superseded", "repeat", "recorded"]
    rows = cases_to_record(batch, verdicts)
    assert sorted(rows, key=lambda r: r.council_case_id) == rows, "locks in one order"
    assert {(r.case_type, r.status, r.event_id) for r in rows} == {
        ("early_help", "closed", "e2"),
        ("child_in_need", "open", "e5"),
    }


def test_the_batch_gives_the_rows_of_its_events_one_by_one_in_any_order() -> None:
    statuses = [
        case("open", AT, event_id="a"),
        case("closed", AT + timedelta(hours=1), event_id="b"),
        case("open", AT + timedelta(hours=1), event_id="c"),
        case("closed", AT + timedelta(hours=3), event_id="d"),
        case("open", AT + timedelta(hours=2), event_id="e"),
    ]
    for shift in range(len(statuses)):
        order = statuses[shift:] + statuses[:shift]
        one_by_one: dict[str, RecordedStatus] = {}
        for status in order:
            if verdict_on(status, one_by_one.get(status.council_case_id)) == "recorded":
                one_by_one[status.council_case_id] = status.standing
        rows = cases_to_record(order, decide_case_statuses(order, {}))
        assert {r.council_case_id: r.standing for r in rows} == one_by_one
        assert [r.event_id for r in rows] == ["d"], "the latest, whatever the arrival order"


def test_a_recorded_status_is_what_the_batch_starts_from() -> None:
    closed = case("closed", AT + timedelta(days=3), event_id="later")
    recorded = {closed.council_case_id: closed.standing}
    older = case("open", AT, event_id="older")
    assert decide_case_statuses([older, closed], recorded) == ["superseded", "repeat"]
    assert cases_to_record([older, closed], ["superseded", "repeat"]) == []


# --- the contract model ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"status": "pending"},
        {"case_type": "s47"},
        {"case_system": "Liquidlogic LCS"},
        {"hub": "North West"},
        {"at": "2024-03-01T10:00:00"},
        {"child": {"child_ref": "X", "given_name": "Testchild", "date_of_birth": "2020-01-01"}},
        {"child": {"child_ref": "X"}},
        {
            "child": {
                "child_ref": "X",
                "given_name": "Testchild",
                "family_name": "Example-Three",
                "date_of_birth": "2020-01-01",
                "expected_date_of_birth": "2024-09-01",
            }
        },
        {"child": {**ex.case_status()["child"], "nhs_number": ex.INVALID_NHS_NUMBER}},
        {"child": {**ex.case_status()["child"], "gender": "female"}},
        {"referral_id": "R-1"},
    ],
    ids=[
        "unknown-status",
        "unknown-case-type",
        "case-system-not-a-slug",
        "hub-not-a-slug",
        "naive-time",
        "born-without-family-name",
        "no-date-of-birth",
        "both-dates",
        "bad-nhs-check-digit",
        "field-not-in-the-contract",
        "unknown-field",
    ],
)
def test_invalid_case_statuses_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        CaseStatus.model_validate(ex.case_status(**overrides))


def test_optional_parts_may_be_left_out() -> None:
    payload = ex.case_status()
    for optional in ("team", "hub"):
        del payload[optional]
    payload["child"] = {
        "child_ref": "LCS-2",
        "given_name": "Testchild",
        "family_name": "Example-Three",
        "date_of_birth": "2021-08-09",
        "address": {"line1": "Last known: a hostel"},
    }
    status = CaseStatus.model_validate(payload)
    assert (status.team, status.hub, status.child.nhs_number) == (None, None, None)
