"""The audit log: who or what changed which entity, how, and when — one way to write it.

Every ``audit_log`` row (services through the pipeline, the ``mash`` commands directly)
is written by :func:`write_audit`, so every row has the same shape: the writing service,
the entity (type and id), the action, the actor (``system`` for the services' own
decisions, a practitioner's or operator's id otherwise) and a detail of ids and codes —
never personal data. The time is the database's (``at``, the transaction's time).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.common.db import Connection

#: The actor of a change a service made by itself (the column's default).
SYSTEM = "system"


@dataclass(frozen=True)
class AuditEntry:
    """One audit_log row (ids and codes only)."""

    entity_type: str
    entity_id: str
    action: str
    detail: Mapping[str, object] = field(default_factory=dict)
    actor: str = SYSTEM


async def write_audit(conn: Connection, service: str, entries: Sequence[AuditEntry]) -> None:
    """Append ``entries`` to the audit log in one statement, in the caller's transaction
    (the audit commits with the change it records, or not at all)."""
    if not entries:
        return
    await conn.execute(
        """
        INSERT INTO audit_log (service, entity_type, entity_id, action, actor, detail)
        SELECT $1, t, i, a, w, d::jsonb
        FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
            AS v(t, i, a, w, d)
        """,
        service,
        [e.entity_type for e in entries],
        [e.entity_id for e in entries],
        [e.action for e in entries],
        [e.actor for e in entries],
        [json.dumps(dict(e.detail), default=str) for e in entries],
    )
