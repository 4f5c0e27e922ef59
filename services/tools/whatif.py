"""``mash whatif``: the screening what-if with ``mash``'s conventions.

The what-if itself (two rule-set versions over a JSONL of contacts, the outcome matrix
and the contacts that move) belongs to screening: ``services/screening/whatif.py``. This
wrapper imports it only when the command is used, so every other ``mash`` command works
without it, and gives it what every ``mash`` command does: ``-`` for stdin and stdout,
``--json`` on stdout, and errors as one line naming what the user typed.
"""

from __future__ import annotations

import importlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.tools.errors import EXIT_OK, ToolError, UsageError
from services.tools.stdio import is_stdio, reading, writing

#: The module that does the work, and what ``mash`` uses of it.
WHATIF_MODULE = "services.screening.whatif"
NEEDED = ("run_whatif", "contacts_from_lines", "load_rule_set", "RuleSetError")


@dataclass(frozen=True)
class WhatIfRequest:
    """One ``mash whatif`` run; ``-`` for ``contacts`` is stdin, for an output stdout."""

    contacts: Path
    baseline: str
    candidate: str
    json_out: Path | None = None
    csv_out: Path | None = None


def _screening() -> Any:
    try:
        module = importlib.import_module(WHATIF_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name not in (WHATIF_MODULE, "services.screening"):
            raise  # the module exists but something it imports is missing: a real fault
        raise UsageError(
            f"whatif is not available in this build: {WHATIF_MODULE} is not installed"
        ) from None
    missing = [name for name in NEEDED if not hasattr(module, name)]
    if missing:
        raise UsageError(f"whatif is not available: {WHATIF_MODULE} has no {missing[0]}")
    return module


def _rule_set(screening: Any, given: str) -> Any:
    try:
        return screening.load_rule_set(given)
    except screening.RuleSetError as exc:
        # The engine's messages are "<file it opened>: <problem>"; for a shipped name that
        # file is inside the install, which tells the user nothing: name what they typed.
        problem = str(exc).partition(": ")[2] or str(exc)
        raise UsageError(f"rule set {given}: {problem}") from None


def run_whatif(request: WhatIfRequest) -> int:
    """Compare the two rule sets; print the report, write the JSON and CSV asked for.

    The report goes to stdout unless an output does (``--json`` alone replaces it, a
    ``--csv -`` sends it to stderr).
    """
    if is_stdio(request.json_out) and is_stdio(request.csv_out):
        raise UsageError("--json and --csv cannot both go to stdout")
    screening = _screening()
    baseline = _rule_set(screening, request.baseline)
    candidate = _rule_set(screening, request.candidate)
    with reading(request.contacts) as lines:
        try:
            result = screening.run_whatif(screening.contacts_from_lines(lines), baseline, candidate)
        except (OSError, UnicodeDecodeError) as exc:
            problem = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise ToolError(f"cannot read {request.contacts} ({problem})") from None
    if request.json_out is not None:
        data = result.to_dict()
        for side, given in (("baseline", request.baseline), ("candidate", request.candidate)):
            # The rule set as given, not where the install keeps it: the same everywhere.
            data[side] = {**data[side], "path": given}
        with writing(request.json_out) as out:
            out.write(json.dumps(data, indent=2) + "\n")
    if request.csv_out is not None:
        with writing(request.csv_out) as out:
            result.write_csv(out)
    if not is_stdio(request.json_out):
        print(result.render(), file=sys.stderr if is_stdio(request.csv_out) else sys.stdout)
    return EXIT_OK
