"""A seeded corpus of hostile inbound Kafka messages that intake must refuse, every one.

:func:`hostile_corpus` builds ``count`` records for the two inbound topics, spread over
:data:`FAMILIES` (truncated JSON, garbled bytes, wrong encodings, deep nesting, header
abuse, type confusion, invalid payloads, ...). Each record says which dead-letter reason
intake gives it (``expected_reason``): what :func:`schemas.cloudevents.decode` followed by
:func:`schemas.cloudevents.validate_data` raise, in that order, with the default
256 KiB limit. Every family is built so that it *cannot* come out valid: the comments
at each builder say why, and ``tests/contract/test_hostile_corpus.py`` checks it.

:func:`oversized` gives a few ~10 MiB values, which a broker with the default
``max.message.bytes`` (1 MiB) refuses before intake ever sees them.

Generation is pure and deterministic: one ``random.Random(seed)`` drives every choice
(no hash-order or clock dependence), so the same seed gives the same bytes in any
process. The people are the fictional ones of :mod:`schemas.examples`.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Literal

from schemas import examples as ex
from schemas.base import ContractModel, nhs_check_digit
from schemas.cloudevents import (
    MAX_JSON_DEPTH,
    MAX_VALUE_BYTES,
    encode_binary,
    encode_structured,
)
from schemas.events import DeadLetterReason
from schemas.inbound import PoliceNotification, Referral
from schemas.types import ce_type_of
from services.common.topics import INBOUND_POLICE, INBOUND_REFERRALS

__all__ = [
    "BROKER_REFUSED",
    "FAMILIES",
    "LIMIT",
    "Hostile",
    "digest",
    "hostile_corpus",
    "oversized",
]

#: Intake's value limit (services.common.settings ``max_message_bytes`` default).
LIMIT = MAX_VALUE_BYTES
#: A broker's default ``max.message.bytes`` is 1 MiB (plus a few bytes of batch header).
BROKER_MAX = 1024 * 1024
#: The expected_reason of :func:`oversized` records: they never reach a consumer.
BROKER_REFUSED = "refused_by_broker"

MALFORMED = DeadLetterReason.MALFORMED_JSON.value
SCHEMA = DeadLetterReason.SCHEMA_VIOLATION.value
UNKNOWN_TYPE = DeadLetterReason.UNKNOWN_TYPE.value
MISSING = DeadLetterReason.MISSING_HEADER.value
TOO_LARGE = DeadLetterReason.TOO_LARGE.value
VERSION = DeadLetterReason.UNSUPPORTED_VERSION.value

Mode = Literal["binary", "structured"]
Header = tuple[str, bytes]
PathPart = str | int
Built = tuple[bytes | None, list[Header], str]
"""What a family builder returns: value, headers and the expected reason."""

STRUCTURED = ("content-type", b"application/cloudevents+json; charset=utf-8")
_REQUIRED = ("ce_specversion", "ce_id", "ce_source", "ce_type")
_T0 = datetime(2024, 3, 13, 9, 15, tzinfo=UTC)
_PLACEHOLDER = "@@HOSTILE@@"


@dataclass(frozen=True)
class Hostile:
    """One hostile inbound record and the dead-letter reason intake must give it."""

    topic_name: str
    """Contract (unprefixed) topic name: INBOUND_POLICE or INBOUND_REFERRALS."""
    key: bytes | None
    value: bytes | None
    headers: list[Header] = field(hash=False)
    family: str
    """Which kind of hostility, one of :data:`FAMILIES`."""
    expected_reason: str
    """The DeadLetterReason value (or :data:`BROKER_REFUSED` for :func:`oversized`)."""


# --- Valid bases ------------------------------------------------------------------------

_GIVEN = ("Testchild", "Testchildtwo", "Testchildthree", "Testchildfour")
_FAMILY = ("Example-One", "Example-Two", "Example-Three")


@dataclass(frozen=True)
class _Base:
    topic_name: str
    model: ContractModel
    text: str
    """The payload's JSON text (json.loads gives a fresh, mutable copy)."""
    reference: str
    source: str


@cache
def _bases() -> tuple[_Base, ...]:
    """A few valid police notifications and referrals, built from schemas.examples."""
    bases: list[_Base] = []
    for i in range(6):
        kids = [
            ex.police_child(
                child_ref=f"C-{i}-{k}",
                given_name=_GIVEN[(i + k) % len(_GIVEN)],
                family_name=_FAMILY[i % len(_FAMILY)],
                nhs_number=ex.NHS_NUMBERS[(i + k) % len(ex.NHS_NUMBERS)],
            )
            for k in range(1 + i % 2)
        ]
        police = ex.police_notification(
            notification_id=f"WM-HOSTILE-{i:04d}",
            crime_reference=f"CRIME-HOSTILE-{i:04d}",
            children=kids,
        )
        referral = ex.referral(
            referral_id=f"REF-HOSTILE-{i:04d}",
            children=[
                ex.child(
                    child_ref=f"R-{i}",
                    given_name=_GIVEN[i % len(_GIVEN)],
                    family_name=_FAMILY[(i + 1) % len(_FAMILY)],
                    nhs_number=ex.NHS_NUMBERS[(i + 3) % len(ex.NHS_NUMBERS)],
                )
            ],
            factors=["16A"] if i % 2 else ["19C"],
        )
        bases.append(
            _Base(
                INBOUND_POLICE,
                PoliceNotification.model_validate(police),
                json.dumps(police),
                police["notification_id"],
                "urn:police:west-midlands:hostile",
            )
        )
        bases.append(
            _Base(
                INBOUND_REFERRALS,
                Referral.model_validate(referral),
                json.dumps(referral),
                referral["referral_id"],
                "urn:council:portal:hostile",
            )
        )
    return tuple(bases)


_POLICE_TYPE = ce_type_of(PoliceNotification)
_REFERRAL_TYPE = ce_type_of(Referral)


