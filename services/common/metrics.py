"""One prometheus-client registry per service, with the metrics of docs/design.md.

Labels never carry ids or names: only bounded sets (topic, reason, outcome, hub...).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

from schemas.events import DeadLetterReason
from services.common.health import HealthState, MetricsServer

# No *_created series beside every counter and histogram: they double the series count and
# nothing here reads them (increase() and rate() handle restarts).
disable_created_metrics()  # type: ignore[no-untyped-call]

#: Buckets in seconds for per-stage processing and pipeline latency.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
#: Events per batch: 1 at a trickle, up to ``MASH_BATCH_MAX_EVENTS`` when catching up.
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)
#: A report reaches the hub minutes to weeks after the sender took it.
REPORT_AGE_BUCKETS = (60, 300, 900, 3600, 4 * 3600, 86400, 3 * 86400, 7 * 86400, 30 * 86400)


def stage_label(service: str, work: str) -> str:
    """The ``stage`` of a service's work in metrics (``mash_processing_seconds``,
    ``mash_batch_events``, ``mash_pipeline_latency_seconds``, ``mash_retries_total``) and
    in agent names: ``<service>_<work>``, lower case, words joined by ``_``.

    ``work`` is the short name of the topic a consumer reads (:func:`topic_work`:
    ``routing_decisions``, ``notifications_routed``) or the task a background loop does
    (``routing_sla_scan``, ``intake_outbox``). One rule, so that a dashboard or an alert
    can name any stage without reading the code, and stages stay apart where the service
    label is not at hand.
    """
    return f"{service}_{work}".replace("-", "_").replace(".", "_").lower()


def topic_work(topic: str) -> str:
    """The short name of a contract topic in a stage label: without ``mash.``,
    ``inbound.`` and the version (``mash.inbound.case-status.v1`` -> ``case_status``)."""
    name = topic.removeprefix("mash.").removeprefix("inbound.")
    name = name.rsplit(".v", 1)[0] if name.rsplit(".v", 1)[-1].isdigit() else name
    return name.replace("-", "_").replace(".", "_")


def register_default_collectors(registry: CollectorRegistry) -> None:
    """Add prometheus-client's process and platform collectors (``process_*``: CPU, memory,
    open files, start time; ``python_*``: interpreter version and garbage collection).

    They live in the library's global registry, which a service's own registry leaves out;
    the collectors are stateless readers of /proc and the interpreter, so the same
    instances serve both.
    """
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)


class ServiceMetrics:
    """The metrics a service exports; every service gets the full set so dashboards align."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        r = self.registry
        register_default_collectors(r)
        self.events_consumed = Counter(
            "mash_events_consumed_total", "Events read from a topic.", ["topic"], registry=r
        )
        self.dead_lettered = Counter(
            "mash_events_dead_lettered_total",
            "Events sent to the dead-letter topic.",
            ["reason"],
            registry=r,
        )
        # Every reason at 0 from the start, so the first dead letter is an increase().
        for reason in DeadLetterReason:
            self.dead_lettered.labels(reason=reason.value)
        self.duplicates_skipped = Counter(
            "mash_duplicates_skipped_total",
            "Events already processed (same id or source reference) and not re-applied.",
            ["topic"],
            registry=r,
        )
        self.decisions = Counter(
            "mash_decisions_total", "Screening decisions.", ["outcome", "rag", "hub"], registry=r
        )
        self.routed = Counter(
            "mash_routed_total", "Queue items routed.", ["queue", "hub"], registry=r
        )
        self.feedback_sent = Counter(
            "mash_feedback_sent_total",
            "Feedback events issued to referrers.",
            ["agency_type", "kind"],
            registry=r,
        )
        self.processing_seconds = Histogram(
            "mash_processing_seconds",
            "Time to process one batch of events (one transaction), per stage.",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_events = Histogram(
            "mash_batch_events",
            "Events per batch (one transaction), per stage.",
            ["stage"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.pipeline_latency_seconds = Histogram(
            "mash_pipeline_latency_seconds",
            "From the first inbound publish of a contact to this stage's effect committing.",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.report_age_seconds = Histogram(
            "mash_report_age_seconds",
            "From the sender's received_at (or reported_at) to intake recording the contact.",
            buckets=REPORT_AGE_BUCKETS,
            registry=r,
        )
        self.queue_open_items = Gauge(
            "mash_queue_open_items", "Open queue items.", ["hub", "queue"], registry=r
        )
        self.sla_breaches = Counter(
            "mash_sla_breaches_total",
            "Missed statutory deadlines.",
            ["hub", "queue", "deadline"],
            registry=r,
        )
        # Notifications: Operation Encompass, webhook delivery, disclosures (firewall audit).
        self.encompass_notices_due = Counter(
            "mash_encompass_notices_due_total",
            "Operation Encompass notices owed to schools (created).",
            registry=r,
        )
        self.encompass_notices_sent = Counter(
            "mash_encompass_notices_sent_total",
            "Operation Encompass notices published to the schools topic, against due_by.",
            ["timeliness"],
            registry=r,
        )
        self.encompass_notices_unsent = Gauge(
            "mash_encompass_notices_unsent",
            "Operation Encompass notices created but not yet published.",
            ["overdue"],
            registry=r,
        )
        self.encompass_unmatched = Counter(
            "mash_encompass_unmatched_total",
            "School-age children in police domestic-abuse notifications with no school to notify.",
            ["reason"],
            registry=r,
        )
        self.encompass_withheld = Counter(
            "mash_encompass_withheld_total",
            "Children of restricted police notifications whose school was not told.",
            ["reason"],
            registry=r,
        )
        self.webhook_attempts = Counter(
            "mash_webhook_attempts_total",
            "Webhook delivery attempts, by result.",
            ["result"],
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "mash_webhook_deliveries_total",
            "Webhook deliveries finished: delivered or dead_lettered after the last attempt.",
            ["status"],
            registry=r,
        )
        self.webhook_pending = Gauge(
            "mash_webhook_deliveries_pending",
            "Webhook deliveries not yet delivered or dead-lettered.",
            registry=r,
        )
        self.disclosures = Counter(
            "mash_disclosures_total",
            "Events that left the hub through the firewall.",
            ["audience", "channel"],
            registry=r,
        )
        # Screening: practitioner confirmations/overrides and the s47 confirmation gate.
        self.practitioner_decisions = Counter(
            "mash_practitioner_decisions_total",
            "Practitioner decisions applied (confirmed, released from the s47 gate, overridden).",
            ["agency", "kind", "result"],
            registry=r,
        )
        self.decisions_held = Counter(
            "mash_decisions_held_total",
            "Automated s47 decisions held for practitioner confirmation.",
            ["hub"],
            registry=r,
        )
        self.outbox_published = Counter(
            "mash_outbox_published_total",
            "Events published from the outbox.",
            ["topic"],
            registry=r,
        )
        self.outbox_pending = Gauge(
            "mash_outbox_pending", "Outbox rows not yet published.", registry=r
        )
        self.retries = Counter(
            "mash_retries_total",
            "Retries after a database or broker failure.",
            ["stage"],
            registry=r,
        )

        # Observability (issue 7). Consumer lag, commit age and readiness are exported by
        # services/common/health.py's HealthCollector: mash_consumer_lag_messages,
        # mash_consumer_last_commit_age_seconds, mash_consumer_assigned_partitions,
        # mash_health_check{check}, mash_ready.
        self.build_info = Gauge(
            "mash_build_info", "Always 1: the running version.", ["version", "service"], registry=r
        )
        self.build_info.labels(version=build_version(), service=service).set(1)
        # Counted from the system of record by routing (services/routing/gauges.py).
        self.queue_open_items_by_rag = Gauge(
            "mash_queue_open_items_by_rag",
            "Open queue items by RAG rating.",
            ["hub", "queue", "rag"],
            registry=r,
        )
        self.deadlines_due_next_hour = Gauge(
            "mash_deadlines_due_next_hour",
            "Unmet statutory clocks of open queue items falling due within the next hour.",
            ["hub", "queue", "deadline"],
            registry=r,
        )
        self.deadlines_overdue = Gauge(
            "mash_deadlines_overdue",
            "Unmet statutory clocks of open queue items already past their due time.",
            ["hub", "queue", "deadline"],
            registry=r,
        )
        self.queue_items_awaiting_practitioners = Gauge(
            "mash_queue_items_awaiting_practitioners",
            "Open s47 queue items whose routing awaits police and children's social care.",
            ["hub"],
            registry=r,
        )
        # Alerted-on series at 0 from the start, so their first increase is seen.
        for timeliness in ("on_time", "late"):
            self.encompass_notices_sent.labels(timeliness=timeliness)

    def serve(self, port: int, health: HealthState | None = None) -> MetricsServer | None:
        """Serve /metrics, /healthz and /readyz on 0.0.0.0:``port`` (port 0: off)."""
        if not port:
            return None
        return MetricsServer(port, self.registry, health).start()


def build_version() -> str:
    """The installed mash-router version (``0+unknown`` when run from a bare checkout)."""
    try:
        return package_version("mash-router")
    except PackageNotFoundError:
        return "0+unknown"
