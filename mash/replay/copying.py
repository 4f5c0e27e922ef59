"""The copy itself: from a source to a sink, paced, saving the checkpoint as it goes
(:func:`run_replay`); and in-memory records published to their topics
(:func:`publish_records`, what ``mash simulate --to-kafka`` uses).

Every check that can refuse a replay (options, checkpoint, a file source's lines, inbound
destinations) runs before anything is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import Progress

from mash.errors import ToolError, UsageError
from mash.jsonl import ReplayRecord
from mash.naming import contract_name, deployed, is_inbound
from mash.replay.checkpoint import Checkpoint, default_checkpoint_path
from mash.replay.selection import Selection
from mash.replay.sinks import FileSink, Sink, TopicSink, prepare_topics
from mash.replay.sources import FileSource, Source, TopicSource
from mash.stdio import is_stdio
from services.common.kafka_security import PLAINTEXT

#: Save the checkpoint at least this often (seconds) and every this many records.
CHECKPOINT_SECONDS = 1.0
CHECKPOINT_RECORDS = 1000


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


def refuse_inbound(destinations: Iterable[str], allow_inbound: bool) -> None:
    """UsageError unless every destination is safe to write or ``allow_inbound`` is set."""
    inbound = sorted(d for d in set(destinations) if is_inbound(d))
    if inbound and not allow_inbound:
        raise UsageError(
            f"refusing to write into inbound topic {inbound[0]}: the services act on every"
            " message there; add --allow-inbound if that is what you mean"
        )


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
    selection: Selection = field(default_factory=Selection)
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
