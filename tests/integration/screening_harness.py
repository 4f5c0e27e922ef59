"""Screening alone, as a real process on the real broker and database, fed Contact and
practitioner-decision events directly (no intake), with ways to see what it did."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas import examples as ex
from schemas.events import Contact
from schemas.inbound import PractitionerDecision
from services.common.ids import derive_id
from services.common.topics import CONTACTS, DECISIONS, PRACTITIONER_DECISIONS
from tests.integration.harness import ServiceUnderTest
from tests.support import Record, fetch, group_caught_up, read_topic

#: Incident time of the first contact of a series; later ones are days after it.
T0 = datetime(2024, 3, 12, 21, 40, tzinfo=UTC)


def child(subject_id: str, household_key: str | None, **overrides: Any) -> dict[str, Any]:
    """A contact child (8 years old at T0, present and resident, with a school)."""
    base = ex.contact()["children"][0]
    return {
        **base,
        "subject_id": subject_id,
        "child_ref": f"C-{subject_id}",
        "household_key": household_key,
        "date_of_birth": "2016-01-01",
        **overrides,
    }


def police_contact(
    contact_id: str,
    *,
    subject_key: str,
    children: list[dict[str, Any]],
    day: int = 0,
    **overrides: Any,
) -> Contact:
    """A recorded police contact ``day`` days after T0 (examples.contact otherwise)."""
    at = T0 + timedelta(days=day)
    return Contact.model_validate(
        ex.contact(
            contact_id=contact_id,
            contact_reference=f"MASH-{contact_id}",
            subject_key=subject_key,
            incident_at=at.isoformat(),
            received_at=(at + timedelta(hours=1)).isoformat(),
            recorded_at=(at + timedelta(hours=1, seconds=1)).isoformat(),
            source=ex.source_coordinates(
                event_id=f"evt-{contact_id}", reference=f"WM-{contact_id}"
            ),
            children=children,
            **overrides,
        )
    )


class ScreeningUnderTest(ServiceUnderTest):
    """A running screening process in its own world."""

    service = "screening"

    @property
    def changelog_topic(self) -> str:
        """The history table's changelog topic in this world."""
        return f"{self.group}-history-changelog"

    async def send_contact(self, contact: Contact, event_id: str | None = None) -> tuple[int, int]:
        """Publish a contact on mash.contacts.v1, keyed by its subject key."""
        return await self.send(
            CONTACTS, contact, key=contact.subject_key, event_id=event_id or contact.contact_id
        )

    async def send_practitioner(self, event_id: str, **overrides: Any) -> tuple[int, int]:
        """Publish a practitioner decision (examples.practitioner_decision + overrides)."""
        decision = PractitionerDecision.model_validate(ex.practitioner_decision(**overrides))
        return await self.send(
            PRACTITIONER_DECISIONS,
            decision,
            key=decision.contact_id,
            event_id=derive_id("practitioner-test", self.world.prefix, event_id),
        )

    async def decisions(self, contact_id: str) -> list[dict[str, Any]]:
        """The contact's decision rows, oldest first."""
        rows = await fetch(
            self.world.dsn,
            "SELECT decision_id, source, status, outcome, level, rag, rules, rule_set_version,"
            " rule_set_hash, supersedes_decision_id, practitioner_id, practitioner_agency,"
            " subject_key FROM decisions WHERE contact_id = $1 ORDER BY decided_at, decision_id",
            contact_id,
        )
        return [{**dict(r), "rules": json.loads(r["rules"])} for r in rows]

    async def automated_decision(self, contact_id: str, timeout: float = 90) -> dict[str, Any]:
        """Wait for the contact's automated decision row."""

        async def look() -> dict[str, Any] | None:
            rows = [d for d in await self.decisions(contact_id) if d["source"] == "rules"]
            return rows[0] if rows else None

        return await self.wait(look, timeout, f"a decision on {contact_id}")

    async def fate(self, topic: str, partition: int, offset: int, timeout: float = 60) -> str:
        """What screening did with one record: its inbox outcome, or ``dead_letter:<reason>``."""
        handled = await self.handled(topic, partition, offset, timeout)
        if handled.dead_letter is not None:
            return f"dead_letter:{handled.dead_letter}"
        return "duplicate_event_id" if handled.duplicate else str(handled.outcome)

    async def published_decisions(self) -> list[dict[str, Any]]:
        """Every Decision on the world's decisions topic (JSON)."""
        records = await self.topic(DECISIONS)
        return [r.json() for r in sorted(records, key=lambda r: (r.partition, r.offset))]

    async def published_for(self, contact_id: str) -> list[dict[str, Any]]:
        """Decisions on the topic about one contact."""
        return [d for d in await self.published_decisions() if d["contact_id"] == contact_id]

    async def wait_caught_up(self, timeout: float = 60) -> None:
        """Wait until screening has committed every contact it was sent."""

        async def done() -> bool:
            return await group_caught_up(
                self.world.stack.bootstrap, self.group, [self.world.topics(CONTACTS)]
            )

        await self.wait(done, timeout, "screening to commit its offsets")

    async def changelog(self) -> list[Record]:
        """Every record of the history table's changelog."""
        return await read_topic(self.world.stack.bootstrap, self.changelog_topic)
