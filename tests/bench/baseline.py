"""The transport's ceiling: a raw aiokafka relay of the pipeline's shape, no logic.

``topic0 -> topic1 -> topic2 -> topic3 -> topic4``: four consume -> produce hops, all in
this one process and event loop, each hop a consumer group that reads a batch, sends
every record on with an idempotent ``acks=all`` producer, waits for the acknowledgements
and then commits its offsets (as the services do, minus the database). Messages of about
1 KB, keyed over 4 partitions like the product's topics. Fresh topic names every run.

The figure: messages a second end to end, from the first send on ``topic0`` to the last
message read from ``topic4`` (one clock: this process's).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

HOPS = 4
PARTITIONS = 4
MESSAGE_BYTES = 1024
#: How long the relay may take before the benchmark gives up.
RELAY_TIMEOUT = 300.0


@dataclass(frozen=True)
class RelayResult:
    """Messages relayed and the seconds from first publish to last arrival."""

    messages: int
    seconds: float

    @property
    def per_second(self) -> float:
        """Messages a second end to end."""
        return self.messages / self.seconds


def _producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)


def _consumer(bootstrap: str, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


async def _hop(consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, target: str) -> None:
    """Relay forever: batch in, sent on, acknowledged, committed."""
    while True:
        batches = await consumer.getmany(timeout_ms=200, max_records=500)
        futures = [
            await producer.send(target, m.value, key=m.key)
            for records in batches.values()
            for m in records
        ]
        if futures:
            await asyncio.gather(*futures)
            await consumer.commit()


async def _sink(consumer: AIOKafkaConsumer, expected: int) -> None:
    """Read ``expected`` messages from the last topic."""
    seen = 0
    while seen < expected:
        batches = await consumer.getmany(timeout_ms=200, max_records=1000)
        seen += sum(len(records) for records in batches.values())


async def _wait_assigned(consumers: list[AIOKafkaConsumer], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(len(c.assignment()) == PARTITIONS for c in consumers):
        if time.monotonic() > deadline:
            raise TimeoutError(f"relay consumers not assigned after {timeout:.0f}s")
        # Polling makes the group join progress; nothing is on the topics yet.
        await asyncio.gather(*(c.getmany(timeout_ms=100) for c in consumers))


async def run_relay(bootstrap: str, messages: int) -> RelayResult:
    """Publish ``messages`` on topic0 and relay them to topic4; measure end to end."""
    run = f"bench-relay-{uuid.uuid4().hex[:8]}"
    topics = [f"{run}.topic{n}" for n in range(HOPS + 1)]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    consumers: list[AIOKafkaConsumer] = []
    producers: list[AIOKafkaProducer] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        await admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in topics])
        consumers = [_consumer(bootstrap, t, f"{run}-hop{n}") for n, t in enumerate(topics)]
        producers = [_producer(bootstrap) for _ in range(HOPS + 1)]
        for client in (*consumers, *producers):
            await client.start()
        await _wait_assigned(consumers)
        tasks = [
            asyncio.create_task(_hop(consumers[n], producers[n + 1], topics[n + 1]))
            for n in range(HOPS)
        ]
        sink = asyncio.create_task(_sink(consumers[HOPS], messages))
        payload = os.urandom(MESSAGE_BYTES // 2).hex().encode()  # ~1 KB of text
        started = time.time()
        futures = [
            await producers[0].send(topics[0], payload, key=f"k{n}".encode())
            for n in range(messages)
        ]
        await asyncio.gather(*futures)
        try:
            await asyncio.wait_for(sink, RELAY_TIMEOUT)
        except TimeoutError:
            raise TimeoutError(
                f"relay: not all on the last topic after {RELAY_TIMEOUT:.0f}s"
            ) from None
        return RelayResult(messages, time.time() - started)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in (*consumers, *producers):
            with contextlib.suppress(Exception, asyncio.CancelledError):  # a cancelled hop
                await client.stop()
        try:
            await admin.delete_topics(topics)
        finally:
            await admin.close()
