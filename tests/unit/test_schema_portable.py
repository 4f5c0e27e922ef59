"""schemas.portable: each rewrite is pure, does what it says, and keeps the schema's meaning.

Meaning is checked by validation: for every event model, pydantic's own draft 2020-12
schema and the portable draft-07 one give the same verdict on the examples and on edits
of them that the contract accepts or refuses.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest

from schemas.base import ContractModel
from schemas.export import example_of
from schemas.inbound import CaseStatus, Consent, PoliceNotification, QueueUpdate, Referral
from schemas.portable import (
    DRAFT_07,
    collapse_nullable,
    definitions_not_defs,
    exclusive_or_as_conditional,
    portable,
    type_name,
)
from schemas.types import CE_TYPES

NULL = {"type": "null"}


def test_defs_become_definitions_and_references_follow() -> None:
    """$defs is renamed and every #/$defs/ reference, however deep, points at definitions."""
    schema = {
        "$defs": {"A": {"type": "string"}, "B": {"items": {"$ref": "#/$defs/A"}}},
        "properties": {"a": {"anyOf": [{"$ref": "#/$defs/A"}, NULL]}, "b": {"$ref": "#/$defs/B"}},
    }
    before = copy.deepcopy(schema)
    result = definitions_not_defs(schema)
    assert schema == before, "the input must not change"
    assert "$defs" not in json.dumps(result)
    assert result["definitions"]["B"] == {"items": {"$ref": "#/definitions/A"}}
    assert result["properties"]["a"]["anyOf"][0] == {"$ref": "#/definitions/A"}
    assert result["properties"]["b"] == {"$ref": "#/definitions/B"}


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        (
            {"anyOf": [{"type": "string", "maxLength": 5}, NULL], "default": None, "title": "T"},
            {"type": ["string", "null"], "maxLength": 5, "default": None, "title": "T"},
        ),
        (
            {"anyOf": [NULL, {"type": "integer", "minimum": 0}]},
            {"type": ["integer", "null"], "minimum": 0},
        ),
        (
            # The field's description wins over its type's.
            {"anyOf": [{"type": "string", "description": "type"}, NULL], "description": "field"},
            {"type": ["string", "null"], "description": "field"},
        ),
    ],
)
def test_simple_nullable_collapses_to_a_type_list(
    field: dict[str, Any], expected: dict[str, Any]
) -> None:
    """anyOf [X, null] with a simple X is X with null added to its type (and enum)."""
    assert collapse_nullable({"properties": {"f": field}}) == {"properties": {"f": expected}}


@pytest.mark.parametrize("key", ["enum", "const"])
def test_nullable_enumeration_is_named_after_its_field(key: str) -> None:
    """A nullable enumeration stays an anyOf; its member takes the field's title as a name."""
    values: Any = ["a", "b"] if key == "enum" else "a"
    field = {"anyOf": [{"type": "string", key: values}, NULL], "title": "Override Reason"}
    named = {"type": "string", key: values, "title": "OverrideReason"}
    assert collapse_nullable({"properties": {"f": field}}) == {
        "properties": {"f": {**field, "anyOf": [named, NULL]}}
    }


def test_type_names() -> None:
    """Titles become PascalCase type names."""
    assert type_name("Override Reason") == "OverrideReason"
    assert type_name("match_basis") == "MatchBasis"
    assert type_name("Rag") == "Rag"


