"""Every service's clock: real time in production, a file in tests.

Recorded times, screening decisions, statutory clocks, feedback and dead letters are all
stamped with "now". Tests must fix "now", and move it forward without waiting (and across
a restart of the process), so the clock is injected: the runtime holds one
(:attr:`services.common.runtime.ServiceRuntime.clock`), and every service reads "now" from
it, never from the system directly. With ``MASH_CLOCK_FILE`` set, "now" is the RFC 3339
instant written in that file, re-read on every call; without it, "now" is the system
clock. The domain code never reads either: it is handed the instant.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

Clock = Callable[[], datetime]
"""A source of "now": returns a timezone-aware datetime."""


class ClockError(RuntimeError):
    """The clock file cannot be read or does not hold an aware RFC 3339 instant."""


def system_clock() -> datetime:
    """The real time, in UTC."""
    return datetime.now(UTC)


def file_clock(path: str | Path) -> Clock:
    """A clock that reads "now" from ``path`` each time it is asked (a frozen instant)."""
    file = Path(path)

    def now() -> datetime:
        try:
            text = file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ClockError(f"{file}: cannot read clock file ({exc.strerror})") from exc
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ClockError(f"{file}: not an RFC 3339 instant: {text[:40]!r}") from exc
        if moment.tzinfo is None or moment.utcoffset() is None:
            # A naive time would be read as local time and shift every clock by an hour.
            raise ClockError(f"{file}: the instant has no UTC offset: {text[:40]!r}")
        return moment.astimezone(UTC)

    return now


def clock_from(clock_file: str | None) -> Clock:
    """The clock a process uses: the file's instant when ``clock_file`` is set, else real."""
    return file_clock(clock_file) if clock_file else system_clock
