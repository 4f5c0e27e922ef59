"""Topic configs as data: every product topic has a rule, the plan of ``mash topics
--apply`` compares what the broker holds with it, and the README table is generated."""

from __future__ import annotations

from pathlib import Path

import pytest

from mash.topic_configs import (
    OWNED_CONFIGS,
    ApplyResult,
    ConfigChange,
    CurrentConfig,
    config_changes,
    product_specs,
    replace_readme_table,
    retention_table,
)
from services.common.settings import SettingsError, load_settings
from services.common.topics import (
    DAY_MS,
    DEAD_LETTER,
    KEYED_TOPICS,
    SCHOOL_NOTIFICATIONS,
    TOPIC_RULES,
    TopicNames,
    topic_configs,
    topic_rule,
    with_min_insync_replicas,
)
from services.common.topology import load_topology

README = Path(__file__).resolve().parents[3] / "README.md"
TOPOLOGIES = ("two-hubs", "central", "four-areas")


def retention_days(name: str) -> float:
    return int(topic_configs(name)["retention.ms"]) / DAY_MS


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_every_product_topic_gets_every_owned_config(topology: str) -> None:
    settings = load_settings(topology=topology, topic_prefix="p.")
    specs = product_specs(settings, load_topology(topology).hub_ids)
    names = {s.name for s in specs}
    assert {f"p.{t}" for t in KEYED_TOPICS} <= names
    assert sum(".mash.queue." in n for n in names) == 3 * len(load_topology(topology).hub_ids)
    assert sum(n.endswith("-changelog") for n in names) == 1
    for spec in specs:
        assert set(spec.configs) == set(OWNED_CONFIGS), spec
        assert spec.configs["min.insync.replicas"] == "1", spec  # one local broker


def test_per_agency_feedback_and_prefixed_names_resolve_by_contract_name() -> None:
    assert topic_rule("mash.feedback.police.v1").topic_class == "feedback"
    assert topic_rule("mash.feedback.v1").topic_class == "feedback"
    assert topic_rule("mash.queue.east-south.s47.v1").topic_class == "hub queues"
    assert topic_rule("mash.queue-updates.v1").topic_class == "inbound"
    assert topic_rule("mash-screening-t1-history-changelog").cleanup_policy == "compact"
    with pytest.raises(KeyError, match="no retention rule"):
        topic_rule("someone.elses.topic")
    # The catalogue's specs carry the rule of the unprefixed name.
    (spec,) = [s for s in TopicNames("x.").all_specs([], 4) if s.name == "x." + DEAD_LETTER]
    assert dict(spec.configs) == topic_configs(DEAD_LETTER)


def test_school_notices_are_kept_shortest_and_dead_letters_as_long_as_in_postgres() -> None:
    personal = [t for t in KEYED_TOPICS if t != SCHOOL_NOTIFICATIONS]
    assert all(retention_days(SCHOOL_NOTIFICATIONS) < retention_days(t) for t in personal)
    # A redrive reads the topic: it must hold a dead letter as long as PostgreSQL does.
    defaults = load_settings()
    assert retention_days(DEAD_LETTER) >= defaults.dead_letter_retention_days
    assert all(rule.why and rule.patterns for rule in TOPIC_RULES)


def test_a_value_the_topic_only_inherits_counts_as_different() -> None:
    desired = {"retention.ms": "100", "cleanup.policy": "delete", "max.message.bytes": "5"}
    current = {
        "retention.ms": CurrentConfig("100", on_topic=True),
        "cleanup.policy": CurrentConfig("delete", on_topic=False),
        "max.message.bytes": CurrentConfig("4", on_topic=True),
    }
    assert config_changes("t", desired, current) == [
        ConfigChange("t", "cleanup.policy", None, "delete", inherited="delete"),
        ConfigChange("t", "max.message.bytes", "4", "5"),
    ]
    same = {k: CurrentConfig(v, on_topic=True) for k, v in desired.items()}
    assert config_changes("t", desired, same) == []


def test_the_report_says_what_changed_and_a_dry_run_says_it_changed_nothing() -> None:
    change = ConfigChange("t.a", "retention.ms", None, "7", inherited="1")
    result = ApplyResult(dry_run=True, topics=3, created=["t.b"], changes=[change])
    assert result.lines() == [
        "would create t.b",
        "would set t.a: retention.ms 1 (broker default) -> 7",
        "3 topics: 1 to create, 1 to change (1 configs), 1 unchanged; dry run, nothing changed",
    ]
    assert result.as_dict()["unchanged"] == 1


def test_min_insync_replicas_follows_the_replication_factor_and_never_exceeds_it() -> None:
    assert load_settings().topic_min_insync_replicas == 1
    assert load_settings(replication_factor=3).topic_min_insync_replicas == 2
    assert load_settings(replication_factor=5, min_insync_replicas=3).topic_min_insync_replicas == 3
    with pytest.raises(SettingsError, match="MASH_MIN_INSYNC_REPLICAS=2 exceeds"):
        load_settings(min_insync_replicas=2)
    assert with_min_insync_replicas({"min.insync.replicas": "3"}, 1) == {"min.insync.replicas": "3"}


def test_the_readme_topic_config_table_is_generated_from_the_rules() -> None:
    text = README.read_text(encoding="utf-8")
    assert replace_readme_table(text) == text, (
        "README's topic-config table is stale: python -m mash.topic_configs readme"
    )
    assert retention_table() in text
