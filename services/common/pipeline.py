"""The one way a service consumes events: a batch at a time, decoded, validated,
de-duplicated, applied and its output enqueued in ONE PostgreSQL transaction — each bad
event of the batch dead-lettered without rolling back its neighbours.

An offset is committed by Faust only after the batch's body returns (``take_events`` acks
a batch when the next one is asked for), and the body returns only once every effect (or
dead letter) of the batch is durable in PostgreSQL. Infrastructure failures are retried
with back-off instead of raised: Faust would ack and skip events whose handler raised,
and a safeguarding contact must never be skipped.

Why a batch behaves like its events one by one: the effects run in offset order on the
batch's one connection (each partition's events are put in offset order first: around a
rebalance Faust can hand a re-fetched earlier offset after a later one, seen in the fault
suite's scale-out scenario), so a later event reads what an earlier one wrote (a re-referral,
an open case, a duplicate source reference); an effect refuses an event (raises
:class:`Rejected`, or sets ``refused``) *before* it writes anything for it (every effect
checks, then writes), so dead-lettering it leaves nothing behind; the rows nobody reads
inside a batch — inbox claims,
outcomes, audit entries, outbox events, dead letters — are gathered and written once per
batch. When a batch fails for any other reason its events are retried one per
transaction, so one poisonous event cannot hold its neighbours back.

One module on purpose: the batch's decode, claim, apply, record and commit-or-retry are one
invariant (nothing acked before it is durable, nothing half-applied), read in one place.
What an effect is handed and may raise lives in :mod:`services.common.received`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic

from schemas.base import printable
from schemas.cloudevents import CloudEvent, ContractError, decode, validate_data
from schemas.events import DeadLetter, DeadLetterHeader
from services.common.audit import AuditEntry, write_audit
from services.common.ids import derive_id
from services.common.kafka import InboundMessage, inbound_message, raw_topic
from services.common.metrics import stage_label, topic_work
from services.common.order import (
    ORDER_PATIENCE_SECONDS,
    OutOfOrder,
    claim_positions,
    in_offset_order,
)
from services.common.outbox import INGRESS_HEADER, enqueue_rows, outbox_row
from services.common.received import BatchEffect, Before, P, Received, Rejected
from services.common.retry import Retry
from services.common.runtime import ServiceRuntime
from services.common.topics import DEAD_LETTER, EXTERNAL_TOPICS

if TYPE_CHECKING:
    from services.common.db import Connection


#: How often an early event checks whether the events before it have been applied.
ORDER_POLL_SECONDS = 0.2


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


def ingress_ms_of(message: InboundMessage, *, from_header: bool) -> int | None:
    """When the first inbound record behind ``message`` was published (epoch ms).

    On the product's own topics the relay carried it forward in :data:`INGRESS_HEADER`; on
    a topic other systems write (``EXTERNAL_TOPICS``: their headers are not trusted), or an
    event written before the header existed, it is the record's timestamp.
    """
    if from_header:
        for name, value in reversed(message.headers):
            if name == INGRESS_HEADER and value:
                try:
                    return int(value)
                except ValueError:
                    break
    return None if message.timestamp is None else int(message.timestamp * 1000)


@dataclass
class _Item(Generic[P]):
    """One message of a batch: decoded and validated, or the reason it is refused."""

    message: InboundMessage
    event: CloudEvent | None = None
    payload: P | None = None
    error: ContractError | Rejected | None = None


def _decoded(
    runtime: ServiceRuntime, message: InboundMessage, accepted: Mapping[str, type[P]]
) -> _Item[P]:
    try:
        event = decode(message.value, message.headers, max_bytes=runtime.settings.max_message_bytes)
        return _Item(message, event, validate_data(event, accepted))
    except ContractError as error:
        return _Item(message, error=error)


@dataclass
class _Outcome(Generic[P]):
    """What one batch transaction did, for after the commit (metrics and logs)."""

    applied: list[Received[P]] = field(default_factory=list)
    duplicates: list[_Item[P]] = field(default_factory=list)
    dead: list[tuple[_Item[P], DeadLetter]] = field(default_factory=list)
    enqueued: int = 0


async def _claim_inbox(conn: Connection, service: str, items: Sequence[_Item[P]]) -> set[str]:
    """Insert the inbox rows of ``items`` (distinct event ids); return the ids that were new."""
    if not items:
        return set()
    rows = await conn.fetch(
        """
        INSERT INTO processed_events (service, event_id, topic, "partition", "offset", outcome)
        SELECT $1, e, t, p, o, 'pending'
        FROM unnest($2::text[], $3::text[], $4::int[], $5::bigint[]) AS v(e, t, p, o)
        ON CONFLICT (service, event_id) DO NOTHING
        RETURNING event_id
        """,
        service,
        [i.event.id for i in items if i.event is not None],
        [i.message.topic for i in items],
        [i.message.partition for i in items],
        [i.message.offset for i in items],
    )
    return {r["event_id"] for r in rows}


async def _record_outcomes(conn: Connection, service: str, applied: Sequence[Received[P]]) -> None:
    if applied:
        await conn.execute(
            """
            UPDATE processed_events p SET outcome = v.outcome
            FROM unnest($2::text[], $3::text[]) AS v(event_id, outcome)
            WHERE p.service = $1 AND p.event_id = v.event_id
            """,
            service,
            [r.event.id for r in applied],
            [r.outcome for r in applied],
        )


async def _record_dead_letters(
    conn: Connection, runtime: ServiceRuntime, letters: Sequence[DeadLetter]
) -> set[str]:
    """Insert the dead letters; return the ids not recorded before (a restart's repeat)."""
    if not letters:
        return set()
    rows = await conn.fetch(
        """
        INSERT INTO dead_letters
            (dead_letter_id, service, original_topic, "partition", "offset", reason, errors, at)
        SELECT i, $1, t, p, o, r, e::jsonb, a
        FROM unnest($2::text[], $3::text[], $4::int[], $5::bigint[], $6::text[], $7::text[],
                    $8::timestamptz[]) AS v(i, t, p, o, r, e, a)
        ON CONFLICT (dead_letter_id) DO NOTHING
        RETURNING dead_letter_id
        """,
        runtime.service,
        [d.dead_letter_id for d in letters],
        [d.original_topic for d in letters],
        [d.partition for d in letters],
        [d.offset for d in letters],
        [str(d.reason) for d in letters],
        [json.dumps([e.model_dump() for e in d.errors]) for d in letters],
        [d.at for d in letters],
    )
    return {r["dead_letter_id"] for r in rows}


async def _apply_batch(
    runtime: ServiceRuntime,
    items: Sequence[_Item[P]],
    effect: BatchEffect[P],
    *,
    accept_gap: bool,
    ingress_from_header: bool,
) -> _Outcome[P]:
    """Apply ``items`` in one transaction (see the module doc); raises on any failure."""
    service = runtime.service
    done: _Outcome[P] = _Outcome()
    async with runtime.pool.acquire() as conn, conn.transaction():
        await claim_positions(conn, service, [i.message for i in items], accept_gap=accept_gap)
        first: dict[str, _Item[P]] = {}
        for item in items:
            if item.event is not None and item.error is None:
                first.setdefault(item.event.id, item)
        claimed = await _claim_inbox(conn, service, list(first.values()))
        fresh: list[Received[P]] = []
        for item in items:
            if item.event is None or item.payload is None or item.error is not None:
                continue
            if first[item.event.id] is not item or item.event.id not in claimed:
                done.duplicates.append(item)
                continue
            fresh.append(
                Received(
                    item.message,
                    item.event,
                    item.payload,
                    conn,
                    runtime,
                    ingress_ms=ingress_ms_of(item.message, from_header=ingress_from_header),
                )
            )
        if fresh:
            await effect(fresh)
        rejected: list[str] = []
        for received, item in zip(fresh, (first[r.event.id] for r in fresh), strict=True):
            if received.refused is not None:
                # Refused before anything was written for it (module doc): nothing to undo
                # but the inbox row, so that a corrected event with this id still applies.
                item.error = received.refused
                rejected.append(received.event.id)
            else:
                done.applied.append(received)
        if rejected:
            await conn.execute(
                "DELETE FROM processed_events WHERE service = $1 AND event_id = ANY($2::text[])",
                service,
                rejected,
            )
        at = runtime.clock()
        refusals = [
            (item, dead_letter_for(item.message, item.error, service, at))
            for item in items
            if item.error is not None
        ]
        new_letters = await _record_dead_letters(conn, runtime, [d for _, d in refusals])
        done.dead = [(item, d) for item, d in refusals if d.dead_letter_id in new_letters]
        await _record_outcomes(conn, service, done.applied)
        duplicate_audits = [
            AuditEntry(
                "inbound_event",
                i.event.id,
                "duplicate_event_id",
                {
                    "topic": i.message.topic,
                    "partition": i.message.partition,
                    "offset": i.message.offset,
                },
            )
            for i in done.duplicates
            if i.event is not None
        ]
        await write_audit(
            conn, service, [a for r in done.applied for a in r.audits] + duplicate_audits
        )
        rows = [row for r in done.applied for row in r.outputs] + [
            outbox_row(
                service=service,
                topic=runtime.topics(DEAD_LETTER),
                key=d.original_topic,
                event_id=d.dead_letter_id,
                data=d,
                time=d.at,
            )
            for _, d in done.dead
        ]
        done.enqueued = len(await enqueue_rows(conn, service, rows))
    return done


def _after_commit(runtime: ServiceRuntime, done: _Outcome[P], stage: str) -> None:
    """Metrics, logs and callbacks of a committed batch."""
    metrics, log = runtime.metrics, runtime.log
    if done.enqueued:
        runtime.relay.notify()
    now_ms = time.time() * 1000
    for received in done.applied:
        for callback in received.committed:
            callback()
        if received.ingress_ms is not None:
            metrics.pipeline_latency_seconds.labels(stage=stage).observe(
                max(0.0, (now_ms - received.ingress_ms) / 1000)
            )
    for item in done.duplicates:
        assert item.event is not None
        metrics.duplicates_skipped.labels(topic=item.message.topic).inc()
        log.info(
            "duplicate_event_skipped",
            event_id=item.event.id,
            topic=item.message.topic,
            partition=item.message.partition,
            offset=item.message.offset,
        )
    for item, letter in done.dead:
        metrics.dead_lettered.labels(reason=str(letter.reason)).inc()
        log.warning(
            "dead_lettered",
            topic=item.message.topic,
            partition=item.message.partition,
            offset=item.message.offset,
            reason=str(letter.reason),
            dead_letter_id=letter.dead_letter_id,
        )


async def consume(
    runtime: ServiceRuntime,
    messages: Sequence[InboundMessage],
    accepted: Mapping[str, type[P]],
    effect: BatchEffect[P],
    *,
    stage: str,
    ingress_from_header: bool = True,
    before: Before[P] | None = None,
) -> None:
    """Process a batch of messages to a durable end: each applied, skipped as a duplicate,
    or dead-lettered. ``before`` sees every valid event of the batch (duplicates
    included) before the transaction."""
    if not messages:
        return
    await runtime.ready()
    started = time.perf_counter()
    for message in messages:
        runtime.metrics.events_consumed.labels(topic=message.topic).inc()
    ordered = in_offset_order(messages)
    if any(a is not b for a, b in zip(ordered, messages, strict=True)):
        first = messages[0]
        runtime.log.warning("input_batch_reordered", topic=first.topic, batch_events=len(messages))
    items = [_decoded(runtime, m, accepted) for m in ordered]
    if before is not None:
        before([(i.message, i.payload) for i in items if i.payload is not None])
    await _until_durable(runtime, items, effect, stage, ingress_from_header)
    runtime.metrics.processing_seconds.labels(stage=stage).observe(time.perf_counter() - started)
    runtime.metrics.batch_events.labels(stage=stage).observe(len(messages))


async def _until_durable(
    runtime: ServiceRuntime,
    items: Sequence[_Item[P]],
    effect: BatchEffect[P],
    stage: str,
    ingress_from_header: bool,
) -> None:
    retry = Retry(
        runtime.metrics, runtime.log, stage=stage, first=0.2, cap=runtime.settings.retry_max_seconds
    )
    waited_for_order = 0.0
    accept_gap = False
    while True:
        for item in items:  # a refusal of a failed attempt is decided again
            if isinstance(item.error, Rejected):
                item.error = None
        try:
            done = await _apply_batch(
                runtime,
                items,
                effect,
                accept_gap=accept_gap,
                ingress_from_header=ingress_from_header,
            )
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
        # Database/broker trouble or a bug: retry, never skip.
        except Exception as exc:
            first = items[0].message
            retry.failed(
                "processing_failed_retrying",
                exc,
                {
                    "topic": first.topic,
                    "partition": first.partition,
                    "offset": first.offset,
                    "batch_events": len(items),
                },
                level="error",
            )
            if len(items) > 1:
                # One event may be the cause: go on one event per transaction.
                for item in items:
                    await _until_durable(runtime, [item], effect, stage, ingress_from_header)
                return
            await retry.wait()
    _after_commit(runtime, done, stage)


def consume_topic(
    runtime: ServiceRuntime,
    topic: str,
    accepted: Mapping[str, type[P]],
    effect: BatchEffect[P],
    *,
    before: Before[P] | None = None,
) -> None:
    """Register the agent that feeds contract topic ``topic`` through :func:`consume`, a
    batch (``batch_max_events``, or what came within ``batch_linger_seconds``) at a time.

    One agent per topic, concurrency 1 (docs/kafka-faust-notes.md: more can commit past an
    in-flight message). ``before`` runs on each batch first (screening's history). Its
    stage, in metrics and logs, is the service and the topic it reads
    (:func:`~services.common.metrics.stage_label`: ``routing_decisions``).
    """
    app = runtime.app
    settings = runtime.settings
    from_header = topic not in EXTERNAL_TOPICS
    stage = stage_label(runtime.service, topic_work(topic))

    async def agent(stream: Any) -> None:
        async for events in stream.take_events(
            settings.batch_max_events, within=settings.batch_linger_seconds
        ):
            await consume(
                runtime,
                [inbound_message(e) for e in events],
                accepted,
                effect,
                stage=stage,
                ingress_from_header=from_header,
                before=before,
            )

    app.agent(raw_topic(app, runtime.topics(topic)), name=f"{stage}:{topic}", concurrency=1)(agent)
