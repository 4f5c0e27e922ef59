"""The health probe: consumer lag per assigned topic-partition, commit progress, and whether
the broker and the database answer — measured inside the service's event loop.

Lag is ``highwater - committed`` with both ends asked of the broker each round: the end
offsets through a group-less consumer, the group's committed offsets through the admin
client. Faust's own view (the fetcher's highwater) stops moving exactly when a partition is
paused or the consumer stalls (docs/kafka-faust-notes.md), so it would hide the lag it should
show. Which partitions to measure is Faust's current assignment, so each worker of a
consumer group reports only its own partitions and a sum over workers counts each once.
These series serve the worker's own /readyz and vanish with it; the lag exporter
(:mod:`mash.lag_exporter`) measures the groups from outside, for the alerts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg
import faust
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.common.health import HealthState, PartitionState, ProbeSnapshot
from services.common.kafka_security import PLAINTEXT

log = structlog.get_logger(__name__)

#: How often the event-loop heartbeat ticks (seconds).
HEARTBEAT_SECONDS = 1.0


def assigned_partitions(app: faust.App) -> list[TopicPartition]:
    """The partitions of Faust's current assignment that agents consume, sorted; empty
    before the consumer has started.

    Table changelog partitions are left out: Faust reads them to rebuild tables, never
    commits them in the group, so "highwater - committed" would be their whole length.
    """
    # Before the first assignment there is nothing to measure; asking earlier would make
    # Faust build its consumer ahead of its own start-up order.
    if not app.started or app.consumer_generation_id <= 0:
        return []
    try:
        tps = app.consumer.assignment()
        changelogs = app.tables.changelog_topics
    # The consumer thread may not exist yet, or may be mid-rebalance (set changing size).
    except Exception:
        return []
    return sorted(
        TopicPartition(tp.topic, tp.partition) for tp in tps if tp.topic not in changelogs
    )


def progress(
    previous: Mapping[TopicPartition, PartitionState],
    tp: TopicPartition,
    committed: int | None,
    now: float,
) -> float:
    """When the committed offset of ``tp`` last moved: now if it moved (or ``tp`` is newly
    assigned), else the instant recorded before."""
    before = previous.get(tp)
    if before is None or (committed is not None and committed != before.committed):
        return now
    return before.last_progress


class ConsumerProbe:
    """Measures one service process every ``interval`` seconds and publishes the snapshot."""

    def __init__(
        self,
        app: faust.App,
        state: HealthState,
        *,
        bootstrap_servers: list[str],
        group_id: str,
        pool: Callable[[], asyncpg.Pool | None],
        interval: float,
        timeout: float,
        security: Mapping[str, Any] = PLAINTEXT,
    ) -> None:
        self.app = app
        self.state = state
        self.bootstrap_servers = bootstrap_servers
        self.group_id = group_id
        self.pool = pool
        self.interval = interval
        self.timeout = timeout
        self._kafka = OffsetClients(bootstrap_servers, timeout, security=security)
        self._partitions: dict[TopicPartition, PartitionState] = {}

    async def heartbeat(self) -> None:
        """Tell the health state the loop turns, every second, until cancelled."""
        while True:
            self.state.beat()
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def run(self) -> None:
        """Measure and publish until cancelled; a failing round is reported, never raised."""
        while True:
            try:
                self.state.publish(await self.measure())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug here must not take the service down
                log.warning("health_probe_failed", error_type=type(exc).__name__)
            await asyncio.sleep(self.interval)

    async def _bounded(self, call: Awaitable[object]) -> object:
        return await asyncio.wait_for(call, self.timeout)

    async def _database(self) -> tuple[bool, str | None]:
        pool = self.pool()
        if pool is None:
            return False, "not connected yet"
        try:
            async with pool.acquire(timeout=self.timeout) as conn:
                await conn.fetchval("SELECT 1", timeout=self.timeout)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            return False, f"unreachable ({type(exc).__name__})"
        return True, None

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        return await self._kafka.started()

    async def _broker(
        self, tps: list[TopicPartition]
    ) -> tuple[dict[TopicPartition, tuple[int, int | None, int]], str | None]:
        """(end, committed, log start) per partition, or an error word when unreachable."""
        try:
            admin, offsets = await self._clients()
            # An empty assignment still proves the broker answers a metadata round trip.
            if not tps:
                await self._bounded(admin.describe_cluster())
                return {}, None
            ends = await asyncio.wait_for(offsets.end_offsets(tps), self.timeout)
            starts = await asyncio.wait_for(offsets.beginning_offsets(tps), self.timeout)
            committed = await asyncio.wait_for(
                admin.list_consumer_group_offsets(self.group_id, partitions=tps), self.timeout
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return {}, f"unreachable ({type(exc).__name__})"
        measured: dict[TopicPartition, tuple[int, int | None, int]] = {}
        for tp in tps:
            meta = committed.get(tp)
            # Kafka answers -1 for a partition the group has never committed.
            done = meta.offset if meta is not None and meta.offset >= 0 else None
            measured[tp] = (ends[tp], done, starts[tp])
        return measured, None

    async def measure(self) -> ProbeSnapshot:
        """One round: assignment, offsets, database ping."""
        tps = assigned_partitions(self.app)
        (measured, broker_error), (db_ok, db_error) = await asyncio.gather(
            self._broker(tps), self._database()
        )
        now = time.monotonic()
        partitions: dict[TopicPartition, PartitionState] = {}
        for tp, (end, committed, start) in measured.items():
            partitions[tp] = PartitionState(
                topic=tp.topic,
                partition=tp.partition,
                end_offset=end,
                committed=committed,
                log_start=start,
                last_progress=progress(self._partitions, tp, committed, now),
            )
        if broker_error is not None:
            # Keep the last known figures for partitions still assigned: the commit age
            # keeps growing at scrape time, which is what an outage should look like.
            partitions = {tp: s for tp, s in self._partitions.items() if tp in set(tps)}
        self._partitions = partitions
        return ProbeSnapshot(
            taken_at=now,
            database_ok=db_ok,
            database_error=db_error,
            broker_ok=broker_error is None,
            broker_error=broker_error,
            assigned=len(tps),
            partitions=tuple(partitions[tp] for tp in sorted(partitions)),
        )

    async def close(self) -> None:
        """Release the probe's Kafka clients."""
        await self._kafka.close()


