"""``mash topics``: the product's topics with partitions, end offsets and consumer lag.

The topics are the catalogue (:mod:`services.common.topics`) plus the three queues of each
hub of the active topology, under the deployment prefix. Lag is reported for each
``mash-*`` consumer group that has committed an offset on the topic: the sum over
partitions of end offset minus committed offset.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from mash.errors import ToolError, start_client
from services.common.kafka_security import PLAINTEXT
from services.common.topics import TopicNames


@dataclass(frozen=True)
class TopicRow:
    """One topic of the product as the broker sees it (``partitions`` None: missing)."""

    name: str
    partitions: int | None
    end_offsets: dict[int, int] = field(default_factory=dict)
    lag: dict[str, int] = field(default_factory=dict)
    """Consumer group -> messages not yet committed (only groups with offsets here)."""

    @property
    def messages_end(self) -> int:
        """Sum of the partitions' end offsets (messages ever written, before retention)."""
        return sum(self.end_offsets.values())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "topic": self.name,
            "partitions": self.partitions,
            "end_offsets": {str(p): o for p, o in sorted(self.end_offsets.items())},
            "end_offset_total": self.messages_end,
            "lag": dict(sorted(self.lag.items())),
        }


def product_topics(prefix: str, hubs: Iterable[str]) -> list[str]:
    """Deployed names of every product topic (catalogue and hub queues), in catalogue order."""
    return [spec.name for spec in TopicNames(prefix).all_specs(hubs, 1)]


def group_lag(
    topic: str,
    ends: Mapping[int, int],
    beginnings: Mapping[int, int],
    committed: Mapping[tuple[str, int], int],
) -> int | None:
    """Lag of one group on ``topic``, or None when the group never committed there.

    A partition the group has no offset for counts in full (from its beginning): the
    group has read none of it.
    """
    mine = {p: o for (t, p), o in committed.items() if t == topic}
    if not mine:
        return None
    return sum(
        max(0, end - mine.get(partition, beginnings.get(partition, 0)))
        for partition, end in ends.items()
    )


def wanted_group(group: str, group_prefix: str, group_suffix: str) -> bool:
    """Whether ``group`` is one of this deployment's consumer groups."""
    return group.startswith(group_prefix) and (not group_suffix or group.endswith(group_suffix))


async def inventory(
    bootstrap: list[str],
    topics: list[str],
    *,
    group_prefix: str = "mash-",
    group_suffix: str = "",
    security: Mapping[str, Any] = PLAINTEXT,
) -> list[TopicRow]:
    """Partitions, end offsets and per-group lag of each of ``topics``; ``security``: how
    the clients connect (:func:`services.common.kafka_security.kafka_client_security`)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **security)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **security)
    await start_client(admin, bootstrap)
    try:
        await start_client(consumer, bootstrap)
    except ToolError:
        await admin.close()
        raise
    try:
        existing = set(await admin.list_topics())
        present = [t for t in topics if t in existing]
        described = await admin.describe_topics(present) if present else []
        partitions = {
            d["topic"]: sorted(p["partition"] for p in d["partitions"])
            for d in described
            if d["error_code"] == 0
        }
        tps = [TopicPartition(t, p) for t, ps in partitions.items() for p in ps]
        ends = await consumer.end_offsets(tps) if tps else {}
        beginnings = await consumer.beginning_offsets(tps) if tps else {}
        groups = sorted(
            g[0]
            for g in await admin.list_consumer_groups()
            if wanted_group(g[0], group_prefix, group_suffix)
        )
        committed: dict[str, dict[tuple[str, int], int]] = {}
        for group in groups:
            offsets = await admin.list_consumer_group_offsets(group)
            committed[group] = {
                (tp.topic, tp.partition): meta.offset
                for tp, meta in offsets.items()
                if tp.topic in partitions and meta.offset >= 0
            }
        rows = []
        for topic in topics:
            if topic not in partitions:
                rows.append(TopicRow(topic, None))
                continue
            topic_ends = {tp.partition: o for tp, o in ends.items() if tp.topic == topic}
            topic_starts = {tp.partition: o for tp, o in beginnings.items() if tp.topic == topic}
            lag = {}
            for group, offsets in committed.items():
                value = group_lag(topic, topic_ends, topic_starts, offsets)
                if value is not None:
                    lag[group] = value
            rows.append(TopicRow(topic, len(partitions[topic]), topic_ends, lag))
        return rows
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await consumer.stop()
        await admin.close()
