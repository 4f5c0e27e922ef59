"""Declarative YAML files read into a pydantic model, refused with one line naming the file,
the place and the first problem (the principals and database-roles files)."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def load_yaml_model(
    path: Path, model: type[M], error: type[Exception], *, text: str | None = None
) -> M:
    """``path`` parsed and validated as ``model``; ``error`` (one line) when it cannot be.
    ``text``: the content, already read (stdin), ``path`` then only names it."""
    try:
        raw = yaml.safe_load(path.read_text() if text is None else text)
    except (OSError, yaml.YAMLError) as exc:
        raise error(f"{path}: {exc}") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        raise error(
            f"{path}: {where + ': ' if where else ''}{message} ({exc.error_count()} error(s))"
        ) from None
