"""Statutory clocks for routed contacts (docs/domain.md, Deadlines), as data.

``deadlines.yaml`` beside this module is the table practitioners read and change: each
clock's start event and duration (with overrides by RAG rating and by single-agency
target), and which clocks start for each queue. This module only does the arithmetic,
using :class:`~services.common.calendar.WorkingCalendar`; the times are passed in, never
read from a clock.

What meets a clock besides the statuses of ``met_by`` (and closing, which meets them all):

* ``acknowledge_referrer`` is met by what acknowledges the referrer: the acknowledgement
  notifications issues automatically when the contact is recorded (or, if the routing
  overtook the contact, just before the outcome). Routing reads it from the feedback
  record and meets the clock *at the time it was issued* (``met_by``
  :data:`REFERRER_ACKNOWLEDGED`): at routing time if it was already issued, or when the
  scheduler finds it. Recording it met at routing time without looking would be unsound:
  the acknowledgement goes out through another service, which can be down or behind, and
  a referrer not told within the statutory day is exactly the breach this clock exists
  to show. A practitioner's step on the item (``acknowledged`` and later) still meets it.
* ``screening_decision`` runs only on an item awaiting practitioners (the s47
  confirmation gate); it is met when the routing takes effect (``met_by``
  :data:`RELEASED`) or an override moves the item.

A no-further-action contact gets the automatic acknowledgement and its outcome like any
other, but no clock here: it has no queue item (docs/domain.md "Threshold levels": level 1 has no
queue), so there is no hub work to hold a clock on, and a breach event names a queue item
and its queue. Its acknowledgement is the same automatic one whose only way of being late
is notifications being down or behind, which the consumer-lag and readiness alerts show
for every contact at once; the feedback record keeps when each was issued.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal, cast, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.inbound import QueueUpdateStatus
from services.common.calendar import OfficeHours, WorkingCalendar
from services.common.yaml_files import load_yaml_model

#: The shipped defaults.
DEFAULT_CONFIG_PATH = Path(__file__).with_name("deadlines.yaml")

Queue = Literal["single-agency", "initial-assessment", "s47"]
Rag = Literal["red", "amber", "green", "blue"]
ClockStart = Literal["receipt", "decision", "strategy_discussion_held"]

QUEUES: tuple[str, ...] = get_args(Queue)
RAGS: tuple[str, ...] = get_args(Rag)

# Clocks this module computes by name, outside the per-queue lists.
ICPC = "icpc"
SCREENING_DECISION = "screening_decision"
#: The clock met by the automatic acknowledgement to the referrer.
ACKNOWLEDGE_REFERRER = "acknowledge_referrer"
#: ``met_by`` of a clock met by that acknowledgement (at the time it was issued).
REFERRER_ACKNOWLEDGED = "referrer_acknowledged"
#: ``met_by`` of the screening decision clock of a held item whose routing took effect.
RELEASED = "released"


class DeadlineConfigError(ValueError):
    """The deadlines file is missing, unreadable or inconsistent (one-line message)."""


class Duration(BaseModel):
    """How long a clock runs: working days (same time of day) or clock hours (24/7)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    working_days: int | None = Field(default=None, ge=0)
    hours: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _exactly_one(self) -> Duration:
        if (self.working_days is None) == (self.hours is None):
            raise ValueError("give exactly one of working_days or hours")
        return self

    def after(self, start: datetime, calendar: WorkingCalendar) -> datetime:
        """When a clock of this length that started at ``start`` runs out."""
        if self.working_days is not None:
            return calendar.add_working_days(start, self.working_days)
        assert self.hours is not None  # guaranteed by _exactly_one
        return calendar.add_clock_hours(start, self.hours)


class Clock(BaseModel):
    """One statutory clock: what starts it and how long it runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    starts: ClockStart
    default: Duration | None = None
    by_rag: dict[Rag, Duration] = Field(default_factory=dict)
    by_agency: dict[str, Duration] = Field(default_factory=dict)
    met_by: tuple[QueueUpdateStatus, ...] = ()
    """Queue-item statuses that meet this clock (closing an item meets every clock)."""

    @model_validator(mode="after")
    def _has_a_duration(self) -> Clock:
        if self.default is None and not self.by_rag and not self.by_agency:
            raise ValueError("sets no duration (give default, by_rag or by_agency)")
        return self

    def duration_for(self, rag: str, target_agency: str | None = None) -> Duration | None:
        """The most specific duration: by target agency, then by RAG, then the default."""
        if target_agency is not None and target_agency in self.by_agency:
            return self.by_agency[target_agency]
        return self.by_rag.get(cast(Rag, rag), self.default)


class HubOfficeHours(BaseModel):
    """Each hub's office day: when a clock starts for what arrives on a non-working day."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default: OfficeHours = Field(default_factory=OfficeHours)
    by_hub: dict[str, OfficeHours] = Field(default_factory=dict)

    def for_hub(self, hub: str) -> OfficeHours:
        """The office hours of ``hub`` (the default for a hub not listed)."""
        return self.by_hub.get(hub, self.default)


