"""A batch of queue updates applied at once gives what the same updates give one by one.

:class:`Lifecycle` stands in for PostgreSQL: it answers what ``store.load_lifecycle`` reads
and applies what a batch writes, as the store's statements do (a clock started before keeps
its due time, a clock met before keeps its first time). Also: the statements a batch of
updates costs do not grow with it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import examples as ex
from schemas.events import Decision, QueueItem
from schemas.inbound import QueueUpdate
from services.common.calendar import WorkingCalendar
from services.routing import store
from services.routing.app import Routing
from services.routing.deadlines import load_deadline_config
from services.routing.queues import queue_items_for
from services.routing.rows import ClockRow, HistoryEntry, as_stored
from services.routing.updates import LifecycleState, UpdateStep, plan_updates, update_writes

CAL = WorkingCalendar()
CONFIG = load_deadline_config()
ROUTED_AT = datetime(2024, 3, 12, 23, 6, tzinfo=UTC)
#: Before any clock runs out; after the red strategy discussion's; after every clock's.
NOWS = [
    datetime(2024, 3, 13, 2, 0, tzinfo=UTC),
    datetime(2024, 3, 13, 12, 0, tzinfo=UTC),
    datetime(2024, 6, 3, 12, 0, tzinfo=UTC),
]
#: When steps happen: before the strategy discussion is due, before the acknowledgement
#: is due, after both.
TIMES = ["2024-03-13T01:00:00+00:00", "2024-03-13T12:00:00+00:00", "2024-03-14T10:00:00+00:00"]
STATUSES = ["acknowledged", "strategy_discussion_held", "assessment_completed", "closed"]


def items() -> list[QueueItem]:
    """One open item on each queue (s47 red, initial assessment, single agency)."""
    found = []
    queues = [
        ("s47", 4, "red", None),
        ("initial_assessment", 3, "amber", None),
        ("single_agency", 2, "green", "health"),
    ]
    for n, (outcome, level, rag, agency) in enumerate(queues):
        d = Decision.model_validate(
            ex.decision(
                decision_id=f"D{n}",
                outcome=outcome,
                level=level,
                rag=rag,
                target_agency=agency,
                subjects=[{"subject_id": f"S{n}", "child_ref": "C-1"}],
            )
        )
        found += queue_items_for(d, ROUTED_AT, CAL, CONFIG)
    return found


def sibling() -> QueueItem:
    """An initial-assessment item of a sibling joining the s47 item's strategy discussion."""
    s47 = items()[0]
    return items()[1].model_copy(
        update={
            "queue_item_id": "QI-SIBLING",
            "subject_id": "S-SIBLING",
            "contact_id": s47.contact_id,
            "decision_id": s47.decision_id,
            "joins_strategy_discussion_of": s47.queue_item_id,
        }
    )


def update(item_id: str, status: str, at: str, **kw: Any) -> QueueUpdate:
    codes: dict[str, Any] = {}
    if status == "strategy_discussion_held":
        codes["strategy_outcome"] = kw.pop("outcome", "s47_joint")
    if status == "closed":
        codes["closure_reason"] = "RC8"
    return QueueUpdate.model_validate(
        ex.queue_update(queue_item_id=item_id, status=status, at=at, **codes)
    )


