"""Fictional people: households of children and a carer at fictional addresses, drawn
from the simulation's one random stream, and a child as a contact names them.

Obviously fictional by construction, so no output can be mistaken for a real person: given
names from a fixed list ("Testchild", "Sampleboy"), family names "Example-...", NHS numbers
from the 999 test range with valid check digits, streets like "Example Street".
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from mash.simulation.calibration import Calibration, pick
from schemas.base import nhs_check_digit
from services.common.topology import Topology

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
#: What every simulated contact says happened: nothing real is ever described.
NARRATIVE = "Synthetic narrative (mash simulate). No real person is described."


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


class World:
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
        """A valid NHS number no other simulated child has, so repeats are recognisable."""
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
        """First line and postcode, (None, None) of no fixed abode: mostly in the topology's
        districts, by the calibration's area weights, a share out of area."""
        shares = self.cal.households
        roll = self.rng.random()
        if roll < shares.no_fixed_abode_share:
            return None, None
        if roll < shares.no_fixed_abode_share + shares.out_of_area_share:
            district = self.rng.choice(shares.out_of_area_districts)
        else:
            district = self.rng.choice(self.districts[pick(self.rng, self.area_weights)])
        inward = (
            f"{self.rng.randrange(10)}"
            f"{self.rng.choice(_INWARD_LETTERS)}{self.rng.choice(_INWARD_LETTERS)}"
        )
        line1 = f"{self.rng.randrange(1, 200)} {self.rng.choice(STREETS)}"
        return line1, f"{district} {inward}"

    def child(self, household: int, n: int, family: str, age_band: str) -> SimChild:
        """Child ``n`` of household ``household`` in ``age_band`` ("unborn": an expected
        date of birth instead); a school URN from school age."""
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
        """A new family with its children and one carer (``teen``: the first child is
        11-17, the subject of a missing-child or exploitation contact)."""
        rng = self.rng
        index = len(self.households)
        family = f"Example-{rng.choice(FAMILY_WORDS)}"
        line1, postcode = self.address()
        size = int(pick(rng, self.cal.households.children))
        bands = [pick(rng, self.cal.households.ages) for _ in range(size)]
        if teen:
            # The subject of a missing-child or exploitation contact is a teenager.
            bands[0] = "11-17"
        children = [self.child(index, n + 1, family, band) for n, band in enumerate(bands)]
        adult_born = self.start - timedelta(days=365 * rng.randint(19, 50) + rng.randrange(365))
        adults = [(rng.choice(ADULT_NAMES), adult_born)]
        household = Household(index, family, line1, postcode, children, adults)
        self.households.append(household)
        return household

    def any_postcode(self) -> str:
        """A postcode for where an incident happened, even when the family has none."""
        _, postcode = self.address()
        while postcode is None:
            _, postcode = self.address()
        return postcode


def child_payload(child: SimChild, household: Household, include_nhs: bool) -> dict[str, Any]:
    """``child`` as a contract payload names them (police and referrals alike), living at
    the household's address; the NHS number only when the sender knows it."""
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
