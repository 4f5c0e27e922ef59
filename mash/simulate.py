"""``mash simulate``'s own part: what its help says the simulator assumes, and the summary
a developer reads after a run. The simulator itself (calibration, people, contacts, the
generator) is the package :mod:`mash.simulation`; the arguments, output and publishing are
:mod:`mash.cli`'s, as for every command.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mash.simulation import SimRecord

#: What ``mash simulate --help`` says the simulator assumes: the shipped calibration's
#: figures (tests/unit/mash/test_simulate.py checks them against ``simulation.yaml``) and
#: what the generator (mash.simulation) does with them.
ASSUMPTIONS = """\
assumptions (the shipped calibration's figures; --calibration changes them):
  traffic    about 1,000 contacts a week city-wide (--count, --weeks), over every day of
             the period: 45% police notifications (55% of them domestic abuse), the rest
             referrals from the census sources. Nothing else: no practitioner decisions,
             queue updates, council case status or partner responses.
  grades     domestic abuse DASH standard 62%, medium 10%, high 28% (PPN grade low,
             medium, high to match); other police notifications low 50%, medium 35%,
             high 15%.
  children   households of 1-4 children (50/30/13/7%), unborn to 17. Domestic abuse
             names every child of the household; other contacts one child, with its
             siblings 25% of the time (referrals) or 30% (police neglect and abuse).
  repeats    20% of contacts are about a household already contacted in the period (no
             history before it); a police repeat after domestic abuse is domestic abuse
             again at least 60% of the time, so incidents build up.
  times      police at any hour, busiest in the evening, 0.5-18 hours after the
             incident; referrals 85% in office hours (Mon-Fri 08:00-18:00).
  places     the topology's areas (South 28%), 3% out of area (B90, B43), 1% of no
             fixed abode.
  rates      1% bad messages on top (--bad-rate), each built for one dead-letter
             reason; 10% structured mode; --rate caps messages a second (default none).
Calibration: mash/simulation.yaml. Volume, repeats and the South's share are
docs/domain.md's "Figures from the source review" (Birmingham 2012-13; volume and repeats
2022); children's presence at domestic abuse is tuned so screening lands near its split
(about 30% no further action, 40% single agency, 7-13% initial assessment, 24-27% s47);
the rest are guesses, marked as such in the file.
Synthetic people only: fictional names ("Testchild Example-Oak"), NHS numbers from the
999 test range, Ofcom drama-range phone numbers, .example e-mail addresses and a fixed
narrative; nothing is read from a real system.
"""


@dataclass(frozen=True)
class Summary:
    """Counts of a simulation, for the report a developer reads after a run."""

    contacts: int
    police: int
    referrals: int
    repeats: int
    children: int
    by_source: Counter[str]
    by_incident_type: Counter[str]
    by_dash_risk: Counter[str]
    by_hub: Counter[str]
    out_of_area: int
    no_fixed_abode: int
    bad_by_reason: Counter[str]

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (counters sorted by count, largest first)."""
        return {
            "contacts": self.contacts,
            "police": self.police,
            "referrals": self.referrals,
            "repeats": self.repeats,
            "children": self.children,
            "by_source": dict(self.by_source.most_common()),
            "by_incident_type": dict(self.by_incident_type.most_common()),
            "by_dash_risk": dict(self.by_dash_risk.most_common()),
            "by_hub": dict(self.by_hub.most_common()),
            "out_of_area": self.out_of_area,
            "no_fixed_abode": self.no_fixed_abode,
            "bad_by_reason": dict(self.bad_by_reason.most_common()),
        }


def summarise(records: Sequence[SimRecord]) -> Summary:
    """Count what :func:`generate` made."""
    contacts = [r for r in records if r.kind != "bad"]
    return Summary(
        contacts=len(contacts),
        police=sum(r.kind == "police" for r in contacts),
        referrals=sum(r.kind == "referral" for r in contacts),
        repeats=sum(r.repeat for r in contacts),
        children=sum(r.children for r in contacts),
        by_source=Counter(r.source for r in contacts),
        by_incident_type=Counter(r.incident_type for r in contacts if r.incident_type),
        by_dash_risk=Counter(r.dash_risk for r in contacts if r.dash_risk),
        by_hub=Counter(r.hub for r in contacts if r.hub),
        out_of_area=sum(r.out_of_area for r in contacts),
        no_fixed_abode=sum(r.no_fixed_abode for r in contacts),
        bad_by_reason=Counter(r.intended_reason for r in records if r.intended_reason),
    )
