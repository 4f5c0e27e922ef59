"""Notifications decides a batch of events exactly as it would decide them one by one.

On the real broker: the same story — a police domestic-abuse contact and its replay, a
GP's contact, then routings that change, confirm, replay and re-route it, a routing that
overtakes its contact, one to a hub outside the topology and one for a member of the
public — is sent once an event at a time (each its own transaction) and once all at once
(one record batch, so one poll and one transaction). Both give the same outcome words,
rows, disclosures, dead letters and outbound events, in the same order per key.

On the real database, in process: a batch of any size is applied with the same few
statements, and gives the same rows, outbound events and metrics as its events applied
one per transaction.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import asyncpg
import pytest
import structlog

from schemas import examples as ex
from schemas.base import ContractModel
from schemas.cloudevents import CloudEvent, encode_binary
from schemas.events import Contact, Routed
from schemas.types import ce_type_of
from services.common.calendar import WorkingCalendar
from services.common.clock import system_clock
from services.common.db import apply_migrations
from services.common.kafka import InboundMessage
from services.common.metrics import ServiceMetrics
from services.common.received import Received
from services.common.runtime import ServiceRuntime
from services.common.topics import CONTACTS, ROUTED, SCHOOL_NOTIFICATIONS, TopicNames
from services.common.topology import load_topology
from services.notifications.app import Notifications
from services.notifications.webhooks import DeliveryPolicy, Endpoint, WebhookConfig
from tests.integration.harness import Handled
from tests.integration.notifications_harness import (
    NotificationsUnderTest,
    contact,
    referral_source,
    routed_for,
)
from tests.support import Stack, fetch, fetchval, fresh_database, records_until

if TYPE_CHECKING:
    from services.common.db import Connection

pytestmark = pytest.mark.integration

#: An eight-year-old at the example school.
SCHOOL_CHILD = {**ex.contact()["children"][0], "date_of_birth": "2015-09-01"}
#: Events published together wait for each other this long in one poll (the default is
#: 10 ms); they travel as one record batch, so one fetch brings them all.
LINGER_SECONDS = "1.0"


@pytest.fixture(scope="module")
async def notifications(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[NotificationsUnderTest]:
    harness = await NotificationsUnderTest.start(
        stack,
        tmp_path_factory.mktemp("notifications-batch"),
        env={"MASH_BATCH_LINGER_SECONDS": LINGER_SECONDS},
    )
    yield harness
    await harness.stop()


@dataclass(frozen=True)
class Step:
    """One event of the story: its payload and its CloudEvent id."""

    payload: Contact | Routed
    event_id: str

    @property
    def topic(self) -> str:
        return CONTACTS if isinstance(self.payload, Contact) else ROUTED

    @property
    def key(self) -> str:
        p = self.payload
        return p.subject_key if isinstance(p, Contact) else p.contact_id


def at(hours: int) -> dict[str, str]:
    """Decision and routing times ``hours`` after the first routing's day began."""
    decided = datetime(2024, 3, 13, 9, 0, tzinfo=UTC) + timedelta(hours=hours)
    return {
        "decided_at": decided.isoformat(),
        "routed_at": (decided + timedelta(seconds=1)).isoformat(),
    }


INITIAL_ASSESSMENT = {"outcome": "initial_assessment", "level": 3, "rag": "amber"}
SINGLE_AGENCY = {"outcome": "single_agency", "level": 2, "rag": "green"}


def story(tag: str) -> tuple[list[Step], list[Step]]:
    """(contacts, routings) of the story, with ids of their own (``tag``)."""
    police = contact(
        f"{tag}-P",
        children=[
            {**SCHOOL_CHILD, "child_ref": "C-1", "school_urn": "999201"},
            {**SCHOOL_CHILD, "child_ref": "C-2", "school_urn": None},  # for the police desk
        ],
    )
    gp = contact(f"{tag}-G", source=referral_source(f"{tag}-G", "3A", "gp-1"), incident_type=None)
    overtaken = contact(f"{tag}-X")  # its contact is never read: its routing acknowledges
    public = contact(
        f"{tag}-U", source=referral_source(f"{tag}-U", "1A", "public"), incident_type=None
    )
    first = routed_for(gp, "0")
    override = routed_for(gp, "1", queue="initial-assessment", **INITIAL_ASSESSMENT, **at(1))
    confirm = routed_for(gp, "2", queue="initial-assessment", **INITIAL_ASSESSMENT, **at(2))
    moved = routed_for(gp, "3", queue="single-agency", hub="east-south", **SINGLE_AGENCY, **at(3))
    contacts = [
        Step(police, f"{tag}-c-police"),
        Step(police, f"{tag}-c-police-again"),  # an upstream replay: a new event id
        Step(gp, f"{tag}-c-gp"),
    ]
    routings = [
        Step(first, f"{tag}-r-first"),
        Step(override, f"{tag}-r-override"),
        Step(first, f"{tag}-r-first-again"),
        Step(confirm, f"{tag}-r-confirm"),
        Step(moved, f"{tag}-r-moved"),
        Step(moved, f"{tag}-r-moved-again"),
        Step(routed_for(overtaken, "0"), f"{tag}-r-x"),
        Step(routed_for(overtaken, "1", hub="atlantis", **at(1)), f"{tag}-r-x-nowhere"),
        Step(
            routed_for(overtaken, "2", queue="initial-assessment", **INITIAL_ASSESSMENT, **at(2)),
            f"{tag}-r-x-change",
        ),
        Step(routed_for(public, "0"), f"{tag}-r-public"),
    ]
    return contacts, routings


