"""A batch of decisions planned at once gives what the same decisions give one by one.

:class:`Record` stands in for PostgreSQL: it answers what ``store.load_record`` reads and
applies what a batch writes, as the store's statements do (an item or history row that
exists is kept, a closing replaces the item). "One by one" plans each decision as a batch
of its own against the record the ones before it left; "at once" plans them all in one
batch. Also: the statements a batch costs do not grow with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import examples as ex
from schemas.events import Decision, QueueItem, RuleHit
from services.common.calendar import WorkingCalendar
from services.routing import store
from services.routing.app import Routing
from services.routing.deadlines import load_deadline_config
from services.routing.decisions import DecisionStep, RecordState, batch_writes, plan_batch
from services.routing.queues import queue_item_id
from services.routing.rows import HistoryEntry, as_stored

CAL = WorkingCalendar()
CONFIG = load_deadline_config()
NOW = datetime(2024, 3, 20, 12, 0, tzinfo=UTC)
NWC, ES = "north-west-central", "east-south"
HUBS = (NWC, ES)
#: (outcome, level, rag, target agency) that screening decides together.
OUTCOMES = [
    ("no_further_action", 1, "blue", None),
    ("single_agency", 2, "green", "health"),
    ("initial_assessment", 3, "amber", None),
    ("s47", 4, "red", None),
]


def decision(decision_id: str, contact_id: str, subjects: Sequence[str], **kw: Any) -> Decision:
    outcome, level, rag, agency = kw.pop("as_", OUTCOMES[3])
    return Decision.model_validate(
        ex.decision(
            decision_id=decision_id,
            contact_id=contact_id,
            contact_reference=f"MASH-{contact_id}",
            subjects=[{"subject_id": s, "child_ref": f"C-{n}"} for n, s in enumerate(subjects)],
            outcome=outcome,
            level=level,
            rag=rag,
            target_agency=agency,
            **kw,
        )
    )


@dataclass
class Record:
    """Routing's tables in memory, read and written as the store reads and writes them."""

    items: dict[str, QueueItem] = field(default_factory=dict)
    history: dict[str, HistoryEntry] = field(default_factory=dict)
    decisions: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    """decision id -> (supersedes, effect), in the order recorded (a held decision released
    becomes ``routed``, as the store's upsert does)."""

    def state(self, decisions: Sequence[Decision]) -> RecordState:
        ids = {d.decision_id for d in decisions}
        children = {s.subject_id for d in decisions for s in d.subjects}
        would_open = {
            queue_item_id(d.decision_id, s.subject_id) for d in decisions for s in d.subjects
        }
        superseded_by: dict[str, str] = {}
        for newer, (older, _) in self.decisions.items():
            if older in ids:
                superseded_by.setdefault(older, newer)
        items = [
            i
            for i in self.items.values()
            if i.subject_id in children and (i.status != "closed" or i.queue_item_id in would_open)
        ]
        return RecordState(
            applied=frozenset(ids & set(self.decisions)),
            superseded_by=superseded_by,
            items=sorted(items, key=lambda i: (i.routed_at, i.queue_item_id)),
            held=frozenset(i for i in ids if self.decisions.get(i, (None, ""))[1] == "held"),
        )

    def write(self, steps: Sequence[DecisionStep]) -> None:
        writes = batch_writes(steps)
        for item in writes.opened:
            self.items.setdefault(item.queue_item_id, as_stored(item))
        for item in writes.saved:
            self.items[item.queue_item_id] = item
        for entry in writes.history:
            self.history.setdefault(entry.history_id, entry)
        for d, effect in writes.decisions:
            recorded = self.decisions.get(d.decision_id)
            if recorded is None:
                self.decisions[d.decision_id] = (d.supersedes_decision_id, effect)
            elif recorded[1] == "held" and effect == "routed":
                self.decisions[d.decision_id] = (recorded[0], effect)


def plan(record: Record, decisions: Sequence[Decision]) -> list[DecisionStep]:
    steps = plan_batch(decisions, record.state(decisions), NOW, CONFIG, lambda _h: CAL, HUBS)
    record.write(steps)
    return steps


def one_by_one(decisions: Sequence[Decision]) -> tuple[list[DecisionStep], Record]:
    record = Record()
    return [s for d in decisions for s in plan(record, [d])], record


