"""Routing's SQL, in one place: queue items, their history and deadlines, decisions
applied, SLA breach claims and open-item counts.

Every read and write takes the rows of a whole batch and is one statement (``= ANY($1)``,
``INSERT ... SELECT FROM unnest``, ``UPDATE ... FROM unnest``), so a batch of decisions or
queue updates costs the same number of statements whatever its size.

Over 400 lines on purpose: all of routing's SQL in one file, so what the service reads and
writes is reviewed in one place (and against its database role).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg

from schemas.events import Decision, QueueItem
from services.routing.deadlines import REFERRER_ACKNOWLEDGED
from services.routing.decisions import RecordState
from services.routing.queues import queue_item_id
from services.routing.rows import ClockRow, DueBreach, HistoryEntry, MetClocks, breach_id
from services.routing.updates import LifecycleState

if TYPE_CHECKING:
    from services.common.db import Connection


#: When notifications acknowledged each contact's referrer: routing's one read of another
#: service's table (docs/design.md "Cross-service reads"). ``feedback`` is notifications';
#: routing may SELECT it (services/common/database_roles.yaml says why) because the
#: acknowledgement meets the item's acknowledge-referrer clock at the time it was issued,
#: and routing judges its clocks in the transaction that changes them. Used by
#: :func:`load_lifecycle` and :func:`meet_acknowledgements`.
REFERRER_ACKNOWLEDGEMENTS = """
    SELECT contact_id, issued_at FROM feedback WHERE kind = 'acknowledgement'
"""


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
            "awaiting_practitioners": row["awaiting_practitioners"],
            "joins_strategy_discussion_of": row["joins_strategy_discussion_of"],
            "step_up": row["step_up"],
        }
    )


# --- what a batch reads -------------------------------------------------------------------


async def load_record(conn: Connection, decisions: Sequence[Decision]) -> RecordState:
    """The record as a batch of decisions finds it (two statements, whatever its size).

    The items are locked until the transaction ends: a decision and a queue update (or two
    decisions from different partitions) that touch the same item take turns instead of
    both moving it. Both batches lock items in id order, so they never wait for each other
    in a circle.
    """
    applied, superseded_by, held = await _decisions_seen(conn, [d.decision_id for d in decisions])
    children = sorted({s.subject_id for d in decisions for s in d.subjects})
    would_open = sorted(
        {queue_item_id(d.decision_id, s.subject_id) for d in decisions for s in d.subjects}
    )
    rows = await conn.fetch(
        """
        SELECT * FROM queue_items
        WHERE subject_id = ANY($1::text[])
          AND (status <> 'closed' OR queue_item_id = ANY($2::text[]))
        ORDER BY queue_item_id
        FOR UPDATE
        """,
        children,
        would_open,
    )
    return RecordState(applied, superseded_by, [item_from_row(r) for r in rows], held)


async def _decisions_seen(
    conn: Connection, decision_ids: Sequence[str]
) -> tuple[frozenset[str], dict[str, str], frozenset[str]]:
    """Which of ``decision_ids`` routing has applied, held or set aside; which applied
    decision supersedes each (the earliest recorded, when several do); and which it holds
    awaiting practitioners."""
    wanted = set(decision_ids)
    rows = await conn.fetch(
        """
        SELECT decision_id, supersedes_decision_id, effect FROM routing_decisions
        WHERE decision_id = ANY($1::text[]) OR supersedes_decision_id = ANY($1::text[])
        ORDER BY routed_at, decision_id
        """,
        sorted(wanted),
    )
    applied = frozenset(r["decision_id"] for r in rows if r["decision_id"] in wanted)
    held = frozenset(
        r["decision_id"] for r in rows if r["decision_id"] in wanted and r["effect"] == "held"
    )
    superseded_by: dict[str, str] = {}
    for r in rows:
        if r["supersedes_decision_id"] in wanted:
            superseded_by.setdefault(r["supersedes_decision_id"], r["decision_id"])
    return applied, superseded_by, held


async def load_lifecycle(
    conn: Connection, queue_item_ids: Sequence[str], discussions: Sequence[str] = ()
) -> LifecycleState:
    """The items a batch of queue updates names and their clocks, locked until the
    transaction ends, with when each item's referrer was acknowledged (two statements,
    whatever the batch's size). With them, the items that join the strategy discussions
    of ``discussions`` (items the batch records a discussion held on), locked too: the
    discussion's outcome reaches them."""
    ids = sorted(set(queue_item_ids))
    items = await conn.fetch(
        f"""
        SELECT q.*, f.issued_at AS referrer_acknowledged_at
        FROM queue_items q
        LEFT JOIN ({REFERRER_ACKNOWLEDGEMENTS}) f ON f.contact_id = q.contact_id
        WHERE q.queue_item_id = ANY($1::text[])
           OR q.joins_strategy_discussion_of = ANY($2::text[])
        ORDER BY q.queue_item_id FOR UPDATE OF q
        """,
        ids,
        sorted(set(discussions)),
    )
    clocks = await conn.fetch(
        """
        SELECT queue_item_id, deadline, due_at, met_at, met_by, breached_at
        FROM queue_item_deadlines WHERE queue_item_id = ANY($1::text[])
        ORDER BY queue_item_id, deadline
        FOR UPDATE
        """,
        ids,
    )
    return LifecycleState(
        [item_from_row(r) for r in items],
        [ClockRow(**dict(r)) for r in clocks],
        acknowledged={
            r["queue_item_id"]: r["referrer_acknowledged_at"]
            for r in items
            if r.get("referrer_acknowledged_at") is not None
        },
    )


