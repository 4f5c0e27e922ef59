"""Transactional outbox: the one way every service produces events.

A service writes its business rows and the events they cause in one PostgreSQL
transaction (:func:`outbox_row` encodes an event, :func:`enqueue_rows` adds a batch). The
:class:`OutboxRelay` publishes unpublished rows in order with an idempotent ``acks=all``
producer and marks them published. A crash at any instant therefore loses nothing; it may
publish a row twice, which consumers absorb by de-duplicating on ``ce_id``."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer

from schemas.base import ContractModel
from schemas.cloudevents import encode_binary
from services.common.kafka_security import PLAINTEXT
from services.common.metrics import ServiceMetrics, stage_label
from services.common.retry import Retry, every
from services.common.topics import DEAD_LETTER_MAX_MESSAGE_BYTES

if TYPE_CHECKING:
    from services.common.db import Connection

log = structlog.get_logger(__name__)

#: ce_source of every event this product emits.
PRODUCT_SOURCE = "urn:mash-router"

#: Largest event the relay sends: the dead-letter topic's limit (it carries originals).
MAX_EVENT_BYTES = DEAD_LETTER_MAX_MESSAGE_BYTES

#: How long a batch may wait for its acknowledgements before readiness says so.
ACK_PATIENCE_SECONDS = 5.0

#: First key of the advisory lock that lets one relay per service publish at a time.
RELAY_LOCK_CLASS = 0x6F757462  # "outb"


def _headers_to_json(headers: Sequence[tuple[str, bytes | None]]) -> str:
    return json.dumps(
        [[k, None if v is None else base64.b64encode(v).decode("ascii")] for k, v in headers]
    )


def _headers_from_json(raw: str | list[list[str | None]]) -> list[tuple[str, bytes]]:
    items = json.loads(raw) if isinstance(raw, str) else raw
    return [(str(k), b"" if v is None else base64.b64decode(v)) for k, v in items]


#: Kafka header carrying when the contact's first inbound record was published (epoch
#: milliseconds). Every event the product emits carries it forward, so each stage can say
#: how long the pipeline took so far (``mash_pipeline_latency_seconds``). Not a ``ce_*``
#: attribute: it describes the delivery, not the event, and readers may ignore it.
INGRESS_HEADER = "mash-ingress-ms"


@dataclass(frozen=True)
class OutboxRow:
    """One event to publish: its topic (full name), key, encoded value and headers."""

    topic: str
    event_id: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def outbox_row(
    *,
    service: str,
    topic: str,
    key: str | None,
    event_id: str,
    data: ContractModel,
    time: datetime,
    subject: str | None = None,
    ingress_ms: int | None = None,
) -> OutboxRow:
    """Encode one CloudEvent (binary mode) as the product's ``service`` emits it."""
    value, headers = encode_binary(
        event_id=event_id,
        source=f"{PRODUCT_SOURCE}:{service}",
        data=data,
        time=time,
        subject=subject,
    )
    if ingress_ms is not None:
        headers.append((INGRESS_HEADER, str(ingress_ms).encode()))
    return OutboxRow(topic, event_id, None if key is None else key.encode(), value, headers)


async def enqueue_rows(conn: Connection, service: str, rows: Sequence[OutboxRow]) -> set[str]:
    """Add ``rows`` to the outbox in one statement, in the caller's transaction and in
    order (ids follow the list, so the relay keeps each key's order). Returns the event
    ids added; a row whose (topic, event id) was enqueued before is left out."""
    seen: set[tuple[str, str]] = set()
    unique = []
    for row in rows:  # first one wins: one statement cannot insert a key twice
        if (row.topic, row.event_id) not in seen:
            seen.add((row.topic, row.event_id))
            unique.append(row)
    if not unique:
        return set()
    added = await conn.fetch(
        """
        INSERT INTO outbox (service, event_id, topic, key, value, headers)
        SELECT $1, r.event_id, r.topic, r.key, r.value, r.headers::jsonb
        FROM unnest($2::text[], $3::text[], $4::bytea[], $5::bytea[], $6::text[])
             WITH ORDINALITY AS r(event_id, topic, key, value, headers, n)
        ORDER BY r.n
        ON CONFLICT (topic, event_id) DO NOTHING
        RETURNING event_id
        """,
        service,
        [r.event_id for r in unique],
        [r.topic for r in unique],
        [r.key for r in unique],
        [r.value for r in unique],
        [_headers_to_json(r.headers) for r in unique],
    )
    return {r["event_id"] for r in added}


