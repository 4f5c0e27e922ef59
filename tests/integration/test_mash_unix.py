"""``mash`` as a Unix tool against the real broker: ``replay`` with ``-`` on either side
(progress on a terminal never reaching stdout), ``topics`` when its topics are missing
and its ``--json`` keys, and a closed stdout ending every command quietly."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from mash.jsonl import ReplayRecord, read_jsonl
from services.common.kafka import ensure_topics
from services.common.topics import CONTACTS, INBOUND_REFERRALS, TopicSpec
from tests.support import (
    MASH,
    Isolated,
    Stack,
    isolated_world,
    mash_env,
    mash_into_closed_pipe,
    read_exact,
    run_mash,
)

pytestmark = pytest.mark.integration

ROW_KEYS = {"topic", "partitions", "end_offsets", "end_offset_total", "lag"}


@pytest.fixture(scope="module")
async def world(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Isolated:
    """A world with 30 simulated contacts (and their bad messages) on its inbound topics."""
    world = await isolated_world(stack)
    done = run_mash(
        world, tmp_path_factory.mktemp("sim"), "simulate", "--seed", "5", "--count", "30",
        "--to-kafka", "--summary", "none", "--no-progress",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return world


def essence(records: list[ReplayRecord]) -> Counter[tuple[Any, ...]]:
    return Counter((r.key, r.value, r.headers) for r in records)


def with_terminal_stderr(world: Isolated, cwd: Path, *args: str) -> tuple[int, str, bytes]:
    """Run ``mash`` with stderr a terminal (so the progress bar shows) and stdout a pipe."""
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [*MASH, *args],
        cwd=cwd,
        env={**mash_env(world), "TERM": "xterm", "COLUMNS": "120"},
        stdout=subprocess.PIPE,
        stderr=secondary,
        text=True,
    )
    os.close(secondary)
    terminal: list[bytes] = []

    def drain() -> None:  # a full terminal buffer would block the command
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: the command closed its end
                return
            if not chunk:
                return
            terminal.append(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    out, _ = proc.communicate(timeout=120)
    reader.join(timeout=10)
    os.close(primary)
    return proc.returncode, out, b"".join(terminal)


def with_stdin(
    world: Isolated, cwd: Path, text: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """Run ``mash`` in ``world`` with ``text`` on its stdin."""
    return subprocess.run(
        [*MASH, *args],
        cwd=cwd,
        env=mash_env(world),
        input=text,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def into_closed_pipe(world: Isolated, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``mash`` in ``world`` with stdout a pipe whose reader has already gone."""
    return mash_into_closed_pipe(cwd, mash_env(world), *args)


async def test_replay_to_stdout_is_the_file_and_progress_stays_on_the_terminal(
    world: Isolated, tmp_path: Path
) -> None:
    source = ["replay", "--from-topic", INBOUND_REFERRALS]
    done = run_mash(world, tmp_path, *source, "--to-file", "referrals.jsonl", "--no-progress")
    assert done.returncode == 0, done.stderr
    expected = (tmp_path / "referrals.jsonl").read_text()
    assert len(expected.splitlines()) > 10

    code, out, terminal = with_terminal_stderr(world, tmp_path, *source, "--to-file", "-")
    assert code == 0, terminal.decode(errors="replace")
    assert sorted(out.splitlines()) == sorted(expected.splitlines()), "stdout: the JSONL only"
    assert b"msg/s" in terminal, "the progress bar showed, on stderr"
    assert b"copied" in terminal, "the closing line went to stderr too"
    assert not (tmp_path / "-").exists()


async def test_replay_from_stdin_lands_the_records(world: Isolated, tmp_path: Path) -> None:
    target = world.topics(f"scratch-{uuid.uuid4().hex[:8]}")
    await ensure_topics([world.stack.bootstrap], [TopicSpec(target, 2)])
    dump = tmp_path / "referrals.jsonl"
    done = run_mash(
        world, tmp_path, "replay", "--from-topic", INBOUND_REFERRALS, "--to-file", str(dump),
        "--no-progress",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = with_stdin(
        world, tmp_path, dump.read_text(), "replay", "--from-file", "-", "--to-topic", target,
        "--no-progress",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    landed = await read_exact(world.stack.bootstrap, target, 2)
    assert essence(landed) == essence(list(read_jsonl(dump)))


async def test_topics_fails_when_none_of_its_topics_exists_and_lists_partial_worlds(
    stack: Stack, world: Isolated, tmp_path: Path
) -> None:
    nowhere = f"nope{uuid.uuid4().hex[:6]}."
    done = run_mash(world, tmp_path, "topics", "--prefix", nowhere)
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("mash: error: none of the product's")
    assert repr(nowhere) in line
    assert done.stdout == ""

    partial = f"p{uuid.uuid4().hex[:6]}."
    await ensure_topics([stack.bootstrap], [TopicSpec(partial + CONTACTS, 2)])
    done = run_mash(world, tmp_path, "topics", "--prefix", partial, "--json")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["prefix"] == partial
    present = [row["topic"] for row in body["topics"] if row["partitions"] is not None]
    assert present == [partial + CONTACTS]
    assert len(body["topics"]) > 1, "the missing ones are listed too"
    table = run_mash(world, tmp_path, "topics", "--prefix", partial)
    assert table.returncode == 0, table.stderr
    assert "missing" in table.stdout


async def test_topics_json_has_the_documented_keys(world: Isolated, tmp_path: Path) -> None:
    done = run_mash(world, tmp_path, "topics", "--json")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert set(body) == {"prefix", "topics"}
    assert body["prefix"] == world.prefix
    assert all(set(row) == ROW_KEYS for row in body["topics"])
    assert all(row["partitions"] == 4 for row in body["topics"])


@pytest.mark.parametrize(
    "args",
    [
        ["topics", "--json"],
        ["topics"],
        ["replay", "--from-topic", INBOUND_REFERRALS, "--to-file", "-", "--no-progress"],
        ["replay", "--from-topic", INBOUND_REFERRALS, "--to-file", "x.jsonl", "--no-progress"],
    ],
)
async def test_a_closed_stdout_ends_the_command_quietly_with_141(
    args: list[str], world: Isolated, tmp_path: Path
) -> None:
    done = into_closed_pipe(world, tmp_path, *args)
    assert done.returncode == 141, done.stderr
    assert "Traceback" not in done.stderr
    assert "BrokenPipe" not in done.stderr
