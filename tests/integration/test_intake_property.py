"""Property: whatever bytes arrive, each message ends as exactly one contact or exactly one
dead letter — never lost, never both, never a crash. Real broker, real database."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import examples as ex
from services.common.topics import INBOUND_POLICE, INBOUND_REFERRALS
from tests.integration.intake_harness import IntakeUnderTest
from tests.support import fetchval

pytestmark = pytest.mark.integration

TYPES = {
    INBOUND_REFERRALS: b"uk.gov.mash.referral.v1",
    INBOUND_POLICE: b"uk.gov.mash.police-notification.v1",
}
json_leaf = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def near_valid_payload(draw: st.DrawFn, topic: str) -> bytes:
    """A valid payload with zero or one mutation: a key dropped, added or replaced."""
    base: dict[str, Any] = ex.referral() if topic == INBOUND_REFERRALS else ex.police_notification()
    mutation = draw(st.sampled_from(["none", "drop", "add", "replace"]))
    key = draw(st.sampled_from(sorted(base)))
    if mutation == "drop":
        base.pop(key)
    elif mutation == "add":
        base[draw(st.text(min_size=1, max_size=10))] = draw(json_value)
    elif mutation == "replace":
        base[key] = draw(json_value)
    return json.dumps(base).encode()


@st.composite
def message(draw: st.DrawFn) -> tuple[str, bytes | None, list[tuple[str, bytes]], str | None]:
    topic = draw(st.sampled_from([INBOUND_REFERRALS, INBOUND_POLICE]))
    value = draw(st.one_of(st.binary(max_size=200), st.none(), near_valid_payload(topic)))
    headers = {
        "ce_specversion": b"1.0",
        "ce_source": b"urn:test:property",
        "ce_type": TYPES[topic],
        "content-type": b"application/json",
    }
    for name in draw(st.sets(st.sampled_from(sorted(headers)), max_size=2)):
        headers.pop(name)  # sometimes a header is missing
    ce_id = None if draw(st.integers(0, 9)) == 0 else "placeholder"
    return topic, value, list(headers.items()), ce_id


COUNTER = iter(range(1_000_000))


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=st.lists(message(), min_size=5, max_size=25))
async def test_every_message_becomes_one_contact_or_one_dead_letter(
    intake: IntakeUnderTest,
    batch: list[tuple[str, bytes | None, list[tuple[str, bytes]], str | None]],
) -> None:
    sent = []
    for topic, value, headers, ce_id in batch:
        n = next(COUNTER)
        if ce_id is not None:
            headers = [*headers, ("ce_id", f"prop-{intake.world.prefix}{n}".encode())]
        if value is not None and value.startswith(b"{"):
            # Unique source references, so no valid message is a duplicate of another.
            body = json.loads(value)
            for ref in ("referral_id", "notification_id"):
                if isinstance(body.get(ref), str):
                    body[ref] = f"{body[ref]}-{n}"
            value = json.dumps(body).encode()
        sent.append((topic, *await intake.send_raw(topic, value, headers, key=b"property")))
    dsn = intake.world.dsn
    for topic, partition, offset in sent:
        fate = await intake.fate(topic, partition, offset)
        name = intake.world.topics(topic)
        dead = await fetchval(
            dsn,
            'SELECT count(*) FROM dead_letters WHERE original_topic = $1 AND "partition" = $2'
            ' AND "offset" = $3',
            name,
            partition,
            offset,
        )
        contacts = await fetchval(
            dsn,
            "SELECT count(*) FROM contacts c"
            " JOIN processed_events p ON p.event_id = c.source_event_id"
            ' WHERE p.service = $4 AND p.topic = $1 AND p."partition" = $2 AND p."offset" = $3',
            name,
            partition,
            offset,
            "intake",
        )
        assert dead + contacts == 1, (fate, dead, contacts)
        assert fate.kind in {"contact", "dead_letter"}
