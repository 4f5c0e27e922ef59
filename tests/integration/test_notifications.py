"""Notifications on the real broker and database: each feedback kind and audience, updates
and replays, Operation Encompass due times and unmatched children, the disclosure audit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas import examples as ex
from schemas.events import Contact
from services.common.topics import SCHOOL_NOTIFICATIONS, feedback_topic
from services.notifications.feedback import OUTCOME_TEXT, WORDING
from services.notifications.firewall import ALLOW_LIST, ALLOW_LIST_VERSION
from tests.integration.harness import metric_value
from tests.integration.notifications_harness import (
    NotificationsUnderTest,
    contact,
    referral_source,
    routed_for,
)
from tests.support import Record, Stack, fetch, fetchval, records_until, wait_until

pytestmark = pytest.mark.integration

#: An eight-year-old at the example school.
SCHOOL_CHILD = {**ex.contact()["children"][0], "date_of_birth": "2015-09-01"}


@pytest.fixture(scope="module")
async def notifications(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[NotificationsUnderTest]:
    harness = await NotificationsUnderTest.start(stack, tmp_path_factory.mktemp("notifications"))
    yield harness
    await harness.stop()


def carried(record: Record) -> dict[str, Any]:
    """The fields of an outbound event that carry a value."""
    return {k: v for k, v in record.json().items() if v is not None}


async def feedback_for(
    n: NotificationsUnderTest, reference: str, count: int
) -> list[dict[str, Any]]:
    """The feedback events (with their key and topic) about the referral ``reference``, in
    order."""
    records = await records_until(
        n.world.stack.bootstrap,
        n.world.topics.feedback(),
        lambda rs: sum(r.json()["referrer_reference"] == reference for r in rs) >= count,
    )
    mine = [r for r in records if r.json()["referrer_reference"] == reference]
    return [{**carried(r), "_key": (r.key or b"").decode(), "_topic": r.topic} for r in mine]


async def test_police_force_gets_acknowledgement_outcome_and_each_change_as_an_update(
    notifications: NotificationsUnderTest,
) -> None:
    n = notifications
    c = contact("P1")
    await n.feed(c)
    assert await n.outcome(c.contact_id) == "applied"
    first = routed_for(c, "0")  # rules: s47, north-west-central
    await n.feed(first)
    assert await n.outcome(first.routed_id) == "outcome"
    override = routed_for(
        c,
        "1",
        decision_source="practitioner",
        outcome="initial_assessment",
        level=3,
        rag="amber",
        queue="initial-assessment",
        decided_at="2024-03-13T11:00:00+00:00",
        routed_at="2024-03-13T11:00:01+00:00",
    )
    await n.feed(override)
    assert await n.outcome(override.routed_id) == "update"
    confirm = routed_for(
        c,
        "2",
        decision_source="practitioner",
        outcome="initial_assessment",
        level=3,
        rag="amber",
        queue="initial-assessment",
        decided_at="2024-03-13T12:00:00+00:00",
        routed_at="2024-03-13T12:00:01+00:00",
    )
    await n.feed(confirm)
    assert await n.outcome(confirm.routed_id) == "unchanged"
    rerouted = routed_for(
        c,
        "3",
        outcome="single_agency",
        level=2,
        rag="green",
        queue="single-agency",
        target_agency="early_help",
        hub="east-south",
        decided_at="2024-03-14T09:00:00+00:00",
        routed_at="2024-03-14T09:00:01+00:00",
    )
    await n.feed(rerouted)
    assert await n.outcome(rerouted.routed_id) == "update"

    events = await feedback_for(n, "WM-P1", 4)
    assert [e["kind"] for e in events] == ["acknowledgement", "outcome", "update", "update"]
    assert {e["_key"] for e in events} == {"west-midlands"}, "keyed by the force"
    assert {e["_topic"] for e in events} == {n.world.topics(feedback_topic("police"))}
    assert {e["contact_reference"] for e in events} == {"MASH-P1"}
    ack, outcome, update1, update2 = events
    assert set(ack) == {
        "feedback_id",
        "kind",
        "referrer_reference",
        "contact_reference",
        "issued_at",
        "_key",
        "_topic",
    }
    assert outcome["outcome"] == "s47"
    assert outcome["outcome_text"] == OUTCOME_TEXT["s47"]
    assert outcome["hub"] == "north-west-central"
    assert outcome["hub_contact"] == "mash-nwc@example.invalid"
    assert update1["outcome"] == "initial_assessment"
    assert update1["outcome_text"].startswith(WORDING.update_preface)
    assert (update2["outcome"], update2["hub"]) == ("single_agency", "east-south")
    assert update2["hub_contact"] == "mash-es@example.invalid"
    assert "early_help" not in str(update2), "never another agency's information"

    rows = await fetch(
        n.world.dsn,
        "SELECT kind, sequence, outcome, audience, agency_id FROM feedback"
        " WHERE contact_id = $1 ORDER BY kind, sequence",
        c.contact_id,
    )
    assert [(r["kind"], r["sequence"], r["outcome"]) for r in rows] == [
        ("acknowledgement", 0, None),
        ("outcome", 0, "s47"),
        ("update", 1, "initial_assessment"),
        ("update", 2, "single_agency"),
    ]
    assert {(r["audience"], r["agency_id"]) for r in rows} == {("police_force", "west-midlands")}


async def test_replays_with_the_same_or_new_event_ids_send_nothing_twice(
    notifications: NotificationsUnderTest,
) -> None:
    n = notifications
    c = contact("P2")
    first = routed_for(c, "0")
    change = routed_for(
        c,
        "1",
        outcome="initial_assessment",
        level=3,
        rag="amber",
        queue="initial-assessment",
        decided_at="2024-03-13T11:00:00+00:00",
        routed_at="2024-03-13T11:00:01+00:00",
    )
    for event in (c, first, change):
        await n.feed(event)
    assert await n.outcome(change.routed_id) == "update"
    # Again with the same ids (a redelivery) and with new ids (an upstream replay).
    for event in (c, first, change):
        await n.feed(event)
    await n.feed(c, event_id="replayed-contact-P2")
    await n.feed(first, event_id="replayed-first-P2")
    await n.feed(change, event_id="replayed-change-P2")
    assert await n.outcome("replayed-contact-P2") == "already_acknowledged"
    assert await n.outcome("replayed-first-P2") == "stale", "an old routing never undoes a change"
    assert await n.outcome("replayed-change-P2") == "unchanged"

    async def redeliveries_seen() -> bool:
        count = await fetchval(
            n.world.dsn,
            "SELECT count(*) FROM audit_log WHERE service = 'notifications'"
            " AND action = 'duplicate_event_id' AND entity_id = ANY($1::text[])",
            [c.contact_id, first.routed_id, change.routed_id],
        )
        return bool(count == 3)

    await wait_until(redeliveries_seen, timeout=60, what="the redeliveries to be skipped")
    assert (
        await fetchval(n.world.dsn, "SELECT count(*) FROM feedback WHERE contact_id = $1", "CON-P2")
        == 3
    )
    events = await feedback_for(n, "WM-P2", 3)
    assert len({e["feedback_id"] for e in events}) == 3
    assert [e["kind"] for e in events] == ["acknowledgement", "outcome", "update"]


async def test_a_professional_referrer_hears_the_outcome_keyed_by_their_agency(
    notifications: NotificationsUnderTest,
) -> None:
    n = notifications
    c = contact("R1", source=referral_source("R1", "2A", "school-999001"), incident_type=None)
    r = routed_for(c, "0", outcome="single_agency", level=2, rag="green", queue="single-agency")
    await n.feed(c)
    await n.feed(r)
    assert await n.outcome(r.routed_id) == "outcome"
    ack, outcome = await feedback_for(n, "REF-R1", 2)
    assert (ack["kind"], outcome["kind"]) == ("acknowledgement", "outcome")
    assert {ack["_key"], outcome["_key"]} == {"school-999001"}
    # A school's feedback is on education's topic, which the police cannot read.
    assert {ack["_topic"], outcome["_topic"]} == {n.world.topics(feedback_topic("education"))}
    assert outcome["outcome_text"] == OUTCOME_TEXT["single_agency"]
    audience = await fetchval(
        n.world.dsn, "SELECT DISTINCT audience FROM feedback WHERE contact_id = $1", c.contact_id
    )
    assert audience == "professional"


async def test_a_routing_that_overtakes_its_contact_is_still_acknowledged_first(
    notifications: NotificationsUnderTest,
) -> None:
    n = notifications
    c = contact("R2", source=referral_source("R2", "3A", "gp-1"), incident_type=None)
    r = routed_for(c, "0", outcome="initial_assessment", level=3, rag="amber")
    await n.feed(r)
    assert await n.outcome(r.routed_id) == "outcome"
    await n.feed(c)
    assert await n.outcome(c.contact_id) == "already_acknowledged"
    events = await feedback_for(n, "REF-R2", 2)
    assert [e["kind"] for e in events] == ["acknowledgement", "outcome"]
    assert {e["_key"] for e in events} == {"gp-1"}
    assert {e["_topic"] for e in events} == {n.world.topics(feedback_topic("health"))}
    assert (
        await fetchval(n.world.dsn, "SELECT count(*) FROM feedback WHERE contact_id = $1", "CON-R2")
        == 2
    )


@pytest.mark.parametrize("code", ["1A", "1C", "9"])
async def test_a_member_of_the_public_gets_an_acknowledgement_only(
    notifications: NotificationsUnderTest, code: str
) -> None:
    n = notifications
    name = f"PUB-{code}"
    c = contact(name, source=referral_source(name, code, "public"), incident_type=None)
    first = routed_for(c, "0")
    change = routed_for(c, "1", outcome="no_further_action", level=1, rag="blue", queue=None)
    for event in (c, first, change):
        await n.feed(event)
    assert await n.outcome(first.routed_id) == "public_referrer"
    assert await n.outcome(change.routed_id) == "public_referrer"
    (ack,) = await feedback_for(n, f"REF-{name}", 1)
    assert ack["kind"] == "acknowledgement"
    assert ack["_key"] == "public"
    assert ack["_topic"] == n.world.topics(feedback_topic("public"))
    assert set(ack) - {"_key", "_topic"} <= ALLOW_LIST["public"]
    kinds = await fetch(
        n.world.dsn, "SELECT kind FROM feedback WHERE contact_id = $1", c.contact_id
    )
    assert [k["kind"] for k in kinds] == ["acknowledgement"]


@pytest.mark.parametrize(
    ("case", "incident_at", "due_by"),
    [
        ("weekday-evening", "2024-03-12T21:40:00+00:00", "2024-03-13T08:30:00+00:00"),
        ("friday-night", "2024-03-15T22:30:00+00:00", "2024-03-18T08:30:00+00:00"),
        # Good Friday and Easter Monday, and the clocks go forward: Tuesday 08:30 BST.
        ("bank-holiday-weekend", "2024-03-28T19:00:00+00:00", "2024-04-02T08:30:00+01:00"),
    ],
)
async def test_operation_encompass_notice_is_due_at_0830_on_the_next_school_day(
    notifications: NotificationsUnderTest, case: str, incident_at: str, due_by: str
) -> None:
    n = notifications
    urn = {"weekday-evening": "999101", "friday-night": "999102"}.get(case, "999103")
    c = contact(
        f"ENC-{case}", incident_at=incident_at, children=[{**SCHOOL_CHILD, "school_urn": urn}]
    )
    await n.feed(c)
    assert await n.outcome(c.contact_id) == "applied"
    records = await records_until(
        n.world.stack.bootstrap,
        n.world.topics(SCHOOL_NOTIFICATIONS),
        lambda rs: any(r.key == urn.encode() for r in rs),
    )
    (notice,) = [r for r in records if r.key == urn.encode()]
    body = carried(notice)
    assert set(body) == ALLOW_LIST["school"]
    assert datetime.fromisoformat(body["due_by"]) == datetime.fromisoformat(due_by)
    assert datetime.fromisoformat(body["incident_at"]) == datetime.fromisoformat(incident_at)
    assert body["school_urn"] == urn
    assert body["police_reference"] == f"WM-ENC-{case}"
    assert (body["child_given_name"], body["child_family_name"]) == ("Testchild", "Example-One")
    assert body["child_date_of_birth"] == "2015-09-01"
    assert body["child_present"] is True
    assert notice.headers["ce_type"] == "uk.gov.mash.school-notification.v1"
    row = await fetch(
        n.world.dsn,
        "SELECT school_urn, due_by FROM encompass_notices WHERE contact_id = $1",
        c.contact_id,
    )
    assert [(r["school_urn"], r["due_by"]) for r in row] == [
        (urn, datetime.fromisoformat(due_by).astimezone(UTC))
    ]


async def test_a_school_age_child_without_a_school_is_left_for_the_police_desk(
    notifications: NotificationsUnderTest,
) -> None:
    n = notifications
    c = contact(
        "ENC-NOURN",
        children=[
            {**SCHOOL_CHILD, "child_ref": "C-1", "school_urn": None},
            {**SCHOOL_CHILD, "child_ref": "C-2", "school_urn": "999104"},
        ],
    )
    await n.feed(c)
    assert await n.outcome(c.contact_id) == "applied"
    rows = await fetch(
        n.world.dsn,
        "SELECT subject_id, reason, police_reference, force, due_by, resolved_at"
        " FROM encompass_unmatched WHERE contact_id = $1",
        c.contact_id,
    )
    assert [(r["subject_id"], r["reason"], r["police_reference"], r["force"]) for r in rows] == [
        ("SUBJ-ENC-NOURN-0", "no_school_urn", "WM-ENC-NOURN", "west-midlands")
    ]
    assert rows[0]["due_by"] == datetime(2024, 3, 13, 8, 30, tzinfo=UTC)
    assert rows[0]["resolved_at"] is None
    # The sibling with a school still gets its notice.
    records = await records_until(
        n.world.stack.bootstrap,
        n.world.topics(SCHOOL_NOTIFICATIONS),
        lambda rs: any(r.key == b"999104" for r in rs),
    )
    assert sum(r.key == b"999104" for r in records) == 1

    async def counted() -> bool:
        text = n.metrics()
        return metric_value(text, "mash_encompass_unmatched_total", reason="no_school_urn") >= 1

    await wait_until(counted, timeout=30, what="the unmatched child to be counted")


async def test_notices_are_counted_due_and_sent_and_marked_sent(
    notifications: NotificationsUnderTest,
) -> None:
    n = notifications
    c = contact("ENC-SENT", children=[{**SCHOOL_CHILD, "school_urn": "999105"}])
    await n.feed(c)
    assert await n.outcome(c.contact_id) == "applied"

    async def marked_sent() -> bool:
        sent = await fetchval(
            n.world.dsn,
            "SELECT sent_at IS NOT NULL FROM encompass_notices WHERE contact_id = $1",
            c.contact_id,
        )
        return bool(sent)

    await wait_until(marked_sent, timeout=30, what="the notice to be marked sent")

    async def counted() -> bool:
        text = n.metrics()
        # The incidents are in 2024, so every notice here is (by its due time) late.
        return (
            metric_value(text, "mash_encompass_notices_due_total") >= 1
            and metric_value(text, "mash_encompass_notices_sent_total", timeliness="late") >= 1
        )

    await wait_until(counted, timeout=30, what="the notice to be counted due and sent")


async def test_every_disclosure_is_audited_by_field_name_and_rule(
    notifications: NotificationsUnderTest,
) -> None:
    n = notifications
    c = contact("AUD", children=[{**SCHOOL_CHILD, "school_urn": "999106"}])
    r = routed_for(c, "0")
    await n.feed(c)
    await n.feed(r)
    assert await n.outcome(r.routed_id) == "outcome"
    rows = await fetch(
        n.world.dsn,
        "SELECT event_id, channel, destination, recipient, audience, rule, allow_list, fields"
        " FROM disclosures WHERE contact_id = $1 ORDER BY rule",
        c.contact_id,
    )
    by_rule = {row["rule"]: row for row in rows}
    assert set(by_rule) == {"feedback.acknowledgement", "feedback.outcome", "operation_encompass"}
    assert {row["allow_list"] for row in rows} == {ALLOW_LIST_VERSION}
    assert {row["channel"] for row in rows} == {"kafka"}
    ack = by_rule["feedback.acknowledgement"]
    assert (ack["recipient"], ack["audience"]) == ("west-midlands", "police_force")
    assert ack["destination"] == n.world.topics(feedback_topic("police"))
    assert set(ack["fields"]) == {
        "feedback_id",
        "kind",
        "referrer_reference",
        "contact_reference",
        "issued_at",
    }
    assert set(by_rule["feedback.outcome"]["fields"]) == ALLOW_LIST["police_force"]
    notice = by_rule["operation_encompass"]
    assert (notice["recipient"], notice["audience"]) == ("999106", "school")
    assert notice["destination"] == n.world.topics(SCHOOL_NOTIFICATIONS)
    assert set(notice["fields"]) == ALLOW_LIST["school"]
    # Names, never values: nothing in the audit row is the child's name.
    assert "Testchild" not in str([dict(row) for row in rows])


async def test_nothing_outside_the_allow_list_is_on_the_outbound_topics(
    notifications: NotificationsUnderTest,
) -> None:
    n = notifications
    c = contact("WIRE", children=[{**SCHOOL_CHILD, "school_urn": "999107"}], restricted=True)
    r = routed_for(c, "0", target_agency="police")
    # A restricted notification tells no school: an open one's notice is checked instead.
    told = contact("WIRE-OPEN", children=[{**SCHOOL_CHILD, "school_urn": "999110"}])
    await n.feed(c)
    await n.feed(r)
    await n.feed(told)
    assert await n.outcome(r.routed_id) == "outcome"
    await feedback_for(n, "WM-WIRE", 2)
    feedback = await records_until(
        n.world.stack.bootstrap, n.world.topics.feedback(), lambda rs: len(rs) > 0
    )
    for record in feedback:
        body = carried(record)
        assert set(body) <= ALLOW_LIST["professional"]
        for secret in ("Testchild", "Example-One", "restricted", "dash", "high", "B6 4AA"):
            assert secret not in record.value.decode()
    notices = await records_until(
        n.world.stack.bootstrap,
        n.world.topics(SCHOOL_NOTIFICATIONS),
        lambda rs: any(r.key == b"999110" for r in rs),
    )
    for record in notices:
        assert set(carried(record)) <= ALLOW_LIST["school"]
        for secret in ("restricted", "dash", "B6 4AA", "SUBJ-"):
            assert secret not in record.value.decode()


async def test_a_restricted_notification_tells_no_school_while_an_open_one_does(
    notifications: NotificationsUnderTest,
) -> None:
    n = notifications
    restricted = contact(
        "RESTR",
        children=[
            {**SCHOOL_CHILD, "child_ref": "C-1", "school_urn": "999108"},
            {**SCHOOL_CHILD, "child_ref": "C-2", "school_urn": None},  # no desk for it either
        ],
        restricted=True,
    )
    # The open notification about the same household follows it on the same partition, so
    # once its notice is on the topic, anything the restricted one sent would be there too.
    open_one = contact("RESTR-OPEN", children=[{**SCHOOL_CHILD, "school_urn": "999109"}])
    open_one = open_one.model_copy(update={"subject_key": restricted.subject_key})
    routed = routed_for(restricted, "0")
    for event in (restricted, open_one):
        await n.feed(event)
    assert await n.outcome(restricted.contact_id) == "applied"
    assert await n.outcome(open_one.contact_id) == "applied"
    # Only now the routing: on another topic it could overtake its contact and acknowledge
    # it first (then the contact's outcome word is already_acknowledged).
    await n.feed(routed)
    assert await n.outcome(routed.routed_id) == "outcome", "the force still hears the outcome"
    records = await records_until(
        n.world.stack.bootstrap,
        n.world.topics(SCHOOL_NOTIFICATIONS),
        lambda rs: any(r.key == b"999109" for r in rs),
    )
    assert [r.json()["police_reference"] for r in records if r.key == b"999109"] == [
        "WM-RESTR-OPEN"
    ]
    assert not [r for r in records if r.key == b"999108"]
    assert "WM-RESTR" not in [r.json()["police_reference"] for r in records]

    ids = [restricted.contact_id, open_one.contact_id]
    notices = await fetch(
        n.world.dsn,
        "SELECT contact_id FROM encompass_notices WHERE contact_id = ANY($1::text[])",
        ids,
    )
    assert [r["contact_id"] for r in notices] == [open_one.contact_id]
    assert (
        await fetchval(
            n.world.dsn,
            "SELECT count(*) FROM encompass_unmatched WHERE contact_id = $1",
            restricted.contact_id,
        )
        == 0
    )
    withheld = await fetch(
        n.world.dsn,
        "SELECT contact_id, subject_id, school_urn, reason, police_reference, force"
        " FROM encompass_withheld WHERE contact_id = ANY($1::text[]) ORDER BY subject_id",
        ids,
    )
    assert [tuple(r.values()) for r in withheld] == [
        (
            "CON-RESTR",
            "SUBJ-RESTR-0",
            "999108",
            "restricted_investigation",
            "WM-RESTR",
            "west-midlands",
        ),
        (
            "CON-RESTR",
            "SUBJ-RESTR-1",
            None,
            "restricted_investigation",
            "WM-RESTR",
            "west-midlands",
        ),
    ]
    rules = await fetch(
        n.world.dsn,
        "SELECT rule, recipient FROM disclosures WHERE contact_id = $1 ORDER BY rule",
        restricted.contact_id,
    )
    assert [(r["rule"], r["recipient"]) for r in rules] == [
        ("feedback.acknowledgement", "west-midlands"),
        ("feedback.outcome", "west-midlands"),
    ], "disclosed to the force that sent it, and to nobody else"

    async def counted() -> bool:
        text = n.metrics()
        value = metric_value(
            text, "mash_encompass_withheld_total", reason="restricted_investigation"
        )
        return value >= 2

    await wait_until(counted, timeout=30, what="the withheld children to be counted")

    # A replay under a new event id withholds nothing twice.
    await n.feed(restricted, event_id="replayed-RESTR")
    assert await n.outcome("replayed-RESTR") == "already_acknowledged"
    assert (
        await fetchval(
            n.world.dsn,
            "SELECT count(*) FROM encompass_withheld WHERE contact_id = $1",
            restricted.contact_id,
        )
        == 2
    )


async def test_a_routing_to_a_hub_outside_the_topology_is_dead_lettered(
    notifications: NotificationsUnderTest,
) -> None:
    n = notifications
    c: Contact = contact("BADHUB")
    r = routed_for(c, "0", hub="atlantis")
    offset = await n.feed(r)

    async def dead_letter() -> str | None:
        rows = await fetch(
            n.world.dsn,
            'SELECT reason FROM dead_letters WHERE original_topic = $1 AND "offset" = $2',
            n.world.topics("mash.routed.v1"),
            offset,
        )
        return None if not rows else str(rows[0]["reason"])

    assert await wait_until(dead_letter, timeout=60, what="the dead letter") == "unknown_reference"
    assert (
        await fetchval(
            n.world.dsn, "SELECT count(*) FROM feedback WHERE contact_id = $1", c.contact_id
        )
        == 0
    )
