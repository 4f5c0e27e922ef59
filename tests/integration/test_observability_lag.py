"""Lag from outside the workers: the four services of an isolated world and the lag exporter,
started as ``make run`` starts them. Once routing is killed (SIGKILL, as a crash), its own
lag series go with it, but the exporter keeps reading routing's consumer group from the
broker: the backlog of decisions published meanwhile shows, and grows, on the exporter's
/metrics, with a stall clock running; when routing is back, both return to 0."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from deploy.local.pipeline import LAG_EXPORTER, ServiceProcesses
from services.common.topics import CONTACTS, DECISIONS
from tests.support import (
    Isolated,
    Stack,
    free_port,
    group_caught_up,
    isolated_world,
    run_mash,
    wait_until,
)

pytestmark = pytest.mark.integration


def get(port: int, path: str = "/metrics", method: str = "GET") -> tuple[int, str] | None:
    """(status, body) of ``method path``, or None while nothing listens."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return None


def samples(text: str, name: str, **labels: str) -> dict[str, float]:
    """{partition: value} of the samples of ``name`` whose labels include ``labels``."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        series, _, value = line.rpartition(" ")
        found = dict(
            part.split("=", 1) for part in series[len(name) + 1 : -1].split(",") if "=" in part
        )
        found = {k: v.strip('"') for k, v in found.items()}
        if all(found.get(k) == v for k, v in labels.items()):
            out[found.get("partition", "")] = float(value)
    return out


class Exporter:
    """The lag exporter's /metrics, read for one consumer group on one topic."""

    def __init__(self, port: int, group: str, topic: str) -> None:
        self.port = port
        self.group = group
        self.topic = topic

    def scrape(self) -> str:
        answer = get(self.port)
        return answer[1] if answer and answer[0] == 200 else ""

    def lag(self, text: str) -> dict[str, float]:
        return samples(text, "kafka_consumergroup_lag", consumergroup=self.group, topic=self.topic)

    def committed(self, text: str) -> dict[str, float]:
        return samples(
            text, "kafka_consumergroup_current_offset", consumergroup=self.group, topic=self.topic
        )

    def ends(self, text: str) -> dict[str, float]:
        return samples(text, "kafka_topic_partition_current_offset", topic=self.topic)

    def stalled(self, text: str) -> dict[str, float]:
        return samples(
            text, "mash_consumergroup_stalled_seconds", consumergroup=self.group, topic=self.topic
        )


def simulate(world: Isolated, cwd: Path, seed: int) -> None:
    """Publish a few simulated contacts (new ids for each seed) to the world's inbound topics."""
    done = run_mash(
        world, cwd, "simulate", "--seed", str(seed), "--count", "12", "--to-kafka", "--no-progress"
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.timeout(420)
async def test_the_exporter_shows_a_dead_services_backlog_growing(
    stack: Stack, tmp_path: Path
) -> None:
    world = await isolated_world(stack)
    suffix = "-" + world.prefix.rstrip(".")
    exporter_port, routing_port = free_port(), free_port()
    processes = ServiceProcesses(
        {
            **world.env(),
            "MASH_LAG_EXPORTER_PORT": str(exporter_port),
            "MASH_LAG_EXPORTER_POLL_SECONDS": "1",
        },
        run_dir=tmp_path,
    )
    exporter = Exporter(exporter_port, f"mash-routing{suffix}", world.topics(DECISIONS))
    # Routing on a metrics port of its own, to watch its in-worker series go with it.
    processes.start("routing", extra_env={"MASH_METRICS_PORT": str(routing_port)})
    processes.start_all()
    processes.start(LAG_EXPORTER)
    try:
        simulate(world, tmp_path, seed=41)

        async def routing_caught_up() -> bool:
            text = exporter.scrape()
            lag, ends = exporter.lag(text), exporter.ends(text)
            return (
                bool(exporter.committed(text)) and sum(ends.values()) > 0 and not any(lag.values())
            )

        await wait_until(routing_caught_up, timeout=180, what="routing to commit the decisions")
        before = sum(exporter.ends(exporter.scrape()).values())
        routing_own = get(routing_port)
        assert routing_own is not None
        assert "mash_consumer_lag_messages{" in routing_own[1]

        processes.stop("routing", kill=True)
        assert get(routing_port) is None  # the worker's own lag series died with it
        simulate(world, tmp_path, seed=42)

        async def screening_done() -> bool:
            contacts = world.topics(CONTACTS)
            return await group_caught_up(stack.bootstrap, f"mash-screening{suffix}", [contacts])

        await wait_until(screening_done, timeout=120, what="screening to decide the new contacts")

        seen: list[float] = []

        async def backlog_shown() -> bool:
            text = exporter.scrape()
            waiting = sum(exporter.lag(text).values())
            seen.append(waiting)
            # Every decision published since the kill waits for routing, and is counted.
            return waiting > 0 and waiting == sum(exporter.ends(text).values()) - before

        await wait_until(backlog_shown, timeout=60, what="the exporter to show routing's backlog")
        assert seen[0] <= seen[-1]
        assert max(seen) == seen[-1] > 0
        ready = get(exporter_port, "/readyz")
        assert ready is not None
        assert ready[0] == 200, ready[1]
        assert get(exporter_port, "/readyz", method="HEAD") == (200, "")

        stalls: list[float] = []

        async def stall_clock_runs() -> bool:
            text = exporter.scrape()
            lag = exporter.lag(text)
            lagging = [s for p, s in exporter.stalled(text).items() if lag.get(p, 0) > 0]
            if lagging:
                stalls.append(max(lagging))
            return len(stalls) >= 2 and stalls[-1] > stalls[0] >= 0 and stalls[-1] >= 3

        await wait_until(stall_clock_runs, timeout=60, what="the stall clock to run")

        # Routing back (as a supervisor would): its backlog drains and the clocks stop.
        processes.start("routing", extra_env={"MASH_METRICS_PORT": str(routing_port)})

        async def drained() -> bool:
            text = exporter.scrape()
            lag, stalled = exporter.lag(text), exporter.stalled(text)
            return bool(lag) and not any(lag.values()) and not any(stalled.values())

        await wait_until(drained, timeout=120, what="routing to drain its backlog")
    finally:
        processes.stop_all()
        for log in sorted((tmp_path / "logs").glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-5:]
            print(f"--- {log.name} (last lines)", *tail, sep="\n")