@dataclass
class Lifecycle:
    """Queue items, their clocks and history in memory, as the store reads and writes them."""

    items: dict[str, QueueItem] = field(default_factory=dict)
    clocks: dict[tuple[str, str], ClockRow] = field(default_factory=dict)
    history: dict[str, HistoryEntry] = field(default_factory=dict)
    acknowledged: dict[str, datetime] = field(default_factory=dict)
    """Item id -> when notifications acknowledged its referrer (the feedback record)."""

    @classmethod
    def routed(cls, acknowledged: Mapping[int, datetime] | None = None) -> Lifecycle:
        """The routed items, the referrers of those numbered in ``acknowledged`` (0 s47,
        1 initial assessment, 2 single agency) acknowledged at the time given."""
        found = cls()
        for n, item in enumerate([*items(), sibling()]):
            if acknowledged and n in acknowledged:
                found.acknowledged[item.queue_item_id] = acknowledged[n]
            found.items[item.queue_item_id] = as_stored(item)
            for name, due in item.deadlines.items():
                found.clocks[(item.queue_item_id, name)] = ClockRow(item.queue_item_id, name, due)
        return found

    def state(self, updates: Sequence[QueueUpdate]) -> LifecycleState:
        named = {u.queue_item_id for u in updates}
        held = {u.queue_item_id for u in updates if u.status == "strategy_discussion_held"}
        return LifecycleState(
            items=[
                i
                for k, i in sorted(self.items.items())
                if k in named or i.joins_strategy_discussion_of in held
            ],
            clocks=[c for k, c in sorted(self.clocks.items()) if k[0] in named],
            acknowledged={i: at for i, at in self.acknowledged.items() if i in named},
        )

    def write(self, steps: Sequence[UpdateStep], now: datetime) -> None:
        writes = update_writes(steps)
        for item in writes.items:
            self.items[item.queue_item_id] = as_stored(item)
        for item_id, started in writes.started.items():
            for name, due in started.items():
                clock = ClockRow(item_id, name, due.astimezone(UTC))
                self.clocks.setdefault((item_id, name), clock)
        for met in writes.met:
            for name in met.names:
                clock = self.clocks[(met.queue_item_id, name)]
                if clock.met_at is None:
                    self.clocks[(met.queue_item_id, name)] = replace(
                        clock, met_at=met.at, met_by=met.met_by
                    )
        for b in writes.breaches:
            key = (b.queue_item_id, b.deadline)
            self.clocks[key] = replace(self.clocks[key], breached_at=now)
        for entry in writes.history:
            self.history.setdefault(entry.history_id, entry)


def apply(
    record: Lifecycle, updates: Sequence[tuple[str, QueueUpdate]], now: datetime
) -> list[UpdateStep]:
    steps = plan_updates(
        updates, record.state([u for _, u in updates]), now, CONFIG, lambda _h: CAL
    )
    record.write(steps, now)
    return steps


def assert_same_as_one_by_one(
    updates: Sequence[tuple[str, QueueUpdate]],
    now: datetime,
    acknowledged: Mapping[int, datetime] | None = None,
) -> list[UpdateStep]:
    at_once, one_by_one = Lifecycle.routed(acknowledged), Lifecycle.routed(acknowledged)
    steps = apply(at_once, updates, now)
    assert steps == [s for u in updates for s in apply(one_by_one, [u], now)]
    assert at_once == one_by_one
    assert list(at_once.history) == list(one_by_one.history)
    return steps


def test_an_s47_item_worked_to_the_end_in_one_batch() -> None:
    s47 = items()[0].queue_item_id
    steps = assert_same_as_one_by_one(
        [
            ("E1", update(s47, "acknowledged", TIMES[0])),
            ("E2", update(s47, "strategy_discussion_held", TIMES[1])),
            ("E3", update(s47, "assessment_completed", TIMES[2])),
            ("E4", update(s47, "closed", TIMES[2])),
        ],
        NOWS[2],
    )
    assert [s.transition.item.status for s in steps if s.transition is not None] == STATUSES
    # The ICPC clock the strategy discussion started had run out by now: it breached with
    # that step, and closing the item later does not take the breach back.
    assert [(b.deadline, s.event_id) for s in steps for b in s.breaches] == [
        ("strategy_discussion", "E1"),
        ("icpc", "E2"),
    ]


def test_a_step_refused_in_a_batch_changes_nothing_for_the_steps_after_it() -> None:
    ia = items()[1].queue_item_id
    steps = assert_same_as_one_by_one(
        [
            ("E1", update("QI-NOBODY", "acknowledged", TIMES[0])),
            ("E2", update(ia, "strategy_discussion_held", TIMES[0])),
            ("E3", update(ia, "acknowledged", TIMES[0])),
            ("E4", update(ia, "acknowledged", TIMES[1])),
        ],
        NOWS[0],
    )
    assert [(s.unknown_item, s.invalid is not None) for s in steps] == [
        (True, False),
        (False, True),
        (False, False),
        (False, True),
    ]


