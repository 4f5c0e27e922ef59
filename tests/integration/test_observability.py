"""Observability end to end: the four services of an isolated world, each on its own metrics
port, and the lag exporter beside them, scraped by a real Prometheus (the Debian package's
binary) evaluating the shipped alert rules. Traffic goes through the whole pipeline; then
Prometheus's HTTP API must agree with the database, the shipped dashboard's every query must
name metrics the processes export, /healthz and /readyz must answer (GET and HEAD), and the
logs must carry ids and coordinates but none of the names, addresses or narratives the
traffic contained."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.local.pipeline import LAG_EXPORTER, SERVICES, ServiceProcesses
from deploy.prometheus.runbooks import DEFAULT_BASE
from schemas import examples as ex
from schemas.cloudevents import encode_binary
from schemas.inbound import PoliceNotification, Referral
from services.common.metrics import build_version
from services.common.topics import (
    CONTACTS,
    DECISIONS,
    INBOUND_POLICE,
    INBOUND_REFERRALS,
    ROUTED,
)
from tests.sample import sample_messages, synthetic_nhs_numbers
from tests.support import (
    REPO,
    Isolated,
    Outgoing,
    Stack,
    fetch,
    fetchval,
    free_port,
    isolated_world,
    publish,
    read_topic,
    wait_until,
)

pytestmark = pytest.mark.integration

PROMETHEUS_DIR = REPO / "deploy/prometheus"
DASHBOARD = REPO / "deploy/grafana/dashboards/mash-ops.json"
#: Series Prometheus makes itself rather than scraping them.
PROMETHEUS_OWN = {"up", "ALERTS", "ALERTS_FOR_STATE"}
#: Every process Prometheus scrapes: the four services and the lag exporter.
PROCESSES = (*SERVICES, LAG_EXPORTER)
#: Unique tokens put into every personal field of the marker traffic; none may be logged.
TOKEN = uuid.uuid4().hex[:10]
MARKERS = {
    "child": f"Markchild{TOKEN}",
    "family": f"Markfamily{TOKEN}",
    "adult": f"Markadult{TOKEN}",
    "street": f"{TOKEN} Markerstreet",
    "narrative": f"Marknarrative{TOKEN}",
    "referrer": f"Markreferrer{TOKEN}",
}


# --------------------------------------------------------------------------- Prometheus


class Prometheus:
    """A real Prometheus on a free 127.0.0.1 port with a temporary data directory, scraping
    the given service ports every second with the shipped config's job and alert rules."""

    def __init__(self, run_dir: Path, ports: dict[str, int]) -> None:
        binary = shutil.which("prometheus")
        assert binary, "the prometheus binary is needed: apt-get install prometheus"
        self.binary = binary
        self.run_dir = run_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = run_dir / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(self._config(ports)))
        self.log = run_dir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def _config(ports: dict[str, int]) -> dict[str, Any]:
        """The shipped config, with a 1 s rhythm and this world's ports for each service."""
        config: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
        config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
        config["rule_files"] = [str(PROMETHEUS_DIR / f) for f in config["rule_files"]]
        (job,) = config["scrape_configs"]
        for static in job["static_configs"]:
            static["targets"] = [f"127.0.0.1:{ports[static['labels']['service']]}"]
        return config

    def start(self) -> None:
        """Start the server (its readiness is awaited by :meth:`ready`)."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={self.run_dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self) -> None:
        """SIGTERM, wait, and SIGKILL only if it will not go."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def _get(self, path: str, **params: str) -> Any:
        url = f"{self.url}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read())

    async def ready(self) -> None:
        """Wait until the server answers /-/ready."""

        def answers_now() -> bool:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                    return int(r.status) == 200
            except OSError:
                return False

        async def answers() -> bool:
            assert self.proc is not None
            assert self.proc.poll() is None, self.log.read_text()
            return answers_now()

        await wait_until(answers, timeout=60, what="Prometheus to be ready")

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query; its vector result (labels and value)."""
        body = self._get("/api/v1/query", query=expr)
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def values(self, expr: str, *labels: str) -> dict[tuple[str, ...], float]:
        """An instant query as {label values: value}."""
        return {
            tuple(s["metric"].get(label, "") for label in labels): float(s["value"][1])
            for s in self.query(expr)
        }

    def firing(self) -> list[dict[str, Any]]:
        """The alerts firing now, with their labels."""
        alerts: list[dict[str, Any]] = self._get("/api/v1/alerts")["data"]["alerts"]
        return [a for a in alerts if a["state"] == "firing"]


# --------------------------------------------------------------------------- the world


def marker_traffic(world: Isolated, now: datetime) -> list[Outgoing]:
    """Police notifications and referrals whose personal fields all carry the markers,
    received just now (so latency and statutory clocks are realistic)."""
    nhs = synthetic_nhs_numbers(6, start=9990002000)
    street = {"line1": MARKERS["street"], "town": "Birmingham", "postcode": ex.POSTCODE_SOUTH}
    out: list[Outgoing] = []
    for n in range(3):
        # The last child has no school to tell: an Encompass "unmatched" for the police desk.
        school = {"school_urn": None} if n == 2 else {}
        payload = PoliceNotification.model_validate(
            ex.police_notification(
                notification_id=f"WM-OBS-{TOKEN}-{n}",
                occurred_at=(now - timedelta(hours=2)).isoformat(),
                reported_at=(now - timedelta(minutes=1)).isoformat(),
                children=[
                    ex.police_child(
                        child_ref=f"OBS-P{n}",
                        given_name=MARKERS["child"],
                        family_name=MARKERS["family"],
                        nhs_number=nhs[n],
                        address=street,
                        **school,
                    )
                ],
                adults=[ex.adult(given_name=MARKERS["adult"], family_name=MARKERS["family"])],
                narrative=f"Synthetic. {MARKERS['narrative']} was seen at {MARKERS['street']}.",
            )
        )
        value, headers = encode_binary(
            event_id=str(uuid.uuid4()), source="urn:police:test:obs", data=payload, time=now
        )
        out.append((world.topics(INBOUND_POLICE), payload.notification_id.encode(), value, headers))
    for n in range(3):
        payload_r = Referral.model_validate(
            ex.referral(
                referral_id=f"REF-OBS-{TOKEN}-{n}",
                received_at=(now - timedelta(minutes=1)).isoformat(),
                referrer=ex.referrer(name=MARKERS["referrer"]),
                indicators={"injury_observed": n == 0, "disclosure": "physical" if n else "none"},
                children=[
                    ex.child(
                        child_ref=f"OBS-R{n}",
                        given_name=MARKERS["child"],
                        family_name=MARKERS["family"],
                        date_of_birth="2012-06-01",
                        nhs_number=nhs[3 + n],
                        address=street,
                    )
                ],
                narrative=f"Synthetic. {MARKERS['narrative']}.",
            )
        )
        value, headers = encode_binary(
            event_id=str(uuid.uuid4()), source="urn:portal:test:obs", data=payload_r, time=now
        )
        out.append(
            (world.topics(INBOUND_REFERRALS), payload_r.referral_id.encode(), value, headers)
        )
    return out


def get_text(port: int, path: str) -> str:
    """The body of GET ``path`` on 127.0.0.1:``port`` (errors as text)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return str(r.read().decode())
    except urllib.error.HTTPError as exc:
        return str(exc.read().decode())
    except OSError as exc:
        return repr(exc)


