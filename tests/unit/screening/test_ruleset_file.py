"""The rule-set file: the shipped one loads, and every kind of broken file is refused
at start-up with one line naming the file, the rule and the problem."""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.screening.ruleset import (
    DEFAULT_RULE_SET,
    RULESETS_DIR,
    RuleSetError,
    default_rule_set,
    load_rule_set,
)

SHIPPED = RULESETS_DIR / "default-v3.yaml"
SHIPPED_DATA: dict[str, Any] = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))


def test_shipped_rule_set_loads_by_name_and_by_path() -> None:
    by_name = load_rule_set()
    by_path = load_rule_set(str(SHIPPED))
    assert by_name.version == "default-v3" == DEFAULT_RULE_SET
    assert by_name.content_hash == by_path.content_hash == load_rule_set(SHIPPED).content_hash
    assert by_name.rules == by_path.rules
    assert default_rule_set() is default_rule_set()


def test_shipped_hash_is_the_sha256_of_the_file_bytes() -> None:
    assert load_rule_set().content_hash == hashlib.sha256(SHIPPED.read_bytes()).hexdigest()
    assert load_rule_set().content_hash == load_rule_set().content_hash


def test_any_edit_changes_the_hash(tmp_path: Path) -> None:
    edited = tmp_path / "edited.yaml"
    edited.write_bytes(SHIPPED.read_bytes() + b"\n# a comment\n")
    assert load_rule_set(str(edited)).content_hash != load_rule_set().content_hash


def test_shipped_level_table_and_rules_follow_domain() -> None:
    rule_set = load_rule_set()
    table = {n: (s.outcome, s.rag) for n, s in rule_set.levels.items()}
    assert table == {
        1: ("no_further_action", "blue"),
        2: ("single_agency", "green"),
        3: ("initial_assessment", "amber"),
        4: ("s47", "red"),
    }
    for rule in rule_set.rules:
        assert rule.id.startswith(f"R{rule.level}-")
        has_target = bool(rule.target_agency or rule.target_agency_by_age)
        assert has_target is (rule.level == 2)
    assert rule_set.fallback.id == "R1-NONE"
    assert rule_set.fallback.reason


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def rule(data: dict[str, Any], rule_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(r for r in data["rules"] if r["id"] == rule_id)
    return found


def _unknown_word(d: dict[str, Any]) -> None:
    rule(d, "R4-FGM")["when"] = {"any_factors": ["22A"]}


def _unknown_factor(d: dict[str, Any]) -> None:
    rule(d, "R4-FGM")["when"] = {"any_factor": ["22A", "99Z"]}


def _level_5(d: dict[str, Any]) -> None:
    rule(d, "R4-FGM")["level"] = 5


def _level_0(d: dict[str, Any]) -> None:
    rule(d, "R4-FGM")["level"] = 0


def _outcome_mismatch(d: dict[str, Any]) -> None:
    rule(d, "R4-FGM")["outcome"] = "initial_assessment"


def _duplicate(d: dict[str, Any]) -> None:
    d["rules"].append(copy.deepcopy(rule(d, "R4-FGM")))


def _no_reason(d: dict[str, Any]) -> None:
    del rule(d, "R4-FGM")["reason"]


def _blank_reason(d: dict[str, Any]) -> None:
    rule(d, "R4-FGM")["reason"] = "   "


def _name_in_reason(d: dict[str, Any]) -> None:
    rule(d, "R4-FGM")["reason"] = "Concern for {given_name}."


def _no_condition(d: dict[str, Any]) -> None:
    del rule(d, "R4-FGM")["when"]


def _unknown_concern(d: dict[str, Any]) -> None:
    rule(d, "R4-FGM")["when"] = {"concern": "no-such-thing"}


def _bad_count(d: dict[str, Any]) -> None:
    rule(d, "R3-MISSING")["when"] = {"count_at_least": {"missing_episode": 3}}


def _bad_age(d: dict[str, Any]) -> None:
    rule(d, "R3-PARENT-YOUNG")["when"] = {"child_age_under": "five"}


def _target_outside_level_2(d: dict[str, Any]) -> None:
    rule(d, "R4-FGM")["target_agency"] = "health"


def _level_2_without_target(d: dict[str, Any]) -> None:
    del rule(d, "R2-NEEDS")["target_agency"]


def _unknown_agency(d: dict[str, Any]) -> None:
    rule(d, "R2-NEEDS")["target_agency"] = "the council"


def _unknown_rule_field(d: dict[str, Any]) -> None:
    rule(d, "R4-FGM")["priority"] = 1


def _empty_any(d: dict[str, Any]) -> None:
    rule(d, "R4-FGM")["when"] = {"any": []}


def _bad_level_table(d: dict[str, Any]) -> None:
    d["levels"][3]["outcome"] = "s47"


def _missing_level(d: dict[str, Any]) -> None:
    del d["levels"][2]


def _concern_uses_concern(d: dict[str, Any]) -> None:
    d["concerns"]["neglect"] = {"concern": "sexual_abuse"}


BROKEN: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "unknown word": (_unknown_word, "rule R4-FGM: unknown condition word 'any_factors'"),
    "unknown factor": (_unknown_factor, "rule R4-FGM: any_factor: unknown value '99Z'"),
    "level 5": (_level_5, "rule R4-FGM: level must be 1, 2, 3 or 4, got 5"),
    "level 0": (_level_0, "rule R4-FGM: level must be 1, 2, 3 or 4, got 0"),
    "outcome": (_outcome_mismatch, "rule R4-FGM: outcome 'initial_assessment' does not match"),
    "duplicate": (_duplicate, "rule R4-FGM: duplicate rule id"),
    "no reason": (_no_reason, "rule R4-FGM: missing reason"),
    "blank reason": (_blank_reason, "rule R4-FGM: missing reason"),
    "name in reason": (_name_in_reason, "rule R4-FGM: reason: unknown placeholder {given_name}"),
    "no condition": (_no_condition, "rule R4-FGM: missing condition (when)"),
    "unknown concern": (_unknown_concern, "rule R4-FGM: concern: unknown concern"),
    "bad count": (_bad_count, "rule R3-MISSING: count_at_least: unknown count"),
    "bad age": (_bad_age, "rule R3-PARENT-YOUNG: child_age_under: expected an age"),
    "target at level 4": (_target_outside_level_2, "rule R4-FGM: only level 2"),
    "level 2 no target": (_level_2_without_target, "rule R2-NEEDS: a level 2 rule needs"),
    "unknown agency": (_unknown_agency, "rule R2-NEEDS: unknown target agency 'the council'"),
    "unknown field": (_unknown_rule_field, "rule R4-FGM: unknown field 'priority'"),
    "empty any": (_empty_any, "rule R4-FGM: any: expected a non-empty list"),
    "level table": (_bad_level_table, "level 3: outcome must be 'initial_assessment'"),
    "missing level": (_missing_level, "levels: expected exactly the levels 1, 2, 3 and 4"),
    "nested concern": (_concern_uses_concern, "concern neglect: a concern cannot use another"),
}