# --- what routing writes -----------------------------------------------------------------


async def record_decisions(
    conn: Connection, decisions: Sequence[tuple[Decision, str]], routed_at: datetime
) -> None:
    """Remember that each decision was applied (``routed``), held awaiting practitioners
    (``held``) or set aside (``superseded``); a held decision released becomes ``routed``
    (each decision once per batch)."""
    if not decisions:
        return
    await conn.execute(
        """
        INSERT INTO routing_decisions
            (decision_id, contact_id, source, outcome, supersedes_decision_id, effect, routed_at)
        SELECT d, c, s, o, sup, e, $7
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
            AS v(d, c, s, o, sup, e)
        ON CONFLICT (decision_id) DO UPDATE
            SET effect = EXCLUDED.effect, routed_at = EXCLUDED.routed_at
            WHERE routing_decisions.effect = 'held' AND EXCLUDED.effect = 'routed'
        """,
        [d.decision_id for d, _ in decisions],
        [d.contact_id for d, _ in decisions],
        [d.source for d, _ in decisions],
        [d.outcome for d, _ in decisions],
        [d.supersedes_decision_id for d, _ in decisions],
        [effect for _, effect in decisions],
        routed_at,
    )


async def insert_items(conn: Connection, items: Sequence[QueueItem]) -> set[str]:
    """Insert open queue items (not their clocks); return the ids that were new."""
    if not items:
        return set()
    rows = await conn.fetch(
        """
        INSERT INTO queue_items (queue_item_id, contact_id, decision_id, subject_id, hub, queue,
            outcome, rag, target_agency, status, deadlines, open_case_update, routed_at,
            awaiting_practitioners, joins_strategy_discussion_of, step_up)
        SELECT i, c, d, s, h, q, o, r, t, st, dl::jsonb, u, at, w, j, su
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                    $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bool[],
                    $13::timestamptz[], $14::bool[], $15::text[], $16::bool[])
            WITH ORDINALITY AS v(i, c, d, s, h, q, o, r, t, st, dl, u, at, w, j, su, n)
        ORDER BY n
        ON CONFLICT (queue_item_id) DO NOTHING
        RETURNING queue_item_id
        """,
        [i.queue_item_id for i in items],
        [i.contact_id for i in items],
        [i.decision_id for i in items],
        [i.subject_id for i in items],
        [i.hub for i in items],
        [i.queue for i in items],
        [i.outcome for i in items],
        [i.rag for i in items],
        [i.target_agency for i in items],
        [i.status for i in items],
        [_deadlines_json(i.deadlines) for i in items],
        [i.open_case_update for i in items],
        [i.routed_at for i in items],
        [i.awaiting_practitioners for i in items],
        [i.joins_strategy_discussion_of for i in items],
        [i.step_up for i in items],
    )
    return {r["queue_item_id"] for r in rows}


