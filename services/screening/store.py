"""Screening's SQL, in one place: decisions (automated, held, overridden) and the audit of
practitioner decisions."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from schemas.events import Decision
from schemas.inbound import PractitionerDecision
from services.screening.practitioner import ContactDecisions

if TYPE_CHECKING:
    from services.common.db import Connection

DecisionStatus = Literal["effective", "awaiting_confirmation", "superseded"]


async def contacts_with_automated_decision(
    conn: Connection, contact_ids: Sequence[str]
) -> set[str]:
    """The contacts among ``contact_ids`` that already have their automated decision (under
    any rule-set version)."""
    rows = await conn.fetch(
        "SELECT contact_id FROM decisions WHERE contact_id = ANY($1::text[]) AND source = 'rules'",
        list(contact_ids),
    )
    return {r["contact_id"] for r in rows}


@dataclass(frozen=True)
class DecisionRow:
    """A decision to record, with what the decisions table keeps beside the event."""

    decision: Decision
    subject_key: str
    status: DecisionStatus
    practitioner: PractitionerDecision | None = None


async def record_decisions(conn: Connection, rows: Sequence[DecisionRow]) -> set[str]:
    """Insert decisions in one statement; return the ids that were new (a decision already
    recorded is left as it is). Each child's own level, outcome and RAG go in ``subjects``
    beside the contact's (migration 0012)."""
    if not rows:
        return set()
    columns = [
        [r.decision.decision_id for r in rows],
        [r.decision.contact_id for r in rows],
        [r.decision.level for r in rows],
        [r.decision.outcome for r in rows],
        [r.decision.rag for r in rows],
        [r.decision.target_agency for r in rows],
        [json.dumps([hit.model_dump() for hit in r.decision.rules]) for r in rows],
        [r.decision.rule_set_version for r in rows],
        [r.decision.source for r in rows],
        [r.decision.hub for r in rows],
        [r.decision.decided_at for r in rows],
        [r.decision.rule_set_hash for r in rows],
        [r.subject_key for r in rows],
        [r.status for r in rows],
        [r.decision.supersedes_decision_id for r in rows],
        [None if r.practitioner is None else r.practitioner.practitioner_id for r in rows],
        [None if r.practitioner is None else r.practitioner.agency for r in rows],
        [r.decision.model_dump_json() for r in rows],
        [_subjects_json(r.decision) for r in rows],
    ]
    inserted = await conn.fetch(
        """
        INSERT INTO decisions (decision_id, contact_id, level, outcome, rag, target_agency,
            rules, rule_set_version, source, hub, decided_at, rule_set_hash, subject_key,
            status, supersedes_decision_id, practitioner_id, practitioner_agency, payload,
            subjects)
        SELECT d, c, l, o, g, t, r::jsonb, rv, s, h, a, x, k, st, sup, pid, pag, p::jsonb,
               sj::jsonb
        FROM unnest($1::text[], $2::text[], $3::smallint[], $4::text[], $5::text[], $6::text[],
                    $7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[],
                    $12::text[], $13::text[], $14::text[], $15::text[], $16::text[],
                    $17::text[], $18::text[], $19::text[])
             AS u(d, c, l, o, g, t, r, rv, s, h, a, x, k, st, sup, pid, pag, p, sj)
        ON CONFLICT (decision_id) DO NOTHING
        RETURNING decision_id
        """,
        *columns,
    )
    return {r["decision_id"] for r in inserted}


def _subjects_json(decision: Decision) -> str:
    """Each child's own screening as the ``subjects`` column keeps it: subject id, level,
    outcome, RAG, target agency and rules (None where the decision's own apply: a
    practitioner's decision is for every child)."""
    return json.dumps([s.model_dump(mode="json") for s in decision.subjects])


async def record_decision(
    conn: Connection,
    decision: Decision,
    *,
    subject_key: str,
    status: DecisionStatus,
    practitioner: PractitionerDecision | None = None,
) -> bool:
    """Insert a decision; False when it was already recorded."""
    row = DecisionRow(decision, subject_key, status, practitioner)
    return bool(await record_decisions(conn, [row]))


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
