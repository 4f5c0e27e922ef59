"""Which records a replay copies: the selection, and the offset range it makes of one
partition (pure).

A topic source turns the selection into an exact offset range per partition before it
reads anything (:func:`partition_bounds`); :meth:`Selection.accepts` then filters each
record, which is all a file source can do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from mash.errors import UsageError
from mash.jsonl import ReplayRecord


@dataclass(frozen=True)
class Selection:
    """Which records to copy. Offsets and times are half-open: start included, end not.

    A bound that is set excludes records that lack the field (a simulated record has no
    partition or offset).
    """

    partitions: frozenset[int] | None = None
    start_offset: int | None = None
    end_offset: int | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    max_messages: int | None = None
    """Stop after copying this many in one run (a later ``--resume`` carries on)."""

    def accepts(self, record: ReplayRecord) -> bool:
        """Whether ``record`` is inside the selection."""
        if self.partitions is not None and record.partition not in self.partitions:
            return False
        if self.start_offset is not None or self.end_offset is not None:
            if record.offset is None:
                return False
            if self.start_offset is not None and record.offset < self.start_offset:
                return False
            if self.end_offset is not None and record.offset >= self.end_offset:
                return False
        if self.since_ms is not None or self.until_ms is not None:
            if record.timestamp is None:
                return False
            if self.since_ms is not None and record.timestamp < self.since_ms:
                return False
            if self.until_ms is not None and record.timestamp >= self.until_ms:
                return False
        return True


def parse_instant(text: str) -> int:
    """Milliseconds since the epoch from RFC 3339 text, an ISO date (midnight UTC) or a
    number of milliseconds. Text without an offset is taken as UTC."""
    stripped = text.strip()
    if stripped.isdigit():
        return int(stripped)
    try:
        if len(stripped) == 10:
            day = date.fromisoformat(stripped)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(stripped.upper().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"cannot read time {text!r}: use e.g. 2026-01-05, 2026-01-05T09:30:00+00:00"
            " or milliseconds since the epoch"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def partition_bounds(
    *,
    beginning: int,
    end: int,
    selection: Selection,
    since_offset: int | None = None,
    until_offset: int | None = None,
    resume_next: int | None = None,
) -> tuple[int, int]:
    """The half-open offset range ``[start, stop)`` to read from one partition.

    ``since_offset``/``until_offset`` are what ``offsets_for_times`` found for the time
    bounds (the first offset at or after each time); ``resume_next`` is the offset after
    the last one a checkpoint recorded. An empty range has ``start >= stop``.
    """
    start = max(beginning, selection.start_offset or 0)
    if since_offset is not None:
        start = max(start, since_offset)
    if resume_next is not None:
        start = max(start, resume_next)
    stop = end if selection.end_offset is None else min(end, selection.end_offset)
    if until_offset is not None:
        stop = min(stop, until_offset)
    return start, stop
