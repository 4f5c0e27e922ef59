"""The one settings object every service reads.

Every field comes from an environment variable (``MASH_<FIELD>`` unless an alias is
given). ``KAFKA_BOOTSTRAP_SERVERS`` and ``DATABASE_URL`` keep their conventional names so
the local stack script, docker-compose and the tests all point services the same way.

The ``MASH_KAFKA_*`` security settings say how every Kafka client of the product (Faust,
the outbox relays, the health probe, the lag exporter, the ``mash`` CLI) connects:
:mod:`services.common.kafka_security` turns them into client arguments. Secrets are
:class:`~pydantic.SecretStr` (masked in ``repr``, ``str`` and ``model_dump``) or read from
a ``*_FILE`` when a client is built; an inconsistent combination is refused here with one
line naming the variables, never their secret values (:func:`load_settings`).

One module on purpose: it is the one settings object; most of its length is the 47
variables' descriptions, and the cross-field checks belong next to the fields they compare.
"""

from __future__ import annotations

import os
import sys
from functools import cached_property
from typing import Any, Literal, NoReturn

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Default /metrics port per service; 0 turns the endpoint off.
DEFAULT_METRICS_PORTS = {"intake": 9101, "screening": 9102, "routing": 9103, "notifications": 9104}

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN", "OAUTHBEARER"]

#: Protocols that encrypt (and verify the broker) with TLS.
TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
#: Protocols that authenticate with SASL.
SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})
#: SASL mechanisms that authenticate with a username and a password.
PASSWORD_MECHANISMS = frozenset({"SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"})

_SASL_FIELDS = (
    "kafka_sasl_username",
    "kafka_sasl_password",
    "kafka_sasl_password_file",
    "kafka_sasl_oauth_token_file",
)
_TLS_FIELDS = (
    "kafka_ssl_ca_file",
    "kafka_ssl_cert_file",
    "kafka_ssl_key_file",
    "kafka_ssl_key_password",
    "kafka_ssl_key_password_file",
)
_FILE_FIELDS = (
    "kafka_sasl_password_file",
    "kafka_sasl_oauth_token_file",
    "kafka_ssl_ca_file",
    "kafka_ssl_cert_file",
    "kafka_ssl_key_file",
    "kafka_ssl_key_password_file",
)
#: Files holding a secret: empty is refused, and the value is read at use.
_SECRET_FILE_FIELDS = frozenset(
    {"kafka_sasl_password_file", "kafka_sasl_oauth_token_file", "kafka_ssl_key_password_file"}
)


class SettingsError(ValueError):
    """A setting is malformed, missing or inconsistent with another. The message is one
    line naming the environment variables involved, never a secret's value."""


def env_var(field: str) -> str:
    """The environment variable that sets ``field`` (its first alias, else MASH_<FIELD>)."""
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"MASH_{field.upper()}"


def read_secret_file(path: str, field: str) -> SecretStr:
    """The secret held in the file at ``path`` (set by ``field``), without the trailing line
    break that ``echo`` and many secret stores add. SettingsError if unreadable or empty."""
    try:
        with open(path, encoding="utf-8") as handle:
            value = handle.read().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{env_var(field)}: cannot read {path} ({_why(exc)})") from None
    if not value.strip():
        raise SettingsError(f"{env_var(field)}: {path} is empty")
    return SecretStr(value)


