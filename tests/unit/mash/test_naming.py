"""Topic names: which are inbound (whatever the prefix), prefixes, contract names."""

from __future__ import annotations

import pytest

from mash.naming import contract_name, deployed, is_inbound


@pytest.mark.parametrize(
    "name",
    [
        "mash.inbound.police-notifications.v1",
        "mash.inbound.referrals.v1",
        "mash.inbound.referrals.v2",
        "mash.practitioner-decisions.v1",
        "mash.queue-updates.v1",
        "t1a2b3c4.mash.inbound.referrals.v1",
        "dev-anna-mash.queue-updates.v1",
        "prod.eu.mash.practitioner-decisions.v1",
    ],
)
def test_inbound_topics_are_recognised_with_any_prefix(name: str) -> None:
    assert is_inbound(name)


@pytest.mark.parametrize(
    "name",
    [
        "mash.contacts.v1",
        "t1.mash.decisions.v1",
        "mash.queue.east-south.s47.v1",
        "mash.deadletter.v1",
        "mash.feedback.police.v1",
        "scratch-copy",
    ],
)
def test_other_topics_are_not_inbound(name: str) -> None:
    assert not is_inbound(name)


def test_the_prefix_is_added_once() -> None:
    assert deployed("mash.contacts.v1", "t1.") == "t1.mash.contacts.v1"
    assert deployed("t1.mash.contacts.v1", "t1.") == "t1.mash.contacts.v1"
    assert deployed("mash.contacts.v1", "") == "mash.contacts.v1"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("t1.mash.contacts.v1", "mash.contacts.v1"),
        ("mash.inbound.referrals.v1", "mash.inbound.referrals.v1"),
        (
            "dev.mash.queue.east-south.initial-assessment.v1",
            "mash.queue.east-south.initial-assessment.v1",
        ),
        ("scratch", "scratch"),
    ],
)
def test_contract_names_drop_any_prefix(name: str, expected: str) -> None:
    assert contract_name(name) == expected
