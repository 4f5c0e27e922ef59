"""Text that no database column or JSON output can carry is refused at the front door:
NUL and other control characters, and unpaired surrogates smuggled in as JSON escapes."""

from __future__ import annotations

import json

import pytest

from schemas import examples as ex
from schemas.base import printable, unsafe_text
from schemas.cloudevents import ContractError, decode, validate_data
from schemas.events import DeadLetterReason
from schemas.types import MODELS

HEADERS = [
    ("ce_specversion", b"1.0"),
    ("ce_id", b"evt-1"),
    ("ce_source", b"urn:test"),
    ("ce_type", b"uk.gov.mash.referral.v1"),
    ("content-type", b"application/json"),
]


def _check(value: bytes, headers: list[tuple[str, bytes]] = HEADERS) -> ContractError:
    with pytest.raises(ContractError) as caught:
        validate_data(decode(value, headers), MODELS)
    return caught.value


@pytest.mark.parametrize(
    "raw_json",
    [
        '"Test\\u0000child"',  # NUL
        '"Test\\u0007child"',  # BEL
        '"Test\\ud800child"',  # unpaired high surrogate
        '"\\udc00"',  # unpaired low surrogate
    ],
)
def test_unsafe_text_in_a_field_is_a_schema_violation(raw_json: str) -> None:
    body = json.dumps(ex.referral()).replace('"Testchild"', raw_json, 1)
    error = _check(body.encode())
    assert error.reason is DeadLetterReason.SCHEMA_VIOLATION
    # Controls are named by field; a lone surrogate already fails JSON parsing (path "").
    assert any(e.path.endswith("given_name") or e.path == "" for e in error.errors)
    assert all(not unsafe_text(e.path + e.message) for e in error.errors)


def test_an_unsafe_unknown_key_is_reported_printably() -> None:
    body = json.dumps({**ex.referral()}).replace('"factors"', '"x\\u0000y", "factors"', 1)
    body = body.replace('"x\\u0000y", "factors"', '"x\\u0000y": 1, "factors"', 1)
    error = _check(body.encode())
    assert error.reason is DeadLetterReason.SCHEMA_VIOLATION
    for e in error.errors:
        assert not unsafe_text(e.path)
        assert not unsafe_text(e.message)
    assert any("x\\x00y" in e.path for e in error.errors)


@pytest.mark.parametrize("ce_id", [b"evt\x00one", b"evt\x1bone"])
def test_an_unprintable_event_id_is_not_a_usable_header(ce_id: bytes) -> None:
    headers = [(k, ce_id if k == "ce_id" else v) for k, v in HEADERS]
    error = _check(json.dumps(ex.referral()).encode(), headers)
    assert error.reason is DeadLetterReason.MISSING_HEADER
    assert [e.path for e in error.errors] == ["ce_id"]


def test_tabs_and_newlines_are_still_text() -> None:
    assert not unsafe_text("line one\nline two\twith a tab\r\n")
    assert printable("a\x00b\ud800c") == "a\\x00b\\ud800c"