def _why(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return "not UTF-8 text"


class Settings(BaseSettings):
    """Runtime configuration shared by the four services and the lag exporter (see README
    "Configuration")."""

    model_config = SettingsConfigDict(
        env_prefix="MASH_",
        extra="ignore",
        frozen=True,
        # A validation error must not quote the value it refused (it may be a secret).
        hide_input_in_errors=True,
    )

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:19092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "MASH_KAFKA_BOOTSTRAP_SERVERS"),
        description="Comma-separated host:port list of Kafka brokers.",
    )
    kafka_security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT",
        description="How Kafka clients connect: PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or"
        " SASL_SSL (SASL over TLS).",
    )
    kafka_sasl_mechanism: SaslMechanism | None = Field(
        default=None,
        description="SASL mechanism (required with SASL_*): SCRAM-SHA-512, SCRAM-SHA-256,"
        " PLAIN or OAUTHBEARER.",
    )
    kafka_sasl_username: str | None = Field(
        default=None, description="SASL username (SCRAM and PLAIN)."
    )
    kafka_sasl_password: SecretStr | None = Field(
        default=None,
        description="SASL password (SCRAM and PLAIN); prefer MASH_KAFKA_SASL_PASSWORD_FILE.",
    )
    kafka_sasl_password_file: str | None = Field(
        default=None,
        description="File holding the SASL password (read at start-up, when the process"
        " builds its Kafka clients).",
    )
    kafka_sasl_oauth_token_file: str | None = Field(
        default=None,
        description="File holding the OAUTHBEARER token, read again at each authentication"
        " (so a token refreshed in place is used).",
    )
    kafka_ssl_ca_file: str | None = Field(
        default=None,
        description="PEM file of the CA(s) that signed the brokers' certificates (SSL,"
        " SASL_SSL); unset: the system's trusted CAs. Broker host names are always verified.",
    )
    kafka_ssl_cert_file: str | None = Field(
        default=None,
        description="PEM client certificate (mutual TLS); needs MASH_KAFKA_SSL_KEY_FILE.",
    )
    kafka_ssl_key_file: str | None = Field(
        default=None,
        description="PEM private key of the client certificate (mutual TLS).",
    )
    kafka_ssl_key_password: SecretStr | None = Field(
        default=None,
        description="Password of an encrypted client key; prefer MASH_KAFKA_SSL_KEY_PASSWORD_FILE.",
    )
    kafka_ssl_key_password_file: str | None = Field(
        default=None, description="File holding the password of an encrypted client key."
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
    create_topics: bool = Field(
        default=True,
        description="Whether a service creates the product's topics at start; false on a"
        " secured cluster where an operator creates them and services have no create right.",
    )
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
        " (python -m mash.lag_exporter).",
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
        description="A file holding an RFC 3339 instant every service reads as 'now' (tests);"
        " unset: real time.",
    )
    sla_scan_seconds: float = Field(
        default=5.0, gt=0, description="How often routing looks for missed deadlines."
    )
    data_dir: str = Field(
        default=".run/faust",
        description="Where Faust keeps its per-app data folders (relative: to the working"
        " directory, the repository when started by make run).",
    )
    min_insync_replicas: int | None = Field(
        default=None,
        ge=1,
        description="min.insync.replicas of every product topic (at most"
        " MASH_REPLICATION_FACTOR); unset: 2 when the replication factor is 3 or more, else 1."
        " Production: MASH_REPLICATION_FACTOR=3 with 2, so acks=all survives one broker down.",
    )
    raw_payload_retention_days: int = Field(
        default=30,
        ge=1,
        description="Days intake's copy of each inbound message (raw_payloads) is kept before"
        " mash purge deletes it; the contact's record stays.",
    )
    dead_letter_retention_days: int = Field(
        default=30,
        ge=1,
        description="Days a dead letter's contents (the original key, value and headers in"
        " its published outbox row) are kept before mash purge blanks them; the dead_letters"
        " row (where, why, when) stays.",
    )
    outbox_retention_days: int = Field(
        default=7,
        ge=1,
        description="Days the contents of other published outbox rows (events already on"
        " Kafka) are kept before mash purge blanks them; the row stays, so effects keyed on"
        " its event id stay idempotent.",
    )
    purge_batch_size: int = Field(
        default=1000,
        ge=1,
        description="Rows mash purge deletes or blanks per transaction.",
    )

    @field_validator("kafka_security_protocol", mode="before")
    @classmethod
    def _protocol_upper(cls, value: Any) -> Any:
        """Accept ``sasl_ssl`` as well; empty means the default, PLAINTEXT."""
        if isinstance(value, str):
            return value.strip().upper() or "PLAINTEXT"
        return value

    @field_validator("kafka_sasl_mechanism", mode="before")
    @classmethod
    def _mechanism_upper(cls, value: Any) -> Any:
        """Accept ``scram-sha-512`` as well; empty means unset."""
        if isinstance(value, str):
            return value.strip().upper() or None
        return value

    @field_validator(*_SASL_FIELDS, *_TLS_FIELDS, mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        """An empty variable (``MASH_KAFKA_SSL_CA_FILE=``) means unset, as in compose files."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @model_validator(mode="after")
    def _check_kafka_security(self) -> Settings:
        """Refuse combinations a client would ignore or fail on, naming the variables."""
        problem = self.kafka_security_problem()
        if problem is not None:
            raise ValueError(problem)
        return self

    def kafka_security_problem(self) -> str | None:
        """What is inconsistent in the Kafka security settings (one line), or None."""
        protocol = self.kafka_security_protocol
        mechanism = self.kafka_sasl_mechanism
        given = {f for f in (*_SASL_FIELDS, *_TLS_FIELDS) if getattr(self, f) is not None}
        protocol_var = f"{env_var('kafka_security_protocol')}={protocol}"
        if protocol not in SASL_PROTOCOLS:
            stray = [f for f in ("kafka_sasl_mechanism", *_SASL_FIELDS) if getattr(self, f)]
            if stray:
                return (
                    f"{env_var(stray[0])} is set but {protocol_var} uses no SASL"
                    " (use SASL_SSL or SASL_PLAINTEXT, or unset it)"
                )
        if protocol not in TLS_PROTOCOLS:
            stray = [f for f in _TLS_FIELDS if f in given]
            if stray:
                return (
                    f"{env_var(stray[0])} is set but {protocol_var} uses no TLS"
                    " (use SSL or SASL_SSL, or unset it)"
                )
        if protocol in SASL_PROTOCOLS:
            if mechanism is None:
                return (
                    f"{protocol_var} needs {env_var('kafka_sasl_mechanism')}"
                    " (SCRAM-SHA-512, SCRAM-SHA-256, PLAIN or OAUTHBEARER)"
                )
            if mechanism in PASSWORD_MECHANISMS:
                problem = self._password_problem(mechanism, given)
            else:
                problem = self._oauth_problem(given)
            if problem is not None:
                return problem
        if ("kafka_ssl_cert_file" in given) != ("kafka_ssl_key_file" in given):
            return (
                f"{env_var('kafka_ssl_cert_file')} and {env_var('kafka_ssl_key_file')}"
                " go together (mutual TLS needs both the certificate and its key)"
            )
        key_password = {"kafka_ssl_key_password", "kafka_ssl_key_password_file"} & given
        if key_password and "kafka_ssl_key_file" not in given:
            return f"{env_var(min(key_password))} is set without {env_var('kafka_ssl_key_file')}"
        if len(key_password) == 2:
            return (
                f"give one of {env_var('kafka_ssl_key_password')} and"
                f" {env_var('kafka_ssl_key_password_file')}, not both"
            )
        return self._unreadable_file(given)

    def _password_problem(self, mechanism: str, given: set[str]) -> str | None:
        mechanism_var = f"{env_var('kafka_sasl_mechanism')}={mechanism}"
        if "kafka_sasl_oauth_token_file" in given:
            return f"{env_var('kafka_sasl_oauth_token_file')} is for OAUTHBEARER, not {mechanism}"
        if "kafka_sasl_username" not in given:
            return f"{mechanism_var} needs {env_var('kafka_sasl_username')}"
        passwords = {"kafka_sasl_password", "kafka_sasl_password_file"} & given
        if len(passwords) != 1:
            return (
                f"{mechanism_var} needs one of {env_var('kafka_sasl_password')} and"
                f" {env_var('kafka_sasl_password_file')}" + (", not both" if passwords else "")
            )
        return None

    def _oauth_problem(self, given: set[str]) -> str | None:
        mechanism_var = f"{env_var('kafka_sasl_mechanism')}=OAUTHBEARER"
        if "kafka_sasl_oauth_token_file" not in given:
            return f"{mechanism_var} needs {env_var('kafka_sasl_oauth_token_file')}"
        stray = sorted(
            given & {"kafka_sasl_username", "kafka_sasl_password", "kafka_sasl_password_file"}
        )
        if stray:
            return f"{env_var(stray[0])} is not used with {mechanism_var} (unset it)"
        return None

    def _unreadable_file(self, given: set[str]) -> str | None:
        for field in _FILE_FIELDS:
            if field not in given:
                continue
            path = str(getattr(self, field))
            if field in _SECRET_FILE_FIELDS:
                try:
                    read_secret_file(path, field)
                except SettingsError as exc:
                    return str(exc)
            elif not os.access(path, os.R_OK) or not os.path.isfile(path):
                reason = "no such file" if not os.path.exists(path) else "not a readable file"
                return f"{env_var(field)}: cannot read {path} ({reason})"
        return None

    def kafka_sasl_password_value(self) -> SecretStr | None:
        """The SASL password: the variable's, else the file's (read now), else None."""
        if self.kafka_sasl_password is not None:
            return self.kafka_sasl_password
        if self.kafka_sasl_password_file is not None:
            return read_secret_file(self.kafka_sasl_password_file, "kafka_sasl_password_file")
        return None

    def kafka_ssl_key_password_value(self) -> SecretStr | None:
        """The client key's password: the variable's, else the file's (read now), else None."""
        if self.kafka_ssl_key_password is not None:
            return self.kafka_ssl_key_password
        if self.kafka_ssl_key_password_file is not None:
            return read_secret_file(self.kafka_ssl_key_password_file, "kafka_ssl_key_password_file")
        return None

    @cached_property
    def bootstrap_list(self) -> list[str]:
        """Broker addresses as a list."""
        return [s.strip() for s in self.kafka_bootstrap_servers.split(",") if s.strip()]

    def metrics_port_for(self, service: str) -> int:
        """The /metrics port of ``service``: the configured one, else its default."""
        if self.metrics_port is not None:
            return self.metrics_port
        return DEFAULT_METRICS_PORTS.get(service, 0)

    @model_validator(mode="after")
    def _check_min_insync_replicas(self) -> Settings:
        """Refuse a min.insync.replicas no partition could meet (acks=all would fail)."""
        if self.min_insync_replicas is not None and (
            self.min_insync_replicas > self.replication_factor
        ):
            raise ValueError(
                f"{env_var('min_insync_replicas')}={self.min_insync_replicas} exceeds"
                f" {env_var('replication_factor')}={self.replication_factor}: every write"
                " with acks=all would be refused"
            )
        return self

    @property
    def topic_min_insync_replicas(self) -> int:
        """The min.insync.replicas product topics get: the setting, else derived from the
        replication factor (one replica may be down: 2 of 3; never more than exist)."""
        if self.min_insync_replicas is not None:
            return self.min_insync_replicas
        return default_min_insync_replicas(self.replication_factor)


def default_min_insync_replicas(replication_factor: int) -> int:
    """2 with three or more replicas (one broker may be down without refusing acks=all
    writes or losing acknowledged ones), else 1 (a single local broker, or two)."""
    return 2 if replication_factor >= 3 else 1


def load_settings(**overrides: Any) -> Settings:
    """The settings from the environment (``overrides`` by variable or field name win);
    SettingsError with one line, naming the variable and never its value, when refused."""
    try:
        return Settings(**{_init_name(name): value for name, value in overrides.items()})
    except ValidationError as exc:
        raise SettingsError(describe_error(exc)) from None


def _init_name(name: str) -> str:
    """The keyword Settings takes for an override given by field or variable name. An
    unknown name is refused: extra="ignore" (for the environment) would drop it silently."""
    field = name.lower().removeprefix("mash_") if name.upper().startswith("MASH_") else name
    info = Settings.model_fields.get(field)
    if info is None:
        if any(name in _aliases(other) for other in Settings.model_fields.values()):
            return name  # an aliased variable, e.g. DATABASE_URL
        raise SettingsError(f"{name}: no such setting")
    aliases = _aliases(info)
    return aliases[0] if aliases else field


def _aliases(info: Any) -> list[str]:
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    return [alias] if isinstance(alias, str) else []


def describe_error(error: ValidationError) -> str:
    """A settings validation error as one line: ``VARIABLE: what`` for each problem."""
    parts = []
    for problem in error.errors(include_input=False, include_url=False):
        message = str(problem["msg"]).removeprefix("Value error, ")
        field = str(problem["loc"][0]) if problem["loc"] else ""
        where = env_var(field) if field in Settings.model_fields else field
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def refuse_settings(program: str, error: SettingsError) -> NoReturn:
    """Stop ``program`` at start-up with the settings problem on one line (exit code 2)."""
    print(f"{program}: invalid settings: {error}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def settings_or_exit(program: str) -> Settings:
    """The settings from the environment, or stop ``program`` with a one-line message."""
    try:
        return load_settings()
    except SettingsError as exc:
        refuse_settings(program, exc)
