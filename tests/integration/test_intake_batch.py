"""Intake's batch effect against the real database, through the pipeline's own ``consume``:
a batch applied in one transaction leaves exactly the rows, audit entries, inbox outcomes
and outbox events that its events leave applied one per transaction — duplicates by source
reference, re-referrals and links between contacts of the same batch included — and costs
a number of SQL statements that does not grow with the batch."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import asyncpg
import pytest
import structlog
from prometheus_client import generate_latest

from schemas import examples as ex
from schemas.base import ContractModel
from schemas.cloudevents import encode_binary
from schemas.inbound import PoliceNotification, Referral
from services.common.clock import Clock, system_clock
from services.common.db import apply_migrations
from services.common.kafka import InboundMessage
from services.common.metrics import ServiceMetrics
from services.common.pipeline import consume
from services.common.runtime import ServiceRuntime
from services.common.settings import Settings
from services.common.topics import INBOUND_POLICE, INBOUND_REFERRALS, TopicNames
from services.common.topology import load_topology
from services.intake.app import POLICE_TYPES, REFERRAL_TYPES, SERVICE, Intake
from tests.integration.harness import metric_value
from tests.sample import synthetic_nhs_numbers
from tests.support import Stack, fresh_database

pytestmark = pytest.mark.integration

#: Each run's consume() must finish well within this (a failing batch is retried for ever).
BATCH_TIMEOUT = 60.0
PUBLISHED = datetime(2025, 6, 3, 8, tzinfo=UTC)
NHS_A, NHS_B, NHS_C, NHS_D = synthetic_nhs_numbers(4, start=9990003000)


class _Relay:
    def notify(self) -> None:
        """Nothing to wake: these tests read the outbox table, no relay publishes it."""


@dataclass
class _Runtime:
    """The parts of :class:`ServiceRuntime` that ``consume`` and :class:`Intake` use, on a
    database of their own and without Kafka; every statement sent is recorded."""

    pool: asyncpg.Pool
    statements: list[str] = field(default_factory=list)
    service: str = SERVICE
    settings: Settings = field(default_factory=Settings)
    clock: Clock = system_clock
    metrics: ServiceMetrics = field(default_factory=lambda: ServiceMetrics(SERVICE))
    log: Any = field(default_factory=structlog.get_logger)
    topics: TopicNames = field(default_factory=lambda: TopicNames(""))
    relay: _Relay = field(default_factory=_Relay)

    async def ready(self) -> None:
        """Always ready: the pool is open."""


@dataclass
class Intakes:
    """An intake effect on a fresh database, fed through the pipeline's ``consume``."""

    runtime: _Runtime
    intake: Intake

    @property
    def pool(self) -> asyncpg.Pool:
        return self.runtime.pool

    async def apply(self, messages: Sequence[InboundMessage]) -> None:
        """Consume ``messages`` as ONE batch (one topic) and wait until it is durable."""
        accepted = POLICE_TYPES if messages[0].topic == INBOUND_POLICE else REFERRAL_TYPES
        service = cast(ServiceRuntime, self.runtime)
        await asyncio.wait_for(
            consume(service, messages, accepted, self.intake.record_batch, stage=SERVICE),
            BATCH_TIMEOUT,
        )

    def metric(self, name: str, **labels: str) -> float:
        return metric_value(generate_latest(self.runtime.metrics.registry).decode(), name, **labels)


def ticking_clock() -> Callable[[], datetime]:
    """The same recorded times in every run: one second apart from 2025-06-03 09:00 UTC."""
    ticks: Iterator[int] = iter(range(1_000_000))
    return lambda: datetime(2025, 6, 3, 9, tzinfo=UTC) + timedelta(seconds=next(ticks))


