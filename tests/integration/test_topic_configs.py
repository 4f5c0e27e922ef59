"""``mash topics --apply`` against the real broker: a topic made with the wrong retention
is corrected, a missing one created with the catalogue's configs, a dry run and a second
run change nothing, and what configs cannot fix (a partition count) fails the run."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from mash.topic_configs import (
    OWNED_CONFIGS,
    CurrentConfig,
    describe_configs,
    product_specs,
)
from services.common.kafka import ensure_topics
from services.common.settings import load_settings
from services.common.topics import CONTACTS, DEAD_LETTER, ROUTED, SCHOOL_NOTIFICATIONS, TopicSpec
from services.common.topology import load_topology
from tests.support import Isolated, Stack, mash_env, run_mash

pytestmark = pytest.mark.integration

WEEK_MS = str(7 * 24 * 60 * 60 * 1000)


def world_of(stack: Stack) -> tuple[Isolated, dict[str, str]]:
    """A prefix no other run uses, and the ``mash`` environment aimed at it (its own group
    suffix, so the screening changelog it creates is this world's too)."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    world = Isolated(stack, prefix, stack.dsn)
    return world, {**mash_env(world), "MASH_GROUP_SUFFIX": "-" + prefix.rstrip(".")}


async def broker_configs(stack: Stack, topics: list[str]) -> dict[str, dict[str, CurrentConfig]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap)
    await admin.start()
    try:
        return await describe_configs(admin, topics)
    finally:
        await admin.close()


async def test_apply_corrects_wrong_retention_and_a_second_run_changes_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    world, env = world_of(stack)
    contacts, routed = world.topics(CONTACTS), world.topics(ROUTED)
    schools = world.topics(SCHOOL_NOTIFICATIONS)
    # As an older release or a hand-made topic would have left them: contacts with a
    # month's retention on the topic, routed with no override at all (broker defaults).
    await ensure_topics(
        [stack.bootstrap],
        [TopicSpec(contacts, 4, {"retention.ms": "2592000000"}), TopicSpec(routed, 4)],
    )
    before = await broker_configs(stack, [contacts, routed])
    assert before[contacts]["retention.ms"] == CurrentConfig("2592000000", on_topic=True)
    assert not before[routed]["cleanup.policy"].on_topic

    dry = run_mash(world, tmp_path, "topics", "--apply", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert f"would set {contacts}: retention.ms 2592000000 -> {WEEK_MS}" in dry.stdout
    assert f"would create {schools}" in dry.stdout
    assert "dry run, nothing changed" in dry.stdout
    assert await broker_configs(stack, [contacts, routed]) == before
    listing = run_mash(world, tmp_path, "topics", "--json", env=env)
    assert listing.returncode == 0, listing.stderr
    assert f'"topic": "{schools}",\n      "partitions": null' in listing.stdout

    applied = run_mash(world, tmp_path, "topics", "--apply", env=env)
    assert applied.returncode == 0, applied.stderr
    assert f"set {contacts}: retention.ms 2592000000 -> {WEEK_MS}" in applied.stdout
    assert f"set {routed}: cleanup.policy delete (broker default) -> delete" in applied.stdout
    assert f"create {schools}" in applied.stdout
    after = await broker_configs(stack, [contacts, routed, schools, world.topics(DEAD_LETTER)])
    assert after[contacts]["retention.ms"] == CurrentConfig(WEEK_MS, on_topic=True)
    assert after[schools]["retention.ms"] == CurrentConfig(str(4 * 86_400_000), on_topic=True)
    assert after[world.topics(DEAD_LETTER)]["max.message.bytes"].value == str(4 * 1024 * 1024)
    for topic, configs in after.items():
        assert {n for n, c in configs.items() if c.on_topic} == set(OWNED_CONFIGS), topic
        assert configs["min.insync.replicas"].value == "1", topic  # one broker here

    again = run_mash(world, tmp_path, "topics", "--apply", env=env)
    assert again.returncode == 0, again.stderr
    # Every topic of the world: the catalogue, the two hubs' queues and the changelog.
    settings = load_settings(topic_prefix=world.prefix, group_suffix=env["MASH_GROUP_SUFFIX"])
    topics = len(product_specs(settings, load_topology("two-hubs").hub_ids))
    assert again.stdout.splitlines() == [
        f"{topics} topics: 0 created, 0 changed (0 configs), {topics} unchanged"
    ]
    listing = run_mash(world, tmp_path, "topics", env=env)
    assert listing.returncode == 0, listing.stderr
    assert schools in listing.stdout
    assert "missing" not in listing.stdout


async def test_a_partition_count_configs_cannot_fix_fails_the_run(
    stack: Stack, tmp_path: Path
) -> None:
    world, env = world_of(stack)
    contacts = world.topics(CONTACTS)
    await ensure_topics([stack.bootstrap], [TopicSpec(contacts, 2)])
    result = run_mash(world, tmp_path, "topics", "--apply", "--dry-run", env=env)
    assert result.returncode == 1
    assert f"problem: {contacts} has 2 partitions, expected 4" in result.stdout
    assert "mash: error: 1 problem(s) left" in result.stderr
