"""Decide a batch of contacts in offset order — pure, no I/O.

A batch is decided against :class:`KnownContacts`: the state the database held for the
batch's events when the batch began (loaded set-based by :mod:`services.intake.store`),
grown in memory by each contact the batch records, in offset order. The invariant: when an
event is decided, ``KnownContacts`` answers every question intake asks — is this (system,
reference) recorded? which contacts about these children, received when, about which
incident date, from which system? is a case open? — exactly as the database would if the
batch's earlier events had been applied and written one by one. Nothing else of the
batch's own writes is read by a later event (intake writes no queue items), so deciding
the whole batch first and writing its rows afterwards gives the same rows as one by one.
Each contact itself is built by :mod:`services.intake.contacts`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime

from schemas.events import Contact, SourceCoordinates
from services.common.kafka import InboundMessage
from services.common.topology import Topology
from services.intake.contacts import (
    MATCHED_CONTACTS_NAMED,
    RE_REFERRAL_WINDOW,
    Arrival,
    ChildHistory,
    ContactHistory,
    IdentifiedChild,
    contact_of,
    resolve_hub,
)
from services.intake.council_cases import OpenCouncilCase
from services.intake.linking import MatchBasis


@dataclass(frozen=True)
class PriorContact:
    """A recorded contact about a child, as re-referral and linking look at it."""

    contact_id: str
    received_at: datetime
    incident_date: date | None
    source_system: str


def history_of(
    priors: Iterable[PriorContact],
    *,
    open_case: bool,
    received_at: datetime,
    incident: date,
    source_system: str,
) -> ContactHistory:
    """The flags of a new contact from the recorded contacts about its children.

    - linked: those with the same incident date that came from another sending system
      (the same incident told by another channel: a school reporting what the police
      attended), each once, in ascending contact id (the order the database gives these
      ids: they are lower-case UUIDs, so every collation sorts them as Python does);
    - re-referral: one of the others (not linked) was received in
      ``[received_at - 12 months, received_at)``. A linked contact is the same concern,
      not a new referral of the child, so it never makes one.
    """
    earliest = received_at - RE_REFERRAL_WINDOW
    known = list(priors)
    linked = {
        p.contact_id
        for p in known
        if p.incident_date == incident and p.source_system != source_system
    }
    return ContactHistory(
        re_referral=any(
            earliest <= p.received_at < received_at and p.contact_id not in linked for p in known
        ),
        open_case=open_case,
        linked_contact_ids=sorted(linked),
    )


@dataclass(frozen=True)
class NewContact:
    """A contact a batch records, with what its rows need besides the contact itself."""

    contact: Contact
    children: list[IdentifiedChild]
    incident: date
    message: InboundMessage


@dataclass(frozen=True)
class Sighting:
    """A recorded contact about a child, as identity looks at it: which subject and
    person it was about, in which hub, under which subject key."""

    person_key: str | None
    subject_id: str
    contact_id: str
    subject_key: str
    hub: str
    received_at: datetime
    incident_date: date | None
    source_system: str
    basis: MatchBasis | None = None
    """How that subject id was found (None on rows recorded before it was kept)."""

    @property
    def prior(self) -> PriorContact:
        """The contact as re-referral and linking look at it."""
        return PriorContact(
            self.contact_id, self.received_at, self.incident_date, self.source_system
        )


def priors_of(sightings: Iterable[Sighting]) -> dict[str, list[PriorContact]]:
    """The recorded contacts about each subject (by subject id), from its sightings."""
    priors: dict[str, list[PriorContact]] = {}
    for sighting in sightings:
        priors.setdefault(sighting.subject_id, []).append(sighting.prior)
    return priors


def _latest_first(sighting: Sighting) -> tuple[datetime, str]:
    return sighting.received_at, sighting.contact_id


class KnownContacts:
    """What the system of record holds for a batch's events, as each is decided (module doc):
    loaded once when the batch begins, then grown by each contact the batch records."""

    def __init__(
        self,
        sources: Iterable[tuple[str, str]],
        priors: Mapping[str, Iterable[PriorContact]],
        open_subjects: Iterable[str],
        sightings: Iterable[Sighting] = (),
        council_cases: Iterable[OpenCouncilCase] = (),
    ) -> None:
        """``sources``: the recorded (system, reference) pairs among the batch's; ``priors``:
        the recorded contacts about each of the batch's children and their probable
        matches (by subject id) that any of its events may look at; ``open_subjects``:
        those children with an open queue item; ``sightings``: every recorded contact about
        the batch's children or a child with the same person key; ``council_cases``: the
        council's open cases of those children or persons."""
        self._sources = set(sources)
        self._priors = {sid: list(found) for sid, found in priors.items()}
        self._open = frozenset(open_subjects)
        self._by_person: dict[str, list[Sighting]] = {}
        self._by_subject: dict[str, list[Sighting]] = {}
        for sighting in sightings:
            self._see(sighting)
        self._council = list(council_cases)

    def _see(self, sighting: Sighting) -> None:
        if sighting.person_key is not None:
            self._by_person.setdefault(sighting.person_key, []).append(sighting)
        self._by_subject.setdefault(sighting.subject_id, []).append(sighting)

    def is_recorded(self, source: SourceCoordinates) -> bool:
        """Whether a contact from this (system, reference) is recorded (a duplicate)."""
        return (source.system, source.reference) in self._sources

    def probable_matches(self, child: IdentifiedChild, hub: str) -> list[Sighting]:
        """The recorded contacts, latest first, about other subjects with the child's person
        key in the same hub: a child who moved (docs/domain.md "Identity and history"). Two
        different NHS numbers are two children, whatever their names."""
        if child.person_key is None:
            return []
        own = child.child.subject_id
        by_nhs = child.basis == "nhs_number"
        found = [
            s
            for s in self._by_person.get(child.person_key, ())
            if s.subject_id != own and s.hub == hub and not (by_nhs and s.basis == "nhs_number")
        ]
        return sorted(found, key=_latest_first, reverse=True)

    def council_cases_of(
        self, child: IdentifiedChild, matched: Iterable[str], hub: str
    ) -> list[OpenCouncilCase]:
        """The council's open cases of the child or its probable matches, and those of a
        child with its person key unless the case names another hub."""
        subjects = {child.child.subject_id, *matched}
        return [
            case
            for case in self._council
            if case.subject_id in subjects
            or (
                child.person_key is not None
                and case.person_key == child.person_key
                and case.hub in (None, hub)
            )
        ]

    def history(self, arrival: Arrival, hub: str) -> ContactHistory:
        """Re-referral, open-case, linked-contact and identity facts for the arrival's
        children (each with its probable matches in ``hub``, the contact's hub)."""
        children: dict[str, ChildHistory] = {}
        family_key: str | None = None
        council_open = False
        for child in arrival.children:
            sid = child.child.subject_id
            matches = self.probable_matches(child, hub)
            matched = list(dict.fromkeys(s.subject_id for s in matches))
            cases = self.council_cases_of(child, matched, hub)
            council_open = council_open or bool(cases)
            matched += [c.subject_id for c in cases if c.subject_id not in {sid, *matched}]
            children[sid] = ChildHistory(
                matched_subject_ids=matched,
                matched_contact_ids=list(dict.fromkeys(s.contact_id for s in matches))[
                    :MATCHED_CONTACTS_NAMED
                ],
                council_cases=[c.case_type for c in cases],
            )
            seen = sorted(
                [*self._by_subject.get(sid, ()), *matches], key=_latest_first, reverse=True
            )
            if family_key is None and seen:
                family_key = seen[0].subject_key
        matched_ids = [m for h in children.values() for m in h.matched_subject_ids]
        sids = list(dict.fromkeys([*arrival.subject_ids, *matched_ids]))
        flags = history_of(
            (p for sid in sids for p in self._priors.get(sid, ())),
            open_case=council_open or any(sid in self._open for sid in sids),
            received_at=arrival.received_at,
            incident=arrival.incident,
            source_system=arrival.source.system,
        )
        return replace(flags, children=children, subject_key=family_key)

    def add(self, new: NewContact) -> None:
        """Take a contact the batch records into account for the events after it."""
        contact = new.contact
        self._sources.add((contact.source.system, contact.source.reference))
        prior = PriorContact(
            contact_id=contact.contact_id,
            received_at=contact.received_at,
            incident_date=new.incident,
            source_system=contact.source.system,
        )
        for child in _each_child_once(new.children):
            self._priors.setdefault(child.child.subject_id, []).append(prior)
            self._see(
                Sighting(
                    person_key=child.person_key,
                    subject_id=child.child.subject_id,
                    contact_id=contact.contact_id,
                    subject_key=contact.subject_key,
                    hub=contact.hub,
                    received_at=contact.received_at,
                    incident_date=new.incident,
                    source_system=contact.source.system,
                    basis=child.basis,
                )
            )


