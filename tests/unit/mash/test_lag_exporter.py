"""The lag exporter without a broker: which groups it reads, how it counts lag, when a
partition counts as stalled, what it exports and when it says it is ready."""

from __future__ import annotations

from aiokafka import TopicPartition
from prometheus_client import generate_latest

from mash.lag_exporter import (
    ExporterState,
    LagSnapshot,
    PartitionLag,
    build_registry,
    group_pattern,
    measure,
    stalled_since,
)
from services.common.settings import Settings
from tests.integration.harness import sample

NOW = 5_000.0
DECISIONS = "mash.decisions.v1"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def row(committed: int | None, end: int, *, since: float | None = None) -> PartitionLag:
    return PartitionLag("mash-routing", DECISIONS, 0, end, committed, 0, since)


def test_the_default_port_follows_the_services_ports() -> None:
    assert Settings().lag_exporter_port == 9105


def test_only_this_deployments_groups_are_read() -> None:
    mine = group_pattern("-t1234")
    assert mine.fullmatch("mash-routing-t1234")
    assert not mine.fullmatch("mash-routing-t9999")
    assert not mine.fullmatch("billing-t1234")
    production = group_pattern("")
    assert production.fullmatch("mash-routing")
    # An isolated test world on the same broker is not production's.
    assert not production.fullmatch("mash-routing-t1234")


def test_the_stall_clock_runs_only_while_events_wait_and_the_commit_stands() -> None:
    assert stalled_since(None, 10, 0, NOW) is None  # nothing waiting
    assert stalled_since(None, 10, 3, NOW) == NOW  # first seen lagging: starts now
    waiting = row(10, 13, since=NOW - 400)
    assert stalled_since(waiting, 10, 5, NOW) == NOW - 400  # same commit: keeps running
    assert stalled_since(waiting, 11, 2, NOW) == NOW  # the commit moved: starts again
    assert stalled_since(waiting, 13, 0, NOW) is None  # caught up
    idle = row(10, 10)
    assert stalled_since(idle, 10, 1, NOW) == NOW  # idle for hours, then one event: now


def test_lag_counts_from_the_log_start_where_the_group_never_committed() -> None:
    tp0, tp1, other = (
        TopicPartition(DECISIONS, 0),
        TopicPartition(DECISIONS, 1),
        TopicPartition("mash.contacts.v1", 0),
    )
    rows = measure(
        {"mash-routing": {tp0: 7}},
        {tp0: 10, tp1: 6, other: 99},
        {tp0: 0, tp1: 2, other: 0},
        {},
        NOW,
    )
    # Only topics the group committed on; partition 1 counts in full from its log start.
    assert [(r.topic, r.partition, r.committed, r.lag) for r in rows] == [
        (DECISIONS, 0, 7, 3),
        (DECISIONS, 1, None, 4),
    ]
    later = measure(
        {"mash-routing": {tp0: 7}},
        {tp0: 12, tp1: 6},
        {tp0: 0, tp1: 2},
        {(r.group, TopicPartition(r.topic, r.partition)): r for r in rows},
        NOW + 60,
    )
    assert [r.stalled_seconds(NOW + 90) for r in later] == [90.0, 90.0]


def exported(state: ExporterState) -> str:
    return generate_latest(build_registry(state)).decode()


def test_it_exports_kafka_exporters_names_and_the_stall_at_scrape_time() -> None:
    clock = Clock(NOW)
    state = ExporterState(poll_seconds=10, timeout=10, clock=clock)
    state.beat()
    state.publish(
        LagSnapshot(
            taken_at=NOW,
            partitions=(
                PartitionLag("mash-routing", DECISIONS, 0, 40, 25, 0, NOW - 100),
                PartitionLag("mash-routing", DECISIONS, 1, 9, None, 4, NOW - 100),
                PartitionLag("mash-routing", DECISIONS, 2, 30, 30, 0, None),
            ),
            topic_ends=((DECISIONS, 0, 40), (DECISIONS, 1, 9), (DECISIONS, 2, 30)),
        )
    )
    clock.now = NOW + 5  # stall seconds move between rounds
    text = exported(state)
    group = {"consumergroup": "mash-routing", "topic": DECISIONS}
    assert sample(text, "kafka_consumergroup_lag", **group, partition="0") == 15
    assert sample(text, "kafka_consumergroup_lag", **group, partition="1") == 5
    assert sample(text, "kafka_consumergroup_lag", **group, partition="2") == 0
    assert sample(text, "kafka_consumergroup_lag_sum", **group) == 20
    assert sample(text, "kafka_consumergroup_current_offset", **group, partition="0") == 25
    # No commit: no current offset (kafka-exporter leaves it out too), but the lag counts.
    assert sample(text, "kafka_consumergroup_current_offset", **group, partition="1") is None
    assert sample(text, "kafka_topic_partition_current_offset", topic=DECISIONS, partition="1") == 9
    assert sample(text, "mash_consumergroup_stalled_seconds", **group, partition="0") == 105
    assert sample(text, "mash_consumergroup_stalled_seconds", **group, partition="2") == 0
    assert sample(text, "mash_lag_exporter_up") == 1
    assert sample(text, "mash_build_info", version=_version(text), service="lag-exporter") == 1
    assert "process_cpu_seconds_total" in text
    assert "python_info{" in text


def _version(text: str) -> str:
    line = next(x for x in text.splitlines() if x.startswith("mash_build_info{"))
    return line.split('version="', 1)[1].split('"', 1)[0]


def test_a_broker_that_does_not_answer_fails_readiness_and_keeps_the_last_figures() -> None:
    clock = Clock(NOW)
    state = ExporterState(poll_seconds=10, timeout=10, clock=clock)
    state.beat()
    assert not state.readiness().ok  # nothing measured yet
    assert state.liveness().ok
    state.publish(LagSnapshot(NOW, (row(10, 13, since=NOW),), ((DECISIONS, 0, 13),)))
    assert state.readiness().ok
    state.failed("unreachable (KafkaConnectionError)")
    verdict = state.readiness()
    assert not verdict.ok
    assert verdict.checks["broker"].detail == "unreachable (KafkaConnectionError)"
    clock.now = NOW + 20
    state.beat()
    text = exported(state)
    assert sample(text, "mash_lag_exporter_up") == 0
    stalled = sample(
        text,
        "mash_consumergroup_stalled_seconds",
        consumergroup="mash-routing",
        topic=DECISIONS,
        partition="0",
    )
    assert stalled == 20  # the stall clock keeps running while the broker is away
    clock.now = NOW + 200  # rounds stopped coming: not ready even without an error
    state.beat()
    state.error = None
    assert state.readiness().checks["poll"].ok is False
