"""Deciding a batch in order equals deciding its events one by one.

The oracle is the per-event logic notifications had before batch effects, restated over
an in-memory table with the database's unique keys: each event reads what the referrer
was last told, then inserts its rows one at a time (ON CONFLICT DO NOTHING), and sends what
was new. The batch is decided against one :class:`Ledger`, its claimed rows are inserted
into the same kind of table at once, and each event then sends what was new. Both must
give every event the same outcome word and send the same events in the same order. Pure
and fast: no broker, no database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import examples as ex
from schemas.events import Contact, Routed, SchoolNotification
from services.common.calendar import WorkingCalendar
from services.common.topology import load_topology
from services.notifications import encompass
from services.notifications.feedback import (
    Reported,
    acknowledgement,
    acknowledgement_before,
    on_routed,
)
from services.notifications.plan import Ledger, Plan, contact_plan, routed_plan
from services.notifications.store import FeedbackRow, NoticeRow

TOPOLOGY = load_topology("two-hubs")
CALENDAR = WorkingCalendar()
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
START = datetime(2024, 3, 13, 9, 0, tzinfo=UTC)
HUBS = ["north-west-central", "east-south", "atlantis"]  # atlantis: outside the topology
OUTCOMES = {
    "s47": {"level": 4, "rag": "red", "queue": "s47"},
    "initial_assessment": {"level": 3, "rag": "amber", "queue": "initial-assessment"},
    "single_agency": {"level": 2, "rag": "green", "queue": "single-agency"},
    "no_further_action": {"level": 1, "rag": "blue", "queue": None},
}
#: Referrers: the police force, a GP (a professional), a member of the public.
SOURCES: list[dict[str, Any]] = [
    {},
    {"kind": "referral", "referral_source": "3A", "agency_id": "gp-1"},
    {"kind": "referral", "referral_source": "1A", "agency_id": "public"},
]


@dataclass
class Table:
    """Feedback, notices, unmatched and withheld children as the database holds them (their
    keys)."""

    feedback: dict[str, FeedbackRow] = field(default_factory=dict)
    slots: set[tuple[str, str, int]] = field(default_factory=set)
    notices: set[str] = field(default_factory=set)
    children: set[tuple[str, str]] = field(default_factory=set)
    withheld: set[tuple[str, str]] = field(default_factory=set)

    def insert_feedback(self, row: FeedbackRow) -> bool:
        slot = (row.contact_id, row.kind, row.sequence)
        if row.feedback_id in self.feedback or slot in self.slots:
            return False
        self.feedback[row.feedback_id] = row
        self.slots.add(slot)
        return True

    def insert_notice(self, row: NoticeRow) -> bool:
        if row.notice_id in self.notices:
            return False
        self.notices.add(row.notice_id)
        return True

    def insert_child(self, child: encompass.Unmatched) -> bool:
        if (child.contact_id, child.subject_id) in self.children:
            return False
        self.children.add((child.contact_id, child.subject_id))
        return True

    def insert_withheld(self, child: encompass.Withheld) -> bool:
        if (child.contact_id, child.subject_id) in self.withheld:
            return False
        self.withheld.add((child.contact_id, child.subject_id))
        return True

    def last_reported(self, contact_id: str) -> Reported | None:
        told = [
            r
            for r in self.feedback.values()
            if r.contact_id == contact_id and r.kind in ("outcome", "update")
        ]
        if not told:
            return None
        r = max(told, key=lambda r: r.sequence)
        assert r.outcome is not None
        assert r.hub is not None
        assert r.decided_at is not None
        assert r.routed_at is not None
        return Reported(r.outcome, r.hub, r.sequence, r.decided_at, r.routed_at)


Sent = list[str]
"""Ids of the events one event sends, in order."""


def old_on_routed(routed: Routed, table: Table) -> tuple[str, Sent]:
    """The per-event effect as it was: read, decide, acknowledge, tell."""
    decided = on_routed(routed, table.last_reported(routed.contact_id), TOPOLOGY, NOW)
    if decided.why == "unknown_hub":
        return "refused", []
    sent: Sent = []
    ack = acknowledgement_before(routed, NOW)
    ack_row = FeedbackRow(
        ack.event_id, routed.contact_id, "acknowledgement", ack.recipient, ack.audience, NOW
    )
    if table.insert_feedback(ack_row):
        sent.append(ack.event_id)
    if decided.disclosure is None:
        return decided.why, sent
    d = decided.disclosure
    row = FeedbackRow(
        d.event_id,
        routed.contact_id,
        decided.why,
        d.recipient,
        d.audience,
        NOW,
        decided.sequence,
        routed.outcome,
        routed.hub,
        routed.routed_id,
        routed.decided_at,
        routed.routed_at,
    )
    if not table.insert_feedback(row):
        return "duplicate_feedback", sent
    return decided.why, [*sent, d.event_id]


def old_on_contact(contact: Contact, table: Table) -> tuple[str, Sent]:
    """The per-event effect as it was: acknowledge, then notices, unmatched and withheld
    children."""
    ack = acknowledgement(contact, NOW)
    issued = table.insert_feedback(
        FeedbackRow(
            ack.event_id,
            contact.contact_id,
            "acknowledgement",
            contact.source.agency_id,
            ack.audience,
            NOW,
        )
    )
    sent: Sent = [ack.event_id] if issued else []
    scheme = encompass.school_notices(contact, CALENDAR)
    for notice in scheme.notices:
        event = notice.disclosure.event
        assert isinstance(event, SchoolNotification)
        row = NoticeRow(
            event.notice_id,
            contact.contact_id,
            notice.subject_id,
            event.school_urn,
            event.police_reference,
            event.incident_at,
            event.due_by,
        )
        if table.insert_notice(row):
            sent.append(event.notice_id)
    for child in scheme.unmatched:
        if table.insert_child(child):
            sent.append(f"unmatched:{child.subject_id}")
    for held in scheme.withheld:
        if table.insert_withheld(held):
            sent.append(f"withheld:{held.subject_id}")
    return ("applied" if issued else "already_acknowledged"), sent


def batch_result(plans: list[Plan], table: Table) -> list[tuple[str, Sent]]:
    """Insert the batch's claimed rows at once; then what each event says and sends."""
    issued: set[str] = set()
    for p in plans:
        for issue in p.issues:
            row = issue.feedback or issue.notice
            inserted = (
                table.insert_feedback(row)
                if isinstance(row, FeedbackRow)
                else row is not None and table.insert_notice(row)
            )
            if inserted:
                issued.add(issue.event_id)
    children = {(c.contact_id, c.subject_id) for p in plans for c in p.unmatched}
    new_children = {c for c in children if c not in table.children}
    table.children |= new_children
    withheld = {(c.contact_id, c.subject_id) for p in plans for c in p.withheld}
    new_withheld = {c for c in withheld if c not in table.withheld}
    table.withheld |= new_withheld
    results: list[tuple[str, Sent]] = []
    for p in plans:
        if p.refused:
            results.append(("refused", []))
            continue
        sent = [i.event_id for i in p.issues if i.event_id in issued]
        sent += [
            f"unmatched:{c.subject_id}"
            for c in p.unmatched
            if (c.contact_id, c.subject_id) in new_children
        ]
        sent += [
            f"withheld:{c.subject_id}"
            for c in p.withheld
            if (c.contact_id, c.subject_id) in new_withheld
        ]
        results.append((p.outcome(issued), sent))
    return results


