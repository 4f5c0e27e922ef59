"""Routing by hub in each shipped topology: every hub's decisions land on that hub's own
three queues, and the open-items gauge covers every hub of the topology."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from services.common.topics import QUEUE_NAMES
from services.common.topology import load_topology
from tests.integration.routing_harness import RoutingUnderTest, decision
from tests.support import Stack, wait_until

pytestmark = pytest.mark.integration

NOW = datetime(2024, 3, 12, 23, 6, tzinfo=UTC)
#: (outcome, level, rag, target agency) -> the queue it goes to.
OUTCOMES = {
    "single-agency": ("single_agency", 2, "green", "early_help"),
    "initial-assessment": ("initial_assessment", 3, "amber", None),
    "s47": ("s47", 4, "red", None),
}


@pytest.fixture(params=["central", "two-hubs", "four-areas"])
async def routing(
    request: pytest.FixtureRequest, stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RoutingUnderTest]:
    topology: str = request.param
    harness = await RoutingUnderTest.start(
        stack, tmp_path_factory.mktemp(f"routing-{topology}"), NOW, topology=topology
    )
    yield harness
    await harness.stop()


async def test_each_hub_gets_its_own_decisions_on_its_own_queues(
    routing: RoutingUnderTest,
) -> None:
    hubs = load_topology(routing.world.topology).hub_ids
    sent: dict[tuple[str, str], str] = {}
    for hub in hubs:
        for queue, (outcome, level, rag, agency) in OUTCOMES.items():
            d = decision(hub=hub, outcome=outcome, level=level, rag=rag, target_agency=agency)
            await routing.send_decision(d)
            sent[(hub, queue)] = d.contact_id
    for (hub, queue), contact_id in sent.items():

        async def routed(contact_id: str = contact_id) -> list[dict[str, object]]:
            return await routing.items(contact_id)

        (item,) = await wait_until(routed, timeout=60, what=f"the {hub} {queue} item")
        assert (item["hub"], item["queue"]) == (hub, queue)
    for hub in hubs:
        for queue in QUEUE_NAMES:
            on_topic = {r.json()["contact_id"] for r in await routing.queue_events(hub, queue)}
            # Exactly this hub's decision for this queue, nothing from another hub.
            assert on_topic == {sent[(hub, queue)]}

    async def gauge_covers_every_hub() -> bool:
        return all(
            routing.metric("mash_queue_open_items", hub=hub, queue=queue) == 1
            for hub in hubs
            for queue in QUEUE_NAMES
        )

    await wait_until(gauge_covers_every_hub, timeout=30, what="one open item per hub and queue")
