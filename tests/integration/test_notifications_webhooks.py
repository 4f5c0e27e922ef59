"""Webhook delivery against a local aiohttp receiver on 127.0.0.1: signed CloudEvents the
receiver verifies, retries with back-off, dead letters after the last attempt, every
attempt recorded, and nothing lost when the notifications process is killed."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import pytest
from aiohttp import web

from services.notifications.firewall import ALLOW_LIST
from services.notifications.webhooks import SIGNATURE_HEADER, verify_signature
from tests.integration.harness import metric_value
from tests.integration.notifications_harness import (
    NotificationsUnderTest,
    contact,
    referral_source,
    routed_for,
)
from tests.support import Stack, fetch, fetchval, free_port, wait_until

pytestmark = pytest.mark.integration

SECRET_OK = "ok-agency-synthetic-secret-0001"
SECRET_OTHERS = "other-agencies-synthetic-secret"
MAX_ATTEMPTS = 5
INITIAL_BACKOFF = 0.2


@dataclass
class Hit:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    at: float


@dataclass
class Receiver:
    """A local agency endpoint: verifies signatures, answers as each path is told to."""

    port: int
    hits: list[Hit] = field(default_factory=list)
    later_is_up: bool = False

    def secret_for(self, path: str) -> bytes:
        # /wrong expects a secret other than the one mash-router signs with.
        if path == "/ok":
            return SECRET_OK.encode()
        if path == "/wrong":
            return b"the-receiver-expects-this-one"
        return SECRET_OTHERS.encode()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        path = request.path
        verified = verify_signature(
            self.secret_for(path), body, request.headers.get(SIGNATURE_HEADER)
        )
        self.hits.append(Hit(path, dict(request.headers), body, verified, time.monotonic()))
        if not verified:
            return web.Response(status=401)
        if path == "/down":
            return web.Response(status=500)
        if path == "/flaky" and len(self.at(path)) <= 2:
            return web.Response(status=503)
        if path == "/later" and not self.later_is_up:
            return web.Response(status=503)
        return web.Response(status=202)

    def at(self, path: str) -> list[Hit]:
        """Requests to ``path`` so far."""
        return [h for h in self.hits if h.path == path]


@dataclass
class World:
    n: NotificationsUnderTest
    receiver: Receiver


CONFIG = """
delivery:
  max_attempts: {max_attempts}
  initial_backoff_seconds: {initial}
  backoff_multiplier: 2
  max_backoff_seconds: 2
  timeout_seconds: 2
  poll_seconds: 0.05
agencies:
  gp-ok: {{url: "{base}/ok", secret_env: MASH_TEST_WEBHOOK_SECRET_OK}}
  gp-binary: {{url: "{base}/binary", secret: "{others}", mode: binary}}
  gp-flaky: {{url: "{base}/flaky", secret: "{others}"}}
  gp-down: {{url: "{base}/down", secret: "{others}"}}
  gp-wrong: {{url: "{base}/wrong", secret: "{others}"}}
  gp-later: {{url: "{base}/later", secret: "{others}"}}
"""


@pytest.fixture(scope="module")
async def world(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    receiver = Receiver(free_port())
    app = web.Application()
    app.router.add_post("/{path:.*}", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", receiver.port).start()
    folder = tmp_path_factory.mktemp("webhooks")
    config = folder / "webhooks.yaml"
    config.write_text(
        CONFIG.format(
            max_attempts=MAX_ATTEMPTS,
            initial=INITIAL_BACKOFF,
            base=f"http://127.0.0.1:{receiver.port}",
            others=SECRET_OTHERS,
        )
    )
    n = await NotificationsUnderTest.start(
        stack,
        folder,
        env={"MASH_WEBHOOKS_CONFIG": str(config), "MASH_TEST_WEBHOOK_SECRET_OK": SECRET_OK},
    )
    yield World(n, receiver)
    await n.stop()
    await runner.cleanup()


async def referral_from(w: World, name: str, agency: str) -> str:
    """Send a contact from ``agency`` (a GP); return the acknowledgement's feedback id."""
    c = contact(name, source=referral_source(name, "3A", agency), incident_type=None)
    await w.n.feed(c)
    assert await w.n.outcome(c.contact_id) == "applied"
    feedback_id = await fetchval(
        w.n.world.dsn,
        "SELECT feedback_id FROM feedback WHERE contact_id = $1 AND kind = 'acknowledgement'",
        c.contact_id,
    )
    assert isinstance(feedback_id, str)
    return feedback_id