@dataclass
class Observed:
    """The running world: services, their metrics ports, Prometheus, and what was sent."""

    world: Isolated
    ports: dict[str, int]
    prometheus: Prometheus
    log_dir: Path
    valid: int
    markers_sent: int

    def scrape(self, service: str, path: str = "/metrics") -> tuple[int, str]:
        """GET ``path`` on ``service``'s metrics port: (status, body)."""
        url = f"http://127.0.0.1:{self.ports[service]}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return int(r.status), r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


@pytest.fixture(scope="module")
async def observed(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Observed]:
    """Four services, each with its own metrics port, and Prometheus scraping them; the
    sample plus the marker traffic pushed and fully processed."""
    world = await isolated_world(stack)
    run_dir = tmp_path_factory.mktemp("observability")
    ports = {process: free_port() for process in PROCESSES}
    fast = {
        "MASH_HEALTH_PROBE_SECONDS": "1",
        "MASH_RECORD_GAUGES_SECONDS": "1",
        "MASH_LAG_EXPORTER_POLL_SECONDS": "1",
    }
    # One ServiceProcesses per process: each gets its own port.
    processes = [
        ServiceProcesses(
            {
                **world.env(),
                **fast,
                "MASH_METRICS_PORT": str(ports[s]),
                "MASH_LAG_EXPORTER_PORT": str(ports[s]),
            },
            run_dir,
        )
        for s in PROCESSES
    ]
    prometheus = Prometheus(run_dir, ports)
    try:
        for process, procs in zip(PROCESSES, processes, strict=True):
            procs.start(process)
        prometheus.start()
        await prometheus.ready()

        async def all_ready() -> bool:
            ready = prometheus.values("mash_ready", "service")
            up = prometheus.values('up{job="mash"}', "service")
            exporter = prometheus.values("mash_lag_exporter_up", "service")
            return (
                ready == {(s,): 1.0 for s in SERVICES}
                and up == {(p,): 1.0 for p in PROCESSES}
                and exporter == {(LAG_EXPORTER,): 1.0}
            )

        # Scraped before any traffic: counters are seen at 0 first, as in production.
        try:
            await wait_until(all_ready, timeout=120, what="all processes up and ready")
        except AssertionError as exc:
            verdicts = {s: get_text(ports[s], "/readyz") for s in PROCESSES}
            raise AssertionError(f"{exc}; /readyz: {verdicts}") from None

        sample = sample_messages()
        markers = marker_traffic(world, datetime.now(UTC))
        # The first marker message twice: the inbox must skip (and count) the repeat.
        await publish(
            stack.bootstrap,
            [(world.topics(m.topic), m.key, m.value, m.headers) for m in sample]
            + markers
            + markers[:1],
        )
        valid = sum(m.valid for m in sample) + len(markers)

        async def all_reported() -> bool:
            handled = await fetchval(
                world.dsn,
                "SELECT count(*) FROM processed_events WHERE service = 'notifications'"
                " AND topic = $1 AND outcome <> 'pending'",
                world.topics(ROUTED),
            )
            return bool(handled == valid)

        await wait_until(all_reported, timeout=120, what="every contact routed and reported")

        async def repeat_skipped() -> bool:
            skipped = await fetchval(
                world.dsn, "SELECT count(*) FROM audit_log WHERE action = 'duplicate_event_id'"
            )
            return bool(skipped == 1)

        await wait_until(repeat_skipped, timeout=60, what="the repeated message to be skipped")

        lag: dict[tuple[str, ...], float] = {}

        async def caught_up() -> bool:
            nonlocal lag
            lag = prometheus.values(
                "sum by (service, topic, partition) (mash_consumer_lag_messages) > 0",
                "service",
                "topic",
                "partition",
            )
            lag |= prometheus.values(
                "sum by (consumergroup, topic) (kafka_consumergroup_lag) > 0",
                "consumergroup",
                "topic",
            )
            return (
                not lag
                and len(prometheus.query("mash_consumer_lag_messages")) > 0
                and len(prometheus.query("kafka_consumergroup_lag")) > 0
            )

        try:
            await wait_until(caught_up, timeout=60, what="Prometheus to see no lag")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: lag {lag}") from None
        yield Observed(world, ports, prometheus, run_dir / "logs", valid, len(markers))
    finally:
        prometheus.stop()
        for process, procs in zip(PROCESSES, processes, strict=True):
            procs.stop(process)
        for log in sorted((run_dir / "logs").glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-10:]
            print(f"--- {log.name} (last lines)", *tail, sep="\n")


