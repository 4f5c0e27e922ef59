"""Retrying after a database or broker failure: one back-off, one background loop.

Why one of each: a service must never give up on a database or broker that is down (a
safeguarding contact must not be skipped), nor spin against it; and ops should read every
retry the same way. So every retry is counted in ``mash_retries_total{stage}`` and logged
with the error's class (never its message: driver messages can quote row values) and the
delay before the next attempt (``delay_seconds``). The delay doubles after each failure,
from the caller's first delay up to ``retry_max_seconds`` (``MASH_RETRY_MAX_SECONDS``),
and starts again from the first after a success.

:func:`every` is the one shape of a background loop (the outbox relay, routing's breach
scan and record gauges, notifications' webhook sender and Encompass watch): a round, then
a wait (cut short by a wake-up, when the loop has one), and the back-off after a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any, Literal, Protocol

from services.common.metrics import ServiceMetrics


class Log(Protocol):
    """The two log levels a retry uses (a structlog logger)."""

    def warning(self, event: str, **fields: Any) -> Any:
        """Log a retry that is expected to clear."""

    def error(self, event: str, **fields: Any) -> Any:
        """Log a retry someone may have to act on."""


class Retry:
    """The back-off of one stage: count and log each failure, then wait, doubling."""

    def __init__(
        self, metrics: ServiceMetrics, log: Log, *, stage: str, first: float, cap: float
    ) -> None:
        self.metrics = metrics
        self.log = log
        self.stage = stage
        self.first = first
        self.cap = cap
        self.delay = first
        """The wait before the next attempt."""

    def failed(
        self,
        event: str,
        exc: BaseException,
        fields: Mapping[str, object] = MappingProxyType({}),
        *,
        level: Literal["warning", "error"] = "warning",
    ) -> None:
        """Count a failed attempt and log ``event`` with ``fields``, the error's class and
        the delay."""
        self.metrics.retries.labels(stage=self.stage).inc()
        say = self.log.error if level == "error" else self.log.warning
        say(event, **fields, error_type=type(exc).__name__, delay_seconds=self.delay)

    async def wait(self) -> None:
        """Wait the current delay, then double it (up to the cap) for the next failure."""
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, self.cap)

    def succeeded(self) -> None:
        """An attempt worked: the next failure waits the first delay again."""
        self.delay = self.first


def no_fields() -> Mapping[str, object]:
    """No extra log fields for a failed round."""
    return {}


async def every(
    seconds: float,
    job: Callable[[], Awaitable[float | None]],
    retry: Retry,
    *,
    failed: str,
    wakeup: asyncio.Event | None = None,
    fields: Callable[[], Mapping[str, object]] = no_fields,
) -> None:
    """Run ``job`` forever: again after ``seconds``, or after the wait it returns (0: at
    once, there is more to do), sooner when ``wakeup`` is set; after a failure (logged as
    ``failed``, with ``fields()``), again after ``retry``'s back-off."""
    while True:
        if wakeup is not None:
            # Cleared before the round: a wake-up that lands mid-round keeps the flag set.
            wakeup.clear()
        try:
            wait = await job()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # database or broker down: back off, never give up
            retry.failed(failed, exc, fields())
            await retry.wait()
            continue
        retry.succeeded()
        wait = seconds if wait is None else wait
        if wait <= 0:
            continue
        if wakeup is None:
            await asyncio.sleep(wait)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), timeout=wait)