async def delivery_finished(w: World, feedback_id: str, timeout: float = 60) -> dict[str, Any]:
    """Wait until the delivery of ``feedback_id`` is delivered or dead-lettered."""

    async def finished() -> dict[str, Any] | None:
        rows = await fetch(
            w.n.world.dsn,
            "SELECT delivery_id, agency_id, status, attempts, last_error FROM webhook_deliveries"
            " WHERE event_id = $1 AND status IN ('delivered', 'dead_lettered')",
            feedback_id,
        )
        return dict(rows[0]) if rows else None

    found = await wait_until(finished, timeout=timeout, what=f"delivery of {feedback_id}")
    assert found is not None
    return found


async def attempts(w: World, delivery_id: str) -> list[tuple[str, int | None]]:
    rows = await fetch(
        w.n.world.dsn,
        "SELECT result, status_code FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt",
        delivery_id,
    )
    return [(r["result"], r["status_code"]) for r in rows]


async def test_a_structured_cloudevent_is_delivered_and_the_receiver_verifies_its_signature(
    world: World,
) -> None:
    feedback_id = await referral_from(world, "WH-OK", "gp-ok")
    delivery = await delivery_finished(world, feedback_id)
    assert (delivery["status"], delivery["attempts"], delivery["agency_id"]) == (
        "delivered",
        1,
        "gp-ok",
    )
    assert await attempts(world, delivery["delivery_id"]) == [("delivered", 202)]
    (hit,) = [h for h in world.receiver.at("/ok") if feedback_id.encode() in h.body]
    assert hit.verified, "signed with the agency's secret, over the exact body"
    assert hit.headers["Content-Type"].startswith("application/cloudevents+json")
    event = json.loads(hit.body)
    assert event["specversion"] == "1.0"
    assert event["id"] == feedback_id
    assert event["type"] == "uk.gov.mash.feedback.v1"
    assert event["source"] == "urn:mash-router:notifications"
    data = {k: v for k, v in event["data"].items() if v is not None}
    assert set(data) <= ALLOW_LIST["professional"]
    assert data["kind"] == "acknowledgement"
    assert data["referrer_reference"] == "REF-WH-OK"
    audit = await fetch(
        world.n.world.dsn,
        "SELECT destination, recipient, audience, rule, fields FROM disclosures"
        " WHERE event_id = $1 AND channel = 'webhook'",
        feedback_id,
    )
    assert [(a["destination"], a["recipient"], a["audience"], a["rule"]) for a in audit] == [
        (
            f"http://127.0.0.1:{world.receiver.port}/ok",
            "gp-ok",
            "professional",
            "feedback.acknowledgement",
        )
    ]
    assert set(audit[0]["fields"]) == set(data)

    async def counted() -> bool:
        text = world.n.metrics()
        return metric_value(text, "mash_webhook_deliveries_total", status="delivered") >= 1

    await wait_until(counted, timeout=30, what="the delivery to be counted")


async def test_binary_mode_carries_the_envelope_in_ce_headers(world: World) -> None:
    feedback_id = await referral_from(world, "WH-BIN", "gp-binary")
    delivery = await delivery_finished(world, feedback_id)
    assert delivery["status"] == "delivered"
    (hit,) = [h for h in world.receiver.at("/binary") if feedback_id.encode() in h.body]
    assert hit.verified
    assert hit.headers["ce-id"] == feedback_id
    assert hit.headers["ce-type"] == "uk.gov.mash.feedback.v1"
    assert hit.headers["ce-specversion"] == "1.0"
    assert hit.headers["Content-Type"] == "application/json"
    assert json.loads(hit.body)["feedback_id"] == feedback_id


async def test_outcomes_and_updates_are_delivered_too(world: World) -> None:
    name = "WH-OUT"
    c = contact(name, source=referral_source(name, "3A", "gp-ok"), incident_type=None)
    await world.n.feed(c)
    r = routed_for(c, "0")
    await world.n.feed(r)
    assert await world.n.outcome(r.routed_id) == "outcome"
    outcome_id = await fetchval(
        world.n.world.dsn,
        "SELECT feedback_id FROM feedback WHERE contact_id = $1 AND kind = 'outcome'",
        c.contact_id,
    )
    assert (await delivery_finished(world, outcome_id))["status"] == "delivered"
    (hit,) = [h for h in world.receiver.at("/ok") if outcome_id.encode() in h.body]
    data = json.loads(hit.body)["data"]
    assert (data["kind"], data["outcome"]) == ("outcome", "s47")