async def settled(
    observed: Observed, expr: str, labels: tuple[str, ...], expected: dict[tuple[str, ...], float]
) -> None:
    """Wait until Prometheus's answer to ``expr`` equals ``expected`` (scrapes lag a bit)."""
    seen: dict[tuple[str, ...], float] = {}

    async def matches() -> bool:
        nonlocal seen
        seen = observed.prometheus.values(expr, *labels)
        return seen == expected

    try:
        await wait_until(matches, timeout=30, what=expr)
    except AssertionError:
        assert seen == expected, expr  # shows the difference


def counts(rows: list[Any], *labels: str) -> dict[tuple[str, ...], float]:
    """SQL rows (labels..., n) as {label values: n}."""
    return {tuple(str(r[label]) for label in labels): float(r["n"]) for r in rows}


# --------------------------------------------------------------------------- series vs record


async def test_routed_per_hub_equals_the_queue_items_recorded(observed: Observed) -> None:
    rows = await fetch(
        observed.world.dsn, "SELECT hub, queue, count(*) AS n FROM queue_items GROUP BY 1, 2"
    )
    assert rows, "the traffic opened queue items"
    by_hub: dict[tuple[str, ...], float] = {}
    for (hub, _queue), n in counts(rows, "hub", "queue").items():
        by_hub[(hub,)] = by_hub.get((hub,), 0) + n
    await settled(observed, "sum by (hub) (mash_routed_total)", ("hub",), by_hub)
    await settled(
        observed,
        "sum by (hub, queue) (mash_routed_total) > 0",
        ("hub", "queue"),
        counts(rows, "hub", "queue"),
    )


