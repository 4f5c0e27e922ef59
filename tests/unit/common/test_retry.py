"""The one back-off and background loop: doubling delays up to the cap, counted and logged
under one stage; a loop that waits its period, goes again at once when asked, and starts
its back-off afresh after a success. Time is not waited: sleeps are recorded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.common.metrics import ServiceMetrics, stage_label, topic_work
from services.common.retry import Retry, every
from services.common.topics import CONTACTS, INBOUND_CASE_STATUS, QUEUE_UPDATES, ROUTED


class Stop(BaseException):
    """Ends a loop under test (an exception ``every`` does not catch)."""


class Log:
    """Records what a retry logs."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.lines.append(("warning", event, fields))

    def error(self, event: str, **fields: Any) -> None:
        self.lines.append(("error", event, fields))


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every delay the module sleeps, recorded instead of waited; the 8th ends the test."""
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)
        if len(delays) >= 8:
            raise Stop

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return delays


def retries(metrics: ServiceMetrics, stage: str) -> float | None:
    return metrics.registry.get_sample_value("mash_retries_total", {"stage": stage})


async def test_the_delay_doubles_up_to_the_cap_and_starts_again_after_a_success(
    slept: list[float],
) -> None:
    metrics, log = ServiceMetrics("test"), Log()
    retry = Retry(metrics, log, stage="test_work", first=0.5, cap=3.0)
    for _ in range(4):
        retry.failed("work_failed", OSError("a row value"), {"topic": "t"})
        await retry.wait()
    retry.succeeded()
    retry.failed("work_failed", OSError(), level="error")
    assert slept == [0.5, 1.0, 2.0, 3.0]
    assert retries(metrics, "test_work") == 5
    assert log.lines[0] == (
        "warning",
        "work_failed",
        {"topic": "t", "error_type": "OSError", "delay_seconds": 0.5},
    )
    assert log.lines[-1] == (
        "error",
        "work_failed",
        {"error_type": "OSError", "delay_seconds": 0.5},
    )


async def test_a_loop_waits_its_period_backs_off_after_failures_and_goes_again_at_once(
    slept: list[float],
) -> None:
    metrics, log = ServiceMetrics("test"), Log()
    outcomes: list[float | Exception | None] = [None, OSError(), OSError(), 0.0, 2.5, OSError()]
    rounds = 0

    async def job() -> float | None:
        nonlocal rounds
        outcome = outcomes[rounds % len(outcomes)]
        rounds += 1
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    retry = Retry(metrics, log, stage="test_loop", first=0.25, cap=10.0)
    with pytest.raises(Stop):
        await every(10.0, job, retry, failed="loop_failed", fields=lambda: {"kind": "x"})
    # The period, back-off 0.25 then 0.5, at once (0: no sleep), the job's own wait,
    # back-off from the first again (a success came between); and round again.
    assert slept == [10.0, 0.25, 0.5, 2.5, 0.25, 10.0, 0.25, 0.5]
    assert retries(metrics, "test_loop") == 5
    assert all(line[1] == "loop_failed" and line[2]["kind"] == "x" for line in log.lines)


async def test_a_wake_up_cuts_a_loop_wait_short() -> None:
    metrics, log = ServiceMetrics("test"), Log()
    wakeup = asyncio.Event()
    rounds: list[int] = []
    first, second = asyncio.Event(), asyncio.Event()

    async def job() -> None:
        rounds.append(len(rounds))
        (first if len(rounds) == 1 else second).set()

    retry = Retry(metrics, log, stage="test_wakeup", first=1.0, cap=1.0)
    task = asyncio.get_running_loop().create_task(
        every(3600.0, job, retry, failed="never", wakeup=wakeup)
    )
    try:
        await asyncio.wait_for(first.wait(), timeout=10)
        wakeup.set()
        await asyncio.wait_for(second.wait(), timeout=10)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert rounds == [0, 1]


def test_a_stage_is_the_service_and_its_work() -> None:
    assert stage_label("routing", topic_work(QUEUE_UPDATES)) == "routing_queue_updates"
    assert stage_label("intake", topic_work(INBOUND_CASE_STATUS)) == "intake_case_status"
    assert stage_label("screening", topic_work(CONTACTS)) == "screening_contacts"
    assert stage_label("notifications", topic_work(ROUTED)) == "notifications_routed"
    assert stage_label("routing", "sla_scan") == "routing_sla_scan"
