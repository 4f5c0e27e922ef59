"""One run of the simulator: what was asked for, what comes out, and the state every kind
of contact draws from (the one random stream, the world of households, the clock of the
simulated period, the encoding onto Kafka).

One random stream, drawn in a fixed order, is what makes the output byte-identical for a
seed: the contact builders (``police``, ``referrals``, ``bad_messages``) all draw from
:attr:`SimulationRun.rng`, and nothing reads the wall clock or the environment.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from mash.errors import UsageError
from mash.jsonl import ReplayRecord
from mash.simulation.calibration import Calibration
from mash.simulation.people import Household, SimChild, World
from schemas.base import ContractModel
from schemas.cloudevents import encode_binary, encode_structured
from services.common.ids import derive_id
from services.common.topology import Topology

#: Where a simulation starts unless told (a Monday); fixed so output never depends on today.
DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC)


@dataclass(frozen=True)
class SimulationRequest:
    """What to simulate: seed, period and volume (None: from the calibration)."""

    seed: int = 1
    start: datetime = DEFAULT_START
    weeks: float = 1.0
    count: int | None = None
    """Number of contacts; default ``contacts_per_week * weeks``."""
    bad_rate: float | None = None
    """Bad messages per contact; default from the calibration."""

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise UsageError("--start needs a timezone (or give a date: midnight UTC)")
        if self.weeks <= 0:
            raise UsageError("--weeks must be positive")
        if self.count is not None and self.count < 0:
            raise UsageError("--count must not be negative")
        if self.bad_rate is not None and not 0 <= self.bad_rate <= 1:
            raise UsageError("--bad-rate must be between 0 and 1")


@dataclass(frozen=True)
class SimRecord:
    """One generated message and what it was meant to be (for the summary and tests)."""

    record: ReplayRecord
    kind: Literal["police", "referral", "bad"]
    source: str
    """Census referral source ("6" for police) of the contact (or the bad message's base)."""
    incident_type: str | None = None
    dash_risk: str | None = None
    repeat: bool = False
    children: int = 0
    hub: str | None = None
    out_of_area: bool = False
    no_fixed_abode: bool = False
    intended_reason: str | None = None
    """For a bad message: the dead-letter reason it is built to trigger."""


@dataclass
class Slot:
    """One contact before it is written: when, from whom, about which household."""

    index: int
    source: str
    at: datetime
    repeat: bool = False
    household: Household | None = None


class SimulationRun:
    """The request, calibration and topology of one run, with its random stream and world."""

    def __init__(
        self, request: SimulationRequest, calibration: Calibration, topology: Topology
    ) -> None:
        self.request = request
        self.cal = calibration
        self.topology = topology
        self.rng = random.Random(request.seed)
        self.world = World(self.rng, calibration, topology, request.start)
        self.end = request.start + timedelta(weeks=request.weeks)
        self.seed_tag = f"SIM{request.seed}"

    def _moment(self, *, hour_weights: Sequence[float] | None, office_hours: bool) -> datetime:
        rng = self.rng
        span_days = max(1, int((self.end - self.request.start).total_seconds() // 86400) + 1)
        for _ in range(1000):
            day = self.request.start + timedelta(days=rng.randrange(span_days))
            if office_hours and day.weekday() >= 5:
                continue
            if office_hours:
                hour = rng.randrange(8, 18)
            elif hour_weights is not None:
                hour = rng.choices(range(24), weights=hour_weights)[0]
            else:
                hour = rng.randrange(24)
            moment = day.replace(hour=hour, minute=rng.randrange(60), second=rng.randrange(60))
            if self.request.start <= moment < self.end:
                return moment
        # A period too short for the wanted hours: any moment in it will do.
        seconds = (self.end - self.request.start).total_seconds()
        return self.request.start + timedelta(seconds=int(rng.random() * seconds))

    def slot_time(self, source: str) -> datetime:
        """When a contact from census ``source`` arrives: police at the calibration's hours,
        referrals mostly in office hours."""
        if source == "6":
            return self._moment(hour_weights=self.cal.police.hour_weights, office_hours=False)
        office = self.rng.random() < self.cal.referrals.office_hours_share
        return self._moment(hour_weights=None, office_hours=office)

    def remember(self, household: Household, subjects: Sequence[SimChild], kind: str) -> None:
        """Note a contact about ``subjects``, so later repeats can be about them."""
        if household.last_kind is None:
            self.world.contacted.append(household)
        household.last_kind = kind
        for child in subjects:
            child.contacted = True

    def hub(self, household: Household) -> tuple[str, bool]:
        """The hub the topology routes the household to, and whether it is out of area."""
        resolved = self.topology.resolve(
            household.postcode, no_fixed_abode=household.no_fixed_abode
        )
        return resolved.hub, resolved.out_of_area

    def encode(
        self,
        topic: str,
        key: str,
        model: ContractModel,
        system: str,
        at: datetime,
        id_parts: tuple[str | int, ...],
    ) -> ReplayRecord:
        """``model`` as a CloudEvent record on ``topic`` (binary or, at the calibration's
        share, structured mode), its event id derived from the seed and ``id_parts``."""
        structured = self.rng.random() < self.cal.structured_mode_share
        encode = encode_structured if structured else encode_binary
        value, headers = encode(
            event_id=derive_id("simulate", self.request.seed, *id_parts),
            source=system,
            data=model,
            time=at,
        )
        return ReplayRecord(
            topic=topic,
            key=key.encode(),
            value=value,
            headers=tuple(headers),
            timestamp=int(at.timestamp() * 1000),
        )