async def test_open_items_by_hub_queue_and_rag_equal_the_case_record(observed: Observed) -> None:
    rows = await fetch(
        observed.world.dsn,
        "SELECT hub, queue, rag, count(*) AS n FROM queue_items WHERE status <> 'closed'"
        " GROUP BY 1, 2, 3",
    )
    await settled(
        observed,
        "sum by (hub, queue, rag) (mash_queue_open_items_by_rag) > 0",
        ("hub", "queue", "rag"),
        counts(rows, "hub", "queue", "rag"),
    )
    # Routing's own gauge (without RAG) agrees, and every hub shows its empty queues as 0.
    by_queue: dict[tuple[str, ...], float] = {}
    for (hub, queue, _rag), n in counts(rows, "hub", "queue", "rag").items():
        by_queue[(hub, queue)] = by_queue.get((hub, queue), 0) + n
    await settled(
        observed, "sum by (hub, queue) (mash_queue_open_items) > 0", ("hub", "queue"), by_queue
    )
    zeros = observed.prometheus.values("count(mash_queue_open_items_by_rag == 0)")
    assert zeros[()] == 2 * 3 * 4 - len(rows)  # two hubs x three queues x four RAGs


async def test_decisions_by_outcome_equal_the_decision_events(observed: Observed) -> None:
    decisions = await read_topic(observed.world.stack.bootstrap, observed.world.topics(DECISIONS))
    expected: dict[tuple[str, ...], float] = {}
    for record in decisions:
        key = (record.json()["outcome"],)
        expected[key] = expected.get(key, 0) + 1
    assert sum(expected.values()) == observed.valid
    await settled(observed, "sum by (outcome) (mash_decisions_total)", ("outcome",), expected)


async def test_dead_letters_by_reason_equal_the_dead_letters_recorded(observed: Observed) -> None:
    rows = await fetch(
        observed.world.dsn,
        "SELECT service, reason, count(*) AS n FROM dead_letters GROUP BY 1, 2",
    )
    assert counts(rows, "service", "reason") == {
        ("intake", "malformed_json"): 1,
        ("intake", "missing_header"): 1,
    }
    await settled(
        observed,
        "sum by (service, reason) (mash_events_dead_lettered_total) > 0",
        ("service", "reason"),
        counts(rows, "service", "reason"),
    )
    # Every reason is exported from the start, so the first dead letter is an increase.
    reasons = observed.prometheus.values(
        'count by (reason) (mash_events_dead_lettered_total{service="intake"})', "reason"
    )
    assert len(reasons) >= 6


