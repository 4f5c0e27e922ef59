"""``-`` as a file name: stdin where a command reads a file, stdout where it writes one.

The Unix convention, so ``mash`` commands pipe into each other and into other tools. A
file literally named ``-`` needs a directory in its path (``$PWD/-``): pathlib reads
``./-`` as ``-``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from mash.errors import ToolError

STDIO = "-"


def is_stdio(path: Path | str | None) -> bool:
    """Whether ``path`` is ``-``."""
    return path is not None and str(path) == STDIO


@contextlib.contextmanager
def reading(path: Path) -> Iterator[TextIO]:
    """``path`` open for reading as UTF-8 text, or stdin for ``-``; ToolError if unreadable."""
    if is_stdio(path):
        yield sys.stdin
        return
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise ToolError(f"cannot read {path} ({exc.strerror})") from None
    with handle:
        yield handle


@contextlib.contextmanager
def writing(path: Path) -> Iterator[TextIO]:
    """``path`` open for writing text, or stdout for ``-`` (flushed, never closed)."""
    if is_stdio(path):
        yield sys.stdout
        sys.stdout.flush()
        return
    try:
        handle = path.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        raise ToolError(f"cannot write {path} ({exc.strerror})") from None
    with handle:
        yield handle
