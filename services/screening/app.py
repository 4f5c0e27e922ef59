"""Screening: apply the threshold rules to each recorded contact and emit the decision;
apply practitioners' confirmations and overrides. Thin I/O around
:mod:`services.screening.engine` (the threshold rules applied),
:mod:`services.screening.history` (what earlier contacts count for) and
:mod:`services.screening.practitioner` (overrides, the s47 confirmation gate), all pure.

Per-household history lives in a Faust table (``history``) keyed by the contact's subject
key — the key of ``mash.contacts.v1`` — so each household's history sits on the partition
its contacts arrive on. The table is backed by a compacted changelog topic that this
service creates (the app may not declare topics) with the contacts topic's partition count;
on restart Faust rebuilds the table from it before any contact is screened.

Order for each batch, so that a crash at any instant loses no history and counts nothing
twice: (1) remember its contacts in the table, in order (idempotent by contact id: a replay
changes nothing), taking each one's facts as it is remembered — what one-by-one screening
would see; (2) in one PostgreSQL transaction, screen each new contact with those facts,
record the decisions and enqueue them. Faust flushes the changelog writes before it commits
the batch's offsets, so a contact whose offset is committed is in the changelog.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from schemas.events import Contact, Decision
from schemas.inbound import PractitionerDecision
from schemas.types import ce_type_of
from services.common.kafka import (
    InboundMessage,
)
from services.common.pipeline import consume_topic
from services.common.received import Received, Rejected, one_by_one
from services.common.runtime import ServiceRuntime
from services.common.settings import Settings
from services.common.topics import (
    CONTACTS,
    DECISIONS,
    PRACTITIONER_DECISIONS,
    TopicSpec,
    topic_configs,
)
from services.screening import store
from services.screening.engine import evaluate
from services.screening.facts import ScreeningHistory
from services.screening.history import HouseholdHistory
from services.screening.practitioner import (
    InvalidTransition,
    apply_practitioner_decision,
    awaits_confirmation,
    held_decision,
    held_event_id,
)
from services.screening.ruleset import RuleSet, load_rule_set

SERVICE = "screening"
HISTORY_TABLE = "history"
#: Parsed household histories kept in memory (bounded: the table can hold a city's).
PARSED_HISTORIES = 4096
CONTACT_TYPES = {ce_type_of(Contact): Contact}
PRACTITIONER_TYPES = {ce_type_of(PractitionerDecision): PractitionerDecision}


def history_changelog_topic(settings: Settings) -> TopicSpec:
    """The history table's changelog topic, named as Faust names it:
    ``<app id>-<table>-changelog`` (app id ``mash-screening<group suffix>``); compacted,
    since only the latest history per household matters."""
    name = f"mash-{SERVICE}{settings.group_suffix}-{HISTORY_TABLE}-changelog"
    return TopicSpec(name, settings.partitions, topic_configs(name))


class Screening:
    """The screening service's effects: contact -> automated decision; practitioner
    decision -> confirmation, release of a held s47 decision, or override."""

    def __init__(
        self, runtime: ServiceRuntime, rule_set: RuleSet, history: Any, s47_gate: bool
    ) -> None:
        self.runtime = runtime
        self.rule_set = rule_set
        self.history = history
        """The Faust table: subject key -> HouseholdHistory JSON."""
        self.s47_gate = s47_gate
        self._parsed: OrderedDict[str, tuple[bytes, HouseholdHistory]] = OrderedDict()
        """Recently used histories, parsed (the table holds JSON bytes)."""
        self._facts: dict[str, ScreeningHistory] = {}
        """Contact id -> its facts, taken once, as :meth:`remember_batch` remembered the
        contact; :meth:`decide_batch` screens with them (the pipeline decoded the contact
        once for both)."""

    def household(self, subject_key: str) -> HouseholdHistory:
        """The history recorded for a subject key.

        A value this code cannot read (only a bug or an incompatible format could write
        one) is logged and treated as empty: screening the contact with less history beats
        crashing the agent, which Faust would answer by skipping the message.
        """
        raw = self.history.get(subject_key)
        cached = self._parsed.get(subject_key)
        if cached is not None and cached[0] == raw:
            self._parsed.move_to_end(subject_key)
            return cached[1]
        try:
            history = HouseholdHistory.from_json(raw)
        except ValueError:
            self.runtime.log.error("household_history_unreadable", subject_key=subject_key)
            return HouseholdHistory()
        if raw is not None:
            self._keep_parsed(subject_key, raw, history)
        return history

    def _keep_parsed(self, subject_key: str, raw: bytes, history: HouseholdHistory) -> None:
        self._parsed[subject_key] = (raw, history)
        self._parsed.move_to_end(subject_key)
        while len(self._parsed) > PARSED_HISTORIES:
            self._parsed.popitem(last=False)

    def remember(self, contact: Contact, partition: int) -> ScreeningHistory:
        """Record the contact in its household's history (a no-op when already there) and
        return what the contacts before it count for.

        The change goes to changelog partition ``partition``, the contact's own (what
        Faust does for a table write inside a stream; a batch is handled outside one).
        """
        before = self.household(contact.subject_key)
        after = before.record(contact)
        if after is not before:
            value = after.to_json()
            self.history.data[contact.subject_key] = value
            self.history.send_changelog(partition, contact.subject_key, value)
            self._keep_parsed(contact.subject_key, value, after)
        return after.facts_for(contact, self.rule_set.windows)

    def remember_batch(self, batch: Sequence[tuple[InboundMessage, Contact]]) -> None:
        """Remember every valid contact of a batch, in order, before its transaction (see
        the module doc), keeping each one's facts as one-by-one screening would see them."""
        self._facts = {}
        for message, contact in batch:
            facts = self.remember(contact, message.partition)
            self._facts.setdefault(contact.contact_id, facts)

    async def decide_batch(self, batch: Sequence[Received[Contact]]) -> None:
        """Screen each contact of a batch in order, record the decisions in one statement
        and enqueue them (or hold an s47, announced as held); a contact decided before is
        decided once."""
        contacts = [received.payload for received in batch]
        decided = await store.contacts_with_automated_decision(
            batch[0].conn, [c.contact_id for c in contacts]
        )
        rows: list[store.DecisionRow] = []
        for received, contact in zip(batch, contacts, strict=True):
            if contact.contact_id in decided:
                # Same contact under a new event id (or after a rule-set change): decided once.
                received.outcome = "duplicate_decision"
                continue
            decided.add(contact.contact_id)
            facts = self._facts.get(contact.contact_id)
            if facts is None:  # not remembered with this batch: cannot happen, but be safe
                facts = self.remember(contact, received.message.partition)
            with received.logged():
                rows.append(await self._decide(received, contact, facts))
        await store.record_decisions(batch[0].conn, rows)

    async def _decide(
        self, received: Received[Contact], contact: Contact, facts: ScreeningHistory
    ) -> store.DecisionRow:
        """Screen one contact: the decision to record; audit and output enqueued."""
        decision = evaluate(contact, facts, self.rule_set, self.runtime.clock())
        held = awaits_confirmation(decision, self.s47_gate)
        await received.audit(
            "decision",
            decision.decision_id,
            "awaiting_confirmation" if held else "decided",
            {
                "contact_id": contact.contact_id,
                "level": decision.level,
                "outcome": decision.outcome,
                "source": decision.source,
                "rules": [hit.id for hit in decision.rules],
                "rule_set_version": decision.rule_set_version,
                "rule_set_hash": decision.rule_set_hash,
                "da_notifications_before_365d": facts.da_incidents_365d,
                "low_graded_police_before_90d": dict(facts.low_graded_police_90d),
                "missing_episodes_before_90d": dict(facts.missing_episodes_90d),
            },
        )
        row = store.DecisionRow(
            decision,
            subject_key=contact.subject_key,
            status="awaiting_confirmation" if held else "effective",
        )
        if held:
            # Announced at once, marked awaiting practitioners: routing puts it on the hub's
            # s47 queue with the screening decision clock (the hold is never invisible).
            await received.emit(
                DECISIONS,
                key=contact.subject_key,
                event_id=held_event_id(decision.decision_id),
                data=held_decision(decision),
                time=decision.decided_at,
            )
            received.after_commit(
                lambda: self.runtime.metrics.decisions_held.labels(hub=decision.hub).inc()
            )
            self.runtime.log.info(
                "decision_held_for_confirmation",
                contact_id=contact.contact_id,
                decision_id=decision.decision_id,
            )
            received.outcome = "awaiting_confirmation"
            return row
        await self._publish(received, decision, contact.subject_key)
        self.runtime.log.info(
            "contact_screened",
            contact_id=contact.contact_id,
            decision_id=decision.decision_id,
            outcome=decision.outcome,
        )
        received.outcome = "applied"
        return row

    async def _publish(
        self,
        received: Received[Contact] | Received[PractitionerDecision],
        decision: Decision,
        subject_key: str,
    ) -> None:
        await received.emit(
            DECISIONS,
            key=subject_key,
            event_id=decision.decision_id,
            data=decision,
            time=decision.decided_at,
        )
        received.after_commit(
            lambda: self.runtime.metrics.decisions.labels(
                outcome=decision.outcome, rag=decision.rag, hub=decision.hub
            ).inc()
        )

    async def practitioner(self, received: Received[PractitionerDecision]) -> str:
        """Apply a practitioner's confirm or override; refuse unknown contacts and invalid
        overrides (dead-lettered by the pipeline)."""
        given = received.payload
        conn = received.conn
        state = await store.load_contact_decisions(conn, given.contact_id)
        if state is None:
            raise Rejected.unknown_reference("contact_id", "no screened contact has this id")
        try:
            result = apply_practitioner_decision(
                state, given, received.event.id, self.rule_set.levels
            )
        except InvalidTransition as exc:
            raise Rejected.invalid_transition("outcome", str(exc)) from exc
        await store.record_practitioner_decision(
            conn, received.event.id, given, result=result.kind, decision_id=result.decision_id
        )
        if result.kind == "released":
            await store.set_status(conn, state.automated.decision_id, "effective")
        elif result.kind == "overridden":
            assert result.emit is not None
            assert result.superseded_decision_id is not None
            await store.set_status(conn, result.superseded_decision_id, "superseded")
            await store.record_decision(
                conn,
                result.emit,
                subject_key=state.subject_key,
                status="effective",
                practitioner=given,
            )
        if result.emit is not None:
            await self._publish(received, result.emit, state.subject_key)
        await received.audit(
            "decision",
            result.decision_id,
            f"practitioner_{result.kind}",
            {
                "contact_id": given.contact_id,
                "event_id": received.event.id,
                "agency": given.agency,
                "kind": given.kind,
                "outcome": result.emit.outcome if result.emit else state.current.outcome,
                "supersedes_decision_id": result.superseded_decision_id,
                "decided_at": given.decided_at.isoformat(),
            },
            actor=given.practitioner_id,
        )
        received.after_commit(
            lambda: self.runtime.metrics.practitioner_decisions.labels(
                agency=given.agency, kind=given.kind, result=result.kind
            ).inc()
        )
        self.runtime.log.info(
            "practitioner_decision_applied",
            contact_id=given.contact_id,
            decision_id=result.decision_id,
            kind=result.kind,
            agency_type=given.agency,
        )
        return result.kind


