"""CloudEvents Kafka binding: round trips, every dead-letter reason, and fuzzing.

The fuzz tests hold :func:`decode` and :func:`validate_data` to their promise: whatever
bytes and headers arrive, the only exception is :class:`ContractError`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import examples as ex
from schemas.base import ContractModel
from schemas.cloudevents import (
    MAX_JSON_DEPTH,
    MAX_VALUE_BYTES,
    CloudEvent,
    ContractError,
    Headers,
    decode,
    encode_binary,
    encode_structured,
    validate_data,
)
from schemas.events import (
    Contact,
    DeadLetter,
    DeadLetterReason,
    Decision,
    Feedback,
    QueueItem,
    Routed,
    SchoolNotification,
    SlaBreach,
)
from schemas.inbound import (
    CaseStatus,
    PoliceNotification,
    PractitionerDecision,
    QueueUpdate,
    Referral,
)
from schemas.types import CE_TYPES, MODELS, ce_type_of

INBOUND: dict[str, type[ContractModel]] = {
    ce_type_of(PoliceNotification): PoliceNotification,
    ce_type_of(Referral): Referral,
}
TIME = datetime(2024, 3, 12, 23, 5, tzinfo=UTC)
REFERRAL_TYPE = "uk.gov.mash.referral.v1"

EXAMPLES: dict[type[ContractModel], Callable[..., dict[str, Any]]] = {
    PoliceNotification: ex.police_notification,
    Referral: ex.referral,
    PractitionerDecision: ex.practitioner_decision,
    QueueUpdate: ex.queue_update,
    CaseStatus: ex.case_status,
    Contact: ex.contact,
    Decision: ex.decision,
    QueueItem: ex.queue_item,
    Routed: ex.routed,
    Feedback: ex.feedback,
    SchoolNotification: ex.school_notification,
    SlaBreach: ex.sla_breach,
    DeadLetter: ex.dead_letter,
}


def _binary_headers(**overrides: bytes | None) -> list[tuple[str, bytes | None]]:
    """Valid binary-mode headers for a referral, with some replaced or (None) removed."""
    headers: dict[str, bytes | None] = {
        "ce_specversion": b"1.0",
        "ce_id": b"evt-test-0001",
        "ce_source": b"urn:test:school-999001",
        "ce_type": REFERRAL_TYPE.encode(),
        "ce_time": b"2024-03-13T09:15:00Z",
        "content-type": b"application/json",
    }
    headers.update(overrides)
    return list(headers.items())


def _referral_value(**overrides: Any) -> bytes:
    return json.dumps(ex.referral(**overrides)).encode()


def _structured(envelope_overrides: dict[str, Any] | None = None, **drop: bool) -> bytes:
    envelope: dict[str, Any] = {
        "specversion": "1.0",
        "id": "evt-test-0001",
        "source": "urn:test:school-999001",
        "type": REFERRAL_TYPE,
        "time": "2024-03-13T09:15:00Z",
        "datacontenttype": "application/json",
        "data": ex.referral(),
    }
    envelope.update(envelope_overrides or {})
    for key in drop:
        envelope.pop(key, None)
    return json.dumps(envelope).encode()


STRUCTURED_HEADERS: Headers = [("content-type", b"application/cloudevents+json")]


def _reason_of(value: bytes | None, headers: Headers, accepted: Any = None, **kw: Any) -> Any:
    with pytest.raises(ContractError) as caught:
        validate_data(decode(value, headers, **kw), accepted or INBOUND)
    assert len(str(caught.value).splitlines()) == 1
    assert caught.value.errors, "every ContractError explains itself"
    return caught.value


# --- round trips -------------------------------------------------------------------------


@pytest.mark.parametrize("model", list(CE_TYPES), ids=lambda model: model.__name__)
@pytest.mark.parametrize("encode", [encode_binary, encode_structured], ids=["binary", "structured"])
def test_round_trip(model: type[ContractModel], encode: Callable[..., Any]) -> None:
    """encode -> decode -> validate_data gives back an equal model, for every event type."""
    original = model.model_validate(EXAMPLES[model]())
    value, headers = encode(
        event_id="evt-test-0001", source="urn:mash:test", data=original, time=TIME, subject="s-1"
    )
    event = decode(value, headers)
    assert event.mode == ("binary" if encode is encode_binary else "structured")
    assert (event.id, event.source, event.type) == (
        "evt-test-0001",
        "urn:mash:test",
        CE_TYPES[model],
    )
    assert event.time == TIME
    assert event.subject == "s-1"
    assert validate_data(event, MODELS) == original


def test_binary_encoding_headers() -> None:
    """Binary mode puts the envelope in ce_* headers and the bare payload in the value."""
    notification = PoliceNotification.model_validate(ex.police_notification())
    value, headers = encode_binary(
        event_id="evt-1", source="urn:police:west-midlands:niche", data=notification, time=TIME
    )
    assert dict(headers) == {
        "ce_specversion": b"1.0",
        "ce_id": b"evt-1",
        "ce_source": b"urn:police:west-midlands:niche",
        "ce_type": b"uk.gov.mash.police-notification.v1",
        "ce_time": b"2024-03-12T23:05:00+00:00",
        "content-type": b"application/json",
    }
    assert json.loads(value)["notification_id"] == "WM-TEST-0001"


def test_structured_encoding_carries_the_same_payload_bytes() -> None:
    """Structured mode's data is exactly the binary-mode value."""
    referral = Referral.model_validate(ex.referral())
    binary_value, _ = encode_binary(event_id="e", source="s", data=referral, time=TIME)
    value, headers = encode_structured(event_id="e", source="s", data=referral, time=TIME)
    assert headers == [("content-type", b"application/cloudevents+json; charset=utf-8")]
    envelope = json.loads(value)
    assert envelope["specversion"] == "1.0"
    assert envelope["datacontenttype"] == "application/json"
    assert binary_value.decode() in value.decode()


