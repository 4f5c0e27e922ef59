"""What-if: two rule sets over a JSONL of contacts, with history, no Kafka or database."""

from __future__ import annotations

import base64
import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas import examples
from schemas.cloudevents import encode_binary, encode_structured
from schemas.events import Contact, Decision
from services.screening.ruleset import RULESETS_DIR
from services.screening.whatif import (
    Skipped,
    contact_from_line,
    contacts_from_lines,
    main,
    run_whatif,
)
from tests.unit.screening.test_history import T0, police_at

DEFAULT_TEXT = (RULESETS_DIR / "default-v3.yaml").read_text(encoding="utf-8")


def candidate(tmp_path: Path, old: str, new: str, version: str = "candidate-v2") -> Path:
    """A copy of default-v3 with one change."""
    assert old in DEFAULT_TEXT
    path = tmp_path / f"{version}.yaml"
    text = DEFAULT_TEXT.replace(old, new, 1).replace("version: default-v3", f"version: {version}")
    path.write_text(text, encoding="utf-8")
    return path


def replay_line(contact: Contact, *, structured: bool = False, offset: int = 0) -> str:
    """A replay record as ``mash replay`` writes it, carrying ``contact``."""
    encode = encode_structured if structured else encode_binary
    value, headers = encode(
        event_id=contact.contact_id,
        source="urn:mash-router:intake",
        data=contact,
        time=datetime(2024, 3, 13, tzinfo=UTC),
    )
    return json.dumps(
        {
            "topic": "mash.contacts.v1",
            "partition": 0,
            "offset": offset,
            "timestamp": 1710288000000,
            "key_b64": base64.b64encode(contact.subject_key.encode()).decode(),
            "value_b64": base64.b64encode(value).decode(),
            "headers": [[k, base64.b64encode(v).decode()] for k, v in headers],
        }
    )


def write_jsonl(path: Path, lines: list[str]) -> Path:
    """Write lines to a JSONL file."""
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_every_line_format_yields_the_same_contact() -> None:
    contact = Contact.model_validate(examples.contact())
    structured_event, _ = encode_structured(
        event_id="e1", source="urn:x", data=contact, time=datetime(2024, 3, 13, tzinfo=UTC)
    )
    for line in (
        contact.model_dump_json(),
        replay_line(contact),
        replay_line(contact, structured=True),
        structured_event.decode(),
    ):
        assert contact_from_line(line) == contact


def test_lines_without_a_contact_are_skipped_with_a_reason_code() -> None:
    decision = Decision.model_validate(examples.decision())
    value, headers = encode_binary(
        event_id="d1", source="urn:x", data=decision, time=datetime(2024, 3, 13, tzinfo=UTC)
    )
    not_a_contact = json.dumps(
        {
            "value_b64": base64.b64encode(value).decode(),
            "headers": [[k, base64.b64encode(v).decode()] for k, v in headers],
        }
    )
    lines = ["{broken", "", "[1, 2]", json.dumps({"contact_id": "X"}), not_a_contact]
    got = list(contacts_from_lines(lines))
    assert got == [
        (1, Skipped(1, "malformed_json")),
        (3, Skipped(3, "not_an_object")),
        (4, Skipped(4, "schema_violation")),
        (5, Skipped(5, "unknown_type")),
    ]


def test_the_same_rule_set_moves_nothing() -> None:
    contacts = [police_at(f"C{n}", T0 + timedelta(days=n)) for n in range(3)]
    result = run_whatif(contacts, "default-v3", "default-v3")
    assert result.moved == ()
    assert result.screened == 3
    assert set(result.matrix) == {(o, o) for o, _ in result.matrix}


def test_a_changed_rule_moves_exactly_the_contacts_it_touches(tmp_path: Path) -> None:
    # Candidate: DASH medium with a child present becomes s47 instead of an assessment.
    rules = candidate(
        tmp_path,
        "  - id: R3-DA-MED\n    level: 3\n    outcome: initial_assessment",
        "  - id: R3-DA-MED\n    level: 4\n    outcome: s47",
    )
    contacts = [
        police_at("MED-1", T0, dash="medium", key="HH-A"),
        police_at("STD-1", T0, dash="standard", key="HH-B"),
        police_at("HIGH-1", T0, dash="high", key="HH-C"),
    ]
    result = run_whatif(contacts, "default-v3", rules)
    assert result.candidate.version == "candidate-v2"
    assert [(m.contact_id, m.from_outcome, m.to_outcome) for m in result.moved] == [
        ("MED-1", "initial_assessment", "s47")
    ]
    assert result.moved[0].candidate_rules == ("R3-DA-MED",)
    assert result.count("initial_assessment", "s47") == 1
    assert result.count("single_agency", "single_agency") == 1
    assert result.count("s47", "s47") == 1
    assert result.totals("candidate")["s47"] == 2


