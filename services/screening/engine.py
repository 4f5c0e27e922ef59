"""The threshold-rule engine: load a rule-set file, evaluate one contact against it.

Pure: the only I/O is reading the rule-set file (once, at start-up); there are no clock
reads — the decision time is passed in. The rules themselves are data
(``rulesets/default-v3.yaml``); what each condition word *means* is the code below, and
the vocabulary is documented at the top of the shipped file.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, get_args

import yaml

from schemas.base import FactorCode, Outcome, Rag, ReferralSource
from schemas.events import Contact, ContactChild, Decision, DecisionSubject, RuleHit
from schemas.inbound import CaseType, DashRisk, Disclosure, IncidentType, Indicators
from services.common import encompass
from services.common.calendar import incident_date
from services.common.ids import derive_id

__all__ = [
    "COUNTS",
    "DEFAULT_RULE_SET",
    "JOINT_SCREENING_AGENCIES",
    "LEVEL_OUTCOMES",
    "RULESETS_DIR",
    "LevelSpec",
    "Rule",
    "RuleSet",
    "RuleSetError",
    "ScreeningHistory",
    "Windows",
    "age_in_years",
    "evaluate",
    "incident_date",
    "joint_screening_views",
    "load_rule_set",
]

RULESETS_DIR = Path(__file__).with_name("rulesets")
DEFAULT_RULE_SET = "default-v3"

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
OUTCOMES: frozenset[str] = frozenset(get_args(Outcome))
RAGS: frozenset[str] = frozenset(get_args(Rag))

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class RuleSetError(ValueError):
    """A rule-set file is missing, unreadable or invalid (a one-line message)."""


# --- Inputs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScreeningHistory:
    """What earlier contacts tell the stateful rules (from the screening history tables).

    Every count is of *previous* contacts only, never the one being screened; the engine
    adds the contact itself (see ``count_at_least`` in the rule file). Each count looks
    back as far as the rule set's :class:`Windows` say (the field names keep the default
    windows, 365 and 90 days).
    """

    da_incidents_365d: int = 0
    """Police domestic-abuse notifications for the contact's household in the window
    before this contact."""
    low_graded_police_90d: Mapping[str, int] = field(default_factory=dict)
    """subject_id -> police notifications about the child graded low/standard (PPN low or
    DASH standard) in the window before this contact."""
    missing_episodes_90d: Mapping[str, int] = field(default_factory=dict)
    """subject_id -> missing episodes recorded for the child in the window before."""

    def __post_init__(self) -> None:
        counts = [
            self.da_incidents_365d,
            *self.low_graded_police_90d.values(),
            *self.missing_episodes_90d.values(),
        ]
        if any(count < 0 for count in counts):
            raise ValueError("screening history counts cannot be negative")


def age_in_years(child: ContactChild, on: date) -> int | None:
    """Whole years of age on ``on``; an unborn child is 0; None when no date is known.

    The birthday itself counts: a child born on 12 March 2023 is 1 on 12 March 2024.
    """
    born = child.date_of_birth
    if born is None:
        return 0 if child.expected_date_of_birth is not None else None
    years = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    return max(years, 0)


#: The counts of earlier contacts a rule may test (``count_at_least``), each over its window.
COUNTS: tuple[str, ...] = ("da_notifications", "low_graded_police", "missing_episodes")
#: The names rule set default-v1 gave the counts (with their default windows): still read.
V1_COUNT_NAMES: Mapping[str, str] = {
    "da_notifications_365d": "da_notifications",
    "low_graded_police_90d": "low_graded_police",
    "missing_episodes_90d": "missing_episodes",
}
#: The longest window a rule set may set: the screening history keeps two years.
MAX_WINDOW_DAYS = 730


@dataclass(frozen=True)
class Windows:
    """How many days before the incident each count looks back (the rule set's ``windows``).

    Practitioners tune these (a hub may count repeat domestic abuse over two years), so they
    are data, and ``mash whatif`` can show what a change would move.
    """

    da_notifications: int = 365
    low_graded_police: int = 90
    missing_episodes: int = 90

    def days(self, count: str) -> int:
        """The window of one of the :data:`COUNTS`, in days."""
        value: int = getattr(self, count)
        return value


@dataclass(frozen=True)
class Facts:
    """Everything a condition may look at, for one child of the contact."""

    contact: Contact
    child: ContactChild
    factors: frozenset[str]
    age: int | None
    indicators: Indicators | None
    """The child's own indicators if the sender gave them, else the contact's."""
    counts: Mapping[str, int]
    """Each of :data:`COUNTS`, this contact included."""
    windows: Windows
    sibling_level: int = 0
    """The highest level the other rules give another child of the contact (0: none yet)."""

    def count(self, name: str) -> int:
        """One of the named counts (``COUNTS``, or a default-v1 name), this contact included."""
        return self.counts[V1_COUNT_NAMES.get(name, name)]

    def template_values(self) -> dict[str, str]:
        """The safe values a reason may interpolate: age, the counts and their windows,
        never names."""
        values = {name: str(self.count(name)) for name in (*COUNTS, *V1_COUNT_NAMES)}
        values |= {f"{name}_days": str(self.windows.days(name)) for name in COUNTS}
        values["age"] = "unknown" if self.age is None else str(self.age)
        return values


TEMPLATE_FIELDS: frozenset[str] = frozenset(
    {"age", *COUNTS, *V1_COUNT_NAMES, *(f"{name}_days" for name in COUNTS)}
)


def facts_for(
    contact: Contact, history: ScreeningHistory, on: date, windows: Windows | None = None
) -> list[Facts]:
    """The facts for each child, in the contact's order.

    Indicators (injury, disclosure, danger, missing count) are the child's own when the
    sender gave them per child, else the contact's, which then apply to every child
    (docs/domain.md "Per child"). Counts include this contact:

    * ``da_notifications``: previous household DA notifications, plus one when this is a
      police domestic-abuse notification.
    * ``low_graded_police``: previous low/standard-graded police notifications about the
      child, plus one when this is a police notification. This one counts whatever its
      grade, so raising the grade can never take a contact below R3-ESCALATE.
    * ``missing_episodes``: the larger of (episodes recorded before, plus one when this
      contact reports an episode: factor 10A or police incident ``missing_child``) and the
      referrer's own 90-day count. The larger, not the sum, because the referrer's count
      and the recorded episodes usually describe the same episodes.
    """
    factors = frozenset(contact.factors)
    police = contact.source.kind == "police"
    this_da = 1 if contact.incident_type == "domestic_abuse" else 0
    this_missing = 1 if "10A" in factors or contact.incident_type == "missing_child" else 0
    out: list[Facts] = []
    for child in contact.children:
        indicators = child.indicators or contact.indicators
        reported_missing = indicators.missing_episodes_90d if indicators else 0
        counts = {
            "da_notifications": history.da_incidents_365d + this_da,
            "low_graded_police": history.low_graded_police_90d.get(child.subject_id, 0)
            + (1 if police else 0),
            "missing_episodes": max(
                history.missing_episodes_90d.get(child.subject_id, 0) + this_missing,
                reported_missing,
            ),
        }
        out.append(
            Facts(
                contact=contact,
                child=child,
                factors=factors,
                age=age_in_years(child, on),
                indicators=indicators,
                counts=counts,
                windows=windows or Windows(),
            )
        )
    return out


# --- Conditions: the vocabulary ---------------------------------------------------------

Condition = Callable[[Facts], bool]


class _Where:
    """Where in the file a condition is being read, for one-line error messages."""

    def __init__(self, file: Path, what: str, concerns: Mapping[str, Condition] | None) -> None:
        self.file = file
        self.what = what
        self.concerns = concerns  # None while the concerns themselves are being read

    def error(self, problem: str) -> RuleSetError:
        return RuleSetError(f"{self.file}: {self.what}: {problem}")


def _codes(value: Any, allowed: frozenset[str], word: str, where: _Where) -> frozenset[str]:
    # A scalar is a one-item list; bare YAML numbers (20, 4) are read as the codes "20", "4".
    items = value if isinstance(value, list) else [value]
    out: set[str] = set()
    for item in items:
        code = str(item) if isinstance(item, int) and not isinstance(item, bool) else item
        if not isinstance(code, str) or code not in allowed:
            raise where.error(f"{word}: unknown value {item!r} (allowed: {_listing(allowed)})")
        out.add(code)
    if not out:
        raise where.error(f"{word}: give at least one value")
    return frozenset(out)


def _listing(values: frozenset[str]) -> str:
    return ", ".join(sorted(values, key=lambda v: (len(v), v)))


def _flag(value: Any, word: str, where: _Where) -> bool:
    if not isinstance(value, bool):
        raise where.error(f"{word}: expected true or false, got {value!r}")
    return value


def _age(value: Any, word: str, where: _Where) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 25:
        raise where.error(f"{word}: expected an age in whole years (0-25), got {value!r}")
    return value


def _any_factor(value: Any, where: _Where) -> Condition:
    wanted = _codes(value, FACTOR_CODES, "any_factor", where)
    return lambda f: bool(f.factors & wanted)


def _only_factors_in(value: Any, where: _Where) -> Condition:
    allowed = _codes(value, FACTOR_CODES, "only_factors_in", where)
    return lambda f: f.factors <= allowed


def _incident_type(value: Any, where: _Where) -> Condition:
    wanted = _codes(value, INCIDENT_TYPES, "incident_type", where)
    return lambda f: f.contact.incident_type in wanted


def _disclosure(value: Any, where: _Where) -> Condition:
    wanted = _codes(value, DISCLOSURES, "disclosure", where)
    return lambda f: f.indicators is not None and f.indicators.disclosure in wanted


def _indicator(value: Any, where: _Where) -> Condition:
    names = _codes(value, INDICATORS, "indicator", where)
    return lambda f: f.indicators is not None and any(getattr(f.indicators, name) for name in names)


def _dash_risk(value: Any, where: _Where) -> Condition:
    wanted = _codes(value, DASH_RISKS, "dash_risk", where)
    return lambda f: f.contact.dash_risk in wanted


def _crime_reference(value: Any, where: _Where) -> Condition:
    wanted = _flag(value, "crime_reference", where)
    return lambda f: f.contact.crime_reference_present is wanted


def _referral_source(value: Any, where: _Where) -> Condition:
    wanted = _codes(value, REFERRAL_SOURCES, "referral_source", where)
    return lambda f: f.contact.source.referral_source in wanted


def _re_referral(value: Any, where: _Where) -> Condition:
    wanted = _flag(value, "re_referral", where)
    return lambda f: f.contact.re_referral is wanted


def _child_age_under(value: Any, where: _Where) -> Condition:
    limit = _age(value, "child_age_under", where)
    return lambda f: f.age is not None and f.age < limit


def _child_age_at_least(value: Any, where: _Where) -> Condition:
    limit = _age(value, "child_age_at_least", where)
    return lambda f: f.age is not None and f.age >= limit


def _council_case(value: Any, where: _Where) -> Condition:
    wanted = _codes(value, CASE_TYPES, "council_case", where)
    return lambda f: not wanted.isdisjoint(f.child.council_cases)


def present_or_resident(child: ContactChild) -> bool:
    """Police: the child was present or lives there. Referral children have neither flag
    (both None) and count as resident: they are the subjects of the referral."""
    if child.present_at_incident is None and child.resident is None:
        return True
    return bool(child.present_at_incident) or bool(child.resident)


def _child_present_or_resident(value: Any, where: _Where) -> Condition:
    wanted = _flag(value, "child_present_or_resident", where)
    return lambda f: present_or_resident(f.child) is wanted


def _count_at_least(value: Any, where: _Where) -> Condition:
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


def _sibling_level_at_least(value: Any, where: _Where) -> Condition:
    if isinstance(value, bool) or not isinstance(value, int) or not 2 <= value <= 4:
        raise where.error(f"sibling_level_at_least: expected a level 2, 3 or 4, got {value!r}")
    return lambda f: f.sibling_level >= value


def _concern(value: Any, where: _Where) -> Condition:
    if where.concerns is None:
        raise where.error("a concern cannot use another concern")
    if not isinstance(value, str) or value not in where.concerns:
        known = ", ".join(sorted(where.concerns)) or "none defined"
        raise where.error(f"concern: unknown concern {value!r} (known: {known})")
    return where.concerns[value]


def _all(value: Any, where: _Where) -> Condition:
    parts = _condition_list(value, "all", where)
    return lambda f: all(part(f) for part in parts)


def _any(value: Any, where: _Where) -> Condition:
    parts = _condition_list(value, "any", where)
    return lambda f: any(part(f) for part in parts)


def _not(value: Any, where: _Where) -> Condition:
    inner = parse_condition(value, where)
    return lambda f: not inner(f)


def _condition_list(value: Any, word: str, where: _Where) -> tuple[Condition, ...]:
    if not isinstance(value, list) or not value:
        raise where.error(f"{word}: expected a non-empty list of conditions")
    return tuple(parse_condition(item, where) for item in value)


#: Condition word -> reader. The meaning of every word in the rule file lives here.
WORDS: Mapping[str, Callable[[Any, _Where], Condition]] = {
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


def parse_condition(node: Any, where: _Where) -> Condition:
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


# --- The rule set -----------------------------------------------------------------------


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


@dataclass(frozen=True)
class RuleSet:
    """A loaded, validated rule set."""

    version: str
    content_hash: str
    """sha256 (hex) of the file's bytes."""
    levels: Mapping[int, LevelSpec]
    rules: tuple[Rule, ...]
    fallback: Rule
    """The level-1 hit given when no rule fires (R1-NONE)."""
    path: Path
    windows: Windows = field(default_factory=Windows)
    """How far back each count looks (defaults when the file gives none)."""


_TOP_KEYS = {"version", "levels", "windows", "concerns", "rules", "when_nothing_fires"}
_RULE_KEYS = {
    "id",
    "level",
    "outcome",
    "reason",
    "target_agency",
    "target_agency_by_age",
    "marac_referral",
    "when",
}


def load_rule_set(name_or_path: str | Path = DEFAULT_RULE_SET) -> RuleSet:
    """Load and validate a rule set: a bare name (``"default-v3"``) is a shipped file in
    ``rulesets/``; anything else is a path.

    Raises RuleSetError with one line naming the file, the rule and the problem.
    """
    text = str(name_or_path)
    shipped = (
        isinstance(name_or_path, str)
        and _NAME.fullmatch(text)
        and not text.endswith((".yaml", ".yml"))
    )
    file = RULESETS_DIR / f"{text}.yaml" if shipped else Path(name_or_path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        if shipped:
            known = ", ".join(sorted(p.stem for p in RULESETS_DIR.glob("*.yaml")))
            raise RuleSetError(f"{file}: no shipped rule set {text!r} (shipped: {known})") from exc
        raise RuleSetError(f"{file}: cannot read rule set ({exc.strerror})") from exc
    try:
        raw: Any = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise RuleSetError(f"{file}: not valid YAML{line}: {problem}") from exc
    rule_set = _build(file, raw, hashlib.sha256(data).hexdigest())
    if shipped and rule_set.version != text:
        raise RuleSetError(f"{file}: version {rule_set.version!r} does not match the file name")
    return rule_set


def _build(file: Path, raw: Any, content_hash: str) -> RuleSet:
    def fail(problem: str) -> RuleSetError:
        return RuleSetError(f"{file}: {problem}")

    if not isinstance(raw, dict):
        raise fail("expected a mapping with version, levels, rules and when_nothing_fires")
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise fail(f"unknown top-level key {sorted(map(str, unknown))[0]!r}")
    version = raw.get("version")
    if not isinstance(version, str) or not _NAME.fullmatch(version):
        raise fail("version: expected a name such as default-v1")
    levels = _levels(file, raw.get("levels"))
    concerns = _concerns(file, raw.get("concerns", {}))
    rules_raw = raw.get("rules")
    if not isinstance(rules_raw, list) or not rules_raw:
        raise fail("rules: expected a non-empty list of rules")
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, item in enumerate(rules_raw, start=1):
        rule = _rule(file, index, item, levels, concerns)
        if rule.id in seen:
            raise fail(f"rule {rule.id}: duplicate rule id")
        seen.add(rule.id)
        rules.append(rule)
    fallback = _fallback(file, raw.get("when_nothing_fires"))
    if fallback.id in seen:
        raise fail(f"rule {fallback.id}: duplicate rule id (also when_nothing_fires)")
    return RuleSet(
        version=version,
        content_hash=content_hash,
        levels=levels,
        rules=tuple(rules),
        fallback=fallback,
        path=file,
        windows=_windows(file, raw.get("windows", {})),
    )


def _windows(file: Path, raw: Any) -> Windows:
    if not isinstance(raw, dict):
        raise RuleSetError(f"{file}: windows: expected a mapping of count -> days")
    days: dict[str, int] = {}
    for name, value in raw.items():
        if name not in COUNTS:
            raise RuleSetError(
                f"{file}: windows: unknown count {name!r} (known: {', '.join(COUNTS)})"
            )
        if isinstance(value, bool) or not isinstance(value, int):
            raise RuleSetError(f"{file}: windows: {name} needs a whole number of days")
        if not 1 <= value <= MAX_WINDOW_DAYS:
            raise RuleSetError(
                f"{file}: windows: {name} must be 1 to {MAX_WINDOW_DAYS} days"
                " (the screening history keeps two years)"
            )
        days[name] = value
    return Windows(**days)


def _levels(file: Path, raw: Any) -> dict[int, LevelSpec]:
    if not isinstance(raw, dict) or set(raw) != set(LEVEL_OUTCOMES):
        raise RuleSetError(f"{file}: levels: expected exactly the levels 1, 2, 3 and 4")
    out: dict[int, LevelSpec] = {}
    for level, row in sorted(raw.items()):
        where = f"{file}: level {level}"
        if not isinstance(row, dict) or set(row) != {"name", "outcome", "rag"}:
            raise RuleSetError(f"{where}: expected exactly name, outcome and rag")
        name, outcome, rag = row["name"], row["outcome"], row["rag"]
        if not isinstance(name, str) or not name.strip():
            raise RuleSetError(f"{where}: name must be non-empty text")
        if outcome != LEVEL_OUTCOMES[level]:
            raise RuleSetError(
                f"{where}: outcome must be {LEVEL_OUTCOMES[level]!r}, got {outcome!r}"
            )
        if rag not in RAGS:
            raise RuleSetError(f"{where}: rag must be one of {_listing(RAGS)}, got {rag!r}")
        out[level] = LevelSpec(level=level, name=name.strip(), outcome=outcome, rag=rag)
    return out


def _concerns(file: Path, raw: Any) -> dict[str, Condition]:
    if not isinstance(raw, dict):
        raise RuleSetError(f"{file}: concerns: expected a mapping of name -> condition")
    out: dict[str, Condition] = {}
    for name, node in raw.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise RuleSetError(f"{file}: concerns: bad concern name {name!r}")
        out[name] = parse_condition(node, _Where(file, f"concern {name}", None))
    return out


def _rule(
    file: Path,
    index: int,
    raw: Any,
    levels: Mapping[int, LevelSpec],
    concerns: Mapping[str, Condition],
) -> Rule:
    if not isinstance(raw, dict):
        raise RuleSetError(f"{file}: rule #{index}: expected a mapping with id, level, ...")
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not _NAME.fullmatch(rule_id):
        raise RuleSetError(f"{file}: rule #{index}: id must be a name such as R4-SEX")
    where = _Where(file, f"rule {rule_id}", concerns)
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise where.error(f"unknown field {sorted(map(str, unknown))[0]!r}")
    level = raw.get("level")
    if isinstance(level, bool) or not isinstance(level, int) or level not in levels:
        raise where.error(f"level must be 1, 2, 3 or 4, got {level!r}")
    outcome = raw.get("outcome")
    if outcome != levels[level].outcome:
        raise where.error(
            f"outcome {outcome!r} does not match level {level} ({levels[level].outcome!r})"
        )
    reason = _reason(raw.get("reason"), where)
    target, by_age = _target(raw, level, where)
    marac = _flag(raw.get("marac_referral", False), "marac_referral", where)
    if "when" not in raw:
        raise where.error("missing condition (when)")
    return Rule(
        id=rule_id,
        level=level,
        outcome=outcome,
        reason=reason,
        target_agency=target,
        target_agency_by_age=by_age,
        marac_referral=marac,
        condition=parse_condition(raw["when"], where),
    )


def _reason(raw: Any, where: _Where) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise where.error("missing reason (one plain-English line)")
    if "\n" in raw.strip():
        raise where.error("reason must be a single line")
    try:
        parsed = list(string.Formatter().parse(raw))
    except ValueError as exc:
        raise where.error(f"reason: bad placeholder ({exc})") from exc
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in TEMPLATE_FIELDS or spec or conversion:
            raise where.error(
                f"reason: unknown placeholder {{{name}}} (allowed: "
                f"{', '.join('{' + n + '}' for n in sorted(TEMPLATE_FIELDS))})"
            )
    return raw.strip()


def _target(
    raw: Mapping[str, Any], level: int, where: _Where
) -> tuple[str | None, tuple[AgencyByAge, ...]]:
    agency, table = raw.get("target_agency"), raw.get("target_agency_by_age")
    if level != 2:
        if agency is not None or table is not None:
            raise where.error("only level 2 (single agency) rules have a target agency")
        return None, ()
    if (agency is None) == (table is None):
        raise where.error("a level 2 rule needs exactly one of target_agency, target_agency_by_age")
    if agency is not None:
        return _agency(agency, where), ()
    if not isinstance(table, list) or not table:
        raise where.error("target_agency_by_age: expected a non-empty list")
    rows: list[AgencyByAge] = []
    for position, row in enumerate(table, start=1):
        last = position == len(table)
        if (
            not isinstance(row, dict)
            or "agency" not in row
            or set(row) - {"agency", "child_age_under"}
        ):
            raise where.error("target_agency_by_age: each row is {child_age_under: N, agency: X}")
        under = row.get("child_age_under")
        if under is None and not last:
            raise where.error("target_agency_by_age: only the last row may omit child_age_under")
        if under is not None and last:
            raise where.error("target_agency_by_age: the last row must omit child_age_under")
        rows.append(
            AgencyByAge(
                agency=_agency(row["agency"], where),
                age_under=None if under is None else _age(under, "child_age_under", where),
            )
        )
    return None, tuple(rows)


def _agency(value: Any, where: _Where) -> str:
    if value not in TARGET_AGENCIES:
        raise where.error(f"unknown target agency {value!r} (allowed: {_listing(TARGET_AGENCIES)})")
    return str(value)


def _fallback(file: Path, raw: Any) -> Rule:
    if not isinstance(raw, dict) or set(raw) != {"id", "reason"}:
        raise RuleSetError(f"{file}: when_nothing_fires: expected exactly id and reason")
    rule_id = raw["id"]
    if not isinstance(rule_id, str) or not _NAME.fullmatch(rule_id):
        raise RuleSetError(f"{file}: when_nothing_fires: id must be a name such as R1-NONE")
    where = _Where(file, f"rule {rule_id}", {})
    return Rule(
        id=rule_id, level=1, outcome=LEVEL_OUTCOMES[1], reason=_reason(raw["reason"], where)
    )


# --- Evaluation -------------------------------------------------------------------------


def evaluate(
    contact: Contact, history: ScreeningHistory, rule_set: RuleSet, decided_at: datetime
) -> Decision:
    """The automated decision for ``contact``: each child's own level (the highest any rule
    gives that child) and the contact's, the highest of the children's.

    Lists every rule that fired (once each, highest level first, then file order), each
    with its reason rendered for the first child it fired for; each child's subject entry
    lists the rules that fired for that child. Rules about siblings
    (``sibling_level_at_least``) see the levels the other rules gave the other children.
    """
    on = incident_date(contact)
    children = _with_sibling_levels(rule_set, facts_for(contact, history, on, rule_set.windows))
    fired = _fired(rule_set, children)
    level = fired[0][0].level
    spec = rule_set.levels[level]
    target = (
        next((t for rule, matched in fired if (t := rule.target_for(matched))), None)
        if level == 2
        else None
    )
    joint = contact.incident_type == "domestic_abuse"
    return Decision(
        decision_id=derive_id("decision", contact.contact_id, "rules", rule_set.version),
        contact_id=contact.contact_id,
        contact_reference=contact.contact_reference,
        level=level,
        outcome=spec.outcome,
        target_agency=target,
        rag=spec.rag,
        rules=[
            RuleHit(id=rule.id, reason=rule.reason.format_map(matched[0].template_values()))
            for rule, matched in fired
        ],
        rule_set_version=rule_set.version,
        rule_set_hash=rule_set.content_hash,
        joint_screening=joint,
        participating_agencies=list(JOINT_SCREENING_AGENCIES) if joint else [],
        joint_screening_views=joint_screening_views(contact, children) if joint else {},
        # DASH high is a MARAC referral whoever was present; rules may add criteria
        # (R3-DA-REPEAT: the "potential escalation" criterion).
        marac_referral=joint
        and (contact.dash_risk == "high" or any(rule.marac_referral for rule, _ in fired)),
        encompass_required=encompass.required(contact),
        # The police detail of a restricted notification is for the s47 queue only; the
        # decision itself is made as for any other (restriction limits sharing, not care).
        restricted=contact.restricted,
        source="rules",
        decided_at=decided_at,
        hub=contact.hub,
        subjects=[_subject(rule_set, facts, fired) for facts in children],
        open_case=contact.open_case,
        received_at=contact.received_at,
        contact_source=contact.source,
    )


def joint_screening_views(contact: Contact, children: Sequence[Facts]) -> dict[str, list[str]]:
    """What each agency's view brings to a joint screening (docs/domain.md "Domestic-abuse joint
    screening"): the police's (DASH risk, domestic-abuse notifications for the household in
    the window, this one included), children's social care's (an open case, a re-referral,
    the council's open case types) and health's (a child under one, an unborn child). The
    rules decide on these same facts; the views say whose they are."""
    police = [f"dash_{contact.dash_risk}"] if contact.dash_risk else []
    if children:
        police.append(f"da_notifications_{children[0].count('da_notifications')}")
    social_care = ["open_case"] if contact.open_case else []
    social_care += ["re_referral"] if contact.re_referral else []
    cases = sorted({case for f in children for case in f.child.council_cases})
    social_care += [f"council_{case}" for case in cases]
    health = ["unborn"] if any(f.child.expected_date_of_birth for f in children) else []
    if any(f.age == 0 and f.child.date_of_birth is not None for f in children):
        health.append("child_under_1")
    return {"police": police, "childrens_social_care": social_care, "health": health}


def _fired(rule_set: RuleSet, children: Sequence[Facts]) -> list[tuple[Rule, list[Facts]]]:
    """Each rule that holds for at least one child, with those children; highest level
    first, file order within a level; the fallback for everyone when none holds."""
    fired: list[tuple[Rule, list[Facts]]] = []
    for rule in rule_set.rules:
        matched = [f for f in children if rule.condition(f)]
        if matched:
            fired.append((rule, matched))
    if not fired:
        fired = [(rule_set.fallback, list(children))]
    fired.sort(key=lambda hit: -hit[0].level)  # stable: file order within a level
    return fired


def _with_sibling_levels(rule_set: RuleSet, children: list[Facts]) -> list[Facts]:
    """The facts again, each with the highest level the rules give the child's siblings in
    the contact (sibling rules cannot fire on the first pass: every sibling level is 0)."""
    if len(children) < 2:
        return children
    own = {id(f): _level_for(f, _fired(rule_set, children)) for f in children}
    return [
        replace(f, sibling_level=max(own[id(o)] for o in children if o is not f)) for f in children
    ]


def _level_for(child: Facts, fired: Sequence[tuple[Rule, list[Facts]]]) -> int:
    return max((rule.level for rule, matched in fired if _among(child, matched)), default=1)


def _among(child: Facts, matched: Sequence[Facts]) -> bool:
    # By identity: two children may have equal facts and still be two children.
    return any(m is child for m in matched)


def _subject(
    rule_set: RuleSet, child: Facts, fired: Sequence[tuple[Rule, list[Facts]]]
) -> DecisionSubject:
    """One child's own screening: the rules that fired for the child, and its level."""
    mine = [rule for rule, matched in fired if _among(child, matched)] or [rule_set.fallback]
    level = mine[0].level  # ``fired`` is highest first
    spec = rule_set.levels[level]
    values = child.template_values()
    return DecisionSubject(
        subject_id=child.child.subject_id,
        child_ref=child.child.child_ref,
        level=level,
        outcome=spec.outcome,
        rag=spec.rag,
        target_agency=(
            next((t for rule in mine if (t := rule.target_for([child]))), None)
            if level == 2
            else None
        ),
        rules=[RuleHit(id=rule.id, reason=rule.reason.format_map(values)) for rule in mine],
        step_up=steps_up(level, child.child),
    )


def steps_up(level: int, child: ContactChild) -> bool:
    """A child with an open early-help case and a level-3 concern steps up to assessment
    (docs/domain.md "Identity and history"): routing opens an assessment rather than updating the
    early-help case. (At level 4 the open case escalates to s47 anyway.)"""
    return level == 3 and "early_help" in child.council_cases
