"""Webhook configuration, the signed CloudEvents request and the retry schedule."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from schemas import examples as ex
from schemas.events import Feedback
from services.notifications.webhooks import (
    DELIVERY_HEADER,
    EXAMPLE_FILE,
    SIGNATURE_HEADER,
    DeliveryPolicy,
    Endpoint,
    WebhookConfigError,
    audit_destination,
    backoff_seconds,
    is_exhausted,
    load_webhooks,
    parse_webhooks,
    signature,
    signed_request,
    verify_signature,
)

SECRET = "a-synthetic-secret-for-tests"
FEEDBACK = Feedback.model_validate(ex.feedback())
TIME = datetime(2024, 3, 13, 9, 0, tzinfo=UTC)


def endpoint(mode: str = "structured") -> Endpoint:
    config = parse_webhooks(
        f"""
agencies:
  gp-1: {{url: "https://gp.example.invalid/hook", secret: "{SECRET}", mode: {mode}}}
""",
        {},
    )
    found = config.endpoint("gp-1")
    assert found is not None
    return found


def test_the_shipped_example_loads_with_its_secret_from_the_environment() -> None:
    config = load_webhooks(EXAMPLE_FILE, {"MASH_WEBHOOK_SECRET_GP_SAMPLE_01": SECRET})
    gp = config.endpoint("gp-sample-01")
    assert gp is not None
    assert gp.secret == SECRET.encode()
    assert gp.mode == "structured"
    assert SECRET not in repr(gp), "secrets never show in a repr (or a log)"
    assert config.policy.max_attempts == 10
    assert config.endpoint("west-midlands") is None


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("agencies: {a: {url: 'https://x.invalid', secret_env: S}}", {}, "S is not set"),
        (
            "agencies: {a: {url: 'https://x.invalid', secret_env: S, secret: 'x'}}",
            {"S": SECRET},
            "exactly one",
        ),
        ("agencies: {a: {url: 'https://x.invalid'}}", {}, "exactly one"),
        ("agencies: {a: {url: 'ftp://x.invalid', secret: '" + SECRET + "'}}", {}, "http"),
        ("agencies: {a: {url: 'https://x.invalid', secret: 'short'}}", {}, "16 characters"),
        ("delivery: {max_attempts: 0}", {}, "max_attempts"),
        ("delivery: {retries: 3}", {}, "retries"),
        ("agencies: [", {}, "not valid YAML at line 1"),
    ],
)
def test_bad_configuration_is_refused_with_one_line(
    text: str, env: dict[str, str], message: str
) -> None:
    with pytest.raises(WebhookConfigError, match=message) as info:
        parse_webhooks(text, env, "hooks.yaml")
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("hooks.yaml: ")


def test_signature_is_hmac_sha256_of_the_body_and_verifies() -> None:
    body = b'{"x": 1}'
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert signature(SECRET.encode(), body) == f"sha256={expected}"
    assert verify_signature(SECRET.encode(), body, f"sha256={expected}")
    assert not verify_signature(SECRET.encode(), body + b" ", f"sha256={expected}")
    assert not verify_signature(b"another-secret-entirely", body, f"sha256={expected}")
    assert not verify_signature(SECRET.encode(), body, None)


def test_structured_request_carries_the_envelope_and_data_in_the_body() -> None:
    request = signed_request(
        endpoint("structured"),
        delivery_id="DEL-1",
        event_id=FEEDBACK.feedback_id,
        source="urn:mash-router:notifications",
        time=TIME,
        feedback=FEEDBACK,
    )
    assert request.url == "https://gp.example.invalid/hook"
    body = json.loads(request.body)
    assert body["specversion"] == "1.0"
    assert body["id"] == FEEDBACK.feedback_id
    assert body["type"] == "uk.gov.mash.feedback.v1"
    assert body["source"] == "urn:mash-router:notifications"
    assert Feedback.model_validate(body["data"]) == FEEDBACK
    assert request.headers["content-type"].startswith("application/cloudevents+json")
    assert verify_signature(SECRET.encode(), request.body, request.headers[SIGNATURE_HEADER])
    assert request.headers[DELIVERY_HEADER] == "DEL-1"


def test_binary_request_carries_ce_headers_and_the_feedback_as_body() -> None:
    request = signed_request(
        endpoint("binary"),
        delivery_id="DEL-2",
        event_id=FEEDBACK.feedback_id,
        source="urn:mash-router:notifications",
        time=TIME,
        feedback=FEEDBACK,
    )
    assert Feedback.model_validate_json(request.body) == FEEDBACK
    assert request.headers["ce-id"] == FEEDBACK.feedback_id
    assert request.headers["ce-specversion"] == "1.0"
    assert request.headers["ce-type"] == "uk.gov.mash.feedback.v1"
    assert datetime.fromisoformat(request.headers["ce-time"]) == TIME
    assert request.headers["content-type"] == "application/json"
    assert not any(k.startswith("ce_") for k in request.headers)
    assert verify_signature(SECRET.encode(), request.body, request.headers[SIGNATURE_HEADER])


def test_back_off_doubles_up_to_the_cap_and_stops_after_max_attempts() -> None:
    policy = DeliveryPolicy(
        max_attempts=5, initial_backoff_seconds=2, backoff_multiplier=2, max_backoff_seconds=10
    )
    assert [backoff_seconds(n, policy) for n in range(1, 6)] == [2, 4, 8, 10, 10]
    assert backoff_seconds(10_000, policy) == 10
    assert [is_exhausted(n, policy) for n in range(1, 7)] == [False] * 4 + [True, True]


def test_the_audit_records_the_url_without_credentials_or_query() -> None:
    url = "https://user:pw@gp.example.invalid:8443/hook/feedback?token=abc#x"
    assert audit_destination(url) == "https://gp.example.invalid:8443/hook/feedback"
