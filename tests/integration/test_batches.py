"""The batched pipeline (services/common/pipeline.py) on the real broker and database,
through intake: one burst of records is applied in a few transactions, not one per event,
and a batch that mixes good, bad and repeated events ends exactly as one by one would."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas import examples as ex
from schemas.cloudevents import encode_binary
from schemas.inbound import Referral
from services.common.topics import INBOUND_REFERRALS
from tests.integration.intake_harness import IntakeUnderTest
from tests.sample import synthetic_nhs_numbers
from tests.support import Outgoing, fetchval, publish

pytestmark = pytest.mark.integration

BURST = 40


def referral_record(intake: IntakeUnderTest, n: int, event_id: str, reference: str) -> Outgoing:
    """A valid referral about child ``n``, keyed so the whole burst shares one partition."""
    nhs = synthetic_nhs_numbers(n + 1, start=9992000000)[n]
    payload = Referral.model_validate(
        ex.referral(
            referral_id=reference, children=[ex.child(child_ref=f"BATCH-{n}", nhs_number=nhs)]
        )
    )
    value, headers = encode_binary(
        event_id=event_id, source="urn:test:batches", data=payload, time=datetime.now(UTC)
    )
    return (intake.world.topics(INBOUND_REFERRALS), b"one-partition", value, headers)


async def test_a_burst_is_applied_in_batches_and_each_event_ends_as_one_by_one_would(
    intake: IntakeUnderTest,
) -> None:
    token = intake.world.prefix
    good = [
        referral_record(intake, n, f"batch-{token}-{n}", f"REF-BATCH-{token}-{n}")
        for n in range(BURST)
    ]
    topic, key, _, headers = good[0]
    bad: Outgoing = (topic, key, b"{not json", headers)
    repeated_id = referral_record(intake, 0, f"batch-{token}-0", f"REF-BATCH-{token}-other")
    repeated_source = referral_record(intake, 1, f"batch-{token}-again", f"REF-BATCH-{token}-1")
    burst = [*good[:10], bad, *good[10:20], repeated_id, repeated_source, *good[20:]]
    await publish(intake.world.stack.bootstrap, burst)

    async def all_handled() -> bool:
        inbox = await fetchval(
            intake.world.dsn,
            "SELECT count(*) FROM processed_events WHERE service = 'intake' AND event_id LIKE $1"
            " AND outcome <> 'pending'",
            f"batch-{token}-%",
        )
        letters = await fetchval(
            intake.world.dsn, "SELECT count(*) FROM dead_letters WHERE original_topic = $1", topic
        )
        return bool(inbox == BURST + 1 and letters >= 1)

    await intake.wait(all_handled, timeout=60, what="the burst applied")
    recorded = await fetchval(
        intake.world.dsn,
        "SELECT count(*) FROM contacts WHERE source_reference LIKE $1",
        f"REF-BATCH-{token}-%",
    )
    assert recorded == BURST  # the repeated id and the repeated reference added nothing
    outcome = await fetchval(
        intake.world.dsn,
        "SELECT outcome FROM processed_events WHERE service = 'intake' AND event_id = $1",
        f"batch-{token}-again",
    )
    assert outcome == "duplicate_source"
    reason = await fetchval(
        intake.world.dsn,
        'SELECT reason FROM dead_letters WHERE original_topic = $1 ORDER BY "offset" DESC',
        topic,
    )
    assert reason == "malformed_json"
    # Rows written in one transaction share its xmin: far fewer transactions than events.
    transactions = await fetchval(
        intake.world.dsn,
        "SELECT count(DISTINCT xmin::text) FROM processed_events"
        " WHERE service = 'intake' AND event_id LIKE $1",
        f"batch-{token}-%",
    )
    assert transactions < (BURST + 2) // 4, f"{transactions} transactions for {BURST + 2} events"
