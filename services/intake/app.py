"""Intake: validate each inbound police notification and referral, record it as a contact
in the system of record, and emit it on ``mash.contacts.v1``. Thin I/O around
:mod:`services.intake.contacts` (pure).

Intake applies a batch at a time (its batch effect, :meth:`Intake.record_batch`): it loads
what the batch's events need in a few set-based queries, decides every event in offset
order in memory — each seeing the batch's earlier contacts as if they had been written
(:class:`~services.intake.batch.KnownContacts`) — then writes all the rows in a fixed
number of statements. Nothing is written before every event is decided (an event whose
decision raises fails the batch, which the pipeline then retries one event per
transaction), so a batch leaves the same rows, audit entries and output events as its
events applied one by one.

Intake also keeps the council's cases (:mod:`services.intake.council_cases`): each case
status from the council's case management system becomes its case's status unless a later
one is recorded (:meth:`Intake.record_case_statuses`); contacts find the open cases there.
"""

from __future__ import annotations

from collections.abc import Sequence

from schemas.inbound import CaseStatus, PoliceNotification, Referral
from schemas.types import ce_type_of
from services.common.clock import Clock
from services.common.pipeline import consume_topic
from services.common.received import Received, Rejected
from services.common.runtime import ServiceRuntime
from services.common.topics import (
    CONTACTS,
    INBOUND_CASE_STATUS,
    INBOUND_POLICE,
    INBOUND_REFERRALS,
)
from services.common.topology import Topology, load_topology
from services.intake import store
from services.intake.batch import NewContact, decide_batch
from services.intake.contacts import Arrival, arrival_of
from services.intake.council_cases import (
    CouncilCase,
    Verdict,
    cases_to_record,
    council_case_of,
    decide_case_statuses,
)

SERVICE = "intake"
Inbound = PoliceNotification | Referral
"""What becomes a contact."""
POLICE_TYPES: dict[str, type[Inbound]] = {ce_type_of(PoliceNotification): PoliceNotification}
REFERRAL_TYPES: dict[str, type[Inbound]] = {ce_type_of(Referral): Referral}
CASE_STATUS_TYPES = {ce_type_of(CaseStatus): CaseStatus}


def _arrival(received: Received[Inbound]) -> Arrival:
    """What intake reads off one valid inbound event."""
    return arrival_of(received.payload, received.event, received.message)


