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
    """Runtime configuration shared by the four services (see README "Configuration")."""

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
    topology: str = Field(
        default="two-hubs",
        description="Hub topology: a shipped name (two-hubs, central, four-areas) or a YAML path.",
    )
    max_message_bytes: int = Field(
        default=256 * 1024, description="Inbound values over this are dead-lettered as too_large."
    )
    outbox_batch_size: int = Field(
        default=200, ge=1, description="Outbox rows published per batch."
    )
    outbox_poll_seconds: float = Field(
        default=1.0, gt=0, description="Outbox poll interval when nothing wakes the relay."
    )
    session_timeout_seconds: float = Field(
        default=30.0,
        ge=6,
        description="Kafka consumer session timeout: how soon a crashed worker's partitions move.",
    )
    heartbeat_interval_seconds: float = Field(
        default=3.0, gt=0, description="Kafka consumer heartbeat interval."
    )
    retry_max_seconds: float = Field(
        default=30.0, gt=0, description="Cap of the back-off when the database or broker is down."
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
