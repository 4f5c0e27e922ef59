"""The one way a service consumes an event: decode, validate, de-duplicate, apply the
effect and enqueue its output events in one transaction — or dead-letter it.

An offset is committed by Faust only after :func:`consume` returns, and it returns only
once the effect (or the dead letter) is durable in PostgreSQL. Infrastructure failures
are retried with back-off instead of raised: Faust would ack and skip a message whose
handler raised, and a safeguarding contact must never be skipped.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from schemas.base import ContractModel, printable
from schemas.cloudevents import CloudEvent, ContractError, decode, validate_data
from schemas.events import DeadLetter, DeadLetterHeader, DeadLetterReason, FieldError
from services.common.ids import derive_id
from services.common.kafka import InboundMessage, inbound_message, raw_topic
from services.common.order import ORDER_PATIENCE_SECONDS, OutOfOrder, claim_position
from services.common.outbox import enqueue_event
from services.common.runtime import ServiceRuntime
from services.common.topics import DEAD_LETTER

if TYPE_CHECKING:
    from services.common.db import Connection


@dataclass
class Received:
    """A valid event handed to a service's effect: the message, its envelope and payload."""

    message: InboundMessage
    event: CloudEvent
    payload: ContractModel
    conn: Connection
    runtime: ServiceRuntime
    enqueued: list[str] = field(default_factory=list)
    committed: list[Callable[[], None]] = field(default_factory=list)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the transaction has committed (metrics, logs)."""
        self.committed.append(callback)

    async def emit(
        self,
        topic: str,
        *,
        key: str | None,
        event_id: str,
        data: ContractModel,
        time: datetime,
        subject: str | None = None,
    ) -> None:
        """Enqueue an output event in this transaction (``topic`` is the contract name)."""
        added = await enqueue_event(
            self.conn,
            service=self.runtime.service,
            topic=self.runtime.topics(topic),
            key=key,
            event_id=event_id,
            data=data,
            time=time,
            subject=subject,
        )
        if added:
            self.enqueued.append(event_id)

    async def audit(
        self, entity_type: str, entity_id: str, action: str, detail: Mapping[str, object]
    ) -> None:
        """Record a state change in the audit log (ids and codes only)."""
        await self.conn.execute(
            """
            INSERT INTO audit_log (service, entity_type, entity_id, action, detail)
            VALUES ($1, $2, $3, $4, $5::jsonb)
            """,
            self.runtime.service,
            entity_type,
            entity_id,
            action,
            json.dumps(dict(detail), default=str),
        )


class Rejected(Exception):
    """Raised by an effect when a valid-looking event cannot be applied (dead-lettered)."""

    def __init__(self, reason: DeadLetterReason, errors: list[FieldError]) -> None:
        super().__init__(f"{reason}: {'; '.join(e.message for e in errors)}")
        self.reason = reason
        self.errors = errors

    @classmethod
    def unknown_reference(cls, path: str, message: str) -> Rejected:
        """The event names a contact, item or hub this deployment does not hold."""
        return cls(DeadLetterReason.UNKNOWN_REFERENCE, [FieldError(path=path, message=message)])

    @classmethod
    def invalid_transition(cls, path: str, message: str) -> Rejected:
        """The event asks for a change the current state forbids."""
        return cls(DeadLetterReason.INVALID_TRANSITION, [FieldError(path=path, message=message)])


#: How often an early event checks whether the events before it have been applied.
ORDER_POLL_SECONDS = 0.2

Effect = Callable[[Received], Awaitable[str]]
"""An effect applies one event and returns a short outcome word for the inbox/audit."""


def _b64(value: bytes | None) -> str | None:
    return None if value is None else base64.b64encode(value).decode("ascii")


def dead_letter_for(
    message: InboundMessage, error: ContractError | Rejected, service: str, at: datetime
) -> DeadLetter:
    """The dead-letter event for ``message``; its id depends only on the coordinates."""
    return DeadLetter(
        dead_letter_id=derive_id("dead-letter", message.topic, message.partition, message.offset),
        original_topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        original_key=_b64(message.key),
        original_value=_b64(message.value),
        # A header name is text in the contract: control characters a hostile sender put
        # in it are written as visible escapes, or the dead letter itself would be refused
        # and the partition would stall on it.
        headers=[DeadLetterHeader(key=printable(k), value=_b64(v)) for k, v in message.headers],
        reason=error.reason,
        errors=error.errors,
        service=service,
        at=at,
    )


async def _record_dead_letter(
    runtime: ServiceRuntime,
    message: InboundMessage,
    error: ContractError | Rejected,
    accept_gap: bool,
) -> None:
    letter = dead_letter_for(message, error, runtime.service, datetime.now(UTC))
    async with runtime.pool.acquire() as conn, conn.transaction():
        await claim_position(conn, runtime.service, message, accept_gap=accept_gap)
        inserted = await conn.fetchval(
            """
            INSERT INTO dead_letters
                (dead_letter_id, service, original_topic, "partition", "offset", reason, errors, at)
            VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)
            ON CONFLICT (dead_letter_id) DO NOTHING
            RETURNING dead_letter_id
            """,
            letter.dead_letter_id,
            runtime.service,
            message.topic,
            message.partition,
            message.offset,
            str(letter.reason),
            json.dumps([e.model_dump() for e in letter.errors]),
            letter.at,
        )
        if inserted is None:
            return  # this offset was dead-lettered before a restart: nothing new
        await enqueue_event(
            conn,
            service=runtime.service,
            topic=runtime.topics(DEAD_LETTER),
            key=message.topic,
            event_id=letter.dead_letter_id,
            data=letter,
            time=letter.at,
        )
    runtime.metrics.dead_lettered.labels(reason=str(letter.reason)).inc()
    runtime.log.warning(
        "dead_lettered",
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        reason=str(letter.reason),
        dead_letter_id=letter.dead_letter_id,
    )


async def _apply_once(
    runtime: ServiceRuntime,
    message: InboundMessage,
    event: CloudEvent,
    payload: ContractModel,
    effect: Effect,
    accept_gap: bool,
) -> None:
    async with runtime.pool.acquire() as conn, conn.transaction():
        await claim_position(conn, runtime.service, message, accept_gap=accept_gap)
        claimed = await conn.fetchval(
            """
            INSERT INTO processed_events (service, event_id, topic, "partition", "offset", outcome)
            VALUES ($1, $2, $3, $4, $5, 'pending')
            ON CONFLICT (service, event_id) DO NOTHING
            RETURNING event_id
            """,
            runtime.service,
            event.id,
            message.topic,
            message.partition,
            message.offset,
        )
        if claimed is None:
            # Recorded (who/what/when) and counted, never re-applied or re-emitted.
            await conn.execute(
                """
                INSERT INTO audit_log (service, entity_type, entity_id, action, detail)
                VALUES ($1, 'inbound_event', $2, 'duplicate_event_id', $3::jsonb)
                """,
                runtime.service,
                event.id,
                json.dumps(
                    {
                        "topic": message.topic,
                        "partition": message.partition,
                        "offset": message.offset,
                    }
                ),
            )
            runtime.metrics.duplicates_skipped.labels(topic=message.topic).inc()
            runtime.log.info(
                "duplicate_event_skipped",
                event_id=event.id,
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
            )
            return
        received = Received(message, event, payload, conn, runtime)
        outcome = await effect(received)
        await conn.execute(
            "UPDATE processed_events SET outcome = $3 WHERE service = $1 AND event_id = $2",
            runtime.service,
            event.id,
            outcome,
        )
    if received.enqueued:
        runtime.relay.notify()
    for callback in received.committed:
        callback()


async def consume(
    runtime: ServiceRuntime,
    message: InboundMessage,
    accepted: Mapping[str, type[ContractModel]],
    effect: Effect,
    *,
    stage: str,
) -> None:
    """Process one message to a durable end: applied, skipped as duplicate, or dead-lettered."""
    await runtime.ready()
    # Every log line written while this message is processed names its coordinates (and,
    # once decoded, its event id): ops can follow one message through the logs.
    with structlog.contextvars.bound_contextvars(
        topic=message.topic, partition=message.partition, offset=message.offset
    ):
        await _consume(runtime, message, accepted, effect, stage=stage)


async def _consume(
    runtime: ServiceRuntime,
    message: InboundMessage,
    accepted: Mapping[str, type[ContractModel]],
    effect: Effect,
    *,
    stage: str,
) -> None:
    started = time.perf_counter()
    runtime.metrics.events_consumed.labels(topic=message.topic).inc()
    delay = 0.2
    waited_for_order = 0.0
    accept_gap = False
    while True:
        try:
            try:
                event = decode(
                    message.value, message.headers, max_bytes=runtime.settings.max_message_bytes
                )
                with structlog.contextvars.bound_contextvars(event_id=event.id):
                    payload = validate_data(event, accepted)
                    await _apply_once(runtime, message, event, payload, effect, accept_gap)
            except (ContractError, Rejected) as error:
                await _record_dead_letter(runtime, message, error, accept_gap)
            break
        except asyncio.CancelledError:
            raise
        except OutOfOrder as early:
            # An earlier offset of this partition is still with another worker: wait for
            # it, but never for ever (see services/common/order.py).
            if waited_for_order == 0.0:
                runtime.log.info("input_out_of_order_waiting", expected_offset=early.expected)
            if waited_for_order >= ORDER_PATIENCE_SECONDS:
                runtime.log.error("input_order_gap", expected_offset=early.expected)
                accept_gap = True
                continue
            await asyncio.sleep(ORDER_POLL_SECONDS)
            waited_for_order += ORDER_POLL_SECONDS
            continue
        # Database/broker trouble or a bug: retry, never skip. The exception text is not
        # logged because driver messages can quote row values.
        except Exception as exc:
            runtime.metrics.retries.labels(stage=stage).inc()
            runtime.log.error(
                "processing_failed_retrying",
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                error_type=type(exc).__name__,
                delay_seconds=delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, runtime.settings.retry_max_seconds)
    runtime.metrics.processing_seconds.labels(stage=stage).observe(time.perf_counter() - started)


def consume_topic(
    runtime: ServiceRuntime,
    topic: str,
    accepted: Mapping[str, type[ContractModel]],
    effect: Effect,
    *,
    stage: str,
    before: Callable[[InboundMessage], None] | None = None,
) -> None:
    """Register the agent that feeds contract topic ``topic`` through :func:`consume`.

    One agent per topic, concurrency 1 (NOTES-kafka-faust.md: more can commit past an
    in-flight message). ``before`` runs on each message first (screening's history).
    """
    app = runtime.app

    async def agent(stream: Any) -> None:
        async for event in stream.events():
            message = inbound_message(event)
            if before is not None:
                before(message)
            await consume(runtime, message, accepted, effect, stage=stage)

    app.agent(raw_topic(app, runtime.topics(topic)), name=f"{stage}:{topic}", concurrency=1)(agent)
