"""The pure parts of replay: selection, offset bounds, pacing, checkpoints, the guard."""

from __future__ import annotations

from pathlib import Path

import pytest

from mash.errors import ToolError, UsageError
from mash.jsonl import ReplayRecord
from mash.replay import (
    Checkpoint,
    Pacer,
    Selection,
    default_checkpoint_path,
    parse_instant,
    partition_bounds,
    refuse_inbound,
)


def rec(
    partition: int | None = 0, offset: int | None = 5, timestamp: int | None = 1000
) -> ReplayRecord:
    return ReplayRecord("t", b"k", b"v", (), partition, offset, timestamp)


def test_everything_is_selected_by_default() -> None:
    assert Selection().accepts(rec(None, None, None))


@pytest.mark.parametrize(
    ("selection", "record", "accepted"),
    [
        (Selection(partitions=frozenset({1})), rec(partition=1), True),
        (Selection(partitions=frozenset({1})), rec(partition=0), False),
        (Selection(partitions=frozenset({1})), rec(partition=None), False),
        (Selection(start_offset=5), rec(offset=5), True),
        (Selection(start_offset=6), rec(offset=5), False),
        (Selection(end_offset=6), rec(offset=5), True),
        (Selection(end_offset=5), rec(offset=5), False),
        (Selection(end_offset=5), rec(offset=None), False),
        (Selection(since_ms=1000), rec(timestamp=1000), True),
        (Selection(since_ms=1001), rec(timestamp=1000), False),
        (Selection(until_ms=1001), rec(timestamp=1000), True),
        (Selection(until_ms=1000), rec(timestamp=1000), False),
        (Selection(since_ms=0), rec(timestamp=None), False),
    ],
)
def test_selection_bounds_are_half_open(
    selection: Selection, record: ReplayRecord, accepted: bool
) -> None:
    assert selection.accepts(record) is accepted


def test_partition_bounds_take_the_tightest_of_every_limit() -> None:
    everything = partition_bounds(beginning=3, end=100, selection=Selection())
    assert everything == (3, 100)
    offsets = partition_bounds(
        beginning=3, end=100, selection=Selection(start_offset=10, end_offset=20)
    )
    assert offsets == (10, 20)
    times = partition_bounds(
        beginning=0, end=100, selection=Selection(), since_offset=40, until_offset=60
    )
    assert times == (40, 60)
    resumed = partition_bounds(
        beginning=0, end=100, selection=Selection(start_offset=10), resume_next=55
    )
    assert resumed == (55, 100)
    beyond = partition_bounds(beginning=0, end=10, selection=Selection(end_offset=50))
    assert beyond == (0, 10)


def test_the_pacer_spaces_messages_at_the_rate() -> None:
    pacer = Pacer(10.0)
    assert pacer.delay(0, now=100.0) == 0.0
    assert pacer.delay(1, now=100.0) == pytest.approx(0.1)
    assert pacer.delay(5, now=100.2) == pytest.approx(0.3)
    assert pacer.delay(5, now=101.0) == 0.0  # behind schedule: no wait, no burst debt
    assert Pacer(None).delay(10_000, now=0.0) == 0.0
    with pytest.raises(UsageError):
        Pacer(0)


def test_a_checkpoint_round_trips_and_knows_where_to_carry_on(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    checkpoint = Checkpoint("topic:a", "file:b", {"0": 41, "3": 7}, target_bytes=1234, copied=49)
    checkpoint.save(path)
    loaded = Checkpoint.load(path)
    assert loaded == checkpoint
    assert loaded.next_position("0") == 42
    assert loaded.next_position("1") is None
    assert not path.with_name("cp.json.tmp").exists()


def test_a_missing_or_broken_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="no checkpoint"):
        Checkpoint.load(tmp_path / "nothing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(ToolError, match="unreadable"):
        Checkpoint.load(broken)


def test_each_source_and_target_has_its_own_checkpoint() -> None:
    a = default_checkpoint_path("topic:x", "file:y")
    assert a == default_checkpoint_path("topic:x", "file:y")
    assert a != default_checkpoint_path("topic:x", "file:z")


def test_inbound_destinations_are_refused_without_the_flag() -> None:
    with pytest.raises(UsageError, match="--allow-inbound"):
        refuse_inbound(["t1.mash.contacts.v1", "t1.mash.inbound.referrals.v1"], False)
    refuse_inbound(["t1.mash.inbound.referrals.v1"], True)
    refuse_inbound(["t1.mash.contacts.v1"], False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-05", 1_767_571_200_000),
        ("2026-01-05T00:00:00Z", 1_767_571_200_000),
        ("2026-01-05T01:00:00+01:00", 1_767_571_200_000),
        ("2026-01-05T00:00:00", 1_767_571_200_000),
        ("1767571200000", 1_767_571_200_000),
    ],
)
def test_times_are_read_in_several_forms(text: str, expected: int) -> None:
    assert parse_instant(text) == expected


def test_an_unreadable_time_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="cannot read time"):
        parse_instant("next tuesday")
