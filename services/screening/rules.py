"""The threshold rules: the level table and what each word of a rule means.

Where is the S47 rule? The rules themselves are data, so practitioners can read and change
them: ``rulesets/default-v3.yaml`` (the set screening applies; its level-4 rules, R4-*, are
the s47 ones), documented at its top. This module is what each condition word in that file
*means* (:data:`WORDS`: ``any_factor``, ``count_at_least``, ``sibling_level_at_least``, ...),
what a rule is (:class:`Rule`) and the fixed parts of the level table. The facts a condition
looks at are :mod:`services.screening.facts`; the file is read by
:mod:`services.screening.ruleset`; a contact is decided by :mod:`services.screening.engine`.

Pure: no I/O, no Faust, no clock reads. A word's reader checks its value as it reads it and
raises ``ValueError`` with the place and the problem; the rule-set loader names the file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, get_args

from schemas.base import FactorCode, Rag, ReferralSource
from schemas.events import ContactChild
from schemas.inbound import CaseType, DashRisk, Disclosure, IncidentType
from services.screening.facts import COUNTS, V1_COUNT_NAMES, Facts

__all__ = [
    "JOINT_SCREENING_AGENCIES",
    "LEVEL_OUTCOMES",
    "RAGS",
    "TARGET_AGENCIES",
    "WORDS",
    "AgencyByAge",
    "Condition",
    "LevelSpec",
    "Rule",
    "Where",
    "listing",
    "parse_condition",
    "present_or_resident",
    "read_age",
    "read_flag",
]

#: The outcome of each threshold level (docs/domain.md); a level's name and RAG are data.
LEVEL_OUTCOMES: Mapping[int, str] = {
    1: "no_further_action",
    2: "single_agency",
    3: "initial_assessment",
    4: "s47",
}
#: Agencies that screen police domestic-abuse notifications jointly (docs/domain.md).
JOINT_SCREENING_AGENCIES: tuple[str, ...] = ("police", "childrens_social_care", "health")
#: Single agencies a level-2 rule may send a contact to (docs/domain.md threshold table).
TARGET_AGENCIES: frozenset[str] = frozenset(
    {"early_help", "education", "health", "housing", "police"}
)

FACTOR_CODES: frozenset[str] = frozenset(get_args(FactorCode))
REFERRAL_SOURCES: frozenset[str] = frozenset(get_args(ReferralSource))
INCIDENT_TYPES: frozenset[str] = frozenset(get_args(IncidentType))
DASH_RISKS: frozenset[str] = frozenset(get_args(DashRisk))
DISCLOSURES: frozenset[str] = frozenset(get_args(Disclosure)) - {"none"}
INDICATORS: frozenset[str] = frozenset({"immediate_danger", "injury_observed", "forced_marriage"})
CASE_TYPES: frozenset[str] = frozenset(get_args(CaseType))
RAGS: frozenset[str] = frozenset(get_args(Rag))


#: A rule's condition: does it hold for this child of the contact?
Condition = Callable[[Facts], bool]


# --- A rule -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LevelSpec:
    """One row of the level table."""

    level: int
    name: str
    outcome: str
    rag: str


@dataclass(frozen=True)
class AgencyByAge:
    """One row of a ``target_agency_by_age`` table; ``age_under`` None matches anyone."""

    agency: str
    age_under: int | None

    def fits(self, age: int | None) -> bool:
        """Whether a child of ``age`` (None: unknown) is sent to this row's agency."""
        return self.age_under is None or (age is not None and age < self.age_under)


@dataclass(frozen=True)
class Rule:
    """One threshold rule as read from the file."""

    id: str
    level: int
    outcome: str
    reason: str
    target_agency: str | None = None
    target_agency_by_age: tuple[AgencyByAge, ...] = ()
    marac_referral: bool = False
    """The rule is a MARAC referral criterion (the contact is referred when it fires)."""
    condition: Condition = field(default=lambda _f: False, compare=False, repr=False)

    def target_for(self, fired: Sequence[Facts]) -> str | None:
        """The agency for the children this rule fired for (level 2 only)."""
        if self.target_agency is not None:
            return self.target_agency
        for row in self.target_agency_by_age:
            if any(row.fits(f.age) for f in fired):
                return row.agency
        return None


