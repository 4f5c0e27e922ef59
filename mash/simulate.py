"""``mash simulate``: realistic synthetic MASH traffic, seeded and reproducible.

:func:`generate` is pure: a seed, a request (start, length, count, bad-message rate), the
calibration (``simulation.yaml``) and the hub topology in; a list of Kafka records out.
Same inputs, byte-identical records: nothing reads the clock or the environment.

What it makes:

- households (one to four children, some unborn) at addresses spread over the topology's
  postcode districts, a few out of area (B90, B43) or of no fixed abode;
- police notifications (mostly domestic abuse, DASH mostly standard) and referrals from
  the census sources, valid against the contract (``schemas``), binary or structured mode;
- repeat contacts about children already seen in the period (repeat incidents build up in
  a household over simulated time);
- bad messages at a configured rate, each built to be dead-lettered for one reason.

People are obviously fictional: given names from a fixed list ("Testchild", "Sampleboy"),
family names "Example-...", NHS numbers from the 999 test range with valid check digits,
phone numbers in Ofcom's drama range, e-mail addresses under ``.example``.
"""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mash.errors import UsageError
from mash.jsonl import ReplayRecord
from mash.stdio import is_stdio
from schemas.base import ContractModel, nhs_check_digit
from schemas.cloudevents import encode_binary, encode_structured
from schemas.inbound import PoliceNotification, Referral
from schemas.types import ce_type_of
from services.common.ids import derive_id
from services.common.topics import INBOUND_POLICE, INBOUND_REFERRALS
from services.common.topology import Topology

#: The shipped calibration.
DEFAULT_CALIBRATION = Path(__file__).with_name("simulation.yaml")

#: What ``mash simulate --help`` says the simulator assumes: the shipped calibration's
#: figures (tests/unit/mash/test_simulate.py checks them against ``simulation.yaml``) and
#: what the generator below does with them.
ASSUMPTIONS = """\
assumptions (the shipped calibration's figures; --calibration changes them):
  traffic    about 1,000 contacts a week city-wide (--count, --weeks), over every day of
             the period: 45% police notifications (55% of them domestic abuse), the rest
             referrals from the census sources. Nothing else: no practitioner decisions,
             queue updates, council case status or partner responses.
  grades     domestic abuse DASH standard 62%, medium 10%, high 28% (PPN grade low,
             medium, high to match); other police notifications low 50%, medium 35%,
             high 15%.
  children   households of 1-4 children (50/30/13/7%), unborn to 17. Domestic abuse
             names every child of the household; other contacts one child, with its
             siblings 25% of the time (referrals) or 30% (police neglect and abuse).
  repeats    20% of contacts are about a household already contacted in the period (no
             history before it); a police repeat after domestic abuse is domestic abuse
             again at least 60% of the time, so incidents build up.
  times      police at any hour, busiest in the evening, 0.5-18 hours after the
             incident; referrals 85% in office hours (Mon-Fri 08:00-18:00).
  places     the topology's areas (South 28%), 3% out of area (B90, B43), 1% of no
             fixed abode.
  rates      1% bad messages on top (--bad-rate), each built for one dead-letter
             reason; 10% structured mode; --rate caps messages a second (default none).
Calibration: mash/simulation.yaml. Volume, repeats and the South's share are
docs/domain.md's "Figures from the source review" (Birmingham 2012-13; volume and repeats
2022); children's presence at domestic abuse is tuned so screening lands near its split
(about 30% no further action, 40% single agency, 7-13% initial assessment, 24-27% s47);
the rest are guesses, marked as such in the file.
Synthetic people only: fictional names ("Testchild Example-Oak"), NHS numbers from the
999 test range, Ofcom drama-range phone numbers, .example e-mail addresses and a fixed
narrative; nothing is read from a real system.
"""

#: Where a simulation starts unless told (a Monday); fixed so output never depends on today.
DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC)

K = TypeVar("K")

Probability = float
Weights = dict[str, float]