async def test_the_repeated_message_is_counted_as_a_duplicate(observed: Observed) -> None:
    await settled(
        observed,
        "sum by (service, topic) (mash_duplicates_skipped_total) > 0",
        ("service", "topic"),
        {("intake", observed.world.topics(INBOUND_POLICE)): 1.0},
    )


async def test_pipeline_latency_is_measured_from_publish_and_report_age_from_receipt(
    observed: Observed,
) -> None:
    routed = await fetchval(
        observed.world.dsn,
        "SELECT count(*) FROM processed_events WHERE service = 'routing' AND topic = $1"
        " AND outcome <> 'pending'",
        observed.world.topics(DECISIONS),
    )
    recorded = await fetchval(observed.world.dsn, "SELECT count(*) FROM contacts")
    await settled(
        observed,
        'sum(mash_pipeline_latency_seconds_count{stage="routing_decisions"})',
        (),
        {(): float(routed)},
    )
    # Everything was published a moment ago: each decision was routed within five minutes
    # of its contact's first publish, the sample's years-old receipts included.
    fast = observed.prometheus.values(
        'sum(mash_pipeline_latency_seconds_bucket{stage="routing_decisions", le="300.0"})'
    )
    assert fast == {(): float(routed)}
    # Report age measures the sender's receipt: the marker traffic was received a minute
    # ago, the sample in 2024.
    await settled(observed, "sum(mash_report_age_seconds_count)", (), {(): float(recorded)})
    recent = observed.prometheus.values('sum(mash_report_age_seconds_bucket{le="300.0"})')
    assert recent == {(): float(observed.markers_sent)}


async def test_feedback_by_kind_equals_the_feedback_recorded(observed: Observed) -> None:
    rows = await fetch(observed.world.dsn, "SELECT kind, count(*) AS n FROM feedback GROUP BY kind")
    await settled(
        observed, "sum by (kind) (mash_feedback_sent_total) > 0", ("kind",), counts(rows, "kind")
    )


async def test_statutory_clocks_and_breaches_equal_the_case_record(observed: Observed) -> None:
    dsn = observed.world.dsn
    breaches = await fetch(
        dsn,
        "SELECT q.hub, q.queue, d.deadline, count(*) AS n FROM queue_item_deadlines d"
        " JOIN queue_items q USING (queue_item_id) WHERE d.breached_at IS NOT NULL"
        " GROUP BY 1, 2, 3",
    )
    # The sample was received in 2024: its clocks ran out long ago and were breached.
    assert breaches
    await settled(
        observed,
        "sum by (hub, queue, deadline) (mash_sla_breaches_total) > 0",
        ("hub", "queue", "deadline"),
        counts(breaches, "hub", "queue", "deadline"),
    )
    overdue = await fetch(
        dsn,
        "SELECT q.hub, q.queue, d.deadline, count(*) AS n FROM queue_item_deadlines d"
        " JOIN queue_items q USING (queue_item_id)"
        " WHERE d.met_at IS NULL AND q.status <> 'closed' AND d.due_at <= now()"
        " GROUP BY 1, 2, 3",
    )
    await settled(
        observed,
        "sum by (hub, queue, deadline) (mash_deadlines_overdue) > 0",
        ("hub", "queue", "deadline"),
        counts(overdue, "hub", "queue", "deadline"),
    )
    running = await fetchval(
        dsn,
        "SELECT count(*) FROM queue_item_deadlines d JOIN queue_items q USING (queue_item_id)"
        " WHERE d.met_at IS NULL AND q.status <> 'closed' AND d.due_at > now()",
    )
    # The marker traffic's clocks run (red s47 strategy discussion: 4 hours, so not yet due).
    assert running > 0
    soon = observed.prometheus.values("sum(mash_deadlines_due_next_hour)")
    due_soon = await fetchval(
        dsn,
        "SELECT count(*) FROM queue_item_deadlines d JOIN queue_items q USING (queue_item_id)"
        " WHERE d.met_at IS NULL AND q.status <> 'closed'"
        " AND d.due_at > now() AND d.due_at <= now() + interval '1 hour'",
    )
    assert soon == {(): float(due_soon)}