def at_once(decisions: Sequence[Decision]) -> tuple[list[DecisionStep], Record]:
    record = Record()
    return plan(record, decisions), record


def assert_same_as_one_by_one(decisions: Sequence[Decision]) -> list[DecisionStep]:
    steps, record = at_once(decisions)
    expected_steps, expected = one_by_one(decisions)
    assert steps == expected_steps
    assert record == expected
    assert list(record.history) == list(expected.history)  # the order rows are recorded
    return steps


def test_a_second_decision_about_a_child_joins_the_case_the_first_opened() -> None:
    first = decision("D1", "C1", ["X"], as_=OUTCOMES[2])
    second = decision("D2", "C2", ["X"], as_=OUTCOMES[1], hub=ES)
    one, two = assert_same_as_one_by_one([first, second])
    (opened,) = one.opened
    (update,) = two.opened
    assert (update.hub, update.queue, update.open_case_update) == (NWC, "initial-assessment", True)
    assert two.plan is not None
    assert two.plan.placements[0].kind == "open_case_update"
    assert opened.status == "open"


def test_an_override_in_the_same_batch_moves_the_item_the_decision_opened() -> None:
    rules = decision("D1", "C1", ["X"])
    override = decision(
        "D1-P", "C1", ["X"], as_=OUTCOMES[2], source="practitioner", supersedes_decision_id="D1"
    )
    first, second = assert_same_as_one_by_one([rules, override])
    (old,) = first.opened
    (new,) = second.opened
    (closing,) = second.closings
    assert closing.item.queue_item_id == old.queue_item_id
    assert (closing.kind, closing.item.status, closing.item.replaced_by) == (
        "moved",
        "closed",
        new.queue_item_id,
    )
    assert [(h.queue_item_id, h.action) for h in [*first.history, *second.history]] == [
        (old.queue_item_id, "opened"),
        (old.queue_item_id, "moved"),
        (new.queue_item_id, "opened"),
    ]


def test_a_decision_after_its_override_in_the_same_batch_is_set_aside() -> None:
    rules = decision("D1", "C1", ["X"])
    override = decision(
        "D1-P", "C1", ["X"], as_=OUTCOMES[1], source="practitioner", supersedes_decision_id="D1"
    )
    steps = assert_same_as_one_by_one([override, rules])
    assert [(s.verdict, s.superseded_by) for s in steps] == [
        ("routed", None),
        ("superseded", "D1-P"),
    ]
    assert (steps[1].opened, steps[1].history) == ([], [])


def test_a_repeat_is_a_duplicate_and_an_unknown_hub_changes_nothing() -> None:
    d = decision("D1", "C1", ["X"])
    elsewhere = decision("D2", "C2", ["X"], hub="four-areas-north")
    steps = assert_same_as_one_by_one([elsewhere, d, d, elsewhere])
    assert [s.verdict for s in steps] == [
        "unknown_hub",
        "routed",
        "duplicate_decision",
        "unknown_hub",
    ]
    assert batch_writes(steps).decisions == [(d, "routed")]


# --- the s47 confirmation gate --------------------------------------------------------------


def held(decision_id: str, contact_id: str, subjects: Sequence[str], **kw: Any) -> Decision:
    """An automated s47 held by the hub's confirmation gate."""
    return decision(decision_id, contact_id, subjects, awaiting_practitioners=True, **kw)


def released(decision: Decision) -> Decision:
    """The same decision once police and children's social care have confirmed it."""
    return decision.model_copy(update={"awaiting_practitioners": False})


def test_a_held_s47_is_on_the_hubs_queue_awaiting_practitioners_with_its_clock() -> None:
    d = held("D1", "C1", ["X"])
    (step,) = assert_same_as_one_by_one([d])
    assert step.verdict == "held"
    (item,) = step.opened
    assert (item.queue, item.status, item.awaiting_practitioners) == ("s47", "open", True)
    # Red: 4 clock hours from receipt (Tue 12 Mar 2024 23:05:10Z); the s47 clocks run too,
    # from receipt and from the automated decision, as they would without the gate.
    assert item.deadlines == {
        "screening_decision": datetime(2024, 3, 13, 3, 5, 10, tzinfo=UTC),
        "acknowledge_referrer": datetime(2024, 3, 13, 23, 5, 10, tzinfo=UTC),
        "strategy_discussion": datetime(2024, 3, 13, 3, 5, 12, tzinfo=UTC),
    }
    writes = batch_writes([step])
    assert writes.decisions == [(d, "held")]
    assert writes.breach_candidates == [item.queue_item_id]