def test_encode_ce_type_override_and_errors() -> None:
    """ce_type can be overridden; naive times and unregistered models are programming errors."""
    referral = Referral.model_validate(ex.referral())
    _, headers = encode_binary(
        event_id="e", source="s", data=referral, time=TIME, ce_type="uk.gov.mash.referral.v2"
    )
    assert dict(headers)["ce_type"] == b"uk.gov.mash.referral.v2"
    with pytest.raises(ValueError, match="timezone-aware"):
        encode_binary(event_id="e", source="s", data=referral, time=TIME.replace(tzinfo=None))
    with pytest.raises(ValueError, match="non-empty"):
        encode_structured(event_id="", source="s", data=referral, time=TIME)
    child = Referral.model_validate(ex.referral()).children[0]
    with pytest.raises(KeyError, match="Child has no ce_type"):
        encode_binary(event_id="e", source="s", data=child, time=TIME)


def test_registry_is_complete_and_unique() -> None:
    """Every event model has one ce_type of the form uk.gov.mash.<name>.v<N>."""
    assert len(set(CE_TYPES.values())) == len(CE_TYPES) == 13
    assert all(
        ce_type.startswith("uk.gov.mash.") and ce_type.endswith(".v1")
        for ce_type in CE_TYPES.values()
    )
    assert set(EXAMPLES) == set(CE_TYPES)
    assert all(MODELS[ce_type_of(model)] is model for model in CE_TYPES)


# --- header handling ---------------------------------------------------------------------


def test_header_names_are_case_insensitive() -> None:
    """CE_ID, Ce_Type and Content-Type count the same as their lower-case spellings."""
    headers = [
        (name.upper() if i % 2 else name.title(), v)
        for i, (name, v) in enumerate(_binary_headers())
    ]
    event = decode(_referral_value(), headers)
    assert event.id == "evt-test-0001"
    assert event.time == datetime(2024, 3, 13, 9, 15, tzinfo=UTC)
    assert isinstance(validate_data(event, INBOUND), Referral)
    structured = decode(
        _structured(), [("Content-Type", b"Application/CloudEvents+JSON; charset=utf-8")]
    )
    assert structured.mode == "structured"
    assert isinstance(validate_data(structured, INBOUND), Referral)