class DeadlineConfig(BaseModel):
    """The clocks table: each clock, and which clocks start for each queue."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = Field(min_length=1)
    clocks: dict[str, Clock]
    queues: dict[Queue, tuple[str, ...]]
    open_case_update: tuple[str, ...] = ("acknowledge_referrer",)
    """Clocks of a contact routed to an open case's queue: the case's own clocks already run."""
    office_hours: HubOfficeHours = Field(default_factory=HubOfficeHours)

    @model_validator(mode="after")
    def _consistent(self) -> DeadlineConfig:
        for name in (ICPC, SCREENING_DECISION):
            if name not in self.clocks:
                raise ValueError(f"clock {name!r} is missing")
        icpc = self.clocks[ICPC]
        if icpc.starts != "strategy_discussion_held" or icpc.default is None:
            raise ValueError("clock 'icpc' must start at strategy_discussion_held with a default")
        missing = [q for q in QUEUES if q not in self.queues]
        if missing:
            raise ValueError(f"queues {missing} have no clock list")
        # Each list names clocks started at routing time, from receipt or decision; a clock
        # waiting on a later event (the ICPC) cannot be computed then.
        lists = [(f"queue {q!r}", names) for q, names in self.queues.items()]
        lists.append(("open_case_update", self.open_case_update))
        for where, names in lists:
            for name in names:
                if name not in self.clocks:
                    raise ValueError(f"{where} lists unknown clock {name!r}")
                if self.clocks[name].starts not in ("receipt", "decision"):
                    raise ValueError(
                        f"{where} lists clock {name!r}, which starts at "
                        f"{self.clocks[name].starts} (only receipt or decision can be listed)"
                    )
        return self


def load_deadline_config(path: str | Path | None = None) -> DeadlineConfig:
    """Load the clocks table (the shipped ``deadlines.yaml`` by default).

    Raises DeadlineConfigError with a one-line message naming the file and the problem.
    """
    file = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    return load_yaml_model(file, DeadlineConfig, DeadlineConfigError, what="deadlines")


def _rag(rag: str) -> str:
    value = rag.strip().lower()
    if value not in RAGS:
        raise ValueError(f"unknown RAG rating {rag!r} (expected one of {RAGS})")
    return value


def _agency(target_agency: str | None) -> str | None:
    # "Early Help", "early-help" and "early_help" name the same agency type.
    if target_agency is None:
        return None
    return "_".join(target_agency.strip().lower().replace("-", " ").split())


def screening_decision_deadline(
    rag: str, received_at: datetime, calendar: WorkingCalendar, config: DeadlineConfig
) -> datetime | None:
    """When a screening decision awaiting practitioners is due (None if no clock, e.g. blue)."""
    duration = config.clocks[SCREENING_DECISION].duration_for(_rag(rag))
    return None if duration is None else duration.after(received_at, calendar)


def deadlines_for(
    queue: str,
    rag: str,
    target_agency: str | None,
    received_at: datetime,
    decided_at: datetime,
    calendar: WorkingCalendar,
    config: DeadlineConfig,
    *,
    awaiting_practitioners: bool = False,
    open_case_update: bool = False,
) -> dict[str, datetime]:
    """The deadlines that start when a contact is routed to ``queue``, by clock name.

    Clocks come from ``config.queues[queue]``; each starts at ``received_at`` or
    ``decided_at`` as the table says. ``target_agency`` picks the single-agency figure
    (unknown agencies get the default). With ``awaiting_practitioners`` the screening
    decision clock is included too. With ``open_case_update`` (a contact routed to the queue
    holding the child's open case) only the ``open_case_update`` clocks start: the open
    case's own clocks already run. Raises ValueError for an unknown queue or RAG rating.
    """
    if queue not in config.queues:
        raise ValueError(f"unknown queue {queue!r} (expected one of {QUEUES})")
    rag_value, agency = _rag(rag), _agency(target_agency)
    starts = {"receipt": received_at, "decision": decided_at}
    due: dict[str, datetime] = {}
    if awaiting_practitioners:
        screening = screening_decision_deadline(rag_value, received_at, calendar, config)
        if screening is not None:
            due[SCREENING_DECISION] = screening
    names = config.open_case_update if open_case_update else config.queues[queue]
    for name in names:
        clock = config.clocks[name]
        duration = clock.duration_for(rag_value, agency)
        if duration is not None:
            due[name] = duration.after(starts[clock.starts], calendar)
    return due


def icpc_deadline(
    strategy_discussion_at: datetime, calendar: WorkingCalendar, config: DeadlineConfig
) -> datetime:
    """When the initial child protection conference is due, from the strategy discussion."""
    duration = config.clocks[ICPC].default
    assert duration is not None  # guaranteed by DeadlineConfig._consistent
    return duration.after(strategy_discussion_at, calendar)


def clocks_met_by(status: str, config: DeadlineConfig) -> frozenset[str]:
    """The clocks a queue item meets by reaching ``status`` (``closed`` meets every clock)."""
    if status == "closed":
        return frozenset(config.clocks)
    return frozenset(name for name, clock in config.clocks.items() if status in clock.met_by)


def calendar_for(hub: str, config: DeadlineConfig) -> WorkingCalendar:
    """A working calendar with ``hub``'s office hours."""
    return WorkingCalendar(config.office_hours.for_hub(hub))
