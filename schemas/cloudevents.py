"""CloudEvents 1.0 over Kafka: decode, validate and encode, in binary and structured mode.

Pure functions over ``(value, headers)``; nothing here imports a Kafka client, so any
consumer (faust, aiokafka, a test) can use it. :func:`decode` and :func:`validate_data`
raise nothing but :class:`ContractError`, whatever bytes arrive: its ``reason`` and
``errors`` are what the caller puts on the dead-letter topic.

Decoding order (the first failure wins):

1. value larger than ``max_bytes`` -> ``too_large``;
2. a ``ce_*`` or ``content-type`` header repeated -> ``schema_violation`` (one error per
   repeated name; see :func:`_header_map`);
3. envelope: required attributes missing/empty/not UTF-8 -> ``missing_header``
   (one error per attribute), as is an ``id`` or ``source`` that is not an
   :data:`~schemas.base.Identifier` (over 200 characters, padded with whitespace, holding
   a line break): the system of record keys on both; ``specversion`` other than 1.0 ->
   ``unsupported_version``;
4. payload: value absent, not UTF-8, not JSON, not a JSON object or nested deeper than
   :data:`MAX_JSON_DEPTH` -> ``malformed_json``;
5. optional attributes (time, subject, datacontenttype) badly formed, or (structured)
   ``data`` missing, not an object or sent as ``data_base64`` -> ``schema_violation``.

Payload JSON is parsed strictly: duplicate object keys and NaN/Infinity are refused.
Other headers (not ``ce_*``, not ``content-type``) may repeat; the last occurrence wins.

Over 400 lines on purpose: the decoding order above is one sequence whose rules must be read
together.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import TypeAdapter, ValidationError

from schemas.base import ContractModel, Identifier, Timestamp, printable, unsafe_text
from schemas.events import DeadLetterReason, FieldError
from schemas.types import ce_type_of

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_VALUE_BYTES",
    "CloudEvent",
    "ContractError",
    "Headers",
    "decode",
    "encode_binary",
    "encode_structured",
    "validate_data",
]

Headers = Sequence[tuple[str, bytes | None]]
"""Kafka headers as clients give them: (name, value) pairs, in order, names not unique."""

MAX_VALUE_BYTES = 256 * 1024
MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays/objects accepted in a value (a contract payload needs ~6).

An explicit limit, because the interpreter's recursion limit depends on how deep the
caller's stack already is: without it the same value could be ``malformed_json`` in one
process and ``schema_violation`` (pydantic's own limit) in another."""
SPEC_VERSION = "1.0"
JSON_CONTENT_TYPE = "application/json"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"

M = TypeVar("M", bound=ContractModel)

_REQUIRED_ATTRIBUTES = ("specversion", "id", "source", "type")
_VERSION_SUFFIX = re.compile(r"\.v[0-9]+$", re.ASCII)
_TIMESTAMP: TypeAdapter[datetime] = TypeAdapter(Timestamp)
_IDENTIFIER: TypeAdapter[str] = TypeAdapter(Identifier)
# Intake and the inbox store id and source as Identifier fields: anything longer or
# oddly spaced would pass decoding, then fail in the effect and be retried for ever.
_IDENTIFIER_ATTRIBUTES = ("id", "source")
# Error text may echo attacker-controlled input into the dead-letter topic and logs:
# keep each message short.
_MAX_MESSAGE = 300


@dataclass(frozen=True)
class CloudEvent:
    """A decoded event: envelope attributes plus ``data``, the parsed (unvalidated) JSON."""

    id: str
    source: str
    type: str
    time: datetime | None
    subject: str | None
    data: Any
    mode: Literal["binary", "structured"]


