"""What a service's effect is handed and how it answers: :class:`Received` (one valid
event of a batch, typed by its payload, with the batch's connection and what the effect
produces), :class:`Rejected` (refuse the event: it is dead-lettered), and the shapes of an
effect (:data:`Effect`, :data:`BatchEffect`, :data:`Before`). The consuming loop that makes
these is :mod:`services.common.pipeline`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Generic, TypeVar

import structlog

from schemas.base import ContractModel
from schemas.cloudevents import CloudEvent
from schemas.events import DeadLetterReason, FieldError
from services.common.audit import SYSTEM, AuditEntry
from services.common.kafka import InboundMessage
from services.common.outbox import OutboxRow, outbox_row
from services.common.runtime import ServiceRuntime

if TYPE_CHECKING:
    from services.common.db import Connection


P = TypeVar("P", bound=ContractModel)
"""The payload model(s) a consumer accepts."""


@dataclass
class Received(Generic[P]):
    """A valid event handed to a service's effect: the message, its envelope and payload
    (typed: one of the models the consumer accepts), the batch's connection, and what the
    effect produces (written when the batch is)."""

    message: InboundMessage
    event: CloudEvent
    payload: P
    conn: Connection
    runtime: ServiceRuntime
    ingress_ms: int | None = None
    outcome: str = "pending"
    """A short word for the inbox and audit, set by the effect (``applied``, ...)."""
    refused: Rejected | None = None
    """Set by a batch effect that refuses this event (it is dead-lettered)."""
    outputs: list[OutboxRow] = field(default_factory=list)
    audits: list[AuditEntry] = field(default_factory=list)
    committed: list[Callable[[], None]] = field(default_factory=list)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the transaction has committed (metrics, logs)."""
        self.committed.append(callback)

    def logged(self) -> AbstractContextManager[None]:
        """Every log line written inside names this event's coordinates and id: ops can
        follow one message through the logs (a batch effect wraps each event's work)."""
        return structlog.contextvars.bound_contextvars(
            topic=self.message.topic,
            partition=self.message.partition,
            offset=self.message.offset,
            event_id=self.event.id,
        )

    async def emit(
        self,
        topic: str,
        *,
        key: str | None,
        event_id: str,
        data: ContractModel,
        time: datetime,
        subject: str | None = None,
    ) -> None:
        """Enqueue an output event with the batch (``topic`` is the contract name)."""
        self.outputs.append(
            outbox_row(
                service=self.runtime.service,
                topic=self.runtime.topics(topic),
                key=key,
                event_id=event_id,
                data=data,
                time=time,
                subject=subject,
                ingress_ms=self.ingress_ms,
            )
        )

    async def audit(
        self,
        entity_type: str,
        entity_id: str,
        action: str,
        detail: Mapping[str, object],
        *,
        actor: str = SYSTEM,
    ) -> None:
        """Record a state change in the audit log with the batch (ids and codes only;
        ``actor``: who made it, when not the service itself)."""
        self.audits.append(AuditEntry(entity_type, entity_id, action, detail, actor))


class Rejected(Exception):
    """Raised by an effect when a valid-looking event cannot be applied (dead-lettered)."""

    def __init__(self, reason: DeadLetterReason, errors: list[FieldError]) -> None:
        super().__init__(f"{reason}: {'; '.join(e.message for e in errors)}")
        self.reason = reason
        self.errors = errors

    @classmethod
    def unknown_reference(cls, path: str, message: str) -> Rejected:
        """The event names a contact, item or hub this deployment does not hold."""
        return cls(DeadLetterReason.UNKNOWN_REFERENCE, [FieldError(path=path, message=message)])

    @classmethod
    def invalid_transition(cls, path: str, message: str) -> Rejected:
        """The event asks for a change the current state forbids."""
        return cls(DeadLetterReason.INVALID_TRANSITION, [FieldError(path=path, message=message)])


Effect = Callable[[Received[P]], Awaitable[str]]
"""An effect applies one event and returns a short outcome word for the inbox/audit."""

BatchEffect = Callable[[Sequence[Received[P]]], Awaitable[None]]
"""A batch effect applies a batch's new events, in order, on their shared connection: it
sets each one's ``outcome``, or ``refused`` (before writing anything for it)."""


Before = Callable[[Sequence[tuple[InboundMessage, P]]], None]
"""Sees a batch's valid events (message and payload, in order) before its transaction."""


def one_by_one(effect: Effect[P]) -> BatchEffect[P]:
    """The batch effect that applies ``effect`` to each event in turn (a later event reads
    what an earlier one wrote); a :class:`Rejected` it raises refuses that event only."""

    async def apply(batch: Sequence[Received[P]]) -> None:
        for received in batch:
            with received.logged():
                try:
                    received.outcome = await effect(received)
                except Rejected as refused:
                    received.refused = refused

    return apply
