"""Health of one service process: what ``/healthz`` and ``/readyz`` answer, the consumer lag
and commit-age series on ``/metrics``, and the small HTTP server that serves all three.

Split like a service: the judgement (:func:`assess_readiness`, :func:`assess_liveness`) is
pure and takes the measurements and "now" as arguments; :class:`HealthState` holds the
latest measurements (written by the probe in :mod:`services.common.lag`, inside Faust's
event loop); :class:`MetricsServer` answers HTTP from its own threads. The server does not
run in the event loop on purpose: when Faust stalls or the loop is blocked, ``/metrics``
still answers and shows it (lag, commit age, ``mash_ready 0``), and ``/healthz`` fails
because the loop's heartbeat has gone stale.

Over 400 lines on purpose: the judgement, the state and the server are one contract with the
orchestrator (what /readyz means), read together.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from services.common.settings import Settings

#: The checks /readyz reports, in order (also the ``check`` label of ``mash_health_check``).
CHECKS = (
    "event_loop",
    "probe",
    "database",
    "broker",
    "consumer_assigned",
    "consumer_lag",
    "commit_progress",
    "outbox_relay",
)


@dataclass(frozen=True)
class PartitionState:
    """What the probe measured for one assigned topic-partition.

    ``last_progress`` is a :func:`time.monotonic` instant: when this process last saw the
    group's committed offset move forward, or when the partition was assigned to it.
    """

    topic: str
    partition: int
    end_offset: int
    committed: int | None
    log_start: int
    last_progress: float

    @property
    def lag(self) -> int:
        """Events on the partition not yet committed (highwater - committed offset).

        With nothing committed yet the group starts from the earliest offset still held.
        """
        start = self.committed if self.committed is not None else self.log_start
        return max(0, self.end_offset - start)

    def commit_age(self, now: float) -> float:
        """Seconds since the committed offset last moved (or since assignment)."""
        return max(0.0, now - self.last_progress)


@dataclass(frozen=True)
class ProbeSnapshot:
    """One round of measurements (errors are short words, never driver messages)."""

    taken_at: float
    database_ok: bool
    database_error: str | None
    broker_ok: bool
    broker_error: str | None
    assigned: int
    partitions: tuple[PartitionState, ...] = ()


@dataclass(frozen=True)
class RelayState:
    """Whether the outbox relay can publish: ``failing_since`` is a :func:`time.monotonic`
    instant, None while its last attempt succeeded."""

    failing_since: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class Bounds:
    """The limits readiness and liveness are judged against (seconds, events)."""

    max_lag: int
    max_commit_age_seconds: float
    max_probe_age_seconds: float
    max_loop_stall_seconds: float
    startup_grace_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Bounds:
        """Bounds from the settings; probe and loop limits scale with the probe interval."""
        probe = settings.health_probe_seconds
        return cls(
            max_lag=settings.ready_max_lag,
            max_commit_age_seconds=settings.ready_max_commit_age_seconds,
            # Three missed rounds, each allowed its own timeout, before "the probe is stuck".
            max_probe_age_seconds=3 * probe + 2 * probe_timeout(settings),
            max_loop_stall_seconds=max(30.0, 3 * probe),
            startup_grace_seconds=120.0,
        )


def probe_timeout(settings: Settings) -> float:
    """How long one broker or database round trip of the probe may take."""
    return max(2.0, settings.health_probe_seconds)


@dataclass(frozen=True)
class Check:
    """One check's verdict and a short reason (no ids, no personal data)."""

    ok: bool
    detail: str