async def test_lag_is_measured_on_every_assigned_partition(observed: Observed) -> None:
    partitions = observed.prometheus.values(
        "count by (service) (mash_consumer_lag_messages)", "service"
    )
    assigned = observed.prometheus.values("mash_consumer_assigned_partitions", "service")
    assert set(partitions) == {(s,) for s in SERVICES}
    assert partitions == assigned
    assert partitions[("intake",)] == 12  # three inbound topics x four partitions
    ages = observed.prometheus.values("max(mash_consumer_last_commit_age_seconds)")
    assert ages[()] >= 0


async def test_the_lag_exporter_sees_each_groups_partitions_from_outside(
    observed: Observed,
) -> None:
    """The exporter reads from the broker what each worker measures of itself: the same
    partitions of the topics a group commits on, and no lag once the traffic is through."""
    suffix = "-" + observed.world.prefix.rstrip(".")
    expected = {f"mash-{s}{suffix}" for s in SERVICES}
    outside: dict[tuple[str, ...], float] = {}

    async def every_group_seen() -> bool:
        # A group shows once it has committed; Faust commits every second.
        nonlocal outside
        outside = observed.prometheus.values(
            "kafka_consumergroup_lag", "consumergroup", "topic", "partition"
        )
        return {group for group, _topic, _partition in outside} == expected

    try:
        await wait_until(every_group_seen, timeout=30, what="the exporter to read every group")
    except AssertionError as exc:
        _, direct = observed.scrape(LAG_EXPORTER)
        lines = [x for x in direct.splitlines() if x.startswith("kafka_consumergroup_lag{")]
        raise AssertionError(f"{exc}; the exporter serves {lines}") from None
    inside = observed.prometheus.values(
        "mash_consumer_lag_messages", "service", "topic", "partition"
    )
    for service in SERVICES:
        theirs = {(t, p) for g, t, p in outside if g == f"mash-{service}{suffix}"}
        own = {(t, p) for s, t, p in inside if s == service}
        # A topic the group never committed on (no traffic yet) has no offsets to read.
        assert theirs, service
        assert theirs <= own, service
    main_input = {
        "intake": INBOUND_POLICE,
        "screening": CONTACTS,
        "routing": DECISIONS,
        "notifications": ROUTED,
    }
    for service, topic in main_input.items():
        seen = {
            p
            for g, t, p in outside
            if g == f"mash-{service}{suffix}" and t == observed.world.topics(topic)
        }
        assert seen == {"0", "1", "2", "3"}, service
    assert set(outside.values()) == {0.0}
    stalled = observed.prometheus.values("max(mash_consumergroup_stalled_seconds)")
    assert stalled == {(): 0.0}
    topic = observed.world.topics(DECISIONS)
    ends = observed.prometheus.values(
        f'sum(kafka_topic_partition_current_offset{{topic="{topic}"}})'
    )
    decisions = await read_topic(observed.world.stack.bootstrap, observed.world.topics(DECISIONS))
    assert ends == {(): float(len(decisions))}


async def test_build_info_names_each_service_and_version(observed: Observed) -> None:
    info = observed.prometheus.values("mash_build_info", "service", "version", "job")
    assert info == {(s, build_version(), "mash"): 1.0 for s in PROCESSES}


async def test_every_process_exports_process_and_python_metrics(observed: Observed) -> None:
    for process in PROCESSES:
        status, text = observed.scrape(process)
        assert status == 200, process
        for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"):
            assert f"\n{name}" in text, (process, name)
    cpu = observed.prometheus.values('process_cpu_seconds_total{job="mash"}', "service")
    assert set(cpu) == {(p,) for p in PROCESSES}


