"""Hub topology: which MASH hub serves a child's address (rules as data).

A topology file (``topologies/<name>.yaml``) says, in the hub's own words, which hubs
exist, which areas each hub serves and which postcode districts make up each area.
Districts are written out one by one (``B72, B73, B74, B75, B76``), never as ranges: a
practitioner checking "who has B74?" can search the file for it, and a typo cannot widen
a range silently.

Addresses the table does not cover are never dropped: a well-formed postcode outside the
districts is **out of area** and a missing or unreadable postcode (or no fixed abode) is
**unresolved**; both go to the topology's default hub, flagged, to be screened as usual.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from services.common.yaml_files import load_yaml_model

#: Folder of the shipped topologies (two-hubs is the default, see Settings.topology).
TOPOLOGIES_DIR = Path(__file__).parent / "topologies"

_SLUG = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
_DISTRICT = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]?$")
# Outward code (district) and an optional inward code (sector digit + unit letters); the
# inward code is always three characters, which is what lets "B151AA" split as B15 1AA.
_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?) ?([0-9][A-Z]{2})?$")


class TopologyError(ValueError):
    """A topology file is missing, unreadable or inconsistent (one-line message)."""


def postcode_district(postcode: str) -> str | None:
    """The district (outward code) of a UK postcode, upper case, or None if malformed.

    Case and spacing are forgiven ("b6 4aa" -> "B6", "B151AA" -> "B15"); an outward code
    on its own ("B6") is accepted because some referrers only know the district.
    """
    if not isinstance(postcode, str):
        return None
    text = " ".join(postcode.upper().split())
    match = _POSTCODE.match(text)
    return match.group(1) if match else None


class Hub(BaseModel):
    """One MASH team and the areas of the city it serves."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=_SLUG, description="Slug used in queue topic names.")
    name: str = Field(min_length=1, description="The hub's name as staff and referrers say it.")
    contact_point: str = Field(min_length=1, description="Phone or email given to referrers.")
    areas: tuple[str, ...] = Field(min_length=1, description="Area ids this hub serves.")


class HubResolution(BaseModel):
    """Where a contact goes, and why (for the decision record and the out-of-area flag)."""

    model_config = ConfigDict(frozen=True)

    hub: str
    area: str | None
    district: str | None
    out_of_area: bool
    unresolved: bool


class Topology(BaseModel):
    """Hubs -> areas -> postcode districts, checked for consistency when built."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    default_hub: str = Field(description="Hub for out-of-area and unresolvable addresses.")
    hubs: tuple[Hub, ...] = Field(min_length=1)
    areas: dict[str, tuple[str, ...]] = Field(description="Area id -> postcode districts.")

    _hub_by_id: dict[str, Hub] = PrivateAttr(default_factory=dict)
    _area_by_district: dict[str, str] = PrivateAttr(default_factory=dict)
    _hub_by_area: dict[str, str] = PrivateAttr(default_factory=dict)

    @field_validator("areas", mode="before")
    @classmethod
    def _upper_case_districts(cls, value: Any) -> Any:
        # "b6" and "B6" are the same district; store the upper-case form that
        # postcode_district() returns so lookups match.
        if isinstance(value, dict):
            return {
                area: [d.strip().upper() if isinstance(d, str) else d for d in districts]
                if isinstance(districts, list | tuple)
                else districts
                for area, districts in value.items()
            }
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Topology:
        # Each check names the offending value so the one-line error is enough to fix it.
        hub_by_id: dict[str, Hub] = {}
        for hub in self.hubs:
            if hub.id in hub_by_id:
                raise ValueError(f"hub {hub.id!r} is listed twice")
            hub_by_id[hub.id] = hub
        if self.default_hub not in hub_by_id:
            raise ValueError(
                f"default_hub {self.default_hub!r} is not one of the hubs {sorted(hub_by_id)}"
            )

        area_by_district: dict[str, str] = {}
        for area, districts in self.areas.items():
            if not re.match(_SLUG, area):
                raise ValueError(f"area id {area!r} must be a lower-case slug like 'west-central'")
            for district in districts:
                if not _DISTRICT.match(district):
                    raise ValueError(
                        f"area {area!r}: {district!r} is not a postcode district like 'B15'"
                        " (write ranges out one district at a time)"
                    )
                if district in area_by_district:
                    other = area_by_district[district]
                    where = (
                        f"twice in area {area!r}"
                        if other == area
                        else f"in two areas: {other!r} and {area!r}"
                    )
                    raise ValueError(f"district {district} is {where}")
                area_by_district[district] = area

        hub_by_area: dict[str, str] = {}
        for hub in self.hubs:
            for area in hub.areas:
                if area not in self.areas:
                    raise ValueError(
                        f"hub {hub.id!r} serves unknown area {area!r} (areas: {sorted(self.areas)})"
                    )
                if area in hub_by_area:
                    raise ValueError(
                        f"area {area!r} is served by two hubs: {hub_by_area[area]!r} and {hub.id!r}"
                    )
                hub_by_area[area] = hub.id
        unserved = sorted(set(self.areas) - set(hub_by_area))
        if unserved:
            raise ValueError(f"area(s) {unserved} are served by no hub")

        self._hub_by_id = hub_by_id
        self._area_by_district = area_by_district
        self._hub_by_area = hub_by_area
        return self

    @property
    def hub_ids(self) -> tuple[str, ...]:
        """Hub ids in file order."""
        return tuple(hub.id for hub in self.hubs)

    def hub(self, hub_id: str) -> Hub:
        """The hub with this id; KeyError naming the known hubs if there is none."""
        try:
            return self._hub_by_id[hub_id]
        except KeyError:
            raise KeyError(f"no hub {hub_id!r} in topology {self.name!r}: {self.hub_ids}") from None

    def resolve(self, postcode: str | None, *, no_fixed_abode: bool = False) -> HubResolution:
        """The hub for a child's postcode. Never raises: bad input goes to the default hub.

        Known district -> its area's hub. Well-formed postcode in a district outside the
        table (e.g. B90 Solihull) -> default hub, ``out_of_area``. No postcode, no fixed
        abode or an unreadable postcode -> default hub, ``unresolved``.
        """
        district = None if no_fixed_abode or postcode is None else postcode_district(postcode)
        if district is None:
            return HubResolution(
                hub=self.default_hub, area=None, district=None, out_of_area=False, unresolved=True
            )
        area = self._area_by_district.get(district)
        if area is None:
            return HubResolution(
                hub=self.default_hub,
                area=None,
                district=district,
                out_of_area=True,
                unresolved=False,
            )
        return HubResolution(
            hub=self._hub_by_area[area],
            area=area,
            district=district,
            out_of_area=False,
            unresolved=False,
        )


def load_topology(name_or_path: str) -> Topology:
    """Load and check a topology: a shipped name (``two-hubs``) or a path to a YAML file.

    Raises TopologyError with a one-line message naming the file and the problem.
    """
    return load_yaml_model(
        name_or_path, Topology, TopologyError, what="topology", shipped_in=TOPOLOGIES_DIR
    )
