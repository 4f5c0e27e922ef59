"""``mash replay`` on the real broker, in an isolated world: exact round trips, offset and
time ranges, the inbound guard, and resuming after Ctrl-C, SIGTERM or ``kill -9``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import uuid
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import murmur2

from mash.jsonl import ReplayRecord, read_jsonl
from mash.replay import Checkpoint, ReplayOptions, Selection, run_replay
from services.common.kafka import ensure_topics
from services.common.topics import INBOUND_REFERRALS, TopicSpec
from tests.support import (
    Isolated,
    Stack,
    isolated_world,
    partitions_of,
    read_exact,
    start_mash,
    wait_until,
)

pytestmark = pytest.mark.integration

BASE_MS = 1_767_600_000_000  # 2026-01-05T08:00:00Z


@pytest.fixture(scope="module")
async def world(stack: Stack) -> Isolated:
    return await isolated_world(stack)


async def scratch_topic(world: Isolated, partitions: int = 3) -> str:
    """A new empty topic in the world (not inbound)."""
    name = world.topics(f"scratch-{uuid.uuid4().hex[:8]}")
    await ensure_topics([world.stack.bootstrap], [TopicSpec(name, partitions)])
    return name


async def produce(bootstrap: str, topic: str, records: list[ReplayRecord]) -> None:
    """Produce records to their stated partitions with their stated timestamps."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for r in records:
            await producer.send_and_wait(
                topic,
                r.value,
                key=r.key,
                partition=r.partition,
                timestamp_ms=r.timestamp,
                headers=list(r.headers),
            )
    finally:
        await producer.stop()


def awkward_records(count: int, partitions: int = 3) -> list[ReplayRecord]:
    """Records that trip up lossy tools: null/empty/binary keys and values, repeated and
    null header values, non-UTF-8 bytes."""
    out = []
    for i in range(count):
        key: bytes | None = [None, b"", f"key-{i}".encode(), bytes([0, 255, i % 256])][i % 4]
        value: bytes | None = [b"", f'{{"n": {i}}}'.encode(), b"\xff\xfe\x00raw"][i % 3]
        headers = (
            ("ce_id", f"id-{i}".encode()),
            ("dup", b"first"),
            ("dup", b"second"),
            ("null", None),
            ("binary", bytes([i % 256, 0, 200])),
        )
        out.append(
            ReplayRecord("x", key, value, headers[: 1 + i % 5], i % partitions, None, BASE_MS + i)
        )
    return out


def essence(
    r: ReplayRecord,
) -> tuple[bytes | None, bytes | None, tuple[tuple[str, bytes | None], ...]]:
    return (r.key, r.value, tuple(r.headers))


async def test_a_round_trip_topic_file_topic_is_byte_identical(
    world: Isolated, tmp_path: Path
) -> None:
    bootstrap = world.stack.bootstrap
    source, copy_same, copy_keyed = [await scratch_topic(world) for _ in range(3)]
    await produce(bootstrap, source, awkward_records(40))
    original = await read_exact(bootstrap, source, 3)
    assert len(original) == 40

    dump = tmp_path / "dump.jsonl"
    to_file = await run_replay(
        ReplayOptions([bootstrap], source_topic=source, target_file=dump, checkpoint=tmp_path / "a")
    )
    assert (to_file.copied, to_file.complete) == (40, True)
    dumped = sorted(read_jsonl(dump), key=lambda r: (r.partition or 0, r.offset or 0))
    assert dumped == original, "the file holds every record with its coordinates, exactly"

    # Back onto a topic, same partitions and timestamps: identical partition by partition.
    back = await run_replay(
        ReplayOptions(
            [bootstrap],
            source_file=dump,
            target_topic=copy_same,
            keep_partitions=True,
            keep_timestamps=True,
            checkpoint=tmp_path / "b",
        )
    )
    assert back.copied == 40
    copied = await read_exact(bootstrap, copy_same, 3)
    assert [(essence(r), r.partition, r.offset, r.timestamp) for r in copied] == [
        (essence(r), r.partition, r.offset, r.timestamp) for r in original
    ]

    # Topic to topic, placed by key (the default): the same bytes, every one exactly once.
    await run_replay(
        ReplayOptions(
            [bootstrap], source_topic=source, target_topic=copy_keyed, checkpoint=tmp_path / "c"
        )
    )
    keyed = await read_exact(bootstrap, copy_keyed, 3)
    assert Counter(essence(r) for r in keyed) == Counter(essence(r) for r in original)
    for r in keyed:
        if r.key:  # placed by the key's murmur2 hash, as a Java or librdkafka producer would
            assert r.partition == (murmur2(r.key) & 0x7FFFFFFF) % 3


