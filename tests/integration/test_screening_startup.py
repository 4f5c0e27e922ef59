"""Start-up checks of the screening process: the rule set, co-partitioning."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.screening.ruleset import RULESETS_DIR
from tests.support import Stack, isolated_world, partitions_of

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_an_invalid_rule_set_stops_screening_at_start_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    text = (RULESETS_DIR / "default-v1.yaml").read_text(encoding="utf-8")
    bad.write_text(text.replace("level: 4\n", "level: 5\n", 1), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "services.screening"],
        cwd=REPO,
        env={
            **os.environ,
            "MASH_SCREENING_RULE_SET": str(bad),
            # Nothing answers here: the rule set must be refused before any connection.
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
            "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
            "MASH_METRICS_PORT": "0",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("screening: invalid rule set: ")
    assert "rule R4-SEX: level must be 1, 2, 3 or 4, got 5" in lines[0]


def test_an_unknown_shipped_rule_set_name_is_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "services.screening"],
        cwd=REPO,
        env={**os.environ, "MASH_SCREENING_RULE_SET": "no-such-v9", "MASH_METRICS_PORT": "0"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "no shipped rule set 'no-such-v9'" in done.stderr


async def test_a_partition_count_that_breaks_co_partitioning_stops_screening(
    stack: Stack,
) -> None:
    world = await isolated_world(stack)  # contacts topic with 4 partitions
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.screening",
        cwd=REPO,
        env={**world.env(), "MASH_PARTITIONS": "2"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), timeout=90)
    assert proc.returncode == 2
    last = err.decode().strip().splitlines()[-1]
    assert last.startswith("screening: topic ")
    assert "has 4 partitions, expected 2 (MASH_PARTITIONS)" in last
    assert "co-partitioned" in last
    changelog = f"mash-screening-{world.prefix.rstrip('.')}-history-changelog"
    assert await partitions_of(stack.bootstrap, changelog) == [0, 1]
