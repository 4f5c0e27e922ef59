"""Notifications alone, as a real process on the real broker and database, fed Contact and
Routed events (built from ``schemas.examples``) straight onto its world's topics."""

from __future__ import annotations

from typing import Any

from schemas import examples as ex
from schemas.events import Contact, Routed
from services.common.topics import CONTACTS, ROUTED
from tests.integration.harness import ServiceUnderTest


def contact(n: str, **fields: Any) -> Contact:
    """A recorded contact (the police example unless ``fields`` say otherwise), own ids."""
    data = ex.contact(
        contact_id=f"CON-{n}",
        contact_reference=f"MASH-{n}",
        subject_key=f"SUBJ-{n}",
        **fields,
    )
    source = {**data["source"], "event_id": f"evt-{n}"}
    if "source" not in fields:
        source["reference"] = f"WM-{n}"
    data["source"] = source
    data["children"] = [
        {**c, "subject_id": f"SUBJ-{n}-{i}"} for i, c in enumerate(data["children"])
    ]
    return Contact.model_validate(data)


def referral_source(n: str, code: str, agency_id: str) -> dict[str, Any]:
    """Source coordinates of a referral from ``agency_id`` with census source ``code``."""
    return ex.source_coordinates(
        kind="referral",
        system="urn:council:portal:test",
        event_id=f"evt-{n}",
        reference=f"REF-{n}",
        agency_id=agency_id,
        referral_source=code,
        topic="mash.inbound.referrals.v1",
    )


def routed_for(c: Contact, n: str, **fields: Any) -> Routed:
    """A routing of contact ``c`` (the s47 example unless ``fields`` say otherwise)."""
    data = ex.routed(
        routed_id=f"RTD-{c.contact_id}-{n}",
        contact_id=c.contact_id,
        contact_reference=c.contact_reference,
        decision_id=f"DEC-{c.contact_id}-{n}",
        contact_source=c.source.model_dump(mode="json"),
        **fields,
    )
    return Routed.model_validate(data)


class NotificationsUnderTest(ServiceUnderTest):
    """A running notifications process and its world."""

    service = "notifications"

    async def feed(self, payload: Contact | Routed, *, event_id: str | None = None) -> int:
        """Publish a Contact or Routed as the upstream service would; return its offset."""
        if isinstance(payload, Contact):
            topic, key, default_id = CONTACTS, payload.subject_key, payload.contact_id
        else:
            topic, key, default_id = ROUTED, payload.contact_id, payload.routed_id
        _, offset = await self.send(topic, payload, key=key, event_id=event_id or default_id)
        return offset
