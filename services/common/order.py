"""Per-partition input order: a service applies a partition's events in offset order.

Kafka hands one partition to one consumer in order, but around a rebalance Faust can hand
a later offset to the new owner while the old one is still applying earlier ones (seen by
the fault suite's scale-out scenario: a later contact about a child screened before an
earlier one, about one run in five). Left alone, the later event's effect and output come
first for that key.

The invariant: ``input_positions.next_offset`` is the lowest offset of the partition not
yet applied (or dead-lettered) by the service. Every transaction that applies an event
first locks that row (so two workers never apply one partition's events at once) and
checks the event's offset against it (one statement when it is the next one):

* equal: apply it and move the row on by one;
* lower: a re-delivery of an offset already passed: apply as usual (the inbox absorbs it);
* higher: an earlier offset has not been applied. The transaction is refused
  (:class:`OutOfOrder`) and the consumer waits (:data:`ORDER_PATIENCE_SECONDS`) for the
  worker still holding the earlier events. If they have not come by then, nothing holds
  them any more (Faust can commit past offsets it never delivered): the event is applied
  anyway, the row jumps past it and the gap is logged (``input_order_gap``, with the first
  missing offset) for ops to replay — never a stall, never a silent skip.

The first event a service sees on a partition sets the row (a new consumer group starts at
the partition's first offset). Offsets of these topics are contiguous: the product writes
them with idempotent, non-transactional producers and never compacts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.common.db import Connection
    from services.common.kafka import InboundMessage


class OutOfOrder(Exception):
    """An event arrived before an earlier offset of its partition was applied."""

    def __init__(self, expected: int, offset: int) -> None:
        super().__init__(f"offset {offset} arrived before {expected}")
        self.expected = expected
        self.offset = offset


#: How long an early event waits for the earlier ones before it is applied anyway.
ORDER_PATIENCE_SECONDS = 10.0


def in_offset_order(messages: Sequence[InboundMessage]) -> list[InboundMessage]:
    """``messages`` with each partition's events in offset order, in the places that
    partition's events held (the interleaving of partitions is kept).

    A batch's effects run in list order and the position check only looks at the set of
    offsets, so a batch handed over as [105, 103, 104] would pass the check and make 105's
    effect first. A consumer hands a partition's events in order, except perhaps around a
    rebalance's seek; this makes the order a property of the batch, not of the consumer.
    """
    by_partition: dict[tuple[str, int], list[InboundMessage]] = {}
    for m in messages:
        by_partition.setdefault((m.topic, m.partition), []).append(m)
    queues = {key: iter(sorted(ms, key=lambda m: m.offset)) for key, ms in by_partition.items()}
    return [next(queues[(m.topic, m.partition)]) for m in messages]


async def claim_position(
    conn: Connection, service: str, message: InboundMessage, *, accept_gap: bool = False
) -> bool:
    """Lock the partition's position in the caller's transaction and check ``message``.

    Returns True when the message is the next one (the position moves past it), False for a
    re-delivery of an offset already passed; raises :class:`OutOfOrder` when it is early,
    unless ``accept_gap`` (patience ran out): then the position jumps past it.
    """
    key = (service, message.topic, message.partition)
    # The usual case in one round trip: the next offset moves on (and its row stays
    # locked to the end of the transaction).
    moved = await conn.fetchval(
        """
        UPDATE input_positions SET next_offset = $4 + 1
        WHERE service = $1 AND topic = $2 AND "partition" = $3 AND next_offset = $4
        RETURNING next_offset
        """,
        *key,
        message.offset,
    )
    if moved is not None:
        return True
    expected: int | None = await conn.fetchval(
        """
        SELECT next_offset FROM input_positions
        WHERE service = $1 AND topic = $2 AND "partition" = $3
        FOR UPDATE
        """,
        *key,
    )
    if expected is None:
        inserted = await conn.fetchval(
            """
            INSERT INTO input_positions (service, topic, "partition", next_offset)
            VALUES ($1, $2, $3, $4)
            ON CONFLICT DO NOTHING
            RETURNING next_offset
            """,
            *key,
            message.offset + 1,
        )
        if inserted is not None:
            return True
        # Another worker created the row first: check against it.
        return await claim_position(conn, service, message, accept_gap=accept_gap)
    if message.offset < expected:
        return False
    if message.offset > expected and not accept_gap:
        raise OutOfOrder(expected, message.offset)
    await conn.execute(
        """
        UPDATE input_positions SET next_offset = $4
        WHERE service = $1 AND topic = $2 AND "partition" = $3
        """,
        *key,
        message.offset + 1,
    )
    return True


async def claim_positions(
    conn: Connection, service: str, messages: Sequence[InboundMessage], *, accept_gap: bool = False
) -> None:
    """:func:`claim_position` for a whole batch, in one statement when every partition's
    offsets follow on from its position (the usual case), else in three.

    Locks the positions of every partition in the batch (in a fixed order, so workers
    never deadlock), checks the batch's offsets against them and moves each past the
    batch. Offsets below a position are re-deliveries (the inbox absorbs them); the first
    offset above it that is not the next one raises :class:`OutOfOrder`, unless
    ``accept_gap``: then the position jumps past it.
    """
    by_partition: dict[tuple[str, int], list[int]] = {}
    for m in messages:
        by_partition.setdefault((m.topic, m.partition), []).append(m.offset)
    keys = sorted(by_partition)
    if await _follow_on(conn, service, keys, by_partition):
        return
    topics = [t for t, _ in keys]
    partitions = [p for _, p in keys]
    # A partition seen for the first time starts at its first offset in this batch.
    await conn.execute(
        """
        INSERT INTO input_positions (service, topic, "partition", next_offset)
        SELECT $1, t, p, o FROM unnest($2::text[], $3::int[], $4::bigint[]) AS v(t, p, o)
        ON CONFLICT DO NOTHING
        """,
        service,
        topics,
        partitions,
        [min(by_partition[k]) for k in keys],
    )
    rows = await conn.fetch(
        """
        SELECT topic, "partition", next_offset FROM input_positions
        WHERE service = $1
          AND (topic, "partition") IN (SELECT * FROM unnest($2::text[], $3::int[]))
        ORDER BY topic, "partition"
        FOR UPDATE
        """,
        service,
        topics,
        partitions,
    )
    expected = {(r["topic"], r["partition"]): r["next_offset"] for r in rows}
    moved: dict[tuple[str, int], int] = {}
    for key in keys:
        position = expected[key]
        for offset in sorted(set(by_partition[key])):
            if offset < position:
                continue  # a re-delivery of an offset already passed
            if offset > position and not accept_gap:
                raise OutOfOrder(position, offset)
            position = offset + 1
        if position != expected[key]:
            moved[key] = position
    if moved:
        await conn.execute(
            """
            UPDATE input_positions p SET next_offset = v.o
            FROM unnest($2::text[], $3::int[], $4::bigint[]) AS v(t, p, o)
            WHERE p.service = $1 AND p.topic = v.t AND p."partition" = v.p
            """,
            service,
            [t for t, _ in moved],
            [p for _, p in moved],
            list(moved.values()),
        )


async def _follow_on(
    conn: Connection,
    service: str,
    keys: Sequence[tuple[str, int]],
    by_partition: dict[tuple[str, int], list[int]],
) -> bool:
    """The usual case in one statement: every partition's offsets in the batch run without
    a gap from its position. Locks the positions in a fixed order and moves those that
    follow on; True when all did (else the caller checks them the long way: the ones
    moved here then read as re-deliveries, which is what they are)."""
    firsts: list[int] = []
    lasts: list[int] = []
    for key in keys:
        offsets = sorted(set(by_partition[key]))
        if offsets[-1] - offsets[0] != len(offsets) - 1:
            return False  # a gap inside the batch: only the long way can tell
        firsts.append(offsets[0])
        lasts.append(offsets[-1])
    moved = await conn.fetchval(
        """
        WITH batch AS (
            SELECT * FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bigint[])
                AS v(topic, "partition", first_offset, last_offset)
        ), locked AS MATERIALIZED (
            SELECT ip.topic, ip."partition", ip.next_offset FROM input_positions ip
            WHERE ip.service = $1
              AND (ip.topic, ip."partition") IN (SELECT topic, "partition" FROM batch)
            ORDER BY ip.topic, ip."partition"
            FOR UPDATE
        ), moved AS (
            UPDATE input_positions ip SET next_offset = b.last_offset + 1
            FROM locked l JOIN batch b USING (topic, "partition")
            WHERE ip.service = $1 AND ip.topic = l.topic AND ip."partition" = l."partition"
              AND l.next_offset = b.first_offset
            RETURNING 1
        )
        SELECT count(*) FROM moved
        """,
        service,
        [t for t, _ in keys],
        [p for _, p in keys],
        firsts,
        lasts,
    )
    return bool(moved == len(keys))
