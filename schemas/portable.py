"""Make pydantic's JSON Schema portable to code generators, without changing what it accepts.

pydantic writes draft 2020-12: nested models under ``$defs``, an optional field as
``anyOf: [X, {"type": "null"}]``. Generators read that badly: Modelina refuses a
2020-12 document and some of its targets type such unions loosely (``dynamic`` in Dart),
and quicktype stops at the date-of-birth rule ("Trying to make an empty union").
:func:`portable` rewrites a schema into the draft-07 form that quicktype, Modelina and
Ajv all read, keeping its meaning: every rewrite below accepts exactly the
same JSON values as the form it replaces (the contract tests validate the same valid and
invalid payloads against the result).

- ``$defs`` become ``definitions`` (and every ``#/$defs/`` reference follows);
- ``anyOf: [X, {"type": "null"}]`` with a simple ``X`` (one ``type``, no reference or
  composition) becomes ``X`` with ``"type": [X's type, "null"]``. An enumeration stays an
  ``anyOf`` (``null`` inside an ``enum`` comes out of Modelina as the string ``'null'``)
  but its member is titled after the field (``OverrideReason``), so generators name the
  type instead of calling it ``OverrideReasonAnyOf_0``;
- ``oneOf: [A, B]`` of two presence conditions (``required`` plus ``properties``, as the
  date-of-birth rule "exactly one of date_of_birth and expected_date_of_birth" is written)
  becomes ``if: A, then: {not: B}, else: B``: the same exclusive or, in conditionals that
  generators leave alone (on the ``oneOf`` quicktype fails with the error above).

Everything here is pure: it takes a schema and returns a new one.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = [
    "DRAFT_07",
    "collapse_nullable",
    "definitions_not_defs",
    "exclusive_or_as_conditional",
    "portable",
    "type_name",
]

DRAFT_07 = "http://json-schema.org/draft-07/schema#"
"""The dialect the portable schemas declare: the newest one every generator here reads."""

_COMPOSITION = ("$ref", "anyOf", "oneOf", "allOf", "not", "if", "then", "else")
_NULL: dict[str, Any] = {"type": "null"}


def _map(node: Any, rewrite: Any) -> Any:
    """Apply ``rewrite`` to every object in ``node``, innermost first; return a new tree."""
    if isinstance(node, dict):
        return rewrite({key: _map(value, rewrite) for key, value in node.items()})
    if isinstance(node, list):
        return [_map(item, rewrite) for item in node]
    return node


def definitions_not_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """``$defs`` renamed ``definitions``, with every ``#/$defs/...`` reference rewritten."""

    def rewrite(node: dict[str, Any]) -> dict[str, Any]:
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            node = {**node, "$ref": "#/definitions/" + ref.removeprefix("#/$defs/")}
        return node

    result: dict[str, Any] = _map(schema, rewrite)
    if "$defs" in result:
        result["definitions"] = result.pop("$defs")
    return result


def _simple(member: Any) -> bool:
    return (
        isinstance(member, dict)
        and isinstance(member.get("type"), str)
        and member["type"] != "null"
        and not any(key in member for key in _COMPOSITION)
    )


def type_name(title: str) -> str:
    """A title as a type name: ``"Override Reason"`` -> ``"OverrideReason"``."""
    return "".join(word[:1].upper() + word[1:] for word in title.replace("_", " ").split())


def collapse_nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """Every ``anyOf: [X, {"type": "null"}]`` with a simple ``X`` as one nullable ``X``; an
    enumeration ``X`` keeps the ``anyOf`` and is titled after the field."""

    def rewrite(node: dict[str, Any]) -> dict[str, Any]:
        members = node.get("anyOf")
        if not isinstance(members, list) or len(members) != 2 or _NULL not in members:
            return node
        (member,) = [m for m in members if m != _NULL]
        if not _simple(member):
            return node
        if "enum" in member or "const" in member:
            title = node.get("title")
            if "title" in member or not isinstance(title, str):
                return node
            named = {**member, "title": type_name(title)}
            return {**node, "anyOf": [named if m is member else m for m in members]}
        merged: dict[str, Any] = {**member, "type": [member["type"], "null"]}
        outer = {key: value for key, value in node.items() if key != "anyOf"}
        # The field's own annotations (title, description, default) win over the type's.
        return {**merged, **outer}

    result: dict[str, Any] = _map(schema, rewrite)
    return result


def _presence(branch: Any) -> bool:
    return (
        isinstance(branch, dict)
        and set(branch) == {"required", "properties"}
        and isinstance(branch["required"], list)
    )


def exclusive_or_as_conditional(schema: dict[str, Any]) -> dict[str, Any]:
    """Every ``oneOf: [A, B]`` of two presence conditions as ``if A then not B else B``."""

    def rewrite(node: dict[str, Any]) -> dict[str, Any]:
        branches = node.get("oneOf")
        if not (isinstance(branches, list) and len(branches) == 2):
            return node
        first, second = branches
        if not (_presence(first) and _presence(second)):
            return node
        if any(key in node for key in ("if", "then", "else")):
            return node
        rest = {key: value for key, value in node.items() if key != "oneOf"}
        return {**rest, "if": first, "then": {"not": second}, "else": second}

    result: dict[str, Any] = _map(schema, rewrite)
    return result


def portable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (pydantic's, draft 2020-12) in the portable draft-07 form; a new object."""
    result = exclusive_or_as_conditional(
        collapse_nullable(definitions_not_defs(copy.deepcopy(schema)))
    )
    result["$schema"] = DRAFT_07
    return result
