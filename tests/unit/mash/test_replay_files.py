"""The copy loop without a broker: JSONL file to JSONL file, with a selection, the
progress bar, checkpoints and resuming (the same loop serves topics)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.progress import Progress

from mash.errors import UsageError
from mash.jsonl import ReplayRecord, read_jsonl, to_line
from mash.progress import make_progress
from mash.replay import Checkpoint, ReplayOptions, Selection, run_replay

NO_BROKER = ["127.0.0.1:1"]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    records = [
        ReplayRecord(
            "mash.contacts.v1", f"k{i}".encode(), b"v", (("h", b"x"),), i % 2, i // 2, 1000 + i
        )
        for i in range(20)
    ]
    path.write_text("".join(to_line(r) + "\n" for r in records), encoding="utf-8")
    return path


async def test_a_file_is_filtered_into_another_with_a_progress_bar(
    source: Path, tmp_path: Path
) -> None:
    target = tmp_path / "out.jsonl"
    progress: Progress = make_progress(True)
    with progress:
        result = await run_replay(
            ReplayOptions(
                NO_BROKER,
                source_file=source,
                target_file=target,
                checkpoint=tmp_path / "cp.json",
                selection=Selection(since_ms=1005, until_ms=1010),
            ),
            progress,
        )
    assert (result.scanned, result.copied, result.complete) == (20, 5, True)
    assert [r.key for r in read_jsonl(target)] == [f"k{i}".encode() for i in range(5, 10)]
    (task,) = progress.tasks
    assert task.completed == task.total == 20
    saved = Checkpoint.load(tmp_path / "cp.json")
    assert saved.complete
    assert saved.positions == {"line": 19}
    assert saved.target_bytes == target.stat().st_size


async def test_stopping_early_and_resuming_gives_the_same_file(
    source: Path, tmp_path: Path
) -> None:
    whole, pieces = tmp_path / "whole.jsonl", tmp_path / "pieces.jsonl"
    await run_replay(
        ReplayOptions(NO_BROKER, source_file=source, target_file=whole, checkpoint=tmp_path / "a")
    )
    options = ReplayOptions(
        NO_BROKER,
        source_file=source,
        target_file=pieces,
        checkpoint=tmp_path / "b",
        selection=Selection(max_messages=7),
    )
    first = await run_replay(options)
    assert (first.copied, first.complete) == (7, False)
    # Lines written after the checkpoint (a crash) are cut off on resume, not doubled.
    with pieces.open("a", encoding="utf-8") as handle:
        handle.write("half a line that a crash left beh")
    second = await run_replay(
        ReplayOptions(
            NO_BROKER,
            source_file=source,
            target_file=pieces,
            checkpoint=tmp_path / "b",
            resume=True,
        )
    )
    assert (second.copied, second.complete) == (13, True)
    assert pieces.read_bytes() == whole.read_bytes()


async def test_resuming_with_another_source_or_target_is_refused(
    source: Path, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "cp.json"
    await run_replay(
        ReplayOptions(
            NO_BROKER, source_file=source, target_file=tmp_path / "a.jsonl", checkpoint=checkpoint
        )
    )
    with pytest.raises(UsageError, match="is for file:"):
        await run_replay(
            ReplayOptions(
                NO_BROKER,
                source_file=source,
                target_file=tmp_path / "b.jsonl",
                checkpoint=checkpoint,
                resume=True,
            )
        )


async def test_an_existing_target_file_is_kept_unless_overwrite(
    source: Path, tmp_path: Path
) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text("precious\n", encoding="utf-8")
    options = ReplayOptions(
        NO_BROKER, source_file=source, target_file=target, checkpoint=tmp_path / "cp"
    )
    with pytest.raises(UsageError, match="--overwrite"):
        await run_replay(options)
    assert target.read_text(encoding="utf-8") == "precious\n"
    result = await run_replay(
        ReplayOptions(
            NO_BROKER,
            source_file=source,
            target_file=target,
            checkpoint=tmp_path / "cp",
            overwrite=True,
        )
    )
    assert result.copied == 20
