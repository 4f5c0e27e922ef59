"""Threshold rules: (contact, history) -> decision. Pure: no I/O, no Faust, no clock reads.

The rules are data, in ``rulesets/default-v3.yaml`` (where the S47 rules are); the engine
that reads and applies them is :mod:`services.screening.engine`. This module is the
screening service's entry point to both.
"""

from __future__ import annotations

from functools import cache

from services.screening.engine import (
    DEFAULT_RULE_SET,
    Rule,
    RuleSet,
    RuleSetError,
    ScreeningHistory,
    age_in_years,
    evaluate,
    incident_date,
    load_rule_set,
)

__all__ = [
    "DEFAULT_RULE_SET",
    "RULE_SET_VERSION",
    "Rule",
    "RuleSet",
    "RuleSetError",
    "ScreeningHistory",
    "age_in_years",
    "default_rule_set",
    "evaluate",
    "incident_date",
    "load_rule_set",
]

#: Version of the shipped default rule set.
RULE_SET_VERSION = DEFAULT_RULE_SET


@cache
def default_rule_set() -> RuleSet:
    """The shipped ``default-v3`` rule set, loaded (and validated) once."""
    return load_rule_set(DEFAULT_RULE_SET)
