"""Where a replay's records come from: a topic (read without a consumer group, inside a
selection) or a JSONL file (``-``: stdin), each record with its position for the
checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import AsyncGenerator, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition

from mash.brokers import require_topics
from mash.errors import ToolError, UsageError, start_client
from mash.jsonl import LineError, ReplayRecord, from_line
from mash.replay.checkpoint import Checkpoint
from mash.replay.selection import Selection, partition_bounds
from mash.stdio import is_stdio
from services.common.kafka_security import PLAINTEXT
from services.common.lag import stop_consumer

Position = tuple[str, int]
"""(partition number as text, or "line"; offset or line index)."""


class Source(Protocol):
    """Where records come from."""

    description: str
    total: int

    def records(self) -> AsyncGenerator[tuple[Position, ReplayRecord], None]:
        """The records to consider, each with its position for the checkpoint."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class TopicSource:
    """Records of one topic inside a selection, read without a consumer group."""

    def __init__(
        self,
        bootstrap: list[str],
        topic: str,
        selection: Selection,
        *,
        security: Mapping[str, Any] = PLAINTEXT,
    ) -> None:
        self.bootstrap = bootstrap
        self.security = security
        self.topic = topic
        self.selection = selection
        self.description = f"topic:{topic}"
        self.total = 0
        self.partitions: list[int] = []
        self.bounds: dict[int, tuple[int, int]] = {}
        self._consumer: Any = None

    async def open(self, checkpoint: Checkpoint | None) -> None:
        """Connect, find the partitions and the offset range of each."""
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            group_id=None,
            auto_offset_reset="earliest",
            **self.security,
        )
        counts = await require_topics(self.bootstrap, [self.topic], security=self.security)
        found = set(range(counts[self.topic]))
        await start_client(self._consumer, self.bootstrap)
        wanted = self.selection.partitions
        if wanted is not None and not wanted <= found:
            missing = sorted(wanted - found)
            raise UsageError(f"topic {self.topic} has no partition {missing[0]}")
        self.partitions = sorted(found if wanted is None else wanted)
        tps = [TopicPartition(self.topic, p) for p in self.partitions]
        beginnings = await self._consumer.beginning_offsets(tps)
        ends = await self._consumer.end_offsets(tps)
        since = await self._offsets_at(tps, self.selection.since_ms, ends)
        until = await self._offsets_at(tps, self.selection.until_ms, ends)
        for tp in tps:
            self.bounds[tp.partition] = partition_bounds(
                beginning=beginnings[tp],
                end=ends[tp],
                selection=self.selection,
                since_offset=since.get(tp),
                until_offset=until.get(tp),
                resume_next=checkpoint.next_position(str(tp.partition)) if checkpoint else None,
            )
        self.total = sum(max(0, stop - start) for start, stop in self.bounds.values())

    async def _offsets_at(
        self, tps: list[TopicPartition], at_ms: int | None, ends: dict[TopicPartition, int]
    ) -> dict[TopicPartition, int]:
        if at_ms is None:
            return {}
        found = await self._consumer.offsets_for_times(dict.fromkeys(tps, at_ms))
        # None: no record at or after that time, so the range starts/ends at the end.
        return {tp: ends[tp] if found.get(tp) is None else found[tp].offset for tp in tps}

    async def records(self) -> AsyncGenerator[tuple[Position, ReplayRecord], None]:
        """Records from each partition's range, partitions interleaved as fetched."""
        consumer = self._consumer
        stops = {
            TopicPartition(self.topic, p): stop
            for p, (start, stop) in self.bounds.items()
            if start < stop
        }
        if not stops:
            return
        consumer.assign(list(stops))
        for tp in stops:
            consumer.seek(tp, self.bounds[tp.partition][0])
        active = set(stops)
        while active:
            batch = await consumer.getmany(*active, timeout_ms=1000)
            for tp, messages in batch.items():
                for m in messages:
                    if m.offset >= stops[tp]:
                        break
                    yield (
                        (str(m.partition), m.offset),
                        ReplayRecord(
                            topic=m.topic,
                            key=m.key,
                            value=m.value,
                            headers=tuple((k, v) for k, v in m.headers),
                            partition=m.partition,
                            offset=m.offset,
                            timestamp=m.timestamp,
                        ),
                    )
            for tp in list(active):
                # Compaction and transaction markers leave gaps: ask where the consumer is.
                if await consumer.position(tp) >= stops[tp]:
                    active.discard(tp)
                    consumer.pause(tp)

    async def close(self) -> None:
        """Stop the consumer."""
        if self._consumer is not None:
            await stop_consumer(self._consumer)


class FileSource:
    """Records of a JSONL file (``-``: stdin), checked line by line before anything is
    written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"file:{path}"
        self.total = 0
        self.topics: set[str] = set()
        self._resume_after: int | None = None
        self._stdin: list[str] | None = None

    def _lines(self) -> contextlib.AbstractContextManager[Iterable[str]]:
        # The file is read twice (checked, then copied); stdin can be read only once, so
        # its lines are kept.
        if not is_stdio(self.path):
            return self.path.open(encoding="utf-8")
        if self._stdin is None:
            self._stdin = sys.stdin.readlines()
        return contextlib.nullcontext(self._stdin)

    def open(self, checkpoint: Checkpoint | None) -> None:
        """Read the file once: every line must parse; learn its topics and size."""
        last = checkpoint.positions.get("line") if checkpoint else None
        self._resume_after = last
        try:
            handle = self._lines()
        except OSError as exc:
            raise ToolError(f"cannot read {self.path} ({exc.strerror})") from None
        with handle as lines:
            for index, line in enumerate(lines):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                    topic = data["topic"] if isinstance(data, dict) else None
                except (json.JSONDecodeError, KeyError):
                    topic = None
                if not isinstance(topic, str):
                    # Parse fully for the precise message.
                    try:
                        from_line(line)
                    except LineError as exc:
                        raise ToolError(f"{self.path}:{index + 1}: {exc}") from None
                    raise ToolError(f"{self.path}:{index + 1}: topic is missing")
                self.topics.add(topic)
                if last is None or index > last:
                    self.total += 1

    async def records(self) -> AsyncGenerator[tuple[Position, ReplayRecord], None]:
        """The records after the checkpoint's line, in file order."""
        with self._lines() as lines:
            for index, line in enumerate(lines):
                if self._resume_after is not None and index <= self._resume_after:
                    continue
                if not line.strip():
                    continue
                try:
                    record = from_line(line)
                except LineError as exc:
                    raise ToolError(f"{self.path}:{index + 1}: {exc}") from None
                yield ("line", index), record

    async def close(self) -> None:
        """Nothing to release."""