class _Event:
    """One record's valid starting point: a base payload under its own event id."""

    def __init__(self, base: _Base, seed: int, n: int) -> None:
        self.base = base
        self.topic_name = base.topic_name
        self.ce_type = _POLICE_TYPE if base.topic_name == INBOUND_POLICE else _REFERRAL_TYPE
        self.other_type = _REFERRAL_TYPE if base.topic_name == INBOUND_POLICE else _POLICE_TYPE
        self.event_id = f"evt-hostile-{seed}-{n:05d}"
        self.time = _T0 + timedelta(seconds=n)
        self._valid: dict[Mode, tuple[bytes, list[Header]]] = {}

    def valid(self, mode: Mode) -> tuple[bytes, list[Header]]:
        """The valid record, exactly as encode_binary / encode_structured produce it."""
        if mode not in self._valid:
            encode = encode_binary if mode == "binary" else encode_structured
            value, headers = encode(
                event_id=self.event_id,
                source=self.base.source,
                data=self.base.model,
                time=self.time,
            )
            # Byte-level families rely on this: every byte ASCII, no escapes (so each
            # even-numbered quote opens a string).
            assert value.isascii(), value[:80]
            assert b"\\" not in value, value[:80]
            self._valid[mode] = (value, headers)
        value, headers = self._valid[mode]
        return value, list(headers)

    def headers(self, mode: Mode) -> list[Header]:
        """Valid headers for ``mode``."""
        return self.valid(mode)[1]

    def payload(self) -> dict[str, Any]:
        """A fresh, mutable copy of the valid payload."""
        data: dict[str, Any] = json.loads(self.base.text)
        return data

    def envelope(self) -> dict[str, Any]:
        """The structured-mode attributes (without data)."""
        return {
            "specversion": "1.0",
            "id": self.event_id,
            "source": self.base.source,
            "type": self.ce_type,
            "time": self.time.isoformat(),
            "datacontenttype": "application/json",
        }

    def text(self, mode: Mode, data: str, envelope: dict[str, Any] | None = None) -> str:
        """The value text carrying payload text ``data`` in ``mode``."""
        if mode == "binary":
            return data
        return _structured_text(self.envelope() if envelope is None else envelope, data)

    def encode(self, mode: Mode, data: str) -> tuple[bytes, list[Header]]:
        """Value (UTF-8) and valid headers for payload text ``data``."""
        return self.text(mode, data).encode(), self.headers(mode)


def _structured_text(envelope: dict[str, Any], data: str | None) -> str:
    # Splice the data text in verbatim (as encode_structured does): it may be JSON that
    # json.dumps could never produce (duplicate keys, 10,000 levels).
    head = json.dumps(envelope)[1:-1]
    parts = [head] if head else []
    if data is not None:
        parts.append(f'"data": {data}')
    return "{" + ", ".join(parts) + "}"


def _splice(payload: dict[str, Any], path: tuple[PathPart, ...], raw: str) -> str:
    """``payload`` as JSON text with the value at ``path`` replaced by the text ``raw``."""
    _set(payload, path, _PLACEHOLDER)
    text = json.dumps(payload)
    quoted = json.dumps(_PLACEHOLDER)
    assert text.count(quoted) == 1
    return text.replace(quoted, raw)


def _get(obj: Any, path: Iterable[PathPart]) -> Any:
    for part in path:
        obj = obj[part]
    return obj


def _set(obj: Any, path: tuple[PathPart, ...], value: Any) -> None:
    _get(obj, path[:-1])[path[-1]] = value


def _leaves(obj: Any, path: tuple[PathPart, ...] = ()) -> list[tuple[PathPart, ...]]:
    """Paths of every string leaf."""
    if isinstance(obj, str):
        return [path]
    if isinstance(obj, dict):
        return [p for key, item in obj.items() for p in _leaves(item, (*path, key))]
    if isinstance(obj, list):
        return [p for i, item in enumerate(obj) for p in _leaves(item, (*path, i))]
    return []


def _objects(obj: Any, path: tuple[PathPart, ...] = ()) -> list[tuple[PathPart, ...]]:
    """Paths of every non-empty JSON object, the payload itself first."""
    found: list[tuple[PathPart, ...]] = []
    if isinstance(obj, dict):
        if obj:
            found.append(path)
        for key, item in obj.items():
            found += _objects(item, (*path, key))
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            found += _objects(item, (*path, i))
    return found


def _mode(rng: random.Random) -> Mode:
    return "structured" if rng.random() < 0.35 else "binary"


