"""Topic names as the tools see them: the deployment prefix, contract names, and which
topics are inbound (written by upstream systems, so a replay into them is an act on the
live pipeline). Pure functions.
"""

from __future__ import annotations

import re

from services.common.topics import (
    INBOUND_CASE_STATUS,
    INBOUND_POLICE,
    INBOUND_REFERRALS,
    KEYED_TOPICS,
    PRACTITIONER_DECISIONS,
    QUEUE_NAMES,
    QUEUE_UPDATES,
)

#: Contract names of the topics upstream systems write to (docs/contract.md "Inbound topics").
INBOUND_TOPICS = (
    INBOUND_POLICE,
    INBOUND_REFERRALS,
    INBOUND_CASE_STATUS,
    PRACTITIONER_DECISIONS,
    QUEUE_UPDATES,
)

_INBOUND_FAMILY = re.compile(r"mash\.inbound\.")
_QUEUE_TOPIC = re.compile(
    r"mash\.queue\.[a-z0-9]+(?:-[a-z0-9]+)*\.(?:" + "|".join(QUEUE_NAMES) + r")\.v[0-9]+$"
)


def is_inbound(name: str) -> bool:
    """Whether ``name`` (with any prefix) is an inbound production topic.

    ``mash.inbound.*`` in any version, ``mash.practitioner-decisions.v1`` and
    ``mash.queue-updates.v1``: services act on every message written there.
    """
    if _INBOUND_FAMILY.search(name):
        return True
    return name.endswith((PRACTITIONER_DECISIONS, QUEUE_UPDATES))


def deployed(name: str, prefix: str) -> str:
    """The deployed name of ``name``: the prefix is added unless the name already has it."""
    if prefix and name.startswith(prefix):
        return name
    return f"{prefix}{name}"


def contract_name(name: str) -> str:
    """The contract name inside a deployed topic name (any prefix removed).

    ``t1a2b.mash.contacts.v1`` -> ``mash.contacts.v1``; a queue topic keeps its hub.
    Names that are not the product's are returned unchanged.
    """
    for known in KEYED_TOPICS:
        if name.endswith(known):
            return known
    match = _QUEUE_TOPIC.search(name)
    if match:
        return match.group(0)
    return name