def test_a_discussion_held_reaches_the_sibling_joining_it_in_the_same_batch() -> None:
    s47 = items()[0].queue_item_id
    steps = assert_same_as_one_by_one(
        [
            ("E1", update("QI-SIBLING", "acknowledged", TIMES[0])),
            ("E2", update(s47, "strategy_discussion_held", TIMES[1], outcome="no_s47")),
            ("E3", update("QI-SIBLING", "assessment_completed", TIMES[2])),
        ],
        NOWS[0],
    )
    acknowledged, held, completed = steps
    assert acknowledged.joined == []
    (joined,) = held.joined
    assert (joined.queue_item_id, joined.status, joined.strategy_outcome) == (
        "QI-SIBLING",
        "acknowledged",
        "no_s47",
    )
    assert [
        (h.queue_item_id, h.action, h.from_status, h.to_status) for h in held.joined_history
    ] == [("QI-SIBLING", "strategy_discussion_joined", "acknowledged", "acknowledged")]
    # The discussion meets and starts none of the sibling's clocks.
    assert held.met is not None
    assert held.met.queue_item_id == s47
    # The sibling's later step sees the outcome it took.
    assert completed.transition is not None
    assert completed.transition.item.strategy_outcome == "no_s47"
    writes = update_writes(steps)
    assert {i.queue_item_id: i.strategy_outcome for i in writes.items} == {
        s47: "no_s47",
        "QI-SIBLING": "no_s47",
    }
    assert [(m.queue_item_id, m.met_by) for m in writes.met] == [
        ("QI-SIBLING", "acknowledged"),
        (s47, "strategy_discussion_held"),
        ("QI-SIBLING", "assessment_completed"),
    ]
    assert [h.action for h in writes.history] == [
        "acknowledged",
        "strategy_discussion_held",
        "strategy_discussion_joined",
        "assessment_completed",
    ]


def test_other_steps_on_the_s47_item_reach_no_sibling() -> None:
    s47 = items()[0].queue_item_id
    steps = assert_same_as_one_by_one(
        [("E1", update(s47, "acknowledged", TIMES[0])), ("E2", update(s47, "closed", TIMES[1]))],
        NOWS[0],
    )
    assert [s.joined for s in steps] == [[], []]


@st.composite
def batches(draw: st.DrawFn) -> list[tuple[str, QueueUpdate]]:
    """Steps on three items (and one unknown), valid or not, at times before and after
    their clocks run out."""
    ids = [i.queue_item_id for i in [*items(), sibling()]] + ["QI-NOBODY"]
    return [
        (
            f"E{n}",
            update(
                draw(st.sampled_from(ids)),
                draw(st.sampled_from([*STATUSES, "icpc_held"])),
                draw(st.sampled_from(TIMES)),
                outcome=draw(st.sampled_from(["s47_single_agency", "s47_joint", "no_s47"])),
            ),
        )
        for n in range(draw(st.integers(1, 10)))
    ]


def test_the_referrers_acknowledgement_meets_the_clock_at_the_time_it_was_issued() -> None:
    """Notifications acknowledged the referrer of the single-agency item on time (13 Mar
    01:00, due 23:05:10); the hub closes the item the next day, after the due time: the
    clock was met by the acknowledgement, not late by the closing."""
    single = items()[2].queue_item_id
    on_time = datetime(2024, 3, 13, 1, 0, tzinfo=UTC)
    closing = [("E1", update(single, "closed", TIMES[2]))]
    (step,) = assert_same_as_one_by_one(closing, NOWS[2], {2: on_time})
    assert step.acknowledged is not None
    assert (list(step.acknowledged.names), step.acknowledged.at, step.acknowledged.met_by) == (
        ["acknowledge_referrer"],
        on_time,
        "referrer_acknowledged",
    )
    assert step.met is not None
    assert "acknowledge_referrer" not in step.met.names  # met once, by the acknowledgement
    assert step.breaches == []
    # Without an acknowledgement the same closing meets it late: one breach.
    (unacknowledged,) = assert_same_as_one_by_one(closing, NOWS[2])
    assert [b.deadline for b in unacknowledged.breaches] == ["acknowledge_referrer"]
    # An acknowledgement issued after the due time is late too.
    late = datetime(2024, 3, 14, 9, 0, tzinfo=UTC)
    (late_step,) = assert_same_as_one_by_one(closing, NOWS[2], {2: late})
    assert [b.deadline for b in late_step.breaches] == ["acknowledge_referrer"]


