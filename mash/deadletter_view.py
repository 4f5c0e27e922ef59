"""Reading and showing a dead letter (pure): its original key, value and headers, where it
came from, a filter over many, and the lines and tables ``mash deadletters`` prints.

A dead letter (topic ``mash.deadletter.v1``, docs/contract.md) is the full record of a message
a service could not accept: the original key, value and headers (base64), where it was
(topic, partition, offset), why (``reason``) and the errors. What :func:`show_lines`
returns is the hub's data (names, dates of birth, narratives): for staff entitled to read
it, never for a log. :func:`load` reads them all from the topic.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from rich.table import Table
from rich.text import Text

from mash.replay import Selection, TopicSource
from schemas.base import printable, unsafe_text
from schemas.cloudevents import STRUCTURED_CONTENT_TYPE
from schemas.events import DeadLetter, DeadLetterReason
from services.common.kafka_security import PLAINTEXT

# --- pure parts: reading a dead letter -------------------------------------------------


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def original_key(letter: DeadLetter) -> bytes | None:
    """The original record's key, bytes as they arrived (None: null key)."""
    return _unb64(letter.original_key)


def original_value(letter: DeadLetter) -> bytes | None:
    """The original record's value, bytes as they arrived (None: null value)."""
    return _unb64(letter.original_value)


def original_headers(letter: DeadLetter) -> list[tuple[str, bytes | None]]:
    """The original record's headers, in order (a name a sender filled with control
    characters is as the dead letter holds it: escaped)."""
    return [(h.key, _unb64(h.value)) for h in letter.headers]


def _header(headers: Sequence[tuple[str, bytes | None]], name: str) -> bytes | None:
    """The last value of header ``name`` (case-insensitive), None if absent or null."""
    found = None
    for key, value in headers:
        if key.lower() == name:
            found = value
    return found


def _text(raw: bytes | None) -> str | None:
    """``raw`` as printable one-line text, or None if absent, not UTF-8 or unprintable."""
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text.strip() or unsafe_text(text) or "\n" in text or "\r" in text:
        return None
    return text


def is_structured(headers: Sequence[tuple[str, bytes | None]]) -> bool:
    """Whether the record is a structured-mode CloudEvent (the decoder's own test)."""
    try:
        content_type = (_header(headers, "content-type") or b"").decode("utf-8")
    except UnicodeDecodeError:
        return False
    return content_type.strip().lower().startswith(STRUCTURED_CONTENT_TYPE)


def source_of(letter: DeadLetter) -> str:
    """Who sent the original: its ``ce_source`` (structured mode: the envelope's
    ``source``) when readable, else the original topic."""
    headers = original_headers(letter)
    if is_structured(headers):
        try:
            envelope = json.loads(original_value(letter) or b"")
        except (ValueError, RecursionError):
            envelope = None
        source = envelope.get("source") if isinstance(envelope, dict) else None
        found = _text(source.encode("utf-8", "surrogatepass")) if isinstance(source, str) else None
    else:
        found = _text(_header(headers, "ce_source"))
    return found if found is not None else letter.original_topic


@dataclass(frozen=True)
class Loaded:
    """The dead letters read from the topic: unique by id, oldest first."""

    letters: list[DeadLetter]
    copies: int = 0
    """Re-sent copies of a dead letter already read (same id), left out."""
    unreadable: int = 0
    """Records that are not a dead letter this version can read, left out."""


def parse_dead_letters(values: Iterable[bytes | None]) -> Loaded:
    """Decode the values of the dead-letter topic, dropping re-sent copies by id."""
    seen: dict[str, DeadLetter] = {}
    copies = unreadable = 0
    for value in values:
        try:
            letter = DeadLetter.model_validate_json(value or b"")
        except ValidationError:
            unreadable += 1
            continue
        if letter.dead_letter_id in seen:
            # The outbox relay may re-send after a crash; the copy carries the same id.
            copies += 1
            continue
        seen[letter.dead_letter_id] = letter
    ordered = sorted(seen.values(), key=lambda d: (d.at, d.dead_letter_id))
    return Loaded(ordered, copies, unreadable)


@dataclass(frozen=True)
class LetterFilter:
    """Which dead letters ``list`` shows; an empty set accepts anything. ``since`` is
    included, ``until`` is not. Topic names here are deployed (prefixed) names."""

    reasons: frozenset[DeadLetterReason] = frozenset()
    sources: frozenset[str] = frozenset()
    topics: frozenset[str] = frozenset()
    since: datetime | None = None
    until: datetime | None = None

    def accepts(self, letter: DeadLetter) -> bool:
        """Whether ``letter`` passes every filter."""
        if self.reasons and letter.reason not in self.reasons:
            return False
        if self.topics and letter.original_topic not in self.topics:
            return False
        if self.since is not None and letter.at < self.since:
            return False
        if self.until is not None and letter.at >= self.until:
            return False
        return not self.sources or source_of(letter) in self.sources


