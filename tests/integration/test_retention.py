"""``mash purge`` against the real PostgreSQL: raw payloads, dead-letter contents and
published outbox contents past their retention go, younger ones and unpublished rows stay,
a dry run changes nothing, a second run purges nothing, two runs at once share the work,
and each run leaves one audit row. The purge runs as the retention job's own database role
(``mash_retention``), which may do exactly that."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from mash.retention import AUDIT_ENTITY, purge
from services.common.settings import load_settings
from tests.support import REPO, Isolated, Stack, fetch, fetchval, fresh_database, run_mash

pytestmark = pytest.mark.integration

#: Every expired kind gets this many rows, more than a batch, so batching is exercised.
OLD = 5
YOUNG = 2
BATCH = 2


@dataclass(frozen=True)
class Seeded:
    """A database holding old and young rows of every kind ``mash purge`` looks at."""

    dsn: str
    world: Isolated


async def seed(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """Old and young raw payloads, dead letters with their outbox rows, other published
    events, and unpublished rows (old, but the relay's: never purged)."""
    ages = [("old", 40)] * OLD + [("young", 1)] * YOUNG
    for n, (kind, days) in enumerate(ages):
        contact = f"c-{kind}-{n}"
        await conn.execute(
            """
            INSERT INTO contacts (contact_id, contact_reference, source_kind, source_system,
                source_reference, source_event_id, agency_id, referral_source, hub,
                out_of_area, subject_key, received_at, recorded_at)
            VALUES ($1, $1, 'referral', 'test', $1, $1, 'agency', '3', 'hub', false, $1,
                now() - make_interval(days => $2), now() - make_interval(days => $2))
            """,
            contact,
            days,
        )
        await conn.execute(
            "INSERT INTO raw_payloads (contact_id, event_id, value, headers, stored_at)"
            " VALUES ($1, $1, 'Markname personal bytes', '[]', now() - make_interval(days => $2))",
            contact,
            days,
        )
        letter = f"dl-{kind}-{n}"
        await conn.execute(
            """
            INSERT INTO dead_letters (dead_letter_id, service, original_topic, "partition",
                "offset", reason, errors, at)
            VALUES ($1, 'intake', 'mash.inbound.referrals.v1', 0, $2, 'schema_violation',
                '[{"path": "children.0.date_of_birth", "message": "expected an ISO date"}]',
                now() - make_interval(days => $3))
            """,
            letter,
            n,
            days,
        )
        for event_id, topic in (
            (letter, "mash.deadletter.v1"),
            (f"ev-{kind}-{n}", "mash.contacts.v1"),
        ):
            await conn.execute(
                """
                INSERT INTO outbox (service, event_id, topic, key, value, headers, created_at,
                    published_at)
                VALUES ('intake', $1, $2, 'k', 'Markname personal bytes',
                    '[["ce_id", "x"]]', now() - make_interval(days => $3),
                    now() - make_interval(days => $3))
                """,
                event_id,
                topic,
                days,
            )
    # Old but never published: the relay still has to send them.
    for n in range(2):
        await conn.execute(
            "INSERT INTO outbox (service, event_id, topic, key, value, headers, created_at)"
            " VALUES ('intake', $1, 'mash.contacts.v1', 'k', 'Markname pending', '[]',"
            " now() - interval '90 days')",
            f"pending-{n}",
        )


async def state(dsn: str) -> dict[str, list[str]]:
    """What is left: raw payloads by contact, outbox rows still holding their contents."""
    return {
        "raw": sorted(
            r["contact_id"] for r in await fetch(dsn, "SELECT contact_id FROM raw_payloads")
        ),
        "full": sorted(
            r["event_id"]
            for r in await fetch(dsn, "SELECT event_id FROM outbox WHERE octet_length(value) > 0")
        ),
        "blank": sorted(
            r["event_id"]
            for r in await fetch(
                dsn,
                "SELECT event_id FROM outbox WHERE octet_length(value) = 0 AND headers = '[]'",
            )
        ),
        "letters": sorted(
            r["dead_letter_id"] for r in await fetch(dsn, "SELECT dead_letter_id FROM dead_letters")
        ),
    }


@pytest.fixture
async def seeded(stack: Stack) -> Seeded:
    """A fresh, migrated database with the rows of :func:`seed`."""
    dsn = await fresh_database(stack)
    conn = await asyncpg.connect(dsn)
    try:
        await seed(conn)
    finally:
        await conn.close()
    # run_mash wants a world; purge reads only DATABASE_URL from it.
    return Seeded(dsn, Isolated(stack, "unused.", dsn))


def purge_env(seeded: Seeded) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": seeded.world.role_dsn("mash_retention"),
        "MASH_PURGE_BATCH_SIZE": str(BATCH),
        "PYTHONPATH": str(REPO),
    }


