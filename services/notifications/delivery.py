"""The webhook sender: a background task of the notifications process (thin I/O).

It reads ``webhook_deliveries`` — rows written in the same transaction as the feedback they
carry, so a crash at any instant loses none — and posts each due one with aiohttp, signed
(:mod:`services.notifications.webhooks`). Each attempt is recorded in
``webhook_attempts``; a delivery ends ``delivered`` (and is recorded as a disclosure) or,
after the policy's last attempt, ``dead_lettered``. Several notifications processes may
run: a delivery is leased to one sender at a time (``FOR UPDATE SKIP LOCKED`` + lease).
"""

from __future__ import annotations

import asyncio

import aiohttp

from schemas.events import Feedback
from services.common.ids import derive_id
from services.common.runtime import ServiceRuntime
from services.notifications import store
from services.notifications.firewall import ALLOW_LIST_VERSION
from services.notifications.webhooks import (
    WebhookConfig,
    audit_destination,
    backoff_seconds,
    is_exhausted,
    signed_request,
)

#: Extra time a claimed delivery stays leased beyond the request timeout.
LEASE_MARGIN_SECONDS = 30.0


class WebhookSender:
    """Delivers pending webhook rows until cancelled."""

    def __init__(self, runtime: ServiceRuntime, config: WebhookConfig) -> None:
        self.runtime = runtime
        self.config = config
        self.wakeup = asyncio.Event()

    def notify(self) -> None:
        """Look for work now (called after a transaction that added deliveries commits)."""
        self.wakeup.set()

    async def run(self) -> None:
        """Send due deliveries forever: at once while batches come back full, else when
        notified, when the next retry is due or every ``poll_seconds``; back off while the
        database is unreachable."""
        timeout = aiohttp.ClientTimeout(total=self.config.policy.timeout_seconds)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await self.runtime.every(
                self.config.policy.poll_seconds,
                lambda: self.send_round(session),
                work="webhook_delivery",
                failed="webhook_sender_failed",
                first_retry=0.5,
                wakeup=self.wakeup,
            )

    async def send_round(self, session: aiohttp.ClientSession) -> float:
        """Send what is due and refresh the pending gauge; return the wait before the next
        round (none while batches come back full: more may be waiting)."""
        policy = self.config.policy
        sent = await self.send_due(session)
        async with self.runtime.pool.acquire() as conn:
            pending, due_in = await store.pending_deliveries(conn)
        self.runtime.metrics.webhook_pending.set(pending)
        if sent == policy.batch_size:
            return 0.0
        wait = policy.poll_seconds if due_in is None else min(policy.poll_seconds, due_in)
        return max(wait, 0.01)

    async def send_due(self, session: aiohttp.ClientSession) -> int:
        """Attempt every delivery that is due now (one batch); return how many."""
        policy = self.config.policy
        async with self.runtime.pool.acquire() as conn:
            claimed = await store.claim_deliveries(
                conn,
                limit=policy.batch_size,
                lease_seconds=policy.timeout_seconds + LEASE_MARGIN_SECONDS,
            )
        await asyncio.gather(*(self._attempt(session, d) for d in claimed))
        return len(claimed)

    async def _post(
        self, session: aiohttp.ClientSession, delivery: store.ClaimedDelivery
    ) -> tuple[bool, int | None, str | None, str | None]:
        """POST once: (delivered, HTTP status, error code, audited destination)."""
        endpoint = self.config.endpoint(delivery.agency_id)
        if endpoint is None:
            # The agency was removed from the configuration after the feedback was issued.
            return False, None, "no_endpoint", None
        request = signed_request(
            endpoint,
            delivery_id=delivery.delivery_id,
            event_id=delivery.event_id,
            source=delivery.ce_source,
            time=delivery.ce_time,
            # Validated again: the outbound model refuses any field the firewall did not allow.
            feedback=Feedback.model_validate_json(delivery.data),
        )
        try:
            async with session.post(
                request.url,
                data=request.body,
                headers=dict(request.headers),
                # A signed body is never sent on to an address nobody configured.
                allow_redirects=False,
            ) as response:
                await response.read()
                status = response.status
        except TimeoutError:
            return False, None, "timeout", None
        except aiohttp.ClientError as exc:
            # The class only: messages can quote the URL, which may carry a token.
            return False, None, type(exc).__name__, None
        if 200 <= status < 300:
            return True, status, None, audit_destination(endpoint.url)
        return False, status, f"http_{status}", None

    async def _attempt(
        self, session: aiohttp.ClientSession, delivery: store.ClaimedDelivery
    ) -> None:
        policy = self.config.policy
        delivered, status, error, destination = await self._post(session, delivery)
        dead = not delivered and (error == "no_endpoint" or is_exhausted(delivery.attempt, policy))
        disclosure = None
        if delivered and destination is not None:
            feedback = Feedback.model_validate_json(delivery.data)
            disclosure = store.DisclosureRow(
                disclosure_id=derive_id("disclosure", "webhook", delivery.delivery_id),
                event_id=delivery.event_id,
                contact_id=delivery.contact_id,
                channel="webhook",
                destination=destination,
                recipient=delivery.agency_id,
                audience=delivery.audience,
                rule=f"feedback.{feedback.kind}",
                allow_list=ALLOW_LIST_VERSION,
                fields=tuple(
                    sorted(n for n in Feedback.model_fields if getattr(feedback, n) is not None)
                ),
                disclosed_at=self.runtime.clock(),
            )
        async with self.runtime.pool.acquire() as conn:
            await store.finish_attempt(
                conn,
                delivery,
                delivered=delivered,
                status_code=status,
                error=error,
                dead_lettered=dead,
                retry_in_seconds=0.0
                if delivered or dead
                else backoff_seconds(delivery.attempt, policy),
                disclosure=disclosure,
            )
        metrics, log = self.runtime.metrics, self.runtime.log
        metrics.webhook_attempts.labels(result="delivered" if delivered else "failed").inc()
        fields = {
            "delivery_id": delivery.delivery_id,
            "feedback_id": delivery.event_id,
            "agency_id": delivery.agency_id,
            "attempt": delivery.attempt,
        }
        if delivered:
            metrics.webhook_deliveries.labels(status="delivered").inc()
            metrics.disclosures.labels(audience=delivery.audience, channel="webhook").inc()
            log.info("webhook_delivered", **fields)
        elif dead:
            metrics.webhook_deliveries.labels(status="dead_lettered").inc()
            log.error("webhook_dead_lettered", reason=error, **fields)
        else:
            log.warning("webhook_attempt_failed", reason=error, **fields)
