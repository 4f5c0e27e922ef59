"""Who Operation Encompass covers: one answer for screening's ``encompass_required`` flag
and for the notices the notifications service sends (so the flag never promises a notice
that is not sent, nor misses one that is).

The scheme is triggered by a police notification of domestic abuse. It covers each born
child who is of compulsory school age (5 to 15 on the incident date, London time) *or*
whose school the police gave: a four-year-old in a reception class or a sixteen-year-old in
a school sixth form has a school looking after them every day, which is what the scheme is
for. A covered child without a school URN or a name is not dropped: the notifications
service hands them to the police desk. An unborn child is at no school.

A **restricted** notification (a live investigation holds more than is shared) tells
nobody: no school and no police desk. Its police detail is for the hub's s47 queue only,
and a notice would carry it (the police reference, the incident time) to where word of the
investigation could reach a suspect. The notifications service records each child it
would have covered as withheld, so nothing is dropped silently.
"""

from __future__ import annotations

from datetime import date

from schemas.events import Contact, ContactChild
from services.common.calendar import incident_date

#: Compulsory school age in England, in whole years on the incident date.
SCHOOL_AGE_YEARS = range(5, 16)


def applies(contact: Contact) -> bool:
    """Whether the contact is a police domestic-abuse notification (the scheme's trigger)."""
    return contact.source.kind == "police" and contact.incident_type == "domestic_abuse"


def age_on(born: date, day: date) -> int:
    """Age in whole years on ``day`` (a 29 February birthday counts from 1 March)."""
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def of_school_age(child: ContactChild, day: date) -> bool:
    """Whether a born child is 5 to 15 on ``day``."""
    return child.date_of_birth is not None and age_on(child.date_of_birth, day) in SCHOOL_AGE_YEARS


def covered(child: ContactChild, day: date) -> bool:
    """Whether the scheme covers ``child`` for an incident on ``day`` (module doc)."""
    if child.date_of_birth is None:
        return False
    return child.school_urn is not None or of_school_age(child, day)


def required(contact: Contact) -> bool:
    """Whether the contact needs Operation Encompass action: a notice to a school, or the
    police desk told of a covered child whose school cannot be told automatically. A
    restricted notification needs none: its notices are withheld (module doc)."""
    if not applies(contact) or contact.restricted:
        return False
    day = incident_date(contact)
    return any(covered(child, day) for child in contact.children)