@pytest.mark.parametrize(("breakage", "message"), BROKEN.values(), ids=BROKEN.keys())
def test_invalid_rule_set_is_refused_with_one_clear_line(
    tmp_path: Path, breakage: Callable[[dict[str, Any]], None], message: str
) -> None:
    data = copy.deepcopy(SHIPPED_DATA)
    breakage(data)
    path = write(tmp_path, data)
    with pytest.raises(RuleSetError) as caught:
        load_rule_set(str(path))
    text = str(caught.value)
    assert text.startswith(f"{path}: ")
    assert message in text
    assert "\n" not in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("rules: [\n  - id: R4-X\n", "not valid YAML at line"),
        ("just text\n", "expected a mapping with version"),
        ("version: default-v1\n", "levels: expected exactly the levels"),
    ],
)
def test_unreadable_files_are_refused(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(RuleSetError, match=message) as caught:
        load_rule_set(str(path))
    assert "\n" not in str(caught.value)


def test_missing_file_and_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(RuleSetError, match="cannot read rule set"):
        load_rule_set(str(tmp_path / "absent.yaml"))
    with pytest.raises(
        RuleSetError, match=r"no shipped rule set 'default-v9' \(shipped: default-v1"
    ):
        load_rule_set("default-v9")


@pytest.mark.parametrize(
    ("windows", "message"),
    [
        ({"da_notification": 365}, "windows: unknown count 'da_notification'"),
        ({"da_notifications": 0}, "windows: da_notifications must be 1 to 730 days"),
        ({"da_notifications": 731}, "windows: da_notifications must be 1 to 730 days"),
        ({"missing_episodes": "90"}, "windows: missing_episodes needs a whole number of days"),
        ([90], "windows: expected a mapping"),
    ],
)
def test_bad_windows_are_refused_with_one_clear_line(
    tmp_path: Path, windows: Any, message: str
) -> None:
    data = copy.deepcopy(SHIPPED_DATA)
    data["windows"] = windows
    with pytest.raises(RuleSetError, match=re.escape(message)) as caught:
        load_rule_set(str(write(tmp_path, data)))
    assert "\n" not in str(caught.value)


def test_a_window_is_read_from_the_file(tmp_path: Path) -> None:
    data = copy.deepcopy(SHIPPED_DATA)
    data["windows"]["da_notifications"] = 180
    assert load_rule_set(str(write(tmp_path, data))).windows.da_notifications == 180


def test_the_previous_rule_set_still_loads_with_its_count_names() -> None:
    # default-v1 decisions stay explainable and comparable in whatif.
    v1 = load_rule_set("default-v1")
    assert "R3-DA-BABY" not in {r.id for r in v1.rules}
    assert v1.windows == load_rule_set().windows


def test_codes_may_be_written_as_bare_numbers(tmp_path: Path) -> None:
    data = copy.deepcopy(SHIPPED_DATA)
    rule(data, "R2-HOUSING")["when"] = {
        "all": [{"referral_source": [4]}, {"only_factors_in": [20, 21, "3A"]}]
    }
    rule_set = load_rule_set(str(write(tmp_path, data)))
    assert [r.id for r in rule_set.rules] == [r.id for r in load_rule_set().rules]