#: What one by one gives for the story (both runs must give it).
CONTACT_OUTCOMES = ["applied", "already_acknowledged", "applied"]
ROUTED_OUTCOMES = [
    "outcome",
    "update",
    "stale",
    "unchanged",
    "update",
    "unchanged",
    "outcome",
    "dead_letter:unknown_reference",
    "update",
    "public_referrer",
]


def word(handled: Handled) -> str:
    return handled.outcome or f"dead_letter:{handled.dead_letter}"


async def one_at_a_time(n: NotificationsUnderTest, steps: Sequence[Step]) -> list[str]:
    """Send each event once the one before it has been handled (its own transaction)."""
    words = []
    for step in steps:
        partition, offset = await n.send(
            step.topic, step.payload, key=step.key, event_id=step.event_id
        )
        words.append(word(await n.handled(step.topic, partition, offset)))
    return words


async def all_at_once(n: NotificationsUnderTest, steps: Sequence[Step]) -> list[str]:
    """Send the events as one record batch on one partition; check that they were applied
    in one or two transactions (inbox times); return how each was handled."""
    assert n.producer is not None
    topic = steps[0].topic
    batch = n.producer.create_batch()
    for step in steps:
        value, headers = encode_binary(
            event_id=step.event_id,
            source="urn:test:notifications",
            data=step.payload,
            time=datetime.now(UTC),
        )
        assert batch.append(key=step.key.encode(), value=value, timestamp=None, headers=headers)
    sent = await n.producer.send_batch(batch, n.world.topics(topic), partition=0)
    first = (await sent).offset
    handled = [await n.handled(topic, 0, first + i) for i in range(len(steps))]
    transactions = await fetchval(
        n.world.dsn,
        "SELECT count(DISTINCT processed_at) FROM processed_events WHERE service = $1"
        " AND event_id = ANY($2::text[])",
        n.service,
        [s.event_id for s in steps],
    )
    # One transaction, or two if the linger timer happened to fire while Faust was still
    # handing the record batch over: never one per event.
    assert transactions <= 2, f"{len(steps)} events took {transactions} transactions"
    return [word(h) for h in handled]


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def blind(value: Any, tag: str) -> Any:
    """``value`` with the run's own ids made alike (``tag`` and derived UUIDs)."""
    if not isinstance(value, str):
        return value
    return UUID.sub("<id>", value).replace(tag, "<tag>")


