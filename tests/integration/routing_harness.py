"""Routing alone, as a real process on the real broker and database, with its clock in a
file the test moves: decisions and queue updates go in, and the test can see what became
of each (applied, duplicate or dead letter), the items, their history, and the topics."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from deploy.local.pipeline import ServiceProcesses
from schemas import examples as ex
from schemas.events import Decision
from schemas.inbound import QueueUpdate
from services.common.topics import DECISIONS, QUEUE_UPDATES, ROUTED, SLA_BREACHES
from tests.integration.harness import Handled, ServiceUnderTest
from tests.support import Isolated, Record, Stack, fetch, read_topic


def decision(**overrides: Any) -> Decision:
    """A decision built from :func:`schemas.examples.decision` with fresh ids.

    The contact, decision and (single) child get unique ids unless given, so tests that
    share a world never see each other's items.
    """
    tag = uuid.uuid4().hex[:10]
    base: dict[str, Any] = {
        "decision_id": f"DEC-{tag}",
        "contact_id": f"CON-{tag}",
        "contact_reference": f"MASH-{tag}",
        "subjects": [{"subject_id": f"SUBJ-{tag}", "child_ref": "C-1"}],
    }
    return Decision.model_validate(ex.decision(**{**base, **overrides}))


def queue_update(queue_item_id: str, status: str, **overrides: Any) -> QueueUpdate:
    """A queue update for ``queue_item_id`` with the codes its status needs."""
    extra: dict[str, Any] = {}
    if status == "strategy_discussion_held":
        extra["strategy_outcome"] = "s47_joint"
    if status == "closed":
        extra["closure_reason"] = "RC8"
    return QueueUpdate.model_validate(
        ex.queue_update(queue_item_id=queue_item_id, status=status, **{**extra, **overrides})
    )


def breach_pairs(records: list[Record]) -> list[tuple[str, str]]:
    """(queue item id, deadline) of each breach record, sorted."""
    return sorted((r.json()["queue_item_id"], r.json()["deadline"]) for r in records)


class RoutingUnderTest(ServiceUnderTest):
    """Running routing process(es) of one world, with a movable clock."""

    service = "routing"

    def __init__(self, world: Isolated, run_dir: Path) -> None:
        super().__init__(
            world,
            run_dir,
            {
                "MASH_SLA_SCAN_SECONDS": "0.2",
                "MASH_RECORD_GAUGES_SECONDS": "0.3",
            },
        )
        # A second routing worker in the same consumer group (rebalances, racing scans).
        self.second = ServiceProcesses(
            {**world.env(), "MASH_METRICS_PORT": "0"},
            run_dir=run_dir / "second",
            role_env=world.role_env(),
        )

    @classmethod
    async def start(
        cls,
        stack: Stack,
        run_dir: Path,
        now: datetime | None = None,
        *,
        topology: str = "two-hubs",
        env: Mapping[str, str] | None = None,
    ) -> Self:
        """A new world with routing running in it and its clock at ``now`` (the real time
        unless given)."""
        return await super().start(
            stack, run_dir, topology=topology, env=env, now=now or datetime.now(UTC)
        )

    async def stop(self) -> None:
        """Stop every routing process and the producer."""
        await super().stop()
        self.second.stop(self.service)

    # --- input ---------------------------------------------------------------------------

    async def send_decision(
        self, payload: Decision, *, event_id: str | None = None
    ) -> tuple[int, int]:
        """Publish a decision on the world's decisions topic (ce_id = decision id unless given)."""
        key = payload.subjects[0].subject_id
        return await self.send(
            DECISIONS, payload, key=key, event_id=event_id or payload.decision_id
        )

    async def send_update(
        self, payload: QueueUpdate, *, event_id: str | None = None
    ) -> tuple[int, int]:
        """Publish a queue update (a fresh ce_id unless given)."""
        return await self.send(QUEUE_UPDATES, payload, key=payload.queue_item_id, event_id=event_id)

    async def route(self, payload: Decision) -> Handled:
        """Publish a decision and wait until routing has dealt with it."""
        return await self.handled(DECISIONS, *await self.send_decision(payload))

    async def update(self, payload: QueueUpdate) -> Handled:
        """Publish a queue update and wait until routing has dealt with it."""
        return await self.handled(QUEUE_UPDATES, *await self.send_update(payload))

    # --- what routing did ----------------------------------------------------------------

    async def items(self, contact_id: str) -> list[dict[str, Any]]:
        """The stored queue items of a contact, oldest first."""
        rows = await fetch(
            self.world.dsn,
            "SELECT * FROM queue_items WHERE contact_id = $1 ORDER BY routed_at, queue_item_id",
            contact_id,
        )
        return [dict(r) for r in rows]

    async def history(self, queue_item_id: str) -> list[tuple[str, str | None, str]]:
        """(action, from, to) of an item's history, in order."""
        rows = await fetch(
            self.world.dsn,
            "SELECT action, from_status, to_status FROM queue_item_history"
            " WHERE queue_item_id = $1 ORDER BY seq",
            queue_item_id,
        )
        return [(r["action"], r["from_status"], r["to_status"]) for r in rows]

    async def deadlines(self, queue_item_id: str) -> dict[str, dict[str, Any]]:
        """An item's clocks as stored (due, met, breached)."""
        rows = await fetch(
            self.world.dsn,
            "SELECT * FROM queue_item_deadlines WHERE queue_item_id = $1",
            queue_item_id,
        )
        return {r["deadline"]: dict(r) for r in rows}

    async def queue_events(self, hub: str, queue: str) -> list[Record]:
        """Every record on a hub queue topic of this world."""
        return await read_topic(self.world.stack.bootstrap, self.world.topics.queue(hub, queue))

    async def routed(self, decision_id: str) -> list[dict[str, Any]]:
        """The mash.routed.v1 events about a decision."""
        return [
            r.json() for r in await self.topic(ROUTED) if r.json()["decision_id"] == decision_id
        ]

    async def breaches(self) -> list[Record]:
        """Every record on mash.sla.breaches.v1."""
        return await self.topic(SLA_BREACHES)

    async def breaches_until(
        self, done: Callable[[list[Record]], bool], timeout: float = 60
    ) -> list[Record]:
        """Re-read the breaches topic until ``done(records)`` holds."""
        return await self.records_until(SLA_BREACHES, done, timeout)
