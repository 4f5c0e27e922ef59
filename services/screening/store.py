"""Screening's SQL, in one place: decisions (automated, held, overridden) and the audit of
practitioner decisions."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Literal

from schemas.events import Decision
from schemas.inbound import PractitionerDecision
from services.screening.practitioner import ContactDecisions

if TYPE_CHECKING:
    from datetime import datetime

    from services.common.db import Connection

DecisionStatus = Literal["effective", "awaiting_confirmation", "superseded"]


async def has_automated_decision(conn: Connection, contact_id: str) -> bool:
    """Whether the contact already has its automated decision (under any rule-set version)."""
    found = await conn.fetchval(
        "SELECT 1 FROM decisions WHERE contact_id = $1 AND source = 'rules'", contact_id
    )
    return found is not None


async def record_decision(
    conn: Connection,
    decision: Decision,
    *,
    subject_key: str,
    status: DecisionStatus,
    practitioner: PractitionerDecision | None = None,
) -> bool:
    """Insert a decision; False when it was already recorded."""
    inserted = await conn.fetchval(
        """
        INSERT INTO decisions (decision_id, contact_id, level, outcome, rag, target_agency,
            rules, rule_set_version, source, hub, decided_at, rule_set_hash, subject_key,
            status, supersedes_decision_id, practitioner_id, practitioner_agency, payload)
        VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11, $12, $13, $14, $15,
            $16, $17, $18::jsonb)
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
        decision.rule_set_hash,
        subject_key,
        status,
        decision.supersedes_decision_id,
        None if practitioner is None else practitioner.practitioner_id,
        None if practitioner is None else practitioner.agency,
        decision.model_dump_json(),
    )
    return inserted is not None


async def load_contact_decisions(conn: Connection, contact_id: str) -> ContactDecisions | None:
    """The contact's decisions, locked until the transaction ends; None if it has none."""
    rows = await conn.fetch(
        """
        SELECT decision_id, source, status, subject_key, payload FROM decisions
        WHERE contact_id = $1 AND payload IS NOT NULL
        ORDER BY decided_at, decision_id
        FOR UPDATE
        """,
        contact_id,
    )
    automated = next((r for r in rows if r["source"] == "rules"), None)
    if automated is None:
        return None
    current = next((r for r in rows if r["status"] == "effective"), None)
    confirmed = await conn.fetch(
        """
        SELECT DISTINCT agency FROM practitioner_decisions
        WHERE contact_id = $1 AND kind = 'confirm' AND decision_id = $2
        """,
        contact_id,
        automated["decision_id"],
    )
    return ContactDecisions(
        subject_key=str(automated["subject_key"]),
        automated=Decision.model_validate_json(automated["payload"]),
        effective=None if current is None else Decision.model_validate_json(current["payload"]),
        confirmed_by=frozenset(str(r["agency"]) for r in confirmed),
    )


async def set_status(conn: Connection, decision_id: str, status: DecisionStatus) -> None:
    """Change a decision's status (superseded by an override, or released)."""
    await conn.execute(
        """
        UPDATE decisions SET status = $2,
            released_at = CASE WHEN status = 'awaiting_confirmation' AND $2 = 'effective'
                               THEN now() ELSE released_at END
        WHERE decision_id = $1
        """,
        decision_id,
        status,
    )


async def record_practitioner_decision(
    conn: Connection,
    event_id: str,
    decision: PractitionerDecision,
    *,
    result: str,
    decision_id: str,
) -> None:
    """Keep who decided what, for which agency, why and when (the audit of the decision)."""
    await conn.execute(
        """
        INSERT INTO practitioner_decisions (event_id, contact_id, practitioner_id, agency, kind,
            outcome, target_agency, reason, decided_at, result, decision_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
        ON CONFLICT (event_id) DO NOTHING
        """,
        event_id,
        decision.contact_id,
        decision.practitioner_id,
        decision.agency,
        decision.kind,
        decision.outcome,
        decision.target_agency,
        decision.reason,
        decision.decided_at,
        result,
        decision_id,
    )


async def audit_practitioner(
    conn: Connection,
    *,
    service: str,
    entity_id: str,
    action: str,
    actor: str,
    at: datetime,
    detail: dict[str, object],
) -> None:
    """An audit-log row naming the practitioner as the actor (ids and codes only)."""
    await conn.execute(
        """
        INSERT INTO audit_log (service, entity_type, entity_id, action, actor, detail)
        VALUES ($1, 'decision', $2, $3, $4, $5::jsonb)
        """,
        service,
        entity_id,
        action,
        actor,
        json.dumps({**detail, "decided_at": at.isoformat()}),
    )