def find(letters: Iterable[DeadLetter], dead_letter_id: str) -> DeadLetter | None:
    """The dead letter with this id, or None."""
    return next((d for d in letters if d.dead_letter_id == dead_letter_id), None)


# --- pure parts: formatting ------------------------------------------------------------


def _first_error(letter: DeadLetter) -> dict[str, str] | None:
    if not letter.errors:
        return None
    first = letter.errors[0]
    return {"path": first.path, "message": first.message}


def summary(letter: DeadLetter) -> dict[str, Any]:
    """One ``list --json`` line: always these keys, in this order."""
    return {
        "id": letter.dead_letter_id,
        "at": letter.at.isoformat(),
        "reason": str(letter.reason),
        "original_topic": letter.original_topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "source": source_of(letter),
        "first_error": _first_error(letter),
    }


def coordinates(letter: DeadLetter) -> str:
    """``topic[partition]@offset`` of the original record."""
    return f"{letter.original_topic}[{letter.partition}]@{letter.offset}"


def error_text(path: str, message: str) -> str:
    """An error as one line: ``path: message`` (just the message for the whole value)."""
    return printable(f"{path}: {message}" if path else message)


def bytes_json(raw: bytes | None) -> dict[str, str] | None:
    """``{"text": ...}`` when ``raw`` is UTF-8, else ``{"base64": ...}``; None for null."""
    if raw is None:
        return None
    try:
        return {"text": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(raw).decode("ascii")}


def bytes_text(raw: bytes | None) -> str:
    """``raw`` for a terminal: text with control characters escaped, else base64."""
    if raw is None:
        return "(null)"
    if not raw:
        return "(empty)"
    try:
        return printable(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(raw).decode("ascii")


def detail(letter: DeadLetter) -> dict[str, Any]:
    """``show --json``: the dead letter decoded."""
    return {
        **summary(letter),
        "service": letter.service,
        "errors": [{"path": e.path, "message": e.message} for e in letter.errors],
        "key": bytes_json(original_key(letter)),
        "headers": [{"key": k, "value": bytes_json(v)} for k, v in original_headers(letter)],
        "value": bytes_json(original_value(letter)),
    }


def record_lines(
    key: bytes | None, headers: Sequence[tuple[str, bytes | None]], value: bytes | None
) -> list[str]:
    """A Kafka record for a terminal: key, each header, then the value."""
    lines = [f"key           {bytes_text(key)}", f"headers ({len(headers)})"]
    lines += [f"  {printable(k)}: {bytes_text(v)}" for k, v in headers]
    kind = "null" if value is None else f"{_encoding(value)}, {len(value)} bytes"
    lines += [f"value ({kind})", bytes_text(value) if value is not None else ""]
    return lines


def _encoding(raw: bytes) -> str:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "base64"
    return "text"


def show_lines(letter: DeadLetter) -> list[str]:
    """``show``: the dead letter decoded, for a terminal."""
    lines = [
        f"dead letter   {letter.dead_letter_id}",
        f"at            {letter.at.isoformat()}",
        f"reason        {letter.reason}",
        f"service       {letter.service}",
        f"original      {coordinates(letter)}",
        f"source        {printable(source_of(letter))}",
        f"errors ({len(letter.errors)})",
        *(f"  {error_text(e.path, e.message)}" for e in letter.errors),
    ]
    return lines + record_lines(
        original_key(letter), original_headers(letter), original_value(letter)
    )


def table(letters: Sequence[DeadLetter]) -> Table:
    """``list``: one row per dead letter. Cells are Text, never markup: senders choose
    the error text and could otherwise style or hide it."""
    grid = Table()
    for name in ("id", "at", "reason", "original", "source", "first error"):
        grid.add_column(name, overflow="fold")
    for letter in letters:
        first = _first_error(letter)
        grid.add_row(
            Text(letter.dead_letter_id),
            Text(letter.at.isoformat(timespec="seconds")),
            Text(str(letter.reason)),
            Text(printable(coordinates(letter))),
            Text(printable(source_of(letter))),
            Text(error_text(first["path"], first["message"]) if first else "-"),
        )
    return grid


async def load(
    bootstrap: list[str], topic: str, *, security: Mapping[str, Any] = PLAINTEXT
) -> Loaded:
    """Every dead letter on ``topic`` now (read from the beginning, without a group)."""
    source = TopicSource(bootstrap, topic, Selection(), security=security)
    try:
        await source.open(None)
        values = [record.value async for _, record in source.records()]
    finally:
        await source.close()
    return parse_dead_letters(values)
