"""What-if: how would outcomes change under another rule set?

    python -m services.screening.whatif --baseline default-v3 --candidate my-rules.yaml \\
        contacts.jsonl [--json out.json] [--csv out.csv]

Runs a JSONL of recorded contacts through two rule-set versions and reports the outcome
matrix (baseline outcome x candidate outcome counts) and every contact whose outcome moves.
No Kafka, no database: the history the stateful rules need (repeat domestic abuse,
escalation, missing episodes) is accumulated in file order with the same pure logic the
service keeps in its Faust table (:mod:`services.screening.history`).

Each line is either a Contact JSON object (``mash.contacts.v1`` payload), or a replay record
as ``mash replay`` writes it — ``{"topic", "partition", "offset", "timestamp", "key_b64",
"value_b64", "headers": [[name, value_b64], ...]}`` — whose value is a CloudEvent (binary
or structured) carrying a Contact. Lines that carry something else (another event type, a
dead letter, a broken line) are counted as skipped with a reason code, never fatal. A
contact seen twice (a replayed topic) is screened once.

:func:`run_whatif` returns a :class:`WhatIfResult`; ``mash whatif`` wraps it.

Over 400 lines on purpose: the comparison and its three renderings (text, JSON, CSV) share
one result type and change together.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import csv
import json
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from schemas.cloudevents import ContractError, decode, validate_data
from schemas.events import Contact, Decision
from schemas.types import ce_type_of
from services.screening.engine import evaluate
from services.screening.history import HistoryBook
from services.screening.rules import LEVEL_OUTCOMES
from services.screening.ruleset import DEFAULT_RULE_SET, RuleSet, RuleSetError, load_rule_set

__all__ = [
    "OUTCOMES",
    "Move",
    "RuleSetInfo",
    "Skipped",
    "WhatIfResult",
    "contacts_from_lines",
    "main",
    "read_contacts",
    "run_whatif",
]

#: Outcomes in level order: the rows and columns of the matrix.
OUTCOMES: tuple[str, ...] = tuple(LEVEL_OUTCOMES[level] for level in sorted(LEVEL_OUTCOMES))
CONTACT_TYPES = {ce_type_of(Contact): Contact}
_REPLAY_KEYS = frozenset({"value_b64", "headers"})


class LineError(ValueError):
    """A JSONL line that carries no usable contact; the message is a short reason code."""


@dataclass(frozen=True)
class RuleSetInfo:
    """Which rule set a side of the comparison used."""

    version: str
    content_hash: str
    path: str

    @classmethod
    def of(cls, rule_set: RuleSet) -> RuleSetInfo:
        """The identity of a loaded rule set."""
        return cls(rule_set.version, rule_set.content_hash, str(rule_set.path))


@dataclass(frozen=True)
class Move:
    """A contact whose outcome differs between the two rule sets."""

    contact_id: str
    contact_reference: str
    hub: str
    from_outcome: str
    to_outcome: str
    from_level: int
    to_level: int
    baseline_rules: tuple[str, ...]
    candidate_rules: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "contact_id": self.contact_id,
            "contact_reference": self.contact_reference,
            "hub": self.hub,
            "from": self.from_outcome,
            "to": self.to_outcome,
            "from_level": self.from_level,
            "to_level": self.to_level,
            "baseline_rules": list(self.baseline_rules),
            "candidate_rules": list(self.candidate_rules),
        }


@dataclass(frozen=True)
class Skipped:
    """A line that was not screened, and why (a code, never the line's content)."""

    line: int
    reason: str


@dataclass(frozen=True)
class WhatIfResult:
    """The comparison of two rule sets over one run of contacts."""

    baseline: RuleSetInfo
    candidate: RuleSetInfo
    screened: int
    matrix: Mapping[tuple[str, str], int]
    """(baseline outcome, candidate outcome) -> number of contacts."""
    moved: tuple[Move, ...]
    duplicates: int = 0
    """Lines repeating a contact already screened (a replayed topic)."""
    skipped: tuple[Skipped, ...] = field(default=())

    def count(self, baseline: str, candidate: str) -> int:
        """Contacts with this pair of outcomes."""
        return self.matrix.get((baseline, candidate), 0)

    def totals(self, side: str) -> dict[str, int]:
        """Outcome counts of one side, ``"baseline"`` or ``"candidate"``."""
        index = 0 if side == "baseline" else 1
        out: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        for pair, n in self.matrix.items():
            out[pair[index]] = out.get(pair[index], 0) + n
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form of the whole result."""
        return {
            "baseline": vars(self.baseline),
            "candidate": vars(self.candidate),
            "screened": self.screened,
            "duplicates": self.duplicates,
            "moved_count": len(self.moved),
            "matrix": {b: {c: self.count(b, c) for c in OUTCOMES} for b in OUTCOMES},
            "baseline_totals": self.totals("baseline"),
            "candidate_totals": self.totals("candidate"),
            "moved": [m.to_dict() for m in self.moved],
            "skipped": [vars(s) for s in self.skipped],
        }

    def write_json(self, path: Path) -> None:
        """Write :meth:`to_dict` as JSON."""
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    def write_csv(self, path: Path | TextIO) -> None:
        """Write one row per contact that moves, to a file or an open text stream."""
        if isinstance(path, Path):
            with path.open("w", newline="", encoding="utf-8") as out:
                self.write_csv(out)
            return
        writer = csv.writer(path)
        writer.writerow(
            [
                "contact_id",
                "contact_reference",
                "hub",
                "from",
                "to",
                "from_level",
                "to_level",
                "baseline_rules",
                "candidate_rules",
            ]
        )
        for m in self.moved:
            writer.writerow(
                [
                    m.contact_id,
                    m.contact_reference,
                    m.hub,
                    m.from_outcome,
                    m.to_outcome,
                    m.from_level,
                    m.to_level,
                    " ".join(m.baseline_rules),
                    " ".join(m.candidate_rules),
                ]
            )

    def render(self, max_moves: int = 20) -> str:
        """A plain-text report: the matrix, totals and the first contacts that move."""
        width = max(len(o) for o in OUTCOMES) + 2
        corner = "baseline \\ candidate"
        head = f"{corner:<{width + 2}}" + "".join(f"{o:>{width}}" for o in OUTCOMES)
        lines = [
            f"baseline  {self.baseline.version} ({self.baseline.content_hash[:12]})",
            f"candidate {self.candidate.version} ({self.candidate.content_hash[:12]})",
            f"contacts screened: {self.screened}   moved: {len(self.moved)}"
            f"   duplicates: {self.duplicates}   skipped lines: {len(self.skipped)}",
            "",
            head,
        ]
        for b in OUTCOMES:
            lines.append(
                f"{b:<{width + 2}}" + "".join(f"{self.count(b, c):>{width}}" for c in OUTCOMES)
            )
        if self.moved:
            lines += ["", "contacts that move (contact_id: from -> to  [candidate rules]):"]
            for m in self.moved[:max_moves]:
                lines.append(
                    f"  {m.contact_id}: {m.from_outcome} -> {m.to_outcome}"
                    f"  [{' '.join(m.candidate_rules)}]"
                )
            if len(self.moved) > max_moves:
                lines.append(f"  ... and {len(self.moved) - max_moves} more (see --csv/--json)")
        if self.skipped:
            reasons = Counter(s.reason for s in self.skipped)
            lines += [
                "",
                "skipped lines: " + ", ".join(f"{r} {n}" for r, n in sorted(reasons.items())),
            ]
        return "\n".join(lines)


# --- Reading contacts --------------------------------------------------------------------


def _unb64(value: Any, what: str) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise LineError(f"bad_{what}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise LineError(f"bad_{what}") from exc


def _header(item: Any) -> tuple[str, bytes | None]:
    if isinstance(item, list | tuple) and len(item) == 2:
        name, value = item
    elif isinstance(item, dict) and "key" in item:
        name, value = item["key"], item.get("value")
    else:
        raise LineError("bad_headers")
    if not isinstance(name, str):
        raise LineError("bad_headers")
    if value is None:
        return name, None
    try:
        return name, _unb64(value, "headers")
    except LineError:
        # Not base64: taken as the header's text (hand-written files).
        if isinstance(value, str):
            return name, value.encode()
        raise


def _from_cloudevent(value: bytes | None, headers: Sequence[tuple[str, bytes | None]]) -> Contact:
    try:
        payload = validate_data(decode(value, headers), CONTACT_TYPES)
    except ContractError as exc:
        raise LineError(str(exc.reason)) from exc
    return payload


def contact_from_line(text: str) -> Contact:
    """The contact one JSONL line carries; raises LineError (a reason code) otherwise."""
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LineError("malformed_json") from exc
    if not isinstance(body, dict):
        raise LineError("not_an_object")
    if body.keys() >= _REPLAY_KEYS:
        raw_headers = body.get("headers") or []
        if not isinstance(raw_headers, list):
            raise LineError("bad_headers")
        headers = [_header(h) for h in raw_headers]
        return _from_cloudevent(_unb64(body.get("value_b64"), "value_b64"), headers)
    if "specversion" in body:  # a structured-mode CloudEvent written out as a line
        return _from_cloudevent(text.encode(), [("content-type", b"application/cloudevents+json")])
    try:
        return Contact.model_validate(body)
    except ValidationError as exc:
        raise LineError("schema_violation") from exc


def contacts_from_lines(lines: Iterable[str]) -> Iterator[tuple[int, Contact | Skipped]]:
    """(line number, contact or the reason it was skipped) for each non-blank line."""
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            yield number, contact_from_line(text)
        except LineError as exc:
            yield number, Skipped(number, str(exc))


def read_contacts(path: Path) -> Iterator[tuple[int, Contact | Skipped]]:
    """:func:`contacts_from_lines` over a file (read lazily)."""
    with path.open(encoding="utf-8") as lines:
        yield from contacts_from_lines(lines)


# --- The comparison ----------------------------------------------------------------------


def _rule_set(which: str | Path | RuleSet) -> RuleSet:
    return which if isinstance(which, RuleSet) else load_rule_set(which)


def _move(before: Decision, after: Decision) -> Move:
    return Move(
        contact_id=before.contact_id,
        contact_reference=before.contact_reference,
        hub=before.hub,
        from_outcome=before.outcome,
        to_outcome=after.outcome,
        from_level=before.level,
        to_level=after.level,
        baseline_rules=tuple(hit.id for hit in before.rules),
        candidate_rules=tuple(hit.id for hit in after.rules),
    )


def run_whatif(
    contacts: Path | str | Iterable[Contact | Skipped | tuple[int, Contact | Skipped]],
    baseline: str | Path | RuleSet = DEFAULT_RULE_SET,
    candidate: str | Path | RuleSet = DEFAULT_RULE_SET,
) -> WhatIfResult:
    """Screen ``contacts`` (a JSONL path, or contacts in order) under both rule sets.

    History accumulates in the given order, once; each rule set counts it over its own
    windows.
    Each decision's time is the contact's ``recorded_at``, so a run is reproducible.
    Raises RuleSetError (one line) for an invalid rule set and OSError for an unreadable
    file.
    """
    base, cand = _rule_set(baseline), _rule_set(candidate)
    items: Iterable[Any] = (
        read_contacts(Path(contacts)) if isinstance(contacts, str | Path) else contacts
    )
    book = HistoryBook()
    seen: set[str] = set()
    matrix: Counter[tuple[str, str]] = Counter()
    moved: list[Move] = []
    skipped: list[Skipped] = []
    duplicates = 0
    for item in items:
        entry = item[1] if isinstance(item, tuple) else item
        if isinstance(entry, Skipped):
            skipped.append(entry)
            continue
        if entry.contact_id in seen:
            duplicates += 1
            continue
        seen.add(entry.contact_id)
        history = book.remember(entry)
        # Each rule set counts over its own windows, so a window change shows as moves.
        before = evaluate(entry, history.facts_for(entry, base.windows), base, entry.recorded_at)
        after = evaluate(entry, history.facts_for(entry, cand.windows), cand, entry.recorded_at)
        matrix[(before.outcome, after.outcome)] += 1
        if before.outcome != after.outcome:
            moved.append(_move(before, after))
    return WhatIfResult(
        baseline=RuleSetInfo.of(base),
        candidate=RuleSetInfo.of(cand),
        screened=len(seen),
        matrix=dict(matrix),
        moved=tuple(moved),
        duplicates=duplicates,
        skipped=tuple(skipped),
    )


# --- Command line ------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m services.screening.whatif",
        description="Run a JSONL of contacts through two rule-set versions and report the "
        "outcome matrix and the contacts that move. No Kafka, no database.",
        epilog="example: python -m services.screening.whatif --baseline default-v3 "
        "--candidate ./my-rules.yaml contacts.jsonl --csv moved.csv",
    )
    parser.add_argument("contacts", type=Path, help="JSONL of contacts or replay records")
    parser.add_argument(
        "--baseline", default=DEFAULT_RULE_SET, help="rule set: shipped name or YAML path"
    )
    parser.add_argument("--candidate", required=True, help="rule set: shipped name or YAML path")
    parser.add_argument("--json", type=Path, dest="json_out", help="write the result as JSON")
    parser.add_argument("--csv", type=Path, dest="csv_out", help="write moved contacts as CSV")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI: 0 done, 1 unreadable input or output, 2 bad arguments or rule set."""
    args = _parser().parse_args(argv)
    try:
        result = run_whatif(args.contacts, args.baseline, args.candidate)
        if args.json_out:
            result.write_json(args.json_out)
        if args.csv_out:
            result.write_csv(args.csv_out)
    except RuleSetError as exc:
        print(f"whatif: invalid rule set: {exc}", file=sys.stderr)
        return 2
    except (OSError, UnicodeDecodeError) as exc:
        print(
            f"whatif: {getattr(exc, 'filename', None) or args.contacts}: "
            f"{getattr(exc, 'strerror', None) or type(exc).__name__}",
            file=sys.stderr,
        )
        return 1
    print(result.render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