class OffsetClients:
    """An admin client and a group-less consumer for reading offsets, started on first use
    within ``timeout``; shared by the in-worker probe and the lag exporter. ``security``:
    their connection arguments (:func:`services.common.kafka_security.kafka_client_security`).
    """

    def __init__(
        self,
        bootstrap_servers: list[str],
        timeout: float,
        *,
        security: Mapping[str, Any] = PLAINTEXT,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.timeout = timeout
        self.security = security
        self._admin: AIOKafkaAdminClient | None = None
        self._offsets: AIOKafkaConsumer | None = None

    async def started(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        """Both clients, started (a failed start leaves nothing half-open)."""
        if self._admin is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers, **self.security)
            try:
                await asyncio.wait_for(admin.start(), self.timeout)
            except BaseException:
                await admin.close()
                raise
            self._admin = admin
        if self._offsets is None:
            # Group-less: reads offsets without joining (or disturbing) any group.
            offsets = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap_servers,
                enable_auto_commit=False,
                **self.security,
            )
            try:
                await asyncio.wait_for(offsets.start(), self.timeout)
            except BaseException:
                await stop_consumer(offsets)
                raise
            self._offsets = offsets
        return self._admin, self._offsets

    async def close(self) -> None:
        """Stop both clients (they start again on next use)."""
        offsets, admin = self._offsets, self._admin
        self._offsets = self._admin = None
        if offsets is not None:
            await stop_consumer(offsets)
        if admin is not None:
            await admin.close()


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """Stop a group-less consumer."""
    # aiokafka 0.14's group-less consumer can re-raise the CancelledError of its own
    # internal reset task on stop(); it is not a cancellation of the caller.
    with contextlib.suppress(asyncio.CancelledError):
        await consumer.stop()
