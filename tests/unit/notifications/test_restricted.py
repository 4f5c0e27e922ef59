"""A restricted police notification: its police detail reaches no school, no police desk
list and no feedback; each child the scheme covers is withheld, never dropped."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from schemas import examples as ex
from schemas.events import Contact, Feedback, QueueItem, Routed
from services.common.calendar import WorkingCalendar
from services.common.topics import SCHOOL_NOTIFICATIONS, feedback_topic
from services.notifications.encompass import Encompass, school_notices
from services.notifications.feedback import acknowledgement
from services.notifications.firewall import ALLOW_LIST, GIVEN_POLICE_DETAIL, POLICE_DETAIL
from services.notifications.plan import Ledger, contact_plan

CALENDAR = WorkingCalendar()
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def kid(subject_id: str, **fields: Any) -> dict[str, Any]:
    """A child of the example contact, eight years old at the example incident."""
    base = ex.contact()["children"][0]
    return {**base, "subject_id": subject_id, "date_of_birth": "2015-09-01", **fields}


#: At a school; school age with no school known; unborn; three and at no school.
CHILDREN = [
    kid("SUBJ-SCHOOL"),
    kid("SUBJ-NOURN", school_urn=None),
    kid(
        "SUBJ-UNBORN",
        given_name=None,
        date_of_birth=None,
        expected_date_of_birth="2024-09-01",
        school_urn=None,
    ),
    kid("SUBJ-THREE", date_of_birth="2021-01-01", school_urn=None),
]


def contact(restricted: bool, **fields: Any) -> Contact:
    return Contact.model_validate(ex.contact(children=CHILDREN, restricted=restricted, **fields))


def test_an_unrestricted_notification_tells_the_school_and_the_police_desk() -> None:
    scheme = school_notices(contact(False), CALENDAR)
    assert [n.subject_id for n in scheme.notices] == ["SUBJ-SCHOOL"]
    assert [c.subject_id for c in scheme.unmatched] == ["SUBJ-NOURN"]
    assert scheme.withheld == ()


def test_a_restricted_notification_tells_nobody_and_withholds_each_covered_child() -> None:
    scheme = school_notices(contact(True), CALENDAR)
    assert scheme.notices == ()
    assert scheme.unmatched == (), "the police desk would tell the school another way"
    assert [(w.subject_id, w.school_urn) for w in scheme.withheld] == [
        ("SUBJ-SCHOOL", ex.SCHOOL_URN),
        ("SUBJ-NOURN", None),
    ], "the unborn child and the three-year-old at no school are outside the scheme"
    for w in scheme.withheld:
        assert w.contact_id == "CON-TEST-0001"
        assert w.reason == "restricted_investigation"
        assert (w.police_reference, w.force) == ("WM-TEST-0001", "west-midlands")
        assert w.incident_at == datetime(2024, 3, 12, 21, 40, tzinfo=UTC)


@pytest.mark.parametrize(
    "fields",
    [
        {"incident_type": "child_neglect"},
        {
            "source": ex.source_coordinates(
                kind="referral",
                referral_source="2A",
                agency_id="school-999001",
                topic="mash.inbound.referrals.v1",
            )
        },
    ],
)
def test_nothing_is_withheld_where_the_scheme_does_not_apply(fields: dict[str, Any]) -> None:
    assert school_notices(contact(True, **fields), CALENDAR) == Encompass()


def test_a_restricted_contact_is_acknowledged_and_its_children_withheld_once() -> None:
    c = contact(True)
    ledger = Ledger()
    first = contact_plan(c, ledger, CALENDAR, NOW)
    assert [i.topic for i in first.issues] == [feedback_topic("police")], (
        "the acknowledgement, no notice"
    )
    assert SCHOOL_NOTIFICATIONS not in {i.topic for i in first.issues}
    assert first.unmatched == ()
    assert [w.subject_id for w in first.withheld] == ["SUBJ-SCHOOL", "SUBJ-NOURN"]
    again = contact_plan(c, ledger, CALENDAR, NOW)
    assert (again.issues, again.withheld) == ((), ()), "a replay withholds nothing twice"


def test_the_acknowledgement_of_a_restricted_notification_is_that_of_an_open_one() -> None:
    # Not even a difference in what the force receives reveals the restriction (the
    # outcome is built from the routing, which has no field for it: see below).
    restricted, open_one = contact(True), contact(False)
    assert acknowledgement(restricted, NOW) == acknowledgement(open_one, NOW)


def test_only_the_school_is_ever_given_police_detail() -> None:
    assert set(GIVEN_POLICE_DETAIL) == {"school"}
    assert {"police_reference", "incident_at"} <= ALLOW_LIST["school"] & POLICE_DETAIL
    for audience in ("professional", "police_force", "public"):
        assert not ALLOW_LIST[audience] & POLICE_DETAIL, audience


@pytest.mark.parametrize("carrier", [Feedback, QueueItem, Routed])
def test_no_carrier_outside_the_hub_or_to_a_non_s47_queue_has_a_field_for_police_detail(
    carrier: type[Feedback | QueueItem | Routed],
) -> None:
    # What a restricted notification withholds needs no redaction on these: they have no
    # field that could hold it (rules and their reasons, grades, the MARAC flag, the flag).
    assert not POLICE_DETAIL & set(carrier.model_fields), carrier.__name__
    assert "reason" not in carrier.model_fields
