"""Operation Encompass: who gets a notice, what it says and when it is due."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import examples as ex
from schemas.events import Contact, SchoolNotification
from services.common.calendar import WorkingCalendar
from services.common.encompass import age_on, applies
from services.notifications.encompass import school_notices
from services.notifications.firewall import ALLOW_LIST
from tests.unit.screening.builders import decide

CALENDAR = WorkingCalendar()


def kid(subject_id: str = "SUBJ-1", **fields: Any) -> dict[str, Any]:
    """A child of the example contact, eight years old at the example incident."""
    base = ex.contact()["children"][0]
    return {**base, "subject_id": subject_id, "date_of_birth": "2015-09-01", **fields}


def contact(children: list[dict[str, Any]] | None = None, **fields: Any) -> Contact:
    data = ex.contact(**fields)
    if children is not None:
        data["children"] = children
    return Contact.model_validate(data)


def notice_of(c: Contact) -> SchoolNotification:
    result = school_notices(c, CALENDAR)
    assert len(result.notices) == 1
    event = result.notices[0].disclosure.event
    assert isinstance(event, SchoolNotification)
    return event


def test_a_police_domestic_abuse_notification_about_a_school_age_child_gives_one_notice() -> None:
    c = contact()
    result = school_notices(c, CALENDAR)
    assert result.unmatched == ()
    (notice,) = result.notices
    d = notice.disclosure
    assert d.audience == "school"
    assert d.rule == "operation_encompass"
    assert d.recipient == ex.SCHOOL_URN
    assert notice.subject_id == "SUBJ-TEST-0001"
    event = d.event
    assert isinstance(event, SchoolNotification)
    assert event.school_urn == ex.SCHOOL_URN
    assert (event.child_given_name, event.child_family_name) == ("Testchild", "Example-One")
    assert event.child_date_of_birth == date(2019, 5, 17)
    assert event.police_reference == "WM-TEST-0001"
    assert event.incident_at == datetime(2024, 3, 12, 21, 40, tzinfo=UTC)
    assert event.child_present is True
    assert set(d.fields) == ALLOW_LIST["school"]
    assert set(event.model_dump()) == ALLOW_LIST["school"]


@pytest.mark.parametrize(
    ("incident", "due"),
    [
        # Weekday evening (Tuesday, GMT) -> Wednesday 08:30.
        ("2024-03-12T21:40:00+00:00", "2024-03-13T08:30:00+00:00"),
        # Friday night -> Monday 08:30.
        ("2024-03-15T23:10:00+00:00", "2024-03-18T08:30:00+00:00"),
        # Thursday before Easter: Good Friday and Easter Monday are bank holidays, and the
        # clocks go forward on the Sunday -> Tuesday 08:30 BST (07:30 UTC).
        ("2024-03-28T19:00:00+00:00", "2024-04-02T07:30:00+00:00"),
        # Early morning on a school day -> 08:30 that same day.
        ("2024-03-13T06:15:00+00:00", "2024-03-13T08:30:00+00:00"),
        # Late August bank holiday weekend (BST) -> Tuesday 08:30 BST.
        ("2024-08-23T20:00:00+01:00", "2024-08-27T08:30:00+01:00"),
    ],
)
def test_due_by_is_0830_on_the_next_school_day(incident: str, due: str) -> None:
    event = notice_of(contact(incident_at=incident))
    assert event.due_by == datetime.fromisoformat(due)


@pytest.mark.parametrize(
    ("born", "school_age"),
    [
        ("2019-03-12", True),  # fifth birthday on the incident date
        ("2019-03-13", False),  # four until tomorrow
        ("2008-03-13", True),  # fifteen, sixteen tomorrow
        ("2008-03-12", False),  # sixteen today: beyond compulsory school age
        ("2023-01-01", False),
    ],
)
def test_school_age_is_five_to_fifteen_on_the_incident_date(born: str, school_age: bool) -> None:
    # Without a school URN, a school-age child goes to the police desk; others are outside.
    c = contact([kid(date_of_birth=born, school_urn=None)], incident_at="2024-03-12T21:40:00+00:00")
    result = school_notices(c, CALENDAR)
    assert result.notices == ()
    assert [u.reason for u in result.unmatched] == (["no_school_urn"] if school_age else [])


@pytest.mark.parametrize("born", ["2019-03-12", "2019-05-17", "2008-03-12", "2008-03-13"])
def test_every_child_whose_school_is_known_is_notified(born: str) -> None:
    # A reception-class four-year-old or a sixth-former: the URN says a school has them.
    c = contact([kid(date_of_birth=born)], incident_at="2024-03-12T21:40:00+00:00")
    assert len(school_notices(c, CALENDAR).notices) == 1


def test_the_incident_date_is_the_london_date() -> None:
    # 23:30 UTC on 11 June is 00:30 BST on 12 June: the child turned 5 that London day.
    child = kid(date_of_birth="2019-06-12", school_urn=None)
    c = contact([child], incident_at="2024-06-11T23:30:00+00:00")
    assert len(school_notices(c, CALENDAR).unmatched) == 1


def test_age_on_handles_leap_day_birthdays() -> None:
    assert age_on(date(2016, 2, 29), date(2021, 2, 28)) == 4
    assert age_on(date(2016, 2, 29), date(2021, 3, 1)) == 5


def test_a_child_without_a_school_urn_is_unmatched_not_dropped() -> None:
    c = contact([kid("SUBJ-A", school_urn=None), kid("SUBJ-B", school_urn="999002")])
    result = school_notices(c, CALENDAR)
    assert [n.subject_id for n in result.notices] == ["SUBJ-B"]
    (unmatched,) = result.unmatched
    assert unmatched.subject_id == "SUBJ-A"
    assert unmatched.reason == "no_school_urn"
    assert unmatched.police_reference == "WM-TEST-0001"
    assert unmatched.force == "west-midlands"
    assert unmatched.due_by == datetime(2024, 3, 13, 8, 30, tzinfo=UTC)


def test_a_child_without_a_name_is_unmatched() -> None:
    c = contact([kid(given_name=None)])
    result = school_notices(c, CALENDAR)
    assert result.notices == ()
    assert [u.reason for u in result.unmatched] == ["no_name"]


def test_each_child_gets_its_own_notice_with_its_own_presence() -> None:
    c = contact(
        [
            kid("SUBJ-A", child_ref="C-A", present_at_incident=True),
            kid("SUBJ-B", child_ref="C-B", present_at_incident=False, school_urn="999002"),
        ]
    )
    result = school_notices(c, CALENDAR)
    by_urn = {
        n.disclosure.recipient: n.disclosure.event
        for n in result.notices
        if isinstance(n.disclosure.event, SchoolNotification)
    }
    assert set(by_urn) == {ex.SCHOOL_URN, "999002"}
    assert [by_urn[u].child_present for u in (ex.SCHOOL_URN, "999002")] == [
        True,
        False,
    ]
    assert len({n.disclosure.event_id for n in result.notices}) == 2


def test_unborn_and_under_fives_without_a_school_are_outside_the_scheme() -> None:
    unborn = kid("SUBJ-U", date_of_birth=None, expected_date_of_birth="2024-06-01")
    toddler = kid("SUBJ-T", date_of_birth="2022-01-01", school_urn=None)
    result = school_notices(contact([unborn, toddler]), CALENDAR)
    assert (result.notices, result.unmatched) == ((), ())


@pytest.mark.parametrize(
    "fields",
    [
        {"incident_type": "child_neglect"},
        {
            "source": ex.source_coordinates(kind="referral", referral_source="2A"),
            "incident_type": None,
        },
    ],
)
def test_only_police_domestic_abuse_notifications_apply(fields: dict[str, Any]) -> None:
    c = contact(**fields)
    assert not applies(c)
    assert school_notices(c, CALENDAR).notices == ()


def test_notice_ids_are_stable() -> None:
    a = notice_of(contact())
    b = notice_of(contact())
    assert a.notice_id == b.notice_id
    assert notice_of(contact(contact_id="CON-OTHER")).notice_id != a.notice_id


@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.dates(date(2003, 1, 1), date(2024, 3, 1))),
            st.booleans(),
            st.booleans(),
        ),
        min_size=1,
        max_size=4,
    ),
    st.sampled_from(["domestic_abuse", "child_neglect"]),
    st.booleans(),
)
def test_screenings_encompass_flag_promises_exactly_what_notifications_does(
    children: list[tuple[date | None, bool, bool]], incident_type: str, restricted: bool
) -> None:
    # Item 6 of the domain issue: the flag said ages 5-15 while notices went to any child
    # with a school, and a test asserted each. Now one predicate decides both, restricted
    # notifications included (nobody is told; each covered child is withheld instead).
    made = [
        kid(
            f"SUBJ-{n}",
            date_of_birth=None if born is None else born.isoformat(),
            expected_date_of_birth="2024-09-01" if born is None else None,
            given_name=None if born is None or not named else "Testchild",
            school_urn=ex.SCHOOL_URN if with_school else None,
        )
        for n, (born, with_school, named) in enumerate(children)
    ]
    c = contact(made, incident_type=incident_type, restricted=restricted)
    scheme = school_notices(c, CALENDAR)
    assert decide(c).encompass_required is bool(scheme.notices or scheme.unmatched)
    open_scheme = school_notices(c.model_copy(update={"restricted": False}), CALENDAR)
    covered = {n.subject_id for n in open_scheme.notices} | {
        u.subject_id for u in open_scheme.unmatched
    }
    if restricted:
        assert (scheme.notices, scheme.unmatched) == ((), ())
        assert {w.subject_id for w in scheme.withheld} == covered
    else:
        assert scheme == open_scheme
        assert scheme.withheld == ()
