"""Screening history of one household: what earlier contacts tell the stateful rules.

Pure: no I/O, no Faust, no clock reads. The screening service keeps one
:class:`HouseholdHistory` per subject key (the key of ``mash.contacts.v1``: the household
of the contact's first child, else that child's subject id — or, when intake has seen one
of the children before, the key of the family's earlier contacts, so the history follows a
family that moves, docs/domain.md "Identity and history") in a changelog-backed Faust
table, as the JSON of :meth:`HouseholdHistory.to_json`; the what-if tool keeps the same
histories in a dict. Both call the same two functions, in this order, for each contact:

* :meth:`HouseholdHistory.record` — remember the contact. Idempotent by contact id, so a
  replay or a redelivery after a crash never counts a contact twice.
* :meth:`HouseholdHistory.facts_for` — the counts the rule engine wants
  (:class:`~services.screening.facts.ScreeningHistory`): *previous* contacts only, never
  the contact itself; a child's counts include its probable matches' (intake's
  ``matched_subject_ids``: the same child at its old address); within the rule set's
  windows (:class:`~services.screening.facts.Windows`: by default 365 days for domestic
  abuse, 90 for low-graded police notifications and missing episodes) before its incident
  time.

"Previous" is measured on incident time (the receipt time when a contact has none), not
on arrival order: a notification that arrives late about an earlier incident is screened
against what happened before *its* incident, and replaying the first contact of a series
after the third gives the first its original answer. Contacts recorded with the very same
incident time count as previous (they happened no later).

Only ids and times are kept (contact ids, subject ids): no names, dates of birth or
narrative reach the changelog topic.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from schemas.events import Contact
from services.screening.facts import MAX_WINDOW_DAYS, ScreeningHistory, Windows

__all__ = [
    "HISTORY_FORMAT",
    "RETENTION",
    "Entry",
    "HistoryBook",
    "HouseholdHistory",
    "entry_for",
    "event_time",
]

#: How far behind the newest incident entries are kept: the longest window any rule set may
#: set plus a margin for notifications that arrive late about an older incident. Older
#: entries can no longer count for anything and are dropped, so a household's history
#: stays small (and a rule set can lengthen a window up to the limit with history intact).
RETENTION = timedelta(days=MAX_WINDOW_DAYS + 35)
#: Version of the JSON layout in the table (bump when it changes incompatibly).
HISTORY_FORMAT = 1


def event_time(contact: Contact) -> datetime:
    """The time windows are measured from: the incident, else the receipt."""
    return contact.incident_at or contact.received_at


@dataclass(frozen=True)
class Entry:
    """What one earlier contact contributes to the counts (ids and flags only)."""

    contact_id: str
    at: datetime
    """Incident time (receipt time when there is none)."""
    domestic_abuse: bool = False
    """A police domestic-abuse notification (counts for the whole household)."""
    low_graded: tuple[str, ...] = ()
    """Subject ids of a police notification graded low/standard (PPN low or DASH standard)."""
    missing: tuple[str, ...] = ()
    """Subject ids the contact reports a missing episode for (10A or ``missing_child``)."""

    def counts_for_anything(self) -> bool:
        """Whether the entry adds to any count (others are not kept)."""
        return self.domestic_abuse or bool(self.low_graded) or bool(self.missing)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "contact_id": self.contact_id,
            "at": self.at.isoformat(),
            "da": self.domestic_abuse,
            "low_graded": list(self.low_graded),
            "missing": list(self.missing),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Entry:
        """Read back :meth:`to_dict`."""
        return cls(
            contact_id=str(raw["contact_id"]),
            at=datetime.fromisoformat(str(raw["at"])),
            domestic_abuse=bool(raw.get("da", False)),
            low_graded=tuple(str(s) for s in raw.get("low_graded", ())),
            missing=tuple(str(s) for s in raw.get("missing", ())),
        )


def entry_for(contact: Contact) -> Entry:
    """What ``contact`` will contribute to the counts of later contacts."""
    police = contact.source.kind == "police"
    low_graded = police and (contact.ppn_grade == "low" or contact.dash_risk == "standard")
    missing = "10A" in contact.factors or contact.incident_type == "missing_child"
    subjects = tuple(sorted({c.subject_id for c in contact.children}))
    return Entry(
        contact_id=contact.contact_id,
        at=event_time(contact),
        domestic_abuse=police and contact.incident_type == "domestic_abuse",
        low_graded=subjects if low_graded else (),
        missing=subjects if missing else (),
    )


def _order(entry: Entry) -> tuple[datetime, str]:
    return entry.at, entry.contact_id


@dataclass(frozen=True)
class HouseholdHistory:
    """The contacts that matter to the stateful rules for one subject key, oldest first."""

    entries: tuple[Entry, ...] = field(default=())

    def __post_init__(self) -> None:
        ids = [e.contact_id for e in self.entries]
        if len(ids) != len(set(ids)):
            raise ValueError("a contact appears twice in a household history")

    def has(self, contact_id: str) -> bool:
        """Whether the contact has been recorded (and is still within retention)."""
        return any(e.contact_id == contact_id for e in self.entries)

    @property
    def newest(self) -> datetime | None:
        """Incident time of the newest entry, if any."""
        return max((e.at for e in self.entries), default=None)

    def record(self, contact: Contact) -> HouseholdHistory:
        """This history with ``contact`` remembered; ``self`` when there is nothing new.

        Idempotent: recording a contact again (a replay, a redelivery) changes nothing.
        Entries older than :data:`RETENTION` behind the newest are dropped, and a contact
        that old is not added back, so a replay of an ancient contact changes nothing either.
        """
        if self.has(contact.contact_id):
            return self
        entry = entry_for(contact)
        if not entry.counts_for_anything():
            return self
        newest = max(entry.at, self.newest or entry.at)
        horizon = newest - RETENTION
        if entry.at < horizon:
            return self
        kept = [e for e in self.entries if e.at >= horizon]
        return HouseholdHistory(tuple(sorted([*kept, entry], key=_order)))

    def facts_for(self, contact: Contact, windows: Windows | None = None) -> ScreeningHistory:
        """Counts of the contacts before ``contact`` (itself excluded) within each of the
        rule set's windows (the defaults when none are given)."""
        windows = windows or Windows()
        at = event_time(contact)
        earlier = [e for e in self.entries if e.contact_id != contact.contact_id and e.at <= at]
        # A child's own entries and its probable matches' (the same child before a move).
        known_as = {c.subject_id: {c.subject_id, *c.matched_subject_ids} for c in contact.children}

        def within(days: int) -> list[Entry]:
            return [e for e in earlier if at - e.at <= timedelta(days=days)]

        def about(child: str, subjects: tuple[str, ...]) -> bool:
            return not known_as[child].isdisjoint(subjects)

        police = within(windows.low_graded_police)
        missing = within(windows.missing_episodes)
        return ScreeningHistory(
            da_incidents_365d=sum(1 for e in within(windows.da_notifications) if e.domestic_abuse),
            low_graded_police_90d={
                s: sum(1 for e in police if about(s, e.low_graded)) for s in known_as
            },
            missing_episodes_90d={
                s: sum(1 for e in missing if about(s, e.missing)) for s in known_as
            },
        )

    def to_json(self) -> bytes:
        """The table value: compact, deterministic JSON."""
        body = {"format": HISTORY_FORMAT, "entries": [e.to_dict() for e in self.entries]}
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes | str | None) -> HouseholdHistory:
        """Read a table value (``None``: an empty history). Raises ValueError when unreadable."""
        if data is None:
            return cls()
        try:
            body = json.loads(data)
            if body.get("format") != HISTORY_FORMAT:
                raise ValueError(f"unknown history format {body.get('format')!r}")
            entries = tuple(sorted((Entry.from_dict(e) for e in body["entries"]), key=_order))
        except (TypeError, KeyError, AttributeError, json.JSONDecodeError) as exc:
            raise ValueError(f"unreadable household history: {type(exc).__name__}") from exc
        return cls(entries)


