"""Notifications' SQL, in one place: what was disclosed to whom."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.common.db import Connection


async def record_feedback(
    conn: Connection,
    *,
    feedback_id: str,
    contact_id: str,
    kind: str,
    agency_id: str,
    audience: str,
    issued_at: datetime,
) -> bool:
    """Record one feedback disclosure; False when this contact already had this kind."""
    inserted = await conn.fetchval(
        """
        INSERT INTO feedback (feedback_id, contact_id, kind, agency_id, audience, issued_at)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT DO NOTHING
        RETURNING feedback_id
        """,
        feedback_id,
        contact_id,
        kind,
        agency_id,
        audience,
        issued_at,
    )
    return inserted is not None
