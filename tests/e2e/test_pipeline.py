"""End to end: both inbound kinds travel intake -> screening -> routing -> notifications
on the real broker and database; bad bytes become dead letters; a replay changes nothing."""

from __future__ import annotations

import base64
import json

import pytest

from deploy.local.pipeline import ServiceProcesses
from services.common.topics import (
    CONTACTS,
    DEAD_LETTER,
    INBOUND_POLICE,
    INBOUND_REFERRALS,
    ROUTED,
    feedback_topic,
)
from tests.sample import SampleMessage, sample_messages
from tests.support import (
    Isolated,
    Outgoing,
    fetch,
    fetchval,
    group_caught_up,
    publish,
    read_topic,
    records_until,
    wait_until,
)

pytestmark = pytest.mark.integration

SAMPLE = sample_messages()
VALID = [m for m in SAMPLE if m.valid]
BAD = [m for m in SAMPLE if not m.valid]
#: Sample referrals from members of the public (census 1A-1D, 9): acknowledgement only.
PUBLIC = [
    m
    for m in VALID
    if json.loads(m.value).get("data", json.loads(m.value)).get("referral_source")
    in {"1A", "1B", "1C", "1D", "9"}
]


def _records(world: Isolated, messages: list[SampleMessage]) -> list[Outgoing]:
    return [(world.topics(m.topic), m.key, m.value, m.headers) for m in messages]


@pytest.fixture(scope="module")
async def fed(world: Isolated, pipeline: ServiceProcesses) -> Isolated:
    """The sample published once and fully processed (every outcome handled)."""
    await publish(world.stack.bootstrap, _records(world, SAMPLE))

    async def all_routed_and_reported() -> bool:
        handled = await fetchval(
            world.dsn,
            "SELECT count(*) FROM processed_events WHERE service = 'notifications'"
            " AND topic = $1 AND outcome <> 'pending'",
            world.topics(ROUTED),
        )
        return bool(handled == len(VALID))

    await wait_until(all_routed_and_reported, timeout=120, what="every sample contact routed")
    return world


async def test_every_valid_message_is_recorded_once_as_a_contact(fed: Isolated) -> None:
    rows = await fetch(fed.dsn, "SELECT source_reference, source_kind FROM contacts")
    assert sorted(r["source_reference"] for r in rows) == sorted(m.key.decode() for m in VALID)
    contacts = await read_topic(fed.stack.bootstrap, fed.topics(CONTACTS))
    assert {r.headers["ce_id"] for r in contacts} == {
        r["contact_id"] for r in await fetch(fed.dsn, "SELECT contact_id FROM contacts")
    }
    raw = await fetchval(fed.dsn, "SELECT count(*) FROM raw_payloads")
    assert raw == len(VALID)


async def test_bad_bytes_become_dead_letters_with_the_original_bytes_and_a_reason(
    fed: Isolated,
) -> None:
    letters = await records_until(
        fed.stack.bootstrap, fed.topics(DEAD_LETTER), lambda rs: len(rs) >= len(BAD)
    )
    by_reason = {r.json()["reason"]: r.json() for r in letters}
    assert set(by_reason) == {"malformed_json", "missing_header"}
    malformed = by_reason["malformed_json"]
    assert malformed["original_topic"] == fed.topics(INBOUND_REFERRALS)
    assert base64.b64decode(malformed["original_value"]) == BAD[0].value
    assert malformed["errors"], "a dead letter names what was wrong"
    missing = by_reason["missing_header"]
    assert missing["original_topic"] == fed.topics(INBOUND_POLICE)
    assert {e["path"] for e in missing["errors"]} >= {"ce_id", "ce_type"}
    assert await fetchval(fed.dsn, "SELECT count(*) FROM dead_letters") == len(BAD)


