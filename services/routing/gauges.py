"""Gauges counted from the system of record: open queue items by hub, queue and RAG,
statutory clocks due within the hour or already overdue, and the items whose s47 routing
awaits practitioners (the hub's confirmation gate: never invisible work).

They are counts of rows, not of events, so they stay right across restarts, replays and
several routing workers. Routing, which owns the queues, refreshes them every
``record_gauges_seconds`` with its injected clock; the other services do not export them,
so a dashboard sums them without counting a queue four times.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from prometheus_client import Gauge

from services.common.metrics import ServiceMetrics
from services.common.topics import QUEUE_NAMES as QUEUES

if TYPE_CHECKING:
    from services.common.db import Connection

#: The RAG ratings a hub's queues always show, even at zero.
RAGS = ("red", "amber", "green", "blue")
#: "Due soon" on the dashboard.
DUE_SOON = timedelta(hours=1)

OPEN_ITEMS_BY_RAG_SQL = """
SELECT hub, queue, rag, count(*) AS n
FROM queue_items
WHERE status <> 'closed'
GROUP BY hub, queue, rag
"""

#: Open items held by the s47 confirmation gate, by hub.
AWAITING_PRACTITIONERS_SQL = """
SELECT hub, count(*) AS n
FROM queue_items
WHERE awaiting_practitioners AND status <> 'closed'
GROUP BY hub
"""

#: Unmet clocks of open items: due within the window, or already past due (overdue). Every
#: (hub, queue, deadline) with a running clock gets a row, zeros included.
CLOCKS_SQL = """
SELECT q.hub, q.queue, d.deadline,
       count(*) FILTER (WHERE d.due_at > $1 AND d.due_at <= $2) AS due_soon,
       count(*) FILTER (WHERE d.due_at <= $1) AS overdue
FROM queue_item_deadlines d
JOIN queue_items q USING (queue_item_id)
WHERE d.met_at IS NULL AND q.status <> 'closed'
GROUP BY q.hub, q.queue, d.deadline
"""


class RecordGauges:
    """Refreshes the record gauges of ``metrics`` from the database."""

    def __init__(self, metrics: ServiceMetrics, hubs: Iterable[str]) -> None:
        self.metrics = metrics
        self.hubs = tuple(hubs)
        self._seen: dict[int, set[tuple[str, ...]]] = {}
        # The alerted-on s47 breach counter of every hub at 0, so its first increase is seen.
        for hub in self.hubs:
            metrics.sla_breaches.labels(hub=hub, queue="s47", deadline="strategy_discussion")
        # Every hub's queues at zero from the start: an empty queue is shown as 0, not absent.
        self._replace(
            metrics.queue_open_items_by_rag,
            {(hub, queue, rag): 0 for hub in self.hubs for queue in QUEUES for rag in RAGS},
        )
        self._replace(
            metrics.queue_open_items, {(hub, queue): 0 for hub in self.hubs for queue in QUEUES}
        )
        self._replace(metrics.queue_items_awaiting_practitioners, {(hub,): 0 for hub in self.hubs})

    async def refresh(self, conn: Connection, now: datetime) -> int:
        """One round: count and set every gauge (series that emptied go back to 0); return
        the number of open items."""
        items = await conn.fetch(OPEN_ITEMS_BY_RAG_SQL)
        clocks = await conn.fetch(CLOCKS_SQL, now, now + DUE_SOON)
        held = await conn.fetch(AWAITING_PRACTITIONERS_SQL)
        by_queue: dict[tuple[str, ...], int] = {}
        for r in items:
            by_queue[(r["hub"], r["queue"])] = by_queue.get((r["hub"], r["queue"]), 0) + r["n"]
        self._replace(self.metrics.queue_open_items, by_queue)
        self._replace(
            self.metrics.queue_open_items_by_rag,
            {(r["hub"], r["queue"], r["rag"]): r["n"] for r in items},
        )
        self._replace(
            self.metrics.deadlines_due_next_hour,
            {(r["hub"], r["queue"], r["deadline"]): r["due_soon"] for r in clocks},
        )
        self._replace(
            self.metrics.deadlines_overdue,
            {(r["hub"], r["queue"], r["deadline"]): r["overdue"] for r in clocks},
        )
        self._replace(
            self.metrics.queue_items_awaiting_practitioners, {(r["hub"],): r["n"] for r in held}
        )
        return sum(by_queue.values())

    def _replace(self, gauge: Gauge, values: dict[tuple[str, ...], int]) -> None:
        """Set ``gauge`` to ``values``; label sets set before but absent now go to 0."""
        seen = self._seen.setdefault(id(gauge), set())
        seen.update(values)
        for labels in seen:
            gauge.labels(*labels).set(values.get(labels, 0))
