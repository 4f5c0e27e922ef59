"""Migrations and the transactional outbox against the real PostgreSQL and Kafka."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from schemas import examples as ex
from schemas.events import Feedback
from services.common.db import apply_migrations, migration_files
from services.common.metrics import ServiceMetrics
from services.common.outbox import OutboxRelay, enqueue_event
from tests.support import Isolated, Stack, fetchval, isolated_world, read_topic

pytestmark = pytest.mark.integration


@pytest.fixture
async def world(stack: Stack) -> Isolated:
    return await isolated_world(stack)


async def test_migrations_apply_once_in_order_and_are_recorded(world: Isolated) -> None:
    conn = await asyncpg.connect(world.dsn)
    try:
        # isolated_world applied them already: a second run applies nothing.
        assert await apply_migrations(conn) == []
        versions = [
            r["version"]
            for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        ]
        assert versions == [v for v, _ in migration_files()]
    finally:
        await conn.close()


async def test_an_edited_migration_is_refused(world: Isolated) -> None:
    conn = await asyncpg.connect(world.dsn)
    try:
        await conn.execute("UPDATE schema_migrations SET checksum = 'changed'")
        with pytest.raises(RuntimeError, match="edited after being applied"):
            await apply_migrations(conn)
    finally:
        await conn.close()


async def test_the_relay_publishes_committed_events_in_order_exactly_once(world: Isolated) -> None:
    topic = world.topics("mash.feedback.v1")
    events = [
        Feedback.model_validate({**ex.feedback(), "feedback_id": f"fb-{n}"}) for n in range(5)
    ]
    pool = await asyncpg.create_pool(world.dsn)
    relay = OutboxRelay(
        service="test",
        pool=pool,
        bootstrap_servers=[world.stack.bootstrap],
        metrics=ServiceMetrics("test"),
    )
    try:
        async with pool.acquire() as conn, conn.transaction():
            for e in events:
                assert await enqueue_event(
                    conn,
                    service="test",
                    topic=topic,
                    key="agency-1",
                    event_id=e.feedback_id,
                    data=e,
                    time=datetime.now(UTC),
                )
            # Same id again in the same topic: not enqueued twice.
            assert not await enqueue_event(
                conn,
                service="test",
                topic=topic,
                key="agency-1",
                event_id=events[0].feedback_id,
                data=events[0],
                time=datetime.now(UTC),
            )
        # A rolled-back transaction leaves nothing to publish.
        async with pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            await enqueue_event(
                conn,
                service="test",
                topic=topic,
                key="agency-1",
                event_id="rolled-back",
                data=events[0],
                time=datetime.now(UTC),
            )
            await tx.rollback()
        assert await relay.publish_pending() == 5
        assert await relay.publish_pending() == 0
        assert await relay.pending_count() == 0
    finally:
        await relay.stop()
        await pool.close()
    records = await read_topic(world.stack.bootstrap, topic)
    assert [r.headers["ce_id"] for r in records] == [e.feedback_id for e in events]
    assert {r.key for r in records} == {b"agency-1"}
    assert all(r.headers["ce_type"] == "uk.gov.mash.feedback.v1" for r in records)
    assert (
        await fetchval(world.dsn, "SELECT count(*) FROM outbox WHERE published_at IS NOT NULL") == 5
    )
