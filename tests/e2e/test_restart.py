"""Kill -9 each service in turn while one of its transactions is provably in flight, restart
it, and show that nothing is lost and nothing is duplicated: every referral ends with
exactly one contact, decision, routed event and acknowledgement/outcome feedback.

"In flight" is arranged, not hoped for: before the traffic, the test takes a SHARE lock
on a table the victim writes for every event it consumes and no other service writes.
SHARE blocks INSERT/UPDATE/DELETE but not SELECT, so the rest of the pipeline carries on
while the victim's transaction — which has already claimed its event in the inbox
(``processed_events``) — waits inside its effect. The test sees that wait in ``pg_locks``,
kills the victim, releases the lock, and checks that the killed transaction was rolled
back and that its event was applied exactly once after the restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import pytest

from deploy.local.pipeline import SERVICES, ServiceProcesses
from schemas import examples as ex
from schemas.cloudevents import encode_binary
from schemas.inbound import Referral
from services.common.ids import derive_id
from services.common.topics import DECISIONS, INBOUND_REFERRALS, ROUTED
from tests.sample import synthetic_nhs_numbers
from tests.support import Isolated, Outgoing, fetch, fetchval, publish, read_topic, wait_until

pytestmark = pytest.mark.integration

BATCH = 12

#: The table each victim writes in the transaction of EVERY event it consumes, and that no
#: other service writes (services/*/store.py):
#: - intake: ``contacts`` (``record_contacts``, every new contact);
#: - screening: ``decisions`` (``record_decisions``, every contact screened);
#: - routing: ``routing_decisions`` (``record_decisions``, every decision, routed or
#:   superseded; ``queue_items`` would only catch the decisions that open an item);
#: - notifications: ``feedback`` (the acknowledgement of every contact, the outcome or
#:   acknowledgement of every routing).
LOCKED_TABLE = {
    "intake": "contacts",
    "screening": "decisions",
    "routing": "routing_decisions",
    "notifications": "feedback",
}

#: Writers waiting for a lock on table $1 of this database, with their transaction id and
#: whether their transaction holds the inbox (it inserted into processed_events).
BLOCKED_WRITERS_SQL = """
SELECT w.pid,
       a.backend_xid::text::bigint AS xid,
       pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS next_xid,
       EXISTS (SELECT 1 FROM pg_locks i
               WHERE i.pid = w.pid AND i.granted AND i.mode = 'RowExclusiveLock'
                 AND i.database = w.database
                 AND i.relation = 'processed_events'::regclass) AS inbox_claimed
FROM pg_locks w
JOIN pg_stat_activity a ON a.pid = w.pid
WHERE w.locktype = 'relation' AND NOT w.granted AND w.mode = 'RowExclusiveLock'
  AND w.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND w.relation = $1::text::regclass
