"""Every topic the product uses: names and partition counts in one place.

Names follow CONTRACT.md. A prefix (``MASH_TOPIC_PREFIX``) isolates test runs without
changing any other code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

INBOUND_POLICE = "mash.inbound.police-notifications.v1"
INBOUND_REFERRALS = "mash.inbound.referrals.v1"
INBOUND_CASE_STATUS = "mash.inbound.case-status.v1"
PRACTITIONER_DECISIONS = "mash.practitioner-decisions.v1"
QUEUE_UPDATES = "mash.queue-updates.v1"
CONTACTS = "mash.contacts.v1"
DECISIONS = "mash.decisions.v1"
ROUTED = "mash.routed.v1"
FEEDBACK = "mash.feedback.v1"
SCHOOL_NOTIFICATIONS = "mash.notifications.schools.v1"
SLA_BREACHES = "mash.sla.breaches.v1"
DEAD_LETTER = "mash.deadletter.v1"

#: Topics that carry one child's (or household's) events by key: they share one partition
#: count so per-child Faust tables stay co-partitioned with their streams.
KEYED_TOPICS = (
    INBOUND_POLICE,
    INBOUND_REFERRALS,
    INBOUND_CASE_STATUS,
    PRACTITIONER_DECISIONS,
    QUEUE_UPDATES,
    CONTACTS,
    DECISIONS,
    ROUTED,
    FEEDBACK,
    SCHOOL_NOTIFICATIONS,
    SLA_BREACHES,
    DEAD_LETTER,
)

#: Topics other systems write (upstream senders, case systems, practitioners' tools): the
#: product trusts none of their headers.
EXTERNAL_TOPICS = frozenset(
    {INBOUND_POLICE, INBOUND_REFERRALS, INBOUND_CASE_STATUS, PRACTITIONER_DECISIONS, QUEUE_UPDATES}
)

QUEUE_NAMES = ("single-agency", "initial-assessment", "s47")

#: Largest record an upstream system may publish (the broker refuses larger ones at the
#: door, so the sender learns at once). Intake dead-letters anything over its own, lower
#: limit (``MASH_MAX_MESSAGE_BYTES``) with the original bytes.
INBOUND_MAX_MESSAGE_BYTES = 1024 * 1024
#: A dead letter carries the original value in base64 (4/3 of up to 1 MiB) plus headers.
DEAD_LETTER_MAX_MESSAGE_BYTES = 4 * 1024 * 1024

#: Topic configs that differ from the broker's defaults.
TOPIC_CONFIGS: Mapping[str, Mapping[str, str]] = {
    INBOUND_POLICE: {"max.message.bytes": str(INBOUND_MAX_MESSAGE_BYTES)},
    INBOUND_REFERRALS: {"max.message.bytes": str(INBOUND_MAX_MESSAGE_BYTES)},
    INBOUND_CASE_STATUS: {"max.message.bytes": str(INBOUND_MAX_MESSAGE_BYTES)},
    DEAD_LETTER: {"max.message.bytes": str(DEAD_LETTER_MAX_MESSAGE_BYTES)},
}


def queue_topic(hub: str, queue: str) -> str:
    """Topic of one hub's queue, e.g. ``mash.queue.east-south.s47.v1``."""
    if queue not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {queue!r}; expected one of {QUEUE_NAMES}")
    return f"mash.queue.{hub}.{queue}.v1"


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create: its full (prefixed) name, partition count and topic configs."""

    name: str
    partitions: int
    configs: Mapping[str, str] = field(default_factory=dict)


class TopicNames:
    """Resolves contract topic names to the names used in this deployment (the prefix)."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def __call__(self, name: str) -> str:
        """The deployed name of contract topic ``name``."""
        return f"{self.prefix}{name}"

    def queue(self, hub: str, queue: str) -> str:
        """The deployed name of a hub queue topic."""
        return self(queue_topic(hub, queue))

    def all_specs(self, hubs: Iterable[str], partitions: int) -> list[TopicSpec]:
        """Every topic of the product, including each hub's three queues."""
        specs = [TopicSpec(self(t), partitions, TOPIC_CONFIGS.get(t, {})) for t in KEYED_TOPICS]
        specs += [TopicSpec(self.queue(h, q), partitions) for h in hubs for q in QUEUE_NAMES]
        return specs
