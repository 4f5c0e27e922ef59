"""Every topic the product uses: names, partition counts and configs in one place.

Names follow docs/contract.md. A prefix (``MASH_TOPIC_PREFIX``) isolates test runs without
changing any other code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

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

#: Largest event the product writes to any other topic (bounded by intake's own limit).
EVENT_MAX_MESSAGE_BYTES = 1024 * 1024

DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class TopicRule:
    """The configs of one class of topics, matched by contract name (``fnmatch`` globs,
    without the deployment prefix). ``retention_days`` None: kept (compacted)."""

    topic_class: str
    patterns: tuple[str, ...]
    retention_days: int | None
    cleanup_policy: str
    max_message_bytes: int
    why: str

    def configs(self) -> dict[str, str]:
        """Topic configs of this class (``min.insync.replicas`` comes from the cluster's
        settings: :func:`with_min_insync_replicas`)."""
        retention = -1 if self.retention_days is None else self.retention_days * DAY_MS
        return {
            "cleanup.policy": self.cleanup_policy,
            "retention.ms": str(retention),
            "max.message.bytes": str(self.max_message_bytes),
        }


#: Retention and size of every product topic, by class; the first rule that matches a
#: topic applies. ``mash topics --apply`` makes the broker agree; services create missing
#: topics with the same configs. README "Retention" is generated from this table.
TOPIC_RULES: tuple[TopicRule, ...] = (
    TopicRule(
        "inbound",
        ("mash.inbound.*", "mash.practitioner-decisions.*", "mash.queue-updates.*"),
        14,
        "delete",
        INBOUND_MAX_MESSAGE_BYTES,
        "the only copy until intake has read it: replayable after an outage over a"
        " bank-holiday weekend and its fix",
    ),
    TopicRule(
        "internal events",
        ("mash.contacts.*", "mash.decisions.*", "mash.routed.*", "mash.sla.breaches.*"),
        7,
        "delete",
        EVENT_MAX_MESSAGE_BYTES,
        "read within seconds by the next service; a week rides out its outage and leaves"
        " time to replay; PostgreSQL holds the record",
    ),
    TopicRule(
        "hub queues",
        ("mash.queue.*.*.v*",),
        7,
        "delete",
        EVENT_MAX_MESSAGE_BYTES,
        "the hub's tools read them within the working day; queue_items holds the record",
    ),
    TopicRule(
        "feedback",
        ("mash.feedback.*",),
        14,
        "delete",
        EVENT_MAX_MESSAGE_BYTES,
        "agencies' systems may be down as long as ours; firewalled: references and outcomes only",
    ),
    TopicRule(
        "school notices",
        ("mash.notifications.schools.*",),
        4,
        "delete",
        EVENT_MAX_MESSAGE_BYTES,
        "carry a child's name and date of birth: kept only over a bank-holiday weekend"
        " (Encompass is due before the next school day)",
    ),
    TopicRule(
        "dead letters",
        ("mash.deadletter.*",),
        30,
        "delete",
        DEAD_LETTER_MAX_MESSAGE_BYTES,
        "the original bytes, for staff to fix and redrive (mash deadletters reads the"
        " topic); as long as MASH_DEAD_LETTER_RETENTION_DAYS",
    ),
    TopicRule(
        "table changelogs",
        ("mash-*-changelog",),
        None,
        "compact",
        EVENT_MAX_MESSAGE_BYTES,
        "Faust table state: the latest value per key, compacted, never expired",
    ),
)


def topic_rule(name: str) -> TopicRule:
    """The rule of contract topic ``name`` (no prefix); KeyError when none matches."""
    for rule in TOPIC_RULES:
        if any(fnmatchcase(name, pattern) for pattern in rule.patterns):
            return rule
    raise KeyError(f"no retention rule in TOPIC_RULES matches topic {name!r}")


def topic_configs(name: str) -> dict[str, str]:
    """Topic configs of contract topic ``name`` (no prefix) from :data:`TOPIC_RULES`."""
    return topic_rule(name).configs()


def with_min_insync_replicas(configs: Mapping[str, str], min_insync: int) -> dict[str, str]:
    """``configs`` plus the cluster's ``min.insync.replicas`` (a spec's own value wins)."""
    return {"min.insync.replicas": str(min_insync), **configs}


#: Topic configs of each catalogue topic (the hub queues: :func:`topic_configs`).
TOPIC_CONFIGS: Mapping[str, Mapping[str, str]] = {t: topic_configs(t) for t in KEYED_TOPICS}


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
        specs += [
            TopicSpec(self.queue(h, q), partitions, topic_configs(queue_topic(h, q)))
            for h in hubs
            for q in QUEUE_NAMES
        ]
        return specs
