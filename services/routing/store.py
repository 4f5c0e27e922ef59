"""Routing's SQL, in one place: queue items, their history and deadlines, decisions
applied, SLA breach claims and open-item counts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from schemas.events import Decision, QueueItem
from services.common.ids import derive_id
from services.routing.queues import OpenItem

if TYPE_CHECKING:
    from services.common.db import Connection


def _deadlines_json(deadlines: Mapping[str, datetime]) -> str:
    return json.dumps({k: v.isoformat() for k, v in deadlines.items()})


def item_from_row(row: asyncpg.Record) -> QueueItem:
    """A queue item as stored, as the contract model."""
    deadlines = row["deadlines"]
    return QueueItem.model_validate(
        {
            "queue_item_id": row["queue_item_id"],
            "contact_id": row["contact_id"],
            "decision_id": row["decision_id"],
            "subject_id": row["subject_id"],
            "hub": row["hub"],
            "queue": row["queue"],
            "outcome": row["outcome"],
            "target_agency": row["target_agency"],
            "rag": row["rag"],
            "deadlines": json.loads(deadlines) if isinstance(deadlines, str) else deadlines,
            "open_case_update": row["open_case_update"],
            "status": row["status"],
            "routed_at": row["routed_at"],
            "status_at": row["status_at"],
            "strategy_outcome": row["strategy_outcome"],
            "closure_reason": row["closure_reason"],
            "replaced_by": row["replaced_by"],
        }
    )


# --- decisions ---------------------------------------------------------------------------


async def decision_applied(conn: Connection, decision_id: str) -> bool:
    """Whether routing has already applied (or set aside) this decision."""
    found = await conn.fetchval(
        "SELECT 1 FROM routing_decisions WHERE decision_id = $1", decision_id
    )
    return found is not None


async def superseded_by(conn: Connection, decision_id: str) -> str | None:
    """The id of an applied decision that supersedes ``decision_id``, if any."""
    found: str | None = await conn.fetchval(
        "SELECT decision_id FROM routing_decisions WHERE supersedes_decision_id = $1 LIMIT 1",
        decision_id,
    )
    return found


async def record_decision(
    conn: Connection, decision: Decision, effect: str, routed_at: datetime
) -> None:
    """Remember that ``decision`` was applied (``routed``) or set aside (``superseded``)."""
    await conn.execute(
        """
        INSERT INTO routing_decisions
            (decision_id, contact_id, source, outcome, supersedes_decision_id, effect, routed_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (decision_id) DO NOTHING
        """,
        decision.decision_id,
        decision.contact_id,
        decision.source,
        decision.outcome,
        decision.supersedes_decision_id,
        effect,
        routed_at,
    )


# --- queue items -------------------------------------------------------------------------


async def open_items_for(conn: Connection, subject_ids: Sequence[str]) -> dict[str, list[OpenItem]]:
    """Open items of each child, locked until the transaction ends.

    The lock makes a decision and a queue update (or two decisions from different
    partitions) that touch the same item take turns instead of both moving it.
    """
    rows = await conn.fetch(
        """
        SELECT queue_item_id, contact_id, decision_id, subject_id, hub, queue, target_agency,
               rag, open_case_update, routed_at
        FROM queue_items
        WHERE subject_id = ANY($1::text[]) AND status <> 'closed'
        ORDER BY routed_at, queue_item_id
        FOR UPDATE
        """,
        list(subject_ids),
    )
    found: dict[str, list[OpenItem]] = {}
    for r in rows:
        found.setdefault(r["subject_id"], []).append(OpenItem(**dict(r)))
    return found


async def load_item(conn: Connection, queue_item_id: str) -> QueueItem | None:
    """One item, locked until the transaction ends (None if there is no such item)."""
    row = await conn.fetchrow(
        "SELECT * FROM queue_items WHERE queue_item_id = $1 FOR UPDATE", queue_item_id
    )
    return None if row is None else item_from_row(row)


async def insert_item(conn: Connection, item: QueueItem) -> bool:
    """Insert an open queue item and its clocks; False when it already exists."""
    inserted = await conn.fetchval(
        """
        INSERT INTO queue_items (queue_item_id, contact_id, decision_id, subject_id, hub, queue,
            outcome, rag, target_agency, status, deadlines, open_case_update, routed_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12, $13)
        ON CONFLICT (queue_item_id) DO NOTHING
        RETURNING queue_item_id
        """,
        item.queue_item_id,
        item.contact_id,
        item.decision_id,
        item.subject_id,
        item.hub,
        item.queue,
        item.outcome,
        item.rag,
        item.target_agency,
        item.status,
        _deadlines_json(item.deadlines),
        item.open_case_update,
        item.routed_at,
    )
    if inserted is None:
        return False
    await add_deadlines(conn, item.queue_item_id, item.deadlines)
    return True


async def save_status(conn: Connection, item: QueueItem) -> None:
    """Store an item's new status, its codes, deadlines and replacement."""
    await conn.execute(
        """
        UPDATE queue_items
        SET status = $2, status_at = $3, strategy_outcome = $4, closure_reason = $5,
            replaced_by = $6, deadlines = $7::jsonb, updated_at = now()
        WHERE queue_item_id = $1
        """,
        item.queue_item_id,
        item.status,
        item.status_at,
        item.strategy_outcome,
        item.closure_reason,
        item.replaced_by,
        _deadlines_json(item.deadlines),
    )


async def add_history(
    conn: Connection,
    *,
    queue_item_id: str,
    action: str,
    cause: str,
    from_status: str | None,
    to_status: str,
    at: datetime,
    actor: str,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Record one change of an item (once per item, action and cause)."""
    await conn.execute(
        """
        INSERT INTO queue_item_history
            (history_id, queue_item_id, action, from_status, to_status, at, actor, detail)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)
        ON CONFLICT (history_id) DO NOTHING
        """,
        derive_id("queue-item-history", queue_item_id, action, cause),
        queue_item_id,
        action,
        from_status,
        to_status,
        at,
        actor,
        json.dumps(dict(detail or {}), default=str),
    )


# --- deadlines and breaches --------------------------------------------------------------


async def add_deadlines(
    conn: Connection, queue_item_id: str, deadlines: Mapping[str, datetime]
) -> None:
    """Start clocks of an item (a clock already started keeps its due time)."""
    if not deadlines:
        return
    await conn.execute(
        """
        INSERT INTO queue_item_deadlines (queue_item_id, deadline, due_at)
        SELECT $1, name, due FROM unnest($2::text[], $3::timestamptz[]) AS d(name, due)
        ON CONFLICT (queue_item_id, deadline) DO NOTHING
        """,
        queue_item_id,
        list(deadlines),
        list(deadlines.values()),
    )


async def meet_deadlines(
    conn: Connection, queue_item_id: str, names: Iterable[str], at: datetime, met_by: str
) -> None:
    """Mark clocks of an item met at ``at`` (a clock met before keeps its first time)."""
    await conn.execute(
        """
        UPDATE queue_item_deadlines SET met_at = $3, met_by = $4
        WHERE queue_item_id = $1 AND deadline = ANY($2::text[]) AND met_at IS NULL
        """,
        queue_item_id,
        list(names),
        at,
        met_by,
    )


@dataclass(frozen=True)
class DueBreach:
    """A missed clock claimed for its breach event."""

    queue_item_id: str
    deadline: str
    due_at: datetime
    hub: str
    queue: str
    breach_id: str


async def claim_breaches(
    conn: Connection,
    now: datetime,
    *,
    limit: int,
    queue_item_ids: Sequence[str] | None = None,
) -> list[DueBreach]:
    """Claim clocks that ran out by ``now`` unmet, and mark them breached at ``now``.

    A clock is missed when its due time has passed and it was not met by then (met late
    counts as missed). Rows are claimed with FOR UPDATE SKIP LOCKED, so routing workers
    scanning together never claim the same one; the caller enqueues the breach events in
    this same transaction, so a clock is marked breached exactly when its event is.
    """
    rows = await conn.fetch(
        """
        SELECT d.queue_item_id, d.deadline, d.due_at, i.hub, i.queue
        FROM queue_item_deadlines d JOIN queue_items i USING (queue_item_id)
        WHERE d.breached_at IS NULL AND d.due_at <= $1
          AND (d.met_at IS NULL OR d.met_at > d.due_at)
          AND ($3::text[] IS NULL OR d.queue_item_id = ANY($3::text[]))
        ORDER BY d.due_at, d.queue_item_id, d.deadline
        LIMIT $2
        FOR UPDATE OF d SKIP LOCKED
        """,
        now,
        limit,
        None if queue_item_ids is None else list(queue_item_ids),
    )
    due = [
        DueBreach(
            queue_item_id=r["queue_item_id"],
            deadline=r["deadline"],
            due_at=r["due_at"],
            hub=r["hub"],
            queue=r["queue"],
            breach_id=derive_id("sla-breach", r["queue_item_id"], r["deadline"]),
        )
        for r in rows
    ]
    if due:
        await conn.execute(
            """
            UPDATE queue_item_deadlines d SET breached_at = $1, breach_id = b.breach_id
            FROM unnest($2::text[], $3::text[], $4::text[]) AS b(queue_item_id, deadline, breach_id)
            WHERE d.queue_item_id = b.queue_item_id AND d.deadline = b.deadline
            """,
            now,
            [b.queue_item_id for b in due],
            [b.deadline for b in due],
            [b.breach_id for b in due],
        )
    return due


# --- what ops see ------------------------------------------------------------------------


async def open_counts(conn: Connection) -> dict[tuple[str, str], int]:
    """Open items per (hub, queue)."""
    rows = await conn.fetch("SELECT hub, queue, open_items FROM queue_open_items")
    return {(r["hub"], r["queue"]): int(r["open_items"]) for r in rows}
