"""Health judgement (pure), the lag/readiness series, and the HTTP server that serves them."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry, Counter, generate_latest

from services.common.health import (
    CHECKS,
    Bounds,
    Check,
    HealthCollector,
    HealthState,
    MetricsServer,
    PartitionState,
    ProbeSnapshot,
    assess_liveness,
    assess_readiness,
)
from services.common.lag import progress
from services.common.metrics import ServiceMetrics
from services.common.settings import Settings

BOUNDS = Bounds(
    max_lag=100,
    max_commit_age_seconds=60.0,
    max_probe_age_seconds=20.0,
    max_loop_stall_seconds=30.0,
    startup_grace_seconds=120.0,
)
NOW = 10_000.0


def partition(
    end: int, committed: int | None, *, since: float = NOW - 1, start: int = 0, number: int = 0
) -> PartitionState:
    return PartitionState(
        topic="mash.contacts.v1",
        partition=number,
        end_offset=end,
        committed=committed,
        log_start=start,
        last_progress=since,
    )


def snapshot(*partitions: PartitionState, **overrides: object) -> ProbeSnapshot:
    fields: dict[str, object] = {
        "taken_at": NOW - 2,
        "database_ok": True,
        "database_error": None,
        "broker_ok": True,
        "broker_error": None,
        "assigned": max(1, len(partitions)),
        "partitions": partitions,
    }
    fields.update(overrides)
    return ProbeSnapshot(**fields)  # type: ignore[arg-type]


def failing(checks: dict[str, Check]) -> set[str]:
    return {name for name, check in checks.items() if not check.ok}


def test_a_healthy_process_is_ready_and_reports_every_check() -> None:
    verdict = assess_readiness(snapshot(partition(50, 50)), NOW - 0.5, NOW - 100, BOUNDS, NOW)
    assert verdict.ok
    assert tuple(verdict.checks) == CHECKS
    assert verdict.as_json()["status"] == "ok"


def test_nothing_measured_yet_is_not_ready() -> None:
    verdict = assess_readiness(None, None, NOW - 1, BOUNDS, NOW)
    assert not verdict.ok
    assert failing(verdict.checks) == set(CHECKS) - {"event_loop"}  # still in start-up grace


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"database_ok": False, "database_error": "unreachable (OSError)"}, {"database"}),
        ({"broker_ok": False, "broker_error": "unreachable (KafkaError)"}, {"broker"}),
        ({"assigned": 0, "partitions": ()}, {"consumer_assigned"}),
        ({"taken_at": NOW - 21}, {"probe"}),
    ],
)
def test_each_unreachable_dependency_fails_its_own_check(
    overrides: dict[str, object], expected: set[str]
) -> None:
    verdict = assess_readiness(
        snapshot(partition(5, 5), **overrides), NOW - 0.5, NOW - 100, BOUNDS, NOW
    )
    assert not verdict.ok
    assert failing(verdict.checks) == expected


def test_lag_above_the_bound_is_not_ready_and_names_the_partition() -> None:
    verdict = assess_readiness(
        snapshot(partition(10, 10), partition(301, 200, number=3)), NOW, NOW - 100, BOUNDS, NOW
    )
    assert failing(verdict.checks) == {"consumer_lag"}
    assert verdict.checks["consumer_lag"].detail == "mash.contacts.v1[3] lag 101 > 100"


def test_a_lagging_partition_without_commits_is_a_stall() -> None:
    stalled = partition(12, 10, since=NOW - 61)
    verdict = assess_readiness(snapshot(stalled), NOW, NOW - 100, BOUNDS, NOW)
    assert failing(verdict.checks) == {"commit_progress"}
    assert "no commit for 61s" in verdict.checks["commit_progress"].detail


def test_a_relay_that_cannot_publish_is_not_ready_until_it_publishes_again() -> None:
    state = HealthState(BOUNDS, clock=lambda: NOW)
    state.publish(snapshot(partition(5, 5)))
    state.beat()
    assert state.readiness().ok
    state.relay_failing("OutOfOrderSequenceNumber")
    state.clock = lambda: NOW + 42
    state.beat()
    state.publish(snapshot(partition(5, 5), taken_at=NOW + 40))
    state.relay_failing("KafkaConnectionError")  # still failing: the first instant counts
    verdict = state.readiness()
    assert failing(verdict.checks) == {"outbox_relay"}
    assert verdict.checks["outbox_relay"].detail == "cannot publish for 42s (KafkaConnectionError)"
    state.relay_publishing()
    assert state.readiness().ok


def test_an_idle_partition_may_go_long_without_commits() -> None:
    idle = partition(10, 10, since=NOW - 3600)
    assert assess_readiness(snapshot(idle), NOW, NOW - 100, BOUNDS, NOW).ok


def test_lag_counts_from_the_earliest_offset_when_nothing_was_committed() -> None:
    assert partition(40, None, start=15).lag == 25
    assert partition(40, 38).lag == 2
    assert partition(40, 41).lag == 0  # a committed offset read before the end moved


def test_liveness_follows_the_event_loop_heartbeat() -> None:
    assert assess_liveness(None, NOW - 10, BOUNDS, NOW).ok  # starting
    assert not assess_liveness(None, NOW - 121, BOUNDS, NOW).ok  # never started
    assert assess_liveness(NOW - 29, NOW - 500, BOUNDS, NOW).ok
    blocked = assess_liveness(NOW - 31, NOW - 500, BOUNDS, NOW)
    assert not blocked.ok
    assert blocked.checks["event_loop"].detail == "event loop blocked for 31s"


def test_bounds_scale_with_the_probe_interval() -> None:
    bounds = Bounds.from_settings(
        Settings(health_probe_seconds=20, ready_max_lag=7, ready_max_commit_age_seconds=90)
    )
    assert bounds.max_lag == 7
    assert bounds.max_commit_age_seconds == 90
    assert bounds.max_probe_age_seconds == 3 * 20 + 2 * 20
    assert bounds.max_loop_stall_seconds == 60


def test_commit_progress_moves_only_when_the_committed_offset_moves() -> None:
    tp = TopicPartition("mash.contacts.v1", 0)
    before = {tp: partition(10, 8, since=100.0)}
    assert progress({}, tp, None, 500.0) == 500.0  # newly assigned
    assert progress(before, tp, 8, 500.0) == 100.0  # unchanged
    assert progress(before, tp, 9, 500.0) == 500.0  # advanced


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_collector_exports_lag_commit_age_checks_and_readiness() -> None:
    clock = FakeClock(NOW)
    state = HealthState(BOUNDS, clock)
    registry = CollectorRegistry()
    registry.register(HealthCollector(state))
    state.beat()
    state.publish(snapshot(partition(30, 20, since=NOW - 5), assigned=4))
    clock.now = NOW + 7  # ages are computed at scrape time
    text = generate_latest(registry).decode()
    assert 'mash_consumer_lag_messages{partition="0",topic="mash.contacts.v1"} 10.0' in text
    assert (
        'mash_consumer_last_commit_age_seconds{partition="0",topic="mash.contacts.v1"} 12.0' in text
    )
    assert "mash_consumer_assigned_partitions 4.0" in text
    assert 'mash_health_check{check="database"} 1.0' in text
    assert "mash_ready 1.0" in text
    clock.now = NOW + 100  # loop and probe silent since: not ready
    text = generate_latest(registry).decode()
    assert 'mash_health_check{check="event_loop"} 0.0' in text
    assert "mash_ready 0.0" in text


@pytest.fixture
def served() -> Iterator[tuple[MetricsServer, HealthState, FakeClock]]:
    clock = FakeClock(NOW)
    state = HealthState(BOUNDS, clock)
    registry = CollectorRegistry()
    Counter("mash_probe_total", "A counter to find on /metrics.", registry=registry).inc(3)
    registry.register(HealthCollector(state))
    server = MetricsServer(0, registry, state, host="127.0.0.1").start()
    yield server, state, clock
    server.stop()


def get(server: MetricsServer, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_metrics_healthz_and_readyz_share_one_port(
    served: tuple[MetricsServer, HealthState, FakeClock],
) -> None:
    server, state, clock = served
    status, text = get(server, "/metrics")
    assert status == 200
    assert "mash_probe_total 3.0" in text
    assert "mash_ready 0.0" in text
    status, body = get(server, "/readyz")
    assert status == 503
    assert json.loads(body)["checks"]["database"] == {"ok": False, "detail": "not measured yet"}
    assert get(server, "/healthz")[0] == 200  # starting: within the grace period
    state.beat()
    state.publish(snapshot(partition(3, 3)))
    status, body = get(server, "/readyz")
    assert (status, json.loads(body)["status"]) == (200, "ok")
    clock.now = NOW + 31  # the loop stopped beating
    status, body = get(server, "/healthz")
    assert status == 503
    assert json.loads(body)["checks"]["event_loop"]["ok"] is False
    assert get(server, "/nothing-here")[0] == 404


def head(server: MetricsServer, path: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return int(r.status), dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_head_answers_like_get_without_a_body(
    served: tuple[MetricsServer, HealthState, FakeClock],
) -> None:
    # Load balancers and uptime checkers probe with HEAD; it used to be 501.
    server, state, _clock = served
    state.beat()
    state.publish(snapshot(partition(3, 3)))
    for path in ("/metrics", "/healthz", "/readyz", "/nothing-here"):
        status, headers, body = head(server, path)
        get_status, get_body = get(server, path)
        assert status == get_status, path
        assert body == b"", path
        assert headers["Content-Type"], path
        if path != "/metrics":  # the metrics text moves between two scrapes
            assert int(headers["Content-Length"]) == len(get_body.encode()), path
    assert head(server, "/readyz")[0] == 200


def test_every_service_exports_process_and_python_metrics() -> None:
    text = generate_latest(ServiceMetrics("intake").registry).decode()
    for name in (
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
        "python_info",
        "python_gc_collections_total",
    ):
        assert f"\n{name}" in text, name
    # One registry per service: a second service in the same process registers them too.
    assert "python_info" in generate_latest(ServiceMetrics("routing").registry).decode()
