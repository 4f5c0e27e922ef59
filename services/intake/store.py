"""Intake's SQL, in one place: the system of record for contacts and children.

A batch costs a constant number of statements whatever its size: four reads before its
events are decided (:func:`known_contacts`) and five writes after (:func:`record_contacts`),
each set-based (``unnest`` of one array per column). The reads return a superset of what
any event of the batch would have read on its own; :class:`KnownContacts` narrows it per
event and adds the batch's earlier contacts (see :mod:`services.intake.batch` for why
that equals applying the events one by one).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from schemas.base import printable
from services.common.kafka import InboundMessage
from services.intake.batch import KnownContacts, NewContact, Sighting, child_sightings, priors_of
from services.intake.contacts import Arrival, IdentifiedChild
from services.intake.council_cases import CouncilCase, OpenCouncilCase, RecordedStatus

if TYPE_CHECKING:
    from services.common.db import Connection

LINK_REASON = "same_child_same_incident_date"


async def known_contacts(conn: Connection, arrivals: Sequence[Arrival]) -> KnownContacts:
    """What the database holds for a batch's events, in four queries: their recorded
    (system, reference) pairs; the council's open cases of their children or of a child
    with the same person key; every contact about those children, those cases' subjects
    or a child with the same person key (probable matches: re-referral and linking read
    the same rows); and the open queue items of every subject so found."""
    sources = await recorded_sources(
        conn, [(a.source.system, a.source.reference) for a in arrivals]
    )
    own = sorted({sid for a in arrivals for sid in a.subject_ids})
    if not own:
        return KnownContacts(sources, {}, ())
    people = sorted({c.person_key for a in arrivals for c in a.children if c.person_key})
    cases = await open_council_cases(conn, own, people)
    seen = await sightings(conn, sorted({*own, *(c.subject_id for c in cases)}), people)
    subject_ids = sorted({*own, *(s.subject_id for s in seen), *(c.subject_id for c in cases)})
    open_subjects = await open_case_subjects(conn, subject_ids)
    return KnownContacts(sources, priors_of(seen), open_subjects, seen, cases)


async def sightings(
    conn: Connection, subject_ids: Sequence[str], person_keys: Sequence[str]
) -> list[Sighting]:
    """Every recorded contact about one of the subjects or about a child with one of the
    person keys: what re-referral, linking, a probable match and the family's subject key
    are read from."""
    rows = await conn.fetch(
        """
        SELECT cc.person_key, cc.subject_id, c.contact_id, c.subject_key, c.hub, c.received_at,
            c.incident_date, c.source_system, cc.match_basis
        FROM contact_children cc JOIN contacts c USING (contact_id)
        WHERE cc.subject_id = ANY($1::text[]) OR cc.person_key = ANY($2::text[])
        """,
        list(subject_ids),
        list(person_keys),
    )
    return [
        Sighting(
            r["person_key"],
            r["subject_id"],
            r["contact_id"],
            r["subject_key"],
            r["hub"],
            r["received_at"],
            r["incident_date"],
            r["source_system"],
            r["match_basis"],
        )
        for r in rows
    ]


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


async def open_case_subjects(conn: Connection, subject_ids: Sequence[str]) -> set[str]:
    """Those of the children with a queue item that is not closed: routing holds a case of
    theirs open, which the contact records as ``open_case`` (docs/domain.md "Open cases").

    A cross-service read (docs/design.md "Cross-service reads"): ``queue_items`` is
    routing's table. Intake reads it here and nowhere else, one statement per batch, SELECT
    only (``services/common/database_roles.yaml`` grants it, saying why). Allowed because
    the flag must be decided when the contact is recorded, before routing sees it, and no
    event tells intake that an item opened or closed; the routing record is the truth.
    """
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
            re_referral, open_case, dash_score, consent_obtained, consent_override_reason)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
            $6::text[], $7::text[], $8::text[], $9::text[], $10::boolean[], $11::text[],
            $12::timestamptz[], $13::timestamptz[], $14::date[], $15::boolean[],
            $16::boolean[], $17::boolean[], $18::smallint[], $19::boolean[], $20::text[])
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
        [c.dash_score for c in contacts],
        [c.consent.obtained if c.consent else None for c in contacts],
        [c.consent.override_reason if c.consent else None for c in contacts],
    )


async def _insert_contact_children(conn: Connection, recorded: Sequence[NewContact]) -> None:
    """One row per (contact, child); a child named twice in a contact keeps its first row."""
    rows: dict[tuple[str, str], IdentifiedChild] = {}
    matched: dict[tuple[str, str], list[str]] = {}
    for n in recorded:
        for c in n.children:
            rows.setdefault((n.contact.contact_id, c.child.subject_id), c)
        for child in n.contact.children:  # as recorded: with its probable matches
            matched.setdefault((n.contact.contact_id, child.subject_id), child.matched_subject_ids)
    keys = list(rows)
    await conn.execute(
        """
        INSERT INTO contact_children (contact_id, subject_id, child_ref, household_key,
            match_basis, person_key, matched_subject_ids)
        SELECT c, s, r, h, b, p, ARRAY(SELECT jsonb_array_elements_text(m))
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::jsonb[]) AS v(c, s, r, h, b, p, m)
        ON CONFLICT DO NOTHING
        """,
        [cid for cid, _ in keys],
        [sid for _, sid in keys],
        [rows[k].child.child_ref for k in keys],
        [rows[k].child.household_key for k in keys],
        [rows[k].basis for k in keys],
        [rows[k].person_key for k in keys],
        [json.dumps(matched.get(k, [])) for k in keys],
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


# --- the council's cases (mash.inbound.case-status.v1) ------------------------------------


async def recorded_case_statuses(
    conn: Connection, council_case_ids: Sequence[str]
) -> dict[str, RecordedStatus]:
    """The latest recorded status of each of these council cases that has one."""
    if not council_case_ids:
        return {}
    rows = await conn.fetch(
        "SELECT council_case_id, status, at FROM council_cases"
        " WHERE council_case_id = ANY($1::text[])",
        sorted(set(council_case_ids)),
    )
    return {r["council_case_id"]: RecordedStatus(r["status"], r["at"]) for r in rows}


async def record_case_statuses(conn: Connection, rows: Sequence[CouncilCase]) -> None:
    """Insert or move on each council case to its row, in one statement: one row per case
    (:func:`~services.intake.council_cases.cases_to_record`). A row never replaces a later
    status (on the same ``at``, open stays), whoever wrote that one meanwhile."""
    if not rows:
        return
    await conn.execute(
        """
        INSERT INTO council_cases (council_case_id, case_system, child_ref, case_type,
            subject_id, person_key, status, at, team, hub, event_id, recorded_at)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
            $6::text[], $7::text[], $8::timestamptz[], $9::text[], $10::text[], $11::text[],
            $12::timestamptz[])
        ON CONFLICT (council_case_id) DO UPDATE
            SET subject_id = EXCLUDED.subject_id, person_key = EXCLUDED.person_key,
                status = EXCLUDED.status, at = EXCLUDED.at, team = EXCLUDED.team,
                hub = EXCLUDED.hub, event_id = EXCLUDED.event_id,
                recorded_at = EXCLUDED.recorded_at
            WHERE (EXCLUDED.at, EXCLUDED.status = 'open')
                > (council_cases.at, council_cases.status = 'open')
        """,
        [r.council_case_id for r in rows],
        [r.case_system for r in rows],
        [r.child_ref for r in rows],
        [r.case_type for r in rows],
        [r.subject_id for r in rows],
        [r.person_key for r in rows],
        [r.status for r in rows],
        [r.at for r in rows],
        [r.team for r in rows],
        [r.hub for r in rows],
        [r.event_id for r in rows],
        [r.recorded_at for r in rows],
    )


async def open_council_cases(
    conn: Connection, subject_ids: Sequence[str], person_keys: Sequence[str]
) -> list[OpenCouncilCase]:
    """The council's cases whose latest status is open, of one of the children (by subject
    id) or of a child with one of the person keys (a probable match), in case id order."""
    if not subject_ids and not person_keys:
        return []
    rows = await conn.fetch(
        """
        SELECT subject_id, person_key, case_type, hub FROM council_cases
        WHERE status = 'open' AND (subject_id = ANY($1::text[]) OR person_key = ANY($2::text[]))
        ORDER BY council_case_id
        """,
        list(subject_ids),
        list(person_keys),
    )
    return [
        OpenCouncilCase(r["subject_id"], r["person_key"], r["case_type"], r["hub"]) for r in rows
    ]
