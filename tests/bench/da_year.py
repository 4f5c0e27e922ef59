"""A simulated year of police domestic-abuse notifications, screened by a rule set through
the pure engine and history (no Kafka, no database), with the outcome split printed next to
the source review's (docs/domain.md: about 30% no further action, 40% single agency, 7-13%
initial assessment, 24-27% s47). A comparison to read, not a test: it asserts nothing.

    python -m tests.bench.da_year [--notifications 10000] [--seed 7] [--rule-set default-v3]
        [--jsonl out.jsonl]

The generator is seeded and deliberately simple; its assumptions (below) are the knobs,
not facts about Birmingham:

* households have one notification in the year (70%), two (18%), three (8%) or four to six
  (4%), at uniformly random times — so about a quarter of notifications are repeats;
* DASH risk of each incident: standard 58%, medium 28%, high 14% (roughly the national
  shape of police risk grading);
* a child is present or resident in 85% of incidents (the rest: children of a party who
  live elsewhere, or not at home);
* one to three children per household, aged 0-17 (a few unborn), with a school when of
  school age; parental alcohol/drug misuse (1B/2B) noted on 12% of incidents and parental
  mental health (4B) on 8%.

``--jsonl`` writes the contacts (one per line, in arrival order) for the what-if tool.
All people are fictional: ids only, invented names.
"""

from __future__ import annotations

import argparse
import random
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from schemas import examples as ex
from schemas.events import Contact
from services.screening.engine import evaluate
from services.screening.history import HistoryBook
from services.screening.ruleset import DEFAULT_RULE_SET, RuleSet, load_rule_set
from services.screening.whatif import OUTCOMES

YEAR_START = datetime(2024, 1, 1, tzinfo=UTC)
YEAR = timedelta(days=366)
#: The source review's split of DA notification screening outcomes (docs/domain.md).
REVIEW = {
    "no_further_action": "about 30%",
    "single_agency": "about 40%",
    "initial_assessment": "7-13%",
    "s47": "24-27%",
}
INCIDENTS_PER_HOUSEHOLD = ((1, 0.70), (2, 0.18), (3, 0.08), (4, 0.02), (5, 0.01), (6, 0.01))
DASH = (("standard", 0.58), ("medium", 0.28), ("high", 0.14))
PRESENT_OR_RESIDENT = 0.85
PARENT_SUBSTANCE = 0.12
PARENT_MENTAL_HEALTH = 0.08


def _pick(rng: random.Random, table: Iterable[tuple[Any, float]]) -> Any:
    values, weights = zip(*table, strict=True)
    return rng.choices(values, weights=weights)[0]


def _child(rng: random.Random, household: int, n: int) -> dict[str, Any]:
    age_days = rng.randrange(-120, 18 * 365)
    born = (YEAR_START - timedelta(days=age_days)).date()
    unborn = age_days < 0
    school_age = 5 * 365 <= age_days < 16 * 365
    return {
        "subject_id": f"SIM-S-{household:05d}-{n}",
        "child_ref": f"SIM-C-{household:05d}-{n}",
        "household_key": f"SIM-HH-{household:05d}",
        "given_name": f"Simchild{n}",
        "family_name": f"Example-{household:05d}",
        "date_of_birth": None if unborn else born.isoformat(),
        "expected_date_of_birth": born.isoformat() if unborn else None,
        "postcode": ex.POSTCODE_SOUTH if household % 2 else ex.POSTCODE_NORTH,
        "no_fixed_abode": False,
        "school_urn": ex.SCHOOL_URN if school_age else None,
        "present_at_incident": None,
        "resident": None,
    }


def simulate(notifications: int = 10_000, seed: int = 7) -> list[Contact]:
    """About ``notifications`` police DA contacts over 2024, in arrival order."""
    rng = random.Random(seed)
    contacts: list[Contact] = []
    household = 0
    while len(contacts) < notifications:
        household += 1
        children = [_child(rng, household, n) for n in range(1, rng.choice((1, 1, 2, 2, 3)) + 1)]
        incidents = _pick(rng, INCIDENTS_PER_HOUSEHOLD)
        for _ in range(incidents):
            at = YEAR_START + timedelta(seconds=rng.randrange(int(YEAR.total_seconds())))
            present = rng.random() < PRESENT_OR_RESIDENT
            dash = _pick(rng, DASH)
            factors = ["3B"]
            if rng.random() < PARENT_SUBSTANCE:
                factors.append(rng.choice(("1B", "2B")))
            if rng.random() < PARENT_MENTAL_HEALTH:
                factors.append("4B")
            n = len(contacts) + 1
            contacts.append(
                Contact.model_validate(
                    ex.contact(
                        contact_id=f"SIM-CON-{n:06d}",
                        contact_reference=f"MASH-SIM-{n:06d}",
                        subject_key=children[0]["household_key"],
                        received_at=(at + timedelta(hours=2)).isoformat(),
                        recorded_at=(at + timedelta(hours=2, seconds=1)).isoformat(),
                        source=ex.source_coordinates(
                            event_id=f"sim-evt-{n}", reference=f"WM-SIM-{n:06d}", offset=n
                        ),
                        incident_at=at.isoformat(),
                        ppn_grade={"standard": "low", "medium": "medium", "high": "high"}[dash],
                        dash_risk=dash,
                        crime_reference_present=rng.random() < 0.4,
                        factors=factors,
                        children=[
                            {**c, "present_at_incident": present, "resident": present}
                            for c in children
                        ],
                        hub="east-south" if household % 2 else "north-west-central",
                    )
                )
            )
    contacts.sort(key=lambda c: (c.received_at, c.contact_id))
    return contacts[:notifications]


def screen_all(contacts: Iterable[Contact], rule_set: RuleSet) -> tuple[Counter[str], Counter[str]]:
    """(outcome counts, rule-hit counts) for ``contacts`` screened in order."""
    book = HistoryBook(windows=rule_set.windows)
    outcomes: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    for contact in contacts:
        decision = evaluate(contact, book.record(contact), rule_set, contact.recorded_at)
        outcomes[decision.outcome] += 1
        hits.update(hit.id for hit in decision.rules)
    return outcomes, hits


def report(outcomes: Counter[str], hits: Counter[str], rule_set: RuleSet) -> str:
    """The split next to the review's, and how often each rule fired."""
    total = sum(outcomes.values())
    lines = [
        f"{total} simulated DA notifications screened with {rule_set.version}",
        "",
        f"{'outcome':<20}{'simulated':>12}{'share':>8}   review (2012-13)",
    ]
    for outcome in OUTCOMES:
        n = outcomes[outcome]
        lines.append(f"{outcome:<20}{n:>12}{n / total:>8.1%}   {REVIEW[outcome]}")
    lines += ["", "rules fired (a contact may fire several):"]
    lines += [f"  {rule:<18}{n:>7}" for rule, n in hits.most_common()]
    return "\n".join(lines)


def main() -> None:
    """Generate, screen, print."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--notifications", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rule-set", default=DEFAULT_RULE_SET)
    parser.add_argument("--jsonl", type=Path, help="also write the contacts as JSONL")
    args = parser.parse_args()
    contacts = simulate(args.notifications, args.seed)
    if args.jsonl:
        with args.jsonl.open("w", encoding="utf-8") as out:
            for contact in contacts:
                out.write(contact.model_dump_json() + "\n")
    rule_set = load_rule_set(args.rule_set)
    print(report(*screen_all(contacts, rule_set), rule_set))
    print(f"\nseed {args.seed}; assumptions: see python -m tests.bench.da_year --help")


if __name__ == "__main__":
    main()