def test_history_accumulates_in_file_order_for_the_stateful_rules(tmp_path: Path) -> None:
    # Candidate: repeat domestic abuse needs a fourth notification, not a third.
    rules = candidate(
        tmp_path,
        "        - count_at_least: {da_notifications: 3}\n\n  - id: R3-DA-BABY",
        "        - count_at_least: {da_notifications: 4}\n\n  - id: R3-DA-BABY",
    )
    siblings = [
        police_at(f"DA-{n}", T0 + timedelta(days=100 * n), subjects=(f"SUBJ-{n}",))
        for n in range(3)
    ]
    lines = [replay_line(c, offset=n) for n, c in enumerate(siblings)]
    lines.insert(2, replay_line(siblings[0], offset=9))  # a replayed duplicate
    source = write_jsonl(tmp_path / "contacts.jsonl", lines)
    result = run_whatif(source, "default-v3", rules)
    assert result.screened == 3
    assert result.duplicates == 1
    # Only the third moves. It falls to no further action, not single agency: R2-DA-STD
    # still excludes a third notification — the kind of gap a what-if run shows up.
    assert [(m.contact_id, m.from_outcome, m.to_outcome) for m in result.moved] == [
        ("DA-2", "initial_assessment", "no_further_action")
    ]
    assert result.moved[0].baseline_rules == ("R3-DA-REPEAT",)


def test_a_longer_domestic_abuse_window_shows_what_it_would_move(tmp_path: Path) -> None:
    # Windows are rule-set data (item 10 of the domain issue), so whatif can try them.
    rules = candidate(tmp_path, "  da_notifications: 365", "  da_notifications: 730")
    contacts = [police_at(f"DA-{n}", T0 + timedelta(days=200 * n)) for n in range(3)]
    result = run_whatif(contacts, "default-v3", rules)
    # The third is 400 days after the first: one earlier notification within 365 days,
    # two within 730, so only the longer window makes it a repeat.
    assert [(m.contact_id, m.from_outcome, m.to_outcome) for m in result.moved] == [
        ("DA-2", "single_agency", "initial_assessment")
    ]
    assert result.moved[0].candidate_rules[0] == "R3-DA-REPEAT"


def test_the_command_line_writes_json_and_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = candidate(
        tmp_path,
        "  - id: R3-DA-MED\n    level: 3\n    outcome: initial_assessment",
        "  - id: R3-DA-MED\n    level: 4\n    outcome: s47",
    )
    source = write_jsonl(
        tmp_path / "in.jsonl",
        [
            police_at("MED-1", T0, dash="medium", key="HH-A").model_dump_json(),
            police_at("STD-1", T0, dash="standard", key="HH-B").model_dump_json(),
            "not json",
        ],
    )
    out_json, out_csv = tmp_path / "out.json", tmp_path / "out.csv"
    code = main(
        [
            "--baseline",
            "default-v3",
            "--candidate",
            str(rules),
            str(source),
            "--json",
            str(out_json),
            "--csv",
            str(out_csv),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "MED-1: initial_assessment -> s47" in printed
    assert "skipped lines: malformed_json 1" in printed
    body = json.loads(out_json.read_text())
    assert body["matrix"]["initial_assessment"]["s47"] == 1
    assert body["moved_count"] == 1
    assert body["skipped"] == [{"line": 3, "reason": "malformed_json"}]
    rows = list(csv.DictReader(out_csv.open()))
    assert [(r["contact_id"], r["from"], r["to"], r["candidate_rules"]) for r in rows] == [
        ("MED-1", "initial_assessment", "s47", "R3-DA-MED")
    ]


def test_the_command_line_fails_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = candidate(tmp_path, "level: 4\n", "level: 5\n", version="bad-v1")
    source = write_jsonl(tmp_path / "in.jsonl", [])
    assert main(["--candidate", str(bad), str(source)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("whatif: invalid rule set: ")
    assert main(["--candidate", "default-v3", str(tmp_path / "missing.jsonl")]) == 1
    assert "missing.jsonl" in capsys.readouterr().err