# --- Conditions: the vocabulary ---------------------------------------------------------


class Where:
    """Where in the file a condition is being read (``rule R4-SEX``, ``concern neglect``),
    so a problem is one line naming the place; the loader adds the file."""

    def __init__(self, what: str, concerns: Mapping[str, Condition] | None) -> None:
        self.what = what
        self.concerns = concerns  # None while the concerns themselves are being read

    def error(self, problem: str) -> ValueError:
        """The problem, at this place."""
        return ValueError(f"{self.what}: {problem}")


def _codes(value: Any, allowed: frozenset[str], word: str, where: Where) -> frozenset[str]:
    # A scalar is a one-item list; bare YAML numbers (20, 4) are read as the codes "20", "4".
    items = value if isinstance(value, list) else [value]
    out: set[str] = set()
    for item in items:
        code = str(item) if isinstance(item, int) and not isinstance(item, bool) else item
        if not isinstance(code, str) or code not in allowed:
            raise where.error(f"{word}: unknown value {item!r} (allowed: {listing(allowed)})")
        out.add(code)
    if not out:
        raise where.error(f"{word}: give at least one value")
    return frozenset(out)


def listing(values: frozenset[str]) -> str:
    """The allowed values, shortest first, for a message that says what the file may use."""
    return ", ".join(sorted(values, key=lambda v: (len(v), v)))


def read_flag(value: Any, word: str, where: Where) -> bool:
    """``value`` as true or false; YAML's yes/no words are already booleans, anything else
    is refused rather than guessed."""
    if not isinstance(value, bool):
        raise where.error(f"{word}: expected true or false, got {value!r}")
    return value


