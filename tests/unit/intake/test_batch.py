"""Deciding a batch of contacts in memory: each event sees the batch's earlier contacts as
if they had been written (duplicates by source, re-referral, linking), and the children
rows fold to what upserting each contact in turn would leave."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from schemas import examples as ex
from schemas.cloudevents import CloudEvent
from schemas.inbound import PoliceNotification, Referral
from services.common.kafka import InboundMessage
from services.common.topology import Topology, load_topology
from services.intake.batch import (
    KnownContacts,
    NewContact,
    PriorContact,
    child_sightings,
    decide_batch,
    history_of,
)
from services.intake.contacts import RE_REFERRAL_WINDOW, Arrival, arrival_of, contact_id_for
from services.intake.council_cases import OpenCouncilCase

TOPOLOGY = load_topology("two-hubs")
RECEIVED = datetime(2025, 6, 2, 12, tzinfo=UTC)
INCIDENT = date(2025, 6, 2)
NHS = "9990002002"
OFFSETS = iter(range(1_000_000))


def clock() -> Callable[[], datetime]:
    """A clock that ticks one second per call, from 2025-06-03 09:00 UTC."""
    ticks: Iterator[int] = iter(range(1_000_000))
    return lambda: datetime(2025, 6, 3, 9, tzinfo=UTC) + timedelta(seconds=next(ticks))


def referral(ref: str, received: datetime = RECEIVED, *, source: str, **child: Any) -> Arrival:
    """A referral about one child (by default the one with NHS number :data:`NHS`)."""
    payload = Referral.model_validate(
        ex.referral(
            referral_id=ref,
            received_at=received.isoformat(),
            children=[ex.child(**{"nhs_number": NHS, **child})],
        )
    )
    return _arrival(payload, source)


def police(ref: str, occurred: datetime = RECEIVED, *, source: str) -> Arrival:
    """A police notification about the child with NHS number :data:`NHS`."""
    payload = PoliceNotification.model_validate(
        ex.police_notification(
            notification_id=ref,
            occurred_at=occurred.isoformat(),
            reported_at=occurred.isoformat(),
            children=[ex.police_child(nhs_number=NHS)],
        )
    )
    return _arrival(payload, source)


def _arrival(payload: PoliceNotification | Referral, source: str) -> Arrival:
    offset = next(OFFSETS)
    event = CloudEvent(
        id=f"evt-{offset}",
        source=source,
        type="test",
        time=None,
        subject=None,
        data=None,
        mode="binary",
    )
    return arrival_of(
        payload, event, InboundMessage("mash.inbound.test", 0, offset, None, b"{}", [])
    )


def recorded(
    arrivals: list[Arrival],
    known: KnownContacts,
    topology: Topology,
    at: Callable[[], datetime],
) -> list[NewContact]:
    """:func:`decide_batch` for arrivals that are all new contacts."""
    decided = decide_batch(arrivals, known, topology, at)
    new = [d for d in decided if d is not None]
    assert len(new) == len(decided), "no duplicate among these arrivals"
    return new


def prior(cid: str, received: datetime, incident: date | None, system: str) -> PriorContact:
    return PriorContact(cid, received, incident, system)


def test_re_referral_window_is_the_twelve_months_before_receipt() -> None:
    def flagged(received: datetime) -> bool:
        return history_of(
            [prior("c", received, None, "x")],
            open_case=False,
            received_at=RECEIVED,
            incident=INCIDENT,
            source_system="y",
        ).re_referral

    assert flagged(RECEIVED - RE_REFERRAL_WINDOW), "the window's start is inside"
    assert not flagged(RECEIVED - RE_REFERRAL_WINDOW - timedelta(microseconds=1))
    assert flagged(RECEIVED - timedelta(microseconds=1))
    assert not flagged(RECEIVED), "received at the same instant: not before"
    assert not flagged(RECEIVED + timedelta(days=1)), "a later contact is not a previous one"


def test_linked_contacts_are_same_incident_date_other_systems_distinct_and_ordered() -> None:
    history = history_of(
        [
            prior("c-3", RECEIVED, INCIDENT, "urn:school"),
            prior("c-1", RECEIVED, INCIDENT, "urn:police"),
            prior("c-3", RECEIVED, INCIDENT, "urn:school"),  # the same contact, another child
            prior("c-2", RECEIVED, INCIDENT, "urn:portal"),  # same system as the new contact
            prior("c-4", RECEIVED, INCIDENT + timedelta(days=1), "urn:police"),
            prior("c-5", RECEIVED, None, "urn:police"),
        ],
        open_case=True,
        received_at=RECEIVED,
        incident=INCIDENT,
        source_system="urn:portal",
    )
    assert history.linked_contact_ids == ["c-1", "c-3"]
    assert history.open_case is True


def test_a_repeat_of_a_source_reference_in_the_batch_is_a_duplicate() -> None:
    known = KnownContacts([("urn:portal", "RECORDED")], {}, ())
    batch = [
        referral("RECORDED", source="urn:portal"),
        referral("NEW", source="urn:portal"),
        referral("NEW", source="urn:portal"),
        referral("NEW", source="urn:other"),
    ]
    decided = decide_batch(batch, known, TOPOLOGY, clock())
    assert [d is None for d in decided] == [True, False, True, False]
    ids = [d.contact.contact_id for d in decided if d is not None]
    assert ids == [contact_id_for("urn:portal", "NEW"), contact_id_for("urn:other", "NEW")]


def test_an_earlier_contact_of_the_batch_counts_for_re_referral_and_linking() -> None:
    in_database = prior("c-db", RECEIVED - timedelta(days=400), INCIDENT, "urn:police")
    sid = referral("X", source="urn:portal").subject_ids[0]
    known = KnownContacts([], {sid: [in_database]}, ())
    first, same_day_police, later_school, other_child = recorded(
        [
            referral("R-1", source="urn:portal"),
            police("P-1", RECEIVED + timedelta(hours=1), source="urn:police"),
            referral("R-2", RECEIVED + timedelta(hours=2), source="urn:school"),
            referral("R-3", source="urn:school", nhs_number="9990002010"),
        ],
        known,
        TOPOLOGY,
        clock(),
    )
    # The recorded contact is over 12 months old but about the same incident date.
    assert first.contact.re_referral is False
    assert first.contact.linked_contact_ids == ["c-db"]
    r1 = first.contact.contact_id
    # Linked contacts are the same incident, not earlier referrals: no re-referral.
    assert same_day_police.contact.re_referral is False
    assert same_day_police.contact.linked_contact_ids == [r1], "c-db: the same system"
    assert later_school.contact.re_referral is False
    assert later_school.contact.linked_contact_ids == sorted(
        ["c-db", r1, same_day_police.contact.contact_id]
    )
    assert other_child.contact.re_referral is False
    assert other_child.contact.linked_contact_ids == []


def test_an_earlier_contact_about_another_incident_is_a_re_referral_a_linked_one_is_not() -> None:
    sid = referral("X", source="urn:portal").subject_ids[0]
    linked_only = prior("c-same", RECEIVED - timedelta(hours=3), INCIDENT, "urn:police")
    earlier_incident = prior(
        "c-before", RECEIVED - timedelta(days=30), INCIDENT - timedelta(days=30), "urn:police"
    )
    [alone] = recorded(
        [referral("R-1", source="urn:portal")],
        KnownContacts([], {sid: [linked_only]}, ()),
        TOPOLOGY,
        clock(),
    )
    assert (alone.contact.re_referral, alone.contact.linked_contact_ids) == (False, ["c-same"])
    [both] = recorded(
        [referral("R-2", source="urn:portal")],
        KnownContacts([], {sid: [linked_only, earlier_incident]}, ()),
        TOPOLOGY,
        clock(),
    )
    assert (both.contact.re_referral, both.contact.linked_contact_ids) == (True, ["c-same"])


def test_open_case_is_any_child_with_an_open_item() -> None:
    arrival = referral("OC", source="urn:portal")
    assert KnownContacts([], {}, arrival.subject_ids).history(arrival, HUB).open_case is True
    assert KnownContacts([], {}, ["someone-else"]).history(arrival, HUB).open_case is False


def test_children_rows_keep_the_first_basis_and_sighting_and_the_last_contact() -> None:
    batch = [
        referral("S-1", source="urn:portal"),
        referral("S-2", source="urn:portal", nhs_number="9990002010"),
        referral("S-3", source="urn:portal"),
    ]
    first, other, last = recorded(batch, KnownContacts([], {}, ()), TOPOLOGY, clock())
    rows = child_sightings([first, other, last])
    assert [r.subject_id for r in rows] == sorted(r.subject_id for r in rows)
    by_id = {r.subject_id: r for r in rows}
    child = by_id[batch[0].subject_ids[0]]
    assert child.match_basis == "nhs_number"
    assert child.first_seen_at == first.contact.recorded_at
    assert (child.last_contact_id, child.last_seen_at) == (
        last.contact.contact_id,
        last.contact.recorded_at,
    )
    assert by_id[batch[1].subject_ids[0]].last_contact_id == other.contact.contact_id


HUB = "north-west-central"


def moved(ref: str, postcode: str, received: datetime, *, source: str) -> Arrival:
    """A referral about the example child without an NHS number, living at ``postcode``."""
    return referral(
        ref,
        received,
        source=source,
        nhs_number=None,
        address={"line1": "9 Example Road", "postcode": postcode},
    )


def test_a_child_who_moved_is_a_probable_match_whose_history_follows_it() -> None:
    before, after = recorded(
        [
            moved("M-1", "B6 4AA", RECEIVED, source="urn:portal"),
            moved("M-2", "B20 1AA", RECEIVED + timedelta(days=150), source="urn:school"),
        ],
        KnownContacts([], {}, ()),
        TOPOLOGY,
        clock(),
    )
    old, new = before.contact.children[0], after.contact.children[0]
    assert old.subject_id != new.subject_id, "another postcode: another subject"
    assert (old.match_basis, new.match_basis) == ("demographic", "probable")
    assert new.matched_subject_ids == [old.subject_id]
    assert new.matched_contact_ids == [before.contact.contact_id]
    assert after.contact.subject_key == before.contact.subject_key, "the family's key"
    assert after.contact.re_referral is True, "the earlier referral was of the same child"


def test_a_probable_match_is_only_within_the_hub_and_never_across_nhs_numbers() -> None:
    north, south = recorded(
        [
            moved("H-1", "B6 4AA", RECEIVED, source="urn:portal"),
            moved("H-2", "B11 1AA", RECEIVED + timedelta(days=1), source="urn:portal"),
        ],
        KnownContacts([], {}, ()),
        TOPOLOGY,
        clock(),
    )
    assert north.contact.hub != south.contact.hub
    assert south.contact.children[0].match_basis == "demographic"
    assert south.contact.children[0].matched_subject_ids == []
    assert south.contact.re_referral is False
    one, other = recorded(
        [
            referral("N-1", source="urn:portal", nhs_number="9990002010"),
            referral("N-2", source="urn:portal", nhs_number="9990002029"),
        ],
        KnownContacts([], {}, ()),
        TOPOLOGY,
        clock(),
    )
    assert other.contact.children[0].matched_subject_ids == []
    assert other.contact.subject_key == one.contact.subject_key, "the same address"


def test_an_open_council_case_is_an_open_case_and_names_its_type() -> None:
    arrival = moved("CC-1", "B6 4AA", RECEIVED, source="urn:portal")
    person = arrival.children[0].person_key
    case = OpenCouncilCase(
        subject_id="council-child", person_key=person, case_type="early_help", hub=None
    )
    [new] = recorded([arrival], KnownContacts([], {}, (), (), [case]), TOPOLOGY, clock())
    child = new.contact.children[0]
    assert new.contact.open_case is True
    assert child.council_cases == ["early_help"]
    assert (child.match_basis, child.matched_subject_ids) == ("probable", ["council-child"])
    elsewhere = OpenCouncilCase("council-child", person, "early_help", "east-south")
    [other] = recorded(
        [moved("CC-2", "B6 4AA", RECEIVED, source="urn:portal")],
        KnownContacts([], {}, (), (), [elsewhere]),
        TOPOLOGY,
        clock(),
    )
    assert other.contact.open_case is False, "a case held by another hub's council"
    assert other.contact.children[0].council_cases == []