@asynccontextmanager
async def intake_on_fresh_database(stack: Stack) -> AsyncIterator[Intakes]:
    """An intake effect, with a recording runtime, on a new migrated database."""
    dsn = await fresh_database(stack)
    conn = await asyncpg.connect(dsn)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    statements: list[str] = []

    async def record_statements(conn: asyncpg.Connection[Any]) -> None:
        conn.add_query_logger(lambda q: statements.append(q.query))

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, init=record_statements)
    runtime = _Runtime(pool, statements)
    try:
        yield Intakes(
            runtime,
            Intake(cast(ServiceRuntime, runtime), load_topology("two-hubs"), ticking_clock()),
        )
    finally:
        await pool.close()


class Messages:
    """Inbound records of one topic at consecutive offsets of partition 0."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.offset = 0

    def __call__(
        self, payload: ContractModel, *, source: str, event_id: str | None = None
    ) -> InboundMessage:
        event_id = event_id or f"{self.topic}-{self.offset}"
        value, headers = encode_binary(
            event_id=event_id, source=source, data=payload, time=PUBLISHED
        )
        carried: list[tuple[str, bytes | None]] = list(headers)
        message = InboundMessage(
            self.topic, 0, self.offset, b"key", value, carried, PUBLISHED.timestamp()
        )
        self.offset += 1
        return message


def referral(ref: str, received: str, *nhs_numbers: str) -> Referral:
    return Referral.model_validate(
        ex.referral(
            referral_id=ref,
            received_at=received,
            children=[
                ex.child(nhs_number=n, child_ref=f"{ref}-{i}") for i, n in enumerate(nhs_numbers)
            ],
        )
    )


def police(ref: str, occurred: str, nhs: str) -> PoliceNotification:
    return PoliceNotification.model_validate(
        ex.police_notification(
            notification_id=ref,
            occurred_at=occurred,
            reported_at=occurred,
            children=[ex.police_child(nhs_number=nhs)],
        )
    )


POLICE = "urn:police:west-midlands:niche"
SCHOOL = "urn:school:mis"
PORTAL = "urn:council:portal"


def seed() -> list[InboundMessage]:
    """What the database holds before the batch: a police contact about child A the
    evening of 2 June, and a referral about child C (who will have an open case)."""
    on = Messages(INBOUND_POLICE)
    return [on(police("P-A", "2025-06-02T21:00:00+01:00", NHS_A), source=POLICE)]


def seed_referrals(on: Messages) -> list[InboundMessage]:
    return [on(referral("R-C0", "2025-03-01T10:00:00+00:00", NHS_C), source=PORTAL)]


def batch(on: Messages) -> list[InboundMessage]:
    """The batch under test (after :func:`seed_referrals` on the same topic); the comment
    on each event says what one-by-one processing makes of it."""
    return [
        # 0: linked to the police contact (same London date, other system); re-referral.
        on(referral("R-A1", "2025-06-02T23:30:00+01:00", NHS_A), source=SCHOOL),
        # 1: the same (system, reference) as event 0, another event id: duplicate_source.
        on(referral("R-A1", "2025-06-02T23:30:00+01:00", NHS_A), source=SCHOOL),
        # 2: linked to the police contact and to event 0 (by contact id); re-referral.
        on(referral("R-A2", "2025-06-02T23:45:00+01:00", NHS_A), source=PORTAL, event_id="e-a2"),
        # 3: the event id of event 2 again: the inbox skips it (duplicate_event_id).
        on(referral("R-A2", "2025-06-02T23:45:00+01:00", NHS_A), source=PORTAL, event_id="e-a2"),
        # 4: child B's first contact: no flags.
        on(referral("R-B1", "2025-01-10T10:00:00+00:00", NHS_B), source=PORTAL),
        # 5: two months after event 4: re-referral (only the batch knows event 4).
        on(referral("R-B2", "2025-03-10T10:00:00+00:00", NHS_B), source=PORTAL),
        # 6: received BEFORE events 4 and 5: later contacts are no re-referral.
        on(referral("R-B0", "2024-12-01T10:00:00+00:00", NHS_B), source=SCHOOL),
        # 7: child C has an open case, and a contact the day before: re-referral.
        on(referral("R-C1", "2025-03-02T10:00:00+00:00", NHS_C), source=PORTAL),
        # 8: children A and B from the school: linked to the police contact and event 2,
        #    not to event 0 (same system); the latest contact of both children.
        on(referral("R-AB", "2025-06-02T23:50:00+01:00", NHS_A, NHS_B), source=SCHOOL),
        # 9: event 0's reference from another system: not a duplicate; child D is new.
        on(referral("R-A1", "2025-06-02T23:55:00+01:00", NHS_D), source="urn:council:other"),
    ]


async def prepare(intakes: Intakes, referrals: Messages) -> None:
    """Apply the seed, and open a case (a queue item, as routing writes it) for child C."""
    await intakes.apply(seed())
    await intakes.apply(seed_referrals(referrals))
    async with intakes.pool.acquire() as conn:
        await conn.execute(
            """
            INSERT INTO queue_items (queue_item_id, contact_id, decision_id, subject_id, hub,
                queue, outcome, rag, status, deadlines, open_case_update, routed_at)
            SELECT 'qi-c', contact_id, 'd-c', subject_id, 'east-south', 's47', 's47', 'red',
                   'open', '{}', false, now()
            FROM contact_children WHERE child_ref = 'R-C0-0'
            """
        )


#: Everything a run leaves that it decides (not the clock's now() columns).
SNAPSHOT = {
    "contacts": "SELECT * FROM contacts ORDER BY contact_id",
    "contact_children": "SELECT * FROM contact_children ORDER BY contact_id, subject_id",
    "children": "SELECT * FROM children ORDER BY subject_id",
    "contact_links": "SELECT contact_id, linked_contact_id, reason FROM contact_links"
    " ORDER BY contact_id, linked_contact_id",
    "raw_payloads": "SELECT contact_id, event_id, value, headers FROM raw_payloads"
    " ORDER BY contact_id",
    "processed_events": 'SELECT event_id, topic, "partition", "offset", outcome'
    ' FROM processed_events ORDER BY topic, "offset"',
    # Intake's own entries in the order written (the pipeline writes its duplicate_event_id
    # entries after a batch's effects, so those are compared as a set).
    "audit_log": "SELECT service, entity_type, entity_id, action, detail FROM audit_log"
    " WHERE action <> 'duplicate_event_id' ORDER BY id",
    "duplicate_event_ids": "SELECT entity_id, detail FROM audit_log"
    " WHERE action = 'duplicate_event_id' ORDER BY entity_id, detail::text",
    "outbox": "SELECT service, event_id, topic, key, value, headers FROM outbox ORDER BY id",
    "dead_letters": "SELECT dead_letter_id FROM dead_letters",
}


async def snapshot(intakes: Intakes) -> dict[str, list[dict[str, Any]]]:
    async with intakes.pool.acquire() as conn:
        return {table: [dict(r) for r in await conn.fetch(sql)] for table, sql in SNAPSHOT.items()}


async def test_a_batch_leaves_what_its_events_leave_one_by_one(stack: Stack) -> None:
    async with (
        intake_on_fresh_database(stack) as singles,
        intake_on_fresh_database(stack) as together,
    ):
        single_topic, batch_topic = Messages(INBOUND_REFERRALS), Messages(INBOUND_REFERRALS)
        await prepare(singles, single_topic)
        await prepare(together, batch_topic)
        for message in batch(single_topic):
            await singles.apply([message])
        events = batch(batch_topic)
        await together.apply(events)
        # It really was one batch, in one transaction: no retry one event at a time.
        assert together.metric("mash_retries_total", stage=SERVICE) == 0
        assert together.metric("mash_batch_events_count", stage=SERVICE) == 3
        assert together.metric("mash_batch_events_sum", stage=SERVICE) == 1 + 1 + len(events)
        one_by_one, batched = await snapshot(singles), await snapshot(together)

    for table in SNAPSHOT:
        assert batched[table] == one_by_one[table], table

    # ...and what they leave is what the rules say.
    outcomes = {
        r["offset"] - 1: r["outcome"]
        for r in batched["processed_events"]
        if r["topic"] == INBOUND_REFERRALS and r["offset"] >= 1
    }
    assert outcomes == {
        0: "applied",
        1: "duplicate_source",
        2: "applied",  # event 3 repeats its id: no row of its own
        4: "applied",
        5: "applied",
        6: "applied",
        7: "applied",
        8: "applied",
        9: "applied",
    }
    actions = [a["action"] for a in batched["audit_log"]]
    assert actions.count("duplicate_source_reference") == 1
    assert len(batched["duplicate_event_ids"]) == 1
    emitted = [json.loads(bytes(r["value"])) for r in batched["outbox"]]
    contacts = {(c["source"]["system"], c["source"]["reference"]): c for c in emitted}
    assert len(contacts) == len(emitted), "one contact event per contact"

    def cid(system: str, ref: str) -> str:
        return str(contacts[(system, ref)]["contact_id"])

    def flags(system: str, ref: str) -> tuple[bool, bool, list[str]]:
        c = contacts[(system, ref)]
        return c["re_referral"], c["open_case"], c["linked_contact_ids"]

    p_a, r_a1, r_a2 = cid(POLICE, "P-A"), cid(SCHOOL, "R-A1"), cid(PORTAL, "R-A2")
    # Linked contacts (the same incident by other channels) are not re-referrals.
    assert flags(SCHOOL, "R-A1") == (False, False, [p_a])
    assert flags(PORTAL, "R-A2") == (False, False, sorted([p_a, r_a1]))
    assert flags(PORTAL, "R-B1") == (False, False, [])
    assert flags(PORTAL, "R-B2") == (True, False, [])
    assert flags(SCHOOL, "R-B0") == (False, False, [])
    assert flags(PORTAL, "R-C1") == (True, True, [])
    assert flags(SCHOOL, "R-AB") == (True, False, sorted([p_a, r_a2]))
    assert flags("urn:council:other", "R-A1") == (False, False, [])
    # R-AB is the latest contact of children A and B (R-B0, received earliest, came later
    # in the batch than R-B1 but before R-AB); B was first seen with R-B1.
    r_ab = cid(SCHOOL, "R-AB")
    latest = {c["subject_id"]: c for c in batched["children"]}
    child_a, child_b = (c["subject_id"] for c in contacts[(SCHOOL, "R-AB")]["children"])
    assert latest[child_a]["last_contact_id"] == latest[child_b]["last_contact_id"] == r_ab
    first_b = contacts[(PORTAL, "R-B1")]
    assert latest[child_b]["first_seen_at"] == datetime.fromisoformat(first_b["recorded_at"])


def scenarios(on: Messages, count: int) -> list[InboundMessage]:
    """``count`` times: a school referral, a linked portal re-referral about the same child
    and a repeat of the school's reference — every kind of row intake writes, and more of
    each with every scenario."""
    nhs = synthetic_nhs_numbers(count, start=9990004000)
    out: list[InboundMessage] = []
    for n in range(count):
        out += [
            on(referral(f"S-{n}", "2025-06-02T10:00:00+01:00", nhs[n]), source=SCHOOL),
            on(referral(f"P-{n}", "2025-06-02T11:00:00+01:00", nhs[n]), source=PORTAL),
            on(referral(f"S-{n}", "2025-06-02T10:00:00+01:00", nhs[n]), source=SCHOOL),
        ]
    return out


async def test_the_statements_of_a_batch_do_not_grow_with_its_size(stack: Stack) -> None:
    counts = {}
    for size in (1, 8):
        async with intake_on_fresh_database(stack) as intakes:
            await intakes.apply(scenarios(Messages(INBOUND_REFERRALS), size))
            assert intakes.metric("mash_retries_total", stage=SERVICE) == 0
            counts[size] = len(intakes.runtime.statements)
            async with intakes.pool.acquire() as conn:
                assert await conn.fetchval("SELECT count(*) FROM contact_links") == 2 * size
                assert await conn.fetchval("SELECT count(*) FROM contacts") == 2 * size
    assert counts[8] == counts[1], counts
