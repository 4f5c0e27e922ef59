"""Intake's SQL, in one place: the system of record for contacts and children.

A batch costs a constant number of statements whatever its size: three reads before its
events are decided (:func:`known_contacts`) and five writes after (:func:`record_contacts`),
each set-based (``unnest`` of one array per column). The reads return a superset of what
any event of the batch would have read on its own; :class:`KnownContacts` narrows it per
event and adds the batch's earlier contacts (see :mod:`services.intake.contacts` for why
that equals applying the events one by one).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from schemas.base import printable
from services.common.kafka import InboundMessage
from services.intake.contacts import (
    RE_REFERRAL_WINDOW,
    Arrival,
    IdentifiedChild,
    KnownContacts,
    NewContact,
    PriorContact,
    child_sightings,
)

if TYPE_CHECKING:
    from services.common.db import Connection

LINK_REASON = "same_child_same_incident_date"


async def known_contacts(conn: Connection, arrivals: Sequence[Arrival]) -> KnownContacts:
    """What the database holds for a batch's events, in three queries: their recorded
    (system, reference) pairs, the recorded contacts about their children that a
    re-referral window or an incident date of the batch may reach, and the open cases."""
    sources = await recorded_sources(
        conn, [(a.source.system, a.source.reference) for a in arrivals]
    )
    subject_ids = sorted({sid for a in arrivals for sid in a.subject_ids})
    if not subject_ids:
        return KnownContacts(sources, {}, ())
    priors = await prior_contacts(conn, subject_ids, arrivals)
    return KnownContacts(sources, priors, await open_case_subjects(conn, subject_ids))


async def recorded_sources(
    conn: Connection, sources: Sequence[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Those of the (system, reference) pairs already recorded as contacts."""
    if not sources:
        return set()
    rows = await conn.fetch(
        """
        SELECT source_system, source_reference FROM contacts
        WHERE (source_system, source_reference) IN (SELECT * FROM unnest($1::text[], $2::text[]))
        """,
        [system for system, _ in sources],
        [reference for _, reference in sources],
    )
    return {(r["source_system"], r["source_reference"]) for r in rows}


async def prior_contacts(
    conn: Connection, subject_ids: Sequence[str], arrivals: Sequence[Arrival]
) -> dict[str, list[PriorContact]]:
    """The recorded contacts about each child (by subject id) that the arrivals' flags may
    look at: received within the batch's widest re-referral window, or about one of its
    incident dates."""
    rows = await conn.fetch(
        """
        SELECT cc.subject_id, c.contact_id, c.received_at, c.incident_date, c.source_system
        FROM contact_children cc JOIN contacts c USING (contact_id)
        WHERE cc.subject_id = ANY($1::text[])
          AND ((c.received_at >= $2 AND c.received_at < $3) OR c.incident_date = ANY($4::date[]))
        """,
        list(subject_ids),
        min(a.received_at for a in arrivals) - RE_REFERRAL_WINDOW,
        max(a.received_at for a in arrivals),
        sorted({a.incident for a in arrivals}),
    )
    priors: dict[str, list[PriorContact]] = {}
    for r in rows:
        priors.setdefault(r["subject_id"], []).append(
            PriorContact(r["contact_id"], r["received_at"], r["incident_date"], r["source_system"])
        )
    return priors


async def open_case_subjects(conn: Connection, subject_ids: Sequence[str]) -> set[str]:
    """Those of the children with a queue item that is not closed."""
    rows = await conn.fetch(
        """
        SELECT DISTINCT subject_id FROM queue_items
        WHERE subject_id = ANY($1::text[]) AND status <> 'closed'
        """,
        list(subject_ids),
    )
    return {r["subject_id"] for r in rows}


async def record_contacts(conn: Connection, recorded: Sequence[NewContact]) -> None:
    """Insert the batch's contacts, their children, the children's latest sightings, the
    links (both directions) and the raw inbound bytes: five statements in all."""
    if not recorded:
        return
    await _insert_contacts(conn, recorded)
    await _insert_contact_children(conn, recorded)
    await _upsert_children(conn, recorded)
    await _insert_links(conn, recorded)
    await _insert_raw_payloads(conn, recorded)