def _filler(size: int) -> str:
    """``size`` characters of printable ASCII text."""
    words = "Synthetic filler text for a hostile message; no real person is described. "
    return (words * (size // len(words) + 1))[:size]


# --- Families -----------------------------------------------------------------------------
# Decoding order (schemas.cloudevents): size, repeated envelope headers, envelope
# (missing_header, then specversion), payload JSON (malformed_json), optional attributes
# (schema_violation), then validate_data: type (unsupported_version / unknown_type) and
# payload (schema_violation). Every builder breaks exactly one stage, with everything
# before it valid, so that its expected reason is the one that stage gives.


def _truncated_json(rng: random.Random, ev: _Event) -> Built:
    # A strict prefix of a JSON object never closes it (the value ends with its "}").
    mode = _mode(rng)
    value, headers = ev.valid(mode)
    cut = rng.randrange(len(value)) if rng.random() < 0.7 else len(value) - rng.randint(1, 8)
    return value[:cut], headers, MALFORMED


# Bytes that start no JSON text (not whitespace, not a value's first character): a value
# starting with one is never JSON, whatever follows.
_NOT_JSON_START = bytes(b for b in range(256) if b not in b' \t\n\r{["-0123456789tfnNI')


def _random_bytes(rng: random.Random, ev: _Event) -> Built:
    mode = _mode(rng)
    size = (
        rng.choice((1, 2, 16, 64, 256, 1024, 2048)) if rng.random() < 0.3 else rng.randint(1, 2048)
    )
    value = bytes([rng.choice(_NOT_JSON_START)]) + rng.randbytes(size - 1)
    if rng.random() < 0.2:
        value = rng.choice(
            (
                b"<referral><id>REF-HOSTILE</id></referral>",
                b"referral_id,given_name\nREF-HOSTILE,Testchild\n",
                b"referral_id=REF-HOSTILE&given_name=Testchild",
                b"\x1f\x8b\x08\x00\x00\x00\x00\x00",  # a gzip header: compressed by mistake
                b"\x00\x00\x00\x00\x01" + b"\x02REF",  # Confluent wire format (Avro)
                b"'referral_id': 'REF-HOSTILE'",
            )
        )
    return value, ev.headers(mode), MALFORMED


def _json_not_object(rng: random.Random, ev: _Event) -> Built:
    # Valid JSON, but the value (or structured envelope) must be an object.
    mode = _mode(rng)
    payload = ev.payload()
    value = rng.choice(
        (
            "null",
            "true",
            "false",
            "0",
            "-1.5e3",
            '"REF-HOSTILE"',
            "[]",
            json.dumps([payload]),
            json.dumps(json.dumps(payload)),  # the payload as a JSON string (double-encoded)
            json.dumps([ev.envelope()]),
        )
    )
    return value.encode(), ev.headers(mode), MALFORMED


def _bit_flips(rng: random.Random, ev: _Event) -> Built:
    # Flips anywhere but the last byte, then one flip in the last byte (the closing "}"):
    # no single-bit flip of "}" is "}" or whitespace, and none is a UTF-8 continuation
    # byte, so the text can never end a JSON object.
    mode = _mode(rng)
    value, headers = ev.valid(mode)
    buf = bytearray(value)
    for _ in range(rng.randint(0, 8)):
        buf[rng.randrange(len(buf) - 1)] ^= 1 << rng.randrange(8)
    buf[-1] ^= 1 << rng.randrange(8)
    return bytes(buf), headers, MALFORMED


_LATIN1_NARRATIVE = "Synthetic narrative: caf\xe9, na\xefve, Zo\xeb, fa\xe7ade."
_CP1252_NARRATIVE = "Synthetic narrative \u2013 the school\u2019s caf\xe9 (fictional)."
_UTF16_32 = ("utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be")


def _wrong_encoding(rng: random.Random, ev: _Event) -> Built:
    # UTF-16/32 put NUL bytes next to every ASCII character (or a BOM first): never JSON
    # once read as UTF-8. latin-1/cp1252 bytes >= 0x80 followed by ASCII are never UTF-8.
    # A UTF-8 BOM is refused by json.loads on text.
    mode = _mode(rng)
    payload = ev.payload()
    codec = rng.choice((*_UTF16_32, "latin-1", "cp1252", "utf-8-sig", "utf-8-bom-twice"))
    if codec in ("latin-1", "cp1252"):
        payload["narrative"] = _LATIN1_NARRATIVE if codec == "latin-1" else _CP1252_NARRATIVE
    elif rng.random() < 0.5:
        payload["narrative"] = _LATIN1_NARRATIVE
    text = ev.text(mode, json.dumps(payload, ensure_ascii=False))
    if codec == "utf-8-bom-twice":
        value = b"\xef\xbb\xbf\xef\xbb\xbf" + text.encode()
    else:
        value = text.encode(codec)
    return value, ev.headers(mode), MALFORMED


_INVALID_UTF8 = (
    b"\x80",  # a lone continuation byte
    b"\xbf\x80",
    b"\xc3\x28",  # a lead byte without its continuation
    b"\xe2\x28\xa1",
    b"\xe2\x82\x28",
    b"\xe2\x82",  # truncated 3-byte sequence
    b"\xf0\x28\x8c\xbc",
    b"\xf0\x90\x28\xbc",
    b"\xc0\xaf",  # overlong "/"
    b"\xe0\x80\xaf",  # overlong, 3 bytes
    b"\xc1\xbf",
    b"\xed\xa0\x80",  # an encoded UTF-16 surrogate (CESU-8)
    b"\xed\xbf\xbf",
    b"\xf4\x90\x80\x80",  # above U+10FFFF
    b"\xf8\x88\x80\x80\x80",  # 5-byte form
    b"\xfc\x84\x80\x80\x80\x80",  # 6-byte form
    b"\xfe",
    b"\xff",
)


def _invalid_utf8(rng: random.Random, ev: _Event) -> Built:
    # The valid value is pure ASCII: an invalid sequence between two ASCII bytes stays
    # invalid (a truncated sequence is followed by an ASCII byte, never a continuation).
    mode = _mode(rng)
    value, headers = ev.valid(mode)
    for _ in range(rng.randint(1, 3)):
        at = rng.randint(1, len(value) - 1)
        value = value[:at] + rng.choice(_INVALID_UTF8) + value[at:]
    return value, headers, MALFORMED


def _deep(rng: random.Random, depth: int) -> str:
    kind = rng.choice(("array", "object", "mixed"))
    if kind == "array":
        return "[" * depth + "]" * depth
    if kind == "object":
        return '{"a": ' * depth + "0" + "}" * depth
    opens = ["[" if i % 2 else '{"k": ' for i in range(depth)]
    closes = ["]" if i % 2 else "}" for i in reversed(range(depth))]
    return "".join(opens) + "1" + "".join(closes)


def _deep_nesting(rng: random.Random, ev: _Event) -> Built:
    # Deeper than MAX_JSON_DEPTH below the payload's top level: refused as malformed_json
    # however deep the caller's stack (the decoder's explicit limit).
    mode = _mode(rng)
    roll = rng.random()
    if roll < 0.05:
        depth = 10_000
    elif roll < 0.4:
        depth = rng.randint(MAX_JSON_DEPTH + 1, 500)
    elif roll < 0.85:
        depth = rng.randint(500, 5_000)
    else:
        depth = rng.randint(5_000, 25_000)
    payload = ev.payload()
    path: tuple[PathPart, ...] = rng.choice(
        (("narrative",), ("children",), ("factors",), ("x_nested",), ("children", 0, "address"))
    )
    if path == ("x_nested",):
        payload["x_nested"] = None
    data = _splice(payload, path, _deep(rng, depth))
    if mode == "structured" and rng.random() < 0.3:
        data = _deep(rng, depth)  # the whole of data
    return ev.text(mode, data).encode(), ev.headers(mode), MALFORMED


def _too_large(rng: random.Random, ev: _Event) -> Built:
    # Over 256 KiB (and under the broker's 1 MiB): the size check comes before anything
    # else, so even broken headers still give too_large.
    mode = _mode(rng)
    if rng.random() < 0.6:
        size = LIMIT + 1 + rng.randrange(4096)
    else:
        size = rng.randint(LIMIT + 4096, BROKER_MAX - 16 * 1024)
    variant = rng.choice(("narrative", "padding", "garbage"))
    if variant == "garbage":
        value = rng.randbytes(size)
    elif variant == "padding":
        valid, _ = ev.valid(mode)
        value = valid + b" " * (size - len(valid))  # valid JSON, just too big
    else:
        payload = ev.payload()
        payload["narrative"] = ""
        empty = len(ev.text(mode, json.dumps(payload)).encode())
        payload["narrative"] = _filler(size - empty)
        value = ev.text(mode, json.dumps(payload)).encode()
    headers = ev.headers(mode)
    roll = rng.random()
    if roll < 0.15:
        headers = []
    elif roll < 0.3:
        headers = [*headers, *headers]  # repeated: still too_large, size is checked first
    assert LIMIT < len(value) <= BROKER_MAX - 16 * 1024
    return value, headers, TOO_LARGE


def _huge_string(rng: random.Random, ev: _Event) -> Built:
    # Valid JSON within 256 KiB, one string far longer than any field allows (the longest
    # is a 20,000-character narrative; an unknown key is refused whatever its value).
    mode = _mode(rng)
    target = LIMIT - rng.randrange(8 * 1024)
    payload = ev.payload()
    path: tuple[PathPart, ...] = rng.choice(
        (
            ("narrative",),
            ("children", 0, "given_name"),
            ("children", 0, "address", "line1"),
            ("factors", 0),
            ("x_notes",),
        )
    )
    if path == ("x_notes",):
        payload["x_notes"] = None
    reference = "notification_id" if ev.topic_name == INBOUND_POLICE else "referral_id"
    if rng.random() < 0.15:
        path = (reference,)
    shell = len(ev.text(mode, _splice(payload, path, '""')).encode())
    filler = _filler(target - shell) if rng.random() < 0.8 else " " * (target - shell)
    value = ev.text(mode, _splice(payload, path, json.dumps(filler))).encode()
    assert len(value) <= LIMIT
    assert len(filler) > 20_000
    return value, ev.headers(mode), SCHEMA


# Characters no contract text may hold (schemas.base.unsafe_text): C0 controls but tab,
# newline and carriage return, DEL, C1 controls and lone surrogates.
_UNSAFE = (
    "\x00",
    "\x01",
    "\x07",
    "\x08",
    "\x0b",
    "\x0c",
    "\x0e",
    "\x1b",
    "\x1f",
    "\x7f",
    "\x85",
    "\x9f",
    "\ud800",
    "\udfff",
)
_UNSAFE_UTF8 = tuple(c for c in _UNSAFE if not "\ud800" <= c <= "\udfff")


def _control_chars_escaped(rng: random.Random, ev: _Event) -> Built:
    # JSON escapes (\u0000 ...) parse, then every contract string field refuses unsafe
    # text; a key holding one is an unknown field (and its sibling goes missing).
    mode = _mode(rng)
    payload = ev.payload()
    char = rng.choice(_UNSAFE)
    roll = rng.random()
    if mode == "structured" and roll < 0.2:
        envelope = ev.envelope()
        name = rng.choice(("id", "source", "type", "specversion", "time"))
        text = str(envelope[name])
        at = rng.randint(0, len(text))
        envelope[name] = text[:at] + char + text[at:]
        reason = SCHEMA if name == "time" else MISSING
        value = _structured_text(envelope, json.dumps(payload)).encode()
        return value, ev.headers(mode), reason
    if roll < 0.65:
        leaves = _leaves(payload)
        if char.isspace():
            # Postcodes allow any whitespace between their parts and normalise it away
            # (VT, FF and NEL included), so a whitespace control is no error there.
            leaves = [p for p in leaves if not str(p[-1]).endswith("postcode")]
        path = rng.choice(leaves)
        text = _get(payload, path)
        at = rng.randint(0, len(text))
        _set(payload, path, text[:at] + char + text[at:])
    else:
        where = _get(payload, rng.choice(_objects(payload)))
        keys = list(where)
        key = rng.choice(keys)
        at = rng.randint(0, len(key))
        bad = key[:at] + char + key[at:]
        if rng.random() < 0.5:
            # Rename, keeping the order of the keys.
            items = [(bad if k == key else k, v) for k, v in where.items()]
            where.clear()
            where.update(items)
        else:
            where[bad] = "x"
    return ev.text(mode, json.dumps(payload)).encode(), ev.headers(mode), SCHEMA


def _control_chars_raw(rng: random.Random, ev: _Event) -> Built:
    # A raw byte 0x00-0x1f inside a JSON string (right after an opening quote) is refused
    # by strict JSON parsing. The valid value has no escapes, so quotes alternate
    # open/close and every even-numbered one opens a string.
    mode = _mode(rng)
    value, headers = ev.valid(mode)
    quotes = [i for i, byte in enumerate(value) if byte == 0x22]
    for _ in range(rng.randint(1, 3)):
        opening = quotes[2 * rng.randrange(len(quotes) // 2)]
        raw = bytes([rng.randrange(0x20)])
        value = value[: opening + 1] + raw + value[opening + 1 :]
        quotes = [q + 1 if q > opening else q for q in quotes]
    return value, headers, MALFORMED


def _replace_header(headers: list[Header], name: str, value: bytes) -> list[Header]:
    return [(n, value if n == name else v) for n, v in headers]


def _header_control_chars(rng: random.Random, ev: _Event) -> Built:
    # Required attributes holding unsafe text are unusable (missing_header); a ce_time
    # holding one is not a date-time (schema_violation).
    headers = ev.headers("binary")
    value, _ = ev.valid("binary")
    name = rng.choice((*_REQUIRED, "ce_time"))
    current = dict(headers)[name].decode()
    text = "".join(rng.choice(_UNSAFE_UTF8) for _ in range(rng.randint(1, 3)))
    if rng.random() < 0.2:
        new = text  # nothing but control characters
    else:
        at = rng.randint(0, len(current))
        new = current[:at] + text + current[at:]
    headers = _replace_header(headers, name, new.encode())
    return value, headers, SCHEMA if name == "ce_time" else MISSING


def _duplicate_keys(rng: random.Random, ev: _Event) -> Built:
    # The decoder refuses a repeated object key anywhere (json.loads would keep the last).
    mode = _mode(rng)
    payload = ev.payload()
    roll = rng.random()
    if mode == "structured" and roll < 0.3:
        envelope = ev.envelope()
        key = rng.choice(("id", "type", "specversion", "source", "data"))
        extra = json.dumps(payload) if key == "data" else json.dumps(f"{envelope[key]}")
        data = json.dumps(payload)
        text = _structured_text(envelope, data)[:-1] + f", {json.dumps(key)}: {extra}}}"
        return text.encode(), ev.headers(mode), MALFORMED
    path = rng.choice(_objects(payload))
    obj = _get(payload, path)
    key = rng.choice(list(obj))
    again = obj[key] if rng.random() < 0.5 else "REPEATED"
    dup = json.dumps(obj)[:-1] + f", {json.dumps(key)}: {json.dumps(again)}}}"
    data = dup if path == () else _splice(payload, path, dup)
    return ev.text(mode, data).encode(), ev.headers(mode), MALFORMED


_NEAR_MISSES = {
    # Control characters in a header's *name* too: the dead letter must still be written.
    "ce_specversion": ("ce-specversion", "specversion", "ce_spec_version", "ce_specversion "),
    "ce_id": ("ce-id", "ceid", "id", " ce_id", "ce_ id", "ce_identifier", "ce_\x00id"),
    "ce_source": ("ce-source", "source", "ce_src", "ce_source\t", "ce_source\x1b[0m"),
    "ce_type": ("ce-type", "type", "ce_types", "ce_type_", "\x7fce_type"),
}


def _missing_headers(rng: random.Random, ev: _Event) -> Built:
    # Binary mode needs the four required ce_* headers present, UTF-8 and non-blank: break
    # at least one (drop it, give it an empty or near-miss name, or an empty value).
    value, _ = ev.valid("binary")
    headers = ev.headers("binary")
    if rng.random() < 0.1:
        return value, rng.choice(([], [("content-type", b"application/json")])), MISSING
    broken = rng.sample(_REQUIRED, rng.randint(1, len(_REQUIRED)))
    out: list[Header] = []
    for name, raw in headers:
        if name not in broken:
            out.append((name, raw))
            continue
        how = rng.choice(("drop", "empty-name", "near-miss", "empty-value", "blank-value"))
        if how == "empty-name":
            out.append(("", raw))
        elif how == "near-miss":
            out.append((rng.choice(_NEAR_MISSES[name]), raw))
        elif how == "empty-value":
            out.append((name, b""))
        elif how == "blank-value":
            out.append((name, rng.choice((b" ", b"\t", b"  \r\n  "))))
    if rng.random() < 0.3:
        out.insert(rng.randint(0, len(out)), ("", rng.randbytes(rng.randint(0, 16))))
    return value, out, MISSING


def _repeated_headers(rng: random.Random, ev: _Event) -> Built:
    # A repeated ce_* or content-type header (any case) is ambiguous: schema_violation.
    mode = _mode(rng)
    value, headers = ev.valid(mode)
    if mode == "structured":
        names = ["content-type", "ce_id", "ce_type"]
    else:
        names = [*_REQUIRED, "ce_time", "content-type", "ce_subject"]
    for _ in range(rng.randint(1, 3)):
        name = rng.choice(names)
        spelled = rng.choice((name, name.upper(), name.title()))
        again = rng.choice(
            (
                dict(headers).get(name, b"C-1"),
                ev.other_type.encode() if name == "ce_type" else b"evt-other",
                b"application/cloudevents+json" if name == "content-type" else b"1.0",
            )
        )
        if name == "ce_subject" or (mode == "structured" and name != "content-type"):
            # Not there yet: send it twice.
            headers.insert(rng.randint(0, len(headers)), (spelled, again))
        headers.insert(rng.randint(0, len(headers)), (spelled, again))
    return value, headers, SCHEMA


def _non_utf8(rng: random.Random, text: str) -> bytes:
    roll = rng.random()
    if roll < 0.3:
        return text.encode("utf-16")  # starts with a BOM, 0xff 0xfe
    if roll < 0.5:
        return (text + "\xe9").encode("latin-1")  # a trailing lead byte
    raw = bytearray(rng.randbytes(rng.randint(0, 24)))
    # 0xc0, 0xc1 and 0xf5-0xff never occur in UTF-8.
    raw.insert(rng.randint(0, len(raw)), rng.choice((0xC0, 0xC1, 0xF5, 0xFE, 0xFF)))
    return bytes(raw)


def _binary_header_values(rng: random.Random, ev: _Event) -> Built:
    # Non-UTF-8 bytes: in a required header it is unusable (missing_header); in ce_time
    # or ce_subject it is refused as schema_violation (checked after the payload).
    value, _ = ev.valid("binary")
    headers = ev.headers("binary")
    current = dict(headers)
    targets = rng.sample((*_REQUIRED, "ce_time", "ce_subject"), rng.randint(1, 2))
    for name in targets:
        raw = _non_utf8(rng, current.get(name, b"C-1").decode())
        if name in current:
            headers = _replace_header(headers, name, raw)
        else:
            headers.append((name, raw))
    reason = MISSING if any(name in _REQUIRED for name in targets) else SCHEMA
    return value, headers, reason


def _enormous_headers(rng: random.Random, ev: _Event) -> Built:
    # ~100 KiB in one envelope header. id/source must be Identifiers (<= 200 characters);
    # an enormous type is no accepted type; specversion is not "1.0"; ce_time not a time.
    value, _ = ev.valid("binary")
    headers = ev.headers("binary")
    size = rng.randint(96 * 1024, 128 * 1024)
    name = rng.choice((*_REQUIRED, "ce_time"))
    current = dict(headers)[name].decode()
    big, reason = {
        "ce_id": (current + _filler(size), MISSING),
        "ce_source": ("urn:" + _filler(size).replace(" ", "-"), MISSING),
        "ce_type": (_filler(size).replace(" ", ".") + ".v1", UNKNOWN_TYPE),
        "ce_specversion": ("1.0" + "0" * size, VERSION),
        "ce_time": (current + " " * size, SCHEMA),
    }[name]
    headers = _replace_header(headers, name, big.encode())
    if rng.random() < 0.3:
        # An enormous header nobody reads, with an empty name, rides along.
        headers.append(("", _filler(size).encode()))
    return value, headers, reason


_POLICE_CONFUSIONS: tuple[tuple[tuple[PathPart, ...], Any], ...] = (
    (("dash_score",), "15"),
    (("dash_score",), 15.0),
    (("dash_score",), True),
    (("restricted",), "false"),
    (("restricted",), 0),
    (("children", 0, "present_at_incident"), "true"),
    (("children", 0, "resident"), 1),
    (("children", 0, "no_fixed_abode"), "false"),
    (("notification_id",), 1001),
    (("force",), 7),
    (("crime_reference",), 12345),
    (("children", 0, "child_ref"), 1),
    (("children", 0, "nhs_number"), 9990000018),
    (("children", 0, "school_urn"), 999001),
    (("officer", "collar_number"), 1234),
    (("officer", "phone"), 1214960000),
    (("location_postcode",), 64),
    (("narrative",), 1.5),
    (("occurred_at",), 1710279600),
    (("reported_at",), "1710283500"),
    (("children", 0, "date_of_birth"), 20190517),
    (("adults", 0, "given_name"), ["Testadult"]),
    (("ppn_grade",), {"level": "high"}),
    (("factors",), "3B"),
    (("factors", 0), 3),
    (("children",), {"0": "C-1"}),
)
_REFERRAL_CONFUSIONS: tuple[tuple[tuple[PathPart, ...], Any], ...] = (
    (("indicators", "missing_episodes_90d"), "0"),
    (("indicators", "missing_episodes_90d"), 0.5),
    (("indicators", "missing_episodes_90d"), False),
    (("indicators", "immediate_danger"), "false"),
    (("indicators", "injury_observed"), 0),
    (("consent", "obtained"), "true"),
    (("consent", "obtained"), 1),
    (("referral_id",), 1),
    (("referral_source",), 2),
    (("factors", 0), 16),
    (("factors",), "16A"),
    (("children", 0, "nhs_number"), 9990000042),
    (("received_at",), 1710321300),
    (("received_at",), "1710321300"),
    (("referrer", "phone"), 1214960001),
    (("referrer", "agency_id"), 999001),
    (("children", 0, "gender"), 0),
    (("children", 0, "no_fixed_abode"), "no"),
    (("children", 0, "address", "postcode"), 114),
    (("narrative",), False),
    (("consent",), "true"),
    (("referrer",), "school-999001"),
)


def _type_confusion(rng: random.Random, ev: _Event) -> Built:
    # validate_data is strict: no "5" for 5, no 1 for true, no number for text.
    mode = _mode(rng)
    payload = ev.payload()
    table = _POLICE_CONFUSIONS if ev.topic_name == INBOUND_POLICE else _REFERRAL_CONFUSIONS
    for path, replacement in rng.sample(table, rng.randint(1, 3)):
        try:
            _set(payload, path, replacement)
        except (KeyError, IndexError, TypeError):
            # An earlier pick replaced a parent (e.g. "factors" by a string): this one is
            # already wrong enough.
            continue
    return ev.text(mode, json.dumps(payload)).encode(), ev.headers(mode), SCHEMA


def _wrong_nhs_number(rng: random.Random) -> str:
    """Ten digits whose check digit is wrong (or that no check digit can make valid)."""
    first = "999" + "".join(rng.choice("0123456789") for _ in range(6))
    check = nhs_check_digit(first)
    digit = rng.randrange(10) if check is None else (check + rng.randint(1, 9)) % 10
    return first + str(digit)


_POLICE_REQUIRED: tuple[tuple[PathPart, ...], ...] = (
    ("notification_id",),
    ("force",),
    ("incident_type",),
    ("occurred_at",),
    ("reported_at",),
    ("location_postcode",),
    ("ppn_grade",),
    ("children",),
    ("officer",),
    ("dash_risk",),  # required for domestic_abuse, which every base is
    ("children", 0, "child_ref"),
    ("children", 0, "gender"),
    ("children", 0, "present_at_incident"),
    ("children", 0, "resident"),
    ("children", 0, "date_of_birth"),
    ("children", 0, "given_name"),
    ("children", 0, "address"),
    ("officer", "phone"),
    ("adults", 0, "role"),
)
_REFERRAL_REQUIRED: tuple[tuple[PathPart, ...], ...] = (
    ("referral_id",),
    ("received_at",),
    ("referral_source",),
    ("referrer",),
    ("children",),
    ("factors",),
    ("consent",),
    ("referrer", "email"),
    ("referrer", "agency_id"),
    ("consent", "obtained"),
    ("children", 0, "child_ref"),
    ("children", 0, "gender"),
    ("children", 0, "family_name"),
    ("children", 0, "date_of_birth"),
    ("children", 0, "address", "postcode"),
)
_BAD_VALUES: tuple[tuple[str, tuple[PathPart, ...], Any], ...] = (
    # (topic or "", path, value): wrong enum values, bad dates and times, bad formats.
    (INBOUND_POLICE, ("incident_type",), "burglary"),
    (INBOUND_POLICE, ("incident_type",), "DOMESTIC_ABUSE"),
    (INBOUND_POLICE, ("ppn_grade",), "HIGH"),
    (INBOUND_POLICE, ("dash_risk",), "very high"),
    (INBOUND_POLICE, ("dash_score",), 28),
    (INBOUND_POLICE, ("dash_score",), -1),
    (INBOUND_POLICE, ("force",), "West Midlands"),
    (INBOUND_POLICE, ("occurred_at",), "2024-03-12T21:40:00"),
    (INBOUND_POLICE, ("occurred_at",), "2024-02-30T21:40:00+00:00"),
    (INBOUND_POLICE, ("reported_at",), "12/03/2024 23:05"),
    (INBOUND_POLICE, ("reported_at",), "2024-03-12"),
    (INBOUND_POLICE, ("adults", 0, "role"), "witness"),
    (INBOUND_POLICE, ("adults", 0, "date_of_birth"), "1990-13-01"),
    (INBOUND_POLICE, ("factors",), ["21", "3B"]),
    (INBOUND_POLICE, ("location_postcode",), "NOT A POSTCODE"),
    (INBOUND_REFERRALS, ("referral_source",), "99"),
    (INBOUND_REFERRALS, ("referral_source",), "school"),
    (INBOUND_REFERRALS, ("factors",), ["99Z"]),
    (INBOUND_REFERRALS, ("factors",), []),
    (INBOUND_REFERRALS, ("factors",), ["21", "16A"]),
    (INBOUND_REFERRALS, ("indicators", "disclosure"), "verbal"),
    (INBOUND_REFERRALS, ("indicators", "missing_episodes_90d"), 1001),
    (INBOUND_REFERRALS, ("consent",), {"obtained": False}),
    (INBOUND_REFERRALS, ("consent",), {"obtained": True, "override_reason": "undue_delay"}),
    (INBOUND_REFERRALS, ("consent", "override_reason"), "because"),
    (INBOUND_REFERRALS, ("received_at",), "2024-03-13T09:15:00"),
    (INBOUND_REFERRALS, ("received_at",), "yesterday"),
    (INBOUND_REFERRALS, ("referrer", "email"), "not-an-email"),
    (INBOUND_REFERRALS, ("referrer", "phone"), "call me"),
    ("", ("children", 0, "gender"), "m"),
    ("", ("children", 0, "date_of_birth"), "2019-02-30"),
    ("", ("children", 0, "date_of_birth"), "17/05/2019"),
    ("", ("children", 0, "date_of_birth"), "2019-5-17"),
    ("", ("children", 0, "date_of_birth"), "2019-05-17T00:00:00+00:00"),
    ("", ("children", 0, "expected_date_of_birth"), "2024-09-01"),  # as well as a dob
    ("", ("children", 0, "school_urn"), "12345"),
    ("", ("children", 0, "upn"), "a123"),
    ("", ("children", 0, "address", "postcode"), "B6"),
    ("", ("children", 0, "given_name"), ""),
    ("", ("children", 0, "child_ref"), " C-1"),
    ("", ("children",), []),
)
_UNKNOWN_FIELDS: tuple[tuple[tuple[PathPart, ...], str], ...] = (
    ((), "middle_name"),
    ((), "priority"),
    ((), "ce_id"),
    ((), "Narrative"),
    ((), "narrative "),
    (("children", 0), "ethnicity"),
    (("children", 0, "address"), "county"),
    (("children", 0), "nhsNumber"),
)


def _invalid_payload(rng: random.Random, ev: _Event) -> Built:
    # A valid envelope around a payload the model refuses: unknown fields, missing
    # required fields, wrong enum values, bad dates, invalid NHS numbers, broken rules.
    mode = _mode(rng)
    payload = ev.payload()
    police = ev.topic_name == INBOUND_POLICE
    kind = rng.choice(("unknown", "missing", "bad-value", "nhs", "too-many", "same-ref"))
    if kind == "unknown":
        path, name = rng.choice(_UNKNOWN_FIELDS)
        _get(payload, path)[name] = rng.choice(("x", 1, None, True, [], {}))
    elif kind == "missing":
        path = rng.choice(_POLICE_REQUIRED if police else _REFERRAL_REQUIRED)
        del _get(payload, path[:-1])[path[-1]]
    elif kind == "bad-value":
        options = [(p, v) for topic, p, v in _BAD_VALUES if topic in ("", ev.topic_name)]
        path, bad = rng.choice(options)
        _set(payload, path, bad)
    elif kind == "nhs":
        bad = rng.choice(
            (
                ex.INVALID_NHS_NUMBER,
                _wrong_nhs_number(rng),
                _wrong_nhs_number(rng),
                "999 000 0018",
                "999000001",
                "99900000189",
                "99900000AB",
                "\uff19\uff19\uff19\uff10\uff10\uff10\uff10018",  # full-width digits
            )
        )
        payload["children"][0]["nhs_number"] = bad
    elif kind == "too-many":
        child = payload["children"][0]
        payload["children"] = [{**child, "child_ref": f"C-{i}"} for i in range(31)]
    else:
        payload["children"] = [payload["children"][0], dict(payload["children"][0])]
    return ev.text(mode, json.dumps(payload)).encode(), ev.headers(mode), SCHEMA


_UNKNOWN_TYPES = (
    "uk.gov.mash.unknown.v1",
    "uk.gov.mash.queue-update.v1",
    "uk.gov.mash.practitioner-decision.v1",
    "uk.gov.mash.contact.v1",
    "uk.gov.mash.dead-letter.v1",
    "uk.gov.mash.case-status.v1",
    "com.example.referral",
    "referral",
    "UK.GOV.MASH.REFERRAL.V1",
    "UK.GOV.MASH.POLICE-NOTIFICATION.V1",
    "uk.gov.mash.referral.v1 ",
    "uk.gov.mash.referrals.v1",
    "uk.gov.mash.referral.v1.v",
    "uk.gov.mash.referral-v1",
    "uk.gov.mash.police_notification.v1",
    "\u0443k.gov.mash.referral.v1",  # a Cyrillic u
)
_TYPE_WORDS = ("contact", "thing", "incident", "alert", "notice", "case", "x", "ref")


def _unknown_type(rng: random.Random, ev: _Event) -> Built:
    # Types whose family (the type without ".vN") is not the topic's own, including the
    # other inbound topic's type: unknown_type.
    mode = _mode(rng)
    roll = rng.random()
    if roll < 0.25:
        ce_type = ev.other_type
    elif roll < 0.7:
        ce_type = rng.choice(_UNKNOWN_TYPES)
    else:
        ce_type = f"{rng.choice(('uk.gov.mash', 'org.example', 'com'))}."
        ce_type += f"{rng.choice(_TYPE_WORDS)}{rng.randrange(100)}.v{rng.randint(1, 9)}"
    value, headers = _with_type(ev, mode, ce_type)
    return value, headers, UNKNOWN_TYPE


def _with_type(ev: _Event, mode: Mode, ce_type: str) -> tuple[bytes, list[Header]]:
    payload = json.dumps(ev.payload())
    if mode == "binary":
        return payload.encode(), _replace_header(ev.headers(mode), "ce_type", ce_type.encode())
    envelope = {**ev.envelope(), "type": ce_type}
    return _structured_text(envelope, payload).encode(), ev.headers(mode)


_SPEC_VERSIONS = ("0.3", "1", "1.0.0", "2.0", "1.1", "v1.0", "1.0 ", " 1.0", "1,0", "01.0", "0.1")


def _unsupported_version(rng: random.Random, ev: _Event) -> Built:
    # A specversion other than "1.0", or the topic's own type at another version.
    mode = _mode(rng)
    if rng.random() < 0.5:
        ce_type = ev.ce_type.rsplit(".v", 1)[0] + rng.choice((".v2", ".v0", ".v10", ".v01", ".v99"))
        value, headers = _with_type(ev, mode, ce_type)
        return value, headers, VERSION
    version = rng.choice(_SPEC_VERSIONS)
    payload = json.dumps(ev.payload())
    if mode == "binary":
        headers = _replace_header(ev.headers(mode), "ce_specversion", version.encode())
        return payload.encode(), headers, VERSION
    envelope = {**ev.envelope(), "specversion": version}
    return _structured_text(envelope, payload).encode(), ev.headers(mode), VERSION


def _structured_envelope(rng: random.Random, ev: _Event) -> Built:
    # Structured-mode envelopes broken one way each; the reason follows the decoder's
    # order (attributes missing or not strings, then data and optional attributes).
    payload = ev.payload()
    data = json.dumps(payload)
    envelope = ev.envelope()
    content_type = rng.choice(
        (
            b"application/cloudevents+json",
            b"application/cloudevents+json; charset=utf-8",
            b"Application/CloudEvents+JSON",
        )
    )
    headers: list[Header] = [("content-type", content_type)]
    case = rng.randrange(12)
    text: str
    if case == 0:
        text, reason = _structured_text(envelope, None), SCHEMA  # no data
    elif case == 1:
        text, reason = _structured_text(envelope, rng.choice(("null", "[]", '"x"', "7"))), SCHEMA
    elif case == 2:
        envelope["data_base64"] = "eyJyZWZlcnJhbF9pZCI6ICJSRUYifQ=="
        text = _structured_text(envelope, data if rng.random() < 0.5 else None)
        reason = SCHEMA
    elif case == 3:
        envelope["datacontenttype"] = rng.choice(("text/xml", "application/xml", "text/plain", 5))
        text, reason = _structured_text(envelope, data), SCHEMA
    elif case == 4:
        envelope["time"] = rng.choice((5, "yesterday", "2024-03-13T09:15:00", ["2024"]))
        text, reason = _structured_text(envelope, data), SCHEMA
    elif case == 5:
        envelope["subject"] = rng.choice((7, ["C-1"], {"child": "C-1"}, True))
        text, reason = _structured_text(envelope, data), SCHEMA
    elif case == 6:
        name = rng.choice(("specversion", "id", "source", "type"))
        envelope[name] = rng.choice((None, 1.0, 7, "", "   ", ["x"]))
        if rng.random() < 0.5:
            del envelope[name]
        text, reason = _structured_text(envelope, data), MISSING
    elif case == 7:
        # Binary-mode attribute names inside a structured envelope.
        envelope = {f"ce_{k}": v for k, v in envelope.items()}
        text, reason = _structured_text(envelope, data), MISSING
    elif case == 8:
        text, reason = data, MISSING  # a binary-mode value sent as structured
    elif case == 9:
        # A batch: not structured mode (so binary), and no ce_* headers.
        headers = [("content-type", b"application/cloudevents-batch+json")]
        text, reason = "[" + _structured_text(envelope, data) + "]", MISSING
    elif case == 10:
        envelope["id"] = "evt-" + "x" * rng.randint(200, 400)  # not an Identifier
        text, reason = _structured_text(envelope, data), MISSING
    else:
        payload["x_unexpected"] = True
        text, reason = _structured_text(envelope, json.dumps(payload)), SCHEMA
    return text.encode(), headers, reason


def _tombstone(rng: random.Random, ev: _Event) -> Built:
    # A null (or empty) value is no payload; with no envelope headers either, the
    # headers are what is missing first.
    roll = rng.random()
    if roll < 0.35:
        return None, ev.headers("binary"), MALFORMED
    if roll < 0.55:
        return None, [], MISSING
    if roll < 0.7:
        return None, [("content-type", b"application/json")], MISSING
    if roll < 0.85:
        return None, ev.headers("structured"), MALFORMED
    return b"", ev.headers(_mode(rng)), MALFORMED


Builder = Callable[[random.Random, _Event], Built]

_BUILDERS: dict[str, Builder] = {
    "truncated_json": _truncated_json,
    "random_bytes": _random_bytes,
    "json_not_object": _json_not_object,
    "bit_flips": _bit_flips,
    "wrong_encoding": _wrong_encoding,
    "invalid_utf8": _invalid_utf8,
    "deep_nesting": _deep_nesting,
    "too_large": _too_large,
    "huge_string": _huge_string,
    "control_chars_escaped": _control_chars_escaped,
    "control_chars_raw": _control_chars_raw,
    "header_control_chars": _header_control_chars,
    "duplicate_keys": _duplicate_keys,
    "missing_headers": _missing_headers,
    "repeated_headers": _repeated_headers,
    "binary_header_values": _binary_header_values,
    "enormous_headers": _enormous_headers,
    "type_confusion": _type_confusion,
    "invalid_payload": _invalid_payload,
    "unknown_type": _unknown_type,
    "unsupported_version": _unsupported_version,
    "structured_envelope": _structured_envelope,
    "tombstone": _tombstone,
}

FAMILIES: tuple[str, ...] = tuple(_BUILDERS)
"""Every family, in a fixed order."""

#: Families kept rare because each record is big (a too_large value is stored whole in
#: the dead letter): share of the corpus, at least one record each.
RARE: dict[str, float] = {"too_large": 0.002, "huge_string": 0.0025, "enormous_headers": 0.005}


def _schedule(rng: random.Random, count: int) -> list[str]:
    """``count`` family names: the rare ones at their share, the rest in equal parts."""
    if count < len(FAMILIES):
        return [FAMILIES[i] for i in range(count)]
    quotas = {name: max(1, int(count * share)) for name, share in RARE.items()}
    common = [name for name in FAMILIES if name not in RARE]
    each, extra = divmod(count - sum(quotas.values()), len(common))
    for i, name in enumerate(common):
        quotas[name] = each + (1 if i < extra else 0)
    order = [name for name in FAMILIES for _ in range(quotas[name])]
    rng.shuffle(order)
    return order


def _key(rng: random.Random, ev: _Event) -> bytes | None:
    """A record key: usually the right reference, often not (keys are never validated)."""
    roll = rng.random()
    if roll < 0.35:
        return ev.base.reference.encode()
    if roll < 0.5:
        return None
    if roll < 0.55:
        return b""
    if roll < 0.75:
        return rng.randbytes(rng.randint(1, 64))
    if roll < 0.8:
        return b"\xff\xfe" + ev.base.reference.encode("utf-16-le")
    if roll < 0.85:
        return ev.base.reference.encode() + b"\x00\x1b[2J"
    if roll < 0.9:
        return _filler(rng.randint(1024, 4096)).encode()
    return str(rng.randrange(10**12)).encode()


def hostile_corpus(seed: int, count: int = 10_000) -> list[Hostile]:
    """``count`` hostile inbound records, the same bytes for the same seed.

    Every family of :data:`FAMILIES` is present once ``count >= len(FAMILIES)``: the
    :data:`RARE` ones at their small share, the others in equal parts, shuffled.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    rng = random.Random(seed)
    bases = _bases()
    records: list[Hostile] = []
    for n, family in enumerate(_schedule(rng, count)):
        ev = _Event(rng.choice(bases), seed, n)
        value, headers, reason = _BUILDERS[family](rng, ev)
        records.append(Hostile(ev.topic_name, _key(rng, ev), value, headers, family, reason))
    return records


def oversized(seed: int) -> list[Hostile]:
    """Three values over 10 MiB, which a broker with the default 1 MiB limit refuses.

    One valid binary event with an enormous narrative, one structured, one of random
    bytes: only the size is wrong in the first two.
    """
    rng = random.Random(seed)
    bases = _bases()
    ten_mib = 10 * 1024 * 1024
    records: list[Hostile] = []
    modes: tuple[Mode | None, ...] = ("binary", "structured", None)  # None: random bytes
    for n, mode in enumerate(modes):
        ev = _Event(rng.choice(bases), seed, 90_000 + n)
        size = ten_mib + 1 + rng.randrange(64 * 1024)
        headers = ev.headers(mode or "binary")
        if mode is None:
            value = rng.randbytes(size)
        else:
            payload = ev.payload()
            payload["narrative"] = _filler(size)
            value = ev.text(mode, json.dumps(payload)).encode()
        records.append(
            Hostile(
                ev.topic_name,
                ev.base.reference.encode(),
                value,
                headers,
                "oversized",
                BROKER_REFUSED,
            )
        )
    return records


def digest(records: Iterable[Hostile]) -> str:
    """SHA-256 over every field of every record (length-prefixed, so unambiguous)."""
    h = hashlib.sha256()

    def put(part: bytes | None) -> None:
        if part is None:
            h.update(b"N")
        else:
            h.update(b"B%d:" % len(part))
            h.update(part)

    for record in records:
        put(record.topic_name.encode())
        put(record.key)
        put(record.value)
        h.update(b"H%d:" % len(record.headers))
        for name, value in record.headers:
            put(name.encode())
            put(value)
        put(record.family.encode())
        put(record.expected_reason.encode())
    return h.hexdigest()
