"""Migrations and the transactional outbox against the real PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from schemas import examples as ex
from schemas.events import Feedback
from services.common.db import apply_migrations, migration_files
from services.common.health import Bounds, HealthState
from services.common.kafka import ensure_topics
from services.common.metrics import ServiceMetrics
from services.common.outbox import OutboxRelay, enqueue_rows, outbox_row
from services.common.settings import Settings
from services.common.topics import TopicSpec, feedback_topic
from tests.support import Isolated, Stack, fetchval, isolated_world, read_topic, wait_until

if TYPE_CHECKING:
    from services.common.db import Connection

pytestmark = pytest.mark.integration


async def enqueue_feedback(conn: Connection, topic: str, event: Feedback, event_id: str) -> bool:
    """Enqueue ``event`` for agency-1 under ``event_id`` in the caller's transaction."""
    row = outbox_row(
        service="test",
        topic=topic,
        key="agency-1",
        event_id=event_id,
        data=event,
        time=datetime.now(UTC),
    )
    return bool(await enqueue_rows(conn, "test", [row]))


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
    topic = world.topics(feedback_topic("police"))
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
                assert await enqueue_feedback(conn, topic, e, e.feedback_id)
            # Same id again in the same topic: not enqueued twice.
            assert not await enqueue_feedback(conn, topic, events[0], events[0].feedback_id)
        # A rolled-back transaction leaves nothing to publish.
        async with pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            await enqueue_feedback(conn, topic, events[0], "rolled-back")
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


async def test_a_relay_the_broker_refuses_is_not_ready_replaces_its_producer_and_recovers(
    world: Isolated,
) -> None:
    """A failure the producer cannot get past (here the broker refuses the record as too
    large for its topic) makes the relay fail its readiness check and start again with a
    fresh producer each attempt; once the broker accepts, the rows go out by themselves."""
    topic = world.topics("relay-refused")
    await ensure_topics(
        [world.stack.bootstrap], [TopicSpec(topic, 1, {"max.message.bytes": "200"})]
    )
    event = Feedback.model_validate({**ex.feedback(), "feedback_id": "fb-refused"})
    health = HealthState(Bounds.from_settings(Settings()))
    pool = await asyncpg.create_pool(world.dsn)
    relay = OutboxRelay(
        service="test",
        pool=pool,
        bootstrap_servers=[world.stack.bootstrap],
        metrics=ServiceMetrics("test"),
        poll_seconds=0.2,
        retry_max_seconds=0.5,
        publish_timeout=10.0,
        health=health,
    )
    running = asyncio.get_running_loop().create_task(relay.run())
    try:
        async with pool.acquire() as conn, conn.transaction():
            await enqueue_feedback(conn, topic, event, event.feedback_id)
        relay.notify()

        async def refused_twice() -> bool:
            return health.relay.failing_since is not None and relay.producers_created >= 2

        await wait_until(refused_twice, timeout=60, what="the relay to fail and retry")
        assert health.relay.error == "MessageSizeTooLargeError"
        assert not health.readiness().checks["outbox_relay"].ok
        admin = AIOKafkaAdminClient(bootstrap_servers=world.stack.bootstrap)
        await admin.start()
        try:
            await admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": "1048576"})]
            )
        finally:
            await admin.close()

        async def published() -> bool:
            return health.relay.failing_since is None and await relay.pending_count() == 0

        await wait_until(published, timeout=60, what="the relay to publish by itself")
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await relay.stop()
        await pool.close()
    records = await read_topic(world.stack.bootstrap, topic)
    assert [r.headers["ce_id"] for r in records] == [event.feedback_id]
