"""With the four services running: simulated traffic fed by ``mash simulate``, the inbound
topics exported and replayed twice with ``mash replay`` — and nothing changes. Contacts,
decisions, queue items and feedback stay as they were, in the database and on the topics,
because every effect is keyed on the event's id."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from deploy.local.pipeline import ServiceProcesses
from mash.inventory import TopicRow, inventory, product_topics
from mash.naming import is_inbound
from services.common.topics import DEAD_LETTER, INBOUND_POLICE, INBOUND_REFERRALS
from services.common.topology import load_topology
from tests.support import REPO, Isolated, fetchval, run_mash, wait_until

pytestmark = pytest.mark.integration

CONTACTS = 40
BAD = 4  # --bad-rate 0.1 of 40 contacts
SERVICES = ("intake", "screening", "routing", "notifications")
TABLES = ("contacts", "decisions", "queue_items", "feedback")


def mash(world: Isolated, cwd: Path, *args: str) -> str:
    """Run ``mash`` in ``world``; fail the test with its stderr if it fails."""
    env = {**world.env(), "PYTHONPATH": str(REPO)}
    done = run_mash(world, cwd, *args, "--no-progress", env=env)
    assert done.returncode == 0, f"mash {args[0]} failed: {done.stderr}"
    return done.stdout


async def topic_rows(world: Isolated) -> list[TopicRow]:
    names = product_topics(world.prefix, load_topology(world.topology).hub_ids)
    suffix = "-" + world.prefix.rstrip(".")
    return await inventory([world.stack.bootstrap], names, group_suffix=suffix)


async def settled(world: Isolated) -> dict[str, int] | None:
    """Counts of the record and of every topic, once every service has caught up and every
    outbox row is published; None while work is still in flight."""
    unpublished = await fetchval(
        world.dsn, "SELECT count(*) FROM outbox WHERE published_at IS NULL"
    )
    rows = await topic_rows(world)
    groups = {group for row in rows for group in row.lag}
    suffix = "-" + world.prefix.rstrip(".")
    if unpublished or not {f"mash-{s}{suffix}" for s in SERVICES} <= groups:
        return None
    if any(lag for row in rows for lag in row.lag.values()):
        return None
    counts = {t: int(await fetchval(world.dsn, f"SELECT count(*) FROM {t}")) for t in TABLES}
    counts["dead_letters"] = int(await fetchval(world.dsn, "SELECT count(*) FROM dead_letters"))
    counts.update(
        {f"topic:{row.name.removeprefix(world.prefix)}": row.messages_end for row in rows}
    )
    return counts


async def wait_settled(
    world: Isolated, ready: Callable[[dict[str, int]], bool], what: str
) -> dict[str, int]:
    """Wait until the world has settled in a state ``ready`` accepts; on timeout, fail
    with what was still in flight (lag per group, unpublished outbox rows, counts)."""

    async def check() -> dict[str, int] | None:
        counts = await settled(world)
        return counts if counts is not None and ready(counts) else None

    try:
        result = await wait_until(check, timeout=300, what=what)
    except AssertionError as timed_out:
        unpublished = await fetchval(
            world.dsn, "SELECT count(*) FROM outbox WHERE published_at IS NULL"
        )
        lags = {row.name: row.lag for row in await topic_rows(world) if row.lag}
        contacts = await fetchval(world.dsn, "SELECT count(*) FROM contacts")
        raise AssertionError(
            f"{timed_out}; contacts={contacts} unpublished_outbox={unpublished} lags={lags}"
        ) from None
    assert result is not None
    return result


async def test_a_double_replay_of_inbound_events_changes_nothing(
    world: Isolated, pipeline: ServiceProcesses, tmp_path: Path
) -> None:
    mash(
        world, tmp_path, "simulate", "--seed", "21", "--count", str(CONTACTS), "--bad-rate", "0.1",
        "--to-kafka", "--summary", "none",
    )  # fmt: skip

    before = await wait_settled(
        world, lambda c: c["contacts"] == CONTACTS, "the simulated traffic to be processed"
    )
    assert before["dead_letters"] == BAD
    assert before["queue_items"] > 0
    assert before["feedback"] >= CONTACTS, "every referrer is at least acknowledged"

    files = []
    for topic in (INBOUND_POLICE, INBOUND_REFERRALS):
        path = tmp_path / f"{topic}.jsonl"
        mash(world, tmp_path, "replay", "--from-topic", topic, "--to-file", str(path))
        files.append(path)
    assert sum(len(f.read_text().splitlines()) for f in files) == CONTACTS + BAD

    for _ in range(2):
        for path in files:
            out = mash(world, tmp_path, "replay", "--from-file", str(path), "--allow-inbound")
            assert "done" in out

    def replays_consumed(counts: dict[str, int]) -> bool:
        return sum(v for k, v in counts.items() if is_inbound(k)) == 3 * (CONTACTS + BAD)

    after = await wait_settled(world, replays_consumed, "the replays to be consumed")
    for table in TABLES:
        assert after[table] == before[table], f"{table} changed after a double replay"
    for name, count in before.items():
        if name.startswith("topic:") and not is_inbound(name) and not name.endswith(DEAD_LETTER):
            assert after[name] == count, f"{name} gained records after a double replay"
    # Bad bytes are dead-lettered at every arrival, so ops see each bad delivery.
    assert after["dead_letters"] == before["dead_letters"] + 2 * BAD
    inbox = await fetchval(
        world.dsn, "SELECT count(*) FROM processed_events WHERE service = 'intake'"
    )
    assert inbox == CONTACTS, "one inbox row per distinct event id"