async def test_the_rules_fire_on_what_the_record_shows(observed: Observed) -> None:
    dsn = observed.world.dsn
    # The sample's 2024 incidents: their Encompass notices went out after 08:30 that day,
    # and their receipt clocks ran out; the s47 strategy discussion clock starts at the
    # decision (now), so it has not.
    late_notices = await fetchval(
        dsn, "SELECT count(*) FROM encompass_notices WHERE sent_at > due_by"
    )
    s47_breaches = await fetchval(
        dsn,
        "SELECT count(*) FROM queue_item_deadlines WHERE breached_at IS NOT NULL"
        " AND deadline = 'strategy_discussion'",
    )
    assert late_notices > 0
    assert s47_breaches == 0
    expected = {"MashDeadLetters", "MashDeadlineMissed", "MashEncompassNoticeLate"}
    firing: list[dict[str, Any]] = []

    async def alerted() -> bool:
        nonlocal firing
        firing = observed.prometheus.firing()
        return expected <= {a["labels"]["alertname"] for a in firing}

    try:
        await wait_until(alerted, timeout=30, what="the alerts to fire")
    except AssertionError:
        assert {a["labels"]["alertname"] for a in firing} >= expected
    letters = {
        (a["labels"]["service"], a["labels"]["reason"])
        for a in firing
        if a["labels"]["alertname"] == "MashDeadLetters"
    }
    assert letters == {("intake", "malformed_json"), ("intake", "missing_header")}
    names = {a["labels"]["alertname"] for a in firing}
    assert "MashS47StrategyDiscussionOverdue" not in names
    assert not names & {"MashServiceDown", "MashLagExporterDown", "MashCommitStalled"}
    # What a pager shows: an absolute link to the alert's section of the README.
    for alert in firing:
        name = alert["labels"]["alertname"]
        assert alert["annotations"]["runbook_url"] == f"{DEFAULT_BASE}#{name.lower()}"


# --------------------------------------------------------------------------- health


