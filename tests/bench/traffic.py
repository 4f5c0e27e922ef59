"""Benchmark traffic: the project's simulator (``mash simulate``: police notifications and
referrals about realistic households, about 1% bad messages) published the way
``mash simulate --to-kafka`` publishes it, and ``mash replay`` of inbound topics.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mash.jsonl import ReplayRecord
from mash.replay import publish_records
from mash.simulation import SimulationRequest, generate, load_calibration
from services.common.topics import INBOUND_POLICE, INBOUND_REFERRALS
from services.common.topology import load_topology
from tests.support import REPO

INBOUND = (INBOUND_POLICE, INBOUND_REFERRALS)
#: How long one ``mash replay`` may take before the benchmark gives up on it.
REPLAY_TIMEOUT = 600.0


@dataclass(frozen=True)
class Traffic:
    """Simulated records and how many of them are valid contacts (the rest are bad
    messages built to be dead-lettered)."""

    records: list[ReplayRecord]
    contacts: int


def today_start() -> datetime:
    """Midnight UTC today: ``mash simulate --start today``."""
    now = datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC)


def simulate(count: int, *, seed: int, start: datetime, topology: str = "two-hubs") -> Traffic:
    """``count`` contacts from the simulator over one week from ``start``, plus its bad
    messages (the calibration's rate), in simulated receive order."""
    request = SimulationRequest(seed=seed, start=start, weeks=1.0, count=count)
    simulated = generate(request, load_calibration(), load_topology(topology))
    return Traffic([s.record for s in simulated], sum(s.kind != "bad" for s in simulated))


def simulate_now(count: int, seed: int) -> Traffic:
    """Contacts dated this week (``--start today``): statutory clocks run from now."""
    return simulate(count, seed=seed, start=today_start())


def simulate_historical(count: int, seed: int) -> Traffic:
    """The same traffic a year ago, as a replay of old records presents it."""
    return simulate(count, seed=seed, start=today_start() - timedelta(days=365))


async def publish(bootstrap: str, prefix: str, traffic: Traffic, rate: float | None = None) -> None:
    """Publish ``traffic`` to the inbound topics under ``prefix`` (``rate``: messages a
    second, else as fast as the broker takes them); records are stamped by the producer's
    clock at sending, as ``mash simulate --to-kafka`` does."""
    await publish_records([bootstrap], traffic.records, prefix=prefix, rate=rate)


def start_replay(
    bootstrap: str, source_prefix: str, target_prefix: str, topic: str, checkpoint: Path
) -> subprocess.Popen[str]:
    """``mash replay`` of one inbound topic from ``source_prefix`` into ``target_prefix``,
    as a process of its own."""
    command = [
        sys.executable,
        "-m",
        "mash",
        "replay",
        "--bootstrap-servers",
        bootstrap,
        "--from-topic",
        topic,
        "--to-topic",
        topic,
        "--source-prefix",
        source_prefix,
        "--target-prefix",
        target_prefix,
        "--allow-inbound",
        "--checkpoint",
        str(checkpoint),
        "--no-progress",
    ]
    return subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


async def replay_inbound(
    bootstrap: str, source_prefix: str, target_prefix: str, work: Path
) -> None:
    """Replay both inbound topics at once (one ``mash replay`` each); fail on an error."""
    procs = [
        start_replay(bootstrap, source_prefix, target_prefix, t, work / f"{t}.checkpoint.json")
        for t in INBOUND
    ]
    try:
        for topic, proc in zip(INBOUND, procs, strict=True):
            out, _ = await asyncio.to_thread(proc.communicate, timeout=REPLAY_TIMEOUT)
            if proc.returncode != 0:
                raise RuntimeError(f"mash replay of {topic} failed ({proc.returncode}): {out}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