async def _insert_contacts(conn: Connection, recorded: Sequence[NewContact]) -> None:
    contacts = [n.contact for n in recorded]
    await conn.execute(
        """
        INSERT INTO contacts (contact_id, contact_reference, source_kind, source_system,
            source_reference, source_event_id, agency_id, referral_source, hub, out_of_area,
            subject_key, received_at, recorded_at, incident_date, address_unresolved,
            re_referral, open_case)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
            $6::text[], $7::text[], $8::text[], $9::text[], $10::boolean[], $11::text[],
            $12::timestamptz[], $13::timestamptz[], $14::date[], $15::boolean[],
            $16::boolean[], $17::boolean[])
        """,
        [c.contact_id for c in contacts],
        [c.contact_reference for c in contacts],
        [c.source.kind for c in contacts],
        [c.source.system for c in contacts],
        [c.source.reference for c in contacts],
        [c.source.event_id for c in contacts],
        [c.source.agency_id for c in contacts],
        [c.source.referral_source for c in contacts],
        [c.hub for c in contacts],
        [c.out_of_area for c in contacts],
        [c.subject_key for c in contacts],
        [c.received_at for c in contacts],
        [c.recorded_at for c in contacts],
        [n.incident for n in recorded],
        [c.address_unresolved for c in contacts],
        [c.re_referral for c in contacts],
        [c.open_case for c in contacts],
    )


async def _insert_contact_children(conn: Connection, recorded: Sequence[NewContact]) -> None:
    """One row per (contact, child); a child named twice in a contact keeps its first row."""
    rows: dict[tuple[str, str], IdentifiedChild] = {}
    for n in recorded:
        for c in n.children:
            rows.setdefault((n.contact.contact_id, c.child.subject_id), c)
    keys = list(rows)
    await conn.execute(
        """
        INSERT INTO contact_children (contact_id, subject_id, child_ref, household_key, match_basis)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
        ON CONFLICT DO NOTHING
        """,
        [cid for cid, _ in keys],
        [sid for _, sid in keys],
        [rows[k].child.child_ref for k in keys],
        [rows[k].child.household_key for k in keys],
        [rows[k].basis for k in keys],
    )


async def _upsert_children(conn: Connection, recorded: Sequence[NewContact]) -> None:
    """Each child's row: new ones inserted, known ones moved on to their latest contact."""
    rows = child_sightings(recorded)
    await conn.execute(
        """
        INSERT INTO children (subject_id, match_basis, first_seen_at, last_contact_id, last_seen_at)
        SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[],
            $5::timestamptz[])
        ON CONFLICT (subject_id) DO UPDATE
            SET last_contact_id = EXCLUDED.last_contact_id, last_seen_at = EXCLUDED.last_seen_at
        """,
        [r.subject_id for r in rows],
        [r.match_basis for r in rows],
        [r.first_seen_at for r in rows],
        [r.last_contact_id for r in rows],
        [r.last_seen_at for r in rows],
    )


async def _insert_links(conn: Connection, recorded: Sequence[NewContact]) -> None:
    """Each new contact's links to the contacts it names, stored both ways."""
    pairs = [
        pair
        for n in recorded
        for other in n.contact.linked_contact_ids
        for pair in ((n.contact.contact_id, other), (other, n.contact.contact_id))
    ]
    if not pairs:
        return
    await conn.execute(
        """
        INSERT INTO contact_links (contact_id, linked_contact_id, reason)
        SELECT a, b, $3 FROM unnest($1::text[], $2::text[]) AS v(a, b)
        ON CONFLICT DO NOTHING
        """,
        [a for a, _ in pairs],
        [b for _, b in pairs],
        LINK_REASON,
    )


async def _insert_raw_payloads(conn: Connection, recorded: Sequence[NewContact]) -> None:
    """The inbound bytes and headers exactly as received, per contact."""
    await conn.execute(
        """
        INSERT INTO raw_payloads (contact_id, event_id, value, headers)
        SELECT c, e, v, h::jsonb FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[])
            AS r(c, e, v, h)
        """,
        [n.contact.contact_id for n in recorded],
        [n.contact.source.event_id for n in recorded],
        [n.message.value or b"" for n in recorded],
        [_headers_json(n.message) for n in recorded],
    )


def _headers_json(message: InboundMessage) -> str:
    """Header values as base64 (any bytes), names made printable: jsonb refuses NUL."""
    return json.dumps(
        [
            [printable(k), None if v is None else base64.b64encode(v).decode("ascii")]
            for k, v in message.headers
        ]
    )