def test_the_release_takes_effect_on_the_held_item_and_meets_its_clock() -> None:
    d = held("D1", "C1", ["X"])
    hold, release = assert_same_as_one_by_one([d, released(d)])
    (item,) = hold.opened
    assert release.verdict == "released"
    assert release.opened == []
    (now_effective,) = release.released
    assert now_effective.queue_item_id == item.queue_item_id
    assert now_effective.awaiting_practitioners is False
    assert now_effective.deadlines == item.deadlines  # the clocks run on, unchanged
    assert release.plan is not None
    assert (release.plan.item_ids, release.plan.queue) == ([item.queue_item_id], "s47")
    assert [(h.action, h.from_status, h.to_status) for h in release.history] == [
        ("released", "open", "open")
    ]
    writes = batch_writes([release])
    assert [(m.queue_item_id, list(m.names), m.at, m.met_by) for m in writes.met()] == [
        (item.queue_item_id, ["screening_decision"], NOW, "released")
    ]
    assert writes.saved == [now_effective]
    assert writes.decisions == [(released(d), "routed")]
    # Hold and release in one batch record the decision once, as routed.
    assert batch_writes([hold, release]).decisions == [(released(d), "routed")]


def test_a_replayed_hold_or_release_changes_nothing() -> None:
    d = held("D1", "C1", ["X"])
    steps = assert_same_as_one_by_one([d, released(d), d, released(d)])
    assert [s.verdict for s in steps] == [
        "held",
        "released",
        "duplicate_decision",
        "duplicate_decision",
    ]


def test_an_override_while_held_moves_the_held_item_and_meets_its_clock() -> None:
    d = held("D1", "C1", ["X"])
    override = decision("D1-P", "C1", ["X"], as_=OUTCOMES[1], source="practitioner")
    hold, moved = assert_same_as_one_by_one([d, override])
    (item,) = hold.opened
    (closing,) = moved.closings
    assert (closing.item.queue_item_id, closing.kind) == (item.queue_item_id, "moved")
    (new,) = moved.opened
    assert (new.queue, new.awaiting_practitioners) == ("single-agency", False)
    assert "screening_decision" in next(
        m.names for m in batch_writes([moved]).met() if m.queue_item_id == item.queue_item_id
    )


def test_a_child_named_twice_gets_one_item() -> None:
    steps = assert_same_as_one_by_one([decision("D1", "C1", ["X", "X"])])
    assert len(steps[0].opened) == 1
    assert steps[0].plan is not None
    assert len(steps[0].plan.item_ids) == 2  # as routed one by one: the Routed event names both


def test_the_opened_rows_say_which_sibling_joins_a_discussion_and_which_child_steps_up() -> None:
    subjects = [
        ex.decision_subject("BABY", 4, ["R4-INJ-BABY"]),
        ex.decision_subject("SIB", 3, ["R3-SIBLING"]),
        ex.decision_subject("STEP", 3, ["R3-EMO"], step_up=True),
    ]
    group = Decision.model_validate(
        ex.decision(decision_id="D1", contact_id="C1", subjects=subjects, open_case=True)
    )
    (step,) = assert_same_as_one_by_one([group])
    baby, sib, stepped = step.opened
    details = {h.queue_item_id: dict(h.detail) for h in step.history}
    # The open case (the council's early-help case of the stepping-up child) is no item
    # here: the flag stays visible on the others; the new assessment is no update.
    assert details[baby.queue_item_id] == {
        "decision_id": "D1",
        "source": "rules",
        "open_case_update": True,
    }
    assert details[sib.queue_item_id]["joins_strategy_discussion_of"] == baby.queue_item_id
    assert details[stepped.queue_item_id]["step_up"] is True
    assert "step_up" not in details[sib.queue_item_id]