def test_optional_headers_and_repeated_other_headers() -> None:
    """ce_time and ce_subject are optional; a repeated non-envelope header is harmless."""
    headers = [*_binary_headers(ce_time=None), ("ce_subject", b"C-2")]
    headers = [(name, value) for name, value in headers if value is not None]
    headers += [("traceparent", b"00-a-b-01"), ("TraceParent", b"00-c-d-01")]
    event = decode(_referral_value(), headers)
    assert (event.id, event.time, event.subject) == ("evt-test-0001", None, "C-2")


@pytest.mark.parametrize(
    ("extra", "headers", "repeated"),
    [
        pytest.param([("ce_id", b"evt-later")], None, ["ce_id"], id="ce-id"),
        pytest.param([("CE_TYPE", REFERRAL_TYPE.encode())], None, ["ce_type"], id="same-value"),
        pytest.param([("Ce_Time", None)], None, ["ce_time"], id="null-repeat"),
        pytest.param(
            [("ce_subject", b"C-1"), ("ce_subject", b"C-2"), ("ce_subject", b"C-3")],
            None,
            ["ce_subject"],
            id="optional-three-times",
        ),
        pytest.param(
            [("content-type", b"application/json"), ("ce_source", b"urn:test:other")],
            None,
            ["ce_source", "content-type"],
            id="two-names",
        ),
        pytest.param(
            [("Content-Type", b"application/json")],
            STRUCTURED_HEADERS,
            ["content-type"],
            id="structured-content-type",
        ),
        pytest.param(
            [("ce_id", b"a"), ("ce_id", b"b")], STRUCTURED_HEADERS, ["ce_id"], id="structured-ce-id"
        ),
    ],
)
def test_repeated_envelope_header_is_refused(
    extra: list[tuple[str, bytes | None]], headers: Headers | None, repeated: list[str]
) -> None:
    """A repeated ce_* or content-type header (any case) is ambiguous: schema_violation."""
    if headers is None:
        value, base = _referral_value(), _binary_headers()
    else:
        value, base = _structured(), list(headers)
    # Sanity: without the repeat the message is accepted.
    assert isinstance(validate_data(decode(value, base), INBOUND), Referral)
    with pytest.raises(ContractError) as caught:
        decode(value, [*base, *extra])
    assert caught.value.reason is DeadLetterReason.SCHEMA_VIOLATION
    assert sorted(e.path for e in caught.value.errors) == repeated
    assert all("repeated" in e.message for e in caught.value.errors)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ce_id", b"x" * 201),
        ("ce_id", b"evt-test-0001 "),
        ("ce_id", b"evt\ntest"),
        ("ce_source", b" urn:test:school-999001"),
        ("ce_source", b"urn:" + b"u" * 100 * 1024),
    ],
    ids=["id-201", "id-trailing-space", "id-newline", "source-leading-space", "source-100k"],
)
def test_unusable_id_or_source_is_missing_header(name: str, value: bytes) -> None:
    """id and source must be Identifiers: the inbox and the contact's source hold them."""
    error = _reason_of(_referral_value(), _binary_headers(**{name: value}))
    assert error.reason is DeadLetterReason.MISSING_HEADER
    assert [e.path for e in error.errors] == [name]
    envelope = {name.removeprefix("ce_"): value.decode()}
    error = _reason_of(_structured(envelope), STRUCTURED_HEADERS)
    assert error.reason is DeadLetterReason.MISSING_HEADER
    assert [e.path for e in error.errors] == [name.removeprefix("ce_")]


def test_identifier_of_200_characters_is_accepted() -> None:
    """The limit is exactly the Identifier's: 200 characters pass."""
    event = decode(_referral_value(), _binary_headers(ce_id=b"e" * 200, ce_source=b"s" * 200))
    assert (len(event.id), len(event.source)) == (200, 200)