class ContractError(Exception):
    """A message that breaks the contract; carries what goes on the dead-letter topic."""

    def __init__(self, reason: DeadLetterReason, errors: Sequence[FieldError]) -> None:
        """Record ``reason`` and ``errors`` (at least one is expected)."""
        self.reason = reason
        self.errors: list[FieldError] = list(errors)
        super().__init__(self._summary())

    def _summary(self) -> str:
        if not self.errors:
            return str(self.reason)
        first = self.errors[0]
        where = f"{first.path}: " if first.path else ""
        more = f" (+{len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        return f"{self.reason}: {where}{first.message}{more}"

    def __str__(self) -> str:
        """One line: reason, then the first error, then how many more there are."""
        return self._summary()

    def __reduce__(self) -> tuple[type[ContractError], tuple[DeadLetterReason, list[FieldError]]]:
        """Pickle by constructor arguments (``args`` holds only the summary)."""
        return (type(self), (self.reason, self.errors))


def _error(reason: DeadLetterReason, path: str, message: str) -> ContractError:
    return ContractError(reason, [FieldError(path=path, message=_clip(message))])


def _clip(message: str) -> str:
    # One line, bounded, printable: messages go into str(ContractError), logs and dead
    # letters (PostgreSQL jsonb refuses NUL and unpaired surrogates).
    flat = printable(" ".join(message.split()))
    return flat if len(flat) <= _MAX_MESSAGE else flat[: _MAX_MESSAGE - 3] + "..."


def _shown(value: str) -> str:
    """A short printable rendering of an untrusted value for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- JSON ------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"number {_shown(text)} is out of range")
    return number


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads`` object hook that refuses a repeated key (ValueError)."""
    obj: dict[str, Any] = {}
    for key, item in pairs:
        if key in obj:
            # json.loads would silently keep the last; a repeated key is a producer bug.
            raise ValueError(f"duplicate key {_shown(key)}")
        obj[key] = item
    return obj


def _parse_object(value: bytes | None, what: str) -> dict[str, Any]:
    """Parse ``value`` as a UTF-8 JSON object or raise ``ContractError(malformed_json)``."""
    if not value:
        raise _error(DeadLetterReason.MALFORMED_JSON, "", f"{what} is empty")
    try:
        # Decode explicitly: json.loads(bytes) would also guess UTF-16/32.
        text = bytes(value).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _error(DeadLetterReason.MALFORMED_JSON, "", f"{what} is not UTF-8: {exc}") from None
    try:
        parsed = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            object_pairs_hook=unique_keys,
        )
    except RecursionError:
        # The stack ran out before MAX_JSON_DEPTH was even reached (a deep caller).
        raise _error(
            DeadLetterReason.MALFORMED_JSON,
            "",
            f"{what} is nested too deeply (more than {MAX_JSON_DEPTH} levels)",
        ) from None
    except ValueError as exc:  # JSONDecodeError, our hooks, int digit limits
        raise _error(DeadLetterReason.MALFORMED_JSON, "", f"{what} is not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise _error(
            DeadLetterReason.MALFORMED_JSON,
            "",
            f"{what} must be a JSON object, not {_kind(parsed)}",
        )
    if _too_deep(parsed, MAX_JSON_DEPTH):
        raise _error(
            DeadLetterReason.MALFORMED_JSON,
            "",
            f"{what} is nested too deeply (more than {MAX_JSON_DEPTH} levels)",
        )
    return parsed


def _too_deep(value: Any, limit: int) -> bool:
    """Whether ``value`` nests arrays/objects more than ``limit`` levels (no recursion)."""
    level: list[Any] = [value]
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        children: list[Any] = []
        for item in level:
            if isinstance(item, dict):
                children.extend(v for v in item.values() if isinstance(v, dict | list))
            else:
                children.extend(v for v in item if isinstance(v, dict | list))
        level = children
    return False


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    return "an object"


# --- Attributes ------------------------------------------------------------------------


def _parse_time(text: str, path: str) -> datetime:
    try:
        return _TIMESTAMP.validate_python(text)
    except ValidationError:
        raise _error(
            DeadLetterReason.SCHEMA_VIOLATION,
            path,
            f"{_shown(text)} is not an RFC 3339 date-time with offset",
        ) from None