def _each_child_once(children: Iterable[IdentifiedChild]) -> list[IdentifiedChild]:
    """Each subject once, as first named (a child named twice in a contact is one child)."""
    first: dict[str, IdentifiedChild] = {}
    for child in children:
        first.setdefault(child.child.subject_id, child)
    return list(first.values())


def decide_batch(
    arrivals: Sequence[Arrival],
    known: KnownContacts,
    topology: Topology,
    clock: Callable[[], datetime],
) -> list[NewContact | None]:
    """Decide each arrival in order: ``None`` for a repeat of a recorded (system,
    reference) — a duplicate by source — else the contact to record, which the arrivals
    after it see (``known`` grows). ``clock`` gives each new contact its recorded time."""
    decided: list[NewContact | None] = []
    for arrival in arrivals:
        if known.is_recorded(arrival.source):
            decided.append(None)
            continue
        resolution = resolve_hub(arrival.payload, topology)
        history = known.history(arrival, resolution.hub)
        contact = contact_of(arrival, resolution, history, clock())
        new = NewContact(contact, arrival.children, arrival.incident, arrival.message)
        known.add(new)
        decided.append(new)
    return decided


@dataclass(frozen=True)
class ChildSighting:
    """The ``children`` row of one child after a batch: how it was first matched and when
    first seen (kept by a row that exists already), and its latest contact."""

    subject_id: str
    match_basis: MatchBasis
    first_seen_at: datetime
    last_contact_id: str
    last_seen_at: datetime


def child_sightings(recorded: Sequence[NewContact]) -> list[ChildSighting]:
    """One row per child of the batch, as upserting each contact's children in order would
    leave it: basis and first sighting from the child's first contact of the batch, last
    contact and sighting from its last one. Sorted by subject id, so that concurrent
    transactions lock ``children`` rows in one order."""
    rows: dict[str, ChildSighting] = {}
    for new in recorded:
        at, cid = new.contact.recorded_at, new.contact.contact_id
        for c in new.children:
            sid = c.child.subject_id
            first = rows.get(sid)
            rows[sid] = ChildSighting(
                subject_id=sid,
                match_basis=first.match_basis if first else c.basis,
                first_seen_at=first.first_seen_at if first else at,
                last_contact_id=cid,
                last_seen_at=at,
            )
    return [rows[sid] for sid in sorted(rows)]