async def test_queue_items_land_on_the_right_hub_queue_with_deadlines(fed: Isolated) -> None:
    # Sample police notification 1: DA high, child present, postcode B6 (North).
    contact_id = await fetchval(
        fed.dsn, "SELECT contact_id FROM contacts WHERE source_reference = 'WM-SAMPLE-0001'"
    )
    topic = fed.topics.queue("north-west-central", "s47")
    records = await records_until(
        fed.stack.bootstrap,
        topic,
        lambda rs: any(r.json()["contact_id"] == contact_id for r in rs),
    )
    item = next(r.json() for r in records if r.json()["contact_id"] == contact_id)
    assert item["rag"] == "red"
    assert item["outcome"] == "s47"
    assert "strategy_discussion" in item["deadlines"]
    row = await fetch(
        fed.dsn, "SELECT hub, queue, status FROM queue_items WHERE contact_id = $1", contact_id
    )
    assert [(r["hub"], r["queue"], r["status"]) for r in row] == [
        ("north-west-central", "s47", "open")
    ]


async def test_a_multi_child_referral_gives_one_queue_item_per_child(fed: Isolated) -> None:
    contact_id = await fetchval(
        fed.dsn, "SELECT contact_id FROM contacts WHERE source_reference = 'REF-SAMPLE-0004'"
    )
    items = await fetch(
        fed.dsn, "SELECT subject_id, queue FROM queue_items WHERE contact_id = $1", contact_id
    )
    assert len(items) == 2
    assert len({i["subject_id"] for i in items}) == 2
    assert {i["queue"] for i in items} == {"s47"}


async def test_each_referrer_gets_an_acknowledgement_and_professionals_an_outcome(
    fed: Isolated,
) -> None:
    expected_outcomes = len(VALID) - len(PUBLIC)
    feedback = await records_until(
        fed.stack.bootstrap,
        fed.topics.feedback(),
        lambda rs: len(rs) >= len(VALID) + expected_outcomes,
    )
    kinds = [r.json()["kind"] for r in feedback]
    assert kinds.count("acknowledgement") == len(VALID)
    assert kinds.count("outcome") == expected_outcomes
    public_refs = {m.key.decode() for m in PUBLIC}
    for r in feedback:
        body = r.json()
        if body["referrer_reference"] in public_refs:
            assert body["kind"] == "acknowledgement", "the public get no outcome detail"
        # Keyed by the referrer's agency (police: the force), on its kind of agency's topic.
        agency_of = {
            b"west-midlands": "police",
            b"school-999001": "education",
            b"gp-sample-01": "health",
            b"housing-sample-01": "housing",
            b"public": "public",
        }
        assert r.key in agency_of
        assert r.topic == fed.topics(feedback_topic(agency_of[r.key]))
        # The firewall: nothing but the allow-listed fields, no narrative, no names.
        assert set(body) <= {
            "feedback_id",
            "kind",
            "referrer_reference",
            "contact_reference",
            "outcome",
            "outcome_text",
            "hub",
            "hub_contact",
            "issued_at",
        }
        assert "Synthetic narrative" not in r.value.decode()
        assert "Testchild" not in r.value.decode()
    rows = await fetchval(fed.dsn, "SELECT count(*) FROM feedback")
    assert rows == len(feedback)


async def test_publishing_the_sample_again_changes_nothing(fed: Isolated) -> None:
    before = await _counts(fed)
    await publish(fed.stack.bootstrap, _records(fed, SAMPLE))
    inbound = [fed.topics(INBOUND_POLICE), fed.topics(INBOUND_REFERRALS)]
    group = "mash-intake-" + fed.prefix.rstrip(".")

    async def intake_consumed_replay() -> bool:
        return await group_caught_up(fed.stack.bootstrap, group, inbound)

    await wait_until(intake_consumed_replay, timeout=60, what="intake to consume the replay")
    after = await _counts(fed)
    # Each arrival of bad bytes is its own dead letter (ops see every bad delivery); every
    # valid event is recognised by its id and has no second effect.
    assert after.pop("dead_letters") == before.pop("dead_letters") + len(BAD)
    assert after.pop("outbox") == before.pop("outbox") + len(BAD)
    assert after == before
    duplicates = await fetchval(
        fed.dsn, "SELECT count(*) FROM processed_events WHERE service = 'intake'"
    )
    assert duplicates == len(VALID), "one inbox row per distinct event id"


async def _counts(world: Isolated) -> dict[str, int]:
    tables = ["contacts", "decisions", "queue_items", "feedback", "dead_letters", "outbox"]
    return {t: await fetchval(world.dsn, f"SELECT count(*) FROM {t}") for t in tables}