def _header_map(headers: Headers) -> dict[str, bytes | None]:
    """Headers by lower-case name; a repeated ``ce_*``/``content-type`` is refused.

    A repeated envelope header is ambiguous (which ``ce_id`` is the idempotency key?),
    like a duplicate JSON key, and is refused rather than resolved. The reason is
    ``schema_violation``, not ``missing_header``: docs/contract.md's ``missing_header`` tells
    the producer an envelope attribute is absent, while here every attribute is present
    and the envelope itself is malformed. Error path: the (lower-case) header name.
    """
    found: dict[str, bytes | None] = {}
    counts: dict[str, int] = {}
    for item in headers:
        try:
            name, raw = item
        except (TypeError, ValueError):
            continue  # not a (name, value) pair: nothing a sender could mean by it
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        if not isinstance(name, str) or not (raw is None or isinstance(raw, bytes | bytearray)):
            continue
        key = name.lower()
        counts[key] = counts.get(key, 0) + 1
        found[key] = None if raw is None else bytes(raw)
    repeated = [
        FieldError(path=_clip(key), message=_clip(f"{key} is repeated ({count} times)"))
        for key, count in counts.items()
        if count > 1 and (key.startswith("ce_") or key == "content-type")
    ]
    if repeated:
        raise ContractError(DeadLetterReason.SCHEMA_VIOLATION, repeated)
    return found


def _header_text(found: Mapping[str, bytes | None], name: str) -> str | None:
    """The header's value as text; None when absent, null or not UTF-8."""
    raw = found.get(name)
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _missing(values: Mapping[str, Any], prefix: str) -> list[FieldError]:
    errors = []
    for name in _REQUIRED_ATTRIBUTES:
        value = values.get(name)
        if not isinstance(value, str) or not value.strip() or unsafe_text(value):
            message = f"{prefix}{name} is missing, empty or not printable"
        elif name in _IDENTIFIER_ATTRIBUTES and not _is_identifier(value):
            message = (
                f"{prefix}{name} must be at most 200 characters on one line, without"
                " leading or trailing whitespace"
            )
        else:
            continue
        errors.append(FieldError(path=prefix + name, message=message))
    return errors


def _is_identifier(value: str) -> bool:
    try:
        _IDENTIFIER.validate_python(value)
    except ValidationError:
        return False
    return True


# --- decode ----------------------------------------------------------------------------


def decode(
    value: bytes | None, headers: Headers, *, max_bytes: int = MAX_VALUE_BYTES
) -> CloudEvent:
    """Decode a Kafka record into a :class:`CloudEvent`, binary or structured mode.

    Structured mode is chosen when ``content-type`` starts with
    ``application/cloudevents+json``; otherwise binary mode (``ce_*`` headers). Header names
    are case-insensitive. ``data`` is parsed JSON, not yet validated: pass the event to
    :func:`validate_data`. Raises only :class:`ContractError`.
    """
    if value is not None and len(value) > max_bytes:
        raise _error(
            DeadLetterReason.TOO_LARGE, "", f"value is {len(value)} bytes; the limit is {max_bytes}"
        )
    found = _header_map(headers)
    content_type = (_header_text(found, "content-type") or "").strip().lower()
    if content_type.startswith(STRUCTURED_CONTENT_TYPE):
        return _decode_structured(value)
    return _decode_binary(value, found)


def _decode_binary(value: bytes | None, found: Mapping[str, bytes | None]) -> CloudEvent:
    attributes = {name: _header_text(found, "ce_" + name) for name in _REQUIRED_ATTRIBUTES}
    missing = _missing(attributes, "ce_")
    if missing:
        raise ContractError(DeadLetterReason.MISSING_HEADER, missing)
    specversion, event_id, source, ce_type = (
        str(attributes[name]) for name in _REQUIRED_ATTRIBUTES
    )
    if specversion != SPEC_VERSION:
        raise _error(
            DeadLetterReason.UNSUPPORTED_VERSION,
            "ce_specversion",
            f"specversion {_shown(specversion)} is not supported; expected {SPEC_VERSION!r}",
        )
    data = _parse_object(value, "value")
    time: datetime | None = None
    if found.get("ce_time") is not None:
        time_text = _header_text(found, "ce_time")
        if time_text is None:
            raise _error(DeadLetterReason.SCHEMA_VIOLATION, "ce_time", "ce_time is not UTF-8")
        time = _parse_time(time_text, "ce_time")
    subject: str | None = None
    if found.get("ce_subject") is not None:
        subject = _header_text(found, "ce_subject")
        if subject is None:
            raise _error(DeadLetterReason.SCHEMA_VIOLATION, "ce_subject", "ce_subject is not UTF-8")
    return CloudEvent(
        id=event_id,
        source=source,
        type=ce_type,
        time=time,
        subject=subject or None,
        data=data,
        mode="binary",
    )