@pytest.mark.parametrize(
    "field",
    [
        {"anyOf": [{"$ref": "#/definitions/A"}, NULL]},
        {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        {"anyOf": [{"type": "string"}, {"type": "integer"}, NULL]},
        {"anyOf": [{"type": ["string", "integer"]}, NULL]},
        {"anyOf": [{"type": "string", "enum": ["a"], "title": "Own"}, NULL], "title": "F"},
        {"anyOf": [{"type": "string", "enum": ["a"]}, NULL]},
        {"anyOf": [{"type": "object", "allOf": [{"required": ["a"]}]}, NULL]},
    ],
)
def test_other_unions_are_left_alone(field: dict[str, Any]) -> None:
    """A reference, a non-null union or a composed member keeps its anyOf."""
    assert collapse_nullable({"properties": {"f": field}}) == {"properties": {"f": field}}


def _present(name: str) -> dict[str, Any]:
    return {"required": [name], "properties": {name: {"type": "string"}}}


def test_exactly_one_of_two_fields_becomes_a_conditional() -> None:
    """oneOf [A present, B present] is: if A then not B else B."""
    node = {"allOf": [{"oneOf": [_present("a"), _present("b")]}]}
    assert exclusive_or_as_conditional(node) == {
        "allOf": [{"if": _present("a"), "then": {"not": _present("b")}, "else": _present("b")}]
    }


@pytest.mark.parametrize(
    "node",
    [
        {"oneOf": [{"type": "string"}, {"type": "integer"}]},
        {"oneOf": [_present("a"), _present("b"), _present("c")]},
        {"oneOf": [_present("a"), _present("b")], "if": _present("c"), "then": _present("d")},
    ],
)
def test_other_one_ofs_are_left_alone(node: dict[str, Any]) -> None:
    """Only a two-way presence rule is rewritten (and never over an existing conditional)."""
    assert exclusive_or_as_conditional(node) == node


@pytest.mark.parametrize("model", list(CE_TYPES))
def test_portable_schemas_have_no_constructs_generators_choke_on(
    model: type[ContractModel],
) -> None:
    """No $defs, no oneOf, no anyOf around a simple type; draft-07 dialect; input unchanged."""
    original = model.model_json_schema(mode="validation")
    before = copy.deepcopy(original)
    result = portable(original)
    assert original == before
    assert result["$schema"] == DRAFT_07
    text = json.dumps(result)
    assert "$defs" not in text
    assert '"oneOf"' not in text

    def check(node: Any) -> None:
        if isinstance(node, dict):
            members = node.get("anyOf")
            if isinstance(members, list) and NULL in members:
                # What stays a union with null: a nested model, or a named enumeration.
                assert all("$ref" in m or "title" in m for m in members if m != NULL), node
            for value in node.values():
                check(value)
        elif isinstance(node, list):
            for item in node:
                check(item)

    check(result)


Edit = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Edit:
    def edit(payload: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = payload
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[last] = value

    return edit


def _delete(path: str) -> Edit:
    def edit(payload: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = payload
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        del target[last]

    return edit


#: Each event model's example builder: uk.gov.mash.police-notification.v1 -> police_notification.
EXAMPLES = {model: example_of(ce_type) for model, ce_type in CE_TYPES.items()}


#: Edits that probe each rewritten construct: nullable fields, null in an enum, the
#: exactly-one-of date rule, conditionals over nullable fields.
EDITS: list[tuple[type[ContractModel], str, Edit]] = [
    (Referral, "unborn", _set("children.0.date_of_birth", None)),
    (Referral, "unborn with a date", _set("children.0.expected_date_of_birth", "2024-09-01")),
    (Referral, "no date at all", _delete("children.0.date_of_birth")),
    (Referral, "null dob and edob", _set("children.0.expected_date_of_birth", None)),
    (Referral, "null town", _set("children.0.address.town", None)),
    (Referral, "number for town", _set("children.0.address.town", 5)),
    (Referral, "null postcode", _set("children.0.address.postcode", None)),
    (Referral, "no fixed abode", _set("children.0.no_fixed_abode", True)),
    (Referral, "null address", _set("children.0.address", None)),
    (Referral, "null nhs number", _set("children.0.nhs_number", None)),
    (Referral, "bad nhs pattern", _set("children.0.nhs_number", "12345")),
    (Referral, "null given name", _set("children.0.given_name", None)),
    (Referral, "blank given name", _set("children.0.given_name", " ")),
    (Referral, "null factors", _set("factors", None)),
    (Referral, "consent refused", _set("consent", {"obtained": False})),
    (Referral, "null override", _set("consent", {"obtained": False, "override_reason": None})),
    (Referral, "bad override", _set("consent", {"obtained": False, "override_reason": "x"})),
    (
        Referral,
        "override",
        _set("consent", {"obtained": False, "override_reason": "undue_delay"}),
    ),
    (PoliceNotification, "null dash risk", _set("dash_risk", None)),
    (PoliceNotification, "other incident", _set("incident_type", "missing_child")),
    (PoliceNotification, "null dash score", _set("dash_score", None)),
    (PoliceNotification, "dash score 28", _set("dash_score", 28)),
    (PoliceNotification, "null crime ref", _set("crime_reference", None)),
    (PoliceNotification, "unknown field", _set("colour", "blue")),
    (QueueUpdate, "closed without reason", _set("status", "closed")),
    (QueueUpdate, "reason while open", _set("closure_reason", "RC1")),
    (QueueUpdate, "null reason", _set("closure_reason", None)),
    (CaseStatus, "null team", _set("team", None)),
    (CaseStatus, "unborn case child", _set("child.date_of_birth", None)),
]


def _verdicts(model: type[ContractModel], payload: dict[str, Any]) -> tuple[bool, bool]:
    original = jsonschema.Draft202012Validator(model.model_json_schema(mode="validation"))
    moved = jsonschema.Draft7Validator(portable(model.model_json_schema(mode="validation")))
    return original.is_valid(payload), moved.is_valid(payload)


@pytest.mark.parametrize("model", list(CE_TYPES))
def test_examples_get_the_same_verdict(model: type[ContractModel]) -> None:
    """Every example event is valid under both the original and the portable schema."""
    assert _verdicts(model, EXAMPLES[model]()) == (True, True)


@pytest.mark.parametrize(("model", "label", "edit"), EDITS, ids=[e[1] for e in EDITS])
def test_edits_get_the_same_verdict(model: type[ContractModel], label: str, edit: Edit) -> None:
    """An edited example is accepted or refused alike by the original and portable schemas."""
    payload = EXAMPLES[model]()
    edit(payload)
    original, moved = _verdicts(model, payload)
    assert original == moved, label


def test_the_edits_include_both_verdicts() -> None:
    """The edits are not all valid or all invalid (they would prove little)."""
    verdicts = set()
    for model, _, edit in EDITS:
        payload = EXAMPLES[model]()
        edit(payload)
        verdicts.add(_verdicts(model, payload)[0])
    assert verdicts == {True, False}


def test_consent_rule_survives() -> None:
    """A nested model's conditional (Consent) still refuses a reason next to consent."""
    schema = portable(Consent.model_json_schema(mode="validation"))
    validator = jsonschema.Draft7Validator(schema)
    assert validator.is_valid({"obtained": True})
    assert not validator.is_valid({"obtained": True, "override_reason": "undue_delay"})
    assert not validator.is_valid({"obtained": False})
