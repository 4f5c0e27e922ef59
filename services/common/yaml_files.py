"""Declarative YAML files read into a pydantic model, refused with one line naming the file,
the place and the first problem (the principals, database-roles and rule-set files)."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def load_yaml_model(
    path: Path, model: type[M], error: type[Exception], *, text: str | bytes | None = None
) -> M:
    """``path`` parsed and validated as ``model``; ``error`` (one line) when it cannot be.

    ``text`` is the file's content when the caller has read it already (the rule sets are
    hashed from the very bytes they are read from); ``path`` then only names the file.
    """
    try:
        raw = yaml.safe_load(path.read_text() if text is None else text)
    except OSError as exc:
        raise error(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise error(f"{path}: not valid YAML{line}: {problem}") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        raise error(
            f"{path}: {where + ': ' if where else ''}{message} ({exc.error_count()} error(s))"
        ) from None
