"""Redriving a dead letter: sending the original, or a corrected value, back to its original
topic under a new event id, once, audited.

The plan is pure (:func:`refusal`: which reasons can succeed unchanged; :func:`draft_redrive`
and :func:`finish`: the new id, the republished headers; :func:`next_attempt`: the audit
decides whether this exact redrive was done before), the I/O thin (:func:`run_redrive`:
read the audit, publish, record the audit row). The record is sent before its audit row
commits, so a crash in between leaves no row and the same command re-sends the same
``ce_id``, which the receiving service's inbox absorbs.

Over 400 lines with its pure plan and its I/O side by side on purpose: a redrive is reviewed
as one thing (what it will send, what it records in the audit).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from mash.brokers import require_topics, start_producer
from mash.deadletter_view import (
    LetterFilter,
    bytes_json,
    find,
    is_structured,
    load,
    original_headers,
    original_key,
    original_value,
    record_lines,
)
from mash.errors import ToolError, UsageError, connect_database
from mash.naming import deployed
from schemas.base import unsafe_text
from schemas.cloudevents import STRUCTURED_CONTENT_TYPE, unique_keys
from schemas.events import DeadLetter, DeadLetterReason
from services.common.audit import AuditEntry, write_audit
from services.common.ids import derive_id
from services.common.kafka_security import kafka_client_security
from services.common.settings import Settings
from services.common.topics import DEAD_LETTER

#: Reasons a redrive of the same bytes can cure: the event was well formed but named a
#: contact or item not (yet) held, or arrived before the state it changes. Every other
#: reason is a property of the bytes themselves, so sending them again fails again.
REDRIVABLE_UNCHANGED = frozenset(
    {DeadLetterReason.UNKNOWN_REFERENCE, DeadLetterReason.INVALID_TRANSITION}
)
#: Header naming the dead letter a republished record was redriven from.
REDRIVE_HEADER = "mash_redrive_of"
#: ``audit_log.service`` of the rows this tool writes.
AUDIT_SERVICE = "mash-cli"
AUDIT_ENTITY = "dead_letter"
AUDIT_ACTION = "redriven"

_HINTS = {
    DeadLetterReason.MISSING_HEADER: "add the missing header with --header NAME=VALUE",
    DeadLetterReason.UNKNOWN_TYPE: "correct ce_type with --header or the value with --payload",
    DeadLetterReason.UNSUPPORTED_VERSION: "correct the version with --header or --payload",
}
_DEFAULT_HINT = "correct the value with --payload FILE"


# --- pure parts: the redrive plan ------------------------------------------------------


def refusal(letter: DeadLetter, corrected: bool) -> str | None:
    """Why ``letter`` must not be redriven as it is (None: it may be)."""
    if corrected or letter.reason in REDRIVABLE_UNCHANGED:
        return None
    hint = _HINTS.get(letter.reason, _DEFAULT_HINT)
    return (
        f"refusing to redrive dead letter {letter.dead_letter_id} unchanged: a {letter.reason}"
        f" fails again with the same bytes; {hint}"
    )


def parse_header_option(text: str) -> tuple[str, bytes]:
    """``NAME=VALUE`` of ``--header``; UsageError if malformed or a header we set."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name or unsafe_text(name):
        raise UsageError(f"--header {text!r}: expected NAME=VALUE")
    if name.lower() in ("ce_id", REDRIVE_HEADER):
        raise UsageError(f"--header {name}: the redrive sets {name} itself")
    return name, value.encode("utf-8")


def with_headers(
    headers: Sequence[tuple[str, bytes | None]], changes: Sequence[tuple[str, bytes | None]]
) -> list[tuple[str, bytes | None]]:
    """``headers`` with each change applied: the first header of that name (any case)
    takes the new value, later ones go; a name not present is appended."""
    out = list(headers)
    for name, value in changes:
        places = [i for i, (k, _) in enumerate(out) if k.lower() == name.lower()]
        if not places:
            out.append((name, value))
            continue
        out[places[0]] = (name, value)
        out = [h for i, h in enumerate(out) if i not in places[1:]]
    return out


def _envelope(value: bytes | None, dead_letter_id: str) -> dict[str, Any]:
    """The structured-mode envelope in ``value``; UsageError if it is not a JSON object
    (its id could not be replaced)."""
    try:
        parsed = json.loads(value or b"", object_pairs_hook=unique_keys)
    except (ValueError, RecursionError):
        parsed = None
    if not isinstance(parsed, dict):
        raise UsageError(
            f"dead letter {dead_letter_id}: the value to send is structured mode"
            f" ({STRUCTURED_CONTENT_TYPE}) but not a JSON object with unique keys, so its"
            " id cannot be replaced; correct it with --payload"
        )
    return parsed


@dataclass(frozen=True)
class Draft:
    """What a redrive sends, before its event id is chosen (that needs the audit)."""

    dead_letter_id: str
    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    structured: bool
    payload_corrected: bool
    headers_corrected: tuple[str, ...]
    digest: str
    """sha256 of what is sent apart from the id: the same redrive has the same digest."""


