"""One prometheus-client registry per service, with the metrics of DESIGN.md.

Labels never carry ids or names: only bounded sets (topic, reason, outcome, hub...).
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)

#: Buckets in seconds for per-stage processing and pipeline latency.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class ServiceMetrics:
    """The metrics a service exports; every service gets the full set so dashboards align."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_consumed = Counter(
            "mash_events_consumed_total", "Events read from a topic.", ["topic"], registry=r
        )
        self.dead_lettered = Counter(
            "mash_events_dead_lettered_total",
            "Events sent to the dead-letter topic.",
            ["reason"],
            registry=r,
        )
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
            "Time to process one event, per stage.",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.end_to_end_seconds = Histogram(
            "mash_end_to_end_seconds",
            "From receipt of a contact to its routing.",
            buckets=LATENCY_BUCKETS,
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

    def serve(self, port: int) -> None:
        """Expose /metrics on 0.0.0.0:``port`` (no-op for port 0)."""
        if port:
            start_http_server(port, registry=self.registry)
