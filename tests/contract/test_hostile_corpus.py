"""The hostile corpus (tests/faults/corpus.py) against the contract decoder, no I/O.

Every one of 10,000 hostile inbound records, run through exactly what intake does before
the database (:func:`decode` with the 256 KiB limit, then :func:`validate_data` with
intake's model map for the topic), must raise :class:`ContractError` with the record's
expected reason, and nothing else; its dead letter must then be buildable.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime

import pytest

from schemas.base import ContractModel
from schemas.cloudevents import ContractError, decode, validate_data
from schemas.events import DeadLetterReason
from services.common.kafka import InboundMessage
from services.common.pipeline import dead_letter_for
from services.common.settings import Settings
from services.common.topics import INBOUND_POLICE, INBOUND_REFERRALS
from services.intake.app import POLICE_TYPES, REFERRAL_TYPES
from tests.faults.corpus import (
    BROKER_REFUSED,
    FAMILIES,
    RARE,
    Hostile,
    digest,
    hostile_corpus,
    oversized,
)
from tests.support import REPO

SEED = 7
COUNT = 10_000
MAX_BYTES = 256 * 1024
ACCEPTED: dict[str, Mapping[str, type[ContractModel]]] = {
    INBOUND_POLICE: POLICE_TYPES,
    INBOUND_REFERRALS: REFERRAL_TYPES,
}
#: The reasons decoding can give (the other two come from services' own checks).
ENVELOPE_REASONS = {
    reason.value
    for reason in DeadLetterReason
    if reason not in (DeadLetterReason.UNKNOWN_REFERENCE, DeadLetterReason.INVALID_TRANSITION)
}


@pytest.fixture(scope="module")
def corpus() -> list[Hostile]:
    """The full corpus for seed 7, built once for this module."""
    return hostile_corpus(SEED, COUNT)


def _outcome(record: Hostile) -> str:
    """What intake's decoding makes of ``record``: a reason, "accepted" or the exception."""
    try:
        validate_data(
            decode(record.value, record.headers, max_bytes=MAX_BYTES), ACCEPTED[record.topic_name]
        )
    except ContractError as error:
        # Every refusal explains itself: the dead letter carries the errors.
        return error.reason.value if error.errors else "refused without errors"
    except Exception as error:  # any other type breaks decode's promise
        return f"raised {type(error).__name__}: {error}"[:200]
    return "accepted"


def test_intake_limit_is_the_corpus_limit() -> None:
    """The corpus and this test assume intake's default max_message_bytes is 256 KiB."""
    assert Settings.model_fields["max_message_bytes"].default == MAX_BYTES


def test_every_record_is_refused_with_its_reason(corpus: list[Hostile]) -> None:
    """decode + validate_data refuse every record with ContractError(expected_reason)."""
    wrong = Counter(
        (record.family, record.expected_reason, outcome)
        for record in corpus
        if (outcome := _outcome(record)) != record.expected_reason
    )
    assert not wrong, wrong.most_common(20)


def test_every_refusal_can_be_dead_lettered(corpus: list[Hostile]) -> None:
    """The dead letter of each record validates: a refusal can never become a retry loop."""
    for offset, record in enumerate(corpus):
        message = InboundMessage(
            topic=record.topic_name,
            partition=0,
            offset=offset,
            key=record.key,
            value=record.value,
            headers=list(record.headers),
        )
        with pytest.raises(ContractError) as caught:
            validate_data(decode(record.value, record.headers), ACCEPTED[record.topic_name])
        letter = dead_letter_for(message, caught.value, "intake", datetime(2024, 3, 13, tzinfo=UTC))
        assert letter.reason.value == record.expected_reason


def test_count_is_exact() -> None:
    """Exactly ``count`` records, for small and odd counts too."""
    for count in (0, 1, 5, len(FAMILIES), 101, 997):
        assert len(hostile_corpus(SEED, count)) == count
    with pytest.raises(ValueError, match="negative"):
        hostile_corpus(SEED, -1)


def test_the_full_corpus(corpus: list[Hostile]) -> None:
    """10,000 records on the two inbound topics, every family and reason, in fair shares."""
    assert len(corpus) == COUNT
    assert {record.topic_name for record in corpus} == {INBOUND_POLICE, INBOUND_REFERRALS}
    families = Counter(record.family for record in corpus)
    assert set(families) == set(FAMILIES)
    common = [count for family, count in families.items() if family not in RARE]
    assert min(common) >= max(common) - 1, families  # round-robin shares
    for family, share in RARE.items():
        assert 1 <= families[family] <= max(1, int(COUNT * share)), families
    assert families["too_large"] <= COUNT * 0.005
    assert {record.expected_reason for record in corpus} == ENVELOPE_REASONS
    small = hostile_corpus(SEED + 1, len(FAMILIES) + 3)
    assert {record.family for record in small} == set(FAMILIES)


def test_corpus_shape(corpus: list[Hostile]) -> None:
    """Sizes stay modest; keys, modes and tombstones vary as promised."""
    sizes = [len(record.value or b"") for record in corpus]
    assert sum(sizes) < 40 * 1024 * 1024
    for record, size in zip(corpus, sizes, strict=True):
        if record.family == "too_large":
            assert MAX_BYTES < size < 1024 * 1024, size
        else:
            assert size <= MAX_BYTES, (record.family, size)
        if record.family == "huge_string":
            assert size > MAX_BYTES - 8 * 1024
    keys = [record.key for record in corpus]
    assert None in keys
    assert b"" in keys
    assert any(key is not None and not _is_utf8(key) for key in keys)
    assert any(record.value is None for record in corpus)
    structured = Counter(
        record.family
        for record in corpus
        if any(
            name.lower() == "content-type"
            and value.lower().startswith(b"application/cloudevents+json")
            for name, value in record.headers
        )
    )
    # Every family that can be sent in structured mode is, in a good share.
    binary_only = {
        "missing_headers",
        "header_control_chars",
        "binary_header_values",
        "enormous_headers",
    }
    for family in set(FAMILIES) - binary_only - set(RARE):
        assert structured[family] >= 50, (family, structured[family])
    assert any(len(value) >= 100 * 1024 for record in corpus for _, value in record.headers), (
        "enormous header values"
    )
    assert any(name == "" for record in corpus for name, _ in record.headers)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_same_seed_same_bytes(corpus: list[Hostile]) -> None:
    """Generation is deterministic: the same seed gives the same bytes, another seed not."""
    assert digest(hostile_corpus(SEED, COUNT)) == digest(corpus)
    assert digest(hostile_corpus(SEED + 1, 300)) != digest(hostile_corpus(SEED, 300))


def test_same_seed_same_bytes_in_another_process(corpus: list[Hostile]) -> None:
    """Nothing depends on the process: another interpreter, other hash seed, same digest."""
    script = (
        "from tests.faults.corpus import digest, hostile_corpus\n"
        f"print(digest(hostile_corpus({SEED}, {COUNT})))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert result.stdout.strip() == digest(corpus)


def test_oversized_values_exceed_the_broker_limit() -> None:
    """A few values over 10 MiB, for the broker to refuse (and decode too, were one to pass)."""
    records = oversized(SEED)
    assert len(records) == 3
    for record in records:
        assert record.value is not None
        assert len(record.value) > 10 * 1024 * 1024
        assert record.expected_reason == BROKER_REFUSED
        assert record.topic_name in ACCEPTED
        with pytest.raises(ContractError) as caught:
            decode(record.value, record.headers, max_bytes=MAX_BYTES)
        assert caught.value.reason is DeadLetterReason.TOO_LARGE
    assert digest(oversized(SEED)) == digest(records)
