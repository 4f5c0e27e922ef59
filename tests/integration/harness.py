"""One service as a real process on the real broker and database, in an isolated world of
its own: CloudEvents go in through a shared producer, and the test can see what became of
each record (inbox outcome, duplicate or dead letter), the outbox, the topics and /metrics.

The per-service harnesses (intake, screening, routing, notifications) subclass
:class:`ServiceUnderTest` and add only what is theirs: builders of their input, and views of
their own tables."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

from aiokafka import AIOKafkaProducer

from deploy.local.pipeline import ServiceProcesses
from schemas.base import ContractModel
from schemas.cloudevents import encode_binary, encode_structured
from services.common.ids import derive_id
from tests.support import (
    Isolated,
    Record,
    Stack,
    fetch,
    free_port,
    isolated_world,
    read_topic,
    wait_until,
)

T = TypeVar("T")


def write_clock(path: Path, now: datetime) -> None:
    """Write a service's "now" (atomically: the process never reads half a file)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(now.astimezone(UTC).isoformat())
    os.replace(tmp, path)


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` with exactly ``labels`` in Prometheus text
    exposition, or None if there is none."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        metric, _, rest = series.partition("{")
        found = dict(part.split("=", 1) for part in rest.rstrip("}").split(",") if "=" in part)
        if metric == name and {k: v.strip('"') for k, v in found.items()} == labels:
            return float(value)
    return None


def metric_value(text: str, name: str, **labels: str) -> float:
    """Like :func:`sample`, but 0 if absent (a counter nothing has incremented yet)."""
    value = sample(text, name, **labels)
    return 0.0 if value is None else value


@dataclass(frozen=True)
class Handled:
    """What a service did with one record: its inbox outcome (and the event's id), its
    dead-letter reason, or that it skipped it as a repeated event id."""

    outcome: str | None = None
    dead_letter: str | None = None
    duplicate: bool = False
    event_id: str | None = None


class ServiceUnderTest:
    """A running process of :attr:`service` in its own world, with a producer to feed it."""

    #: The service's package (``python -m services.<service>``), set by each subclass.
    service: ClassVar[str]

    def __init__(
        self, world: Isolated, run_dir: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.world = world
        self.run_dir = run_dir
        #: Where the service reads "now" when started with one (``MASH_CLOCK_FILE``).
        self.clock_file = run_dir / "clock"
        self.metrics_port = free_port()
        world.extra_env.update({"MASH_METRICS_PORT": str(self.metrics_port), **(env or {})})
        # Each service under its own database role, as in production.
        self.processes = ServiceProcesses(world.env(), run_dir=run_dir, role_env=world.role_env())
        self.producer: AIOKafkaProducer | None = None
        self._sent = 0

    @classmethod
    async def start(
        cls,
        stack: Stack,
        run_dir: Path,
        *,
        topology: str = "two-hubs",
        env: Mapping[str, str] | None = None,
        now: datetime | None = None,
    ) -> Self:
        """A new world (topics, empty database) with the service running in it (``env``:
        extra settings; ``now``: the service's clock, frozen there until :meth:`set_clock`
        moves it, else real time)."""
        extra = dict(env or {})
        if now is not None:
            write_clock(run_dir / "clock", now)
            extra["MASH_CLOCK_FILE"] = str(run_dir / "clock")
        world = await isolated_world(stack, topology=topology, extra_env=extra)
        harness = cls(world, run_dir)
        harness.processes.start(cls.service)
        harness.producer = AIOKafkaProducer(
            bootstrap_servers=stack.bootstrap, acks="all", enable_idempotence=True
        )
        await harness.producer.start()
        return harness

    async def stop(self) -> None:
        """Stop the process and the producer; print the end of the service's log."""
        if self.producer is not None:
            await self.producer.stop()
        self.processes.stop_all()
        if tail := self.log_tail(20):
            print(f"--- {self.service}.log (last lines)", tail, sep="\n")

    def set_clock(self, now: datetime) -> None:
        """Move the service's "now" (started with ``now``)."""
        write_clock(self.clock_file, now)

    def kill(self) -> None:
        """SIGKILL the process: no graceful commit, no flush."""
        self.processes.stop(self.service, kill=True)

    def restart(self, *, kill: bool = False) -> None:
        """Stop the process (SIGKILL if ``kill``: a crash) unless it is down; start it again."""
        self.processes.stop(self.service, kill=kill)
        self.processes.start(self.service)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the service's log (printed when a wait times out)."""
        log = self.run_dir / "logs" / f"{self.service}.log"
        if not log.exists():
            return ""
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    async def wait(self, check: Callable[[], Awaitable[T | None]], timeout: float, what: str) -> T:
        """:func:`tests.support.wait_until`, printing the end of the log if it times out."""
        try:
            found = await wait_until(check, timeout=timeout, what=what)
        except AssertionError:
            print(self.log_tail())
            raise
        assert found is not None
        return found

    @property
    def group(self) -> str:
        """The service's consumer group (the Faust app id) in this world."""
        return f"mash-{self.service}-" + self.world.prefix.rstrip(".")

    # --- input ---------------------------------------------------------------------------

    async def send_raw(
        self,
        topic: str,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        key: bytes | None = None,
    ) -> tuple[int, int]:
        """Publish one record to contract topic ``topic``; return (partition, offset)."""
        assert self.producer is not None
        meta = await self.producer.send_and_wait(
            self.world.topics(topic), value, key=key, headers=headers
        )
        return meta.partition, meta.offset

    async def send(
        self,
        topic: str,
        payload: ContractModel,
        *,
        key: str | bytes | None = None,
        event_id: str | None = None,
        source: str | None = None,
        structured: bool = False,
    ) -> tuple[int, int]:
        """Publish a CloudEvent carrying ``payload`` (a fresh id unless one is given) from
        ``urn:test:<service>`` unless another ``source`` is given."""
        self._sent += 1
        encode = encode_structured if structured else encode_binary
        value, headers = encode(
            event_id=event_id or derive_id(f"{self.service}-test", self.world.prefix, self._sent),
            source=source or f"urn:test:{self.service}",
            data=payload,
            time=datetime.now(UTC),
        )
        return await self.send_raw(
            topic, value, headers, key.encode() if isinstance(key, str) else key
        )

    # --- what the service did ------------------------------------------------------------

    async def handled(
        self, topic: str, partition: int, offset: int, timeout: float = 60
    ) -> Handled:
        """Wait until the service has dealt with the record at these coordinates."""
        name = self.world.topics(topic)
        dsn = self.world.dsn

        async def look() -> Handled | None:
            dead = await fetch(
                dsn,
                'SELECT reason FROM dead_letters WHERE original_topic = $1 AND "partition" = $2'
                ' AND "offset" = $3',
                name,
                partition,
                offset,
            )
            if dead:
                return Handled(dead_letter=dead[0]["reason"])
            done = await fetch(
                dsn,
                "SELECT event_id, outcome FROM processed_events WHERE service = $1"
                ' AND topic = $2 AND "partition" = $3 AND "offset" = $4 AND outcome <> $5',
                self.service,
                name,
                partition,
                offset,
                "pending",
            )
            if done:
                return Handled(outcome=done[0]["outcome"], event_id=done[0]["event_id"])
            dup = await fetch(
                dsn,
                "SELECT 1 FROM audit_log WHERE service = $1 AND action = 'duplicate_event_id'"
                " AND detail->>'topic' = $2 AND (detail->>'partition')::int = $3"
                " AND (detail->>'offset')::bigint = $4",
                self.service,
                name,
                partition,
                offset,
            )
            return Handled(duplicate=True) if dup else None

        return await self.wait(
            look, timeout, f"{self.service} to handle {name}@{partition}:{offset}"
        )

    async def outcome(self, event_id: str, timeout: float = 60) -> str:
        """Wait until the service has processed the event with this id; its inbox outcome."""

        async def look() -> str | None:
            rows = await fetch(
                self.world.dsn,
                "SELECT outcome FROM processed_events WHERE service = $1"
                " AND event_id = $2 AND outcome <> 'pending'",
                self.service,
                event_id,
            )
            return None if not rows else str(rows[0]["outcome"])

        return await self.wait(look, timeout, f"{self.service} to handle {event_id}")

    async def outbox_events(self, topic: str, event_id: str) -> list[dict[str, Any]]:
        """The events (their JSON) with this id the service enqueued for contract ``topic``."""
        rows = await fetch(
            self.world.dsn,
            "SELECT value FROM outbox WHERE event_id = $1 AND topic = $2",
            event_id,
            self.world.topics(topic),
        )
        return [json.loads(bytes(r["value"])) for r in rows]

    async def outbox_drained(self) -> None:
        """Wait until every event the service enqueued is on Kafka (before a planned stop)."""

        async def drained() -> bool:
            rows = await fetch(
                self.world.dsn,
                "SELECT count(*) AS n FROM outbox WHERE service = $1 AND published_at IS NULL",
                self.service,
            )
            return bool(rows[0]["n"] == 0)

        await self.wait(drained, 60, f"{self.service}'s outbox to drain")

    async def topic(self, topic: str) -> list[Record]:
        """Every record on a contract topic of this world."""
        return await read_topic(self.world.stack.bootstrap, self.world.topics(topic))

    async def records_until(
        self, topic: str, done: Callable[[list[Record]], bool], timeout: float = 60
    ) -> list[Record]:
        """Re-read contract ``topic`` until ``done(records)`` holds."""

        async def check() -> list[Record] | None:
            records = await self.topic(topic)
            return records if done(records) else None

        return await self.wait(check, timeout, f"records on {topic}")

    def metrics(self) -> str:
        """The process's /metrics text."""
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as r:
            text: str = r.read().decode()
            return text

    def metric(self, name: str, **labels: str) -> float | None:
        """One sample of the process's metrics (None if absent)."""
        return sample(self.metrics(), name, **labels)
