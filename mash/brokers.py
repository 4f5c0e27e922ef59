"""What the ``mash`` commands ask of the brokers besides records: how many partitions each
topic has, and a producer that writes a retried send once.

``replay`` and ``deadletters redrive`` both need these; one copy here means every command
names a missing topic, and starts its producer, the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from mash.errors import ToolError, start_client
from services.common.kafka_security import PLAINTEXT


async def topic_partition_counts(
    bootstrap: list[str], names: Iterable[str], *, security: Mapping[str, Any] = PLAINTEXT
) -> dict[str, int]:
    """Partition count of each existing topic among ``names`` (missing ones are left out)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **security)
    await start_client(admin, bootstrap)
    try:
        existing = set(await admin.list_topics())
        present = sorted(set(names) & existing)
        if not present:
            return {}
        described = await admin.describe_topics(present)
        return {t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == 0}
    finally:
        await admin.close()


async def require_topics(
    bootstrap: list[str], names: Iterable[str], *, security: Mapping[str, Any] = PLAINTEXT
) -> dict[str, int]:
    """Partition count of each of ``names``; ToolError naming the first that does not
    exist (a command reading or re-sending to a topic must not create it)."""
    wanted = set(names)
    counts = await topic_partition_counts(bootstrap, wanted, security=security)
    missing = sorted(wanted - set(counts))
    if missing:
        raise ToolError(f"topic {missing[0]} does not exist")
    return counts


async def start_producer(
    bootstrap: list[str], *, security: Mapping[str, Any] = PLAINTEXT
) -> AIOKafkaProducer:
    """A started ``acks=all`` idempotent producer: a send the client retries is written
    once, and an acknowledged record survives the loss of a broker."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, **security
    )
    await start_client(producer, bootstrap)
    return producer