async def save_statuses(conn: Connection, items: Sequence[QueueItem]) -> None:
    """Store items' new status, codes, deadlines, replacement and whether they still await
    practitioners (each item once)."""
    if not items:
        return
    await conn.execute(
        """
        UPDATE queue_items q
        SET status = v.status, status_at = v.status_at, strategy_outcome = v.strategy_outcome,
            closure_reason = v.closure_reason, replaced_by = v.replaced_by,
            deadlines = v.deadlines::jsonb, awaiting_practitioners = v.awaiting,
            updated_at = now()
        FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[],
                    $6::text[], $7::text[], $8::bool[])
            AS v(queue_item_id, status, status_at, strategy_outcome, closure_reason,
                 replaced_by, deadlines, awaiting)
        WHERE q.queue_item_id = v.queue_item_id
        """,
        [i.queue_item_id for i in items],
        [i.status for i in items],
        [i.status_at for i in items],
        [i.strategy_outcome for i in items],
        [i.closure_reason for i in items],
        [i.replaced_by for i in items],
        [_deadlines_json(i.deadlines) for i in items],
        [i.awaiting_practitioners for i in items],
    )


async def add_history(conn: Connection, entries: Sequence[HistoryEntry]) -> None:
    """Record changes of items in order (each history id once: the first is kept)."""
    unique: dict[str, HistoryEntry] = {}
    for entry in entries:  # one statement cannot insert a key twice: the first one wins
        unique.setdefault(entry.history_id, entry)
    rows = list(unique.values())
    if not rows:
        return
    await conn.execute(
        """
        INSERT INTO queue_item_history
            (history_id, queue_item_id, action, from_status, to_status, at, actor, detail)
        SELECT h, i, a, f, t, at, actor, d::jsonb
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                    $6::timestamptz[], $7::text[], $8::text[])
            WITH ORDINALITY AS v(h, i, a, f, t, at, actor, d, n)
        ORDER BY n
        ON CONFLICT (history_id) DO NOTHING
        """,
        [e.history_id for e in rows],
        [e.queue_item_id for e in rows],
        [e.action for e in rows],
        [e.from_status for e in rows],
        [e.to_status for e in rows],
        [e.at for e in rows],
        [e.actor for e in rows],
        [json.dumps(dict(e.detail), default=str) for e in rows],
    )


# --- deadlines and breaches --------------------------------------------------------------


async def add_deadlines(conn: Connection, deadlines: Mapping[str, Mapping[str, datetime]]) -> None:
    """Start clocks of items, given as item id -> clock name -> due time (a clock already
    started keeps its due time)."""
    rows = [(item, name, due) for item, clocks in deadlines.items() for name, due in clocks.items()]
    if not rows:
        return
    await conn.execute(
        """
        INSERT INTO queue_item_deadlines (queue_item_id, deadline, due_at)
        SELECT i, name, due FROM unnest($1::text[], $2::text[], $3::timestamptz[])
            AS d(i, name, due)
        ON CONFLICT (queue_item_id, deadline) DO NOTHING
        """,
        [item for item, _, _ in rows],
        [name for _, name, _ in rows],
        [due for _, _, due in rows],
    )


async def meet_deadlines(conn: Connection, met: Sequence[MetClocks]) -> None:
    """Mark clocks met (a clock met before keeps its first time; each item once)."""
    rows = [(m, name) for m in met for name in m.names]
    if not rows:
        return
    await conn.execute(
        """
        UPDATE queue_item_deadlines d SET met_at = v.at, met_by = v.met_by
        FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[])
            AS v(queue_item_id, deadline, at, met_by)
        WHERE d.queue_item_id = v.queue_item_id AND d.deadline = v.deadline
          AND d.met_at IS NULL
        """,
        [m.queue_item_id for m, _ in rows],
        [name for _, name in rows],
        [m.at for m, _ in rows],
        [m.met_by for m, _ in rows],
    )


