"""Notifications' SQL, in one place: feedback, disclosures, Operation Encompass, webhooks.

The effects on a batch of events (``app.py``) read and write set-based: one statement per
table and batch, whatever the batch's size. Each insert skips rows that exist already (ON
CONFLICT DO NOTHING) and returns the keys of those it added, so the caller issues only
what is new.

Over 400 lines on purpose: all of notifications' SQL in one file, so what the service reads
and writes is reviewed in one place (and against its database role).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from services.notifications.encompass import Unmatched, Withheld

if TYPE_CHECKING:
    from services.common.db import Connection


async def lock_contacts(conn: Connection, contact_ids: Sequence[str]) -> None:
    """Serialise feedback decisions about these contacts until the transaction ends.

    Routings of a contact share a partition, so this only matters while a rebalance lets
    two workers hold the same events for a moment. The locks are taken in the order of
    their keys, so two transactions locking overlapping sets cannot deadlock (the sorted
    subquery is not flattened, and is read in order).
    """
    if contact_ids:
        await conn.execute(
            """
            SELECT pg_advisory_xact_lock(k)
            FROM (SELECT DISTINCT hashtext('feedback:' || c) AS k
                  FROM unnest($1::text[]) AS c ORDER BY k) AS keys
            """,
            list(contact_ids),
        )


@dataclass(frozen=True)
class FeedbackRow:
    """One feedback disclosure as recorded (codes and ids only)."""

    feedback_id: str
    contact_id: str
    kind: str
    agency_id: str
    audience: str
    issued_at: datetime
    sequence: int = 0
    outcome: str | None = None
    hub: str | None = None
    routed_id: str | None = None
    decided_at: datetime | None = None
    routed_at: datetime | None = None


async def recorded_feedback(conn: Connection, contact_ids: Sequence[str]) -> list[FeedbackRow]:
    """Every feedback row recorded for these contacts (a handful each)."""
    if not contact_ids:
        return []
    rows = await conn.fetch(
        """
        SELECT feedback_id, contact_id, kind, agency_id, audience, issued_at,
               sequence, outcome, hub, routed_id, decided_at, routed_at
        FROM feedback WHERE contact_id = ANY($1::text[])
        """,
        list(contact_ids),
    )
    return [FeedbackRow(**dict(r)) for r in rows]


async def insert_feedback(conn: Connection, rows: Sequence[FeedbackRow]) -> set[str]:
    """Record feedback rows; return the ids of those that are new.

    A row is skipped when its id, or its contact's (kind, sequence), is recorded already.
    Rows go in in id order, so transactions racing for the same acknowledgements (the
    contacts and routings agents) wait for each other in one order and cannot deadlock.
    """
    if not rows:
        return set()
    added = await conn.fetch(
        """
        INSERT INTO feedback (feedback_id, contact_id, kind, agency_id, audience, issued_at,
                              sequence, outcome, hub, routed_id, decided_at, routed_at)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                             $6::timestamptz[], $7::int[], $8::text[], $9::text[], $10::text[],
                             $11::timestamptz[], $12::timestamptz[])
            AS r(feedback_id, contact_id, kind, agency_id, audience, issued_at,
                 sequence, outcome, hub, routed_id, decided_at, routed_at)
        ORDER BY r.feedback_id
        ON CONFLICT DO NOTHING
        RETURNING feedback_id
        """,
        [r.feedback_id for r in rows],
        [r.contact_id for r in rows],
        [r.kind for r in rows],
        [r.agency_id for r in rows],
        [r.audience for r in rows],
        [r.issued_at for r in rows],
        [r.sequence for r in rows],
        [r.outcome for r in rows],
        [r.hub for r in rows],
        [r.routed_id for r in rows],
        [r.decided_at for r in rows],
        [r.routed_at for r in rows],
    )
    return {r["feedback_id"] for r in added}


@dataclass(frozen=True)
class DisclosureRow:
    """The audit of one disclosure: who received what (field names), when, under which rule."""

    disclosure_id: str
    event_id: str
    contact_id: str
    channel: str
    destination: str
    recipient: str
    audience: str
    rule: str
    allow_list: str
    fields: tuple[str, ...]
    disclosed_at: datetime


async def record_disclosure(conn: Connection, row: DisclosureRow) -> bool:
    """Record one disclosure in the audit; False if it was recorded before."""
    inserted = await conn.fetchval(
        """
        INSERT INTO disclosures (disclosure_id, event_id, contact_id, channel, destination,
                                 recipient, audience, rule, allow_list, fields, disclosed_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
        ON CONFLICT (disclosure_id) DO NOTHING
        RETURNING disclosure_id
        """,
        row.disclosure_id,
        row.event_id,
        row.contact_id,
        row.channel,
        row.destination,
        row.recipient,
        row.audience,
        row.rule,
        row.allow_list,
        list(row.fields),
        row.disclosed_at,
    )
    return inserted is not None


async def insert_disclosures(conn: Connection, rows: Sequence[DisclosureRow]) -> set[str]:
    """Record disclosures in the audit; return the ids of those that are new.

    (The field names of each row travel as a JSON array: unnest would flatten a 2-D array.)
    """
    if not rows:
        return set()
    added = await conn.fetch(
        """
        INSERT INTO disclosures (disclosure_id, event_id, contact_id, channel, destination,
                                 recipient, audience, rule, allow_list, fields, disclosed_at)
        SELECT r.disclosure_id, r.event_id, r.contact_id, r.channel, r.destination,
               r.recipient, r.audience, r.rule, r.allow_list,
               ARRAY(SELECT f.name FROM jsonb_array_elements_text(r.fields::jsonb)
                         WITH ORDINALITY AS f(name, n) ORDER BY f.n),
               r.disclosed_at
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                    $7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[])
            AS r(disclosure_id, event_id, contact_id, channel, destination, recipient,
                 audience, rule, allow_list, fields, disclosed_at)
        ON CONFLICT (disclosure_id) DO NOTHING
        RETURNING disclosure_id
        """,
        [r.disclosure_id for r in rows],
        [r.event_id for r in rows],
        [r.contact_id for r in rows],
        [r.channel for r in rows],
        [r.destination for r in rows],
        [r.recipient for r in rows],
        [r.audience for r in rows],
        [r.rule for r in rows],
        [r.allow_list for r in rows],
        [json.dumps(list(r.fields)) for r in rows],
        [r.disclosed_at for r in rows],
    )
    return {r["disclosure_id"] for r in added}


@dataclass(frozen=True)
class NoticeRow:
    """An Operation Encompass notice as recorded (ids and times: the child is in the event)."""

    notice_id: str
    contact_id: str
    subject_id: str
    school_urn: str
    police_reference: str
    incident_at: datetime
    due_by: datetime


async def insert_notices(conn: Connection, rows: Sequence[NoticeRow]) -> set[str]:
    """Record Operation Encompass notices; return the ids of those that are new (a child's
    notice about a contact is recorded once)."""
    if not rows:
        return set()
    added = await conn.fetch(
        """
        INSERT INTO encompass_notices
            (notice_id, contact_id, subject_id, school_urn, police_reference, incident_at, due_by)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                             $6::timestamptz[], $7::timestamptz[])
        ON CONFLICT DO NOTHING
        RETURNING notice_id
        """,
        [r.notice_id for r in rows],
        [r.contact_id for r in rows],
        [r.subject_id for r in rows],
        [r.school_urn for r in rows],
        [r.police_reference for r in rows],
        [r.incident_at for r in rows],
        [r.due_by for r in rows],
    )
    return {r["notice_id"] for r in added}


async def insert_unmatched(conn: Connection, children: Sequence[Unmatched]) -> set[tuple[str, str]]:
    """Put school-age children without a school to notify on the police desk's list;
    return the (contact id, subject id) of those that are new."""
    if not children:
        return set()
    added = await conn.fetch(
        """
        INSERT INTO encompass_unmatched
            (contact_id, subject_id, reason, police_reference, force, incident_at, due_by)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                             $6::timestamptz[], $7::timestamptz[])
        ON CONFLICT DO NOTHING
        RETURNING contact_id, subject_id
        """,
        [c.contact_id for c in children],
        [c.subject_id for c in children],
        [c.reason for c in children],
        [c.police_reference for c in children],
        [c.force for c in children],
        [c.incident_at for c in children],
        [c.due_by for c in children],
    )
    return {(r["contact_id"], r["subject_id"]) for r in added}


async def insert_withheld(conn: Connection, children: Sequence[Withheld]) -> set[tuple[str, str]]:
    """Record the children of restricted notifications whose school is not told; return
    the (contact id, subject id) of those that are new."""
    if not children:
        return set()
    added = await conn.fetch(
        """
        INSERT INTO encompass_withheld
            (contact_id, subject_id, school_urn, reason, police_reference, force, incident_at)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                             $6::text[], $7::timestamptz[])
        ON CONFLICT DO NOTHING
        RETURNING contact_id, subject_id
        """,
        [c.contact_id for c in children],
        [c.subject_id for c in children],
        [c.school_urn for c in children],
        [c.reason for c in children],
        [c.police_reference for c in children],
        [c.force for c in children],
        [c.incident_at for c in children],
    )
    return {(r["contact_id"], r["subject_id"]) for r in added}


async def mark_notices_sent(conn: Connection, topic: str) -> list[bool]:
    """Mark notices whose outbox row has been published; one ``on time?`` per notice.

    A cross-service read (docs/design.md "Cross-service reads"): ``outbox`` is the shared
    bookkeeping of :mod:`services.common.outbox`, whose relay sets ``published_at``. Only
    notifications' own rows are read (the notices' topic, ``topic``, and the notices' ids):
    a notice is sent when the broker has it, which only the relay knows and no event says.
    """
    rows = await conn.fetch(
        """
        UPDATE encompass_notices n SET sent_at = o.published_at
        FROM outbox o
        WHERE o.topic = $1 AND o.event_id = n.notice_id
          AND n.sent_at IS NULL AND o.published_at IS NOT NULL
        RETURNING n.sent_at <= n.due_by AS on_time
        """,
        topic,
    )
    return [bool(r["on_time"]) for r in rows]


async def unsent_notices(conn: Connection) -> tuple[int, int]:
    """(not yet due, overdue) counts of notices still waiting to be published."""
    row = await conn.fetchrow(
        """
        SELECT count(*) FILTER (WHERE due_by >= now()) AS waiting,
               count(*) FILTER (WHERE due_by < now()) AS overdue
        FROM encompass_notices WHERE sent_at IS NULL
        """
    )
    assert row is not None
    return int(row["waiting"]), int(row["overdue"])


# --- Webhook deliveries -----------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryRow:
    """A webhook delivery to add: one feedback event for one agency's endpoint."""

    delivery_id: str
    event_id: str
    contact_id: str
    agency_id: str
    audience: str
    ce_source: str
    ce_time: datetime
    data: bytes