def test_a_refused_step_does_not_record_the_acknowledgement() -> None:
    ia = items()[1].queue_item_id
    refused = [("E1", update(ia, "strategy_discussion_held", TIMES[0]))]
    (step,) = assert_same_as_one_by_one(refused, NOWS[0], {1: NOWS[0]})
    assert (step.invalid is not None, step.acknowledged) == (True, None)


ACKNOWLEDGEMENTS = st.dictionaries(
    st.integers(0, 2),
    st.sampled_from([datetime(2024, 3, 13, 1, 0, tzinfo=UTC), *NOWS]),
    max_size=3,
)


@settings(max_examples=200, deadline=None)
@given(batches(), st.sampled_from(NOWS), ACKNOWLEDGEMENTS)
def test_any_batch_of_updates_gives_what_they_give_one_by_one(
    batch: list[tuple[str, QueueUpdate]], now: datetime, acknowledged: dict[int, datetime]
) -> None:
    assert_same_as_one_by_one(batch, now, acknowledged)


@settings(max_examples=50, deadline=None)
@given(batches(), batches(), st.sampled_from(NOWS))
def test_a_batch_of_updates_sees_what_earlier_batches_wrote(
    before: list[tuple[str, QueueUpdate]], batch: list[tuple[str, QueueUpdate]], now: datetime
) -> None:
    record = Lifecycle.routed()
    apply(record, before, now)
    expected = copy.deepcopy(record)
    batch = [(f"{e}-later", u) for e, u in batch]
    steps = apply(record, batch, now)
    assert steps == [s for u in batch for s in apply(expected, [u], now)]
    assert record == expected


# --- statements per batch ----------------------------------------------------------------


class Counting:
    """A connection that counts statements and answers with the routed items' rows."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle
        self.statements = 0

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        self.statements += 1
        if "FROM queue_item_deadlines" in sql:
            return [c.__dict__ for c in self.lifecycle.clocks.values()]
        return [{**i.model_dump(), "deadlines": i.deadlines} for i in self.lifecycle.items.values()]

    async def execute(self, sql: str, *args: Any) -> str:
        self.statements += 1
        return ""


async def statements_for(updates: Sequence[tuple[str, QueueUpdate]]) -> int:
    conn = Counting(Lifecycle.routed())
    ids = [u.queue_item_id for _, u in updates]
    state = await store.load_lifecycle(conn, ids)  # type: ignore[arg-type]
    steps = plan_updates(updates, state, NOWS[2], CONFIG, lambda _h: CAL)
    await Routing._write_updates(conn, update_writes(steps), NOWS[2])  # type: ignore[arg-type]
    return conn.statements


async def test_the_statements_of_a_batch_of_updates_do_not_grow_with_it() -> None:
    s47, ia, single = (i.queue_item_id for i in items())

    def work(item_id: str) -> list[tuple[str, QueueUpdate]]:
        return [
            (f"{item_id}-{status}", update(item_id, status, TIMES[1]))
            for status in ["acknowledged", "strategy_discussion_held", "closed"]
        ]

    one = await statements_for(work(s47))
    many = await statements_for(work(s47) + work(ia) + work(single))
    # Two reads; statuses, clocks started, clocks met, breaches, history.
    assert one == many == 7