# --- calibration (simulation.yaml) -----------------------------------------------------


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
    """Read a calibration file (default: the shipped one; ``-``: stdin); UsageError on a
    bad file."""
    path = path or DEFAULT_CALIBRATION
    try:
        raw = yaml.safe_load(sys.stdin if is_stdio(path) else path.read_text(encoding="utf-8"))
        return Calibration.model_validate(raw)
    except OSError as exc:
        raise UsageError(f"cannot read calibration {path} ({exc.strerror})") from None
    except yaml.YAMLError:
        raise UsageError(f"calibration {path} is not valid YAML") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(f"calibration {path}: {where}: {first['msg']}") from None


# --- fictional people ------------------------------------------------------------------

GIVEN_NAMES = {
    "female": ("Testchild", "Samplegirl", "Testina", "Examplina", "Fictiona", "Dummina"),
    "male": ("Sampleboy", "Testboy", "Exampleson", "Fictio", "Dummyson", "Mockington"),
    "other": ("Testchild", "Sampleperson"),
    "unknown": ("Testchild", "Sampleperson"),
}
ADULT_NAMES = ("Testadult", "Sampleparent", "Exampleperson", "Mockadult", "Dummycarer")
FAMILY_WORDS = (
    "Alder", "Ash", "Aspen", "Beech", "Birch", "Bramble", "Cedar", "Clover", "Damson",
    "Elder", "Fir", "Gorse", "Hawthorn", "Hazel", "Heather", "Holly", "Ivy", "Juniper",
    "Larch", "Linden", "Maple", "Oak", "Pine", "Poplar", "Rowan", "Spruce", "Sycamore",
    "Walnut", "Willow", "Yew",
)  # fmt: skip
STREETS = ("Example Street", "Sample Road", "Test Lane", "Example Close", "Sample Avenue",
           "Fiction Grove", "Example Way", "Test Crescent")  # fmt: skip
_INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
NARRATIVE = "Synthetic narrative (mash simulate). No real person is described."

#: Referrer per census source: agency id prefix, organisation, role. Police ("6") send
#: notifications, not referrals. Members of the public share the agency id "public".
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
PUBLIC_SOURCES = frozenset({"1A", "1B", "1C", "1D", "9"})
#: Incident types about one (usually older) child rather than the whole household.
SINGLE_CHILD_INCIDENTS = frozenset(
    {
        "missing_child",
        "child_sexual_exploitation",
        "child_criminal_exploitation",
        "online_harm",
        "child_coming_to_notice",
    }
)
TEEN_CONCERNS = frozenset(
    {"missing", "sexual_exploitation", "criminal_exploitation", "self_harm", "behaviour"}
)


# --- the request and the output --------------------------------------------------------


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


# --- households --------------------------------------------------------------------------


@dataclass
class SimChild:
    """A fictional child; stable across the contacts about them."""

    ref: str
    given_name: str | None
    family_name: str
    date_of_birth: date | None
    expected_date_of_birth: date | None
    gender: str
    nhs_number: str
    school_urn: str | None
    contacted: bool = False


@dataclass
class Household:
    """A fictional family at one address (or of no fixed abode)."""

    index: int
    family_name: str
    line1: str | None
    postcode: str | None
    children: list[SimChild]
    adults: list[tuple[str, date]]
    last_kind: str | None = None
    """The last contact's kind: "police:<incident type>" or "referral"."""

    @property
    def no_fixed_abode(self) -> bool:
        """No address at all."""
        return self.postcode is None


def _pick(rng: random.Random, weights: Mapping[K, float]) -> K:
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


