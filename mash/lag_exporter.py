"""Consumer lag of the ``mash-*`` consumer groups, measured from outside the workers.

    python -m mash.lag_exporter     # /metrics, /healthz, /readyz on :9105

Each worker measures the lag of the partitions it holds (:mod:`services.common.lag`), and
those series vanish with it: a worker that crashed, or a pod that never came back, leaves
its contacts waiting unseen. This process is not a worker. Every
``MASH_LAG_EXPORTER_POLL_SECONDS`` it asks the broker for the committed offsets of this
deployment's consumer groups (``mash-<service>`` plus ``MASH_GROUP_SUFFIX``, on topics
under ``MASH_TOPIC_PREFIX``) and the end offsets of their topics, and exports them under
kafka-exporter's names, which ops staff already chart and alert on:

- ``kafka_consumergroup_current_offset{consumergroup,topic,partition}``
- ``kafka_consumergroup_lag{consumergroup,topic,partition}`` and
  ``kafka_consumergroup_lag_sum{consumergroup,topic}``
- ``kafka_topic_partition_current_offset{topic,partition}``

plus a stall signal in the manner of Burrow, ``mash_consumergroup_stalled_seconds``: how
long a partition has had events waiting while its committed offset did not move (0 when
it has none waiting), and ``mash_lag_exporter_up`` (1 while the broker answers).

The committed offsets live in the broker, so the figures carry on while every worker of a
group is dead, which is when they matter most.

Over 400 lines on purpose: a small standalone process (measure, judge a stall, serve),
shipped and deployed as one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.common.health import (
    Assessment,
    Bounds,
    Check,
    MetricsServer,
    assess_liveness,
)
from services.common.kafka_security import PLAINTEXT, kafka_client_security, security_log_fields
from services.common.lag import OffsetClients
from services.common.logging import configure_logging
from services.common.metrics import build_version, register_default_collectors
from services.common.settings import Settings, SettingsError, refuse_settings, settings_or_exit

#: The ``service`` label of this process (logs, mash_build_info, the scrape config).
SERVICE = "lag-exporter"
#: How often the event-loop heartbeat ticks (seconds).
HEARTBEAT_SECONDS = 1.0

log = structlog.get_logger(__name__)


def group_pattern(group_suffix: str) -> re.Pattern[str]:
    """The consumer groups of this deployment: ``mash-<service><suffix>``.

    Faust names each service's group ``mash-<service>`` plus the suffix
    (:func:`services.common.kafka.make_app`). Matching the whole name, not a prefix, keeps
    out the groups of other deployments that share the broker with a longer suffix
    (isolated test runs on a developer's broker).
    """
    return re.compile(rf"mash-[a-z]+{re.escape(group_suffix)}")


@dataclass(frozen=True)
class PartitionLag:
    """One consumer group's position on one topic-partition.

    ``stalled_since`` is a :func:`time.monotonic` instant: since when the partition has had
    events waiting with the same committed offset; None while it has none waiting.
    """

    group: str
    topic: str
    partition: int
    end_offset: int
    committed: int | None
    log_start: int
    stalled_since: float | None

    @property
    def lag(self) -> int:
        """Events not yet committed; with no commit, from the earliest offset still held
        (the groups start from the earliest, ``auto_offset_reset="earliest"``)."""
        start = self.committed if self.committed is not None else self.log_start
        return max(0, self.end_offset - start)

    def stalled_seconds(self, now: float) -> float:
        """Seconds the committed offset has not moved while events waited (0: none wait)."""
        return 0.0 if self.stalled_since is None else max(0.0, now - self.stalled_since)


def stalled_since(
    before: PartitionLag | None, committed: int | None, lag: int, now: float
) -> float | None:
    """When the stall of a partition began (Burrow's STALL: lag, and no commit).

    No events waiting: no stall. Events waiting and the committed offset moved since the
    last round (or the partition is new, or had none waiting): the clock starts now. Else
    it keeps running from the instant recorded before. A restarted exporter starts every
    clock afresh: it cannot know how long a stall lasted before it looked.
    """
    if lag <= 0:
        return None
    if before is None or before.stalled_since is None or before.committed != committed:
        return now
    return before.stalled_since


def measure(
    committed: Mapping[str, Mapping[TopicPartition, int]],
    ends: Mapping[TopicPartition, int],
    starts: Mapping[TopicPartition, int],
    previous: Mapping[tuple[str, TopicPartition], PartitionLag],
    now: float,
) -> list[PartitionLag]:
    """Each group's position on every partition of the topics it has committed on.

    A partition of such a topic with no offset of the group counts from its log start:
    the group has read none of it. A topic the group never committed on is not shown
    (the broker keeps no record that the group reads it).
    """
    out: list[PartitionLag] = []
    for group in sorted(committed):
        offsets = committed[group]
        topics = {tp.topic for tp in offsets}
        for tp in sorted(t for t in ends if t.topic in topics):
            done = offsets.get(tp)
            row = PartitionLag(
                group, tp.topic, tp.partition, ends[tp], done, starts.get(tp, 0), None
            )
            since = stalled_since(previous.get((group, tp)), done, row.lag, now)
            out.append(dataclasses.replace(row, stalled_since=since))
    return out


@dataclass(frozen=True)
class LagSnapshot:
    """One round of measurements: every group's partitions, and every topic's end offsets."""

    taken_at: float
    partitions: tuple[PartitionLag, ...]
    topic_ends: tuple[tuple[str, int, int], ...]
    """(topic, partition, end offset) of each partition of the measured topics."""


class ExporterState:
    """The latest snapshot and the poll's health; written by the event loop, read by the
    HTTP server's threads (each field is replaced whole)."""

    def __init__(
        self, poll_seconds: float, timeout: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.clock = clock
        self.bounds = Bounds(
            max_lag=0,  # not judged here: lag is the exporter's output, not its health
            max_commit_age_seconds=0.0,
            # Three missed rounds, each allowed its own timeout, before "the poll is stuck".
            max_probe_age_seconds=3 * poll_seconds + 2 * timeout,
            max_loop_stall_seconds=max(30.0, 3 * poll_seconds),
            startup_grace_seconds=120.0,
        )
        self.started_at = clock()
        self.loop_beat: float | None = None
        self.snapshot: LagSnapshot | None = None
        self.error: str | None = None

    def beat(self) -> None:
        """The event loop is turning."""
        self.loop_beat = self.clock()

    def publish(self, snapshot: LagSnapshot) -> None:
        """A round succeeded."""
        self.snapshot = snapshot
        self.error = None

    def failed(self, error: str) -> None:
        """A round failed; the last snapshot stays, so stall clocks keep running at scrape
        time (the broker being unreachable is no reason to stop showing a stall)."""
        self.error = error

    def liveness(self) -> Assessment:
        """/healthz: the event loop turns (with a grace period while starting)."""
        return assess_liveness(self.loop_beat, self.started_at, self.bounds, self.clock())

    def readiness(self) -> Assessment:
        """/readyz: loop turning, broker answering, and a round completed recently."""
        now = self.clock()
        checks = dict(self.liveness().checks)
        checks["broker"] = (
            Check(True, "reachable") if self.error is None else Check(False, self.error)
        )
        snapshot = self.snapshot
        if snapshot is None:
            checks["poll"] = Check(False, "not measured yet")
        else:
            age = now - snapshot.taken_at
            checks["poll"] = (
                Check(True, f"measured {age:.0f}s ago")
                if age <= self.bounds.max_probe_age_seconds
                else Check(False, f"last measured {age:.0f}s ago")
            )
        return Assessment(all(c.ok for c in checks.values()), checks)


class LagCollector(Collector):
    """Exports the latest snapshot at scrape time (stall seconds keep growing between
    rounds and while the broker cannot be read)."""

    def __init__(self, state: ExporterState) -> None:
        self.state = state

    def describe(self) -> Iterable[Metric]:
        """Metric families without samples (lets the registry check for name clashes)."""
        return list(self._families(None, up=False))

    def collect(self) -> Iterable[Metric]:
        """The families with their current samples."""
        return list(self._families(self.state.snapshot, up=self.state.readiness().ok))

    def _families(self, snapshot: LagSnapshot | None, *, up: bool) -> Iterator[Metric]:
        now = self.state.clock()
        per_partition = ["consumergroup", "topic", "partition"]
        current = GaugeMetricFamily(
            "kafka_consumergroup_current_offset",
            "Committed offset of a consumer group on a partition.",
            labels=per_partition,
        )
        lag = GaugeMetricFamily(
            "kafka_consumergroup_lag",
            "Events on a partition not yet committed by the group (end - committed offset).",
            labels=per_partition,
        )
        lag_sum = GaugeMetricFamily(
            "kafka_consumergroup_lag_sum",
            "Events on a topic not yet committed by the group, over its partitions.",
            labels=["consumergroup", "topic"],
        )
        stalled = GaugeMetricFamily(
            "mash_consumergroup_stalled_seconds",
            "Seconds a partition has had events waiting while the group's committed offset"
            " did not move (0: nothing waiting).",
            labels=per_partition,
        )
        end = GaugeMetricFamily(
            "kafka_topic_partition_current_offset",
            "End offset (highwater) of a partition.",
            labels=["topic", "partition"],
        )
        sums: dict[tuple[str, str], int] = {}
        for p in snapshot.partitions if snapshot else ():
            labels = [p.group, p.topic, str(p.partition)]
            if p.committed is not None:
                current.add_metric(labels, p.committed)
            lag.add_metric(labels, p.lag)
            stalled.add_metric(labels, round(p.stalled_seconds(now), 3))
            sums[(p.group, p.topic)] = sums.get((p.group, p.topic), 0) + p.lag
        for (group, topic), total in sorted(sums.items()):
            lag_sum.add_metric([group, topic], total)
        for topic, partition, offset in snapshot.topic_ends if snapshot else ():
            end.add_metric([topic, str(partition)], offset)
        exporter_up = GaugeMetricFamily(
            "mash_lag_exporter_up",
            "1 while the lag exporter reads the broker's offsets (/readyz answers 200).",
            value=1 if up else 0,
        )
        yield from (current, lag, lag_sum, stalled, end, exporter_up)


class LagExporter:
    """Polls the broker every ``interval`` seconds and publishes what it measured."""

    def __init__(
        self,
        state: ExporterState,
        *,
        bootstrap_servers: list[str],
        topic_prefix: str,
        group_suffix: str,
        interval: float,
        timeout: float,
        security: Mapping[str, Any] = PLAINTEXT,
    ) -> None:
        self.state = state
        self.bootstrap_servers = bootstrap_servers
        self.topic_prefix = topic_prefix
        self.groups = group_pattern(group_suffix)
        self.interval = interval
        self.timeout = timeout
        self._kafka = OffsetClients(bootstrap_servers, timeout, security=security)
        self._previous: dict[tuple[str, TopicPartition], PartitionLag] = {}

    async def heartbeat(self) -> None:
        """Tell the state the loop turns, every second, until cancelled."""
        while True:
            self.state.beat()
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def run(self) -> None:
        """Poll until cancelled; a failing round is reported (readiness, log), never raised."""
        failing = False
        while True:
            try:
                snapshot = await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.state.failed(f"unreachable ({type(exc).__name__})")
                if not failing:  # once per outage, not once per round
                    log.warning("lag_poll_failed", error_type=type(exc).__name__)
                failing = True
                await self._reset()  # fresh connections next round
            else:
                self.state.publish(snapshot)
                if failing:
                    log.info("lag_poll_recovered")
                failing = False
            await asyncio.sleep(self.interval)

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        return await self._kafka.started()

    async def poll(self) -> LagSnapshot:
        """One round: this deployment's groups, their committed offsets, the topics' ends."""
        admin, offsets = await self._clients()
        listed = await asyncio.wait_for(admin.list_consumer_groups(), self.timeout)
        groups = sorted(g[0] for g in listed if self.groups.fullmatch(g[0]))
        committed: dict[str, dict[TopicPartition, int]] = {}
        for group in groups:
            fetched = await asyncio.wait_for(admin.list_consumer_group_offsets(group), self.timeout)
            committed[group] = {
                tp: meta.offset
                for tp, meta in fetched.items()
                # -1: no offset. Faust commits only its source topics, never changelogs.
                if meta.offset >= 0 and tp.topic.startswith(self.topic_prefix)
            }
        topics = sorted({tp.topic for mine in committed.values() for tp in mine})
        described = (
            await asyncio.wait_for(admin.describe_topics(topics), self.timeout) if topics else []
        )
        tps = [
            TopicPartition(d["topic"], p["partition"])
            for d in described
            if d["error_code"] == 0
            for p in d["partitions"]
        ]
        ends = await asyncio.wait_for(offsets.end_offsets(tps), self.timeout) if tps else {}
        starts = await asyncio.wait_for(offsets.beginning_offsets(tps), self.timeout) if tps else {}
        now = self.state.clock()
        rows = measure(committed, ends, starts, self._previous, now)
        self._previous = {(r.group, TopicPartition(r.topic, r.partition)): r for r in rows}
        return LagSnapshot(
            taken_at=now,
            partitions=tuple(rows),
            topic_ends=tuple((tp.topic, tp.partition, ends[tp]) for tp in sorted(ends)),
        )

    async def _reset(self) -> None:
        with contextlib.suppress(Exception):
            await self.close()

    async def close(self) -> None:
        """Release the Kafka clients."""
        await self._kafka.close()


def build_registry(state: ExporterState) -> CollectorRegistry:
    """The exporter's registry: lag series, its own up, build info and process metrics."""
    registry = CollectorRegistry()
    register_default_collectors(registry)
    registry.register(LagCollector(state))
    info = Gauge(
        "mash_build_info",
        "Always 1: the running version.",
        ["version", "service"],
        registry=registry,
    )
    info.labels(version=build_version(), service=SERVICE).set(1)
    return registry


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Poll and serve until ``stop`` is set."""
    timeout = max(2.0, settings.lag_exporter_poll_seconds)
    security = kafka_client_security(settings)
    state = ExporterState(settings.lag_exporter_poll_seconds, timeout)
    server = MetricsServer(settings.lag_exporter_port, build_registry(state), state).start()
    exporter = LagExporter(
        state,
        bootstrap_servers=settings.bootstrap_list,
        topic_prefix=settings.topic_prefix,
        group_suffix=settings.group_suffix,
        interval=settings.lag_exporter_poll_seconds,
        timeout=timeout,
        security=security,
    )
    log.info("lag_exporter_started", metrics_port=server.port, **security_log_fields(security))
    tasks = [asyncio.create_task(exporter.heartbeat()), asyncio.create_task(exporter.run())]
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await exporter.close()
        server.stop()
        log.info("lag_exporter_stopped")


def main() -> int:
    """Entry point: run until SIGTERM or SIGINT."""
    settings = settings_or_exit(SERVICE)
    configure_logging(SERVICE, settings.log_level)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop)

    try:
        asyncio.run(run())
    except SettingsError as exc:  # the Kafka TLS material or a secret file does not load
        refuse_settings(SERVICE, exc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
