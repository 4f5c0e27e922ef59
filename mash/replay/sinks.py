"""Where a replay's records go: a JSONL file (``-``: stdout) or topics, through an
idempotent ``acks=all`` producer; and the target topics made ready before the first write.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from mash.brokers import start_producer, topic_partition_counts
from mash.errors import ToolError, UsageError
from mash.jsonl import ReplayRecord, to_line
from mash.stdio import is_stdio
from services.common.kafka import ensure_topics
from services.common.kafka_security import PLAINTEXT
from services.common.topics import TopicSpec

#: Records in flight to the broker before the sink waits for their acks.
MAX_IN_FLIGHT = 500


class Sink(Protocol):
    """Where records go."""

    description: str

    async def write(self, record: ReplayRecord) -> None:
        """Hand over one record (it may still be in flight)."""
        ...

    async def flush(self) -> None:
        """Return once everything written so far is durable."""
        ...

    def size(self) -> int | None:
        """Bytes written so far (file targets), else None."""
        ...

    async def close(self) -> None:
        """Release the file or connection."""
        ...


class FileSink:
    """Appends JSONL lines; on resume first cuts the file back to the checkpoint's length.

    ``-`` writes to stdout, which cannot be cut back:
    :func:`~mash.replay.copying.run_replay` refuses to resume into it.
    """

    def __init__(self, path: Path, *, resume_bytes: int | None, overwrite: bool) -> None:
        self.path = path
        self.description = f"file:{path}"
        self._handle: BinaryIO
        self._stdout = is_stdio(path)
        try:
            if self._stdout:
                self._handle = sys.stdout.buffer
            elif resume_bytes is not None:
                self._handle = path.open("r+b")
                self._handle.truncate(resume_bytes)
                self._handle.seek(resume_bytes)
            elif path.exists() and not overwrite:
                raise UsageError(f"{path} exists: add --overwrite to replace it, or --resume")
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._handle = path.open("wb")
        except OSError as exc:
            raise ToolError(f"cannot write {path} ({exc.strerror})") from None

    async def write(self, record: ReplayRecord) -> None:
        """Append the record's line."""
        self._handle.write(to_line(record).encode("utf-8") + b"\n")

    async def flush(self) -> None:
        """Flush to the disk (stdout: to the reader)."""
        self._handle.flush()
        if not self._stdout:
            os.fsync(self._handle.fileno())

    def size(self) -> int | None:
        """Bytes in the file so far (None for stdout)."""
        return None if self._stdout else self._handle.tell()

    async def close(self) -> None:
        """Close the file (stdout is flushed, not closed: it is not ours)."""
        if self._stdout:
            self._handle.flush()
        else:
            self._handle.close()


class TopicSink:
    """Produces records with an idempotent ``acks=all`` producer.

    By default the producer's partitioner places each record by its key, as any other
    producer of that topic would; ``keep_partitions`` writes to the record's own partition
    number instead. ``keep_timestamps`` keeps the record's timestamp (beware: the topic's
    time-based retention then sees an old record), otherwise the broker's clock applies.
    """

    def __init__(
        self,
        bootstrap: list[str],
        route: Callable[[ReplayRecord], str],
        *,
        partition_counts: dict[str, int],
        keep_partitions: bool = False,
        keep_timestamps: bool = False,
        security: Mapping[str, Any] = PLAINTEXT,
    ) -> None:
        self.bootstrap = bootstrap
        self.security = security
        self.route = route
        self.partition_counts = partition_counts
        self.keep_partitions = keep_partitions
        self.keep_timestamps = keep_timestamps
        self.description = "topics:" + ",".join(sorted(partition_counts))
        self._producer: Any = None
        self._pending: list[asyncio.Future[Any]] = []

    async def open(self) -> None:
        """Connect the producer."""
        self._producer = await start_producer(self.bootstrap, security=self.security)

    async def write(self, record: ReplayRecord) -> None:
        """Send the record; wait for acks once too many are in flight."""
        topic = self.route(record)
        partition = None
        if self.keep_partitions and record.partition is not None:
            if record.partition >= self.partition_counts[topic]:
                raise ToolError(
                    f"--keep-partitions: {topic} has {self.partition_counts[topic]} partitions,"
                    f" the record came from partition {record.partition}"
                )
            partition = record.partition
        future = await self._producer.send(
            topic,
            value=record.value,
            key=record.key,
            partition=partition,
            timestamp_ms=record.timestamp if self.keep_timestamps else None,
            headers=list(record.headers),
        )
        self._pending.append(future)
        if len(self._pending) >= MAX_IN_FLIGHT:
            await self.flush()

    async def flush(self) -> None:
        """Wait until the broker has acknowledged every record sent."""
        pending, self._pending = self._pending, []
        try:
            await asyncio.gather(*pending)
        except Exception as exc:
            raise ToolError(f"the broker refused a record: {type(exc).__name__}: {exc}") from exc

    def size(self) -> int | None:
        """Not a file."""
        return None

    async def close(self) -> None:
        """Stop the producer (it flushes first)."""
        if self._producer is not None:
            await self._producer.stop()


async def prepare_topics(
    bootstrap: list[str],
    names: Iterable[str],
    *,
    create_partitions: int | None,
    security: Mapping[str, Any] = PLAINTEXT,
) -> dict[str, int]:
    """Partition counts of ``names``; create missing ones if asked, else ToolError."""
    wanted = sorted(set(names))
    counts = await topic_partition_counts(bootstrap, wanted, security=security)
    missing = [n for n in wanted if n not in counts]
    if missing and create_partitions is None:
        raise ToolError(
            f"topic {missing[0]} does not exist: start the services (they create the"
            " product's topics) or add --create-topics"
        )
    if missing and create_partitions is not None:
        await ensure_topics(
            bootstrap, [TopicSpec(n, create_partitions) for n in missing], security=security
        )
        counts = await topic_partition_counts(bootstrap, wanted, security=security)
    return counts
