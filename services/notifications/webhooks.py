"""Webhook delivery of feedback to agencies without Kafka: configuration, the signed
CloudEvents HTTP request, and the retry schedule — pure, no I/O.

Configuration is a YAML file named by ``MASH_WEBHOOKS_CONFIG`` (format and defaults:
``webhooks.example.yaml`` beside this file). Each agency (the ``agency_id`` feedback is
keyed by; for the police, the force) has an endpoint URL, a secret and a CloudEvents HTTP
mode. Secrets come from environment variables named in the file (``secret_env``), so the
file itself can be committed; a literal ``secret`` is accepted for local runs and tests.

The request body is the CloudEvent of a feedback event that already went through the
firewall: structured mode (``application/cloudevents+json``, envelope and ``data`` in the
body) or binary mode (``ce-*`` headers, the feedback JSON as the body). Header
``X-Mash-Signature-256: sha256=<hex>`` is the HMAC-SHA256 of the exact body bytes with the
agency's secret, so the receiver can check both origin and integrity before parsing; the
body carries the event id and time, so a receiver de-duplicates replays on ``id``.

Delivery is at least once. Every failure — a non-2xx answer (redirects included: a
signed body is never sent on to another address), a timeout, a refused connection — is
retried after ``initial_backoff_seconds * backoff_multiplier ** (attempt - 1)`` seconds,
capped at ``max_backoff_seconds``, until ``max_attempts`` attempts have failed; then the
delivery is **dead-lettered**: its status becomes ``dead_lettered`` in Postgres, an error
is logged and ``mash_webhook_deliveries_total{status="dead_lettered"}`` counts it. (The
``mash.deadletter.v1`` topic holds *inbound* messages that could not be accepted; an
outbound delivery the agency never took is a different fact, kept with its attempts.)
The feedback itself is still on its agency's ``mash.feedback.<agency>.v1`` and in the
``feedback`` table.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from schemas.cloudevents import encode_binary, encode_structured
from schemas.events import Feedback
from services.common.yaml_files import load_yaml_model

Mode = Literal["structured", "binary"]

SIGNATURE_HEADER = "X-Mash-Signature-256"
DELIVERY_HEADER = "X-Mash-Delivery-Id"
EXAMPLE_FILE = Path(__file__).with_name("webhooks.example.yaml")
#: What the file is called in its one-line errors (services/common/yaml_files.py).
_NAME_IN_ERRORS = "webhook configuration"


class WebhookConfigError(ValueError):
    """The webhook configuration is missing, unreadable or inconsistent (one line)."""


class DeliveryPolicy(BaseModel):
    """How hard to try: attempts, back-off, timeout, and how often to look for work."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: int = Field(default=10, ge=1, le=100)
    initial_backoff_seconds: float = Field(default=5.0, gt=0)
    backoff_multiplier: float = Field(default=2.0, ge=1)
    max_backoff_seconds: float = Field(default=1800.0, gt=0)
    timeout_seconds: float = Field(default=10.0, gt=0)
    poll_seconds: float = Field(default=1.0, gt=0)
    batch_size: int = Field(default=20, ge=1, le=500)


class EndpointConfig(BaseModel):
    """One agency's endpoint as written in the file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    secret_env: str | None = None
    secret: SecretStr | None = None
    mode: Mode = "structured"

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return url


class WebhooksFile(BaseModel):
    """The whole file: a delivery policy and the agencies' endpoints."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    delivery: DeliveryPolicy = DeliveryPolicy()
    agencies: dict[str, EndpointConfig] = Field(default_factory=dict)


@dataclass(frozen=True)
class Endpoint:
    """An agency's endpoint with its secret resolved."""

    agency_id: str
    url: str
    mode: Mode
    secret: bytes = field(repr=False)


@dataclass(frozen=True)
class WebhookConfig:
    """Endpoints by agency id, and the delivery policy."""

    policy: DeliveryPolicy
    endpoints: Mapping[str, Endpoint]

    def endpoint(self, agency_id: str) -> Endpoint | None:
        """The endpoint of ``agency_id``, or None if it takes feedback from Kafka only."""
        return self.endpoints.get(agency_id)


def parse_webhooks(text: str, environ: Mapping[str, str], where: str = "<text>") -> WebhookConfig:
    """Parse and check a webhook configuration; secrets are looked up in ``environ``."""
    parsed = load_yaml_model(
        where, WebhooksFile, WebhookConfigError, what=_NAME_IN_ERRORS, text=text
    )
    return _with_secrets(parsed, environ, where)


