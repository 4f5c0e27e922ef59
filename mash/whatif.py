"""``mash whatif``: the screening what-if with ``mash``'s conventions.

The what-if itself (two rule-set versions over a JSONL of contacts, the outcome matrix
and the contacts that move) belongs to screening: ``services/screening/whatif.py``,
imported here directly (the CLI ships with the services). This wrapper gives it what
every ``mash`` command does: ``-`` for stdin and stdout, ``--json`` on stdout, and
errors as one line naming what the user typed.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from mash.errors import EXIT_OK, ToolError, UsageError
from mash.stdio import is_stdio, reading, writing
from services.screening.ruleset import RuleSet, RuleSetError, load_rule_set
from services.screening.whatif import contacts_from_lines
from services.screening.whatif import run_whatif as compare_rule_sets


@dataclass(frozen=True)
class WhatIfRequest:
    """One ``mash whatif`` run; ``-`` for ``contacts`` is stdin, for an output stdout."""

    contacts: Path
    baseline: str
    candidate: str
    json_out: Path | None = None
    csv_out: Path | None = None


def _rule_set(given: str) -> RuleSet:
    try:
        return load_rule_set(given)
    except RuleSetError as exc:
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
    baseline = _rule_set(request.baseline)
    candidate = _rule_set(request.candidate)
    with reading(request.contacts) as lines:
        try:
            result = compare_rule_sets(contacts_from_lines(lines), baseline, candidate)
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
