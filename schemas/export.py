"""Export the contract models as JSON Schema files: ``python -m schemas.export [--check]``.

Writes ``schemas/json/<ce_type>.schema.json`` for every model in the type registry
(JSON Schema draft-07, sorted keys, 2-space indent, trailing newline) and removes stale
``*.schema.json`` files there. pydantic's schema is made portable first
(:func:`schemas.portable.portable`: ``definitions``, nullable types, no ``oneOf``) so code
generators such as quicktype and Modelina read the files; the title is the model's short
name (``Referral``), the ``$id`` names the ce_type. Beside each schema it writes
``<ce_type>.example.json``, the example event of :mod:`schemas.examples` (what
docs/publishing.md publishes with kcat), checked for drift the same way. With ``--check``
it writes nothing and exits 1, listing the files that differ from what the models produce
now (drift).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from schemas import examples
from schemas.base import ContractModel
from schemas.portable import DRAFT_07, portable
from schemas.types import CE_TYPES

__all__ = [
    "JSON_DIR",
    "SCHEMA_DIALECT",
    "drifted",
    "example_of",
    "main",
    "render",
    "render_all",
    "render_example",
    "write_all",
]

JSON_DIR = Path(__file__).resolve().parent / "json"
SCHEMA_DIALECT = DRAFT_07
# $id is a name, not a location: a URN keeps it stable wherever the files are served.
_ID_PREFIX = "urn:uk:gov:mash:schema:"
#: The files this exporter owns in its directory (others there are left alone).
_PATTERNS = ("*.schema.json", "*.example.json")


def render(model: type[ContractModel], ce_type: str) -> str:
    """Return the JSON Schema text for ``model``, published as ``ce_type``."""
    schema: dict[str, Any] = portable(model.model_json_schema(mode="validation"))
    schema["$schema"] = SCHEMA_DIALECT
    schema["$id"] = _ID_PREFIX + ce_type
    schema["title"] = model.__name__
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def example_of(ce_type: str) -> Callable[[], dict[str, Any]]:
    """The builder in :mod:`schemas.examples` of ``ce_type``'s example event
    (``uk.gov.mash.police-notification.v1`` -> ``examples.police_notification``)."""
    builder: Callable[[], dict[str, Any]] = getattr(
        examples, ce_type.split(".")[3].replace("-", "_")
    )
    return builder


def render_example(ce_type: str) -> str:
    """Return the JSON text of ``ce_type``'s example event (fields in the builder's order)."""
    return json.dumps(example_of(ce_type)(), indent=2, ensure_ascii=False) + "\n"


def render_all() -> dict[str, str]:
    """Return ``{file name: text}``: the schema and the example of every registered model."""
    files = {}
    for model, ce_type in CE_TYPES.items():
        files[f"{ce_type}.schema.json"] = render(model, ce_type)
        files[f"{ce_type}.example.json"] = render_example(ce_type)
    return files


def _owned(directory: Path) -> list[Path]:
    return sorted(path for pattern in _PATTERNS for path in directory.glob(pattern))


def drifted(directory: Path = JSON_DIR) -> list[str]:
    """Return the file names in ``directory`` that are missing, stale or extra."""
    expected = render_all()
    problems = []
    for name, text in sorted(expected.items()):
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            problems.append(name)
    if directory.is_dir():
        problems += [path.name for path in _owned(directory) if path.name not in expected]
    return problems


def write_all(directory: Path = JSON_DIR) -> list[str]:
    """Write every schema file into ``directory`` and delete stale ones; return changed names."""
    changed = drifted(directory)
    directory.mkdir(parents=True, exist_ok=True)
    expected = render_all()
    for name, text in expected.items():
        (directory / name).write_text(text, encoding="utf-8")
    for path in _owned(directory):
        if path.name not in expected:
            path.unlink()
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(prog="python -m schemas.export", description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if any file has drifted"
    )
    parser.add_argument("--dir", type=Path, default=JSON_DIR, help="output directory")
    args = parser.parse_args(argv)
    directory: Path = args.dir
    if args.check:
        problems = drifted(directory)
        for name in problems:
            print(f"drifted: {directory / name}", file=sys.stderr)
        if problems:
            print("run `python -m schemas.export` and commit the result", file=sys.stderr)
            return 1
        return 0
    for name in write_all(directory):
        print(f"wrote {directory / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