async def insert_deliveries(conn: Connection, rows: Sequence[DeliveryRow]) -> set[str]:
    """Add webhook deliveries in the caller's transaction; return the ids of those that
    are new."""
    if not rows:
        return set()
    added = await conn.fetch(
        """
        INSERT INTO webhook_deliveries
            (delivery_id, event_id, contact_id, agency_id, audience, ce_source, ce_time, data)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                             $6::text[], $7::timestamptz[], $8::bytea[])
        ON CONFLICT DO NOTHING
        RETURNING delivery_id
        """,
        [r.delivery_id for r in rows],
        [r.event_id for r in rows],
        [r.contact_id for r in rows],
        [r.agency_id for r in rows],
        [r.audience for r in rows],
        [r.ce_source for r in rows],
        [r.ce_time for r in rows],
        [r.data for r in rows],
    )
    return {r["delivery_id"] for r in added}


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery a sender holds for one attempt."""

    delivery_id: str
    event_id: str
    contact_id: str
    agency_id: str
    audience: str
    ce_source: str
    ce_time: datetime
    data: bytes
    attempt: int


async def claim_deliveries(
    conn: Connection, *, limit: int, lease_seconds: float
) -> list[ClaimedDelivery]:
    """Take up to ``limit`` due deliveries for one attempt each (skipping others' leases).

    The attempt is numbered and recorded ``in_flight`` now; one left ``in_flight`` by a
    sender that died is marked ``abandoned`` when the delivery is claimed again.
    """
    async with conn.transaction():
        rows = await conn.fetch(
            """
            UPDATE webhook_deliveries d
            SET attempts = d.attempts + 1,
                lease_until = now() + make_interval(secs => $2)
            WHERE d.delivery_id IN (
                SELECT delivery_id FROM webhook_deliveries
                WHERE status IN ('pending', 'retrying')
                  AND next_attempt_at <= now()
                  AND (lease_until IS NULL OR lease_until < now())
                ORDER BY next_attempt_at
                LIMIT $1
                FOR UPDATE SKIP LOCKED
            )
            RETURNING d.delivery_id, d.event_id, d.contact_id, d.agency_id, d.audience,
                      d.ce_source, d.ce_time, d.data, d.attempts
            """,
            limit,
            lease_seconds,
        )
        if not rows:
            return []
        ids = [r["delivery_id"] for r in rows]
        await conn.execute(
            """
            UPDATE webhook_attempts SET result = 'abandoned', finished_at = now()
            WHERE delivery_id = ANY($1::text[]) AND result = 'in_flight'
            """,
            ids,
        )
        await conn.executemany(
            """
            INSERT INTO webhook_attempts (delivery_id, attempt, result)
            VALUES ($1, $2, 'in_flight')
            """,
            [(r["delivery_id"], r["attempts"]) for r in rows],
        )
    return [
        ClaimedDelivery(
            delivery_id=r["delivery_id"],
            event_id=r["event_id"],
            contact_id=r["contact_id"],
            agency_id=r["agency_id"],
            audience=r["audience"],
            ce_source=r["ce_source"],
            ce_time=r["ce_time"],
            data=bytes(r["data"]),
            attempt=r["attempts"],
        )
        for r in rows
    ]


async def finish_attempt(
    conn: Connection,
    delivery: ClaimedDelivery,
    *,
    delivered: bool,
    status_code: int | None,
    error: str | None,
    dead_lettered: bool,
    retry_in_seconds: float,
    disclosure: DisclosureRow | None = None,
) -> None:
    """Record the attempt's result and the delivery's new status, in one transaction.

    A delivered attempt is a disclosure through another channel: ``disclosure`` is
    recorded in the same transaction.
    """
    status = "delivered" if delivered else ("dead_lettered" if dead_lettered else "retrying")
    async with conn.transaction():
        await conn.execute(
            """
            UPDATE webhook_attempts
            SET result = $3, status_code = $4, error = $5, finished_at = now()
            WHERE delivery_id = $1 AND attempt = $2
            """,
            delivery.delivery_id,
            delivery.attempt,
            "delivered" if delivered else "failed",
            status_code,
            error,
        )
        await conn.execute(
            """
            UPDATE webhook_deliveries
            SET status = $2, last_error = $3, lease_until = NULL,
                next_attempt_at = now() + make_interval(secs => $4),
                finished_at = CASE WHEN $2 IN ('delivered', 'dead_lettered') THEN now() END
            WHERE delivery_id = $1
            """,
            delivery.delivery_id,
            status,
            error,
            retry_in_seconds,
        )
        if disclosure is not None:
            await record_disclosure(conn, disclosure)


async def pending_deliveries(conn: Connection) -> tuple[int, float | None]:
    """(deliveries not finished, seconds until the next one is due; None if none)."""
    row = await conn.fetchrow(
        """
        SELECT count(*) AS n,
               extract(epoch FROM
                   min(greatest(next_attempt_at, coalesce(lease_until, next_attempt_at))) - now()
               ) AS due_in
        FROM webhook_deliveries WHERE status IN ('pending', 'retrying')
        """
    )
    assert row is not None
    due_in = row["due_in"]
    return int(row["n"]), None if due_in is None else float(due_in)