async def test_a_time_range_picks_exactly_the_records_inside_it(
    world: Isolated, tmp_path: Path
) -> None:
    bootstrap = world.stack.bootstrap
    topic = await scratch_topic(world)
    records = [
        ReplayRecord("x", f"k{i:02d}".encode(), b"v", (), i % 3, None, BASE_MS + i * 1000)
        for i in range(30)
    ]
    await produce(bootstrap, topic, records)
    out = tmp_path / "window.jsonl"
    result = await run_replay(
        ReplayOptions(
            [bootstrap],
            source_topic=topic,
            target_file=out,
            checkpoint=tmp_path / "cp",
            # Record 10 sits exactly on --since (included), record 20 on --until (excluded).
            selection=Selection(since_ms=BASE_MS + 10_000, until_ms=BASE_MS + 20_000),
        )
    )
    got = sorted((r.key or b"").decode() for r in read_jsonl(out))
    assert got == [f"k{i:02d}" for i in range(10, 20)]
    assert result.scanned == 10, "offsets_for_times bounds the read; nothing else is fetched"
    assert all(BASE_MS + 10_000 <= (r.timestamp or 0) < BASE_MS + 20_000 for r in read_jsonl(out))


async def test_an_offset_range_of_one_partition(world: Isolated, tmp_path: Path) -> None:
    bootstrap = world.stack.bootstrap
    topic = await scratch_topic(world)
    await produce(
        bootstrap,
        topic,
        [ReplayRecord("x", f"p{i % 3}-{i // 3}".encode(), b"v", (), i % 3) for i in range(24)],
    )
    out = tmp_path / "slice.jsonl"
    await run_replay(
        ReplayOptions(
            [bootstrap],
            source_topic=topic,
            target_file=out,
            checkpoint=tmp_path / "cp",
            selection=Selection(partitions=frozenset({1}), start_offset=2, end_offset=5),
        )
    )
    got = [(r.partition, r.offset, r.key) for r in read_jsonl(out)]
    assert got == [(1, 2, b"p1-2"), (1, 3, b"p1-3"), (1, 4, b"p1-4")]


async def end_offset_total(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in await partitions_of(bootstrap, topic)]
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await consumer.stop()


async def test_writing_into_an_inbound_topic_needs_the_explicit_flag(
    world: Isolated, tmp_path: Path
) -> None:
    bootstrap = world.stack.bootstrap
    source = await scratch_topic(world)
    await produce(bootstrap, source, [ReplayRecord("x", b"k", b"{}", (), 0)])
    inbound = world.topics(INBOUND_REFERRALS)
    before = await end_offset_total(bootstrap, inbound)
    args = ["replay", "--from-topic", source, "--to-topic", INBOUND_REFERRALS, "--no-progress"]

    refused = start_mash(world, tmp_path, *args)
    out, err = refused.communicate(timeout=60)
    assert refused.returncode == 2
    assert err.splitlines() == [
        f"mash: error: refusing to write into inbound topic {inbound}: the services act on"
        " every message there; add --allow-inbound if that is what you mean"
    ]
    assert await end_offset_total(bootstrap, inbound) == before, "nothing was written"

    allowed = start_mash(world, tmp_path, *args, "--allow-inbound")
    out, err = allowed.communicate(timeout=60)
    assert allowed.returncode == 0, err
    assert "copied 1 " in out
    assert await end_offset_total(bootstrap, inbound) == before + 1


def saved(path: Path) -> Checkpoint | None:
    try:
        return Checkpoint.load(path)
    except Exception:
        return None