class _World:
    """Households and fictional identities, drawn from one random stream."""

    def __init__(
        self, rng: random.Random, calibration: Calibration, topology: Topology, start: datetime
    ) -> None:
        self.rng = rng
        self.cal = calibration
        self.start = start.date()
        self.households: list[Household] = []
        self.contacted: list[Household] = []
        self._nhs_used: set[str] = set()
        weights = calibration.households.areas
        self.area_weights = {a: weights.get(a, 1.0) for a in topology.areas}
        self.districts = {a: list(d) for a, d in topology.areas.items()}

    def nhs_number(self) -> str:
        # The 999 range is never issued to people; 9990000000-9990999999 is left to the
        # fixed examples and the sample so simulated children never collide with them.
        while True:
            first_nine = str(self.rng.randrange(999_100_000, 1_000_000_000))
            check = nhs_check_digit(first_nine)
            number = f"{first_nine}{check}"
            if check is not None and number not in self._nhs_used:
                self._nhs_used.add(number)
                return number

    def address(self) -> tuple[str | None, str | None]:
        shares = self.cal.households
        roll = self.rng.random()
        if roll < shares.no_fixed_abode_share:
            return None, None
        if roll < shares.no_fixed_abode_share + shares.out_of_area_share:
            district = self.rng.choice(shares.out_of_area_districts)
        else:
            district = self.rng.choice(self.districts[_pick(self.rng, self.area_weights)])
        inward = (
            f"{self.rng.randrange(10)}"
            f"{self.rng.choice(_INWARD_LETTERS)}{self.rng.choice(_INWARD_LETTERS)}"
        )
        line1 = f"{self.rng.randrange(1, 200)} {self.rng.choice(STREETS)}"
        return line1, f"{district} {inward}"

    def child(self, household: int, n: int, family: str, age_band: str) -> SimChild:
        rng = self.rng
        unborn = age_band == "unborn"
        gender = "unknown" if unborn else rng.choice(("female", "male", "female", "male", "other"))
        if unborn:
            dob = None
            expected: date | None = self.start + timedelta(days=rng.randrange(20, 200))
        else:
            low, high = {"0": (0, 0), "1-4": (1, 4), "5-10": (5, 10), "11-17": (11, 17)}[age_band]
            years = rng.randint(low, high)
            dob = self.start - timedelta(days=365 * years + rng.randrange(1, 364))
            expected = None
        school_age = dob is not None and (self.start - dob).days >= 4 * 365
        return SimChild(
            ref=f"H{household:05d}-C{n}",
            given_name=None if unborn else rng.choice(GIVEN_NAMES[gender]),
            family_name=family,
            date_of_birth=dob,
            expected_date_of_birth=expected,
            gender=gender,
            nhs_number=self.nhs_number(),
            school_urn=f"999{rng.randrange(100, 400)}" if school_age else None,
        )

    def new_household(self, *, teen: bool = False) -> Household:
        rng = self.rng
        index = len(self.households)
        family = f"Example-{rng.choice(FAMILY_WORDS)}"
        line1, postcode = self.address()
        size = int(_pick(rng, self.cal.households.children))
        bands = [_pick(rng, self.cal.households.ages) for _ in range(size)]
        if teen:
            # The subject of a missing-child or exploitation contact is a teenager.
            bands[0] = "11-17"
        children = [self.child(index, n + 1, family, band) for n, band in enumerate(bands)]
        adult_born = self.start - timedelta(days=365 * rng.randint(19, 50) + rng.randrange(365))
        adults = [(rng.choice(ADULT_NAMES), adult_born)]
        household = Household(index, family, line1, postcode, children, adults)
        self.households.append(household)
        return household


# --- payloads ----------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _child_payload(child: SimChild, household: Household, include_nhs: bool) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "child_ref": child.ref,
        "family_name": child.family_name,
        "gender": child.gender,
    }
    if child.given_name is not None:
        payload["given_name"] = child.given_name
    if child.date_of_birth is not None:
        payload["date_of_birth"] = child.date_of_birth.isoformat()
    else:
        assert child.expected_date_of_birth is not None
        payload["expected_date_of_birth"] = child.expected_date_of_birth.isoformat()
    if include_nhs:
        payload["nhs_number"] = child.nhs_number
    if household.no_fixed_abode:
        payload["no_fixed_abode"] = True
    else:
        payload["address"] = {
            "line1": household.line1,
            "town": "Birmingham",
            "postcode": household.postcode,
        }
    if child.school_urn is not None:
        payload["school_urn"] = child.school_urn
    return payload


def _age_years(child: SimChild, on: date) -> int:
    if child.date_of_birth is None:
        return 0
    return (on - child.date_of_birth).days // 365


@dataclass
class _Slot:
    """One contact before it is written: when, from whom, about which household."""

    index: int
    source: str
    at: datetime
    repeat: bool = False
    household: Household | None = None
    subjects: list[SimChild] = field(default_factory=list)