def _decode_structured(value: bytes | None) -> CloudEvent:
    envelope = _parse_object(value, "value")
    missing = _missing(envelope, "")
    if missing:
        raise ContractError(DeadLetterReason.MISSING_HEADER, missing)
    specversion = str(envelope["specversion"])
    if specversion != SPEC_VERSION:
        raise _error(
            DeadLetterReason.UNSUPPORTED_VERSION,
            "specversion",
            f"specversion {_shown(specversion)} is not supported; expected {SPEC_VERSION!r}",
        )
    if "data_base64" in envelope:
        raise _error(
            DeadLetterReason.SCHEMA_VIOLATION,
            "data_base64",
            "data_base64 is not supported: send the payload as a JSON object in data",
        )
    data = envelope.get("data")
    if not isinstance(data, dict):
        message = (
            "data is missing" if data is None else f"data must be an object, not {_kind(data)}"
        )
        raise _error(DeadLetterReason.SCHEMA_VIOLATION, "data", message)
    content_type = envelope.get("datacontenttype")
    if content_type is not None and not _is_json_media_type(content_type):
        raise _error(
            DeadLetterReason.SCHEMA_VIOLATION,
            "datacontenttype",
            "datacontenttype must be application/json",
        )
    # In the JSON event format an attribute set to null is the same as an absent one.
    time: datetime | None = None
    raw_time = envelope.get("time")
    if raw_time is not None:
        if not isinstance(raw_time, str):
            raise _error(DeadLetterReason.SCHEMA_VIOLATION, "time", "time must be a string")
        time = _parse_time(raw_time, "time")
    subject = envelope.get("subject")
    if subject is not None and not isinstance(subject, str):
        raise _error(DeadLetterReason.SCHEMA_VIOLATION, "subject", "subject must be a string")
    return CloudEvent(
        id=envelope["id"],
        source=envelope["source"],
        type=envelope["type"],
        time=time,
        subject=subject or None,
        data=data,
        mode="structured",
    )


