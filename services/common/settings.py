"""The one settings object every service reads.

Every field comes from an environment variable (``MASH_<FIELD>`` unless an alias is
given). ``KAFKA_BOOTSTRAP_SERVERS`` and ``DATABASE_URL`` keep their conventional names so
the local stack script, docker-compose and the tests all point services the same way.
"""

from __future__ import annotations

from functools import cached_property

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Default /metrics port per service; 0 turns the endpoint off.
DEFAULT_METRICS_PORTS = {"intake": 9101, "screening": 9102, "routing": 9103, "notifications": 9104}


class Settings(BaseSettings):
    """Runtime configuration shared by the four services and the lag exporter (see README
    "Configuration")."""

    model_config = SettingsConfigDict(env_prefix="MASH_", extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:19092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "MASH_KAFKA_BOOTSTRAP_SERVERS"),
        description="Comma-separated host:port list of Kafka brokers.",
    )
    database_url: str = Field(
        default="postgresql://mash@127.0.0.1:54329/mash",
        validation_alias=AliasChoices("DATABASE_URL", "MASH_DATABASE_URL"),
        description="PostgreSQL DSN of the system of record.",
    )
    topic_prefix: str = Field(
        default="",
        description="Prepended to every topic name; lets tests and replays use isolated topics.",
    )
    group_suffix: str = Field(
        default="",
        description="Appended to every consumer group id (isolated test runs).",
    )
    partitions: int = Field(default=4, ge=1, description="Partitions of keyed topics.")
    replication_factor: int = Field(default=1, ge=1, description="Replication of new topics.")
    metrics_port: int | None = Field(
        default=None, ge=0, description="Port of /metrics; default depends on the service."
    )
    log_level: str = Field(default="INFO", description="Root log level.")
    health_probe_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often a service measures consumer lag and pings the broker and database.",
    )
    ready_max_lag: int = Field(
        default=10_000,
        ge=0,
        description="/readyz fails when one partition's consumer lag exceeds this many events.",
    )
    ready_max_commit_age_seconds: float = Field(
        default=300.0,
        gt=0,
        description="/readyz fails when a lagging partition has not committed for this long.",
    )
    lag_exporter_port: int = Field(
        default=9105,
        ge=1,
        le=65535,
        description="Port of the lag exporter's /metrics, /healthz and /readyz"
        " (python -m services.tools.lag_exporter).",
    )
    lag_exporter_poll_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How often the lag exporter reads the mash-* consumer groups' committed"
        " offsets and the topics' end offsets from the broker.",
    )
    record_gauges_seconds: float = Field(
        default=15.0,
        gt=0,
        description="How often routing counts open queue items by RAG and deadlines due soon.",
    )
    topology: str = Field(
        default="two-hubs",
        description="Hub topology: a shipped name (two-hubs, central, four-areas) or a YAML path.",
    )
    max_message_bytes: int = Field(
        default=256 * 1024, description="Inbound values over this are dead-lettered as too_large."
    )
    outbox_batch_size: int = Field(
        default=1000, ge=1, description="Outbox rows published per batch (one flush)."
    )
    batch_max_events: int = Field(
        default=500,
        ge=1,
        description="Most events an agent applies in one database transaction.",
    )
    batch_linger_seconds: float = Field(
        default=0.01,
        gt=0,
        description="How long an agent waits for a batch to fill before applying what it has.",
    )
    outbox_poll_seconds: float = Field(
        default=1.0, gt=0, description="Outbox poll interval when nothing wakes the relay."
    )
    outbox_publish_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long the outbox relay waits for the broker to acknowledge a batch"
        " before it replaces its producer and tries again.",
    )
    session_timeout_seconds: float = Field(
        default=30.0,
        ge=6,
        description="Kafka consumer session timeout: how soon a crashed worker's partitions move.",
    )
    heartbeat_interval_seconds: float = Field(
        default=3.0, gt=0, description="Kafka consumer heartbeat interval."
    )
    webhooks_config: str | None = Field(
        default=None,
        description=(
            "YAML of per-agency webhook endpoints for feedback (format: "
            "services/notifications/webhooks.example.yaml); unset: no webhook delivery."
        ),
    )
    retry_max_seconds: float = Field(
        default=30.0, gt=0, description="Cap of the back-off when the database or broker is down."
    )
    screening_rule_set: str = Field(
        default="default-v3",
        description="Threshold rule set screening applies: a shipped name or a YAML path.",
    )
    screening_s47_confirmation: bool = Field(
        default=False,
        description="Hold automated s47 decisions until police and children's social care"
        " confirm them on mash.practitioner-decisions.v1.",
    )
    clock_file: str | None = Field(
        default=None,
        description="A file holding an RFC 3339 instant read as 'now' (tests); unset: real time.",
    )
    sla_scan_seconds: float = Field(
        default=5.0, gt=0, description="How often routing looks for missed deadlines."
    )
    data_dir: str = Field(
        default=".run/faust",
        description="Where Faust keeps its per-app data folders (relative: to the working"
        " directory, the repository when started by make run).",
    )

    @cached_property
    def bootstrap_list(self) -> list[str]:
        """Broker addresses as a list."""
        return [s.strip() for s in self.kafka_bootstrap_servers.split(",") if s.strip()]

    def metrics_port_for(self, service: str) -> int:
        """The /metrics port of ``service``: the configured one, else its default."""
        if self.metrics_port is not None:
            return self.metrics_port
        return DEFAULT_METRICS_PORTS.get(service, 0)
