"""What a threshold rule may look at, for one child of a contact: the contact's own facts,
the child's age and indicators, and the counts of earlier contacts over the rule set's
windows.

Pure: the counts of earlier contacts come in as a :class:`ScreeningHistory` (kept by
:mod:`services.screening.history`); the date they are counted to comes in too. The condition
words that test these facts are :mod:`services.screening.rules`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from schemas.events import Contact, ContactChild
from schemas.inbound import Indicators

__all__ = [
    "COUNTS",
    "MAX_WINDOW_DAYS",
    "TEMPLATE_FIELDS",
    "V1_COUNT_NAMES",
    "Facts",
    "ScreeningHistory",
    "Windows",
    "age_in_years",
    "facts_for",
]


@dataclass(frozen=True)
class ScreeningHistory:
    """What earlier contacts tell the stateful rules (from the screening history tables).

    Every count is of *previous* contacts only, never the one being screened; the engine
    adds the contact itself (see ``count_at_least`` in the rule file). Each count looks
    back as far as the rule set's :class:`Windows` say (the field names keep the default
    windows, 365 and 90 days).
    """

    da_incidents_365d: int = 0
    """Police domestic-abuse notifications for the contact's household in the window
    before this contact."""
    low_graded_police_90d: Mapping[str, int] = field(default_factory=dict)
    """subject_id -> police notifications about the child graded low/standard (PPN low or
    DASH standard) in the window before this contact."""
    missing_episodes_90d: Mapping[str, int] = field(default_factory=dict)
    """subject_id -> missing episodes recorded for the child in the window before."""

    def __post_init__(self) -> None:
        counts = [
            self.da_incidents_365d,
            *self.low_graded_police_90d.values(),
            *self.missing_episodes_90d.values(),
        ]
        if any(count < 0 for count in counts):
            raise ValueError("screening history counts cannot be negative")


def age_in_years(child: ContactChild, on: date) -> int | None:
    """Whole years of age on ``on``; an unborn child is 0; None when no date is known.

    The birthday itself counts: a child born on 12 March 2023 is 1 on 12 March 2024.
    """
    born = child.date_of_birth
    if born is None:
        return 0 if child.expected_date_of_birth is not None else None
    years = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    return max(years, 0)


#: The counts of earlier contacts a rule may test (``count_at_least``), each over its window.
COUNTS: tuple[str, ...] = ("da_notifications", "low_graded_police", "missing_episodes")
#: The names rule set default-v1 gave the counts (with their default windows): still read.
V1_COUNT_NAMES: Mapping[str, str] = {
    "da_notifications_365d": "da_notifications",
    "low_graded_police_90d": "low_graded_police",
    "missing_episodes_90d": "missing_episodes",
}
#: The longest window a rule set may set: the screening history keeps two years.
MAX_WINDOW_DAYS = 730


@dataclass(frozen=True)
class Windows:
    """How many days before the incident each count looks back (the rule set's ``windows``).

    Practitioners tune these (a hub may count repeat domestic abuse over two years), so they
    are data, and ``mash whatif`` can show what a change would move.
    """

    da_notifications: int = 365
    low_graded_police: int = 90
    missing_episodes: int = 90

    def days(self, count: str) -> int:
        """The window of one of the :data:`COUNTS`, in days."""
        value: int = getattr(self, count)
        return value


@dataclass(frozen=True)
class Facts:
    """Everything a condition may look at, for one child of the contact."""

    contact: Contact
    child: ContactChild
    factors: frozenset[str]
    age: int | None
    indicators: Indicators | None
    """The child's own indicators if the sender gave them, else the contact's."""
    counts: Mapping[str, int]
    """Each of :data:`COUNTS`, this contact included."""
    windows: Windows
    sibling_level: int = 0
    """The highest level the other rules give another child of the contact (0: none yet)."""

    def count(self, name: str) -> int:
        """One of the named counts (``COUNTS``, or a default-v1 name), this contact included."""
        return self.counts[V1_COUNT_NAMES.get(name, name)]

    def template_values(self) -> dict[str, str]:
        """The safe values a reason may interpolate: age, the counts and their windows,
        never names."""
        values = {name: str(self.count(name)) for name in (*COUNTS, *V1_COUNT_NAMES)}
        values |= {f"{name}_days": str(self.windows.days(name)) for name in COUNTS}
        values["age"] = "unknown" if self.age is None else str(self.age)
        return values


TEMPLATE_FIELDS: frozenset[str] = frozenset(
    {"age", *COUNTS, *V1_COUNT_NAMES, *(f"{name}_days" for name in COUNTS)}
)


def facts_for(
    contact: Contact, history: ScreeningHistory, on: date, windows: Windows | None = None
) -> list[Facts]:
    """The facts for each child, in the contact's order.

    Indicators (injury, disclosure, danger, missing count) are the child's own when the
    sender gave them per child, else the contact's, which then apply to every child
    (docs/domain.md "Per child"). Counts include this contact:

    * ``da_notifications``: previous household DA notifications, plus one when this is a
      police domestic-abuse notification.
    * ``low_graded_police``: previous low/standard-graded police notifications about the
      child, plus one when this is a police notification. This one counts whatever its
      grade, so raising the grade can never take a contact below R3-ESCALATE.
    * ``missing_episodes``: the larger of (episodes recorded before, plus one when this
      contact reports an episode: factor 10A or police incident ``missing_child``) and the
      referrer's own 90-day count. The larger, not the sum, because the referrer's count
      and the recorded episodes usually describe the same episodes.
    """
    factors = frozenset(contact.factors)
    police = contact.source.kind == "police"
    this_da = 1 if contact.incident_type == "domestic_abuse" else 0
    this_missing = 1 if "10A" in factors or contact.incident_type == "missing_child" else 0
    out: list[Facts] = []
    for child in contact.children:
        indicators = child.indicators or contact.indicators
        reported_missing = indicators.missing_episodes_90d if indicators else 0
        counts = {
            "da_notifications": history.da_incidents_365d + this_da,
            "low_graded_police": history.low_graded_police_90d.get(child.subject_id, 0)
            + (1 if police else 0),
            "missing_episodes": max(
                history.missing_episodes_90d.get(child.subject_id, 0) + this_missing,
                reported_missing,
            ),
        }
        out.append(
            Facts(
                contact=contact,
                child=child,
                factors=factors,
                age=age_in_years(child, on),
                indicators=indicators,
                counts=counts,
                windows=windows or Windows(),
            )
        )
    return out