def load_webhooks(path: str | Path, environ: Mapping[str, str] | None = None) -> WebhookConfig:
    """Read the webhook configuration file at ``path`` (secrets from the environment)."""
    parsed = load_yaml_model(Path(path), WebhooksFile, WebhookConfigError, what=_NAME_IN_ERRORS)
    return _with_secrets(parsed, os.environ if environ is None else environ, str(path))


def _with_secrets(parsed: WebhooksFile, environ: Mapping[str, str], where: str) -> WebhookConfig:
    # Each agency's secret, from the environment variable it names or (tests, local runs)
    # written in the file; exactly one of the two, and long enough to sign with.
    endpoints: dict[str, Endpoint] = {}
    for agency_id, cfg in parsed.agencies.items():
        if (cfg.secret is None) == (cfg.secret_env is None):
            raise WebhookConfigError(
                f"{where}: agencies.{agency_id}: give exactly one of secret_env and secret"
            )
        if cfg.secret_env is not None:
            secret = environ.get(cfg.secret_env, "")
            if not secret:
                raise WebhookConfigError(
                    f"{where}: agencies.{agency_id}: environment variable "
                    f"{cfg.secret_env} is not set"
                )
        else:
            assert cfg.secret is not None
            secret = cfg.secret.get_secret_value()
        if len(secret) < 16:
            raise WebhookConfigError(
                f"{where}: agencies.{agency_id}: the secret must be at least 16 characters"
            )
        endpoints[agency_id] = Endpoint(agency_id, cfg.url, cfg.mode, secret.encode())
    return WebhookConfig(parsed.delivery, endpoints)


def signature(secret: bytes, body: bytes) -> str:
    """The signature header value: ``sha256=`` and the hex HMAC-SHA256 of ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """What a receiver does: recompute the HMAC and compare in constant time."""
    return header is not None and hmac.compare_digest(signature(secret, body), header)


@dataclass(frozen=True)
class HttpRequest:
    """A POST to make: URL, body bytes and headers (signature included)."""

    url: str
    body: bytes
    headers: Mapping[str, str]


def cloudevent_http(
    *, event_id: str, source: str, time: datetime, feedback: Feedback, mode: Mode
) -> tuple[bytes, dict[str, str]]:
    """Body and CloudEvents headers of a feedback event (HTTP binding, either mode)."""
    if mode == "structured":
        body, kafka_headers = encode_structured(
            event_id=event_id, source=source, data=feedback, time=time
        )
    else:
        body, kafka_headers = encode_binary(
            event_id=event_id, source=source, data=feedback, time=time
        )
    # The Kafka binding spells attributes ce_id; the HTTP binding ce-id.
    headers = {
        (f"ce-{k.removeprefix('ce_')}" if k.startswith("ce_") else k): v.decode()
        for k, v in kafka_headers
    }
    return body, headers


def signed_request(
    endpoint: Endpoint,
    *,
    delivery_id: str,
    event_id: str,
    source: str,
    time: datetime,
    feedback: Feedback,
) -> HttpRequest:
    """The signed POST of one feedback event to ``endpoint``."""
    body, headers = cloudevent_http(
        event_id=event_id, source=source, time=time, feedback=feedback, mode=endpoint.mode
    )
    headers[SIGNATURE_HEADER] = signature(endpoint.secret, body)
    headers[DELIVERY_HEADER] = delivery_id
    return HttpRequest(endpoint.url, body, headers)


def backoff_seconds(failed_attempts: int, policy: DeliveryPolicy) -> float:
    """How long to wait after the ``failed_attempts``-th failure before trying again."""
    exponent = max(failed_attempts - 1, 0)
    # Cap the exponent first so a large attempt count cannot overflow the float.
    delay = policy.initial_backoff_seconds * policy.backoff_multiplier ** min(exponent, 64)
    return float(min(delay, policy.max_backoff_seconds))


def is_exhausted(failed_attempts: int, policy: DeliveryPolicy) -> bool:
    """Whether a delivery that failed this many times is dead-lettered."""
    return failed_attempts >= policy.max_attempts


def audit_destination(url: str) -> str:
    """The URL as recorded in the audit: without userinfo, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