def head(port: int, path: str) -> tuple[int, bytes]:
    """Status and body of HEAD ``path`` on 127.0.0.1:``port``."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return int(r.status), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def test_healthz_and_readyz_answer_on_the_metrics_port(observed: Observed) -> None:
    for process in PROCESSES:
        for path in ("/healthz", "/readyz", "/metrics"):
            assert head(observed.ports[process], path) == (200, b""), (process, path)
    status, body = observed.scrape(LAG_EXPORTER, "/readyz")
    assert status == 200, body
    assert set(json.loads(body)["checks"]) == {"event_loop", "broker", "poll"}
    for service in SERVICES:
        status, body = observed.scrape(service, "/healthz")
        assert (status, json.loads(body)["status"]) == (200, "ok"), service
        status, body = observed.scrape(service, "/readyz")
        verdict = json.loads(body)
        assert status == 200, (service, verdict)
        assert {name for name, c in verdict["checks"].items() if c["ok"]} == {
            "event_loop",
            "probe",
            "database",
            "broker",
            "consumer_assigned",
            "consumer_lag",
            "commit_progress",
            "outbox_relay",
        }


# --------------------------------------------------------------------------- dashboard

#: PromQL words that are not metric names.
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "offset", "bool", "inf", "nan",
}  # fmt: skip
#: The sample names of a metric declared by a ``# TYPE name type`` line (text format 0.0.4,
#: where a counter's TYPE line already names ``..._total``).
SAMPLE_SUFFIXES = {
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("", "_count", "_sum"),
}
#: Exported, but with no series until something goes wrong (a database or broker failure).
QUIET_UNTIL_TROUBLE = {"mash_retries_total"}
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
    "$hub": ".*",
    "$job": "mash",
}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        if text[match.end() :].lstrip().startswith("(") or word.lower() in PROMQL_WORDS:
            continue  # a function call or an operator
        names.add(word)
    return names


def dashboard_queries() -> Iterator[tuple[str, str]]:
    """(where, expression) of every query in the shipped dashboard."""
    board = json.loads(DASHBOARD.read_text())
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r}", target["expr"]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":  # not the data source picker
            yield f"variable {variable['name']}", variable["query"]["query"]
    for annotation in board["annotations"]["list"]:
        yield f"annotation {annotation['name']}", annotation["expr"]


def test_metric_names_are_found_in_promql() -> None:
    assert metric_names(
        "histogram_quantile(0.9, sum by (le) (rate(mash_pipeline_latency_seconds_bucket"
        '{hub=~"$hub"}[$__rate_interval]))) + on (hub) group_left max(x_total offset 1h) and up'
    ) == {"mash_pipeline_latency_seconds_bucket", "x_total", "up"}
    assert metric_names('sum(1 - up{job="mash"}) + (sum(1 - mash_ready) or vector(0))') == {
        "up",
        "mash_ready",
    }


async def test_every_dashboard_query_reads_metrics_the_services_export(
    observed: Observed,
) -> None:
    sampled: set[str] = set()
    declared: set[str] = set()
    for process in PROCESSES:
        status, text = observed.scrape(process)
        assert status == 200
        sampled |= {
            line.split("{")[0].split(" ")[0]
            for line in text.splitlines()
            if line and not line.startswith("#")
        }
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, family, kind = line.split(" ")
                declared |= {f"{family}{suffix}" for suffix in SAMPLE_SUFFIXES.get(kind, ("",))}
    assert sampled <= declared
    queries = list(dashboard_queries())
    assert len(queries) > 25
    for where, expr in queries:
        # label_values(<series selector>, <label>): the selector is PromQL too.
        inner = re.fullmatch(r"label_values\((.*), *\w+\)", expr)
        if inner:
            expr = inner.group(1)
        names = metric_names(expr)
        assert names, where
        unknown = names - declared - PROMETHEUS_OWN
        assert not unknown, f"{where}: {sorted(unknown)} not exported by any process"
        silent = names - sampled - PROMETHEUS_OWN - QUIET_UNTIL_TROUBLE
        assert not silent, f"{where}: {sorted(silent)} has no series after the traffic"
        query = expr
        for variable, value in GRAFANA_VARIABLES.items():
            query = query.replace(variable, value)
        answer = observed.prometheus.query(query)  # Prometheus accepts it (fails otherwise)
        if names & {"mash_build_info", "mash_queue_open_items_by_rag"}:
            assert answer, f"{where}: {query} selects nothing with job {GRAFANA_VARIABLES['$job']}"
    # The headline figure agrees with the case record.
    waiting = await fetchval(
        observed.world.dsn, "SELECT count(*) FROM queue_items WHERE status <> 'closed'"
    )
    headline = observed.prometheus.values("sum(mash_queue_open_items_by_rag)")
    assert headline == {(): float(waiting)}
    # Every query filters on the job, and the shipped job name matches it.
    healthy = observed.prometheus.values(
        'sum(1 - up{job=~"mash"}) + (sum(1 - mash_ready{job=~"mash"}) or vector(0))'
        ' + (sum(1 - mash_lag_exporter_up{job=~"mash"}) or vector(0))'
    )
    assert healthy == {(): 0.0}


# --------------------------------------------------------------------------- logs


async def test_logs_carry_ids_and_coordinates_and_no_personal_data(observed: Observed) -> None:
    # The markers did travel: intake kept the raw payloads that carry them.
    carried = await fetchval(
        observed.world.dsn,
        "SELECT count(*) FROM raw_payloads WHERE position($1 in convert_from(value, 'UTF8')) > 0",
        MARKERS["child"],
    )
    assert carried == observed.markers_sent
    coordinates = {"topic", "partition", "offset", "event_id"}
    for service in SERVICES:
        text = (observed.log_dir / f"{service}.log").read_text(errors="replace")
        for marker in MARKERS.values():
            assert marker.lower() not in text.lower(), f"{service} logged {marker!r}"
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        assert lines, service
        for line in lines:
            assert line.get("service") == service, line
            assert isinstance(line.get("event"), str), line
        handled = [
            line
            for line in lines
            if line["event"]
            in {"contact_recorded", "contact_screened", "contact_routed", "feedback_issued"}
        ]
        assert handled, f"{service} logged no processing line"
        for line in handled:
            assert coordinates <= set(line), line
            assert line["topic"].startswith(observed.world.prefix), line
            assert "contact_id" in line, line