async def what_happened(n: NotificationsUnderTest, tag: str) -> dict[str, Any]:
    """Rows, disclosures, dead letters and outbound events of the story ``tag``, with its
    own ids blinded so two runs compare."""
    dsn = n.world.dsn
    contact_ids = [f"CON-{tag}-{role}" for role in "PGXU"]
    feedback = await fetch(
        dsn,
        "SELECT contact_id, kind, sequence, outcome, hub, agency_id, audience FROM feedback"
        " WHERE contact_id = ANY($1::text[]) ORDER BY contact_id, kind, sequence",
        contact_ids,
    )
    disclosures = await fetch(
        dsn,
        "SELECT contact_id, channel, destination, recipient, audience, rule, fields"
        " FROM disclosures WHERE contact_id = ANY($1::text[]) ORDER BY contact_id, rule",
        contact_ids,
    )
    notices = await fetch(
        dsn,
        "SELECT contact_id, subject_id, school_urn, police_reference, incident_at, due_by"
        " FROM encompass_notices WHERE contact_id = ANY($1::text[]) ORDER BY subject_id",
        contact_ids,
    )
    unmatched = await fetch(
        dsn,
        "SELECT contact_id, subject_id, reason, police_reference, force FROM encompass_unmatched"
        " WHERE contact_id = ANY($1::text[]) ORDER BY subject_id",
        contact_ids,
    )
    references = {f"WM-{tag}-P", f"REF-{tag}-G", f"WM-{tag}-X", f"REF-{tag}-U"}
    records = await records_until(
        n.world.stack.bootstrap,
        n.world.topics.feedback(),
        lambda rs: sum(r.json()["referrer_reference"] in references for r in rs) >= len(feedback),
    )
    on_wire = [
        {"key": (r.key or b"").decode(), **{k: v for k, v in r.json().items() if k != "issued_at"}}
        for r in sorted(records, key=lambda r: (r.topic, r.partition, r.offset))
        if r.json()["referrer_reference"] in references
    ]
    notice_records = await records_until(
        n.world.stack.bootstrap,
        n.world.topics(SCHOOL_NOTIFICATIONS),
        lambda rs: sum(r.json()["police_reference"] == f"WM-{tag}-P" for r in rs) >= len(notices),
    )
    schools = [
        {"key": (r.key or b"").decode(), **r.json()}
        for r in notice_records
        if r.json()["police_reference"] == f"WM-{tag}-P"
    ]
    tables = {
        "feedback": [dict(r) for r in feedback],
        "disclosures": [dict(r) for r in disclosures],
        "notices": [dict(r) for r in notices],
        "unmatched": [dict(r) for r in unmatched],
        "feedback_on_the_wire": on_wire,
        "notices_on_the_wire": schools,
    }
    return {
        name: [{k: blind(v, tag) for k, v in row.items()} for row in rows]
        for name, rows in tables.items()
    }


async def test_a_batch_gives_what_one_by_one_gives(notifications: NotificationsUnderTest) -> None:
    n = notifications
    contacts, routings = story("ONE")
    one = (await one_at_a_time(n, contacts), await one_at_a_time(n, routings))
    contacts, routings = story("BAT")
    batch = (await all_at_once(n, contacts), await all_at_once(n, routings))
    assert one == (CONTACT_OUTCOMES, ROUTED_OUTCOMES)
    assert batch == one

    by_one, by_batch = await what_happened(n, "ONE"), await what_happened(n, "BAT")
    assert by_batch == by_one
    # And what they both hold is the story: acknowledged once, then each change told, in
    # order per key.
    per_key: dict[str, list[tuple[str, str | None]]] = {}
    for r in by_batch["feedback_on_the_wire"]:
        per_key.setdefault(r["key"], []).append((r["kind"], r.get("outcome")))
    assert per_key == {
        "west-midlands": [
            ("acknowledgement", None),  # the police contact, once
            ("acknowledgement", None),  # the routing that overtook its contact ...
            ("outcome", "s47"),  # ... and what came of it
            ("update", "initial_assessment"),
        ],
        "gp-1": [
            ("acknowledgement", None),
            ("outcome", "s47"),
            ("update", "initial_assessment"),
            ("update", "single_agency"),
        ],
        "public": [("acknowledgement", None)],
    }
    assert [(r["subject_id"], r["reason"]) for r in by_batch["unmatched"]] == [
        ("SUBJ-<tag>-P-1", "no_school_urn")
    ]
    assert [r["key"] for r in by_batch["notices_on_the_wire"]] == ["999201"]
    assert len(by_batch["disclosures"]) == len(by_batch["feedback_on_the_wire"]) + 1


# --- In process, on the real database: statements per batch -----------------------------


class Counting:
    """A connection that counts the statements sent through it."""

    def __init__(self, conn: asyncpg.Connection[asyncpg.Record]) -> None:
        self.conn = conn
        self.statements = 0

    async def execute(self, *args: Any) -> str:
        self.statements += 1
        return await self.conn.execute(*args)

    async def fetch(self, *args: Any) -> list[asyncpg.Record]:
        self.statements += 1
        return await self.conn.fetch(*args)

    async def fetchval(self, *args: Any) -> Any:
        self.statements += 1
        return await self.conn.fetchval(*args)

    async def fetchrow(self, *args: Any) -> asyncpg.Record | None:
        self.statements += 1
        return await self.conn.fetchrow(*args)


def service(metrics: ServiceMetrics) -> tuple[Notifications, ServiceRuntime]:
    """Notifications' effects on a bare runtime (topics, metrics, log), with a webhook for
    the GP."""
    runtime = cast(
        ServiceRuntime,
        SimpleNamespace(
            service="notifications",
            topics=TopicNames("inproc."),
            metrics=metrics,
            log=structlog.get_logger("notifications"),
            clock=system_clock,
        ),
    )
    webhooks = WebhookConfig(
        DeliveryPolicy(),
        {"gp-1": Endpoint("gp-1", "http://127.0.0.1:9/hook", "structured", b"a-test-secret")},
    )
    return Notifications(runtime, load_topology("two-hubs"), WorkingCalendar(), webhooks), runtime


