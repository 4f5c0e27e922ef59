"""Notifications' SQL, in one place: feedback, disclosures, Operation Encompass, webhooks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from services.notifications.encompass import Unmatched
from services.notifications.feedback import Reported

if TYPE_CHECKING:
    from services.common.db import Connection


async def lock_contact(conn: Connection, contact_id: str) -> None:
    """Serialise feedback decisions about one contact until the transaction ends.

    Routings of a contact share a partition, so this only matters while a rebalance lets
    two workers hold the same events for a moment.
    """
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('feedback:' || $1))", contact_id)


async def last_reported(conn: Connection, contact_id: str) -> Reported | None:
    """What the referrer was last told about the contact (outcome or latest update)."""
    row = await conn.fetchrow(
        """
        SELECT outcome, hub, sequence, decided_at, routed_at FROM feedback
        WHERE contact_id = $1 AND kind IN ('outcome', 'update')
        ORDER BY sequence DESC
        LIMIT 1
        """,
        contact_id,
    )
    if row is None:
        return None
    return Reported(
        outcome=row["outcome"],
        hub=row["hub"],
        sequence=row["sequence"],
        decided_at=row["decided_at"],
        routed_at=row["routed_at"],
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


async def record_feedback(conn: Connection, row: FeedbackRow) -> bool:
    """Record one feedback event; False when this contact already had it (same kind+sequence)."""
    inserted = await conn.fetchval(
        """
        INSERT INTO feedback (feedback_id, contact_id, kind, agency_id, audience, issued_at,
                              sequence, outcome, hub, routed_id, decided_at, routed_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
        ON CONFLICT DO NOTHING
        RETURNING feedback_id
        """,
        row.feedback_id,
        row.contact_id,
        row.kind,
        row.agency_id,
        row.audience,
        row.issued_at,
        row.sequence,
        row.outcome,
        row.hub,
        row.routed_id,
        row.decided_at,
        row.routed_at,
    )
    return inserted is not None


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


async def record_notice(
    conn: Connection,
    *,
    notice_id: str,
    contact_id: str,
    subject_id: str,
    school_urn: str,
    police_reference: str,
    incident_at: datetime,
    due_by: datetime,
) -> bool:
    """Record an Operation Encompass notice; False if this child's notice exists already."""
    inserted = await conn.fetchval(
        """
        INSERT INTO encompass_notices
            (notice_id, contact_id, subject_id, school_urn, police_reference, incident_at, due_by)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT DO NOTHING
        RETURNING notice_id
        """,
        notice_id,
        contact_id,
        subject_id,
        school_urn,
        police_reference,
        incident_at,
        due_by,
    )
    return inserted is not None


async def record_unmatched(conn: Connection, child: Unmatched) -> bool:
    """Put a school-age child without a school to notify on the police desk's list."""
    inserted = await conn.fetchval(
        """
        INSERT INTO encompass_unmatched
            (contact_id, subject_id, reason, police_reference, force, incident_at, due_by)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT DO NOTHING
        RETURNING subject_id
        """,
        child.contact_id,
        child.subject_id,
        child.reason,
        child.police_reference,
        child.force,
        child.incident_at,
        child.due_by,
    )
    return inserted is not None


async def mark_notices_sent(conn: Connection, topic: str) -> list[bool]:
    """Mark notices whose outbox row has been published; one ``on time?`` per notice."""
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


async def enqueue_delivery(
    conn: Connection,
    *,
    delivery_id: str,
    event_id: str,
    contact_id: str,
    agency_id: str,
    audience: str,
    ce_source: str,
    ce_time: datetime,
    data: bytes,
) -> bool:
    """Add a webhook delivery in the caller's transaction; False if it exists already."""
    inserted = await conn.fetchval(
        """
        INSERT INTO webhook_deliveries
            (delivery_id, event_id, contact_id, agency_id, audience, ce_source, ce_time, data)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        ON CONFLICT DO NOTHING
        RETURNING delivery_id
        """,
        delivery_id,
        event_id,
        contact_id,
        agency_id,
        audience,
        ce_source,
        ce_time,
        data,
    )
    return inserted is not None


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
