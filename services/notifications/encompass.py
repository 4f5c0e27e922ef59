"""Operation Encompass: tell a child's school about a police-attended domestic-abuse
incident before the next school day starts — pure, no I/O, no clock reads.

Applies to a police notification (``source.kind == "police"``) of ``domestic_abuse``. For
each child of school age (5 to 15 years old on the incident date, Europe/London) with a
school URN, the school gets one notice, keyed by its URN, carrying only what the scheme
allows (the ``school`` allow-list in ``firewall.py``) and due by 08:30 on the next school
day (:meth:`WorkingCalendar.next_school_day_at`: weekends and bank holidays skipped; an
incident before 08:30 on a school day is due that same morning).

Who is covered is :mod:`services.common.encompass` (shared with screening's
``encompass_required`` flag): a child outside those ages whose school the police *did*
give is notified too. The age decides who *should* have a school: a school-age child the
hub cannot notify a school about is never dropped but returned as :class:`Unmatched` (no
school URN, or no name to give the school) for the police desk to follow up, with the same
due time.

A **restricted** notification (``Contact.restricted``: a live investigation holds more than
is shared) tells nobody: its police detail is for the hub's s47 queue only, and a notice
carries that detail (the police reference, the incident time, whether the child was
there) to a school, where word of the investigation could reach a suspect. The police
desk is not handed its children either, since the desk's work is to tell the school by
other means. Each child the scheme would have covered (notice or police desk) is returned
as :class:`Withheld` instead, with the reason, for the service to record and count, so
nothing is dropped silently. Screening's ``encompass_required`` is False on such a
decision (:func:`services.common.encompass.required`), so the flag still says exactly
whether a notice is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from schemas.events import Contact, ContactChild
from services.common.calendar import WorkingCalendar, incident_date
from services.common.encompass import applies, covered
from services.common.ids import derive_id
from services.notifications.firewall import Disclosure, disclose

UnmatchedReason = Literal["no_school_urn", "no_name"]
WithheldReason = Literal["restricted_investigation"]


@dataclass(frozen=True)
class Unmatched:
    """A school-age child the scheme covers whose school cannot be told automatically."""

    contact_id: str
    subject_id: str
    reason: UnmatchedReason
    police_reference: str
    force: str
    incident_at: datetime
    due_by: datetime


@dataclass(frozen=True)
class Withheld:
    """A child the scheme covers whose school is deliberately not told (module doc)."""

    contact_id: str
    subject_id: str
    school_urn: str | None
    """The school that would have been told (None: none known)."""
    reason: WithheldReason
    police_reference: str
    force: str
    incident_at: datetime


@dataclass(frozen=True)
class SchoolNotice:
    """The notice about one child, built through the firewall's ``school`` allow-list."""

    subject_id: str
    disclosure: Disclosure


@dataclass(frozen=True)
class Encompass:
    """The notices to send for one contact, the children left for the police desk, and
    the children whose notice is withheld."""

    notices: tuple[SchoolNotice, ...] = ()
    unmatched: tuple[Unmatched, ...] = ()
    withheld: tuple[Withheld, ...] = ()


def school_notices(contact: Contact, calendar: WorkingCalendar) -> Encompass:
    """The Operation Encompass notices (and unmatched children) for ``contact``."""
    if not applies(contact):
        return Encompass()
    incident_at = contact.incident_at or contact.received_at
    day = incident_date(contact)
    if contact.restricted:
        return Encompass(withheld=_withheld(contact, day, incident_at))
    due_by = calendar.next_school_day_at(incident_at)
    notices: list[SchoolNotice] = []
    unmatched: list[Unmatched] = []
    for child in contact.children:
        if not covered(child, day):
            continue  # unborn, or under school age at no school: outside the scheme
        if child.school_urn is None or not child.given_name or not child.family_name:
            reason: UnmatchedReason = "no_school_urn" if child.school_urn is None else "no_name"
            unmatched.append(_unmatched(contact, child, reason, incident_at, due_by))
            continue
        notice = disclose(
            "school",
            "operation_encompass",
            child.school_urn,
            {
                "notice_id": derive_id("encompass-notice", contact.contact_id, child.subject_id),
                "school_urn": child.school_urn,
                "child_given_name": child.given_name,
                "child_family_name": child.family_name,
                "child_date_of_birth": child.date_of_birth,
                "police_reference": contact.source.reference,
                "incident_at": incident_at,
                "child_present": child.present_at_incident is True,
                "due_by": due_by,
            },
        )
        notices.append(SchoolNotice(child.subject_id, notice))
    return Encompass(tuple(notices), tuple(unmatched))


def _withheld(contact: Contact, day: date, incident_at: datetime) -> tuple[Withheld, ...]:
    """Every child of a restricted notification the scheme covers, withheld."""
    return tuple(
        Withheld(
            contact_id=contact.contact_id,
            subject_id=child.subject_id,
            school_urn=child.school_urn,
            reason="restricted_investigation",
            police_reference=contact.source.reference,
            force=contact.source.agency_id,
            incident_at=incident_at,
        )
        for child in contact.children
        if covered(child, day)
    )


def _unmatched(
    contact: Contact,
    child: ContactChild,
    reason: UnmatchedReason,
    incident_at: datetime,
    due_by: datetime,
) -> Unmatched:
    return Unmatched(
        contact_id=contact.contact_id,
        subject_id=child.subject_id,
        reason=reason,
        police_reference=contact.source.reference,
        force=contact.source.agency_id,
        incident_at=incident_at,
        due_by=due_by,
    )
