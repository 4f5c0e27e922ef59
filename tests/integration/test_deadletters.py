"""``mash deadletters`` against the real broker, database and a running intake: bad
referrals are dead-lettered by intake, then found, read, refused unchanged, corrected and
redriven by the command, and intake records the corrected contact exactly once."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mash.redrive import redrive_id
from schemas import examples as ex
from services.common.ids import derive_id
from services.common.topics import DEAD_LETTER, INBOUND_REFERRALS
from tests.integration.intake_harness import IntakeUnderTest
from tests.support import MASH, Record, fetch, fetchval, mash_env, read_messages

pytestmark = pytest.mark.integration

REFERRAL_TYPE = "uk.gov.mash.referral.v1"


def headers(ce_id: str, source: str, drop: str | None = None) -> list[tuple[str, bytes]]:
    """Binary-mode envelope headers, without ``drop`` if named."""
    found = {
        "ce_specversion": b"1.0",
        "ce_id": ce_id.encode(),
        "ce_source": source.encode(),
        "ce_type": REFERRAL_TYPE.encode(),
        "content-type": b"application/json",
    }
    return [(k, v) for k, v in found.items() if k != drop]


def mash(
    intake: IntakeUnderTest, cwd: Path, *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    """``mash deadletters ...`` aimed at intake's world: its broker, prefix and database."""
    env = {**mash_env(intake.world), "DATABASE_URL": intake.world.dsn}
    done = subprocess.run(
        [*MASH, "deadletters", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        timeout=300,
        check=False,
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


def lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


async def dead_letter_on_topic(intake: IntakeUnderTest, dead_letter_id: str) -> Record:
    """Wait until intake's relay has put the dead letter on the topic."""
    records = await intake.records_until(
        DEAD_LETTER, lambda rs: any(r.headers.get("ce_id") == dead_letter_id for r in rs)
    )
    return next(r for r in records if r.headers.get("ce_id") == dead_letter_id)


async def dead_lettered(intake: IntakeUnderTest, coordinates: tuple[int, int], reason: str) -> str:
    """Wait until intake dead-lettered the record with ``reason``; its dead letter id."""
    fate = await intake.fate(INBOUND_REFERRALS, *coordinates)
    assert (fate.kind, fate.reason) == ("dead_letter", reason)
    dead_letter_id = derive_id("dead-letter", intake.world.topics(INBOUND_REFERRALS), *coordinates)
    await dead_letter_on_topic(intake, dead_letter_id)
    return dead_letter_id


async def redriven_records(intake: IntakeUnderTest, dead_letter_id: str) -> list[Record]:
    return [
        r
        for r in await intake.topic(INBOUND_REFERRALS)
        if r.headers.get("mash_redrive_of") == dead_letter_id
    ]


async def audit_rows(intake: IntakeUnderTest, dead_letter_id: str) -> list[Any]:
    return await fetch(
        intake.world.dsn,
        "SELECT actor, detail FROM audit_log WHERE entity_type = 'dead_letter'"
        " AND entity_id = $1 AND action = 'redriven' ORDER BY id",
        dead_letter_id,
    )


async def contact_for(intake: IntakeUnderTest, event_id: str) -> str:
    """Wait until intake recorded a contact from the event with this id; its reference."""

    async def look() -> str | None:
        found = await fetchval(
            intake.world.dsn,
            "SELECT source_reference FROM contacts WHERE source_event_id = $1",
            event_id,
        )
        return None if found is None else str(found)

    return await intake.wait(look, 60, f"a contact from event {event_id}")


async def test_find_read_fix_and_redrive_a_schema_violation(
    intake: IntakeUnderTest, tmp_path: Path
) -> None:
    world = intake.world
    bad = json.dumps(ex.referral(referral_id="DLR-1", favourite_colour="blue")).encode()
    unreadable = await intake.send_raw(
        INBOUND_REFERRALS, bad, headers("dlr-1", "urn:test:school-a"), key=b"DLR-1"
    )
    no_type = await intake.send_raw(
        INBOUND_REFERRALS,
        json.dumps(ex.referral(referral_id="DLR-2")).encode(),
        headers("dlr-2", "urn:test:gp-b", drop="ce_type"),
        key=b"DLR-2",
    )
    schema_id = await dead_lettered(intake, unreadable, "schema_violation")
    header_id = await dead_lettered(intake, no_type, "missing_header")
    # The relay may re-send a dead letter after a crash: the copy must be listed once.
    [copy] = [
        m
        for m in await read_messages(world.stack.bootstrap, world.topics(DEAD_LETTER))
        if dict(m.headers).get("ce_id") == schema_id.encode()
    ]
    await intake.send_raw(DEAD_LETTER, copy.value, list(copy.headers), key=copy.key)
    await intake.records_until(
        DEAD_LETTER, lambda rs: sum(r.headers.get("ce_id") == schema_id for r in rs) == 2
    )

    # Find.
    listed = mash(intake, tmp_path, "list", "--reason", "schema_violation", "--json")
    assert listed.returncode == 0, listed.stderr
    [row] = lines(listed.stdout)
    assert {k: v for k, v in row.items() if k not in ("at", "first_error")} == {
        "id": schema_id,
        "reason": "schema_violation",
        "original_topic": world.topics(INBOUND_REFERRALS),
        "partition": unreadable[0],
        "offset": unreadable[1],
        "source": "urn:test:school-a",
    }
    assert row["first_error"]["path"] == "favourite_colour"
    assert datetime.fromisoformat(row["at"]) <= datetime.now(UTC)
    by_source = mash(intake, tmp_path, "list", "--source", "urn:test:gp-b", "--json")
    assert [(r["id"], r["reason"]) for r in lines(by_source.stdout)] == [
        (header_id, "missing_header")
    ]
    as_table = mash(intake, tmp_path, "list", "--reason", "missing_header")
    assert as_table.returncode == 0, as_table.stderr
    assert header_id in as_table.stdout
    assert schema_id not in as_table.stdout

    # Read.
    errors = json.loads(
        await fetchval(
            world.dsn, "SELECT errors FROM dead_letters WHERE dead_letter_id = $1", schema_id
        )
    )
    shown = mash(intake, tmp_path, "show", schema_id)
    assert shown.returncode == 0, shown.stderr
    for error in errors:
        assert f"  {error['path']}: {error['message']}" in shown.stdout.splitlines()
    assert "  ce_source: urn:test:school-a" in shown.stdout.splitlines()
    assert '"favourite_colour": "blue"' in shown.stdout, "the original value, as text"
    as_json = json.loads(mash(intake, tmp_path, "show", schema_id, "--json").stdout)
    assert as_json["errors"] == errors
    assert json.loads(as_json["value"]["text"]) == json.loads(bad)
    unknown = mash(intake, tmp_path, "show", "no-such-dead-letter")
    assert unknown.returncode == 1
    assert unknown.stderr.splitlines() == [
        f"mash: error: no dead letter no-such-dead-letter on {world.topics(DEAD_LETTER)}"
    ]

    # Unchanged, a schema violation would fail again: refused, nothing sent or audited.
    refused = mash(intake, tmp_path, "redrive", schema_id, "--by", "staff-1")
    assert refused.returncode == 2
    assert len(refused.stderr.splitlines()) == 1
    assert f"refusing to redrive dead letter {schema_id} unchanged" in refused.stderr
    before = len(await intake.topic(INBOUND_REFERRALS))

    # Fix: a dry run shows what would go and sends nothing.
    fixed = tmp_path / "fixed.json"
    fixed.write_bytes(json.dumps(ex.referral(referral_id="DLR-1")).encode())
    new_id = redrive_id(schema_id, 1)
    dry = mash(
        intake, tmp_path, "redrive", schema_id, "--payload", str(fixed), "--by", "staff-1",
        "--dry-run",
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[0].startswith(f"would redrive {schema_id} ")
    assert f"  ce_id: {new_id}" in dry.stdout.splitlines()
    assert await audit_rows(intake, schema_id) == []

    # Redrive: intake records the contact from the new event id.
    sent = mash(intake, tmp_path, "redrive", schema_id, "--payload", str(fixed), "--by", "staff-1")
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.splitlines() == [
        f"redriven {schema_id} to {world.topics(INBOUND_REFERRALS)} as ce_id {new_id}"
        " (attempt 1, payload corrected)"
    ]
    assert await contact_for(intake, new_id) == "DLR-1"
    [record] = await redriven_records(intake, schema_id)
    assert (record.key, record.headers["ce_id"], record.value) == (
        b"DLR-1",
        new_id,
        fixed.read_bytes(),
    )
    assert record.headers["ce_source"] == "urn:test:school-a", "the other headers go back as sent"
    [audit] = await audit_rows(intake, schema_id)
    detail = json.loads(audit["detail"])
    assert audit["actor"] == "staff-1"
    assert (detail["ce_id"], detail["by"], detail["payload_corrected"]) == (
        new_id,
        "staff-1",
        True,
    )

    # The same redrive again: nothing new on the topic, in the audit or in the contacts.
    again = mash(intake, tmp_path, "redrive", schema_id, "--payload", str(fixed), "--by", "staff-2")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"already redriven {schema_id} as ce_id {new_id} (attempt 1,")
    assert len(await intake.topic(INBOUND_REFERRALS)) == before + 1
    assert len(await audit_rows(intake, schema_id)) == 1
    count = await fetchval(
        world.dsn, "SELECT count(*) FROM contacts WHERE source_reference = 'DLR-1'"
    )
    assert count == 1


async def test_a_missing_header_is_redriven_with_the_header_added(
    intake: IntakeUnderTest, tmp_path: Path
) -> None:
    sent = await intake.send_raw(
        INBOUND_REFERRALS,
        json.dumps(ex.referral(referral_id="DLR-4")).encode(),
        headers("dlr-4", "urn:test:gp-c", drop="ce_type"),
        key=b"DLR-4",
    )
    dead_letter_id = await dead_lettered(intake, sent, "missing_header")
    fixed = mash(
        intake, tmp_path, "redrive", dead_letter_id, "--header", f"ce_type={REFERRAL_TYPE}",
        "--by", "staff-3",
    )  # fmt: skip
    assert fixed.returncode == 0, fixed.stderr
    assert "(attempt 1, payload unchanged, headers corrected: ce_type)" in fixed.stdout
    assert await contact_for(intake, redrive_id(dead_letter_id, 1)) == "DLR-4"
    [audit] = await audit_rows(intake, dead_letter_id)
    detail = json.loads(audit["detail"])
    assert (detail["payload_corrected"], detail["headers_corrected"]) == (False, ["ce_type"])


async def test_a_structured_event_gets_its_new_id_inside_the_envelope(
    intake: IntakeUnderTest, tmp_path: Path
) -> None:
    envelope = {
        "specversion": "0.3",
        "id": "dlr-3",
        "source": "urn:test:structured",
        "type": REFERRAL_TYPE,
        "time": "2026-01-05T09:00:00+00:00",
        "datacontenttype": "application/json",
        "data": ex.referral(referral_id="DLR-3"),
    }
    sent = await intake.send_raw(
        INBOUND_REFERRALS,
        json.dumps(envelope).encode(),
        [("content-type", b"application/cloudevents+json")],
        key=b"DLR-3",
    )
    dead_letter_id = await dead_lettered(intake, sent, "unsupported_version")
    listed = mash(intake, tmp_path, "list", "--source", "urn:test:structured", "--json")
    assert [r["id"] for r in lines(listed.stdout)] == [dead_letter_id]

    corrected = json.dumps({**envelope, "specversion": "1.0"}).encode()
    done = mash(
        intake, tmp_path, "redrive", dead_letter_id, "--payload", "-", "--by", "staff-2",
        stdin=corrected,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    new_id = redrive_id(dead_letter_id, 1)
    assert await contact_for(intake, new_id) == "DLR-3"
    [record] = await redriven_records(intake, dead_letter_id)
    republished = record.json()
    assert republished["id"] == new_id
    assert {k: v for k, v in republished.items() if k != "id"} == {
        k: v for k, v in json.loads(corrected).items() if k != "id"
    }
    assert "ce_id" not in record.headers, "structured mode: the id is in the envelope only"


async def test_redrive_by_reason_refuses_reasons_that_cannot_succeed_unchanged(
    intake: IntakeUnderTest, tmp_path: Path
) -> None:
    before = len(await intake.topic(INBOUND_REFERRALS))
    refused = mash(intake, tmp_path, "redrive", "--reason", "schema_violation", "--by", "s-1")
    assert refused.returncode == 2
    assert refused.stderr.startswith("mash: error: refusing to redrive every schema_violation")
    nothing = mash(intake, tmp_path, "redrive", "--reason", "unknown_reference", "--by", "s-1")
    assert nothing.returncode == 0, nothing.stderr
    assert nothing.stdout == "nothing to redrive: no dead letter matches\n"
    assert len(await intake.topic(INBOUND_REFERRALS)) == before