async def audit_rows(dsn: str) -> list[dict[str, object]]:
    rows = await fetch(
        dsn,
        "SELECT service, action, actor, detail FROM audit_log WHERE entity_type = $1 ORDER BY id",
        AUDIT_ENTITY,
    )
    return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]


async def test_purge_removes_expired_contents_only_and_a_second_run_removes_nothing(
    seeded: Seeded, tmp_path: Path
) -> None:
    before = await state(seeded.dsn)
    assert len(before["raw"]) == OLD + YOUNG

    dry = run_mash(seeded.world, tmp_path, "purge", "--dry-run", env=purge_env(seeded))
    assert dry.returncode == 0, dry.stderr
    assert f"raw payloads: {OLD} would be deleted (older than 30 days" in dry.stdout
    assert f"dead-letter contents: {OLD} would be blanked" in dry.stdout
    assert f"published event contents: {OLD} would be blanked (older than 7 days" in dry.stdout
    assert await state(seeded.dsn) == before
    assert await audit_rows(seeded.dsn) == []

    first = run_mash(seeded.world, tmp_path, "purge", "--by", "dpo-1", env=purge_env(seeded))
    assert first.returncode == 0, first.stderr
    assert f"raw payloads: {OLD} deleted" in first.stdout
    assert f"dead-letter contents: {OLD} blanked" in first.stdout
    assert f"published event contents: {OLD} blanked" in first.stdout
    after = await state(seeded.dsn)
    young = range(OLD, OLD + YOUNG)
    assert after["raw"] == sorted(f"c-young-{n}" for n in young)
    assert after["full"] == sorted(
        [f"dl-young-{n}" for n in young]
        + [f"ev-young-{n}" for n in young]
        + ["pending-0", "pending-1"]
    )
    assert after["blank"] == sorted(
        [f"dl-old-{n}" for n in range(OLD)] + [f"ev-old-{n}" for n in range(OLD)]
    )
    # The dead letters themselves stay: where, why and when are the audit trail.
    assert after["letters"] == before["letters"]
    (audit,) = await audit_rows(seeded.dsn)
    assert audit["service"] == "mash-cli"
    assert audit["action"] == "purged"
    assert audit["actor"] == "dpo-1"
    detail = audit["detail"]
    assert isinstance(detail, dict)
    assert detail["raw_payload_retention_days"]["deleted"] == OLD
    assert detail["raw_payload_retention_days"]["batches"] == -(-OLD // BATCH)
    assert detail["dead_letter_retention_days"]["blanked"] == OLD
    assert detail["outbox_retention_days"]["blanked"] == OLD
    assert "Markname" not in json.dumps(detail)

    second = run_mash(seeded.world, tmp_path, "purge", "--json", env=purge_env(seeded))
    assert second.returncode == 0, second.stderr
    counts = {k: v["rows"] for k, v in json.loads(second.stdout)["purged"].items()}
    assert set(counts.values()) == {0}
    assert await state(seeded.dsn) == after
    assert len(await audit_rows(seeded.dsn)) == 2  # one row per run, also an idle one


async def test_runs_at_once_share_the_rows_without_waiting_or_double_counting(
    seeded: Seeded,
) -> None:
    retention = seeded.world.role_dsn("mash_retention")
    settings = load_settings(database_url=retention, purge_batch_size=1)
    conns = [await asyncpg.connect(retention) for _ in range(3)]
    try:
        runs = await asyncio.gather(*(purge(c, settings, dry_run=False) for c in conns))
    finally:
        for conn in conns:
            await conn.close()
    totals: dict[str, int] = {}
    for run in runs:
        for purged in run:
            totals[purged.target.name] = totals.get(purged.target.name, 0) + purged.rows
    assert totals == {
        "raw payloads": OLD,
        "dead-letter contents": OLD,
        "published event contents": OLD,
    }
    assert await fetchval(seeded.dsn, "SELECT count(*) FROM raw_payloads") == YOUNG
    assert len(await audit_rows(seeded.dsn)) == 3
