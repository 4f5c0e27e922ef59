"""Intake's SQL, in one place: the system of record for contacts and children."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from schemas.base import printable
from schemas.events import Contact
from services.common.kafka import InboundMessage
from services.intake.contacts import ContactHistory, IdentifiedChild

if TYPE_CHECKING:
    from services.common.db import Connection

#: Re-referral window (DOMAIN.md: a referral within 12 months of a previous one).
RE_REFERRAL_WINDOW = timedelta(days=365)


async def contact_exists(conn: Connection, source_system: str, reference: str) -> bool:
    """Whether this (system, reference) was already recorded (a duplicate by source id)."""
    found = await conn.fetchval(
        "SELECT 1 FROM contacts WHERE source_system = $1 AND source_reference = $2",
        source_system,
        reference,
    )
    return found is not None


async def load_history(
    conn: Connection,
    subject_ids: Sequence[str],
    received_at: datetime,
    incident: date,
    source_system: str,
) -> ContactHistory:
    """Re-referral, open-case and linked-contact facts for the contact's children.

    - re-referral: a contact about one of the children received in the 12 months before;
    - open case: one of the children has a queue item that is not closed;
    - linked: a contact about one of the children with the same incident date that came
      from another sending system (police and a school reporting one incident).
    """
    ids = list(subject_ids)
    re_referral = await conn.fetchval(
        """
        SELECT EXISTS (
            SELECT 1 FROM contact_children cc JOIN contacts c USING (contact_id)
            WHERE cc.subject_id = ANY($1::text[])
              AND c.received_at >= $2 AND c.received_at < $3)
        """,
        ids,
        received_at - RE_REFERRAL_WINDOW,
        received_at,
    )
    open_case = await conn.fetchval(
        """
        SELECT EXISTS (SELECT 1 FROM queue_items
                       WHERE subject_id = ANY($1::text[]) AND status <> 'closed')
        """,
        ids,
    )
    rows = await conn.fetch(
        """
        SELECT DISTINCT c.contact_id FROM contact_children cc JOIN contacts c USING (contact_id)
        WHERE cc.subject_id = ANY($1::text[])
          AND c.incident_date = $2
          AND c.source_system <> $3
        ORDER BY c.contact_id
        """,
        ids,
        incident,
        source_system,
    )
    return ContactHistory(
        re_referral=bool(re_referral),
        open_case=bool(open_case),
        linked_contact_ids=[r["contact_id"] for r in rows],
    )


async def record_contact(
    conn: Connection,
    contact: Contact,
    children: Sequence[IdentifiedChild],
    incident: date,
    message: InboundMessage,
) -> None:
    """Insert the contact, its children, its links and the raw inbound bytes."""
    src = contact.source
    await conn.execute(
        """
        INSERT INTO contacts (contact_id, contact_reference, source_kind, source_system,
            source_reference, source_event_id, agency_id, referral_source, hub, out_of_area,
            subject_key, received_at, recorded_at, incident_date, address_unresolved,
            re_referral, open_case)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
        """,
        contact.contact_id,
        contact.contact_reference,
        src.kind,
        src.system,
        src.reference,
        src.event_id,
        src.agency_id,
        src.referral_source,
        contact.hub,
        contact.out_of_area,
        contact.subject_key,
        contact.received_at,
        contact.recorded_at,
        incident,
        contact.address_unresolved,
        contact.re_referral,
        contact.open_case,
    )
    await conn.executemany(
        """
        INSERT INTO contact_children (contact_id, subject_id, child_ref, household_key, match_basis)
        VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING
        """,
        [
            (
                contact.contact_id,
                c.child.subject_id,
                c.child.child_ref,
                c.child.household_key,
                c.basis,
            )
            for c in children
        ],
    )
    await conn.executemany(
        """
        INSERT INTO children (subject_id, match_basis, first_seen_at, last_contact_id, last_seen_at)
        VALUES ($1, $2, $3, $4, $3)
        ON CONFLICT (subject_id) DO UPDATE
            SET last_contact_id = EXCLUDED.last_contact_id, last_seen_at = EXCLUDED.last_seen_at
        """,
        [(c.child.subject_id, c.basis, contact.recorded_at, contact.contact_id) for c in children],
    )
    await conn.executemany(
        """
        INSERT INTO contact_links (contact_id, linked_contact_id, reason)
        VALUES ($1, $2, 'same_child_same_incident_date'), ($2, $1, 'same_child_same_incident_date')
        ON CONFLICT DO NOTHING
        """,
        [(contact.contact_id, other) for other in contact.linked_contact_ids],
    )
    await conn.execute(
        "INSERT INTO raw_payloads (contact_id, event_id, value, headers) VALUES ($1, $2, $3, $4)",
        contact.contact_id,
        src.event_id,
        message.value or b"",
        # Values as base64 (any bytes), names made printable: jsonb refuses NUL.
        json.dumps(
            [
                [printable(k), None if v is None else base64.b64encode(v).decode("ascii")]
                for k, v in message.headers
            ]
        ),
    )
