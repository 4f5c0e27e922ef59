"""``mash topics``: which topics and groups it reports, and how lag is counted."""

from __future__ import annotations

from mash.inventory import group_lag, product_topics, wanted_group


def test_the_product_topics_include_each_hubs_queues_under_the_prefix() -> None:
    names = product_topics("t1.", ["east-south", "north-west-central"])
    assert "t1.mash.inbound.referrals.v1" in names
    assert "t1.mash.queue.east-south.s47.v1" in names
    assert "t1.mash.queue.north-west-central.single-agency.v1" in names
    assert all(n.startswith("t1.") for n in names)
    assert "t1.mash.feedback.health.v1" in names
    # Eleven contract topics, one feedback topic per kind of agency, three queues per hub.
    assert len(names) == len(set(names)) == 11 + 9 + 2 * 3


def test_lag_is_end_minus_committed_summed_over_partitions() -> None:
    ends = {0: 10, 1: 5, 2: 0}
    committed = {("t", 0): 7, ("t", 1): 5, ("other", 0): 1}
    assert group_lag("t", ends, {}, committed) == 3
    # A partition the group never committed counts from its beginning.
    assert group_lag("t", {0: 10, 1: 5}, {1: 2}, {("t", 0): 10}) == 3


def test_a_group_that_never_read_the_topic_has_no_lag_there() -> None:
    assert group_lag("t", {0: 10}, {}, {("other", 0): 1}) is None


def test_only_this_deployments_groups_are_reported() -> None:
    assert wanted_group("mash-intake", "mash-", "")
    assert wanted_group("mash-intake-t1", "mash-", "-t1")
    assert not wanted_group("mash-intake-t2", "mash-", "-t1")
    assert not wanted_group("console-consumer-1", "mash-", "")
