"""The simulator's calibration: the figures of ``mash/simulation.yaml`` as pydantic models,
read through the project's one YAML loader.

Every number a developer might want to change is in the file, none in the generator; the
models refuse a file that would draw nonsense (negative or all-zero weights, a census source
the simulator has no referrer for) before a single contact is drawn.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mash.errors import UsageError
from mash.stdio import is_stdio
from services.common.yaml_files import load_yaml_model

#: The shipped calibration.
DEFAULT_CALIBRATION = Path(__file__).parent.parent / "simulation.yaml"

K = TypeVar("K")

Probability = float
Weights = dict[str, float]

#: Referrer per census source: agency id prefix, organisation, role. Police ("6") send
#: notifications, not referrals. Members of the public share the agency id "public". Here,
#: not with the referrals, because a calibration may weight only these sources.
REFERRERS: dict[str, tuple[str, str, str]] = {
    "1A": ("public", "Member of the public", "Family member"),
    "1B": ("public", "Member of the public", "Acquaintance"),
    "1C": ("public", "Member of the public", "Self"),
    "1D": ("public", "Member of the public", "Other individual"),
    "2A": ("school", "Example School", "Designated safeguarding lead"),
    "2B": ("education", "Example Education Service", "Education welfare officer"),
    "3A": ("gp", "Example Surgery", "General practitioner"),
    "3B": ("health-visiting", "Example Health Visiting Team", "Health visitor"),
    "3C": ("school-nursing", "Example School Nursing Team", "School nurse"),
    "3D": ("primary-health", "Example Primary Care Service", "Practitioner"),
    "3E": ("emergency-dept", "Example Hospital A&E", "Safeguarding nurse"),
    "3F": ("health", "Example Health Trust", "Safeguarding lead"),
    "4": ("housing", "Example Housing Service", "Housing officer"),
    "5A": ("la-social-care", "Example Children's Social Care", "Social worker"),
    "5B": ("la-internal", "Example Council Service", "Officer"),
    "5C": ("la-external", "Example Other Council", "Social worker"),
    "5D": ("early-help", "Example Early Help Team", "Family support worker"),
    "7": ("legal", "Example Legal Agency", "Officer"),
    "8": ("other", "Example Organisation", "Worker"),
    "9": ("public", "Anonymous", "Anonymous"),
    "10": ("unknown", "Unknown referrer", "Unknown"),
}


def pick(rng: random.Random, weights: Mapping[K, float]) -> K:
    """One key of ``weights``, drawn in proportion to its weight (one draw of ``rng``)."""
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _positive(weights: Mapping[str, float], what: str) -> None:
    if not weights or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"{what}: weights must be non-negative and not all zero")


class Repeats(_Strict):
    """How often a contact is about a child already seen."""

    share: Probability = Field(ge=0, le=1)
    same_kind_chance: Probability = Field(ge=0, le=1)


class BadMessages(_Strict):
    """Rate of bad messages per contact, and the dead-letter reasons they aim at."""

    rate: Probability = Field(ge=0, le=1)
    weights: dict[
        Literal[
            "malformed_json",
            "schema_violation",
            "missing_header",
            "unknown_type",
            "unsupported_version",
            "too_large",
        ],
        float,
    ]


class Police(_Strict):
    """Police notifications: incident types, DASH and the rest."""

    force: str
    system: str
    incident_types: Weights
    dash_risk: Weights
    child_present_or_resident: dict[str, Probability]
    ppn_grade: Weights
    crime_reference: dict[str, Probability]
    factors: dict[str, list[str]]
    extra_factors: dict[str, Probability]
    restricted_chance: Probability = Field(ge=0, le=1)
    siblings_included_chance: Probability = Field(ge=0, le=1)
    """Chance a notification other than domestic abuse names the subject's siblings too."""
    report_delay_hours: tuple[float, float]
    hour_weights: list[float] = Field(min_length=24, max_length=24)
    nhs_number_chance: Probability = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _check(self) -> Police:
        _positive(self.incident_types, "police.incident_types")
        _positive(self.dash_risk, "police.dash_risk")
        _positive(self.ppn_grade, "police.ppn_grade")
        missing = set(self.incident_types) - set(self.factors)
        if missing:
            raise ValueError(f"police.factors: no factors for {sorted(missing)[0]}")
        if "default" not in self.crime_reference:
            raise ValueError("police.crime_reference needs a default")
        return self


class Concern(_Strict):
    """One thing a referral may be about."""

    weight: float = Field(ge=0)
    factors: list[str] = Field(min_length=1)
    injury_chance: Probability = 0.0
    disclosure: Literal["none", "sexual", "physical", "emotional", "neglect"] = "none"
    missing_episodes: tuple[int, int] | None = None
    forced_marriage: bool = False


class Referrals(_Strict):
    """Referrals: concerns, indicators, consent."""

    system: str
    office_hours_share: Probability = Field(ge=0, le=1)
    concerns: dict[str, Concern]
    source_bias: dict[str, dict[str, float]] = {}
    extra_factor_chance: Probability = Field(ge=0, le=1)
    immediate_danger_chance: Probability = Field(ge=0, le=1)
    consent_obtained_chance: Probability = Field(ge=0, le=1)
    consent_override_reasons: Weights
    siblings_included_chance: Probability = Field(ge=0, le=1)
    nhs_number_chance: Probability = Field(ge=0, le=1)


class Households(_Strict):
    """Who lives where."""

    children: Weights
    ages: Weights
    areas: Weights
    out_of_area_share: Probability = Field(ge=0, le=1)
    out_of_area_districts: list[str] = Field(min_length=1)
    no_fixed_abode_share: Probability = Field(ge=0, le=1)


class Calibration(_Strict):
    """All the numbers of ``simulation.yaml`` (see its comments)."""

    contacts_per_week: int = Field(ge=1)
    repeats: Repeats
    bad_messages: BadMessages
    structured_mode_share: Probability = Field(ge=0, le=1)
    sources: Weights
    police: Police
    referrals: Referrals
    households: Households

    @model_validator(mode="after")
    def _check(self) -> Calibration:
        _positive(self.sources, "sources")
        unknown = set(self.sources) - set(REFERRERS) - {"6"}
        if unknown:
            raise ValueError(f"sources: unknown census code {sorted(unknown)[0]}")
        return self


def load_calibration(path: Path | None = None) -> Calibration:
    """Read a calibration file (default: the shipped one; ``-``: stdin), so a changed mix
    needs no code; a UsageError (exit 2, one line naming the file) on a bad file."""
    path = path or DEFAULT_CALIBRATION
    text = sys.stdin.read() if is_stdio(path) else None
    return load_yaml_model(path, Calibration, UsageError, what="calibration", text=text)