class _Generator:
    def __init__(
        self, request: SimulationRequest, calibration: Calibration, topology: Topology
    ) -> None:
        self.request = request
        self.cal = calibration
        self.topology = topology
        self.rng = random.Random(request.seed)
        self.world = _World(self.rng, calibration, topology, request.start)
        self.end = request.start + timedelta(weeks=request.weeks)
        self.seed_tag = f"SIM{request.seed}"

    # -- times --

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
        if source == "6":
            return self._moment(hour_weights=self.cal.police.hour_weights, office_hours=False)
        office = self.rng.random() < self.cal.referrals.office_hours_share
        return self._moment(hour_weights=None, office_hours=office)

    # -- contacts --

    def run(self) -> list[SimRecord]:
        count = self.request.count
        if count is None:
            count = round(self.cal.contacts_per_week * self.request.weeks)
        sources = [_pick(self.rng, self.cal.sources) for _ in range(count)]
        slots = [_Slot(i, s, self.slot_time(s)) for i, s in enumerate(sources)]
        slots.sort(key=lambda s: (s.at, s.index))
        records = [self.contact(n, slot) for n, slot in enumerate(slots)]
        bad_rate = self.cal.bad_messages.rate
        if self.request.bad_rate is not None:
            bad_rate = self.request.bad_rate
        records += [self.bad(n) for n in range(round(count * bad_rate))]
        records.sort(key=lambda r: (r.record.timestamp or 0, r.record.key or b""))
        return records

    def contact(self, n: int, slot: _Slot) -> SimRecord:
        rng = self.rng
        world = self.world
        if world.contacted and rng.random() < self.cal.repeats.share:
            slot.repeat = True
            slot.household = rng.choice(world.contacted)
        if slot.source == "6":
            return self.police(n, slot)
        return self.referral(n, slot)

    def _remember(self, household: Household, subjects: Sequence[SimChild], kind: str) -> None:
        if household.last_kind is None:
            self.world.contacted.append(household)
        household.last_kind = kind
        for child in subjects:
            child.contacted = True

    def _hub(self, household: Household) -> tuple[str, bool]:
        resolved = self.topology.resolve(
            household.postcode, no_fixed_abode=household.no_fixed_abode
        )
        return resolved.hub, resolved.out_of_area

    def police(self, n: int, slot: _Slot) -> SimRecord:
        rng = self.rng
        cal = self.cal.police
        household = slot.household
        if (
            household is not None
            and household.last_kind == "police:domestic_abuse"
            and (rng.random() < self.cal.repeats.same_kind_chance)
        ):
            incident = "domestic_abuse"
        else:
            incident = _pick(rng, cal.incident_types)
        single = incident in SINGLE_CHILD_INCIDENTS
        if household is None:
            household = self.world.new_household(teen=single)
        reported = slot.at
        low, high = cal.report_delay_hours
        occurred = reported - timedelta(seconds=int(rng.uniform(low, high) * 3600))
        dash: str | None = None
        if incident == "domestic_abuse":
            dash = _pick(rng, cal.dash_risk)
            grade = {"standard": "low", "medium": "medium", "high": "high"}[dash]
            with_children = rng.random() < cal.child_present_or_resident.get(dash, 0.7)
            subjects = list(household.children)
        else:
            grade = _pick(rng, cal.ppn_grade)
            with_children = True
            subjects = self._subjects_single(household, slot.repeat)
            if not single and rng.random() < cal.siblings_included_chance:
                subjects += [c for c in household.children if c not in subjects]
        if slot.repeat and not any(c.contacted for c in subjects):
            subjects.append(next(c for c in household.children if c.contacted))
        children = []
        for child in subjects:
            payload = _child_payload(child, household, rng.random() < cal.nhs_number_chance)
            present = with_children and rng.random() < 0.7
            payload["present_at_incident"] = present
            payload["resident"] = with_children
            children.append(payload)
        factors = list(cal.factors[incident])
        for code, chance in cal.extra_factors.items():
            if rng.random() < chance and code not in factors and "21" not in factors:
                factors.append(code)
        crime_chance = cal.crime_reference.get(incident, cal.crime_reference["default"])
        notification_id = f"{self.seed_tag}-WM-{n:06d}"
        location = household.postcode or self._any_postcode()
        data: dict[str, Any] = {
            "notification_id": notification_id,
            "force": cal.force,
            "incident_type": incident,
            "occurred_at": _iso(occurred),
            "reported_at": _iso(reported),
            "location_postcode": location,
            "ppn_grade": grade,
            "children": children,
            "adults": [
                {
                    "role": "victim" if incident == "domestic_abuse" else "parent",
                    "given_name": household.adults[0][0],
                    "family_name": household.family_name,
                    "date_of_birth": household.adults[0][1].isoformat(),
                }
            ],
            "factors": factors,
            "officer": {
                "collar_number": f"SIM{rng.randrange(1000, 10000)}",
                "unit": "Example Public Protection Unit",
                "phone": f"0121 496 0{rng.randrange(100, 1000)}",
            },
            "narrative": NARRATIVE,
            "restricted": rng.random() < cal.restricted_chance,
        }
        if rng.random() < crime_chance:
            data["crime_reference"] = f"CRIME-{self.seed_tag}-{n:06d}"
        if dash is not None:
            data["dash_risk"] = dash
            data["dash_score"] = {
                "standard": rng.randrange(0, 10),
                "medium": rng.randrange(10, 14),
                "high": rng.randrange(14, 24),
            }[dash]
            data["adults"].append(
                {
                    "role": "suspect",
                    "given_name": "Testsuspect",
                    "family_name": f"Example-{rng.choice(FAMILY_WORDS)}",
                }
            )
        model = PoliceNotification.model_validate(data)
        self._remember(household, subjects, f"police:{incident}")
        hub, out_of_area = self._hub(household)
        return SimRecord(
            record=self._encode(
                INBOUND_POLICE, notification_id, model, cal.system, reported, ("contact", n)
            ),
            kind="police",
            source="6",
            incident_type=incident,
            dash_risk=dash,
            repeat=slot.repeat,
            children=len(children),
            hub=hub,
            out_of_area=out_of_area,
            no_fixed_abode=household.no_fixed_abode,
        )

    def _subjects_single(self, household: Household, repeat: bool) -> list[SimChild]:
        candidates = [c for c in household.children if c.contacted] if repeat else []
        if not candidates:
            born = [c for c in household.children if c.date_of_birth is not None]
            candidates = sorted(
                born or household.children, key=lambda c: c.date_of_birth or date.max
            )[:1]
        return [self.rng.choice(candidates)]

    def _any_postcode(self) -> str:
        _, postcode = self.world.address()
        while postcode is None:
            _, postcode = self.world.address()
        return postcode

    def _concern(self, source: str) -> tuple[str, Concern]:
        concerns = self.cal.referrals.concerns
        bias = self.cal.referrals.source_bias.get(source, {})
        weights = {name: c.weight * bias.get(name, 1.0) for name, c in concerns.items()}
        name = _pick(self.rng, weights)
        return name, concerns[name]

    def referral(self, n: int, slot: _Slot) -> SimRecord:
        rng = self.rng
        cal = self.cal.referrals
        name, concern = self._concern(slot.source)
        household = slot.household
        if household is None:
            household = self.world.new_household(teen=name in TEEN_CONCERNS)
            first = household.children[0]
        else:
            first = rng.choice([c for c in household.children if c.contacted])
        subjects = [first]
        if rng.random() < cal.siblings_included_chance:
            subjects += [c for c in household.children if c is not first]
        factors = list(concern.factors)
        if rng.random() < cal.extra_factor_chance and factors != ["21"]:
            _, extra = self._concern(slot.source)
            factors += [f for f in extra.factors if f not in factors and f != "21"]
        indicators: dict[str, Any] = {
            "immediate_danger": rng.random() < cal.immediate_danger_chance,
            "injury_observed": rng.random() < concern.injury_chance,
            "disclosure": concern.disclosure,
            "forced_marriage": concern.forced_marriage,
            "missing_episodes_90d": (
                rng.randint(*concern.missing_episodes) if concern.missing_episodes else 0
            ),
        }
        if rng.random() < cal.consent_obtained_chance:
            consent: dict[str, Any] = {"obtained": True}
        else:
            consent = {
                "obtained": False,
                "override_reason": _pick(rng, cal.consent_override_reasons),
            }
        prefix, organisation, role = REFERRERS[slot.source]
        if slot.source in PUBLIC_SOURCES:
            agency = "public"
        elif slot.source == "2A" and first.school_urn is not None:
            agency = f"school-{first.school_urn}"
        else:
            agency = f"{prefix}-{rng.randrange(1, 40):02d}"
        referral_id = f"{self.seed_tag}-REF-{n:06d}"
        data = {
            "referral_id": referral_id,
            "received_at": _iso(slot.at),
            "referral_source": slot.source,
            "referrer": {
                "agency_id": agency,
                "organisation": organisation,
                "name": "Testreferrer Example-Sender",
                "role": role,
                "email": f"referrals@{agency}.example",
                "phone": f"0121 496 0{rng.randrange(100, 1000)}",
            },
            "children": [
                _child_payload(c, household, rng.random() < cal.nhs_number_chance) for c in subjects
            ],
            "factors": factors,
            "indicators": indicators,
            "consent": consent,
            "narrative": NARRATIVE,
        }
        model = Referral.model_validate(data)
        self._remember(household, subjects, "referral")
        hub, out_of_area = self._hub(household)
        return SimRecord(
            record=self._encode(
                INBOUND_REFERRALS, referral_id, model, cal.system, slot.at, ("contact", n)
            ),
            kind="referral",
            source=slot.source,
            repeat=slot.repeat,
            children=len(subjects),
            hub=hub,
            out_of_area=out_of_area,
            no_fixed_abode=household.no_fixed_abode,
        )

    def _encode(
        self,
        topic: str,
        key: str,
        model: ContractModel,
        system: str,
        at: datetime,
        id_parts: tuple[str | int, ...],
    ) -> ReplayRecord:
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

    # -- bad messages --

    def bad(self, n: int) -> SimRecord:
        rng = self.rng
        reason = _pick(rng, self.cal.bad_messages.weights)
        police = rng.random() < 0.5
        at = self.slot_time("6" if police else "2A")
        topic = INBOUND_POLICE if police else INBOUND_REFERRALS
        key = f"{self.seed_tag}-BAD-{n:05d}"
        household = self.world.new_household()
        child = _child_payload(household.children[0], household, True)
        if police:
            data: dict[str, Any] = {
                "notification_id": key,
                "force": self.cal.police.force,
                "incident_type": "domestic_abuse",
                "occurred_at": _iso(at - timedelta(hours=2)),
                "reported_at": _iso(at),
                "location_postcode": household.postcode or "B6 4AA",
                "ppn_grade": "low",
                "dash_risk": "standard",
                "children": [{**child, "present_at_incident": True, "resident": True}],
                "factors": ["3B"],
                "officer": {
                    "collar_number": "SIM0000",
                    "unit": "Example Public Protection Unit",
                    "phone": "0121 496 0999",
                },
                "narrative": NARRATIVE,
            }
            system = self.cal.police.system
            model: type[ContractModel] = PoliceNotification
        else:
            data = {
                "referral_id": key,
                "received_at": _iso(at),
                "referral_source": "2A",
                "referrer": {
                    "agency_id": "school-999100",
                    "organisation": "Example School",
                    "name": "Testreferrer Example-Sender",
                    "role": "Designated safeguarding lead",
                    "email": "dsl@school-999100.example",
                    "phone": "0121 496 0998",
                },
                "children": [child],
                "factors": ["16A"],
                "consent": {"obtained": True},
                "narrative": NARRATIVE,
            }
            system = self.cal.referrals.system
            model = Referral
        ce_type = ce_type_of(model)
        if reason == "schema_violation":
            data = self._break_schema(data, police)
        elif reason == "too_large":
            data["narrative"] = "Synthetic padding. " * 16_000  # ~300 KiB: over the 256 KiB limit
        value = json.dumps(data).encode()
        headers: list[tuple[str, bytes | None]] = [
            ("ce_specversion", b"1.0"),
            ("ce_id", derive_id("simulate", self.request.seed, "bad", n).encode()),
            ("ce_source", system.encode()),
            ("ce_type", ce_type.encode()),
            ("ce_time", _iso(at).encode()),
            ("content-type", b"application/json"),
        ]
        if reason == "malformed_json":
            value = value[: rng.randrange(1, len(value) - 1)]
        elif reason == "missing_header":
            dropped = rng.choice(("ce_id", "ce_type", "ce_source"))
            headers = [h for h in headers if h[0] != dropped]
        elif reason == "unknown_type":
            headers[3] = ("ce_type", b"uk.gov.mash.parking-fine.v1")
        elif reason == "unsupported_version":
            headers[3] = ("ce_type", ce_type.removesuffix(".v1").encode() + b".v2")
        return SimRecord(
            record=ReplayRecord(
                topic=topic,
                key=key.encode(),
                value=value,
                headers=tuple(headers),
                timestamp=int(at.timestamp() * 1000),
            ),
            kind="bad",
            source="6" if police else "2A",
            intended_reason=reason,
        )

    def _break_schema(self, data: dict[str, Any], police: bool) -> dict[str, Any]:
        rng = self.rng
        broken = dict(data)
        how = rng.randrange(4)
        if how == 0:  # an NHS number with a wrong check digit
            child = dict(broken["children"][0])
            number = child["nhs_number"]
            child["nhs_number"] = number[:9] + str((int(number[9]) + 1) % 10)
            broken["children"] = [child]
        elif how == 1:  # a field the contract does not know
            broken["favourite_colour"] = "green"
        elif how == 2:  # no children at all
            broken["children"] = []
        elif police:  # domestic abuse without a DASH risk
            del broken["dash_risk"]
        else:  # no factors on a referral
            broken["factors"] = []
        return broken