def _nested(depth: int) -> bytes:
    """A referral whose narrative is ``depth`` - 1 nested arrays (``depth`` levels in all)."""
    inner = depth - 1
    return b'{"narrative": ' + b"[" * inner + b"]" * inner + b"}"


def _at_stack_depth(frames: int, call: Callable[[], Any]) -> Any:
    return call() if frames == 0 else _at_stack_depth(frames - 1, call)


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 150, 199, 201, 500, 990, 10_000, 100_000])
@pytest.mark.parametrize("frames", [0, 700], ids=["shallow-stack", "deep-stack"])
def test_deep_nesting_is_malformed_json_whatever_the_stack(depth: int, frames: int) -> None:
    """Over MAX_JSON_DEPTH levels is malformed_json, however deep the caller's stack is.

    Without the explicit limit, 150-950 levels passed json.loads and failed in pydantic
    (schema_violation) from a shallow stack, but raised RecursionError (malformed_json)
    from a deep one: the reason depended on the caller.
    """
    error = _at_stack_depth(frames, lambda: _reason_of(_nested(depth), _binary_headers()))
    assert error.reason is DeadLetterReason.MALFORMED_JSON, error
    assert "nested too deeply" in str(error)
    # Structured mode: the envelope is one more level around the same data.
    inner = depth - 2
    envelope = (
        b'{"specversion": "1.0", "id": "e", "source": "s", "type": "t", "data": {"a": '
        + b"[" * inner
        + b"]" * inner
        + b"}}"
    )
    error = _at_stack_depth(frames, lambda: _reason_of(envelope, STRUCTURED_HEADERS))
    assert error.reason is DeadLetterReason.MALFORMED_JSON, error


def test_nesting_at_the_limit_is_parsed() -> None:
    """Exactly MAX_JSON_DEPTH levels is JSON: the payload is then a schema violation."""
    error = _reason_of(_nested(MAX_JSON_DEPTH), _binary_headers())
    assert error.reason is DeadLetterReason.SCHEMA_VIOLATION, error


def test_offset_in_ce_time_is_kept() -> None:
    """ce_time keeps its offset."""
    event = decode(_referral_value(), _binary_headers(ce_time=b"2024-03-13T10:15:00+01:00"))
    assert event.time is not None
    assert event.time.utcoffset() == timedelta(hours=1)
    assert event.time == datetime(2024, 3, 13, 10, 15, tzinfo=timezone(timedelta(hours=1)))


# --- every reason, at least two ways -----------------------------------------------------

