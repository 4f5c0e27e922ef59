"""Deterministic identifiers.

Every output id is a UUIDv5 of what it is derived from, so a replay or a crash-restart
produces the same ids and every write keyed on them stays idempotent.
"""

from __future__ import annotations

import uuid

#: Fixed namespace of mash-router ids (a random UUID chosen once; never change it).
MASH_NAMESPACE = uuid.UUID("5f0c2a7e-93a1-4c6b-9d0e-3b8f7a2c1d44")


def derive_id(kind: str, *parts: str | int) -> str:
    """A stable id for ``kind`` from ``parts`` (e.g. ``derive_id("decision", contact_id)``)."""
    name = "|".join([kind, *(str(p) for p in parts)])
    return str(uuid.uuid5(MASH_NAMESPACE, name))


def contact_reference(contact_id: str) -> str:
    """The short reference a referrer quotes back to the hub, e.g. ``MASH-3F2A9C01D2``."""
    return "MASH-" + contact_id.replace("-", "")[:10].upper()