def draft_redrive(
    letter: DeadLetter,
    payload: bytes | None = None,
    header_changes: Sequence[tuple[str, bytes]] = (),
) -> Draft:
    """The record a redrive of ``letter`` sends (``payload``: a corrected value;
    ``header_changes``: corrected headers). UsageError when it is refused."""
    corrected = payload is not None or bool(header_changes)
    why = refusal(letter, corrected)
    if why is not None:
        raise UsageError(why)
    value = original_value(letter) if payload is None else payload
    # Our own header from an earlier redrive is replaced, not stacked.
    headers = [
        (k, v)
        for k, v in with_headers(original_headers(letter), header_changes)
        if k.lower() != REDRIVE_HEADER
    ]
    structured = is_structured(headers)
    if structured:
        _envelope(value, letter.dead_letter_id)  # refuse now, before anything is written
    key = original_key(letter)
    content = json.dumps(
        [
            letter.original_topic,
            bytes_json(key),
            bytes_json(value),
            [[k, bytes_json(v)] for k, v in headers if structured or k.lower() != "ce_id"],
        ]
    )
    return Draft(
        dead_letter_id=letter.dead_letter_id,
        topic=letter.original_topic,
        key=key,
        value=value,
        headers=tuple(headers),
        structured=structured,
        payload_corrected=payload is not None,
        headers_corrected=tuple(name for name, _ in header_changes),
        digest=hashlib.sha256(content.encode()).hexdigest(),
    )


def redrive_id(dead_letter_id: str, attempt: int) -> str:
    """The ce_id of redrive number ``attempt`` (1, 2...) of a dead letter: derived, so a
    redrive repeated after a crash re-sends the same id and the inbox absorbs it."""
    return derive_id("dead-letter-redrive", dead_letter_id, attempt)


@dataclass(frozen=True)
class Redrive:
    """A redrive ready to send."""

    draft: Draft
    attempt: int
    ce_id: str
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


def finish(draft: Draft, attempt: int) -> Redrive:
    """``draft`` with the new event id: in the envelope (structured mode) or the ``ce_id``
    header (binary mode), plus ``mash_redrive_of``."""
    ce_id = redrive_id(draft.dead_letter_id, attempt)
    value = draft.value
    if draft.structured:
        envelope = _envelope(value, draft.dead_letter_id)
        envelope["id"] = ce_id
        value = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = list(draft.headers)
    else:
        headers = with_headers(draft.headers, [("ce_id", ce_id.encode())])
    headers.append((REDRIVE_HEADER, draft.dead_letter_id.encode()))
    return Redrive(draft, attempt, ce_id, value, tuple(headers))


@dataclass(frozen=True)
class PastRedrive:
    """A redrive of one dead letter recorded in the audit."""

    ce_id: str
    attempt: int
    digest: str
    by: str
    at: datetime


def next_attempt(past: Sequence[PastRedrive], digest: str) -> PastRedrive | int:
    """The earlier redrive that sent the same thing (nothing to do), else the number of
    the next attempt."""
    same = [p for p in past if p.digest == digest]
    if same:
        return same[0]
    return max((p.attempt for p in past), default=0) + 1


def describe(redrive: Redrive) -> str:
    """``(attempt N, payload corrected, headers ce_type corrected)``."""
    parts = [f"attempt {redrive.attempt}"]
    draft = redrive.draft
    parts.append("payload corrected" if draft.payload_corrected else "payload unchanged")
    if draft.headers_corrected:
        parts.append("headers corrected: " + ", ".join(draft.headers_corrected))
    return ", ".join(parts)


def audit_detail(redrive: Redrive, letter: DeadLetter, by: str) -> dict[str, Any]:
    """What the audit keeps of a redrive: ids, codes and a digest, never the content."""
    return {
        "ce_id": redrive.ce_id,
        "attempt": redrive.attempt,
        "by": by,
        "payload_corrected": redrive.draft.payload_corrected,
        "headers_corrected": list(redrive.draft.headers_corrected),
        "reason": str(letter.reason),
        "original_topic": letter.original_topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "content_sha256": redrive.draft.digest,
    }


def staff_id(text: str) -> str:
    """A ``--by`` value: one printable word; UsageError otherwise."""
    if not text or len(text) > 100 or unsafe_text(text) or len(text.split()) != 1:
        raise UsageError("--by must be your staff id: one word of at most 100 characters")
    return text


# --- I/O -------------------------------------------------------------------------------