def routing(contact: int, n: int, outcome: str, hub: str, hours: int) -> Routed:
    data = ex.routed(
        routed_id=f"RTD-{contact}-{n}",
        contact_id=f"CON-{contact}",
        contact_reference=f"MASH-{contact}",
        outcome=outcome,
        hub=hub,
        decided_at=(START + timedelta(hours=hours)).isoformat(),
        routed_at=(START + timedelta(hours=hours, seconds=1)).isoformat(),
        **OUTCOMES[outcome],
    )
    data["contact_source"] = {**data["contact_source"], **SOURCES[contact % len(SOURCES)]}
    return Routed.model_validate(data)


routings = st.lists(
    st.builds(
        routing,
        contact=st.integers(0, 3),
        n=st.integers(0, 3),  # repeats: a replayed routing under a new event id
        outcome=st.sampled_from(sorted(OUTCOMES)),
        hub=st.sampled_from(HUBS),
        hours=st.integers(0, 3),  # ties and going back in time: stale routings
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(before=routings, batch=routings)
def test_routings_decided_as_a_batch_equal_one_by_one(
    before: list[Routed], batch: list[Routed]
) -> None:
    old, new = Table(), Table()
    for r in before:  # what earlier batches recorded
        old_on_routed(r, old)
        old_on_routed(r, new)
    expected = [old_on_routed(r, old) for r in batch]
    ledger = Ledger(new.feedback.values())
    plans = [routed_plan(r, ledger, TOPOLOGY, NOW) for r in batch]
    assert batch_result(plans, new) == expected
    assert new.feedback.keys() == old.feedback.keys()
    assert new.slots == old.slots


def test_two_routings_of_one_contact_in_a_batch_are_an_outcome_then_an_update() -> None:
    first = routing(1, 0, "s47", "north-west-central", 0)
    change = routing(1, 1, "initial_assessment", "north-west-central", 1)
    ledger = Ledger()
    plans = [routed_plan(r, ledger, TOPOLOGY, NOW) for r in (first, change)]
    assert [p.why for p in plans] == ["outcome", "update"]
    assert [[i.feedback.kind for i in p.issues if i.feedback] for p in plans] == [
        ["acknowledgement", "outcome"],
        ["update"],
    ], "acknowledged once, before the outcome"
    told = plans[1].decisive
    assert told is not None
    assert told.feedback is not None
    assert told.feedback.sequence == 1


def test_a_refused_routing_claims_nothing() -> None:
    ledger = Ledger()
    refused = routed_plan(routing(1, 0, "s47", "atlantis", 0), ledger, TOPOLOGY, NOW)
    assert refused.refused
    assert refused.issues == ()
    after = routed_plan(routing(1, 1, "s47", "north-west-central", 0), ledger, TOPOLOGY, NOW)
    assert after.why == "outcome"
    assert len(after.issues) == 2, "the acknowledgement is still to be issued"


def police_contact(n: int, children: list[dict[str, Any]]) -> Contact:
    """Contact ``n``; contact 2 is a restricted notification (its notices are withheld)."""
    data = ex.contact(contact_id=f"CON-{n}", contact_reference=f"MASH-{n}", restricted=n == 2)
    data["children"] = children
    return Contact.model_validate(data)


def child(n: int, urn: str | None) -> dict[str, Any]:
    base = ex.contact()["children"][0]
    return {**base, "subject_id": f"SUBJ-{n}", "date_of_birth": "2015-09-01", "school_urn": urn}


contacts = st.lists(
    st.builds(
        police_contact,
        n=st.integers(0, 2),
        children=st.lists(
            st.builds(child, n=st.integers(0, 3), urn=st.sampled_from([None, "999101"])),
            min_size=1,
            max_size=3,
            unique_by=lambda c: c["subject_id"],
        ),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(before=contacts, batch=contacts)
def test_contacts_decided_as_a_batch_equal_one_by_one(
    before: list[Contact], batch: list[Contact]
) -> None:
    old, new = Table(), Table()
    for c in before:
        old_on_contact(c, old)
        old_on_contact(c, new)
    expected = [old_on_contact(c, old) for c in batch]
    ledger = Ledger()  # contacts read nothing first: the inserts say what is new
    plans = [contact_plan(c, ledger, CALENDAR, NOW) for c in batch]
    assert batch_result(plans, new) == expected
    assert (new.feedback.keys(), new.notices, new.children, new.withheld) == (
        old.feedback.keys(),
        old.notices,
        old.children,
        old.withheld,
    )