def generate(
    request: SimulationRequest, calibration: Calibration, topology: Topology
) -> list[SimRecord]:
    """The simulated messages, in order of their (simulated) receive time.

    Pure: the same request, calibration and topology always give byte-identical records.
    """
    return _Generator(request, calibration, topology).run()


# --- summary -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """Counts of a simulation, for the report a developer reads after a run."""

    contacts: int
    police: int
    referrals: int
    repeats: int
    children: int
    by_source: Counter[str]
    by_incident_type: Counter[str]
    by_dash_risk: Counter[str]
    by_hub: Counter[str]
    out_of_area: int
    no_fixed_abode: int
    bad_by_reason: Counter[str]

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (counters sorted by count, largest first)."""
        return {
            "contacts": self.contacts,
            "police": self.police,
            "referrals": self.referrals,
            "repeats": self.repeats,
            "children": self.children,
            "by_source": dict(self.by_source.most_common()),
            "by_incident_type": dict(self.by_incident_type.most_common()),
            "by_dash_risk": dict(self.by_dash_risk.most_common()),
            "by_hub": dict(self.by_hub.most_common()),
            "out_of_area": self.out_of_area,
            "no_fixed_abode": self.no_fixed_abode,
            "bad_by_reason": dict(self.bad_by_reason.most_common()),
        }


def summarise(records: Sequence[SimRecord]) -> Summary:
    """Count what :func:`generate` made."""
    contacts = [r for r in records if r.kind != "bad"]
    return Summary(
        contacts=len(contacts),
        police=sum(r.kind == "police" for r in contacts),
        referrals=sum(r.kind == "referral" for r in contacts),
        repeats=sum(r.repeat for r in contacts),
        children=sum(r.children for r in contacts),
        by_source=Counter(r.source for r in contacts),
        by_incident_type=Counter(r.incident_type for r in contacts if r.incident_type),
        by_dash_risk=Counter(r.dash_risk for r in contacts if r.dash_risk),
        by_hub=Counter(r.hub for r in contacts if r.hub),
        out_of_area=sum(r.out_of_area for r in contacts),
        no_fixed_abode=sum(r.no_fixed_abode for r in contacts),
        bad_by_reason=Counter(r.intended_reason for r in records if r.intended_reason),
    )
