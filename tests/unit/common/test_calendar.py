"""Working-day calendar: dates below are worked out by hand, with the reasoning alongside."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.calendar import LONDON, OfficeHours, WorkingCalendar

CAL = WorkingCalendar()


def london(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=LONDON)


# --- what the holidays package says (checked, not typed in as a list we rely on) ---------


def test_christmas_2026_bank_holidays_per_holidays_package() -> None:
    # 25 Dec 2026 is a Friday; Boxing Day falls on Saturday 26 Dec, so its substitute is
    # Monday 28 Dec.
    assert CAL.bank_holiday(date(2026, 12, 25)) == "Christmas Day"
    assert CAL.bank_holiday(date(2026, 12, 28)) == "Boxing Day (observed)"
    assert not CAL.is_working_day(date(2026, 12, 26))  # Saturday (and Boxing Day)
    assert CAL.is_working_day(date(2026, 12, 24))
    assert CAL.is_working_day(date(2026, 12, 29))


def test_easter_2027_per_holidays_package() -> None:
    assert CAL.bank_holiday(date(2027, 3, 26)) == "Good Friday"
    assert CAL.bank_holiday(date(2027, 3, 29)) == "Easter Monday"


def test_is_working_day_weekends_and_holidays() -> None:
    assert CAL.is_working_day(date(2026, 11, 27))  # Friday
    assert not CAL.is_working_day(date(2026, 11, 28))  # Saturday
    assert not CAL.is_working_day(date(2026, 11, 29))  # Sunday
    assert not CAL.is_working_day(date(2027, 5, 3))  # May Day bank holiday
    # A datetime is judged by its London date: 23:30 UTC on Fri 5 Jun 2026 is 00:30 BST Sat.
    assert not CAL.is_working_day(datetime(2026, 6, 5, 23, 30, tzinfo=UTC))


def test_next_working_day() -> None:
    assert CAL.next_working_day(date(2026, 11, 27)) == date(2026, 11, 30)  # Fri -> Mon
    assert CAL.next_working_day(date(2026, 12, 24)) == date(2026, 12, 29)  # Christmas
    assert CAL.next_working_day(date(2026, 12, 31)) == date(2027, 1, 4)  # New Year Fri


# --- add_working_days ---------------------------------------------------------------------


def test_one_working_day_over_christmas_2026() -> None:
    # Thu 24 Dec + 1: Fri 25 Christmas, Sat 26, Sun 27, Mon 28 Boxing Day (observed)
    # -> Tue 29 Dec, same time of day.
    assert CAL.add_working_days(london(2026, 12, 24, 10, 0), 1) == london(2026, 12, 29, 10, 0)


def test_one_working_day_over_easter_2027_and_the_clock_change() -> None:
    # Thu 25 Mar + 1: Good Friday 26, Sat 27, Sun 28 (BST starts), Easter Monday 29
    # -> Tue 30 Mar. 10:00 GMT on Thursday stays 10:00 local, now BST (09:00 UTC).
    due = CAL.add_working_days(london(2027, 3, 25, 10, 0), 1)
    assert due == london(2027, 3, 30, 10, 0)
    assert due.astimezone(UTC) == datetime(2027, 3, 30, 9, 0, tzinfo=UTC)


def test_45_working_days_over_the_may_2027_bank_holidays() -> None:
    # From Thu 1 Apr 2027 (after Easter), counting working days:
    #   Fri 2 Apr = 1; 5-9 Apr = 2..6; 12-16 = 7..11; 19-23 = 12..16; 26-30 = 17..21;
    #   Mon 3 May bank holiday skipped; Tue 4 - Fri 7 May = 22..25; 10-14 = 26..30;
    #   17-21 = 31..35; 24-28 = 36..40; Mon 31 May bank holiday skipped;
    #   Tue 1 - Fri 4 Jun = 41..44; Mon 7 Jun = 45.
    assert CAL.add_working_days(london(2027, 4, 1, 11, 15), 45) == london(2027, 6, 7, 11, 15)


def test_start_on_a_non_working_day_counts_from_next_office_start() -> None:
    # Sat 28 Nov 2026 14:00 counts as received Mon 30 Nov 09:00; + 1 -> Tue 1 Dec 09:00.
    assert CAL.add_working_days(london(2026, 11, 28, 14, 0), 1) == london(2026, 12, 1, 9, 0)
    assert CAL.add_working_days(london(2026, 11, 28, 14, 0), 0) == london(2026, 11, 30, 9, 0)
    # Christmas Day 2026 (Fri) 20:00 -> effective Tue 29 Dec 09:00; + 1 -> Wed 30 Dec 09:00.
    assert CAL.add_working_days(london(2026, 12, 25, 20, 0), 1) == london(2026, 12, 30, 9, 0)


def test_office_hours_are_configurable() -> None:
    cal = WorkingCalendar(OfficeHours(start=time(8, 0), end=time(18, 0)))
    assert cal.add_working_days(london(2026, 11, 28, 14, 0), 1) == london(2026, 12, 1, 8, 0)


def test_start_on_a_working_day_keeps_its_time_even_out_of_hours() -> None:
    # Mon 23 Nov 2026 22:00 + 1 -> Tue 24 Nov 22:00.
    assert CAL.add_working_days(london(2026, 11, 23, 22, 0), 1) == london(2026, 11, 24, 22, 0)


def test_day_boundary_is_london_not_utc() -> None:
    # 23:30 UTC Fri 5 Jun 2026 is 00:30 BST Sat 6 Jun: a Saturday receipt, so it counts
    # from Mon 8 Jun 09:00; + 1 -> Tue 9 Jun 09:00.
    start = datetime(2026, 6, 5, 23, 30, tzinfo=UTC)
    assert CAL.add_working_days(start, 1) == london(2026, 6, 9, 9, 0)


def test_results_are_london_time() -> None:
    due = CAL.add_working_days(datetime(2026, 7, 1, 9, 0, tzinfo=UTC), 1)
    assert due.tzinfo == LONDON
    assert (due.hour, due.minute) == (10, 0)  # 09:00 UTC is 10:00 BST


def test_naive_and_negative_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        CAL.add_working_days(datetime(2026, 11, 27, 10, 0), 1)
    with pytest.raises(ValueError, match="not be negative"):
        CAL.add_working_days(london(2026, 11, 27, 10, 0), -1)
    with pytest.raises(ValueError, match="timezone-aware"):
        CAL.next_school_day_at(datetime(2026, 11, 27, 10, 0))
    with pytest.raises(ValueError, match="before end"):
        OfficeHours(start=time(17), end=time(9))


# --- add_clock_hours ----------------------------------------------------------------------


def test_clock_hours_run_through_the_evening() -> None:
    # Fri 27 Nov 2026 15:30 + 4 hours -> 19:30 the same evening (no office-hours pause).
    assert CAL.add_clock_hours(london(2026, 11, 27, 15, 30), 4) == london(2026, 11, 27, 19, 30)


def test_clock_hours_are_elapsed_time_across_clock_changes() -> None:
    # BST starts 01:00 GMT Sun 28 Mar 2027: 00:30 GMT + 4 real hours = 04:30 UTC = 05:30 BST.
    assert CAL.add_clock_hours(london(2027, 3, 28, 0, 30), 4) == london(2027, 3, 28, 5, 30)
    # BST ends 02:00 BST Sun 31 Oct 2027: 00:30 BST (23:30 UTC Sat) + 4 = 03:30 UTC = GMT.
    due = CAL.add_clock_hours(london(2027, 10, 31, 0, 30), 4)
    assert due == datetime(2027, 10, 31, 3, 30, tzinfo=UTC)
    assert (due.hour, due.minute) == (3, 30)


# --- next_school_day_at (Operation Encompass) --------------------------------------------


@pytest.mark.parametrize(
    ("incident", "due"),
    [
        # Monday evening -> Tuesday 08:30.
        (london(2026, 11, 23, 19, 0), london(2026, 11, 24, 8, 30)),
        # Friday night -> Monday 08:30.
        (london(2026, 11, 27, 23, 0), london(2026, 11, 30, 8, 30)),
        # Saturday morning -> Monday 08:30.
        (london(2026, 11, 28, 6, 0), london(2026, 11, 30, 8, 30)),
        # Friday before the spring bank holiday (Mon 31 May 2027) -> Tue 1 Jun 08:30.
        (london(2027, 5, 28, 21, 0), london(2027, 6, 1, 8, 30)),
        # Before 08:30 on a school day -> 08:30 that same day (Tue 24 Nov 2026).
        (london(2026, 11, 24, 7, 0), london(2026, 11, 24, 8, 30)),
        # At 08:30 exactly the school day has started -> next school day.
        (london(2026, 11, 24, 8, 30), london(2026, 11, 25, 8, 30)),
        # Before 08:30 on a bank holiday (Mon 28 Dec 2026) -> Tue 29 Dec 08:30.
        (london(2026, 12, 28, 7, 0), london(2026, 12, 29, 8, 30)),
        # 23:30 UTC Thu 4 Jun 2026 is 00:30 BST Fri 5 Jun: before 08:30 Friday -> Fri 08:30.
        (datetime(2026, 6, 4, 23, 30, tzinfo=UTC), london(2026, 6, 5, 8, 30)),
    ],
)
def test_next_school_day_at(incident: datetime, due: datetime) -> None:
    assert CAL.next_school_day_at(incident) == due


def test_next_school_day_keeps_0830_local_across_spring_change() -> None:
    # BST starts Sun 29 Mar 2026. Friday 27 Mar 22:00 GMT -> Mon 30 Mar 08:30 BST = 07:30 UTC.
    due = CAL.next_school_day_at(london(2026, 3, 27, 22, 0))
    assert (due.date(), due.hour, due.minute) == (date(2026, 3, 30), 8, 30)
    assert due.astimezone(UTC) == datetime(2026, 3, 30, 7, 30, tzinfo=UTC)


def test_next_school_day_keeps_0830_local_across_autumn_change() -> None:
    # BST ends Sun 25 Oct 2026. Friday 23 Oct 22:00 BST -> Mon 26 Oct 08:30 GMT = 08:30 UTC.
    due = CAL.next_school_day_at(london(2026, 10, 23, 22, 0))
    assert due.astimezone(UTC) == datetime(2026, 10, 26, 8, 30, tzinfo=UTC)


def test_next_school_day_at_custom_time() -> None:
    due = CAL.next_school_day_at(london(2026, 11, 23, 19, 0), at=time(8, 0))
    assert due == london(2026, 11, 24, 8, 0)


# --- properties ---------------------------------------------------------------------------

moments = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
)


@given(start=moments, n=st.integers(min_value=0, max_value=60))
def test_add_working_days_lands_on_a_working_day_and_increases(start: datetime, n: int) -> None:
    due = CAL.add_working_days(start, n)
    following = CAL.add_working_days(start, n + 1)
    assert CAL.is_working_day(due.astimezone(LONDON).date())
    assert CAL.is_working_day(following.astimezone(LONDON).date())
    assert start <= due < following
    # Counting one day at a time, each day is the next working day after the previous.
    assert following.astimezone(LONDON).date() == CAL.next_working_day(
        due.astimezone(LONDON).date()
    )


@given(moment=moments)
def test_next_school_day_is_a_school_day_at_0830_within_a_fortnight(moment: datetime) -> None:
    due = CAL.next_school_day_at(moment)
    local = due.astimezone(LONDON)
    assert CAL.is_school_day(local.date())
    assert local.time() == time(8, 30)
    assert moment < due <= moment + timedelta(days=14)
