"""Operation Encompass: tell a child's school about a police-attended domestic-abuse
incident before the next school day starts — pure, no I/O, no clock reads.

Applies to a police notification (``source.kind == "police"``) of ``domestic_abuse``. For
each child of school age (5 to 15 years old on the incident date, Europe/London) with a
school URN, the school gets one notice, keyed by its URN, carrying only what the scheme
allows (the ``school`` allow-list in ``firewall.py``) and due by 08:30 on the next school
day (:meth:`WorkingCalendar.next_school_day_at`: weekends and bank holidays skipped; an
incident before 08:30 on a school day is due that same morning).

A child outside those ages whose school the police *did* give (a four-year-old in a
reception class, a sixteen-year-old in a school sixth form) is notified too: the URN says
a school is looking after the child every day, which is what the scheme is for. The age
decides who *should* have a school: a school-age child the hub cannot notify a school
about is never dropped but returned as :class:`Unmatched` (no school URN, or no name to
give the school) for the police desk to follow up, with the same due time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from schemas.events import Contact, ContactChild
from services.common.calendar import LONDON, WorkingCalendar
from services.common.ids import derive_id
from services.notifications.firewall import Disclosure, disclose

#: Compulsory school age in England, in whole years on the incident date.
SCHOOL_AGE_YEARS = range(5, 16)

UnmatchedReason = Literal["no_school_urn", "no_name"]


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
class SchoolNotice:
    """The notice about one child, built through the firewall's ``school`` allow-list."""

    subject_id: str
    disclosure: Disclosure


@dataclass(frozen=True)
class Encompass:
    """The notices to send for one contact, and the children left for the police desk."""

    notices: tuple[SchoolNotice, ...] = ()
    unmatched: tuple[Unmatched, ...] = ()


def applies(contact: Contact) -> bool:
    """Whether the contact is a police domestic-abuse notification (the scheme's trigger)."""
    return contact.source.kind == "police" and contact.incident_type == "domestic_abuse"


def age_on(born: date, day: date) -> int:
    """Age in whole years on ``day`` (a 29 February birthday counts from 1 March)."""
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def _unmatched_reason(child: ContactChild, school_age: bool) -> UnmatchedReason | None:
    if child.school_urn is None:
        return "no_school_urn" if school_age else None
    if not child.given_name or not child.family_name:
        return "no_name"
    return None


def school_notices(contact: Contact, calendar: WorkingCalendar) -> Encompass:
    """The Operation Encompass notices (and unmatched children) for ``contact``."""
    if not applies(contact):
        return Encompass()
    incident_at = contact.incident_at or contact.received_at
    incident_day = incident_at.astimezone(LONDON).date()
    due_by = calendar.next_school_day_at(incident_at)
    notices: list[SchoolNotice] = []
    unmatched: list[Unmatched] = []
    for child in contact.children:
        if child.date_of_birth is None:
            continue  # unborn: at no school
        school_age = age_on(child.date_of_birth, incident_day) in SCHOOL_AGE_YEARS
        reason = _unmatched_reason(child, school_age)
        if reason is not None:
            unmatched.append(_unmatched(contact, child, reason, incident_at, due_by))
            continue
        if child.school_urn is None:
            continue  # not of school age and at no school: outside the scheme
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
