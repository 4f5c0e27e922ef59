"""The per-partition input position (services/common/order.py) on the real PostgreSQL."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from services.common.kafka import InboundMessage
from services.common.order import OutOfOrder, claim_position, claim_positions
from tests.support import Isolated, Stack, fetchval, isolated_world

pytestmark = pytest.mark.integration


@pytest.fixture
async def world(stack: Stack) -> Isolated:
    return await isolated_world(stack)


def at(offset: int, partition: int = 0) -> InboundMessage:
    return InboundMessage("mash.contacts.v1", partition, offset, None, b"{}", [])


async def claim(dsn: str, message: InboundMessage, *, accept_gap: bool = False) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            return await claim_position(conn, "screening", message, accept_gap=accept_gap)
    finally:
        await conn.close()


async def test_offsets_are_claimed_in_order_redeliveries_pass_and_early_ones_wait(
    world: Isolated,
) -> None:
    assert await claim(world.dsn, at(40))  # the first one seen sets the position
    assert await claim(world.dsn, at(41))
    assert not await claim(world.dsn, at(40))  # a re-delivery: the inbox decides
    with pytest.raises(OutOfOrder) as early:
        await claim(world.dsn, at(45))
    assert (early.value.expected, early.value.offset) == (42, 45)
    assert await claim(world.dsn, at(42, partition=1))  # each partition on its own
    assert await claim(world.dsn, at(45), accept_gap=True)  # patience ran out
    assert not await claim(world.dsn, at(43))  # a late one from the gap: applied as usual
    position = await fetchval(
        world.dsn,
        """SELECT next_offset FROM input_positions WHERE service = 'screening'
           AND topic = 'mash.contacts.v1' AND "partition" = 0""",
    )
    assert position == 46


async def test_a_refused_transaction_leaves_the_position_where_it_was(world: Isolated) -> None:
    assert await claim(world.dsn, at(0))
    conn = await asyncpg.connect(world.dsn)
    try:
        tx = conn.transaction()
        await tx.start()
        assert await claim_position(conn, "screening", at(1))
        await tx.rollback()  # the effect failed
    finally:
        await conn.close()
    assert await claim(world.dsn, at(1))  # offset 1 is still the next one


async def test_two_workers_never_apply_one_partition_at_once(world: Isolated) -> None:
    """The position row is locked for the whole transaction: the second waits."""
    assert await claim(world.dsn, at(0))
    first = await asyncpg.connect(world.dsn)
    try:
        tx = first.transaction()
        await tx.start()
        assert await claim_position(first, "screening", at(1))
        second = asyncio.create_task(claim(world.dsn, at(1)))
        done, _ = await asyncio.wait({second}, timeout=1.0)
        assert not done  # blocked on the row lock, not a decision made in parallel
        await tx.commit()
        assert not await second  # it then sees offset 1 already applied
    finally:
        await first.close()


async def claim_batch(
    dsn: str, messages: list[InboundMessage], *, accept_gap: bool = False
) -> dict[int, int]:
    """Claim a batch in one transaction; the positions afterwards, by partition."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await claim_positions(conn, "screening", messages, accept_gap=accept_gap)
        rows = await conn.fetch(
            """SELECT "partition", next_offset FROM input_positions
               WHERE service = 'screening' AND topic = 'mash.contacts.v1'"""
        )
        return {r["partition"]: r["next_offset"] for r in rows}
    finally:
        await conn.close()


async def test_a_batch_moves_each_partition_past_its_offsets_as_one_by_one_would(
    world: Isolated,
) -> None:
    first = [at(10), at(11), at(3, partition=1), at(12), at(4, partition=1)]
    assert await claim_batch(world.dsn, first) == {0: 13, 1: 5}
    # Re-deliveries (below the position) pass; the batch goes on from where it stood.
    assert await claim_batch(world.dsn, [at(11), at(12), at(13), at(5, partition=1)]) == {
        0: 14,
        1: 6,
    }
    # Early at the start, or a hole inside the batch: refused, nothing moves.
    with pytest.raises(OutOfOrder) as early:
        await claim_batch(world.dsn, [at(16), at(17)])
    assert (early.value.expected, early.value.offset) == (14, 16)
    with pytest.raises(OutOfOrder) as hole:
        await claim_batch(world.dsn, [at(14), at(16)])
    assert (hole.value.expected, hole.value.offset) == (15, 16)
    assert await claim_batch(world.dsn, [at(6, partition=1)]) == {0: 14, 1: 7}
    # Patience ran out: the position jumps past the batch.
    assert await claim_batch(world.dsn, [at(14), at(16)], accept_gap=True) == {0: 17, 1: 7}