@st.composite
def decisions(draw: st.DrawFn) -> list[Decision]:
    """Decisions about two children from three contacts: overrides (of earlier or later
    decisions), repeats, several children, unknown hubs, every outcome, automated s47s held
    by the confirmation gate and their releases, sibling groups (the first child at level
    4, the others joining its strategy discussion) and children stepping up from early
    help."""
    out: list[Decision] = []
    for n in range(draw(st.integers(1, 8))):
        repeat: bool = draw(st.integers(0, 3)) == 0
        if out and repeat:
            out.append(draw(st.sampled_from(out)))
            continue
        held = [d for d in out if d.awaiting_practitioners]
        release: bool = draw(st.booleans())
        if held and release:
            out.append(released(draw(st.sampled_from(held))))
            continue
        supersedes = draw(st.one_of(st.none(), st.integers(0, 8).map(lambda i: f"D{i}")))
        as_ = draw(st.sampled_from(OUTCOMES))
        made = decision(
            f"D{n}",
            draw(st.sampled_from(["C1", "C2", "C3"])),
            draw(st.lists(st.sampled_from(["X", "Y"]), min_size=1, max_size=2)),
            as_=as_,
            hub=draw(st.sampled_from([NWC, NWC, ES, "four-areas-north"])),
            source="rules" if supersedes is None else "practitioner",
            supersedes_decision_id=supersedes,
            awaiting_practitioners=supersedes is None and as_[0] == "s47" and draw(st.booleans()),
        )
        if supersedes is None and draw(st.booleans()):
            made = per_child(made)
        out.append(made)
    return out


def per_child(d: Decision) -> Decision:
    """``d`` screened child by child: an s47 decision about a sibling group (the first
    child at level 4, the others lifted by R3-SIBLING), or an assessment whose children
    step up from early help."""
    if d.outcome == "s47":
        first, *others = d.subjects
        subjects = [
            first.model_copy(update={"level": 4, "outcome": "s47", "rag": "red", "rules": d.rules}),
            *(
                s.model_copy(
                    update={
                        "level": 3,
                        "outcome": "initial_assessment",
                        "rag": "amber",
                        "rules": [RuleHit(id="R3-SIBLING", reason="A sibling.")],
                    }
                )
                for s in others
            ),
        ]
    elif d.outcome == "initial_assessment":
        subjects = [s.model_copy(update={"step_up": True}) for s in d.subjects]
    else:
        return d
    return Decision.model_validate(
        {**d.model_dump(), "subjects": [s.model_dump() for s in subjects]}
    )


@settings(max_examples=150, deadline=None)
@given(decisions())
def test_any_batch_gives_what_its_decisions_give_one_by_one(batch: list[Decision]) -> None:
    assert_same_as_one_by_one(batch)


@given(decisions(), decisions())
@settings(max_examples=50, deadline=None)
def test_a_batch_sees_what_earlier_batches_wrote(
    before: list[Decision], batch: list[Decision]
) -> None:
    record = Record()
    plan(record, before)
    expected = Record(dict(record.items), dict(record.history), dict(record.decisions))
    steps = plan(record, batch)
    assert steps == [s for d in batch for s in plan(expected, [d])]
    assert record == expected


# --- statements per batch ----------------------------------------------------------------


class Counting:
    """A connection that counts statements and answers like an empty record."""

    def __init__(self) -> None:
        self.statements = 0

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        self.statements += 1
        if "INSERT INTO queue_items" in sql:
            return [{"queue_item_id": i} for i in args[0]]
        return []

    async def execute(self, sql: str, *args: Any) -> str:
        self.statements += 1
        return ""


async def statements_for(batch: Sequence[Decision]) -> int:
    conn = Counting()
    state = await store.load_record(conn, batch)  # type: ignore[arg-type]
    steps = plan_batch(batch, state, NOW, CONFIG, lambda _h: CAL, HUBS)
    await Routing._write(conn, batch_writes(steps), NOW)  # type: ignore[arg-type]
    return conn.statements


async def test_the_statements_of_a_batch_do_not_grow_with_it() -> None:
    def batch(size: int) -> list[Decision]:
        out: list[Decision] = []
        for n in range(size):
            out.append(decision(f"D{n}", f"C{n}", [f"X{n}", f"Y{n}"]))
            override = decision(
                f"D{n}-P",
                f"C{n}",
                [f"X{n}", f"Y{n}"],
                as_=OUTCOMES[2],
                source="practitioner",
                supersedes_decision_id=f"D{n}",
            )
            out.append(override)
        return out

    one, many = await statements_for(batch(1)), await statements_for(batch(100))
    # Two reads; items, clocks, acknowledgements met, breach claim (select), statuses,
    # clocks met, history, decisions (the breach update runs only when a clock is claimed).
    assert one == many == 10
