"""What the fault scenarios share: a private stack they may break, a pipeline started the
way ``make run`` starts it (one process per worker), traffic from ``mash simulate`` with
hostile messages mixed in, and waiting for the pipeline to drain.

The suite runs its own Kafka broker and PostgreSQL (``deploy/local/stack.py`` with other
ports and another run folder), so stopping or killing them never touches the servers the
rest of the test session uses.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
from aiokafka import AIOKafkaProducer

from deploy.local.pipeline import PROGRESS_SQL, SERVICES, ServiceProcesses, simulated_event_ids
from tests.faults.tally import Expected
from tests.support import (
    REPO,
    Isolated,
    Stack,
    fetchval,
    free_port,
    group_caught_up,
    start_mash,
    wait_until,
)

if TYPE_CHECKING:
    from tests.faults.corpus import Hostile

STACK_SCRIPT = REPO / "deploy/local/stack.py"
#: Ports and run folder of the suite's own stack (the session's stack keeps the defaults).
FAULT_STACK_ENV = {
    "MASH_KAFKA_PORT": "29092",
    "MASH_KAFKA_CONTROLLER_PORT": "29093",
    "MASH_PG_PORT": "54339",
    "MASH_RUN_DIR": "/dev/shm/mash-router-faults"
    if Path("/dev/shm").is_dir()
    else str(Path.home() / ".cache/mash-router/faults"),
}
#: How long a drain may take before the scenario fails.
DRAIN_TIMEOUT = 420.0


@dataclass(frozen=True)
class FaultStack:
    """The suite's private broker and database, stopped and started by the stack script."""

    bootstrap: str
    dsn: str

    @staticmethod
    def env() -> dict[str, str]:
        """Environment of the stack script for the private stack (never an external one)."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")
        }
        return {**env, **FAULT_STACK_ENV}

    @classmethod
    def script(cls, *args: str) -> None:
        """Run ``deploy/local/stack.py ARGS`` on the private stack."""
        subprocess.run(
            [sys.executable, str(STACK_SCRIPT), *args],
            env=cls.env(),
            check=True,
            timeout=240,
        )

    @classmethod
    def up(cls, *, reset: bool = False) -> FaultStack:
        """Start whatever of the private stack is not running; wait until both answer."""
        cls.script("up", "--fast", *(["--reset"] if reset else []))
        port = FAULT_STACK_ENV
        return cls(
            f"127.0.0.1:{port['MASH_KAFKA_PORT']}",
            f"postgresql://mash@127.0.0.1:{port['MASH_PG_PORT']}/mash",
        )

    def stop_kafka(self, *, kill: bool = False) -> None:
        """Stop the broker: SIGTERM (a graceful stop, as in a rolling upgrade) or SIGKILL."""
        self.script("stop", "kafka", *(["--kill"] if kill else []))

    def stop_postgres(self) -> None:
        """Stop PostgreSQL (``pg_ctl stop -m fast``: sessions are cut off)."""
        self.script("stop", "postgres")

    def down(self) -> None:
        """Stop both."""
        self.script("down")

    @property
    def as_stack(self) -> Stack:
        """The same addresses in the shape the shared test helpers take."""
        return Stack(self.bootstrap, self.dsn)


@dataclass
class Pipeline:
    """The workers of one scenario: ``intake``, ``screening-2``... each its own process with
    its own metrics port, started exactly as ``make run`` starts a service."""

    world: Isolated
    run_dir: Path
    processes: ServiceProcesses = field(init=False)
    ports: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        env = {**self.world.env(), "MASH_HEALTH_PROBE_SECONDS": "1"}
        self.processes = ServiceProcesses(env, run_dir=self.run_dir)

    def start(self, worker: str) -> None:
        """Start ``worker`` (again, after a crash, on the same port)."""
        port = self.ports.setdefault(worker, free_port())
        self.processes.start(worker, {"MASH_METRICS_PORT": str(port)})

    def start_all(self, workers: Sequence[str] = SERVICES) -> None:
        """Start every worker in ``workers``."""
        for worker in workers:
            self.start(worker)

    def kill(self, worker: str) -> None:
        """SIGKILL ``worker``: no graceful commit, no flush."""
        self.processes.stop(worker, kill=True)

    def workers(self) -> list[str]:
        """Every worker started so far."""
        return sorted(self.ports)

    def alive(self) -> dict[str, bool]:
        """Whether each worker's process runs."""
        return {w: self.processes.running_pid(w) is not None for w in self.workers()}

    def readiness(self, worker: str) -> int:
        """HTTP status of the worker's /readyz (0 when it does not answer)."""
        url = f"http://127.0.0.1:{self.ports[worker]}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                status: int = response.status
                return status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0

    async def all_ready(self, workers: Sequence[str] | None = None) -> bool:
        """Whether every worker (or those named) answers /readyz with 200."""
        names = self.workers() if workers is None else workers
        statuses = await asyncio.gather(*(asyncio.to_thread(self.readiness, w) for w in names))
        return all(s == 200 for s in statuses)

    def stop_all(self) -> None:
        """Stop every worker gracefully."""
        self.processes.stop_all()

    def log_tails(self, lines: int = 12) -> Iterator[str]:
        """The last lines of each worker's log (printed when a scenario fails)."""
        for log in sorted((self.run_dir / "logs").glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            yield f"--- {log.name}\n" + "\n".join(tail)


@dataclass(frozen=True)
class Traffic:
    """Simulated contacts (``mash simulate``) and hostile messages for one scenario."""

    seed: int
    contacts: int
    rate: float
    hostile: tuple[Hostile, ...] = ()
    #: Bad messages of the simulator's own per contact (None: the calibration's rate).
    bad_rate: float | None = None

    def expected(self, topology: str) -> Expected:
        """The valid event ids ``mash simulate`` sends and how many messages must be
        dead-lettered (its own bad ones plus the hostile ones)."""
        ids, bad = simulated_event_ids(self.seed, self.contacts, topology, self.bad_rate)
        return Expected(tuple(ids), bad + len(self.hostile))

    async def send(self, world: Isolated, cwd: Path) -> None:
        """Publish it all: ``mash simulate --to-kafka --rate`` in a process of its own, the
        hostile messages from here at the same pace, interleaved; return when both are in."""
        simulate = start_mash(
            world,
            cwd,
            "simulate",
            "--seed",
            str(self.seed),
            "--count",
            str(self.contacts),
            "--to-kafka",
            "--rate",
            str(self.rate),
            "--no-progress",
            "--summary",
            "none",
            *([] if self.bad_rate is None else ["--bad-rate", str(self.bad_rate)]),
        )
        seconds = self.contacts / self.rate
        await send_hostile(world, self.hostile, pace=len(self.hostile) / seconds)
        out, err = await asyncio.to_thread(simulate.communicate, timeout=seconds + 120)
        assert simulate.returncode == 0, f"mash simulate failed: {err}{out}"


async def send_hostile(world: Isolated, hostile: Sequence[Hostile], pace: float) -> None:
    """Publish hostile messages at about ``pace`` a second (as fast as it goes when 0)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=world.stack.bootstrap,
        acks="all",
        enable_idempotence=True,
        max_request_size=4 * 1024 * 1024,
    )
    await producer.start()
    try:
        started = time.monotonic()
        for n, h in enumerate(hostile):
            # aiokafka refuses a record with neither key nor value (other clients send it):
            # an empty key keeps the null value, which is what the message is about.
            key = b"" if h.key is None and h.value is None else h.key
            await producer.send(world.topics(h.topic_name), h.value, key=key, headers=h.headers)
            if pace > 0:
                ahead = started + n / pace - time.monotonic()
                if ahead > 0:
                    # Pacing, not synchronisation: it spreads the poison over the stream.
                    await asyncio.sleep(ahead)
        await producer.flush()
    finally:
        await producer.stop()


async def drained(world: Isolated, expected: Expected) -> bool:
    """Every valid contact travelled the whole way, every bad message is a dead letter,
    every outbox row is on Kafka and every consumer group has committed its input."""
    try:
        done = await fetchval(world.dsn, PROGRESS_SQL, list(expected.event_ids))
        letters = await fetchval(world.dsn, "SELECT count(*) FROM dead_letters")
        pending = await fetchval(
            world.dsn, "SELECT count(*) FROM outbox WHERE published_at IS NULL"
        )
    except (OSError, asyncpg.PostgresError):
        return False  # the database is still coming back
    if done < len(expected.event_ids) or letters < expected.bad or pending:
        return False
    return await all_groups_caught_up(world)


async def all_groups_caught_up(world: Isolated) -> bool:
    """Whether each service's consumer group has committed the end of its input topics."""
    suffix = world.env()["MASH_GROUP_SUFFIX"]
    inputs = {
        "intake": ("mash.inbound.police-notifications.v1", "mash.inbound.referrals.v1"),
        "screening": ("mash.contacts.v1",),
        "routing": ("mash.decisions.v1",),
        "notifications": ("mash.contacts.v1", "mash.routed.v1"),
    }
    for service, topics in inputs.items():
        names = [world.topics(t) for t in topics]
        if not await group_caught_up(world.stack.bootstrap, f"mash-{service}{suffix}", names):
            return False
    return True


async def wait_drained(world: Isolated, expected: Expected) -> float:
    """Wait until the scenario has drained; return how long it took (seconds)."""
    started = time.monotonic()

    async def check() -> bool:
        return await drained(world, expected)

    await wait_until(check, timeout=DRAIN_TIMEOUT, what="the pipeline to drain")
    return time.monotonic() - started


def kill_schedule(
    seed: int, kills: int, window: float, workers: Sequence[str]
) -> list[tuple[float, str]]:
    """``kills`` (moment, worker) pairs spread at random over ``window`` seconds, seeded."""
    rng = random.Random(seed)
    moments = sorted(rng.uniform(1.0, window) for _ in range(kills))
    return [(m, rng.choice(list(workers))) for m in moments]
