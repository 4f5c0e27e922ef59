"""e) The hostile corpus: 10,000 seeded malicious or broken inbound messages, with valid
traffic interleaved, through the real pipeline. Nothing crashes, nothing stalls (every
consumer group commits to the end), every hostile message is a dead letter with the reason
the corpus predicted, and the valid contacts travel the whole way as if alone."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from deploy.local.pipeline import SERVICES
from tests.faults.corpus import hostile_corpus, oversized
from tests.faults.harness import Pipeline, Traffic, wait_drained
from tests.faults.tally import Row, tally
from tests.support import Isolated, fetch, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(900)]

SEED = 20261130
CORPUS_SIZE = 10_000


async def test_ten_thousand_hostile_messages_are_dead_lettered_and_stall_nothing(
    world: Isolated, pipeline: Pipeline, fault_rows: list[Row]
) -> None:
    corpus = hostile_corpus(SEED, count=CORPUS_SIZE)
    assert len(corpus) == CORPUS_SIZE
    pipeline.start_all(SERVICES)

    async def ready() -> bool:
        return await pipeline.all_ready()

    await wait_until(ready, timeout=180, what="every worker to be ready")
    # No bad messages of the simulator's own: every dead letter is a corpus message.
    traffic = Traffic(SEED, contacts=150, rate=15.0, hostile=tuple(corpus), bad_rate=0.0)
    expected = traffic.expected(world.topology)
    await traffic.send(world, pipeline.run_dir)
    drain_seconds = await wait_drained(world, expected)

    # Every one dead-lettered, with the reason the corpus says it deserves.
    letters = await fetch(
        world.dsn, "SELECT reason, count(*) AS n FROM dead_letters GROUP BY reason"
    )
    assert {r["reason"]: r["n"] for r in letters} == dict(
        Counter(h.expected_reason for h in corpus)
    )
    assert all(up for up in pipeline.alive().values()), "no worker may crash"
    await wait_until(ready, timeout=120, what="every worker to be ready after the corpus")
    row = await tally(
        world, f"hostile corpus x{CORPUS_SIZE} (seed {SEED})", expected, drain_seconds
    )
    fault_rows.append(row)
    assert (row.lost, row.duplicated, row.out_of_order) == (0, 0, 0), row


async def test_values_of_ten_megabytes_are_refused_by_the_broker_at_the_door(
    world: Isolated,
) -> None:
    """Larger than the inbound topics' limit (1 MiB): the sender learns at once, and
    nothing reaches intake to hold it up."""
    producer = AIOKafkaProducer(
        bootstrap_servers=world.stack.bootstrap, max_request_size=32 * 1024 * 1024
    )
    await producer.start()
    refused = 0
    try:
        for h in oversized(SEED):
            with pytest.raises(KafkaError):
                await asyncio.wait_for(
                    producer.send_and_wait(
                        world.topics(h.topic_name), h.value, key=h.key, headers=h.headers
                    ),
                    timeout=60,
                )
            refused += 1
    finally:
        await producer.stop()
    assert refused == len(oversized(SEED)) >= 1