@dataclass(frozen=True)
class Assessment:
    """The verdict of /healthz or /readyz."""

    ok: bool
    checks: dict[str, Check] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The response body."""
        return {
            "status": "ok" if self.ok else "failing",
            "checks": {k: {"ok": c.ok, "detail": c.detail} for k, c in self.checks.items()},
        }


def _loop_check(loop_beat: float | None, started_at: float, bounds: Bounds, now: float) -> Check:
    if loop_beat is None:
        starting = now - started_at <= bounds.startup_grace_seconds
        return Check(starting, "starting" if starting else "event loop never started")
    stalled = now - loop_beat
    if stalled > bounds.max_loop_stall_seconds:
        return Check(False, f"event loop blocked for {stalled:.0f}s")
    return Check(True, "turning")


def assess_liveness(
    loop_beat: float | None, started_at: float, bounds: Bounds, now: float
) -> Assessment:
    """/healthz: the process is up and its event loop turns (grace while starting)."""
    check = _loop_check(loop_beat, started_at, bounds, now)
    return Assessment(check.ok, {"event_loop": check})


def assess_readiness(
    snapshot: ProbeSnapshot | None,
    loop_beat: float | None,
    started_at: float,
    bounds: Bounds,
    now: float,
    relay: RelayState | None = None,
) -> Assessment:
    """/readyz: loop turning, broker and database reachable, partitions assigned, every
    partition's lag within bounds, no lagging partition without commits for too long, and
    the outbox relay publishing."""
    checks: dict[str, Check] = {"event_loop": _loop_check(loop_beat, started_at, bounds, now)}
    if snapshot is None:
        for name in CHECKS[1:]:
            checks[name] = Check(False, "not measured yet")
        return Assessment(False, checks)
    age = now - snapshot.taken_at
    checks["probe"] = (
        Check(True, f"measured {age:.0f}s ago")
        if age <= bounds.max_probe_age_seconds
        else Check(False, f"last measured {age:.0f}s ago")
    )
    checks["database"] = Check(snapshot.database_ok, snapshot.database_error or "reachable")
    checks["broker"] = Check(snapshot.broker_ok, snapshot.broker_error or "reachable")
    checks["consumer_assigned"] = (
        Check(True, f"{snapshot.assigned} partitions")
        if snapshot.assigned
        else Check(False, "no partitions assigned")
    )
    worst = max(snapshot.partitions, key=lambda p: p.lag, default=None)
    if worst is None or worst.lag <= bounds.max_lag:
        checks["consumer_lag"] = Check(True, f"max lag {worst.lag if worst else 0}")
    else:
        checks["consumer_lag"] = Check(
            False, f"{worst.topic}[{worst.partition}] lag {worst.lag} > {bounds.max_lag}"
        )
    stalled = [
        p
        for p in snapshot.partitions
        if p.lag > 0 and p.commit_age(now) > bounds.max_commit_age_seconds
    ]
    checks["commit_progress"] = (
        Check(True, "committing")
        if not stalled
        else Check(
            False,
            f"{stalled[0].topic}[{stalled[0].partition}] lag {stalled[0].lag}, no commit for"
            f" {stalled[0].commit_age(now):.0f}s",
        )
    )
    checks["outbox_relay"] = _relay_check(relay or RelayState(), now)
    return Assessment(all(c.ok for c in checks.values()), checks)


def _relay_check(relay: RelayState, now: float) -> Check:
    # Not ready at the first failed attempt: the next stage and the referrers' feedback
    # wait for as long as the relay cannot publish, whatever the consumer side shows.
    if relay.failing_since is None:
        return Check(True, "publishing")
    return Check(
        False, f"cannot publish for {now - relay.failing_since:.0f}s ({relay.error or 'error'})"
    )


class HealthState:
    """The latest measurements of one process; written by the loop, read by HTTP threads.

    Each field is replaced whole (an atomic reference swap), so readers never see a
    half-written snapshot.
    """

    def __init__(self, bounds: Bounds, clock: Callable[[], float] = time.monotonic) -> None:
        self.bounds = bounds
        self.clock = clock
        self.started_at = clock()
        self.loop_beat: float | None = None
        self.snapshot: ProbeSnapshot | None = None
        self.relay = RelayState()

    def beat(self) -> None:
        """The event loop is turning (called every second from inside it)."""
        self.loop_beat = self.clock()

    def publish(self, snapshot: ProbeSnapshot) -> None:
        """Record a new round of measurements."""
        self.snapshot = snapshot

    def relay_failing(self, error: str) -> None:
        """The outbox relay's last attempt failed with ``error`` (an exception class name)."""
        since = self.relay.failing_since
        self.relay = RelayState(self.clock() if since is None else since, error)

    def relay_publishing(self) -> None:
        """The outbox relay's last attempt succeeded."""
        if self.relay.failing_since is not None:
            self.relay = RelayState()

    def liveness(self) -> Assessment:
        """What /healthz answers now."""
        return assess_liveness(self.loop_beat, self.started_at, self.bounds, self.clock())

    def readiness(self) -> Assessment:
        """What /readyz answers now."""
        return assess_readiness(
            self.snapshot, self.loop_beat, self.started_at, self.bounds, self.clock(), self.relay
        )


