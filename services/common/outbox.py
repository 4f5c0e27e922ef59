"""Transactional outbox: the one way every service produces events.

A service writes its business rows and the events they cause in one PostgreSQL
transaction (:func:`enqueue_event`). The :class:`OutboxRelay` publishes unpublished rows
in order with an idempotent ``acks=all`` producer and marks them published. A crash at any
instant therefore loses nothing; it may publish a row twice, which consumers absorb by
de-duplicating on ``ce_id``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer

from schemas.base import ContractModel
from schemas.cloudevents import encode_binary
from services.common.metrics import ServiceMetrics

if TYPE_CHECKING:
    from services.common.db import Connection

log = structlog.get_logger(__name__)

#: ce_source of every event this product emits.
PRODUCT_SOURCE = "urn:mash-router"


def _headers_to_json(headers: Sequence[tuple[str, bytes | None]]) -> str:
    return json.dumps(
        [[k, None if v is None else base64.b64encode(v).decode("ascii")] for k, v in headers]
    )


def _headers_from_json(raw: str | list[list[str | None]]) -> list[tuple[str, bytes]]:
    items = json.loads(raw) if isinstance(raw, str) else raw
    return [(str(k), b"" if v is None else base64.b64decode(v)) for k, v in items]


async def enqueue_event(
    conn: Connection,
    *,
    service: str,
    topic: str,
    key: str | None,
    event_id: str,
    data: ContractModel,
    time: datetime,
    subject: str | None = None,
) -> bool:
    """Add one CloudEvent (binary mode) to the outbox inside the caller's transaction.

    Returns False when an event with the same id was already enqueued for ``topic``.
    """
    value, headers = encode_binary(
        event_id=event_id,
        source=f"{PRODUCT_SOURCE}:{service}",
        data=data,
        time=time,
        subject=subject,
    )
    row = await conn.fetchval(
        """
        INSERT INTO outbox (service, event_id, topic, key, value, headers)
        VALUES ($1, $2, $3, $4, $5, $6::jsonb)
        ON CONFLICT (topic, event_id) DO NOTHING
        RETURNING id
        """,
        service,
        event_id,
        topic,
        None if key is None else key.encode(),
        value,
        _headers_to_json(headers),
    )
    return row is not None


class OutboxRelay:
    """Publishes a service's outbox rows to Kafka, in id order, and marks them published."""

    def __init__(
        self,
        *,
        service: str,
        pool: asyncpg.Pool,
        bootstrap_servers: list[str],
        metrics: ServiceMetrics,
        batch_size: int = 200,
        poll_seconds: float = 1.0,
        retry_max_seconds: float = 30.0,
    ) -> None:
        self.service = service
        self.pool = pool
        self.bootstrap_servers = bootstrap_servers
        self.metrics = metrics
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.retry_max_seconds = retry_max_seconds
        self.wakeup = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None

    def notify(self) -> None:
        """Wake the relay now (called after a transaction that enqueued events commits)."""
        self.wakeup.set()

    async def _producer_started(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap_servers,
                acks="all",
                enable_idempotence=True,
                linger_ms=5,
            )
            await producer.start()
            self._producer = producer
        return self._producer

    async def publish_pending(self) -> int:
        """Publish one batch of pending rows; return how many were published."""
        producer = await self._producer_started()
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """
                SELECT id, topic, key, value, headers FROM outbox
                WHERE service = $1 AND published_at IS NULL
                ORDER BY id
                LIMIT $2
                FOR UPDATE SKIP LOCKED
                """,
                self.service,
                self.batch_size,
            )
            if not rows:
                return 0
            # Send all, then wait for all: batching keeps the relay fast while acks=all
            # plus idempotence keeps per-partition order.
            futures = [
                await producer.send(
                    r["topic"],
                    value=bytes(r["value"]),
                    key=None if r["key"] is None else bytes(r["key"]),
                    headers=_headers_from_json(r["headers"]),
                )
                for r in rows
            ]
            await asyncio.gather(*futures)
            await conn.execute(
                "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])",
                [r["id"] for r in rows],
            )
        for r in rows:
            self.metrics.outbox_published.labels(topic=r["topic"]).inc()
        return len(rows)

    async def pending_count(self) -> int:
        """Rows of this service still waiting to be published."""
        async with self.pool.acquire() as conn:
            count: int = await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE service = $1 AND published_at IS NULL",
                self.service,
            )
        return count

    async def run(self) -> None:
        """Publish forever: on wake-up, and every ``poll_seconds`` as a fallback."""
        delay = 0.5
        while True:
            # Clear before publishing: a notify() that lands mid-batch keeps the flag set.
            self.wakeup.clear()
            try:
                while await self.publish_pending() == self.batch_size:
                    pass
                self.metrics.outbox_pending.set(await self.pending_count())
                delay = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker or database down: back off, never give up
                self.metrics.retries.labels(stage="outbox").inc()
                log.warning(
                    "outbox_publish_failed", error_type=type(exc).__name__, delay_seconds=delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_seconds)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), timeout=self.poll_seconds)

    async def stop(self) -> None:
        """Flush and close the producer."""
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
