"""The JSONL line format: every byte of key, value and headers survives a round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mash.jsonl import LineError, ReplayRecord, from_line, read_jsonl, to_line

AWKWARD = ReplayRecord(
    topic="t1.mash.inbound.referrals.v1",
    key=b"\x00\xffkey",
    value=b"",
    headers=(("ce_id", b"abc"), ("ce_id", b"repeated"), ("nul", None), ("bin", b"\xfe\x00")),
    partition=3,
    offset=41,
    timestamp=1_767_603_600_123,
)


@pytest.mark.parametrize(
    "record",
    [
        AWKWARD,
        ReplayRecord(topic="x", key=None, value=None),
        ReplayRecord(topic="x", key=b"", value=b'{"a": 1}', headers=()),
    ],
    ids=["awkward-bytes", "null-key-and-tombstone", "empty-key"],
)
def test_a_record_survives_a_round_trip_exactly(record: ReplayRecord) -> None:
    line = to_line(record)
    assert "\n" not in line
    assert from_line(line) == record


def test_null_and_empty_stay_distinct() -> None:
    data = json.loads(to_line(ReplayRecord(topic="x", key=None, value=b"")))
    assert data["key_b64"] is None
    assert data["value_b64"] == ""


def test_the_line_has_the_documented_fields_in_order() -> None:
    data = json.loads(to_line(AWKWARD))
    assert list(data) == [
        "topic",
        "partition",
        "offset",
        "timestamp",
        "key_b64",
        "value_b64",
        "headers",
    ]
    assert data["headers"][2] == ["nul", None]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"key_b64": null}', "topic is missing"),
        ('{"topic": "x", "value_b64": "***"}', "value_b64 is not valid base64"),
        ('{"topic": "x", "headers": [["k"]]}', "headers must be"),
        ('{"topic": "x", "offset": "7"}', "offset must be an integer"),
    ],
)
def test_a_bad_line_is_refused_with_the_reason(line: str, problem: str) -> None:
    with pytest.raises(LineError, match=problem):
        from_line(line)


def test_read_jsonl_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text(to_line(AWKWARD) + "\n\n" + "oops\n", encoding="utf-8")
    records = read_jsonl(path)
    assert next(records) == AWKWARD
    with pytest.raises(LineError, match=r"records.jsonl:3: not JSON"):
        next(records)