class HealthCollector(Collector):
    """Exports the probe's measurements at scrape time, so ages keep growing in a stall.

    Series: ``mash_consumer_lag_messages{topic,partition}``,
    ``mash_consumer_last_commit_age_seconds{topic,partition}``,
    ``mash_consumer_assigned_partitions``, ``mash_health_check{check}`` (1 ok, 0 failing)
    and ``mash_ready`` (1 when /readyz would answer 200).
    """

    def __init__(self, state: HealthState) -> None:
        self.state = state

    def describe(self) -> Iterable[Metric]:
        """Metric families without samples (lets the registry check for name clashes)."""
        return list(self._families(None, None))

    def collect(self) -> Iterable[Metric]:
        """The families with their current samples."""
        return list(self._families(self.state.snapshot, self.state.readiness()))

    def _families(
        self, snapshot: ProbeSnapshot | None, readiness: Assessment | None
    ) -> Iterator[Metric]:
        now = self.state.clock()
        lag = GaugeMetricFamily(
            "mash_consumer_lag_messages",
            "Events on an assigned partition not yet committed (highwater - committed).",
            labels=["topic", "partition"],
        )
        age = GaugeMetricFamily(
            "mash_consumer_last_commit_age_seconds",
            "Seconds since the committed offset of an assigned partition last moved"
            " (or since it was assigned).",
            labels=["topic", "partition"],
        )
        for p in snapshot.partitions if snapshot else ():
            lag.add_metric([p.topic, str(p.partition)], p.lag)
            age.add_metric([p.topic, str(p.partition)], round(p.commit_age(now), 3))
        assigned = GaugeMetricFamily(
            "mash_consumer_assigned_partitions",
            "Partitions assigned to this process's consumer.",
            value=snapshot.assigned if snapshot else 0,
        )
        checks = GaugeMetricFamily(
            "mash_health_check",
            "Readiness checks of this process: 1 passing, 0 failing.",
            labels=["check"],
        )
        for name, check in readiness.checks.items() if readiness else ():
            checks.add_metric([name], 1 if check.ok else 0)
        ready = GaugeMetricFamily(
            "mash_ready",
            "1 when this process is ready (/readyz answers 200).",
            value=1 if readiness and readiness.ok else 0,
        )
        yield from (lag, age, assigned, checks, ready)


class Verdicts(Protocol):
    """What /healthz and /readyz ask of a process: a service's :class:`HealthState`, or the
    lag exporter's own state."""

    def liveness(self) -> Assessment:
        """What /healthz answers now."""
        ...

    def readiness(self) -> Assessment:
        """What /readyz answers now."""
        ...


class _Handler(BaseHTTPRequestHandler):
    """GET and HEAD on /metrics, /healthz, /readyz; anything else is 404."""

    server: _Server

    def do_GET(self) -> None:
        status, content_type, body = self._answer()
        self._send(status, content_type, body)

    def do_HEAD(self) -> None:
        # Load balancers and uptime checkers probe with HEAD: same status and headers as
        # GET (Content-Length included), no body.
        status, content_type, body = self._answer()
        self._send(status, content_type, body, with_body=False)

    def _answer(self) -> tuple[int, str, bytes]:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            return 200, content_type, encoder(self.server.registry)
        if path in ("/healthz", "/readyz"):
            health = self.server.health
            if health is None:  # nothing measured in this process: answering is all it can say
                verdict = Assessment(True, {"process": Check(True, "up")})
            else:
                verdict = health.liveness() if path == "/healthz" else health.readiness()
            body = json.dumps(verdict.as_json(), sort_keys=True).encode()
            return 200 if verdict.ok else 503, "application/json", body
        return 404, "text/plain; charset=utf-8", b"not found\n"

    def _send(self, status: int, content_type: str, body: bytes, *, with_body: bool = True) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request access log (plain text, and scrapes are frequent)."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], registry: CollectorRegistry, health: Verdicts | None
    ) -> None:
        super().__init__(address, _Handler)
        self.registry = registry
        self.health = health


class MetricsServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on one port, served from daemon threads."""

    def __init__(
        self,
        port: int,
        registry: CollectorRegistry,
        health: Verdicts | None = None,
        # All interfaces: Prometheus and the kubelet probe from other hosts.
        host: str = "0.0.0.0",
    ) -> None:
        self._server = _Server((host, port), registry, health)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-http", daemon=True
        )

    def start(self) -> MetricsServer:
        """Start answering; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering and release the port."""
        self._server.shutdown()
        self._server.server_close()