def received(
    steps: Sequence[Step], conn: Counting, runtime: ServiceRuntime, first_offset: int
) -> list[Received[Any]]:
    """The events as the pipeline hands them to an effect."""
    batch: list[Received[Any]] = []
    for i, step in enumerate(steps):
        payload: ContractModel = step.payload
        message = InboundMessage(step.topic, 0, first_offset + i, step.key.encode(), b"", [])
        event = CloudEvent(
            step.event_id, "urn:test", ce_type_of(type(payload)), None, None, {}, "binary"
        )
        batch.append(Received(message, event, payload, cast("Connection", conn), runtime))
    return batch


@dataclass
class Run:
    """What applying the stories did: statements per effect call, and every result."""

    statements: list[int]
    words: list[str]
    outputs: list[tuple[str, bytes | None, str]]
    metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def apply(dsn: str, stories: Sequence[tuple[list[Step], list[Step]]], *, batch: bool) -> Run:
    """Apply the stories' contacts, then their routings: each kind as one batch, or one
    event per transaction."""
    metrics = ServiceMetrics("notifications")
    notifications, runtime = service(metrics)
    run = Run([], [], [], {})
    raw = await asyncpg.connect(dsn)
    try:
        conn = Counting(raw)
        for effect, steps in (
            (notifications.on_contacts, [s for c, _ in stories for s in c]),
            (notifications.on_routings, [s for _, r in stories for s in r]),
        ):
            events = received(steps, conn, runtime, first_offset=0)
            for part in [events] if batch else [[e] for e in events]:
                before = conn.statements
                async with raw.transaction():
                    await effect(part)
                run.statements.append(conn.statements - before)
            for r in events:
                run.words.append("refused" if r.refused else r.outcome)
                run.outputs += [(o.topic, o.key, o.event_id) for o in r.outputs]
                for callback in r.committed:
                    callback()
    finally:
        await raw.close()
    run.metrics = counted(metrics)
    return run


def counted(metrics: ServiceMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every counter sample the effects moved (the callbacks run after a commit)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name.startswith("mash_") and s.name.endswith("_total")
    }


async def database(stack: Stack) -> str:
    dsn = await fresh_database(stack)
    conn = await asyncpg.connect(dsn)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    return dsn


TABLES = {
    "feedback": "feedback_id, contact_id, kind, agency_id, audience, sequence, outcome, hub,"
    " routed_id, decided_at, routed_at",
    "disclosures": "disclosure_id, event_id, contact_id, channel, destination, recipient,"
    " audience, rule, allow_list, fields",
    "encompass_notices": "notice_id, contact_id, subject_id, school_urn, police_reference,"
    " incident_at, due_by",
    "encompass_unmatched": "contact_id, subject_id, reason, police_reference, force,"
    " incident_at, due_by",
    "webhook_deliveries": "delivery_id, event_id, contact_id, agency_id, audience, ce_source",
}


async def rows(dsn: str) -> dict[str, list[dict[str, Any]]]:
    return {
        table: [dict(r) for r in await fetch(dsn, f"SELECT {cols} FROM {table} ORDER BY 1, 2")]
        for table, cols in TABLES.items()
    }


async def test_a_batch_costs_the_same_statements_whatever_its_size(stack: Stack) -> None:
    small = [story("S0")]
    large = [story(f"L{i}") for i in range(12)]
    statements = {}
    for name, stories in (("small", small), ("large", large)):
        dsn = await database(stack)
        run = await apply(dsn, stories, batch=True)
        statements[name] = run.statements
    assert statements["small"] == statements["large"], statements
    contacts, routings = statements["large"]
    assert contacts <= 5  # feedback, notices, unmatched, disclosures, deliveries
    assert routings <= 5  # lock, read, feedback, disclosures, deliveries


async def test_a_batch_writes_sends_and_counts_what_one_by_one_does(stack: Stack) -> None:
    stories = [story(f"E{i}") for i in range(3)]
    one_dsn, batch_dsn = await database(stack), await database(stack)
    one = await apply(one_dsn, stories, batch=False)
    batch = await apply(batch_dsn, stories, batch=True)
    assert batch.words == one.words
    assert batch.outputs == one.outputs, "same events, ids, keys and order"
    assert batch.metrics == one.metrics, "same metrics"
    assert (
        batch.metrics[
            ("mash_feedback_sent_total", (("agency_type", "professional"), ("kind", "update")))
        ]
        == 6
    )
    assert await rows(batch_dsn) == await rows(one_dsn)
    assert await rows(batch_dsn) != {t: [] for t in TABLES}
