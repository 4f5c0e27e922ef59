"""Intake against the real broker and database: dead letters for every failure class,
de-duplication, hub resolution in every topology, subject linking and flags."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas import examples as ex
from schemas.inbound import PoliceNotification, Referral
from services.common.topics import INBOUND_POLICE, INBOUND_REFERRALS
from tests.integration.intake_harness import IntakeUnderTest
from tests.support import Stack, fetch, fetchval

pytestmark = pytest.mark.integration

POLICE_TYPE = b"uk.gov.mash.police-notification.v1"
REFERRAL_TYPE = b"uk.gov.mash.referral.v1"


def headers(
    ce_id: str = "dl-1", ce_type: bytes = REFERRAL_TYPE, **extra: bytes
) -> list[tuple[str, bytes]]:
    base = {
        "ce_specversion": b"1.0",
        "ce_id": ce_id.encode(),
        "ce_source": b"urn:test:intake",
        "ce_type": ce_type,
        "content-type": b"application/json",
        **extra,
    }
    return [(k, v) for k, v in base.items() if v is not None]


def valid_referral_bytes(**overrides: Any) -> bytes:
    return json.dumps(ex.referral(**overrides)).encode()


def without(name: str) -> list[tuple[str, bytes]]:
    return [(k, v) for k, v in headers(f"dl-missing-{name}") if k != name]


# (case id, topic, value, headers, expected reason)
BAD_INPUTS: list[tuple[str, str, bytes | None, list[tuple[str, bytes]], str]] = [
    ("truncated-json", INBOUND_REFERRALS, b'{"referral_id": ', headers("dl-a"), "malformed_json"),
    ("not-utf8", INBOUND_REFERRALS, b"\xff\xfe\x00garbage", headers("dl-b"), "malformed_json"),
    ("json-array", INBOUND_POLICE, b"[1, 2, 3]", headers("dl-c", POLICE_TYPE), "malformed_json"),
    ("empty-value", INBOUND_POLICE, None, headers("dl-d", POLICE_TYPE), "malformed_json"),
    (
        "unknown-field",
        INBOUND_REFERRALS,
        valid_referral_bytes(referral_id="DL-E", favourite_colour="blue"),
        headers("dl-e"),
        "schema_violation",
    ),
    (
        "bad-nhs-check-digit",
        INBOUND_REFERRALS,
        valid_referral_bytes(
            referral_id="DL-F", children=[ex.child(nhs_number=ex.INVALID_NHS_NUMBER)]
        ),
        headers("dl-f"),
        "schema_violation",
    ),
    (
        "da-without-dash",
        INBOUND_POLICE,
        json.dumps(ex.police_notification(notification_id="DL-G", dash_risk=None)).encode(),
        headers("dl-g", POLICE_TYPE),
        "schema_violation",
    ),
    (
        "unknown-type",
        INBOUND_REFERRALS,
        valid_referral_bytes(referral_id="DL-H"),
        headers("dl-h", b"uk.gov.mash.parking-ticket.v1"),
        "unknown_type",
    ),
    (
        "police-type-on-referral-topic",
        INBOUND_REFERRALS,
        json.dumps(ex.police_notification(notification_id="DL-I")).encode(),
        headers("dl-i", POLICE_TYPE),
        "unknown_type",
    ),
    (
        "no-ce-id",
        INBOUND_REFERRALS,
        valid_referral_bytes(referral_id="DL-J"),
        without("ce_id"),
        "missing_header",
    ),
    (
        "no-ce-type",
        INBOUND_REFERRALS,
        valid_referral_bytes(referral_id="DL-K"),
        without("ce_type"),
        "missing_header",
    ),
    (
        "no-ce-source",
        INBOUND_POLICE,
        valid_referral_bytes(referral_id="DL-L"),
        without("ce_source"),
        "missing_header",
    ),
    (
        "too-large-referral",
        INBOUND_REFERRALS,
        valid_referral_bytes(referral_id="DL-M", narrative="x" * (300 * 1024)),
        headers("dl-m"),
        "too_large",
    ),
    (
        "too-large-garbage",
        INBOUND_POLICE,
        b"\x00" * (257 * 1024),
        headers("dl-n", POLICE_TYPE),
        "too_large",
    ),
    (
        "referral-v2",
        INBOUND_REFERRALS,
        valid_referral_bytes(referral_id="DL-O"),
        headers("dl-o", b"uk.gov.mash.referral.v2"),
        "unsupported_version",
    ),
    (
        "specversion-0.3",
        INBOUND_REFERRALS,
        valid_referral_bytes(referral_id="DL-P"),
        headers("dl-p", ce_specversion=b"0.3"),
        "unsupported_version",
    ),
]


@pytest.mark.parametrize(
    ("topic", "value", "hdrs", "reason"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
async def test_bad_input_is_dead_lettered_with_its_reason_and_original_bytes(
    intake: IntakeUnderTest,
    topic: str,
    value: bytes | None,
    hdrs: list[tuple[str, bytes]],
    reason: str,
) -> None:
    partition, offset = await intake.send_raw(topic, value, hdrs, key=b"k")
    fate = await intake.fate(topic, partition, offset)
    assert fate.kind == "dead_letter"
    assert fate.reason == reason
    letter = await fetchval(
        intake.world.dsn,
        "SELECT convert_from(value, 'UTF8') FROM outbox o JOIN dead_letters d"
        " ON o.event_id = d.dead_letter_id"
        ' WHERE d.original_topic = $1 AND d."partition" = $2 AND d."offset" = $3',
        intake.world.topics(topic),
        partition,
        offset,
    )
    body = json.loads(letter)
    assert body["reason"] == reason
    assert body["original_topic"] == intake.world.topics(topic)
    assert (body["partition"], body["offset"]) == (partition, offset)
    assert body["service"] == "intake"
    assert body["original_key"] == base64.b64encode(b"k").decode()
    original = None if body["original_value"] is None else base64.b64decode(body["original_value"])
    assert original == value
    assert {h["key"] for h in body["headers"]} == {k for k, _ in hdrs}
    assert body["errors"], "every dead letter says what was wrong"
    assert all(set(e) == {"path", "message"} for e in body["errors"])


async def test_every_dead_letter_reason_is_counted_in_the_metrics(intake: IntakeUnderTest) -> None:
    # Runs after the table above (same module, same intake process).
    text = intake.metrics()
    for reason in {case[-1] for case in BAD_INPUTS}:
        assert f'mash_events_dead_lettered_total{{reason="{reason}"}}' in text


async def test_the_same_event_id_twice_has_one_effect(intake: IntakeUnderTest) -> None:
    payload = Referral.model_validate(ex.referral(referral_id="DUP-ID-1"))
    first = await intake.send(INBOUND_REFERRALS, payload, event_id="dup-event-1")
    second = await intake.send(INBOUND_REFERRALS, payload, event_id="dup-event-1", structured=True)
    assert (await intake.fate(INBOUND_REFERRALS, *first)).kind == "contact"
    assert (await intake.fate(INBOUND_REFERRALS, *second)).kind == "duplicate_event_id"
    assert (
        await fetchval(
            intake.world.dsn, "SELECT count(*) FROM contacts WHERE source_reference = 'DUP-ID-1'"
        )
        == 1
    )


async def test_the_same_source_reference_twice_has_one_effect(intake: IntakeUnderTest) -> None:
    payload = Referral.model_validate(ex.referral(referral_id="DUP-SRC-1"))
    first = await intake.send(INBOUND_REFERRALS, payload, event_id="dup-src-a")
    second = await intake.send(INBOUND_REFERRALS, payload, event_id="dup-src-b")
    fate = await intake.fate(INBOUND_REFERRALS, *first)
    assert fate.kind == "contact"
    assert (await intake.fate(INBOUND_REFERRALS, *second)).kind == "duplicate_source"
    assert (
        await fetchval(
            intake.world.dsn,
            "SELECT count(*) FROM outbox WHERE topic LIKE '%mash.contacts.v1' AND event_id = $1",
            fate.contact_id,
        )
        == 1
    )
    # Another system may use the same reference for something else: not a duplicate.
    other = await intake.send(INBOUND_REFERRALS, payload, source="urn:test:other-portal")
    assert (await intake.fate(INBOUND_REFERRALS, *other)).kind == "contact"
    text = intake.metrics()
    line = next(
        ln
        for ln in text.splitlines()
        if ln.startswith("mash_duplicates_skipped_total") and INBOUND_REFERRALS in ln
    )
    assert float(line.rsplit(" ", 1)[1]) >= 2


async def test_a_multi_child_referral_carries_every_child(intake: IntakeUnderTest) -> None:
    home = {"line1": "4 Sibling Row", "postcode": ex.POSTCODE_SOUTH}
    payload = Referral.model_validate(
        ex.referral(
            referral_id="MULTI-1",
            children=[
                ex.child(child_ref="M1", nhs_number=None, family_name="Multi", address=home),
                ex.child(
                    child_ref="M2",
                    nhs_number=None,
                    family_name="Multi",
                    given_name="Testsibling",
                    date_of_birth="2021-02-03",
                    address=home,
                ),
            ],
        )
    )
    fate = await intake.fate(INBOUND_REFERRALS, *await intake.send(INBOUND_REFERRALS, payload))
    assert fate.contact_id is not None
    contact = await intake.contact(fate.contact_id)
    children = contact["children"]
    assert [c["child_ref"] for c in children] == ["M1", "M2"]
    assert len({c["subject_id"] for c in children}) == 2
    assert children[0]["household_key"] == children[1]["household_key"]
    assert contact["subject_key"] == children[0]["household_key"], "keyed by household"
    assert contact["hub"] == "east-south"


async def _contact_for(
    intake: IntakeUnderTest, topic: str, payload: PoliceNotification | Referral, **kw: Any
) -> dict[str, Any]:
    fate = await intake.fate(topic, *await intake.send(topic, payload, **kw))
    assert fate.kind == "contact"
    assert fate.contact_id is not None
    return await intake.contact(fate.contact_id)


def police(ref: str, occurred: str, **child: Any) -> PoliceNotification:
    return PoliceNotification.model_validate(
        ex.police_notification(
            notification_id=ref,
            occurred_at=occurred,
            reported_at=occurred,
            children=[ex.police_child(**child)],
        )
    )


def school(ref: str, received: str, **child: Any) -> Referral:
    return Referral.model_validate(
        ex.referral(referral_id=ref, received_at=received, children=[ex.child(**child)])
    )


async def test_same_child_same_incident_date_through_another_channel_is_linked(
    intake: IntakeUnderTest,
) -> None:
    nhs = {"nhs_number": "9990002002", "child_ref": "L1"}
    first = await _contact_for(
        intake,
        INBOUND_POLICE,
        police("LINK-P-1", "2025-06-02T21:00:00+01:00", **nhs),
        source="urn:police:west-midlands:niche",
    )
    # The school reports the same child the next morning... a different date: not linked.
    next_day = await _contact_for(
        intake,
        INBOUND_REFERRALS,
        school("LINK-S-0", "2025-06-03T09:00:00+01:00", **nhs),
        source="urn:council:portal",
    )
    assert next_day["linked_contact_ids"] == []
    # ...and the same day: linked to the police contact.
    same_day = await _contact_for(
        intake,
        INBOUND_REFERRALS,
        school("LINK-S-1", "2025-06-02T23:30:00+01:00", **nhs),
        source="urn:council:portal",
    )
    assert same_day["linked_contact_ids"] == [first["contact_id"]]
    # The same incident told by another channel is linked, not a re-referral (the school's
    # report of the police's incident used to lift neglect to R3-NEGLECT).
    assert same_day["re_referral"] is False
    # A different child on the same date is not linked.
    other_child = await _contact_for(
        intake,
        INBOUND_REFERRALS,
        school("LINK-S-2", "2025-06-02T23:40:00+01:00", nhs_number="9990002010", child_ref="L2"),
        source="urn:council:portal",
    )
    assert other_child["linked_contact_ids"] == []
    # A second police notification from the same system the same day: same channel, not linked.
    same_channel = await _contact_for(
        intake,
        INBOUND_POLICE,
        police("LINK-P-2", "2025-06-02T22:00:00+01:00", **nhs),
        source="urn:police:west-midlands:niche",
    )
    assert same_channel["linked_contact_ids"] == [same_day["contact_id"]]


async def test_demographic_matching_links_without_an_nhs_number(intake: IntakeUnderTest) -> None:
    child = {
        "nhs_number": None,
        "family_name": "O'Matchwell",
        "date_of_birth": "2018-01-09",
        "address": {"line1": "7 Match Street", "postcode": "B8 1AA"},
        "child_ref": "D1",
    }
    a = await _contact_for(
        intake, INBOUND_REFERRALS, school("DEMO-1", "2025-01-10T10:00:00+00:00", **child)
    )
    b = await _contact_for(
        intake,
        INBOUND_REFERRALS,
        school(
            "DEMO-2",
            "2025-02-10T10:00:00+00:00",
            **{
                **child,
                "family_name": "omatchwell",
                "address": {"line1": "7 match st", "postcode": "b81aa"},
            },
        ),
    )
    assert a["children"][0]["subject_id"] == b["children"][0]["subject_id"]
    assert b["re_referral"] is True
    near_miss = await _contact_for(
        intake,
        INBOUND_REFERRALS,
        school("DEMO-3", "2025-02-11T10:00:00+00:00", **{**child, "date_of_birth": "2018-01-10"}),
    )
    assert near_miss["children"][0]["subject_id"] != a["children"][0]["subject_id"]
    assert near_miss["re_referral"] is False


async def test_re_referral_looks_back_twelve_months(intake: IntakeUnderTest) -> None:
    nhs = {"nhs_number": "9990002029", "child_ref": "RR"}
    start = datetime(2024, 1, 15, 10, tzinfo=UTC)
    first = await _contact_for(intake, INBOUND_REFERRALS, school("RR-1", start.isoformat(), **nhs))
    assert first["re_referral"] is False
    later = start + timedelta(days=400)
    second = await _contact_for(intake, INBOUND_REFERRALS, school("RR-2", later.isoformat(), **nhs))
    assert second["re_referral"] is False, "more than 12 months after the last contact"
    third = await _contact_for(
        intake, INBOUND_REFERRALS, school("RR-3", (later + timedelta(days=90)).isoformat(), **nhs)
    )
    assert third["re_referral"] is True


async def test_open_case_flag_follows_open_queue_items(intake: IntakeUnderTest) -> None:
    nhs = {"nhs_number": "9990002037", "child_ref": "OC"}
    first = await _contact_for(
        intake, INBOUND_REFERRALS, school("OC-1", "2025-03-01T10:00:00+00:00", **nhs)
    )
    assert first["open_case"] is False
    subject = first["children"][0]["subject_id"]
    # Routing's record of an open s47 item for this child (written as routing would).
    await fetchval(
        intake.world.dsn,
        """
        INSERT INTO queue_items (queue_item_id, contact_id, decision_id, subject_id, hub, queue,
            outcome, rag, status, deadlines, open_case_update, routed_at)
        VALUES ('qi-open-1', $1, 'd-1', $2, 'east-south', 's47', 's47', 'red', 'open', '{}',
                false, now())
        RETURNING 1
        """,
        first["contact_id"],
        subject,
    )
    second = await _contact_for(
        intake, INBOUND_REFERRALS, school("OC-2", "2025-03-02T10:00:00+00:00", **nhs)
    )
    assert second["open_case"] is True
    await fetchval(intake.world.dsn, "UPDATE queue_items SET status = 'closed' RETURNING 1")
    third = await _contact_for(
        intake, INBOUND_REFERRALS, school("OC-3", "2025-03-03T10:00:00+00:00", **nhs)
    )
    assert third["open_case"] is False


async def test_the_system_of_record_keeps_raw_bytes_children_and_an_audit_trail(
    intake: IntakeUnderTest,
) -> None:
    payload = Referral.model_validate(ex.referral(referral_id="SOR-1"))
    partition, offset = await intake.send(INBOUND_REFERRALS, payload, event_id="sor-event-1")
    fate = await intake.fate(INBOUND_REFERRALS, partition, offset)
    dsn = intake.world.dsn
    raw = await fetchval(
        dsn, "SELECT value FROM raw_payloads WHERE contact_id = $1", fate.contact_id
    )
    assert Referral.model_validate_json(raw) == payload
    assert (
        await fetchval(
            dsn, "SELECT match_basis FROM contact_children WHERE contact_id = $1", fate.contact_id
        )
        == "nhs_number"
    )
    assert (
        await fetchval(
            dsn,
            "SELECT count(*) FROM audit_log WHERE entity_id = $1 AND action = 'recorded'",
            fate.contact_id,
        )
        == 1
    )
    assert (
        await fetchval(dsn, "SELECT outcome FROM processed_events WHERE event_id = 'sor-event-1'")
        == "applied"
    )


async def test_the_dash_score_and_the_consent_or_lawful_basis_are_recorded(
    intake: IntakeUnderTest,
) -> None:
    # Item 11 of the domain issue: validated and then dropped before.
    police = PoliceNotification.model_validate(
        ex.police_notification(notification_id="KEEP-1", dash_score=19)
    )
    without_consent = Referral.model_validate(
        ex.referral(
            referral_id="KEEP-2",
            consent={"obtained": False, "override_reason": "prejudice_to_investigation"},
        )
    )
    with_consent = Referral.model_validate(
        ex.referral(referral_id="KEEP-3", consent={"obtained": True})
    )
    recorded = {}
    for topic, payload in (
        (INBOUND_POLICE, police),
        (INBOUND_REFERRALS, without_consent),
        (INBOUND_REFERRALS, with_consent),
    ):
        partition, offset = await intake.send(topic, payload)
        fate = await intake.fate(topic, partition, offset)
        recorded[fate.contact_id] = await fetch(
            intake.world.dsn,
            "SELECT dash_score, consent_obtained, consent_override_reason FROM contacts"
            " WHERE contact_id = $1",
            fate.contact_id,
        )
    assert [tuple(rows[0]) for rows in recorded.values()] == [
        (19, None, None),
        (None, False, "prejudice_to_investigation"),
        (None, True, None),
    ]


async def test_intake_records_contacts_at_the_time_its_clock_says(
    stack: Stack, tmp_path: Path
) -> None:
    """Every service reads "now" from the runtime's clock, so a test fixes and moves it
    (``MASH_CLOCK_FILE``) as routing's tests always could."""
    now = datetime(2025, 6, 3, 9, 0, tzinfo=UTC)
    clocked = await IntakeUnderTest.start(stack, tmp_path, now=now)
    try:
        recorded = []
        for n, at in enumerate((now, now + timedelta(days=2))):
            clocked.set_clock(at)
            payload = Referral.model_validate(ex.referral(referral_id=f"CLOCK-{n}"))
            partition, offset = await clocked.send(INBOUND_REFERRALS, payload)
            fate = await clocked.fate(INBOUND_REFERRALS, partition, offset)
            assert fate.contact_id is not None
            contact = await clocked.contact(fate.contact_id)
            recorded.append(datetime.fromisoformat(contact["recorded_at"]))
        assert recorded == [now, now + timedelta(days=2)]
    finally:
        await clocked.stop()
