"""The fault suite's checker: what went in against what came out, as one table row.

After a scenario has drained, :func:`tally` reads the system of record and the product's
topics of that scenario's world and counts, per contact, what each stage made. *Lost* is
anything valid that did not reach the end (a contact without a decision, a decision
without a routing, a routing notifications never handled, a contact without an
acknowledgement, a bad message without a dead letter, an outbox row never published).
*Duplicated* is any second effect (two contacts for one inbound event, two rules-based
decisions for one contact) or any event re-made under a new id on a topic (a re-sent event
keeps its id and is absorbed; a new id would be applied again downstream). *Out of order*
counts pairs of events for one key whose order on an output topic contradicts the order
of their causes on one input partition.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from services.common.topics import (
    CONTACTS,
    DEAD_LETTER,
    DECISIONS,
    FEEDBACK_TOPICS,
    INBOUND_POLICE,
    INBOUND_REFERRALS,
    ROUTED,
)
from tests.support import Isolated, Record, fetch, fetchval, read_topic


@dataclass(frozen=True)
class Expected:
    """What a scenario sent: the ids of its valid inbound events and how many bad ones."""

    event_ids: tuple[str, ...]
    bad: int

    @property
    def inbound(self) -> int:
        """Every message sent to the inbound topics."""
        return len(self.event_ids) + self.bad


@dataclass(frozen=True)
class Row:
    """One line of the fault table."""

    scenario: str
    inbound: int
    contacts: int
    decisions: int
    queue_items: int
    acknowledgements: int
    outcomes: int
    dead_letters: int
    lost: int
    duplicated: int
    out_of_order: int
    drain_seconds: float

    @classmethod
    def header(cls) -> list[str]:
        """Column titles."""
        return [f.name.replace("_", " ") for f in fields(cls)]

    def cells(self) -> list[str]:
        """The row's values as text."""
        return [
            f"{v:.1f}" if isinstance(v, float) else str(v)
            for v in (getattr(self, f.name) for f in fields(self))
        ]


def markdown_table(rows: Iterable[Row]) -> str:
    """The rows as a Markdown table (the README's fault table)."""
    lines = ["| " + " | ".join(Row.header()) + " |", "|" + "---|" * len(Row.header())]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(lines)


def _first_positions(records: Sequence[Record], ident: Callable[[Record], str]) -> dict[str, Any]:
    """Where each identity first appears: (topic, partition, offset)."""
    first: dict[str, tuple[str, int, int]] = {}
    for r in sorted(records, key=lambda r: (r.topic, r.partition, r.offset)):
        first.setdefault(ident(r), (r.topic, r.partition, r.offset))
    return first


def order_violations(
    inputs: Sequence[Record],
    input_id: Callable[[Record], str],
    outputs: Sequence[Record],
    cause_of: Callable[[Record], str],
) -> int:
    """Pairs of output events for one key that left in the opposite order of their causes.

    Only causes read from the same input partition have an order (one consumer reads them
    one after the other); the first appearance of each output event counts, since a
    re-sent copy carries the same id and is absorbed downstream.
    """
    cause_position = _first_positions(inputs, input_id)
    by_key: dict[tuple[int, bytes | None], list[Record]] = defaultdict(list)
    seen: set[str] = set()
    for r in sorted(outputs, key=lambda r: (r.partition, r.offset)):
        if r.headers["ce_id"] in seen:
            continue
        seen.add(r.headers["ce_id"])
        by_key[(r.partition, r.key)].append(r)
    violations = 0
    for events in by_key.values():
        last_offset: dict[tuple[str, int], int] = {}
        for r in events:
            where = cause_position.get(cause_of(r))
            if where is None:
                continue
            source, offset = (where[0], where[1]), where[2]
            if offset < last_offset.get(source, -1):
                violations += 1
                # Ids and positions only (the suite's data is synthetic, but keep the habit).
                print(
                    f"out of order: {r.topic}[{r.partition}]@{r.offset} {r.headers['ce_id']}"
                    f" caused by {source[0]}[{source[1]}]@{offset}, after a cause at"
                    f" @{last_offset[source]}"
                )
            last_offset[source] = max(offset, last_offset.get(source, -1))
    return violations


def _inbound_id(r: Record) -> str:
    """The CloudEvent id of an inbound record, binary or structured mode ("" if unreadable)."""
    if "ce_id" in r.headers:
        return r.headers["ce_id"]
    try:
        envelope = json.loads(r.value)
    except (ValueError, RecursionError):  # hostile values are on the inbound topics too
        return ""
    return str(envelope.get("id", "")) if isinstance(envelope, dict) else ""


def _value(r: Record) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(r.value)
    return data


async def _distinct_ids(world: Isolated, *topics: str) -> tuple[list[Record], int]:
    records = [r for t in topics for r in await read_topic(world.stack.bootstrap, world.topics(t))]
    return records, len({r.headers["ce_id"] for r in records})