def read_age(value: Any, word: str, where: Where) -> int:
    """``value`` as an age in whole years, 0 to 25; anything else is refused."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 25:
        raise where.error(f"{word}: expected an age in whole years (0-25), got {value!r}")
    return value


def _any_factor(value: Any, where: Where) -> Condition:
    wanted = _codes(value, FACTOR_CODES, "any_factor", where)
    return lambda f: bool(f.factors & wanted)


def _only_factors_in(value: Any, where: Where) -> Condition:
    allowed = _codes(value, FACTOR_CODES, "only_factors_in", where)
    return lambda f: f.factors <= allowed


def _incident_type(value: Any, where: Where) -> Condition:
    wanted = _codes(value, INCIDENT_TYPES, "incident_type", where)
    return lambda f: f.contact.incident_type in wanted


def _disclosure(value: Any, where: Where) -> Condition:
    wanted = _codes(value, DISCLOSURES, "disclosure", where)
    return lambda f: f.indicators is not None and f.indicators.disclosure in wanted


def _indicator(value: Any, where: Where) -> Condition:
    names = _codes(value, INDICATORS, "indicator", where)
    return lambda f: f.indicators is not None and any(getattr(f.indicators, name) for name in names)


def _dash_risk(value: Any, where: Where) -> Condition:
    wanted = _codes(value, DASH_RISKS, "dash_risk", where)
    return lambda f: f.contact.dash_risk in wanted


def _crime_reference(value: Any, where: Where) -> Condition:
    wanted = read_flag(value, "crime_reference", where)
    return lambda f: f.contact.crime_reference_present is wanted


def _referral_source(value: Any, where: Where) -> Condition:
    wanted = _codes(value, REFERRAL_SOURCES, "referral_source", where)
    return lambda f: f.contact.source.referral_source in wanted


def _re_referral(value: Any, where: Where) -> Condition:
    wanted = read_flag(value, "re_referral", where)
    return lambda f: f.contact.re_referral is wanted


def _child_age_under(value: Any, where: Where) -> Condition:
    limit = read_age(value, "child_age_under", where)
    return lambda f: f.age is not None and f.age < limit


def _child_age_at_least(value: Any, where: Where) -> Condition:
    limit = read_age(value, "child_age_at_least", where)
    return lambda f: f.age is not None and f.age >= limit


def _council_case(value: Any, where: Where) -> Condition:
    wanted = _codes(value, CASE_TYPES, "council_case", where)
    return lambda f: not wanted.isdisjoint(f.child.council_cases)


def present_or_resident(child: ContactChild) -> bool:
    """Police: the child was present or lives there. Referral children have neither flag
    (both None) and count as resident: they are the subjects of the referral."""
    if child.present_at_incident is None and child.resident is None:
        return True
    return bool(child.present_at_incident) or bool(child.resident)


def _child_present_or_resident(value: Any, where: Where) -> Condition:
    wanted = read_flag(value, "child_present_or_resident", where)
    return lambda f: present_or_resident(f.child) is wanted


def _count_at_least(value: Any, where: Where) -> Condition:
    if not isinstance(value, dict) or len(value) != 1:
        raise where.error(
            "count_at_least: expected one count and its minimum, e.g. {missing_episodes: 3}"
        )
    [(name, minimum)] = value.items()
    if name not in COUNTS and name not in V1_COUNT_NAMES:
        raise where.error(f"count_at_least: unknown count {name!r} (known: {', '.join(COUNTS)})")
    if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 1:
        raise where.error(f"count_at_least: {name} needs a whole number of 1 or more")
    return lambda f: f.count(name) >= minimum


def _sibling_level_at_least(value: Any, where: Where) -> Condition:
    if isinstance(value, bool) or not isinstance(value, int) or not 2 <= value <= 4:
        raise where.error(f"sibling_level_at_least: expected a level 2, 3 or 4, got {value!r}")
    return lambda f: f.sibling_level >= value


def _concern(value: Any, where: Where) -> Condition:
    if where.concerns is None:
        raise where.error("a concern cannot use another concern")
    if not isinstance(value, str) or value not in where.concerns:
        known = ", ".join(sorted(where.concerns)) or "none defined"
        raise where.error(f"concern: unknown concern {value!r} (known: {known})")
    return where.concerns[value]


def _all(value: Any, where: Where) -> Condition:
    parts = _condition_list(value, "all", where)
    return lambda f: all(part(f) for part in parts)


def _any(value: Any, where: Where) -> Condition:
    parts = _condition_list(value, "any", where)
    return lambda f: any(part(f) for part in parts)


def _not(value: Any, where: Where) -> Condition:
    inner = parse_condition(value, where)
    return lambda f: not inner(f)


def _condition_list(value: Any, word: str, where: Where) -> tuple[Condition, ...]:
    if not isinstance(value, list) or not value:
        raise where.error(f"{word}: expected a non-empty list of conditions")
    return tuple(parse_condition(item, where) for item in value)


#: Condition word -> reader. The meaning of every word in the rule file lives here.
WORDS: Mapping[str, Callable[[Any, Where], Condition]] = {
    "any_factor": _any_factor,
    "only_factors_in": _only_factors_in,
    "incident_type": _incident_type,
    "disclosure": _disclosure,
    "indicator": _indicator,
    "dash_risk": _dash_risk,
    "crime_reference": _crime_reference,
    "referral_source": _referral_source,
    "re_referral": _re_referral,
    "child_age_under": _child_age_under,
    "child_age_at_least": _child_age_at_least,
    "child_present_or_resident": _child_present_or_resident,
    "council_case": _council_case,
    "count_at_least": _count_at_least,
    "sibling_level_at_least": _sibling_level_at_least,
    "concern": _concern,
    "all": _all,
    "any": _any,
    "not": _not,
}


def parse_condition(node: Any, where: Where) -> Condition:
    """Read one condition (a mapping of words; several words must all hold)."""
    if not isinstance(node, dict) or not node:
        raise where.error(
            "a condition must be a mapping of condition words, e.g. {any_factor: [16A]}"
        )
    parts: list[Condition] = []
    for word, value in node.items():
        reader = WORDS.get(word)
        if reader is None:
            raise where.error(f"unknown condition word {word!r}")
        parts.append(reader(value, where))
    if len(parts) == 1:
        return parts[0]
    return lambda f: all(part(f) for part in parts)