class HistoryBook:
    """Histories of many households in memory, keyed by subject key (the what-if tool, the
    benchmarks and tests; the service keeps the same values in its Faust table)."""

    def __init__(
        self,
        histories: Mapping[str, HouseholdHistory] | None = None,
        windows: Windows | None = None,
    ) -> None:
        self._histories: dict[str, HouseholdHistory] = dict(histories or {})
        self.windows = windows or Windows()
        """The windows :meth:`record` counts over (a rule set's)."""

    def __len__(self) -> int:
        return len(self._histories)

    def get(self, subject_key: str) -> HouseholdHistory:
        """The history of ``subject_key`` (empty if none)."""
        return self._histories.get(subject_key, HouseholdHistory())

    def remember(self, contact: Contact) -> HouseholdHistory:
        """Remember ``contact``; return its household's history (to count over any windows)."""
        history = self.get(contact.subject_key).record(contact)
        self._histories[contact.subject_key] = history
        return history

    def record(self, contact: Contact) -> ScreeningHistory:
        """Remember ``contact`` and return the facts for screening it (over :attr:`windows`)."""
        return self.remember(contact).facts_for(contact, self.windows)

    def record_all(self, contacts: Iterable[Contact]) -> list[ScreeningHistory]:
        """:meth:`record` each contact in order."""
        return [self.record(c) for c in contacts]
