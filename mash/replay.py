"""``mash replay``: copy Kafka records between topics and JSONL files, exactly.

Sources: a topic (all partitions or some; an offset range; a time range by broker
timestamp, located with ``offsets_for_times``) or a JSONL file. Targets: a topic or a
JSONL file (format in :mod:`mash.jsonl`). Keys, values and headers are copied
byte for byte. Writing is rate-limited on request and resumable: a checkpoint file holds
the last position done per source partition (or the last line of a file source) and, for
a file target, its length at that moment, so a resumed copy neither skips nor repeats a
line. A resumed copy into a topic may re-send what was in flight when it stopped; the
services' inbox absorbs those (same event ids).

The pure parts (selection, bounds, pacing, checkpoint) are small functions and classes;
:func:`run_replay` is the I/O around them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from rich.progress import Progress

from mash.errors import ToolError, UsageError, start_client
from mash.jsonl import LineError, ReplayRecord, from_line, to_line
from mash.naming import contract_name, deployed, is_inbound
from mash.stdio import is_stdio
from services.common.kafka import ensure_topics
from services.common.kafka_security import PLAINTEXT
from services.common.lag import stop_consumer
from services.common.topics import TopicSpec

#: Save the checkpoint at least this often (seconds) and every this many records.
CHECKPOINT_SECONDS = 1.0
CHECKPOINT_RECORDS = 1000
#: Records in flight to the broker before the sink waits for their acks.
MAX_IN_FLIGHT = 500


# --- pure parts ------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """Which records to copy. Offsets and times are half-open: start included, end not.

    A bound that is set excludes records that lack the field (a simulated record has no
    partition or offset).
    """

    partitions: frozenset[int] | None = None
    start_offset: int | None = None
    end_offset: int | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    max_messages: int | None = None
    """Stop after copying this many in one run (a later ``--resume`` carries on)."""

    def accepts(self, record: ReplayRecord) -> bool:
        """Whether ``record`` is inside the selection."""
        if self.partitions is not None and record.partition not in self.partitions:
            return False
        if self.start_offset is not None or self.end_offset is not None:
            if record.offset is None:
                return False
            if self.start_offset is not None and record.offset < self.start_offset:
                return False
            if self.end_offset is not None and record.offset >= self.end_offset:
                return False
        if self.since_ms is not None or self.until_ms is not None:
            if record.timestamp is None:
                return False
            if self.since_ms is not None and record.timestamp < self.since_ms:
                return False
            if self.until_ms is not None and record.timestamp >= self.until_ms:
                return False
        return True


def parse_instant(text: str) -> int:
    """Milliseconds since the epoch from RFC 3339 text, an ISO date (midnight UTC) or a
    number of milliseconds. Text without an offset is taken as UTC."""
    stripped = text.strip()
    if stripped.isdigit():
        return int(stripped)
    try:
        if len(stripped) == 10:
            day = date.fromisoformat(stripped)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(stripped.upper().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"cannot read time {text!r}: use e.g. 2026-01-05, 2026-01-05T09:30:00+00:00"
            " or milliseconds since the epoch"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def partition_bounds(
    *,
    beginning: int,
    end: int,
    selection: Selection,
    since_offset: int | None = None,
    until_offset: int | None = None,
    resume_next: int | None = None,
) -> tuple[int, int]:
    """The half-open offset range ``[start, stop)`` to read from one partition.

    ``since_offset``/``until_offset`` are what ``offsets_for_times`` found for the time
    bounds (the first offset at or after each time); ``resume_next`` is the offset after
    the last one a checkpoint recorded. An empty range has ``start >= stop``.
    """
    start = max(beginning, selection.start_offset or 0)
    if since_offset is not None:
        start = max(start, since_offset)
    if resume_next is not None:
        start = max(start, resume_next)
    stop = end if selection.end_offset is None else min(end, selection.end_offset)
    if until_offset is not None:
        stop = min(stop, until_offset)
    return start, stop


class Pacer:
    """Spaces sends at ``rate`` per second (None: no limit). The clock is passed in."""

    def __init__(self, rate: float | None) -> None:
        if rate is not None and rate <= 0:
            raise UsageError("--rate must be a positive number of messages per second")
        self.rate = rate
        self._started: float | None = None

    def delay(self, sent: int, now: float) -> float:
        """Seconds to wait before sending message number ``sent`` (0-based) at ``now``."""
        if self.rate is None:
            return 0.0
        if self._started is None:
            self._started = now
        return max(0.0, self._started + sent / self.rate - now)


@dataclass
class Checkpoint:
    """How far a replay got: last position done per source partition (or ``line``)."""

    source: str
    target: str
    positions: dict[str, int] = field(default_factory=dict)
    target_bytes: int | None = None
    """Length of a target file when the positions were saved (a resume truncates to it)."""
    scanned: int = 0
    copied: int = 0
    complete: bool = False

    def next_position(self, key: str) -> int | None:
        """The first position not yet done for ``key``, or None when nothing was done."""
        last = self.positions.get(key)
        return None if last is None else last + 1

    def save(self, path: Path) -> None:
        """Write atomically (a crash mid-write leaves the previous checkpoint intact)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(asdict(self), indent=1) + "\n", encoding="utf-8")
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: Path) -> Checkpoint:
        """Read a checkpoint; ToolError if it is missing or unreadable."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**data)
        except FileNotFoundError:
            raise ToolError(f"no checkpoint at {path}: run without --resume first") from None
        except (OSError, ValueError, TypeError) as exc:
            raise ToolError(f"checkpoint {path} is unreadable ({exc})") from None


def default_checkpoint_path(source: str, target: str) -> Path:
    """Where a replay keeps its checkpoint unless told: one file per source and target."""
    digest = hashlib.sha1(f"{source}\n{target}".encode(), usedforsecurity=False).hexdigest()
    return Path(f".mash-replay-{digest[:12]}.checkpoint.json")


def refuse_inbound(destinations: Iterable[str], allow_inbound: bool) -> None:
    """UsageError unless every destination is safe to write or ``allow_inbound`` is set."""
    inbound = sorted(d for d in set(destinations) if is_inbound(d))
    if inbound and not allow_inbound:
        raise UsageError(
            f"refusing to write into inbound topic {inbound[0]}: the services act on every"
            " message there; add --allow-inbound if that is what you mean"
        )


# --- sources ---------------------------------------------------------------------------

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
        counts = await topic_partition_counts(self.bootstrap, [self.topic], security=self.security)
        if self.topic not in counts:
            raise ToolError(f"topic {self.topic} does not exist")
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


# --- sinks -----------------------------------------------------------------------------


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

    ``-`` writes to stdout, which cannot be cut back: :func:`run_replay` refuses to resume
    into it.
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
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True, **self.security
        )
        await start_client(self._producer, self.bootstrap)

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


# --- the copy loop ---------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayOptions:
    """Everything one replay needs; topic names here are the deployed (prefixed) ones."""

    bootstrap: list[str]
    source_topic: str | None = None
    source_file: Path | None = None
    target_topic: str | None = None
    target_file: Path | None = None
    target_prefix: str = ""
    """For a file source without a target topic: each record goes to its own topic's
    contract name under this prefix."""
    selection: Selection = Selection()
    rate: float | None = None
    allow_inbound: bool = False
    keep_partitions: bool = False
    keep_timestamps: bool = False
    checkpoint: Path | None = None
    resume: bool = False
    overwrite: bool = False
    create_partitions: int | None = None
    """Create missing target topics with this many partitions (None: refuse)."""
    security: Mapping[str, Any] = field(
        default_factory=lambda: PLAINTEXT, repr=False, compare=False
    )
    """How the Kafka clients connect
    (:func:`services.common.kafka_security.kafka_client_security`)."""


@dataclass(frozen=True)
class ReplayResult:
    """What one run did."""

    scanned: int
    copied: int
    complete: bool
    checkpoint: Path
    destinations: tuple[str, ...]


def _describe_source(options: ReplayOptions) -> str:
    if options.source_topic is not None:
        return f"topic:{options.source_topic}"
    return f"file:{options.source_file}"


def checkpoint_path_for(options: ReplayOptions) -> Path:
    """The checkpoint file of this replay: the one asked for, else one per source+target."""
    return options.checkpoint or default_checkpoint_path(
        _describe_source(options), _describe_target(options)
    )


def _describe_target(options: ReplayOptions) -> str:
    if options.target_file is not None:
        return f"file:{options.target_file}"
    if options.target_topic is not None:
        return f"topic:{options.target_topic}"
    return f"topics:{options.target_prefix}<each record's topic>"


async def run_replay(options: ReplayOptions, progress: Progress | None = None) -> ReplayResult:
    """Copy the selected records from the source to the target, checkpointing as it goes."""
    if (options.source_topic is None) == (options.source_file is None):
        raise UsageError("give exactly one source: --from-topic or --from-file")
    if options.target_topic is not None and options.target_file is not None:
        raise UsageError("give at most one target: --to-topic or --to-file")
    if (
        options.source_topic is not None
        and options.target_topic is None
        and not options.target_file
    ):
        raise UsageError("a topic source needs a target: --to-topic or --to-file")

    source: Source
    topic_source: TopicSource | None = None
    if options.source_topic is not None:
        topic_source = TopicSource(
            options.bootstrap, options.source_topic, options.selection, security=options.security
        )
        source = topic_source
    else:
        assert options.source_file is not None
        source = FileSource(options.source_file)
    target_description = _describe_target(options)
    checkpoint_path = checkpoint_path_for(options)
    if options.resume and is_stdio(options.target_file):
        raise UsageError("cannot resume into stdout (--to-file -): what it wrote is gone")
    if options.resume:
        checkpoint = Checkpoint.load(checkpoint_path)
        if (checkpoint.source, checkpoint.target) != (source.description, target_description):
            raise UsageError(
                f"checkpoint {checkpoint_path} is for {checkpoint.source} -> {checkpoint.target},"
                f" not {source.description} -> {target_description}"
            )
        if options.target_file is not None and checkpoint.target_bytes is None:
            raise ToolError(f"checkpoint {checkpoint_path} has no target file length")
    else:
        checkpoint = Checkpoint(source=source.description, target=target_description)

    # Read a file source once up front (every line must parse), decide the destinations
    # and refuse unsafe ones: all before anything is written.
    if isinstance(source, FileSource):
        source.open(checkpoint if options.resume else None)
    if options.target_topic is not None:
        destinations: list[str] = [options.target_topic]
    elif options.target_file is not None:
        destinations = []
    else:
        assert isinstance(source, FileSource)
        destinations = sorted(
            {deployed(contract_name(t), options.target_prefix) for t in source.topics}
        )
    refuse_inbound(destinations, options.allow_inbound)

    sink: Sink | None = None
    try:
        if topic_source is not None:
            await topic_source.open(checkpoint if options.resume else None)
        if options.target_file is not None:
            sink = FileSink(
                options.target_file,
                resume_bytes=checkpoint.target_bytes if options.resume else None,
                overwrite=options.overwrite,
            )
        else:
            counts = await prepare_topics(
                options.bootstrap,
                destinations,
                create_partitions=options.create_partitions,
                security=options.security,
            )
            fixed = options.target_topic

            def route(record: ReplayRecord) -> str:
                if fixed is not None:
                    return fixed
                return deployed(contract_name(record.topic), options.target_prefix)

            topic_sink = TopicSink(
                options.bootstrap,
                route,
                partition_counts=counts,
                keep_partitions=options.keep_partitions,
                keep_timestamps=options.keep_timestamps,
                security=options.security,
            )
            await topic_sink.open()
            sink = topic_sink
        return await _copy(
            source, sink, options, checkpoint, checkpoint_path, progress, destinations
        )
    finally:
        if sink is not None:
            await sink.close()
        await source.close()


async def _copy(
    source: Source,
    sink: Sink,
    options: ReplayOptions,
    checkpoint: Checkpoint,
    checkpoint_path: Path,
    progress: Progress | None,
    destinations: list[str],
) -> ReplayResult:
    selection = options.selection
    pacer = Pacer(options.rate)
    positions = dict(checkpoint.positions)
    scanned = copied = 0
    stopped_early = False
    task = (
        progress.add_task(f"replay {source.description}", total=source.total)
        if progress is not None
        else None
    )
    last_saved = time.monotonic()
    since_saved = 0

    async def save(complete: bool) -> None:
        # Positions are saved only once everything handed to the sink is durable.
        await sink.flush()
        checkpoint.positions = dict(positions)
        checkpoint.target_bytes = sink.size()
        checkpoint.complete = complete
        checkpoint.save(checkpoint_path)

    records = source.records()
    try:
        async for (key, position), record in records:
            if selection.max_messages is not None and copied >= selection.max_messages:
                stopped_early = True
                break
            if selection.accepts(record):
                wait = pacer.delay(copied, time.monotonic())
                if wait > 0:
                    await asyncio.sleep(wait)
                await sink.write(record)
                copied += 1
                checkpoint.copied += 1
            scanned += 1
            checkpoint.scanned += 1
            positions[key] = position
            since_saved += 1
            if progress is not None and task is not None:
                progress.advance(task)
            now = time.monotonic()
            if since_saved >= CHECKPOINT_RECORDS or now - last_saved >= CHECKPOINT_SECONDS:
                await save(complete=False)
                last_saved, since_saved = now, 0
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM) or failed: keep what is durable for --resume.
        with contextlib.suppress(Exception):
            await save(complete=False)
        raise
    finally:
        await records.aclose()
    await save(complete=not stopped_early)
    return ReplayResult(
        scanned=scanned,
        copied=copied,
        complete=not stopped_early,
        checkpoint=checkpoint_path,
        destinations=tuple(destinations),
    )


async def publish_records(
    bootstrap: list[str],
    records: list[ReplayRecord],
    *,
    prefix: str,
    rate: float | None = None,
    keep_timestamps: bool = False,
    create_partitions: int | None = None,
    progress: Progress | None = None,
    description: str = "publish",
    security: Mapping[str, Any] = PLAINTEXT,
) -> int:
    """Produce in-memory records (e.g. simulated ones) to their topics under ``prefix``.

    Each record goes to its topic's contract name under the prefix, placed by its key.
    Returns how many were acknowledged by the broker.
    """
    destinations = sorted({deployed(contract_name(r.topic), prefix) for r in records})
    counts = await prepare_topics(
        bootstrap, destinations, create_partitions=create_partitions, security=security
    )
    sink = TopicSink(
        bootstrap,
        lambda record: deployed(contract_name(record.topic), prefix),
        partition_counts=counts,
        keep_timestamps=keep_timestamps,
        security=security,
    )
    pacer = Pacer(rate)
    task = progress.add_task(description, total=len(records)) if progress is not None else None
    await sink.open()
    try:
        for sent, record in enumerate(records):
            wait = pacer.delay(sent, time.monotonic())
            if wait > 0:
                await asyncio.sleep(wait)
            await sink.write(record)
            if progress is not None and task is not None:
                progress.advance(task)
        await sink.flush()
    finally:
        await sink.close()
    return len(records)
