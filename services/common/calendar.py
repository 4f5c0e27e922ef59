"""Working days, clock hours and school days for statutory clocks (England).

Conventions (docs/domain.md, Deadlines):

* A **working day** is Monday to Friday, less England bank holidays. Bank holidays come from
  the ``holidays`` package (``GB``/``ENG``), never from a hand-typed list, so substitute
  days ("Boxing Day (observed)") and one-off holidays arrive with a package upgrade.
* Day boundaries are Europe/London local days: a referral received at 23:30 BST on a
  Friday was received on Friday, although it is Friday 22:30 UTC.
* Every function takes **timezone-aware** datetimes (any offset) and returns aware
  datetimes in **Europe/London** time. They compare equal to the same instant in UTC, so
  callers may convert with ``.astimezone(UTC)`` for storage; London time is returned
  because "08:30 the next school day" and "the same time one working day later" are
  statements about London wall clocks.
* **Red clocks are clock hours** ("red 4 hours"): safeguarding runs 24/7, so
  :meth:`WorkingCalendar.add_clock_hours` adds plain elapsed time, with no office-hours
  or weekend pause. (No working-hours clock is needed by the deadlines table.)
* School **term dates are out of scope**: a "school day" is a working day. A school that is
  closed for the holidays still gets its Operation Encompass notice by 08:30 on the next
  weekday that is not a bank holiday; the school's own arrangements cover holidays.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import holidays
from pydantic import BaseModel, ConfigDict, model_validator

if TYPE_CHECKING:
    from schemas.events import Contact

LONDON = ZoneInfo("Europe/London")


def incident_date(contact: Contact) -> date:
    """The London calendar date ages, windows and Operation Encompass are measured on: the
    incident's, else the receipt's."""
    return (contact.incident_at or contact.received_at).astimezone(LONDON).date()


class OfficeHours(BaseModel):
    """The hub's office day in London local time.

    ``start`` is when a clock starts for anything that arrives on a non-working day;
    ``end`` is recorded for display (the deadlines table uses no office-hours clock).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: time = time(9, 0)
    end: time = time(17, 0)

    @model_validator(mode="after")
    def _start_before_end(self) -> OfficeHours:
        if self.start >= self.end:
            raise ValueError(f"office hours start {self.start} must be before end {self.end}")
        return self


def _require_aware(moment: datetime, what: str) -> None:
    # A naive datetime is ambiguous (UTC? London?) and would silently shift clocks by an hour
    # in summer, so refuse it rather than guess.
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got naive {moment!r}")


def _london_at(day: date, at: time) -> datetime:
    """The London wall-clock time ``at`` on ``day``, as an aware datetime."""
    # zoneinfo picks the right offset for the date (GMT or BST), so 08:30 stays 08:30 local
    # across the spring and autumn changes. Working days never fall on the Sunday of a
    # change, so the non-existent/ambiguous hour never arises for them.
    return datetime.combine(day, at.replace(tzinfo=None), tzinfo=LONDON)


class WorkingCalendar:
    """England working days (Mon-Fri less bank holidays) in Europe/London local time."""

    def __init__(self, office: OfficeHours | None = None) -> None:
        """Build the calendar; bank holidays for any year are loaded on first use."""
        self.office = office if office is not None else OfficeHours()
        # expand=True (the default) makes the lookup load each year the first time it is
        # asked about, so the calendar works for any date without a fixed list of years.
        self._bank_holidays = holidays.country_holidays("GB", subdiv="ENG")

    def bank_holiday(self, day: date) -> str | None:
        """The name of the England bank holiday on ``day``, or None."""
        name = self._bank_holidays.get(day)
        return None if name is None else str(name)

    def is_working_day(self, day: date) -> bool:
        """True for Monday to Friday unless it is an England bank holiday."""
        if isinstance(day, datetime):
            day = self._local(day).date()
        return day.weekday() < 5 and day not in self._bank_holidays

    def next_working_day(self, day: date) -> date:
        """The first working day strictly after ``day``."""
        candidate = day + timedelta(days=1)
        while not self.is_working_day(candidate):
            candidate += timedelta(days=1)
        return candidate

    def add_working_days(self, start: datetime, n: int) -> datetime:
        """The same London time of day, ``n`` working days after ``start``.

        A start on a non-working day (weekend or bank holiday) counts as received at the
        start of office hours on the next working day: nobody could act on it sooner, and a
        Saturday referral must not lose part of its one working day to the weekend. So
        Saturday 14:00 + 1 working day is Tuesday 09:00 (Monday 09:00 + 1). A start on a
        working day keeps its time of day, even outside office hours (Monday 22:00 + 1 is
        Tuesday 22:00), because the hub's duty service runs around the clock.

        ``n = 0`` gives the effective start itself.
        """
        _require_aware(start, "start")
        if n < 0:
            raise ValueError(f"working days must not be negative, got {n}")
        local = self._local(start)
        day, at = local.date(), local.time()
        if not self.is_working_day(day):
            day, at = self.next_working_day(day), self.office.start
        for _ in range(n):
            day = self.next_working_day(day)
        return _london_at(day, at)

    def add_clock_hours(self, start: datetime, hours: float) -> datetime:
        """``start`` plus ``hours`` of elapsed time (24/7, no pause for nights or weekends).

        Arithmetic is done in UTC: adding a timedelta to a London datetime would add wall
        clock time, making a red 4-hour clock 3 or 5 real hours long across a clock change.
        """
        _require_aware(start, "start")
        if hours < 0:
            raise ValueError(f"hours must not be negative, got {hours}")
        return (start.astimezone(UTC) + timedelta(hours=hours)).astimezone(LONDON)

    def is_school_day(self, day: date) -> bool:
        """A weekday that is not a bank holiday (school term dates are out of scope)."""
        return self.is_working_day(day)

    def next_school_day_at(self, moment: datetime, at: time = time(8, 30)) -> datetime:
        """When an Operation Encompass notice about an incident at ``moment`` is due.

        The notice must reach the school "before the start of the next school day", taken
        as ``at`` (08:30) London time. An incident before 08:30 on a school day is due at
        08:30 that same day: that is the next start of a school day, and waiting a day
        would leave the child in class with nobody told. An incident at or after 08:30, or
        on a weekend or bank holiday, is due at 08:30 on the next school day.
        """
        _require_aware(moment, "moment")
        local = self._local(moment)
        day = local.date()
        if self.is_school_day(day) and local.time() < at:
            return _london_at(day, at)
        day += timedelta(days=1)
        while not self.is_school_day(day):
            day += timedelta(days=1)
        return _london_at(day, at)

    @staticmethod
    def _local(moment: datetime) -> datetime:
        _require_aware(moment, "moment")
        return moment.astimezone(LONDON)
