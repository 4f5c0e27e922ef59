"""Screening: apply the threshold rules to each recorded contact and emit the decision."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from schemas.events import Contact
from schemas.types import ce_type_of
from services.common.kafka import inbound_message, raw_topic
from services.common.pipeline import Received, consume
from services.common.runtime import ServiceRuntime
from services.common.topics import CONTACTS, DECISIONS
from services.screening import store
from services.screening.rules import screen

SERVICE = "screening"
CONTACT_TYPES = {ce_type_of(Contact): Contact}


class Screening:
    """The screening service's effect: one contact -> one automated decision."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime

    async def decide(self, received: Received) -> str:
        """Screen the contact, record the decision and enqueue it."""
        contact = received.payload
        assert isinstance(contact, Contact)
        decision = screen(contact, datetime.now(UTC))
        if not await store.record_decision(received.conn, decision):
            return "duplicate_decision"
        await received.audit(
            "decision",
            decision.decision_id,
            "decided",
            {"contact_id": contact.contact_id, "level": decision.level, "source": "rules"},
        )
        await received.emit(
            DECISIONS,
            key=contact.subject_key,
            event_id=decision.decision_id,
            data=decision,
            time=decision.decided_at,
        )
        received.after_commit(
            lambda: self.runtime.metrics.decisions.labels(
                outcome=decision.outcome, rag=decision.rag, hub=decision.hub
            ).inc()
        )
        self.runtime.log.info(
            "contact_screened",
            contact_id=contact.contact_id,
            decision_id=decision.decision_id,
            outcome=decision.outcome,
        )
        return "applied"


def build(runtime: ServiceRuntime) -> Screening:
    """Register screening's agents on the runtime's Faust app."""
    screening = Screening(runtime)
    app = runtime.app

    @app.agent(raw_topic(app, runtime.topics(CONTACTS)), concurrency=1)
    async def contacts(stream: Any) -> None:
        async for event in stream.events():
            await consume(
                runtime, inbound_message(event), CONTACT_TYPES, screening.decide, stage=SERVICE
            )

    return screening
