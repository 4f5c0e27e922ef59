"""Kill -9 each service in turn while traffic flows, restart it, and show that nothing is
lost and nothing is duplicated: every referral ends with exactly one contact, decision,
routed event and acknowledgement/outcome feedback."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from deploy.local.pipeline import SERVICES, ServiceProcesses
from schemas import examples as ex
from schemas.cloudevents import encode_binary
from schemas.inbound import Referral
from services.common.ids import derive_id
from services.common.topics import DECISIONS, FEEDBACK, INBOUND_REFERRALS, ROUTED
from tests.sample import synthetic_nhs_numbers
from tests.support import Isolated, Outgoing, fetchval, publish, read_topic, wait_until

pytestmark = pytest.mark.integration

BATCH = 12


def referrals(world: Isolated, first: int, count: int) -> list[Outgoing]:
    """``count`` distinct professional referrals about distinct children."""
    nhs = synthetic_nhs_numbers(first + count)
    out: list[Outgoing] = []
    for n in range(first, first + count):
        payload = Referral.model_validate(
            ex.referral(
                referral_id=f"REF-RESTART-{n:04d}",
                children=[ex.child(child_ref=f"R{n}", nhs_number=nhs[n])],
                factors=["19C"] if n % 2 else ["20"],
            )
        )
        value, headers = encode_binary(
            event_id=derive_id("restart-test", n),
            source="urn:council:portal:restart-test",
            data=payload,
            time=datetime.now(UTC),
        )
        out.append((world.topics(INBOUND_REFERRALS), payload.referral_id.encode(), value, headers))
    return out


async def _outcomes_handled(world: Isolated) -> int:
    count: int = await fetchval(
        world.dsn,
        "SELECT count(*) FROM processed_events WHERE service = 'notifications'"
        " AND topic = $1 AND outcome <> 'pending'",
        world.topics(ROUTED),
    )
    return count


@pytest.mark.parametrize("victim", SERVICES)
async def test_a_killed_service_loses_and_duplicates_nothing(
    world: Isolated, pipeline: ServiceProcesses, victim: str
) -> None:
    index = SERVICES.index(victim)
    first = index * 2 * BATCH
    before = await _outcomes_handled(world)
    await publish(world.stack.bootstrap, referrals(world, first, BATCH))

    async def some_progress() -> bool:
        return await _outcomes_handled(world) > before

    await wait_until(some_progress, timeout=90, what="the first batch to start flowing")
    pipeline.stop(victim, kill=True)  # SIGKILL: no graceful commit, no flush
    await publish(world.stack.bootstrap, referrals(world, first + BATCH, BATCH))
    pipeline.start(victim)
    expected = before + 2 * BATCH

    async def all_handled() -> bool:
        return await _outcomes_handled(world) == expected

    await wait_until(all_handled, timeout=120, what=f"every referral after killing {victim}")

    total = expected
    assert await fetchval(world.dsn, "SELECT count(*) FROM contacts") == total
    assert await fetchval(world.dsn, "SELECT count(*) FROM decisions") == total
    assert (
        await fetchval(world.dsn, "SELECT count(*) FROM feedback WHERE kind = 'outcome'") == total
    )
    assert (
        await fetchval(world.dsn, "SELECT count(*) FROM feedback WHERE kind = 'acknowledgement'")
        == total
    )
    # Odd-numbered referrals disclose sexual abuse: one s47 queue item each.
    assert await fetchval(world.dsn, "SELECT count(*) FROM queue_items") == total // 2
    # On the topics an event may be re-sent after a crash, but never with a new id.
    decisions = await read_topic(world.stack.bootstrap, world.topics(DECISIONS))
    assert len({r.headers["ce_id"] for r in decisions}) == total
    feedback = await read_topic(world.stack.bootstrap, world.topics(FEEDBACK))
    assert len({r.headers["ce_id"] for r in feedback}) == 2 * total
