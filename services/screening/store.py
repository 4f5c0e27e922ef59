"""Screening's SQL, in one place."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from schemas.events import Decision

if TYPE_CHECKING:
    from services.common.db import Connection


async def record_decision(conn: Connection, decision: Decision) -> bool:
    """Insert a decision; False when it was already recorded."""
    inserted = await conn.fetchval(
        """
        INSERT INTO decisions (decision_id, contact_id, level, outcome, rag, target_agency,
            rules, rule_set_version, source, hub, decided_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11)
        ON CONFLICT (decision_id) DO NOTHING
        RETURNING decision_id
        """,
        decision.decision_id,
        decision.contact_id,
        decision.level,
        decision.outcome,
        decision.rag,
        decision.target_agency,
        json.dumps([r.model_dump() for r in decision.rules]),
        decision.rule_set_version,
        decision.source,
        decision.hub,
        decision.decided_at,
    )
    return inserted is not None