def build(runtime: ServiceRuntime) -> Screening:
    """Register screening's table and agents on the runtime's Faust app.

    Raises RuleSetError (one line) when the configured rule set is missing or invalid.
    """
    settings = runtime.settings
    rule_set = load_rule_set(settings.screening_rule_set)
    app = runtime.app
    table = app.Table(
        HISTORY_TABLE,
        default=None,
        key_type=str,
        value_type=bytes,
        partitions=settings.partitions,
        help="Screening history per subject key (household): HouseholdHistory JSON.",
    )
    expected = history_changelog_topic(settings).name
    actual = table.changelog_topic.get_topic_name()
    if actual != expected:  # Faust changed its naming: fail loudly rather than lose history
        raise RuntimeError(f"history changelog is {actual}, not {expected}")
    screening = Screening(runtime, rule_set, table, settings.screening_s47_confirmation)
    consume_topic(
        runtime,
        CONTACTS,
        CONTACT_TYPES,
        screening.decide_batch,
        before=screening.remember_batch,
    )
    consume_topic(
        runtime, PRACTITIONER_DECISIONS, PRACTITIONER_TYPES, one_by_one(screening.practitioner)
    )

    runtime.log.info(
        "rule_set_loaded",
        rule_set_version=rule_set.version,
        status="s47_gate_on" if settings.screening_s47_confirmation else "s47_gate_off",
    )
    return screening