def _is_json_media_type(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    media_type = value.split(";", 1)[0].strip().lower()
    return media_type == JSON_CONTENT_TYPE or media_type.endswith("+json")


# --- validate --------------------------------------------------------------------------


def _family(ce_type: str) -> str:
    """``uk.gov.mash.referral.v2`` -> ``uk.gov.mash.referral``."""
    return _VERSION_SUFFIX.sub("", ce_type)


def _path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _field_errors(exc: ValidationError) -> list[FieldError]:
    errors = []
    for detail in exc.errors(include_url=False, include_input=False):
        message = detail["msg"]
        cause = (detail.get("ctx") or {}).get("error")
        if detail["type"] == "value_error" and cause is not None:
            message = str(cause)  # our own validators' text, without pydantic's prefix
        # Paths can hold sender-chosen keys (an unknown field's name): clip them too.
        errors.append(FieldError(path=_clip(_path(detail["loc"])), message=_clip(message)))
    return errors


def validate_data(event: CloudEvent, accepted: Mapping[str, type[M]]) -> M:
    """Validate ``event.data`` as the model ``accepted`` maps its type to.

    A type not in ``accepted`` raises ``unsupported_version`` when it differs from an
    accepted type only in its ``.vN`` suffix, else ``unknown_type``. Payloads are validated
    strictly as JSON (no coercion of "5" to 5 or 1 to true), and any pydantic error becomes
    ``schema_violation`` with one :class:`FieldError` per problem (dotted path). Raises only
    :class:`ContractError`.
    """
    type_path = "ce_type" if event.mode == "binary" else "type"
    model = accepted.get(event.type)
    if model is None:
        family = _family(event.type)
        if any(_family(known) == family for known in accepted):
            expected = ", ".join(sorted(known for known in accepted if _family(known) == family))
            raise _error(
                DeadLetterReason.UNSUPPORTED_VERSION,
                type_path,
                f"type {_shown(event.type)} is not supported here; expected {expected}",
            )
        raise _error(
            DeadLetterReason.UNKNOWN_TYPE,
            type_path,
            f"type {_shown(event.type)} is not accepted here",
        )
    try:
        # Re-serialise so pydantic validates in JSON mode: the same rules a JSON Schema
        # validator applies, and lone surrogates in strings are refused.
        text = json.dumps(event.data, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise _error(DeadLetterReason.SCHEMA_VIOLATION, "", f"data is not JSON: {exc}") from None
    try:
        return model.model_validate_json(text, strict=True)
    except ValidationError as exc:
        raise ContractError(DeadLetterReason.SCHEMA_VIOLATION, _field_errors(exc)) from None


# --- encode ----------------------------------------------------------------------------


def _attributes(
    event_id: str, source: str, data: ContractModel, time: datetime, ce_type: str | None
) -> tuple[str, str]:
    if not event_id or not source:
        raise ValueError("event_id and source must be non-empty")
    if time.tzinfo is None or time.utcoffset() is None:
        raise ValueError("time must be timezone-aware")
    return ce_type or ce_type_of(type(data)), time.isoformat()


def encode_binary(
    *,
    event_id: str,
    source: str,
    data: ContractModel,
    time: datetime,
    subject: str | None = None,
    ce_type: str | None = None,
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """Encode ``data`` as a binary-mode CloudEvent: ``(value, headers)``.

    The value is the payload JSON (UTF-8); the envelope goes in ``ce_*`` headers.
    ``ce_type`` defaults to the registry's type for ``type(data)``. Raises ``ValueError``
    for an empty id/source or a naive ``time`` (programming errors, not bad input).
    """
    resolved_type, time_text = _attributes(event_id, source, data, time, ce_type)
    headers = [
        ("ce_specversion", SPEC_VERSION.encode()),
        ("ce_id", event_id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", resolved_type.encode()),
        ("ce_time", time_text.encode()),
        ("content-type", JSON_CONTENT_TYPE.encode()),
    ]
    if subject is not None:
        headers.append(("ce_subject", subject.encode()))
    return data.model_dump_json().encode(), headers


def encode_structured(
    *,
    event_id: str,
    source: str,
    data: ContractModel,
    time: datetime,
    subject: str | None = None,
    ce_type: str | None = None,
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """Encode ``data`` as a structured-mode CloudEvent: ``(value, headers)``.

    The value is the JSON event format (envelope attributes and ``data``); the only header
    is ``content-type: application/cloudevents+json``. Same defaults and errors as
    :func:`encode_binary`.
    """
    resolved_type, time_text = _attributes(event_id, source, data, time, ce_type)
    envelope: dict[str, str] = {
        "specversion": SPEC_VERSION,
        "id": event_id,
        "source": source,
        "type": resolved_type,
        "time": time_text,
        "datacontenttype": JSON_CONTENT_TYPE,
    }
    if subject is not None:
        envelope["subject"] = subject
    # Splice the model's own JSON in rather than round-tripping it through json.loads, so
    # the payload bytes are exactly what encode_binary would send.
    head = json.dumps(envelope, ensure_ascii=False)[:-1]
    value = f'{head}, "data": {data.model_dump_json()}}}'
    return value.encode(), [("content-type", f"{STRUCTURED_CONTENT_TYPE}; charset=utf-8".encode())]