ORDER BY w.pid
"""


@dataclass(frozen=True)
class Stuck:
    """A victim's transaction seen waiting on the test's lock, inside its effect."""

    pid: int
    xid8: str  # full (epoch-extended) transaction id, as pg_xact_status wants it


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


async def _stuck_in_effect(world: Isolated, table: str) -> list[Stuck]:
    """Transactions waiting to write ``table`` after claiming their inbox row (else [])."""
    rows = await fetch(world.dsn, BLOCKED_WRITERS_SQL, table)
    if not rows or not all(r["inbox_claimed"] and r["xid"] is not None for r in rows):
        return []
    stuck = []
    for r in rows:
        stuck.append(Stuck(pid=r["pid"], xid8=str(full_xid(r["xid"], r["next_xid"]))))
    return stuck


def full_xid(xid32: int, next_xid: int) -> int:
    """Extend a 32-bit xid (pg_locks, pg_stat_activity) to the 64-bit one near ``next_xid``.

    A live xid is within 2**31 of the snapshot's next xid, on either side: the backend may
    take its xid after the snapshot was read, so it can be *ahead* of ``next_xid`` too.
    """
    delta = (xid32 - next_xid) & 0xFFFFFFFF
    if delta >= 1 << 31:
        delta -= 1 << 32
    return next_xid + delta


async def _xact_status(world: Isolated, xid8: str) -> str | None:
    status: str | None = await fetchval(world.dsn, "SELECT pg_xact_status($1::text::xid8)", xid8)
    return status


@pytest.mark.parametrize("victim", SERVICES)
async def test_a_service_killed_mid_transaction_loses_and_duplicates_nothing(
    world: Isolated, pipeline: ServiceProcesses, victim: str
) -> None:
    table = LOCKED_TABLE[victim]
    index = SERVICES.index(victim)
    first = index * 2 * BATCH
    before = await _outcomes_handled(world)
    expected = before + 2 * BATCH

    try:
        lock = await asyncpg.connect(world.dsn)
        try:
            held = lock.transaction()
            await held.start()
            await lock.execute("SET LOCAL lock_timeout = '10s'")
            await lock.execute(f"LOCK TABLE {table} IN SHARE MODE")
            await publish(world.stack.bootstrap, referrals(world, first, BATCH))

            async def victim_waits() -> list[Stuck]:
                return await _stuck_in_effect(world, table)

            stuck = await wait_until(
                victim_waits, timeout=60, what=f"{victim} to wait on {table} inside its effect"
            )
            assert stuck, f"no {victim} transaction was seen waiting on {table}"

            pipeline.stop(victim, kill=True)  # SIGKILL: no graceful commit, no flush
            await held.rollback()  # the orphaned backend runs on, finds its client gone
        finally:
            await lock.close()

        for s in stuck:

            async def ended(xid8: str = s.xid8) -> str | None:
                status = await _xact_status(world, xid8)
                return None if status == "in progress" else status

            status = await wait_until(
                ended, timeout=30, what=f"the killed {victim} transaction to end"
            )
            assert status == "aborted", f"killed {victim} transaction {s.xid8}: {status}"

        await publish(world.stack.bootstrap, referrals(world, first + BATCH, BATCH))
        pipeline.start(victim)

        async def all_handled() -> bool:
            return await _outcomes_handled(world) == expected

        await wait_until(all_handled, timeout=120, what=f"every referral after killing {victim}")
    finally:
        pipeline.start(victim)  # a no-op unless this test failed with the victim down

    total = expected
    assert await fetchval(world.dsn, "SELECT count(*) FROM contacts") == total
    assert await fetchval(world.dsn, "SELECT count(*) FROM decisions") == total
    assert await fetchval(world.dsn, "SELECT count(*) FROM routing_decisions") == total
    assert (
        await fetchval(world.dsn, "SELECT count(*) FROM feedback WHERE kind = 'outcome'") == total
    )
    assert (
        await fetchval(world.dsn, "SELECT count(*) FROM feedback WHERE kind = 'acknowledgement'")
        == total
    )
    # Odd-numbered referrals disclose sexual abuse: one s47 queue item each.
    assert await fetchval(world.dsn, "SELECT count(*) FROM queue_items") == total // 2
    # The killed transaction left no half-claimed inbox row behind.
    assert (
        await fetchval(
            world.dsn,
            "SELECT count(*) FROM processed_events WHERE service = $1 AND outcome = 'pending'",
            victim,
        )
        == 0
    )
    # On the topics an event may be re-sent after a crash, but never with a new id.
    decisions = await read_topic(world.stack.bootstrap, world.topics(DECISIONS))
    assert len({r.headers["ce_id"] for r in decisions}) == total
    feedback = [
        r for t in world.topics.feedback() for r in await read_topic(world.stack.bootstrap, t)
    ]
    assert len({r.headers["ce_id"] for r in feedback}) == 2 * total


@pytest.mark.parametrize(
    ("xid32", "next_xid", "full"),
    [
        (790, 800, 790),  # behind the snapshot, same epoch
        (1808, 1800, 1808),  # assigned after the snapshot was read (CI, 2026-11-30)
        (0xFFFFFFF0, (1 << 32) + 5, 0xFFFFFFF0),  # previous epoch
        (3, (1 << 32) - 2, (1 << 32) + 3),  # next epoch
    ],
)
def test_a_32_bit_xid_extends_to_the_one_nearest_the_snapshot(
    xid32: int, next_xid: int, full: int
) -> None:
    assert full_xid(xid32, next_xid) == full
