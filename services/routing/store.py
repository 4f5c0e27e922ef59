"""Routing's SQL, in one place: queue items."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from schemas.events import QueueItem

if TYPE_CHECKING:
    from services.common.db import Connection


async def record_queue_item(conn: Connection, item: QueueItem) -> bool:
    """Insert an open queue item; False when it already exists."""
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
        json.dumps({k: v.isoformat() for k, v in item.deadlines.items()}),
        item.open_case_update,
        item.routed_at,
    )
    return inserted is not None
