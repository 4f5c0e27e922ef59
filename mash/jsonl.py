"""The JSONL line format shared by ``replay`` and ``simulate`` (and read by ``whatif``).

One Kafka record per line, bytes in base64 so keys, values and headers survive exactly
(including a null key, an empty value and a null header value)::

    {"topic": "mash.inbound.referrals.v1", "partition": 0, "offset": 41,
     "timestamp": 1767603600000, "key_b64": "UkVGLTE=", "value_b64": "eyJy...",
     "headers": [["ce_id", "MWY0..."], ["content-type", "YXBwbGljYXRpb24vanNvbg=="]]}

``partition``, ``offset`` and ``timestamp`` (milliseconds since the epoch, the broker's
timestamp) are null when unknown: simulated records never lived on a partition. Unknown
keys are ignored on reading, so the format can grow.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Header = tuple[str, bytes | None]


class LineError(ValueError):
    """A JSONL line that is not a record in this format (the message says what is wrong)."""


@dataclass(frozen=True)
class ReplayRecord:
    """One Kafka record: where it was, and its key, value and headers byte for byte."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...] = field(default_factory=tuple)
    partition: int | None = None
    offset: int | None = None
    timestamp: int | None = None
    """Milliseconds since the epoch (the broker's timestamp), or None."""


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _unb64(text: Any, what: str) -> bytes | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise LineError(f"{what} must be base64 text or null")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise LineError(f"{what} is not valid base64 ({exc})") from None


def _optional_int(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise LineError(f"{name} must be an integer or null")
    return value


def to_line(record: ReplayRecord) -> str:
    """The JSONL line (without newline) of ``record``; keys always in the same order."""
    return json.dumps(
        {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "timestamp": record.timestamp,
            "key_b64": _b64(record.key),
            "value_b64": _b64(record.value),
            "headers": [[k, _b64(v)] for k, v in record.headers],
        },
        separators=(", ", ": "),
    )


def from_line(line: str) -> ReplayRecord:
    """Parse one JSONL line; raises :class:`LineError` naming the problem."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise LineError(f"not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise LineError("not a JSON object")
    topic = data.get("topic")
    if not isinstance(topic, str) or not topic:
        raise LineError("topic is missing")
    raw_headers = data.get("headers") or []
    if not isinstance(raw_headers, list):
        raise LineError("headers must be a list of [key, value_b64] pairs")
    headers: list[Header] = []
    for item in raw_headers:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
            raise LineError("headers must be a list of [key, value_b64] pairs")
        headers.append((item[0], _unb64(item[1], f"header {item[0]!r}")))
    return ReplayRecord(
        topic=topic,
        key=_unb64(data.get("key_b64"), "key_b64"),
        value=_unb64(data.get("value_b64"), "value_b64"),
        headers=tuple(headers),
        partition=_optional_int(data, "partition"),
        offset=_optional_int(data, "offset"),
        timestamp=_optional_int(data, "timestamp"),
    )


def read_jsonl(path: Path) -> Iterator[ReplayRecord]:
    """The records of a JSONL file in order; blank lines are skipped.

    Raises :class:`LineError` with the line number when a line is not a record.
    """
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield from_line(line)
            except LineError as exc:
                raise LineError(f"{path}:{number}: {exc}") from None
