"""Rule-set files: a shipped name (``default-v3``) or a path -> a validated :class:`RuleSet`,
or a one-line :class:`RuleSetError` naming the file, the rule and the problem.

The shipped files are ``rulesets/*.yaml`` (the vocabulary is documented at the top of each).
A file is read like every other YAML file of the hub (:mod:`services.common.yaml_files`): its bytes
are read once, hashed (every decision names the version and the sha256) and parsed. This
module checks the file's structure (the level table, the windows, the concerns, each rule's
fields); what each condition word means is :mod:`services.screening.rules`.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, InstanceOf, model_validator

from services.common.yaml_files import read_yaml, validate_yaml
from services.screening.facts import COUNTS, MAX_WINDOW_DAYS, TEMPLATE_FIELDS, Windows
from services.screening.rules import (
    LEVEL_OUTCOMES,
    RAGS,
    TARGET_AGENCIES,
    AgencyByAge,
    Condition,
    LevelSpec,
    Rule,
    Where,
    listing,
    parse_condition,
    read_age,
    read_flag,
)

__all__ = [
    "DEFAULT_RULE_SET",
    "RULESETS_DIR",
    "RuleSet",
    "RuleSetError",
    "RuleSetFile",
    "default_rule_set",
    "load_rule_set",
]

RULESETS_DIR = Path(__file__).with_name("rulesets")
#: The shipped rule set screening applies unless ``MASH_SCREENING_RULE_SET`` says otherwise.
DEFAULT_RULE_SET = "default-v3"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class RuleSetError(ValueError):
    """A rule-set file is missing, unreadable or invalid (a one-line message)."""


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


def load_rule_set(name_or_path: str | Path = DEFAULT_RULE_SET) -> RuleSet:
    """Load and validate a rule set: a bare name (``"default-v3"``) is a shipped file in
    ``rulesets/``; anything else is a path.

    Raises RuleSetError with one line naming the file, the rule and the problem.
    """
    document = read_yaml(name_or_path, RuleSetError, what="rule set", shipped_in=RULESETS_DIR)
    read = validate_yaml(document, RuleSetFile, RuleSetError)
    file, data = document.path, document.data
    if document.shipped and read.version != file.stem:
        raise RuleSetError(f"{file}: version {read.version!r} does not match the file name")
    return RuleSet(
        version=read.version,
        content_hash=hashlib.sha256(data).hexdigest(),
        levels=read.levels,
        rules=read.rules,
        fallback=read.fallback,
        path=file,
        windows=read.windows,
    )


@cache
def default_rule_set() -> RuleSet:
    """The shipped ``default-v3`` rule set, loaded (and validated) once."""
    return load_rule_set(DEFAULT_RULE_SET)


class RuleSetFile(BaseModel):
    """What a rule-set file says, checked; its keys are the file's own.

    A rule set is not plain data (its words become rules and conditions), so one reader,
    below, checks the whole file in file order and stops at the first problem; this model
    is how that reader plugs into :func:`load_yaml_model`, the loader every YAML file of
    the hub goes through.
    """

    model_config = ConfigDict(frozen=True)

    version: str
    levels: dict[int, InstanceOf[LevelSpec]]
    rules: tuple[InstanceOf[Rule], ...]
    fallback: InstanceOf[Rule] = Field(alias="when_nothing_fires")
    windows: InstanceOf[Windows] = Windows()

    @model_validator(mode="before")
    @classmethod
    def _read(cls, raw: Any) -> dict[str, Any]:
        return _read_file(raw)


# --- The file's structure ------------------------------------------------------------------
# Each reader raises ValueError("<place>: <problem>"); load_yaml_model names the file.

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


def _read_file(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValueError("expected a mapping with version, levels, rules and when_nothing_fires")
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ValueError(f"unknown top-level key {sorted(map(str, unknown))[0]!r}")
    version = raw.get("version")
    if not isinstance(version, str) or not _NAME.fullmatch(version):
        raise ValueError("version: expected a name such as default-v1")
    levels = _levels(raw.get("levels"))
    concerns = _concerns(raw.get("concerns", {}))
    rules_raw = raw.get("rules")
    if not isinstance(rules_raw, list) or not rules_raw:
        raise ValueError("rules: expected a non-empty list of rules")
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, item in enumerate(rules_raw, start=1):
        rule = _rule(index, item, levels, concerns)
        if rule.id in seen:
            raise ValueError(f"rule {rule.id}: duplicate rule id")
        seen.add(rule.id)
        rules.append(rule)
    fallback = _fallback(raw.get("when_nothing_fires"))
    if fallback.id in seen:
        raise ValueError(f"rule {fallback.id}: duplicate rule id (also when_nothing_fires)")
    return {
        "version": version,
        "levels": levels,
        "rules": tuple(rules),
        "when_nothing_fires": fallback,
        "windows": _windows(raw.get("windows", {})),
    }


def _windows(raw: Any) -> Windows:
    if not isinstance(raw, dict):
        raise ValueError("windows: expected a mapping of count -> days")
    days: dict[str, int] = {}
    for name, value in raw.items():
        if name not in COUNTS:
            raise ValueError(f"windows: unknown count {name!r} (known: {', '.join(COUNTS)})")
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"windows: {name} needs a whole number of days")
        if not 1 <= value <= MAX_WINDOW_DAYS:
            raise ValueError(
                f"windows: {name} must be 1 to {MAX_WINDOW_DAYS} days"
                " (the screening history keeps two years)"
            )
        days[name] = value
    return Windows(**days)


def _levels(raw: Any) -> dict[int, LevelSpec]:
    if not isinstance(raw, dict) or set(raw) != set(LEVEL_OUTCOMES):
        raise ValueError("levels: expected exactly the levels 1, 2, 3 and 4")
    out: dict[int, LevelSpec] = {}
    for level, row in sorted(raw.items()):
        where = f"level {level}"
        if not isinstance(row, dict) or set(row) != {"name", "outcome", "rag"}:
            raise ValueError(f"{where}: expected exactly name, outcome and rag")
        name, outcome, rag = row["name"], row["outcome"], row["rag"]
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{where}: name must be non-empty text")
        if outcome != LEVEL_OUTCOMES[level]:
            raise ValueError(f"{where}: outcome must be {LEVEL_OUTCOMES[level]!r}, got {outcome!r}")
        if rag not in RAGS:
            raise ValueError(f"{where}: rag must be one of {listing(RAGS)}, got {rag!r}")
        out[level] = LevelSpec(level=level, name=name.strip(), outcome=outcome, rag=rag)
    return out


def _concerns(raw: Any) -> dict[str, Condition]:
    if not isinstance(raw, dict):
        raise ValueError("concerns: expected a mapping of name -> condition")
    out: dict[str, Condition] = {}
    for name, node in raw.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"concerns: bad concern name {name!r}")
        out[name] = parse_condition(node, Where(f"concern {name}", None))
    return out


def _rule(
    index: int, raw: Any, levels: Mapping[int, LevelSpec], concerns: Mapping[str, Condition]
) -> Rule:
    if not isinstance(raw, dict):
        raise ValueError(f"rule #{index}: expected a mapping with id, level, ...")
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not _NAME.fullmatch(rule_id):
        raise ValueError(f"rule #{index}: id must be a name such as R4-SEX")
    where = Where(f"rule {rule_id}", concerns)
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
    marac = read_flag(raw.get("marac_referral", False), "marac_referral", where)
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


def _reason(raw: Any, where: Where) -> str:
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
    raw: Mapping[str, Any], level: int, where: Where
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
                age_under=None if under is None else read_age(under, "child_age_under", where),
            )
        )
    return None, tuple(rows)


def _agency(value: Any, where: Where) -> str:
    if value not in TARGET_AGENCIES:
        raise where.error(f"unknown target agency {value!r} (allowed: {listing(TARGET_AGENCIES)})")
    return str(value)


def _fallback(raw: Any) -> Rule:
    if not isinstance(raw, dict) or set(raw) != {"id", "reason"}:
        raise ValueError("when_nothing_fires: expected exactly id and reason")
    rule_id = raw["id"]
    if not isinstance(rule_id, str) or not _NAME.fullmatch(rule_id):
        raise ValueError("when_nothing_fires: id must be a name such as R1-NONE")
    where = Where(f"rule {rule_id}", {})
    return Rule(
        id=rule_id, level=1, outcome=LEVEL_OUTCOMES[1], reason=_reason(raw["reason"], where)
    )