async def test_a_replay_killed_mid_way_resumes_without_gaps_or_repeats(
    world: Isolated, tmp_path: Path
) -> None:
    bootstrap = world.stack.bootstrap
    topic = await scratch_topic(world)
    records = [
        ReplayRecord("x", f"k{i:03d}".encode(), f"v{i}".encode(), (), i % 3) for i in range(150)
    ]
    await produce(bootstrap, topic, records)
    out, checkpoint = tmp_path / "out.jsonl", tmp_path / "cp.json"
    args = ["replay", "--from-topic", topic, "--to-file", str(out), "--checkpoint", str(checkpoint)]

    slow = start_mash(world, tmp_path, *args, "--rate", "40", "--no-progress")

    async def some_progress_saved() -> bool:
        state = saved(checkpoint)
        return state is not None and state.copied >= 30

    try:
        await wait_until(some_progress_saved, timeout=60, what="a checkpoint with progress")
    finally:
        slow.kill()  # kill -9: no chance to tidy up
        slow.communicate(timeout=30)
    interrupted = saved(checkpoint)
    assert interrupted is not None
    assert not interrupted.complete
    assert interrupted.copied < 150

    result = await run_replay(
        ReplayOptions(
            [bootstrap], source_topic=topic, target_file=out, checkpoint=checkpoint, resume=True
        )
    )
    assert result.complete
    assert 0 < result.copied < 150, "the resumed run carried on; it did not start again"
    lines = list(read_jsonl(out))
    assert len(lines) == 150, "no line lost, none written twice"
    assert sorted(r.key or b"" for r in lines) == sorted(r.key or b"" for r in records)
    for p in range(3):
        offsets = [r.offset for r in lines if r.partition == p]
        assert offsets == list(range(50)), "each partition in order"


async def test_a_topic_to_topic_replay_stopped_by_sigterm_resumes_exactly(
    world: Isolated, tmp_path: Path
) -> None:
    bootstrap = world.stack.bootstrap
    source, target = await scratch_topic(world), await scratch_topic(world)
    records = [
        ReplayRecord("x", f"k{i:03d}".encode(), f"v{i}".encode(), (), i % 3) for i in range(120)
    ]
    await produce(bootstrap, source, records)
    checkpoint = tmp_path / "cp.json"
    args = ["replay", "--from-topic", source, "--to-topic", target, "--checkpoint", str(checkpoint)]

    slow = start_mash(world, tmp_path, *args, "--rate", "40", "--no-progress")

    async def under_way() -> bool:
        state = saved(checkpoint)
        return state is not None and state.copied >= 20

    await wait_until(under_way, timeout=60, what="the replay to get going")
    slow.send_signal(signal.SIGTERM)
    _, err = slow.communicate(timeout=60)
    assert slow.returncode == 130
    assert "--resume" in err
    assert len(err.strip().splitlines()) == 1
    stopped = Checkpoint.load(checkpoint)
    assert stopped.copied == await end_offset_total(bootstrap, target), (
        "on SIGTERM everything in flight is flushed and the checkpoint matches the target"
    )

    resumed = start_mash(world, tmp_path, *args, "--resume", "--no-progress")
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert json.loads(checkpoint.read_text())["complete"] is True
    copied = await read_exact(bootstrap, target, 3)
    assert Counter(r.key for r in copied) == Counter(r.key for r in records)
    assert len(copied) == 120


async def test_max_messages_stops_early_and_resume_carries_on(
    world: Isolated, tmp_path: Path
) -> None:
    bootstrap = world.stack.bootstrap
    source, target = await scratch_topic(world), await scratch_topic(world)
    records = [ReplayRecord("x", f"k{i:03d}".encode(), b"v", (), i % 3) for i in range(30)]
    await produce(bootstrap, source, records)
    options = ReplayOptions(
        [bootstrap],
        source_topic=source,
        target_topic=target,
        checkpoint=tmp_path / "cp.json",
        selection=Selection(max_messages=12),
    )
    first = await run_replay(options)
    assert (first.copied, first.complete) == (12, False)
    second = await run_replay(
        ReplayOptions(
            [bootstrap],
            source_topic=source,
            target_topic=target,
            checkpoint=tmp_path / "cp.json",
            resume=True,
        )
    )
    assert (second.copied, second.complete) == (18, True)
    copied = await read_exact(bootstrap, target, 3)
    assert sorted(r.key or b"" for r in copied) == sorted(r.key or b"" for r in records)