async def test_a_failing_endpoint_is_retried_with_back_off_until_it_answers(
    world: World,
) -> None:
    feedback_id = await referral_from(world, "WH-FLAKY", "gp-flaky")
    delivery = await delivery_finished(world, feedback_id)
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 3)
    assert await attempts(world, delivery["delivery_id"]) == [
        ("failed", 503),
        ("failed", 503),
        ("delivered", 202),
    ]
    hits = [h for h in world.receiver.at("/flaky") if feedback_id.encode() in h.body]
    assert len(hits) == 3
    assert len({h.body for h in hits}) == 1, "the same event (same id and bytes) each time"
    gaps = [b.at - a.at for a, b in pairwise(hits)]
    # Exponential back-off: 0.2 s after the first failure, 0.4 s after the second.
    assert gaps[0] >= INITIAL_BACKOFF * 0.9
    assert gaps[1] >= INITIAL_BACKOFF * 2 * 0.9


@pytest.mark.parametrize(
    ("agency", "path", "status"), [("gp-down", "/down", 500), ("gp-wrong", "/wrong", 401)]
)
async def test_a_delivery_is_dead_lettered_after_the_last_attempt(
    world: World, agency: str, path: str, status: int
) -> None:
    feedback_id = await referral_from(world, f"WH-DEAD-{agency}", agency)
    delivery = await delivery_finished(world, feedback_id)
    assert delivery["status"] == "dead_lettered"
    assert delivery["attempts"] == MAX_ATTEMPTS
    assert delivery["last_error"] == f"http_{status}"
    assert await attempts(world, delivery["delivery_id"]) == [("failed", status)] * MAX_ATTEMPTS
    hits = [h for h in world.receiver.at(path) if feedback_id.encode() in h.body]
    assert len(hits) == MAX_ATTEMPTS
    if path == "/wrong":
        assert not any(h.verified for h in hits), "a receiver refuses a bad signature"
    assert not await fetch(
        world.n.world.dsn,
        "SELECT 1 FROM disclosures WHERE event_id = $1 AND channel = 'webhook'",
        feedback_id,
    ), "nothing the agency refused is audited as disclosed"

    async def counted_and_logged() -> bool:
        text = world.n.metrics()
        log = (world.n.run_dir / "logs" / "notifications.log").read_text()
        return (
            metric_value(text, "mash_webhook_deliveries_total", status="dead_lettered") >= 1
            and delivery["delivery_id"] in log
            and "webhook_dead_lettered" in log
        )

    await wait_until(counted_and_logged, timeout=30, what="the dead letter to be counted")


async def test_agencies_without_a_webhook_get_kafka_only(world: World) -> None:
    c = contact("WH-POLICE")  # west-midlands has no endpoint
    await world.n.feed(c)
    assert await world.n.outcome(c.contact_id) == "applied"
    count = await fetchval(
        world.n.world.dsn,
        "SELECT count(*) FROM webhook_deliveries WHERE contact_id = $1",
        c.contact_id,
    )
    assert count == 0


async def test_a_pending_delivery_survives_a_crash_of_the_process(world: World) -> None:
    feedback_id = await referral_from(world, "WH-CRASH", "gp-later")

    async def first_attempt_failed() -> bool:
        rows = await fetch(
            world.n.world.dsn,
            "SELECT 1 FROM webhook_attempts a JOIN webhook_deliveries d USING (delivery_id)"
            " WHERE d.event_id = $1 AND a.result = 'failed'",
            feedback_id,
        )
        return bool(rows)

    await wait_until(first_attempt_failed, timeout=60, what="a first failed attempt")
    world.n.processes.stop("notifications", kill=True)  # SIGKILL mid-retry
    world.receiver.later_is_up = True
    world.n.processes.start("notifications")
    delivery = await delivery_finished(world, feedback_id, timeout=120)
    assert delivery["status"] == "delivered"
    results = [r for r, _ in await attempts(world, delivery["delivery_id"])]
    assert results[-1] == "delivered"
    assert "failed" in results
    assert set(results) <= {"failed", "abandoned", "delivered"}