class RelayHealth(Protocol):
    """Where the relay reports whether it can publish (the process's health state)."""

    def relay_failing(self, error: str) -> None:
        """A publish attempt failed with ``error`` (an exception class name)."""

    def relay_publishing(self) -> None:
        """A publish attempt succeeded (or there was nothing to publish)."""


class _NoHealth:
    def relay_failing(self, error: str) -> None:
        del error

    def relay_publishing(self) -> None:
        pass


class PublishTimeout(Exception):
    """The broker did not acknowledge a batch in time (down, or the producer is wedged)."""


class OutboxRelay:
    """Publishes a service's outbox rows to Kafka, in id order, and marks them published.

    Why a fresh producer after any Kafka failure: an idempotent producer numbers its
    batches per partition, and after a broker restart the broker may refuse those numbers
    for good (OutOfOrderSequenceNumber, UnknownProducerId, an invalid or fenced epoch, an
    authorization error after a credential rotation). aiokafka keeps the broken state and
    never expires an idempotent batch, so retrying with the same producer can wait or fail
    forever. A new producer gets a new producer id; the rows it sends again are absorbed by
    the consumers' inboxes (``ce_id``). Each attempt is bounded by ``publish_timeout``.

    Why one relay at a time per service (an advisory lock held while a batch is in flight):
    with several workers of a service, two relays publishing different batches at once
    could put a later event for a key on Kafka before an earlier one. Serialised, the
    rows of all workers leave in id order, which for one key is the order they were made.

    ``security``: the producer's connection arguments
    (:func:`services.common.kafka_security.kafka_client_security`).
    """

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
        publish_timeout: float = 30.0,
        health: RelayHealth | None = None,
        security: Mapping[str, Any] = PLAINTEXT,
    ) -> None:
        self.service = service
        self.pool = pool
        self.bootstrap_servers = bootstrap_servers
        self.metrics = metrics
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.retry_max_seconds = retry_max_seconds
        self.publish_timeout = publish_timeout
        self.health: RelayHealth = health or _NoHealth()
        self.security = security
        self.wakeup = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        #: Producers created so far (a new one after every Kafka failure).
        self.producers_created = 0
        self._counted_at = float("-inf")

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
                max_request_size=MAX_EVENT_BYTES,
                request_timeout_ms=int(self.publish_timeout * 1000),
                **self.security,
            )
            try:
                await asyncio.wait_for(producer.start(), self.publish_timeout)
            except BaseException:
                await _discard(producer)
                raise
            self._producer = producer
            self.producers_created += 1
        return self._producer

    async def _send_all(self, rows: Sequence[asyncpg.Record]) -> None:
        """Send every row, then wait for every acknowledgement; raise the first failure."""
        producer = await self._producer_started()
        # Send all, then wait for all: batching keeps the relay fast while acks=all plus
        # idempotence keeps per-partition order.
        futures = [
            await producer.send(
                r["topic"],
                value=bytes(r["value"]),
                key=None if r["key"] is None else bytes(r["key"]),
                headers=_headers_from_json(r["headers"]),
            )
            for r in rows
        ]
        # return_exceptions: every future is awaited, so none logs "never retrieved".
        results = await asyncio.gather(*futures, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def publish_pending(self) -> int:
        """Publish one batch of pending rows; return how many were published.

        Raises on any failure, after replacing the producer when Kafka was the cause.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))", RELAY_LOCK_CLASS, self.service
            )
            # Marked in the same statement that reads them: the mark commits only with
            # the acknowledgements (a failed send rolls it back).
            rows = await conn.fetch(
                """
                UPDATE outbox SET published_at = now()
                WHERE id IN (
                    SELECT id FROM outbox
                    WHERE service = $1 AND published_at IS NULL
                    ORDER BY id
                    LIMIT $2
                )
                RETURNING id, topic, key, value, headers
                """,
                self.service,
                self.batch_size,
            )
            if not rows:
                return 0
            rows.sort(key=lambda r: r["id"])  # RETURNING keeps no order; Kafka needs it
            try:
                await self._send_watched(rows)
            except (Exception, asyncio.CancelledError) as exc:
                await self._replace_producer()
                if isinstance(exc, TimeoutError):
                    raise PublishTimeout(f"no acknowledgement in {self.publish_timeout}s") from exc
                raise
        for r in rows:
            self.metrics.outbox_published.labels(topic=r["topic"]).inc()
        return len(rows)

    async def _send_watched(self, rows: Sequence[asyncpg.Record]) -> None:
        """:meth:`_send_all` within ``publish_timeout``; a batch still unacknowledged after
        a few seconds already counts as failing for readiness (a healthy broker answers in
        milliseconds, and the next stage waits meanwhile)."""
        patience = min(ACK_PATIENCE_SECONDS, self.publish_timeout / 2)
        sending = asyncio.ensure_future(self._send_all(rows))
        try:
            done, _ = await asyncio.wait({sending}, timeout=patience)
            if not done:
                self.health.relay_failing("AwaitingAcknowledgement")
                await asyncio.wait_for(sending, self.publish_timeout - patience)
            sending.result()
        finally:
            if not sending.done():
                sending.cancel()

    async def _replace_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await _discard(producer)

    async def pending_count(self) -> int:
        """Rows of this service still waiting to be published."""
        async with self.pool.acquire() as conn:
            count: int = await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE service = $1 AND published_at IS NULL",
                self.service,
            )
        return count

    async def _count_pending(self) -> None:
        """Refresh the pending gauge, at most once per ``poll_seconds``: counting is a scan
        of the pending index, too dear to repeat after every wake-up under load."""
        now = asyncio.get_running_loop().time()
        if now - self._counted_at >= self.poll_seconds:
            self._counted_at = now
            self.metrics.outbox_pending.set(await self.pending_count())

    async def run(self) -> None:
        """Publish forever: on wake-up, and every ``poll_seconds`` as a fallback; back off
        while the broker or the database is down, never give up."""
        retry = Retry(
            self.metrics,
            log,
            stage=stage_label(self.service, "outbox"),
            first=0.5,
            cap=self.retry_max_seconds,
        )
        await every(
            self.poll_seconds,
            self._publish_round,
            retry,
            failed="outbox_publish_failed",
            wakeup=self.wakeup,
            fields=lambda: {"producer_count": self.producers_created},
        )

    async def _publish_round(self) -> None:
        """Publish every pending row (a batch at a time) and say so to readiness."""
        try:
            while await self.publish_pending() == self.batch_size:
                pass
            self.health.relay_publishing()
            await self._count_pending()
        except Exception as exc:
            self.health.relay_failing(type(exc).__name__)
            raise

    async def stop(self) -> None:
        """Flush and close the producer (bounded: a wedged producer is dropped)."""
        await self._replace_producer()


async def _discard(producer: AIOKafkaProducer, grace: float = 5.0) -> None:
    """Close ``producer`` within ``grace`` seconds, whatever state it is in.

    ``stop()`` flushes first, and an idempotent producer that the broker refuses never
    finishes flushing; past the grace its sender task is cancelled and its connections
    closed (aiokafka has no public abort).
    """
    with contextlib.suppress(Exception):  # a broken producer's stop may fail in any way
        await asyncio.wait_for(producer.stop(), grace)
        return
    sender = getattr(producer, "_sender", None)
    if sender is not None:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(sender.close(), grace)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(producer.client.close(), grace)
