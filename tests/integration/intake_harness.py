"""Intake alone, as a real process on the real broker and database, with a way to learn
what became of each message it was sent (contact, duplicate or dead letter)."""

from __future__ import annotations

import json
import socket
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from deploy.local.pipeline import ServiceProcesses
from schemas.base import ContractModel
from schemas.cloudevents import encode_binary, encode_structured
from services.common.ids import derive_id
from tests.support import Isolated, Stack, fetch, isolated_world, wait_until


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class Fate:
    """What intake did with one message."""

    kind: str  # contact | duplicate_source | duplicate_event_id | dead_letter
    reason: str | None = None
    contact_id: str | None = None


class IntakeUnderTest:
    """A running intake process and its world."""

    def __init__(self, world: Isolated, run_dir: Path) -> None:
        self.world = world
        self.metrics_port = free_port()
        world.extra_env["MASH_METRICS_PORT"] = str(self.metrics_port)
        self.processes = ServiceProcesses(world.env(), run_dir=run_dir)
        self.producer: AIOKafkaProducer | None = None
        self._counter = 0

    @classmethod
    async def start(
        cls, stack: Stack, run_dir: Path, topology: str = "two-hubs"
    ) -> IntakeUnderTest:
        """A new world with intake running in it."""
        harness = cls(await isolated_world(stack, topology=topology), run_dir)
        harness.processes.start("intake")
        harness.producer = AIOKafkaProducer(
            bootstrap_servers=stack.bootstrap, acks="all", enable_idempotence=True
        )
        await harness.producer.start()
        return harness

    async def stop(self) -> None:
        """Stop intake and the producer."""
        if self.producer is not None:
            await self.producer.stop()
        self.processes.stop_all()

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
        event_id: str | None = None,
        source: str = "urn:test:intake",
        structured: bool = False,
        key: bytes | None = None,
    ) -> tuple[int, int]:
        """Publish a CloudEvent carrying ``payload`` (a fresh id unless one is given)."""
        self._counter += 1
        encode = encode_structured if structured else encode_binary
        value, headers = encode(
            event_id=event_id or derive_id("intake-test", self.world.prefix, self._counter),
            source=source,
            data=payload,
            time=datetime.now(UTC),
        )
        return await self.send_raw(topic, value, headers, key)

    async def fate(self, topic: str, partition: int, offset: int, timeout: float = 60) -> Fate:
        """Wait until intake has dealt with the record at these coordinates."""
        name = self.world.topics(topic)
        dsn = self.world.dsn

        async def look() -> Fate | None:
            dead = await fetch(
                dsn,
                'SELECT reason FROM dead_letters WHERE original_topic = $1 AND "partition" = $2'
                ' AND "offset" = $3',
                name,
                partition,
                offset,
            )
            if dead:
                return Fate("dead_letter", reason=dead[0]["reason"])
            done = await fetch(
                dsn,
                "SELECT event_id, outcome FROM processed_events WHERE topic = $1"
                ' AND "partition" = $2 AND "offset" = $3 AND outcome <> $4',
                name,
                partition,
                offset,
                "pending",
            )
            if done:
                if done[0]["outcome"] == "duplicate_source":
                    return Fate("duplicate_source")
                rows = await fetch(
                    dsn,
                    "SELECT contact_id FROM contacts WHERE source_event_id = $1",
                    done[0]["event_id"],
                )
                return Fate("contact", contact_id=rows[0]["contact_id"])
            dup = await fetch(
                dsn,
                "SELECT 1 FROM audit_log WHERE action = 'duplicate_event_id'"
                " AND detail->>'topic' = $1 AND (detail->>'partition')::int = $2"
                " AND (detail->>'offset')::bigint = $3",
                name,
                partition,
                offset,
            )
            if dup:
                return Fate("duplicate_event_id")
            return None

        found = await wait_until(
            look, timeout=timeout, what=f"intake to handle {name}@{partition}:{offset}"
        )
        assert found is not None
        return found

    async def contact(self, contact_id: str) -> dict[str, Any]:
        """The contact event intake emitted (its JSON), read from the outbox."""
        rows = await fetch(
            self.world.dsn,
            "SELECT value FROM outbox WHERE event_id = $1 AND topic = $2",
            contact_id,
            self.world.topics("mash.contacts.v1"),
        )
        assert len(rows) == 1, f"exactly one contact event for {contact_id}"
        body: dict[str, Any] = json.loads(bytes(rows[0]["value"]))
        return body

    def metrics(self) -> str:
        """The intake process's /metrics text."""
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as r:
            text: str = r.read().decode()
            return text
