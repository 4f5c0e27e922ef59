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
SCHOOL_NOTIFICATIONS = "mash.notifications.schools.v1"
SLA_BREACHES = "mash.sla.breaches.v1"
DEAD_LETTER = "mash.deadletter.v1"

#: Feedback goes to one topic per kind of referring agency, ``mash.feedback.<agency>.v1``,
#: so a broker's ACLs can let each agency read its own referrals' outcomes and nobody
#: else's (a school must not read what the police were told). Keyed by the referrer's
#: ``agency_id``. Which agency a referrer is follows its census referral source; ``public``
#: carries acknowledgements to members of the public, read by the portal they used.
FEEDBACK_AGENCY_OF_SOURCE: Mapping[str, str] = {
    **dict.fromkeys(("1A", "1B", "1C", "1D", "9"), "public"),
    **dict.fromkeys(("2A", "2B"), "education"),
    **dict.fromkeys(("3A", "3B", "3C", "3D", "3E", "3F"), "health"),
    "4": "housing",
    **dict.fromkeys(("5A", "5B", "5C"), "childrens-social-care"),
    "5D": "early-help",
    "6": "police",
    "7": "legal",
    **dict.fromkeys(("8", "10"), "other"),
}
FEEDBACK_AGENCIES = tuple(sorted(set(FEEDBACK_AGENCY_OF_SOURCE.values())))


def feedback_topic(agency: str) -> str:
    """Feedback topic of one kind of agency, e.g. ``mash.feedback.police.v1``."""
    if agency not in FEEDBACK_AGENCIES:
        raise ValueError(f"unknown feedback agency {agency!r}; expected one of {FEEDBACK_AGENCIES}")
    return f"mash.feedback.{agency}.v1"


def feedback_topic_of_source(referral_source: str) -> str:
    """Where feedback to a referrer with this census referral source goes."""
    return feedback_topic(FEEDBACK_AGENCY_OF_SOURCE[referral_source])


#: Every feedback topic, in the order of FEEDBACK_AGENCIES.
FEEDBACK_TOPICS = tuple(feedback_topic(a) for a in FEEDBACK_AGENCIES)

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
    *FEEDBACK_TOPICS,
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

    def feedback(self) -> tuple[str, ...]:
        """The deployed names of every agency's feedback topic."""
        return tuple(self(t) for t in FEEDBACK_TOPICS)

    def all_specs(self, hubs: Iterable[str], partitions: int) -> list[TopicSpec]:
        """Every topic of the product, including each hub's three queues."""
        specs = [TopicSpec(self(t), partitions, TOPIC_CONFIGS.get(t, {})) for t in KEYED_TOPICS]
        specs += [TopicSpec(self.queue(h, q), partitions) for h in hubs for q in QUEUE_NAMES]
        return specs
