"""The rows routing reads and writes besides queue items, as plain values (pure).

The batch planners (:mod:`services.routing.decisions`, :mod:`services.routing.updates`)
produce them; :mod:`services.routing.store` reads and writes them, a list per statement.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from schemas.events import QueueItem
from services.common.ids import derive_id


def as_stored(item: QueueItem) -> QueueItem:
    """``item`` as the record gives it back once written, so that a later step of a batch
    announces it byte for byte as one by one did (reading it back): its deadlines come
    back from jsonb, which orders an object's keys shortest first, then bytewise."""
    ordered = sorted(item.deadlines.items(), key=lambda kv: (len(kv[0].encode()), kv[0].encode()))
    return item.model_copy(update={"deadlines": dict(ordered)})


@dataclass(frozen=True)
class HistoryEntry:
    """One change of a queue item (a queue_item_history row; ids and codes only)."""

    queue_item_id: str
    action: str
    cause: str
    """The decision or event that made the change: with the action, what makes it once."""
    from_status: str | None
    to_status: str
    at: datetime
    actor: str
    detail: Mapping[str, object] = field(default_factory=dict)

    @property
    def history_id(self) -> str:
        """The row's id, derived from the item, the action and its cause."""
        return derive_id("queue-item-history", self.queue_item_id, self.action, self.cause)


@dataclass(frozen=True)
class MetClocks:
    """Clocks of an item met at ``at`` by ``met_by`` (a status, or ``moved``/``escalated``)."""

    queue_item_id: str
    names: Collection[str]
    at: datetime
    met_by: str


def breach_id(queue_item_id: str, deadline: str) -> str:
    """The id of the one breach a clock can have."""
    return derive_id("sla-breach", queue_item_id, deadline)


@dataclass(frozen=True)
class DueBreach:
    """A missed clock claimed for its breach event."""

    queue_item_id: str
    deadline: str
    due_at: datetime
    hub: str
    queue: str
    breach_id: str


@dataclass(frozen=True)
class ClockRow:
    """One statutory clock of an item as stored (a queue_item_deadlines row)."""

    queue_item_id: str
    deadline: str
    due_at: datetime
    met_at: datetime | None = None
    met_by: str | None = None
    breached_at: datetime | None = None

    def missed(self, now: datetime) -> bool:
        """Whether the clock is to be breached at ``now``: it ran out by then, was not met
        by its due time (met late is missed), and has no breach yet — the rule
        :func:`services.routing.store.claim_breaches` claims by."""
        return (
            self.breached_at is None
            and self.due_at <= now
            and (self.met_at is None or self.met_at > self.due_at)
        )
