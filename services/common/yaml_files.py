"""Declarative YAML files read into a pydantic model: one loader, one way to refuse a file.

The hub's configuration is YAML that practitioners and operators edit by hand: topologies,
the deadlines table, the outcome wording, webhook endpoints, Kafka principals, database
roles, rule sets, the simulator's calibration. A mistake in any of them must stop the
process with **one line naming the file and the first problem**, in the same words
whichever file it is (``<what>`` is the caller's noun, e.g. ``topology``)::

    <file>: cannot read <what> file (<reason>)
    <file>: no shipped <what> '<name>' (shipped: <name>, <name>)
    <file>: not valid YAML at line <n>: <problem>
    <file>: expected a mapping with <the model's required keys>
    <file>: <where>: <problem> (and <n> more problem(s))

Each caller passes its own exception class, so code that reads a topology still catches
``TopologyError``. A file shipped with the code can be named instead of given as a path
(``shipped_in``): a bare name such as ``two-hubs`` is ``<shipped_in>/two-hubs.yaml``;
anything with a path separator or a ``.yaml``/``.yml`` suffix, and any ``Path``, is a
path. Text already in hand (stdin, a string in a test) is parsed with ``text=``, the
source then being only the name used in messages.

An empty file is the empty mapping when the model has a default for every field (all
defaults), and is refused otherwise: a file that says nothing cannot say what it must.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class YamlDocument:
    """A YAML file as read: where from, its exact bytes, and what they parse to."""

    path: Path
    """The file read (a shipped name resolved), or the name given with ``text``."""
    data: bytes
    """The exact bytes, e.g. to hash as the identity of a version."""
    content: Any
    """The parsed YAML (None for an empty file)."""
    shipped: bool = False
    """Whether ``path`` was named as a shipped file rather than given as a path."""


def load_yaml_model(
    source: str | Path,
    model: type[M],
    error: type[Exception],
    *,
    what: str = "YAML",
    shipped_in: Path | None = None,
    text: str | bytes | None = None,
) -> M:
    """``source`` read, parsed and validated as ``model``; ``error`` with one line if not.

    The one way to load a YAML configuration file, so that every file is refused in the
    same words (module docstring). ``what`` names the file in messages; ``shipped_in``
    lets ``source`` be the bare name of a file shipped there; ``text`` is parsed instead
    of reading ``source``, which then only names it.
    """
    document = read_yaml(source, error, what=what, shipped_in=shipped_in, text=text)
    return validate_yaml(document, model, error)


def read_yaml(
    source: str | Path,
    error: type[Exception],
    *,
    what: str = "YAML",
    shipped_in: Path | None = None,
    text: str | bytes | None = None,
) -> YamlDocument:
    """The file (or ``text``) read and parsed, not yet validated; ``error`` if it cannot be.

    For a loader that needs more than a model (the bytes to hash, the content to build
    from by hand); otherwise use :func:`load_yaml_model`. Arguments as there.
    """
    if text is not None:
        path, shipped = Path(source), False
        data = text.encode() if isinstance(text, str) else text
    else:
        path, shipped = _resolve(source, shipped_in)
        if shipped and not path.is_file():
            known = ", ".join(sorted(p.stem for p in path.parent.glob("*.yaml")))
            raise _refusal(error, path, f"no shipped {what} {path.stem!r} (shipped: {known})")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise _refusal(error, path, f"cannot read {what} file ({_reason(exc)})") from None
    try:
        content = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).partition("\n")[0]
        raise _refusal(error, path, f"not valid YAML{line}: {problem}") from None
    return YamlDocument(path, data, content, shipped)


def validate_yaml(document: YamlDocument, model: type[M], error: type[Exception]) -> M:
    """``document``'s content validated as ``model``; ``error`` naming the first problem."""
    content = document.content
    required = [f.alias or name for name, f in model.model_fields.items() if f.is_required()]
    if content is None and not required:
        content = {}
    if not isinstance(content, dict):
        keys = required or [f.alias or name for name, f in model.model_fields.items()]
        raise _refusal(error, document.path, f"expected a mapping with {', '.join(keys)}")
    try:
        return model.model_validate(content)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        problem = f"{where}: {message}" if where else message
        more = exc.error_count() - 1
        problem += f" (and {more} more problem(s))" if more else ""
        raise _refusal(error, document.path, problem) from None


def _resolve(source: str | Path, shipped_in: Path | None) -> tuple[Path, bool]:
    # A bare name ("two-hubs") is a shipped file; anything that looks like a file is a path.
    if shipped_in is None or isinstance(source, Path):
        return Path(source), False
    looks_like_path = "/" in source or "\\" in source or source.endswith((".yaml", ".yml"))
    if looks_like_path:
        return Path(source), False
    return shipped_in / f"{source}.yaml", True


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _refusal(error: type[Exception], path: Path, problem: str) -> Exception:
    # Whatever the problem says (a YAML problem, a validator's message), it stays one line.
    return error(f"{path}: {' '.join(problem.split())}")
