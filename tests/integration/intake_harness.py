"""Intake alone, as a real process on the real broker and database, with a way to learn
what became of each message it was sent (contact, duplicate or dead letter)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.common.topics import CONTACTS
from tests.integration.harness import ServiceUnderTest
from tests.support import fetch


@dataclass(frozen=True)
class Fate:
    """What intake did with one message."""

    kind: str  # contact | duplicate_source | duplicate_event_id | dead_letter
    reason: str | None = None
    contact_id: str | None = None


class IntakeUnderTest(ServiceUnderTest):
    """A running intake process and its world."""

    service = "intake"

    async def fate(self, topic: str, partition: int, offset: int, timeout: float = 60) -> Fate:
        """Wait until intake has dealt with the record at these coordinates."""
        handled = await self.handled(topic, partition, offset, timeout)
        if handled.dead_letter is not None:
            return Fate("dead_letter", reason=handled.dead_letter)
        if handled.duplicate:
            return Fate("duplicate_event_id")
        if handled.outcome == "duplicate_source":
            return Fate("duplicate_source")
        rows = await fetch(
            self.world.dsn,
            "SELECT contact_id FROM contacts WHERE source_event_id = $1",
            handled.event_id,
        )
        return Fate("contact", contact_id=rows[0]["contact_id"])

    async def contact(self, contact_id: str) -> dict[str, Any]:
        """The contact event intake emitted (its JSON), read from the outbox."""
        events = await self.outbox_events(CONTACTS, contact_id)
        assert len(events) == 1, f"exactly one contact event for {contact_id}"
        return events[0]
