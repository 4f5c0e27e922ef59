"""The pure parts of ``mash deadletters``: reading, filtering and formatting dead letters,
and the redrive plan (what may be redriven unchanged, the new id, the headers). Plus the
command-line checks that happen before any connection."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from mash.cli import main
from mash.deadletter_view import LetterFilter, parse_dead_letters, source_of, summary
from mash.errors import UsageError
from mash.redrive import (
    REDRIVABLE_UNCHANGED,
    PastRedrive,
    draft_redrive,
    finish,
    next_attempt,
    parse_header_option,
    redrive_id,
    refusal,
    staff_id,
)
from schemas import examples as ex
from schemas.events import DeadLetter, DeadLetterReason

UNREACHABLE = "127.0.0.1:1"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def letter(
    *,
    reason: str = "unknown_reference",
    headers: list[tuple[str, bytes | None]] | None = None,
    value: bytes | None = b'{"queue_item_id": "QI-1"}',
    **overrides: Any,
) -> DeadLetter:
    if headers is None:
        headers = [
            ("ce_specversion", b"1.0"),
            ("ce_id", b"evt-1"),
            ("ce_source", b"urn:test:case-system"),
            ("ce_type", b"uk.gov.mash.queue-update.v1"),
            ("content-type", b"application/json"),
            ("x-trace", None),
        ]
    return DeadLetter.model_validate(
        ex.dead_letter(
            reason=reason,
            headers=[{"key": k, "value": None if v is None else b64(v)} for k, v in headers],
            original_value=None if value is None else b64(value),
            **overrides,
        )
    )


def structured_letter(envelope: bytes, reason: str = "unknown_reference") -> DeadLetter:
    return letter(
        reason=reason,
        headers=[("content-type", b"application/cloudevents+json; charset=utf-8")],
        value=envelope,
    )


ENVELOPE = json.dumps(
    {
        "specversion": "1.0",
        "id": "evt-9",
        "source": "urn:test:structured",
        "type": "uk.gov.mash.queue-update.v1",
        "data": {"queue_item_id": "QI-9"},
    }
).encode()


# --- what may be redriven ----------------------------------------------------------------


@pytest.mark.parametrize("reason", list(DeadLetterReason))
def test_only_reference_and_transition_reasons_may_be_redriven_unchanged(reason: str) -> None:
    dead = letter(reason=reason)
    if reason in ("unknown_reference", "invalid_transition"):
        assert refusal(dead, corrected=False) is None
        draft_redrive(dead)
    else:
        assert refusal(dead, corrected=False) is not None
        with pytest.raises(UsageError, match=f"unchanged: a {reason} fails again"):
            draft_redrive(dead)
    # Corrected, any reason may go.
    assert refusal(dead, corrected=True) is None
    assert draft_redrive(dead, payload=b"{}").payload_corrected


def test_the_redrivable_set_is_exactly_the_two_application_reasons() -> None:
    assert {str(r) for r in REDRIVABLE_UNCHANGED} == {"unknown_reference", "invalid_transition"}


# --- the republished record ----------------------------------------------------------------


def test_binary_mode_gets_a_new_ce_id_in_place_and_the_redrive_header() -> None:
    dead = letter()
    sent = finish(draft_redrive(dead), attempt=1)
    assert sent.ce_id == redrive_id(dead.dead_letter_id, 1)
    assert sent.ce_id not in {"evt-1", redrive_id(dead.dead_letter_id, 2)}
    assert list(sent.headers) == [
        ("ce_specversion", b"1.0"),
        ("ce_id", sent.ce_id.encode()),
        ("ce_source", b"urn:test:case-system"),
        ("ce_type", b"uk.gov.mash.queue-update.v1"),
        ("content-type", b"application/json"),
        ("x-trace", None),
        ("mash_redrive_of", dead.dead_letter_id.encode()),
    ]
    assert sent.value == b'{"queue_item_id": "QI-1"}', "the value goes back byte for byte"


def test_a_missing_ce_id_is_added_and_an_old_redrive_header_replaced() -> None:
    dead = letter(
        reason="missing_header",
        headers=[("ce_type", b"t"), ("mash_redrive_of", b"older-dead-letter")],
    )
    sent = finish(draft_redrive(dead, header_changes=[("ce_source", b"urn:x")]), attempt=3)
    assert list(sent.headers) == [
        ("ce_type", b"t"),
        ("ce_source", b"urn:x"),
        ("ce_id", redrive_id(dead.dead_letter_id, 3).encode()),
        ("mash_redrive_of", dead.dead_letter_id.encode()),
    ]
    assert sent.draft.headers_corrected == ("ce_source",)


def test_a_corrected_header_replaces_every_copy_of_that_name() -> None:
    dead = letter(reason="missing_header", headers=[("CE_TYPE", b"a"), ("ce_type", b"b")])
    sent = finish(draft_redrive(dead, header_changes=[("ce_type", b"c")]), attempt=1)
    assert [h for h in sent.headers if h[0].lower() == "ce_type"] == [("ce_type", b"c")]


def test_structured_mode_replaces_the_id_inside_the_envelope() -> None:
    dead = structured_letter(ENVELOPE)
    sent = finish(draft_redrive(dead), attempt=1)
    envelope = json.loads(sent.value or b"")
    assert envelope["id"] == redrive_id(dead.dead_letter_id, 1)
    assert {k: v for k, v in envelope.items() if k != "id"} == {
        k: v for k, v in json.loads(ENVELOPE).items() if k != "id"
    }
    assert [k for k, _ in sent.headers] == ["content-type", "mash_redrive_of"], "no ce_id header"


@pytest.mark.parametrize("value", [b"not json", b"[1]", b'{"id": 1, "id": 2}', None])
def test_a_structured_value_that_is_not_an_object_is_refused(value: bytes | None) -> None:
    dead = structured_letter(ENVELOPE)
    with pytest.raises(UsageError, match="id cannot be replaced"):
        draft_redrive(dead, payload=value if value is not None else b"")


def test_the_digest_is_the_same_for_the_same_redrive_and_differs_when_corrected() -> None:
    dead = letter(reason="schema_violation")
    once = draft_redrive(dead, payload=b'{"a": 1}')
    again = draft_redrive(dead, payload=b'{"a": 1}')
    other = draft_redrive(dead, payload=b'{"a": 2}')
    assert once.digest == again.digest != other.digest
    assert draft_redrive(dead, payload=b"{}", header_changes=[("x", b"1")]).digest != (
        draft_redrive(dead, payload=b"{}").digest
    )


def test_the_next_attempt_comes_from_the_audit() -> None:
    at = datetime(2026, 1, 5, tzinfo=UTC)
    past = [PastRedrive("id-1", 1, "aaa", "staff-1", at), PastRedrive("id-2", 2, "bbb", "s", at)]
    assert next_attempt([], "aaa") == 1
    assert next_attempt(past, "bbb") == past[1], "the same redrive again: nothing to send"
    assert next_attempt(past, "ccc") == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ce_type=uk.gov.mash.referral.v1", ("ce_type", b"uk.gov.mash.referral.v1")),
        ("x=", ("x", b"")),
    ],
)
def test_header_options(text: str, expected: tuple[str, bytes]) -> None:
    assert parse_header_option(text) == expected


@pytest.mark.parametrize("text", ["novalue", "=v", "ce_id=x", "CE_ID=x", "mash_redrive_of=x"])
def test_bad_or_reserved_header_options_are_refused(text: str) -> None:
    with pytest.raises(UsageError):
        parse_header_option(text)


@pytest.mark.parametrize("text", ["", "two words", "x" * 101, "tab\there"])
def test_a_staff_id_is_one_printable_word(text: str) -> None:
    with pytest.raises(UsageError, match="--by"):
        staff_id(text)
    assert staff_id("staff-1") == "staff-1"


# --- reading and filtering -------------------------------------------------------------------


def test_the_source_is_ce_source_the_envelope_source_or_the_topic() -> None:
    assert source_of(letter()) == "urn:test:case-system"
    assert source_of(structured_letter(ENVELOPE)) == "urn:test:structured"
    assert source_of(structured_letter(b"{broken")) == "mash.inbound.referrals.v1"
    assert source_of(letter(headers=[("ce_source", b"\xff\xfe")])) == "mash.inbound.referrals.v1"
    assert source_of(letter(headers=[("ce_source", b"a\x00b")])) == "mash.inbound.referrals.v1"
    assert source_of(letter(headers=[])) == "mash.inbound.referrals.v1"


def test_re_sent_copies_appear_once_and_unreadable_records_are_counted() -> None:
    early = letter(dead_letter_id="DL-B", at="2026-01-05T09:00:00+00:00")
    late = letter(dead_letter_id="DL-A", at="2026-01-05T10:00:00+00:00")
    values = [late.model_dump_json().encode()] * 2 + [early.model_dump_json().encode()]
    loaded = parse_dead_letters([*values, b"not a dead letter", None])
    assert [d.dead_letter_id for d in loaded.letters] == ["DL-B", "DL-A"], "oldest first"
    assert (loaded.copies, loaded.unreadable) == (1, 2)


def test_the_filter_combines_reason_source_topic_and_a_half_open_time_range() -> None:
    nine = datetime(2026, 1, 5, 9, tzinfo=UTC)
    ten = datetime(2026, 1, 5, 10, tzinfo=UTC)
    at_nine = letter(reason="schema_violation", at=nine.isoformat())
    at_ten = letter(reason="schema_violation", at=ten.isoformat())
    assert LetterFilter(since=nine, until=ten).accepts(at_nine)
    assert not LetterFilter(since=nine, until=ten).accepts(at_ten)
    assert LetterFilter(reasons=frozenset({DeadLetterReason.SCHEMA_VIOLATION})).accepts(at_nine)
    assert not LetterFilter(reasons=frozenset({DeadLetterReason.TOO_LARGE})).accepts(at_nine)
    assert LetterFilter(sources=frozenset({"urn:test:case-system"})).accepts(at_nine)
    assert not LetterFilter(sources=frozenset({"urn:test:other"})).accepts(at_nine)
    assert LetterFilter(topics=frozenset({"mash.inbound.referrals.v1"})).accepts(at_nine)
    assert not LetterFilter(topics=frozenset({"mash.queue-updates.v1"})).accepts(at_nine)


def test_a_list_line_has_stable_fields() -> None:
    line = summary(letter(reason="malformed_json"))
    assert line == {
        "id": "DL-TEST-0001",
        "at": "2024-03-13T09:15:01+00:00",
        "reason": "malformed_json",
        "original_topic": "mash.inbound.referrals.v1",
        "partition": 0,
        "offset": 7,
        "source": "urn:test:case-system",
        "first_error": {"path": "", "message": "value is not JSON: Expecting value"},
    }


# --- the command line, before any connection --------------------------------------------


@pytest.mark.parametrize("action", ["list", "show", "redrive"])
def test_every_action_has_help_with_examples(
    action: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["deadletters", action, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert f"mash deadletters {action}" in out
    assert "entitled" in out or action == "redrive"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["redrive", "--by", "s"], "give a dead letter id or --reason"),
        (["redrive", "ID", "--reason", "unknown_reference", "--by", "s"], "not both"),
        (["redrive", "ID", "--topic", "t", "--by", "s"], "--topic applies to --reason"),
        (
            ["redrive", "--reason", "unknown_reference", "--payload", "f", "--by", "s"],
            "give its id",
        ),
        (["redrive", "--reason", "schema_violation", "--by", "s"], "refusing to redrive every"),
        (["redrive", "ID", "--by", "two words"], "--by must be"),
        (["redrive", "ID", "--header", "ce_id=x", "--by", "s"], "sets ce_id itself"),
        (["redrive", "ID"], "required: --by"),
        (["list", "--since", "soon"], "cannot read time"),
        (["show"], "required: id"),
    ],
)
def test_asked_wrongly_is_one_line_and_exit_2_before_any_connection(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["deadletters", *argv, "--bootstrap-servers", UNREACHABLE])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("mash: error: ")
    assert says in err