async def meet_acknowledgements(
    conn: Connection, queue_item_ids: Sequence[str] | None = None
) -> None:
    """Meet the acknowledge-referrer clocks still unmet (of ``queue_item_ids``, or all) whose
    referrer notifications has acknowledged, at the time the acknowledgement was issued
    (one statement). Clocks another transaction holds are skipped: that routing batch
    judges them itself (:func:`load_lifecycle` reads the acknowledgement too), or the next
    scan meets them."""
    if queue_item_ids is not None and not queue_item_ids:
        return
    # deadlines.ACKNOWLEDGE_REFERRER, written as a literal so that the partial index
    # queue_item_deadlines_unacknowledged (migration 0008) serves the statement.
    await conn.execute(
        f"""
        WITH acknowledged AS (
            SELECT d.queue_item_id, d.deadline, f.issued_at
            FROM queue_item_deadlines d
            JOIN queue_items i USING (queue_item_id)
            JOIN ({REFERRER_ACKNOWLEDGEMENTS}) f ON f.contact_id = i.contact_id
            WHERE d.deadline = 'acknowledge_referrer' AND d.met_at IS NULL
              AND ($1::text[] IS NULL OR d.queue_item_id = ANY($1::text[]))
            ORDER BY d.queue_item_id
            FOR UPDATE OF d SKIP LOCKED
        )
        UPDATE queue_item_deadlines d SET met_at = a.issued_at, met_by = $2
        FROM acknowledged a
        WHERE d.queue_item_id = a.queue_item_id AND d.deadline = a.deadline
        """,
        None if queue_item_ids is None else list(queue_item_ids),
        REFERRER_ACKNOWLEDGED,
    )


async def claim_breaches(
    conn: Connection,
    now: datetime,
    *,
    limit: int | None,
    queue_item_ids: Sequence[str] | None = None,
) -> list[DueBreach]:
    """Claim clocks that ran out by ``now`` unmet (at most ``limit``, None for all; only
    those of ``queue_item_ids`` if given), and mark them breached at ``now``.

    A clock is missed when its due time has passed and it was not met by then (met late
    counts as missed). Rows are claimed with FOR UPDATE SKIP LOCKED, so routing workers
    scanning together never claim the same one; the caller enqueues the breach events in
    this same transaction, so a clock is marked breached exactly when its event is. (A batch
    of queue updates decides the same in memory: :meth:`ClockRow.missed` is this rule.)
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
            breach_id=breach_id(r["queue_item_id"], r["deadline"]),
        )
        for r in rows
    ]
    await mark_breached(conn, now, due)
    return due


async def mark_breached(conn: Connection, now: datetime, breaches: Sequence[DueBreach]) -> None:
    """Mark claimed clocks breached at ``now`` (in the transaction enqueuing their events)."""
    if not breaches:
        return
    await conn.execute(
        """
        UPDATE queue_item_deadlines d SET breached_at = $1, breach_id = b.breach_id
        FROM unnest($2::text[], $3::text[], $4::text[]) AS b(queue_item_id, deadline, breach_id)
        WHERE d.queue_item_id = b.queue_item_id AND d.deadline = b.deadline
        """,
        now,
        [b.queue_item_id for b in breaches],
        [b.deadline for b in breaches],
        [b.breach_id for b in breaches],
    )


# --- what ops see ------------------------------------------------------------------------


async def open_counts(conn: Connection) -> dict[tuple[str, str], int]:
    """Open items per (hub, queue)."""
    rows = await conn.fetch("SELECT hub, queue, open_items FROM queue_open_items")
    return {(r["hub"], r["queue"]): int(r["open_items"]) for r in rows}
