"""The injected clock: real time without a file, the file's instant with one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.common.clock import ClockError, clock_from, file_clock, system_clock


def test_without_a_file_the_clock_is_real_time() -> None:
    assert clock_from(None) is system_clock
    before = datetime.now(UTC)
    now = clock_from(None)()
    assert before <= now <= datetime.now(UTC)


def test_the_file_is_read_on_every_call(tmp_path: Path) -> None:
    path = tmp_path / "now"
    path.write_text("2024-03-13T03:05:12+00:00\n")
    clock = clock_from(str(path))
    assert clock() == datetime(2024, 3, 13, 3, 5, 12, tzinfo=UTC)
    # Moving the file moves "now": no waiting, no restart.
    path.write_text("2024-03-13T04:05:12+01:00")
    assert clock() == datetime(2024, 3, 13, 3, 5, 12, tzinfo=UTC)
    path.write_text("2024-03-14T00:00:00Z")
    assert clock() - datetime(2024, 3, 13, tzinfo=UTC) == timedelta(days=1)
    assert clock().tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("yesterday", "not an RFC 3339 instant"),
        ("2024-03-13T03:05:12", "has no UTC offset"),
    ],
)
def test_a_bad_clock_file_is_an_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "now"
    path.write_text(text)
    with pytest.raises(ClockError, match=message):
        file_clock(path)()


def test_a_missing_clock_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ClockError, match="cannot read clock file"):
        file_clock(tmp_path / "absent")()