LOST_SQL = {
    "inbound event without a contact": """
        SELECT count(*) FROM unnest($1::text[]) AS e(id)
        WHERE NOT EXISTS (SELECT 1 FROM contacts c WHERE c.source_event_id = e.id)""",
    "contact without a rules-based decision": """
        SELECT count(*) FROM contacts c WHERE NOT EXISTS
          (SELECT 1 FROM decisions d WHERE d.contact_id = c.contact_id
             AND d.source = 'rules')""",
    "rules-based decision without a routing": """
        SELECT count(*) FROM decisions d WHERE d.source = 'rules' AND NOT EXISTS
          (SELECT 1 FROM routing_decisions r WHERE r.decision_id = d.decision_id)""",
    "routing not handled by notifications": """
        SELECT count(*) FROM outbox o WHERE o.service = 'routing' AND o.topic = $1
          AND NOT EXISTS (SELECT 1 FROM processed_events p WHERE p.service = 'notifications'
                          AND p.event_id = o.event_id AND p.outcome <> 'pending')""",
    "contact without an acknowledgement": """
        SELECT count(*) FROM contacts c WHERE NOT EXISTS
          (SELECT 1 FROM feedback f WHERE f.contact_id = c.contact_id
             AND f.kind = 'acknowledgement')""",
    "outbox row never published": "SELECT count(*) FROM outbox WHERE published_at IS NULL",
}

DUPLICATE_SQL = {
    "second contact for one inbound event": """
        SELECT count(*) - count(DISTINCT source_event_id) FROM contacts""",
    "second rules-based decision for one contact": """
        SELECT count(*) - count(DISTINCT contact_id) FROM decisions
        WHERE source = 'rules'""",
}


async def tally(world: Isolated, scenario: str, expected: Expected, drain_seconds: float) -> Row:
    """Count the scenario's inputs and outputs; see the module docstring for the terms."""
    dsn = world.dsn
    routed_topic = world.topics(ROUTED)
    arguments: dict[str, tuple[Any, ...]] = {
        "inbound event without a contact": (list(expected.event_ids),),
        "routing not handled by notifications": (routed_topic,),
    }
    lost = {
        what: int(await fetchval(dsn, sql, *arguments.get(what, ())))
        for what, sql in LOST_SQL.items()
    }
    dead_letters = int(await fetchval(dsn, "SELECT count(*) FROM dead_letters"))
    lost["bad message without a dead letter"] = max(0, expected.bad - dead_letters)
    duplicated = {what: int(await fetchval(dsn, sql)) for what, sql in DUPLICATE_SQL.items()}
    counts = {
        r["what"]: int(r["n"])
        for r in await fetch(
            dsn,
            """
            SELECT 'contacts' AS what, count(*) AS n FROM contacts
            UNION ALL SELECT 'decisions', count(*) FROM decisions
            UNION ALL SELECT 'routings', count(*) FROM routing_decisions
            UNION ALL SELECT 'queue_items', count(*) FROM queue_items
            UNION ALL SELECT 'acknowledgements', count(*) FROM feedback
                      WHERE kind = 'acknowledgement'
            UNION ALL SELECT 'outcomes', count(*) FROM feedback WHERE kind = 'outcome'
            UNION ALL SELECT 'feedback', count(*) FROM feedback
            """,
        )
    }
    # On the topics: as many distinct event ids as rows in the system of record.
    records: dict[str, list[Record]] = {}
    for name, topics, rows in (
        (CONTACTS, (CONTACTS,), "contacts"),
        (DECISIONS, (DECISIONS,), "decisions"),
        (ROUTED, (ROUTED,), "routings"),
        ("the feedback topics", FEEDBACK_TOPICS, "feedback"),
    ):
        records[name], distinct = await _distinct_ids(world, *topics)
        duplicated[f"new ids on {name}"] = max(0, distinct - counts[rows])
    _, distinct_letters = await _distinct_ids(world, DEAD_LETTER)
    duplicated["new ids on the dead-letter topic"] = max(0, distinct_letters - dead_letters)
    inbound = [
        r
        for topic in (INBOUND_POLICE, INBOUND_REFERRALS)
        for r in await read_topic(world.stack.bootstrap, world.topics(topic))
    ]
    out_of_order = (
        order_violations(
            inbound,
            _inbound_id,
            records[CONTACTS],
            lambda r: str(_value(r)["source"]["event_id"]),
        )
        + order_violations(
            records[CONTACTS],
            lambda r: str(_value(r)["contact_id"]),
            records[DECISIONS],
            lambda r: str(_value(r)["contact_id"]),
        )
        + order_violations(
            records[DECISIONS],
            lambda r: str(_value(r)["decision_id"]),
            records[ROUTED],
            lambda r: str(_value(r)["decision_id"]),
        )
    )
    problems = {k: v for k, v in {**lost, **duplicated}.items() if v}
    if problems:
        print(f"{scenario}: {problems}")
    return Row(
        scenario=scenario,
        inbound=expected.inbound,
        contacts=counts["contacts"],
        decisions=counts["decisions"],
        queue_items=counts["queue_items"],
        acknowledgements=counts["acknowledgements"],
        outcomes=counts["outcomes"],
        dead_letters=dead_letters,
        lost=sum(lost.values()),
        duplicated=sum(duplicated.values()),
        out_of_order=out_of_order,
        drain_seconds=drain_seconds,
    )