REASON_CASES: list[Any] = [
    # too_large
    pytest.param(
        b"{" + b" " * MAX_VALUE_BYTES + b"}", _binary_headers(), {}, DeadLetterReason.TOO_LARGE,
        "", id="too-large-binary",
    ),
    pytest.param(
        _structured(), STRUCTURED_HEADERS, {"max_bytes": 100}, DeadLetterReason.TOO_LARGE, "",
        id="too-large-structured",
    ),
    # malformed_json
    pytest.param(b"{", _binary_headers(), {}, DeadLetterReason.MALFORMED_JSON, "", id="truncated"),
    pytest.param(None, _binary_headers(), {}, DeadLetterReason.MALFORMED_JSON, "", id="null-value"),
    pytest.param(b"", _binary_headers(), {}, DeadLetterReason.MALFORMED_JSON, "", id="empty-value"),
    pytest.param(b"[1]", _binary_headers(), {}, DeadLetterReason.MALFORMED_JSON, "", id="array"),
    pytest.param(b"\xff{}", _binary_headers(), {}, DeadLetterReason.MALFORMED_JSON, "", id="utf8"),
    pytest.param(
        '{"a": 1}'.encode("utf-16"), _binary_headers(), {}, DeadLetterReason.MALFORMED_JSON, "",
        id="utf16",
    ),
    pytest.param(
        b'{"a": 1, "a": 2}', _binary_headers(), {}, DeadLetterReason.MALFORMED_JSON, "",
        id="duplicate-key",
    ),
    pytest.param(
        b'{"a": NaN}', _binary_headers(), {}, DeadLetterReason.MALFORMED_JSON, "", id="nan"
    ),
    pytest.param(
        b'{"a": 1e999}', _binary_headers(), {}, DeadLetterReason.MALFORMED_JSON, "", id="inf"
    ),
    pytest.param(
        b"[" * 100_000, _binary_headers(), {}, DeadLetterReason.MALFORMED_JSON, "", id="deep"
    ),
    pytest.param(
        b"not json", STRUCTURED_HEADERS, {}, DeadLetterReason.MALFORMED_JSON, "",
        id="structured-not-json",
    ),
    # missing_header
    pytest.param(
        _referral_value(), _binary_headers(ce_id=None), {}, DeadLetterReason.MISSING_HEADER,
        "ce_id", id="no-ce-id",
    ),
    pytest.param(
        _referral_value(), _binary_headers(ce_source=b""), {}, DeadLetterReason.MISSING_HEADER,
        "ce_source", id="empty-ce-source",
    ),
    pytest.param(
        _referral_value(), _binary_headers(ce_type=b"\xff\xfe"), {},
        DeadLetterReason.MISSING_HEADER, "ce_type", id="non-utf8-ce-type",
    ),
    pytest.param(
        _referral_value(), [], {}, DeadLetterReason.MISSING_HEADER, "ce_specversion",
        id="no-headers",
    ),
    pytest.param(
        _structured(None, id=True), STRUCTURED_HEADERS, {}, DeadLetterReason.MISSING_HEADER,
        "id", id="structured-no-id",
    ),
    pytest.param(
        _structured({"type": 7}), STRUCTURED_HEADERS, {}, DeadLetterReason.MISSING_HEADER,
        "type", id="structured-type-not-string",
    ),
    # unsupported_version
    pytest.param(
        _referral_value(), _binary_headers(ce_specversion=b"0.3"), {},
        DeadLetterReason.UNSUPPORTED_VERSION, "ce_specversion", id="specversion-0.3",
    ),
    pytest.param(
        _structured({"specversion": "2.0"}), STRUCTURED_HEADERS, {},
        DeadLetterReason.UNSUPPORTED_VERSION, "specversion", id="structured-specversion",
    ),
    pytest.param(
        _referral_value(), _binary_headers(ce_type=b"uk.gov.mash.referral.v2"), {},
        DeadLetterReason.UNSUPPORTED_VERSION, "ce_type", id="referral-v2",
    ),
    pytest.param(
        _structured({"type": "uk.gov.mash.police-notification.v9"}), STRUCTURED_HEADERS, {},
        DeadLetterReason.UNSUPPORTED_VERSION, "type", id="structured-police-v9",
    ),
    # unknown_type
    pytest.param(
        _referral_value(), _binary_headers(ce_type=b"uk.gov.mash.unknown.v1"), {},
        DeadLetterReason.UNKNOWN_TYPE, "ce_type", id="unknown-type",
    ),
    pytest.param(
        _referral_value(), _binary_headers(ce_type=b"uk.gov.mash.queue-update.v1"), {},
        DeadLetterReason.UNKNOWN_TYPE, "ce_type", id="known-but-not-accepted-here",
    ),
    pytest.param(
        _structured({"type": "com.example.thing"}), STRUCTURED_HEADERS, {},
        DeadLetterReason.UNKNOWN_TYPE, "type", id="structured-foreign-type",
    ),
    # schema_violation
    pytest.param(
        _referral_value(factors=[]), _binary_headers(), {}, DeadLetterReason.SCHEMA_VIOLATION,
        "factors", id="invalid-payload",
    ),
    pytest.param(
        b"{}", _binary_headers(), {}, DeadLetterReason.SCHEMA_VIOLATION, "referral_id",
        id="empty-object",
    ),
    pytest.param(
        _referral_value(), _binary_headers(ce_time=b"yesterday"), {},
        DeadLetterReason.SCHEMA_VIOLATION, "ce_time", id="bad-ce-time",
    ),
    pytest.param(
        _referral_value(), _binary_headers(ce_time=b"2024-03-13T09:15:00"), {},
        DeadLetterReason.SCHEMA_VIOLATION, "ce_time", id="naive-ce-time",
    ),
    pytest.param(
        _structured({"data_base64": "e30="}, data=True), STRUCTURED_HEADERS, {},
        DeadLetterReason.SCHEMA_VIOLATION, "data_base64", id="structured-data-base64",
    ),
    pytest.param(
        _structured(None, data=True), STRUCTURED_HEADERS, {}, DeadLetterReason.SCHEMA_VIOLATION,
        "data", id="structured-no-data",
    ),
    pytest.param(
        _structured({"data": [1, 2]}), STRUCTURED_HEADERS, {}, DeadLetterReason.SCHEMA_VIOLATION,
        "data", id="structured-data-array",
    ),
    pytest.param(
        _structured({"time": 5}), STRUCTURED_HEADERS, {}, DeadLetterReason.SCHEMA_VIOLATION,
        "time", id="structured-time-number",
    ),
    pytest.param(
        _structured({"datacontenttype": "text/xml"}), STRUCTURED_HEADERS, {},
        DeadLetterReason.SCHEMA_VIOLATION, "datacontenttype", id="structured-xml",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("value", "headers", "kwargs", "reason", "path"), REASON_CASES)
def test_contract_error_reasons(
    value: bytes | None,
    headers: Headers,
    kwargs: dict[str, Any],
    reason: DeadLetterReason,
    path: str,
) -> None:
    """Each way a message can break the contract gives the right reason and error path."""
    error = _reason_of(value, headers, **kwargs)
    assert error.reason is reason, error
    assert path in [field_error.path for field_error in error.errors], error.errors


def test_every_reason_is_covered_twice() -> None:
    """The table above exercises each envelope dead-letter reason at least twice.

    (unknown_reference and invalid_transition come from the services' own checks of
    well-formed events, not from decoding.)
    """
    applied = {DeadLetterReason.UNKNOWN_REFERENCE, DeadLetterReason.INVALID_TRANSITION}
    counts = {reason: 0 for reason in DeadLetterReason if reason not in applied}
    for case in REASON_CASES:
        counts[case.values[3]] += 1
    assert all(count >= 2 for count in counts.values()), counts


def test_missing_headers_are_all_named() -> None:
    """One error per missing envelope header, so the producer can fix them all at once."""
    error = _reason_of(_referral_value(), _binary_headers(ce_id=None, ce_type=b" "))
    assert [e.path for e in error.errors] == ["ce_id", "ce_type"]
    error = _reason_of(b"{}", STRUCTURED_HEADERS)
    assert [e.path for e in error.errors] == ["specversion", "id", "source", "type"]


def test_schema_violation_lists_every_field_error() -> None:
    """Payload errors come back one per field, with dotted paths and plain messages."""
    payload = ex.referral(unknown=1)
    payload["children"][0]["nhs_number"] = ex.INVALID_NHS_NUMBER
    error = _reason_of(json.dumps(payload).encode(), _binary_headers())
    assert {(e.path, e.message) for e in error.errors} == {
        ("unknown", "Extra inputs are not permitted"),
        ("children.0.nhs_number", "invalid NHS number check digit"),
    }
    assert str(error).startswith("schema_violation: ")
    assert "(+1 more)" in str(error)


def test_error_messages_are_bounded() -> None:
    """Untrusted input echoed into errors is clipped and kept on one line."""
    error = _reason_of(_referral_value(), _binary_headers(ce_type=("x\n" * 10_000).encode()))
    assert all(len(e.message) <= 300 and "\n" not in e.message for e in error.errors)
    error = _reason_of(_referral_value(**{"bad\nkey" * 100: 1}), _binary_headers())
    assert all(len(e.path) <= 300 and "\n" not in e.path for e in error.errors)


# --- fuzzing -----------------------------------------------------------------------------

_HEADER_NAMES = st.sampled_from(
    ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_subject", "content-type"]
) | st.text(max_size=20)
_HEADER_VALUES = (
    st.none()
    | st.binary(max_size=40)
    | st.sampled_from(
        [b"1.0", REFERRAL_TYPE.encode(), b"application/cloudevents+json", b"2024-03-13T09:15:00Z"]
    )
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
_FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decode_and_validate(value: bytes | None, headers: Headers) -> None:
    refused: ContractError | None = None
    try:
        model = validate_data(decode(value, headers, max_bytes=4096), MODELS)
    except ContractError as error:
        refused = error
    if refused is not None:
        # A refusal must be explainable: the dead letter carries these.
        assert refused.errors
        assert len(str(refused).splitlines()) == 1
        return
    # Whatever got through must be publishable again as-is.
    assert model.model_validate_json(model.model_dump_json(), strict=True) == model


@_FUZZ
@given(
    value=st.none() | st.binary(max_size=5000),
    headers=st.lists(st.tuples(_HEADER_NAMES, _HEADER_VALUES), max_size=8),
)
def test_fuzz_arbitrary_bytes_and_headers(value: bytes | None, headers: Headers) -> None:
    """Arbitrary bytes and headers raise nothing but ContractError."""
    _decode_and_validate(value, headers)


@_FUZZ
@given(data=_JSON, ce_type=st.sampled_from(sorted(MODELS)))
def test_fuzz_json_payloads_under_valid_headers(data: Any, ce_type: str) -> None:
    """Arbitrary JSON values under valid binary headers raise nothing but ContractError."""
    headers = _binary_headers(ce_type=ce_type.encode())
    _decode_and_validate(json.dumps(data).encode(), headers)


@_FUZZ
@given(
    envelope=st.dictionaries(
        st.sampled_from(
            [
                "specversion",
                "id",
                "source",
                "type",
                "time",
                "subject",
                "data",
                "data_base64",
                "datacontenttype",
            ]
        ),
        _JSON,
    )
)
def test_fuzz_structured_envelopes(envelope: dict[str, Any]) -> None:
    """Arbitrary structured envelopes raise nothing but ContractError."""
    _decode_and_validate(json.dumps(envelope).encode(), STRUCTURED_HEADERS)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@_FUZZ
@given(
    model=st.sampled_from(sorted(EXAMPLES, key=lambda model: model.__name__)),
    choice=st.integers(min_value=0),
    replacement=_JSON,
)
def test_fuzz_mutated_valid_payloads(
    model: type[ContractModel], choice: int, replacement: Any
) -> None:
    """Replacing any one part of a valid payload with any JSON raises only ContractError."""
    payload = EXAMPLES[model]()
    paths = _paths(payload)[1:]
    path = paths[choice % len(paths)]
    target: Any = payload
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = replacement
    value, headers = json.dumps(payload).encode(), _binary_headers(ce_type=CE_TYPES[model].encode())
    _decode_and_validate(value, headers)


def test_decode_does_not_validate_the_payload() -> None:
    """decode only checks the envelope and JSON; the payload is validate_data's job."""
    event = decode(b'{"anything": true}', _binary_headers())
    assert event == CloudEvent(
        id="evt-test-0001",
        source="urn:test:school-999001",
        type=REFERRAL_TYPE,
        time=datetime(2024, 3, 13, 9, 15, tzinfo=UTC),
        subject=None,
        data={"anything": True},
        mode="binary",
    )


def test_contract_error_pickles() -> None:
    """ContractError survives pickling (e.g. across a process pool) with reason and errors."""
    import pickle

    error = _reason_of(b"{", _binary_headers())
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, copy.errors, str(copy)) == (error.reason, error.errors, str(error))