async def _past_redrives(
    conn: asyncpg.Connection[asyncpg.Record], dead_letter_id: str
) -> list[PastRedrive]:
    rows = await conn.fetch(
        "SELECT at, detail FROM audit_log WHERE entity_type = $1 AND entity_id = $2"
        " AND action = $3 ORDER BY id",
        AUDIT_ENTITY,
        dead_letter_id,
        AUDIT_ACTION,
    )
    past = []
    for row in rows:
        found = json.loads(row["detail"])
        past.append(
            PastRedrive(
                ce_id=str(found["ce_id"]),
                attempt=int(found["attempt"]),
                digest=str(found["content_sha256"]),
                by=str(found["by"]),
                at=row["at"],
            )
        )
    return past


@dataclass(frozen=True)
class RedriveRequest:
    """One ``redrive``: a dead letter by id, or every one with a reason (and topic)."""

    by: str
    dead_letter_id: str | None = None
    reason: DeadLetterReason | None = None
    topic: str | None = None
    """Deployed name of the original topic (with ``reason``)."""
    payload: bytes | None = None
    header_changes: tuple[tuple[str, bytes], ...] = ()
    dry_run: bool = False


def select_for_redrive(letters: Sequence[DeadLetter], request: RedriveRequest) -> list[DeadLetter]:
    """The dead letters ``request`` names; ToolError for an unknown id."""
    if request.dead_letter_id is not None:
        letter = find(letters, request.dead_letter_id)
        if letter is None:
            raise ToolError(f"no dead letter {request.dead_letter_id}")
        return [letter]
    topics = frozenset() if request.topic is None else frozenset({request.topic})
    wanted = LetterFilter(
        reasons=frozenset() if request.reason is None else frozenset({request.reason}),
        topics=topics,
    )
    return [d for d in letters if wanted.accepts(d)]


async def run_redrive(
    settings: Settings, request: RedriveRequest, say: Callable[[str], None]
) -> int:
    """Redrive what ``request`` names, saying what happened to each; returns how many
    records were sent (0 for a dry run)."""
    dead_letter_topic = deployed(DEAD_LETTER, settings.topic_prefix)
    security = kafka_client_security(settings)
    letters = select_for_redrive(
        (await load(settings.bootstrap_list, dead_letter_topic, security=security)).letters,
        request,
    )
    if not letters:
        say("nothing to redrive: no dead letter matches")
        return 0
    # Every refusal (reason, unreadable payload) before anything is written.
    drafts = [
        (letter, draft_redrive(letter, request.payload, request.header_changes))
        for letter in letters
    ]
    await require_topics(settings.bootstrap_list, {d.topic for _, d in drafts}, security=security)
    conn = await connect_database(settings.database_url)
    producer = (
        None
        if request.dry_run
        else await start_producer(settings.bootstrap_list, security=security)
    )
    sent = 0
    try:
        for letter, draft in drafts:
            sent += await _redrive_one(conn, producer, letter, draft, request, say)
    finally:
        if producer is not None:
            await producer.stop()
        await conn.close()
    return sent


async def _redrive_one(
    conn: asyncpg.Connection[asyncpg.Record],
    producer: Any,
    letter: DeadLetter,
    draft: Draft,
    request: RedriveRequest,
    say: Callable[[str], None],
) -> int:
    async with conn.transaction():
        # Two staff redriving the same dead letter at once: the second waits, then finds
        # the first one's audit row and sends nothing.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))", f"redrive:{draft.dead_letter_id}"
        )
        decided = next_attempt(await _past_redrives(conn, draft.dead_letter_id), draft.digest)
        if isinstance(decided, PastRedrive):
            when = decided.at.isoformat(timespec="seconds")
            say(
                f"already redriven {draft.dead_letter_id} as ce_id {decided.ce_id} (attempt"
                f" {decided.attempt}, by {decided.by} at {when}): nothing sent"
            )
            return 0
        redrive = finish(draft, decided)
        if request.dry_run:
            say(
                f"would redrive {draft.dead_letter_id} to {draft.topic} as ce_id"
                f" {redrive.ce_id} ({describe(redrive)})"
            )
            for line in record_lines(draft.key, redrive.headers, redrive.value):
                say(line)
            return 0
        await write_audit(
            conn,
            AUDIT_SERVICE,
            [
                AuditEntry(
                    AUDIT_ENTITY,
                    draft.dead_letter_id,
                    AUDIT_ACTION,
                    audit_detail(redrive, letter, request.by),
                    actor=request.by,
                )
            ],
        )
        # Sent before the audit row commits: a crash in between leaves no row, and the
        # same command then re-sends the same ce_id, which the consumer's inbox absorbs.
        # The other order could record a redrive that never reached Kafka.
        try:
            await producer.send_and_wait(
                draft.topic, redrive.value, key=draft.key, headers=list(redrive.headers)
            )
        except Exception as exc:
            raise ToolError(
                f"the broker refused the redrive of {draft.dead_letter_id}"
                f" ({type(exc).__name__}); nothing was recorded"
            ) from exc
    say(
        f"redriven {draft.dead_letter_id} to {draft.topic} as ce_id {redrive.ce_id}"
        f" ({describe(redrive)})"
    )
    return 1
