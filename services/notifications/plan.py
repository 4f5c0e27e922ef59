"""Deciding a batch of contacts or routings, event by event in offset order — pure, no I/O.

Notifications applies a batch of events in one transaction (``services/common/pipeline.py``).
Instead of reading and writing once per event, its effects (``app.py``) load what the
batch needs in a few set-based queries — the feedback already recorded for the batch's
contacts, read under their locks — decide every event here, in order, against a
:class:`Ledger`, and then write the rows of the whole batch with one statement per table.
A :class:`Plan` says what one event issues *if the row recording it turns out to be new*,
and which inbox outcome word follows.

Why a batch gives the same result as its events one by one:

* The decisions are made by the same pure functions (:func:`feedback.acknowledgement`,
  :func:`feedback.on_routed`, :func:`encompass.school_notices`), fed the same state.
  One by one, a routing read what the referrer was last told from the database, which
  held the rows recorded before the batch plus those the batch's earlier events had
  written. The ledger holds exactly those: what was loaded, plus each row an earlier event
  claimed. So two routings of one contact in a batch see each other (the second is an
  ``update``, ``unchanged`` or ``stale``, numbered after the first), and a later event
  does not acknowledge a contact again.
* A row one by one would have failed to insert (ON CONFLICT DO NOTHING on the same
  feedback id or contact+kind+sequence, the same child's notice, the same unmatched or
  withheld child) is one the ledger already holds, so it is not claimed again: the first event of
  the batch that issues a row owns it, as it would have.
* Whether a claimed row is new is still decided by the database (INSERT ... ON CONFLICT
  DO NOTHING RETURNING), as it was one by one: a row another transaction committed in
  the meantime (the contacts agent acknowledging while the routings agent does) is not
  issued twice. Outcome and update rows cannot be raced: the routings effect holds the
  advisory lock of each of the batch's contacts before it reads their feedback, as one
  by one held it for each event, so what it read stays true until it commits.
* An event is refused (a hub outside the topology) before it claims anything, so
  dead-lettering it leaves neither rows nor a trace in the ledger.
* Outbound events are emitted event by event in offset order and, within an event, in
  the old order (acknowledgement first, then the outcome or the schools' notices), so
  each key's order is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass
from datetime import datetime

from schemas.events import Contact, Routed, SchoolNotification, SourceCoordinates
from services.common.calendar import WorkingCalendar
from services.common.topics import SCHOOL_NOTIFICATIONS, feedback_topic_of_source
from services.common.topology import Topology
from services.notifications import encompass, feedback
from services.notifications.encompass import SchoolNotice, Unmatched, Withheld
from services.notifications.feedback import Reported
from services.notifications.firewall import Disclosure
from services.notifications.store import FeedbackRow, NoticeRow

#: Feedback kinds that tell the referrer an outcome (numbered by ``sequence``).
REPORTING_KINDS = frozenset({"outcome", "update"})


def reported_by(row: FeedbackRow) -> Reported | None:
    """What ``row`` told the referrer, if it is an outcome or an update."""
    if row.kind not in REPORTING_KINDS:
        return None
    if row.outcome is None or row.hub is None or row.decided_at is None or row.routed_at is None:
        raise ValueError(f"feedback {row.feedback_id} reports no outcome")
    return Reported(row.outcome, row.hub, row.sequence, row.decided_at, row.routed_at)


class Ledger:
    """What one batch knows is recorded: the feedback loaded before the batch, plus the
    feedback, notices, unmatched and withheld children its earlier events claimed."""

    def __init__(self, recorded: Iterable[FeedbackRow] = ()) -> None:
        self._feedback: set[str] = set()
        self._slots: set[tuple[str, str, int]] = set()
        self._reported: dict[str, Reported] = {}
        self._notices: set[str] = set()
        self._children: set[tuple[str, str]] = set()
        self._withheld: set[tuple[str, str]] = set()
        for row in recorded:
            self._hold(row)

    def reported(self, contact_id: str) -> Reported | None:
        """What the referrer was last told about the contact (outcome or latest update)."""
        return self._reported.get(contact_id)

    def claim_feedback(self, row: FeedbackRow) -> bool:
        """Hold ``row`` and say True, unless its id or its contact's (kind, sequence) is
        held already (the insert would do nothing)."""
        if row.feedback_id in self._feedback or _slot(row) in self._slots:
            return False
        self._hold(row)
        return True

    def claim_notice(self, row: NoticeRow) -> bool:
        """Hold the notice and say True, unless it is held already (its id is derived
        from the contact and the child, the table's other key)."""
        if row.notice_id in self._notices:
            return False
        self._notices.add(row.notice_id)
        return True

    def claim_unmatched(self, child: Unmatched) -> bool:
        """Hold the unmatched child and say True, unless it is held already."""
        key = (child.contact_id, child.subject_id)
        if key in self._children:
            return False
        self._children.add(key)
        return True

    def claim_withheld(self, child: Withheld) -> bool:
        """Hold the withheld child and say True, unless it is held already."""
        key = (child.contact_id, child.subject_id)
        if key in self._withheld:
            return False
        self._withheld.add(key)
        return True

    def _hold(self, row: FeedbackRow) -> None:
        self._feedback.add(row.feedback_id)
        self._slots.add(_slot(row))
        told = reported_by(row)
        last = self._reported.get(row.contact_id)
        if told is not None and (last is None or told.sequence > last.sequence):
            self._reported[row.contact_id] = told


def _slot(row: FeedbackRow) -> tuple[str, str, int]:
    return (row.contact_id, row.kind, row.sequence)


@dataclass(frozen=True)
class Issue:
    """One outbound event, sent if the row recording it is new: a feedback event (with
    its ``feedback`` row) or an Operation Encompass notice (with its ``notice`` row)."""

    topic: str
    """The contract topic it goes to."""
    contact_id: str
    disclosure: Disclosure
    at: datetime
    feedback: FeedbackRow | None = None
    notice: NoticeRow | None = None

    @property
    def event_id(self) -> str:
        """The outbound event's id (feedback_id or notice_id)."""
        return self.disclosure.event_id


@dataclass(frozen=True)
class Plan:
    """What one event does once the batch's rows are written, and its inbox outcome word."""

    why: str
    """The outcome word (``unknown_hub``: the event is refused)."""
    issues: tuple[Issue, ...] = ()
    """The rows this event claimed, in the order their events go out."""
    unmatched: tuple[Unmatched, ...] = ()
    """The children left for the police desk this event claimed."""
    withheld: tuple[Withheld, ...] = ()
    """The children whose notice this event claimed as withheld (a restricted notification)."""
    decisive: Issue | None = None
    """The claimed issue the outcome word depends on (see :attr:`unissued`)."""
    unissued: str | None = None
    """The word instead of :attr:`why` when :attr:`decisive` was not issued (not claimed,
    or not new); None when the word depends on no row."""

    @property
    def refused(self) -> bool:
        """Whether the event names a hub outside the topology (it is dead-lettered)."""
        return self.why == "unknown_hub"

    def outcome(self, issued: Set[str]) -> str:
        """The inbox outcome word, given the ids of the events whose rows were new."""
        if self.unissued is None:
            return self.why
        if self.decisive is not None and self.decisive.event_id in issued:
            return self.why
        return self.unissued


def contact_plan(
    contact: Contact, ledger: Ledger, calendar: WorkingCalendar, now: datetime
) -> Plan:
    """A recorded contact: acknowledge it; for police domestic abuse, tell the schools and
    leave the children without one for the police desk (a restricted notification: record
    them all as withheld instead)."""
    ack = feedback.acknowledgement(contact, now)
    acknowledged = _feedback_issue(
        ledger, _acknowledgement_row(contact.contact_id, ack, now), ack, contact.source
    )
    scheme = encompass.school_notices(contact, calendar)
    notices = [_notice_issue(ledger, contact.contact_id, n, now) for n in scheme.notices]
    return Plan(
        "applied",
        issues=_claimed(acknowledged, *notices),
        unmatched=tuple(c for c in scheme.unmatched if ledger.claim_unmatched(c)),
        withheld=tuple(c for c in scheme.withheld if ledger.claim_withheld(c)),
        decisive=acknowledged,
        unissued="already_acknowledged",
    )


def routed_plan(routed: Routed, ledger: Ledger, topology: Topology, now: datetime) -> Plan:
    """A routing: report the outcome, or an update when what the referrer knows changed;
    first acknowledge the contact if that has not been done (same agency key, so the
    acknowledgement goes out first)."""
    decided = feedback.on_routed(routed, ledger.reported(routed.contact_id), topology, now)
    if decided.why == "unknown_hub":
        return Plan(decided.why)  # refused before anything is claimed
    ack = feedback.acknowledgement_before(routed, now)
    acknowledged = _feedback_issue(
        ledger, _acknowledgement_row(routed.contact_id, ack, now), ack, routed.contact_source
    )
    if decided.disclosure is None:
        return Plan(decided.why, _claimed(acknowledged))
    d = decided.disclosure
    row = FeedbackRow(
        feedback_id=d.event_id,
        contact_id=routed.contact_id,
        kind=decided.why,
        agency_id=d.recipient,
        audience=d.audience,
        issued_at=now,
        sequence=decided.sequence,
        outcome=routed.outcome,
        hub=routed.hub,
        routed_id=routed.routed_id,
        decided_at=routed.decided_at,
        routed_at=routed.routed_at,
    )
    told = _feedback_issue(ledger, row, d, routed.contact_source)
    return Plan(
        decided.why,
        _claimed(acknowledged, told),
        decisive=told,
        unissued="duplicate_feedback",
    )


def _acknowledgement_row(contact_id: str, ack: Disclosure, now: datetime) -> FeedbackRow:
    return FeedbackRow(
        feedback_id=ack.event_id,
        contact_id=contact_id,
        kind="acknowledgement",
        agency_id=ack.recipient,
        audience=ack.audience,
        issued_at=now,
    )


def _feedback_issue(
    ledger: Ledger, row: FeedbackRow, d: Disclosure, source: SourceCoordinates
) -> Issue | None:
    """The feedback event, on the referrer's agency's feedback topic, if this event is the
    first to claim its row."""
    if not ledger.claim_feedback(row):
        return None
    topic = feedback_topic_of_source(source.referral_source)
    return Issue(topic, row.contact_id, d, row.issued_at, feedback=row)


def _notice_issue(
    ledger: Ledger, contact_id: str, notice: SchoolNotice, now: datetime
) -> Issue | None:
    """The school's notice about one child, if this event is the first to claim it."""
    event = notice.disclosure.event
    assert isinstance(event, SchoolNotification)
    row = NoticeRow(
        notice_id=event.notice_id,
        contact_id=contact_id,
        subject_id=notice.subject_id,
        school_urn=event.school_urn,
        police_reference=event.police_reference,
        incident_at=event.incident_at,
        due_by=event.due_by,
    )
    if not ledger.claim_notice(row):
        return None
    return Issue(SCHOOL_NOTIFICATIONS, contact_id, notice.disclosure, now, notice=row)


def _claimed(*issues: Issue | None) -> tuple[Issue, ...]:
    return tuple(i for i in issues if i is not None)