class Intake:
    """The intake service's effect: each new inbound payload -> one recorded contact."""

    def __init__(
        self,
        runtime: ServiceRuntime,
        topology: Topology,
        clock: Clock | None = None,
    ) -> None:
        self.runtime = runtime
        self.topology = topology
        self.clock: Clock = clock or runtime.clock
        """A contact's recorded time (the runtime's clock unless a test gives one)."""

    async def record_batch(self, batch: Sequence[Received[Inbound]]) -> None:
        """Record the batch's contacts and enqueue them, in offset order; a repeat by source
        reference (of a recorded contact or an earlier one of the batch) has no effect."""
        if not batch:
            return
        conn = batch[0].conn
        arrivals = [_arrival(r) for r in batch]
        known = await store.known_contacts(conn, arrivals)
        decided = decide_batch(arrivals, known, self.topology, self.clock)
        await store.record_contacts(conn, [new for new in decided if new is not None])
        for received, new in zip(batch, decided, strict=True):
            if new is None:
                await self._duplicate(received)
            else:
                await self._recorded(received, new)

    async def record_case_statuses(self, batch: Sequence[Received[CaseStatus]]) -> None:
        """Record each case status of the batch, in offset order, as its council case's
        status unless a later one is recorded (an older one is superseded, the recorded one
        again is a duplicate by source); a case naming a hub this deployment does not hold
        is refused (``unknown_reference``)."""
        if not batch:
            return
        conn = batch[0].conn
        statuses: list[tuple[Received[CaseStatus], CouncilCase]] = []
        for received in batch:
            payload = received.payload
            if payload.hub is not None and payload.hub not in self.topology.hub_ids:
                received.refused = Rejected.unknown_reference(
                    "hub", f"no hub {payload.hub!r} in topology {self.topology.name!r}"
                )
                continue
            statuses.append((received, council_case_of(payload, received.event, self.clock())))
        cases = [case for _, case in statuses]
        recorded = await store.recorded_case_statuses(conn, [c.council_case_id for c in cases])
        verdicts = decide_case_statuses(cases, recorded)
        await store.record_case_statuses(conn, cases_to_record(cases, verdicts))
        for (received, case), verdict in zip(statuses, verdicts, strict=True):
            if verdict == "repeat":
                await self._duplicate(received)
            else:
                await self._case_status(received, case, verdict)

    async def _case_status(
        self, received: Received[CaseStatus], case: CouncilCase, verdict: Verdict
    ) -> None:
        """Audit a case status recorded (action: the status) or superseded and, once
        committed, log it (ids and codes only)."""
        recorded = verdict == "recorded"
        await received.audit(
            "council_case",
            case.council_case_id,
            case.status if recorded else "superseded",
            {
                "event_id": received.event.id,
                "case_system": case.case_system,
                "case_type": case.case_type,
                "status": case.status,
                "hub": case.hub,
            },
        )
        message = received.message

        def committed() -> None:
            self.runtime.log.info(
                "council_case_recorded" if recorded else "council_case_superseded",
                council_case_id=case.council_case_id,
                event_id=received.event.id,
                case_type=case.case_type,
                status=case.status,
                hub=case.hub,
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
            )

        received.after_commit(committed)
        received.outcome = "applied" if recorded else "superseded"

    async def _duplicate(self, received: Received[Inbound] | Received[CaseStatus]) -> None:
        """Audit and count a repeat by source reference."""
        topic = received.message.topic
        received.after_commit(
            lambda: self.runtime.metrics.duplicates_skipped.labels(topic=topic).inc()
        )
        await received.audit("inbound_event", received.event.id, "duplicate_source_reference", {})
        received.outcome = "duplicate_source"

    async def _recorded(self, received: Received[Inbound], new: NewContact) -> None:
        """Audit a recorded contact, enqueue it on ``mash.contacts.v1`` and, once committed,
        observe its report age and log it (ids only)."""
        contact = new.contact
        await received.audit(
            "contact",
            contact.contact_id,
            "recorded",
            {
                "hub": contact.hub,
                "event_id": received.event.id,
                "child_count": len(new.children),
                "out_of_area": contact.out_of_area,
                "address_unresolved": contact.address_unresolved,
                "re_referral": contact.re_referral,
                "open_case": contact.open_case,
                "linked_contact_ids": contact.linked_contact_ids,
            },
        )
        await received.emit(
            CONTACTS,
            key=contact.subject_key,
            event_id=contact.contact_id,
            data=contact,
            time=contact.recorded_at,
        )
        age = max(0.0, (contact.recorded_at - contact.received_at).total_seconds())
        message = received.message

        def committed() -> None:
            self.runtime.metrics.report_age_seconds.observe(age)
            self.runtime.log.info(
                "contact_recorded",
                contact_id=contact.contact_id,
                event_id=received.event.id,
                hub=contact.hub,
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
            )

        received.after_commit(committed)
        received.outcome = "applied"


def build(runtime: ServiceRuntime) -> Intake:
    """Register intake's agents on the runtime's Faust app."""
    intake = Intake(runtime, load_topology(runtime.settings.topology))

    consume_topic(runtime, INBOUND_POLICE, POLICE_TYPES, intake.record_batch)
    consume_topic(runtime, INBOUND_REFERRALS, REFERRAL_TYPES, intake.record_batch)
    consume_topic(runtime, INBOUND_CASE_STATUS, CASE_STATUS_TYPES, intake.record_case_statuses)

    return intake
