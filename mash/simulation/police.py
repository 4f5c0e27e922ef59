"""Police notifications (PPNs) the simulator draws: mostly domestic abuse with a DASH risk,
naming every child of the household; other incidents about one child, sometimes with their
siblings. Valid against the contract (``schemas.inbound.PoliceNotification``) by
construction: the payload is validated before it is encoded.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from mash.simulation.calibration import pick
from mash.simulation.people import FAMILY_WORDS, NARRATIVE, Household, SimChild, child_payload
from mash.simulation.run import SimRecord, SimulationRun, Slot
from schemas.inbound import PoliceNotification
from services.common.topics import INBOUND_POLICE

#: Incident types about one (usually older) child rather than the whole household.
SINGLE_CHILD_INCIDENTS = frozenset(
    {
        "missing_child",
        "child_sexual_exploitation",
        "child_criminal_exploitation",
        "online_harm",
        "child_coming_to_notice",
    }
)


def police_notification(run: SimulationRun, n: int, slot: Slot) -> SimRecord:
    """Contact ``n``: a police notification (a PPN) about the slot's household or a new
    one; a repeat after domestic abuse is domestic abuse again at the calibration's chance,
    so incidents build up in a household."""
    rng = run.rng
    cal = run.cal.police
    household = slot.household
    if (
        household is not None
        and household.last_kind == "police:domestic_abuse"
        and (rng.random() < run.cal.repeats.same_kind_chance)
    ):
        incident = "domestic_abuse"
    else:
        incident = pick(rng, cal.incident_types)
    single = incident in SINGLE_CHILD_INCIDENTS
    if household is None:
        household = run.world.new_household(teen=single)
    reported = slot.at
    low, high = cal.report_delay_hours
    occurred = reported - timedelta(seconds=int(rng.uniform(low, high) * 3600))
    dash: str | None = None
    if incident == "domestic_abuse":
        dash = pick(rng, cal.dash_risk)
        grade = {"standard": "low", "medium": "medium", "high": "high"}[dash]
        with_children = rng.random() < cal.child_present_or_resident.get(dash, 0.7)
        subjects = list(household.children)
    else:
        grade = pick(rng, cal.ppn_grade)
        with_children = True
        subjects = _subjects_single(rng, household, slot.repeat)
        if not single and rng.random() < cal.siblings_included_chance:
            subjects += [c for c in household.children if c not in subjects]
    if slot.repeat and not any(c.contacted for c in subjects):
        subjects.append(next(c for c in household.children if c.contacted))
    children = []
    for child in subjects:
        payload = child_payload(child, household, rng.random() < cal.nhs_number_chance)
        present = with_children and rng.random() < 0.7
        payload["present_at_incident"] = present
        payload["resident"] = with_children
        children.append(payload)
    factors = list(cal.factors[incident])
    for code, chance in cal.extra_factors.items():
        if rng.random() < chance and code not in factors and "21" not in factors:
            factors.append(code)
    crime_chance = cal.crime_reference.get(incident, cal.crime_reference["default"])
    notification_id = f"{run.seed_tag}-WM-{n:06d}"
    location = household.postcode or run.world.any_postcode()
    data: dict[str, Any] = {
        "notification_id": notification_id,
        "force": cal.force,
        "incident_type": incident,
        "occurred_at": occurred.isoformat(),
        "reported_at": reported.isoformat(),
        "location_postcode": location,
        "ppn_grade": grade,
        "children": children,
        "adults": [
            {
                "role": "victim" if incident == "domestic_abuse" else "parent",
                "given_name": household.adults[0][0],
                "family_name": household.family_name,
                "date_of_birth": household.adults[0][1].isoformat(),
            }
        ],
        "factors": factors,
        "officer": {
            "collar_number": f"SIM{rng.randrange(1000, 10000)}",
            "unit": "Example Public Protection Unit",
            "phone": f"0121 496 0{rng.randrange(100, 1000)}",
        },
        "narrative": NARRATIVE,
        "restricted": rng.random() < cal.restricted_chance,
    }
    if rng.random() < crime_chance:
        data["crime_reference"] = f"CRIME-{run.seed_tag}-{n:06d}"
    if dash is not None:
        data["dash_risk"] = dash
        data["dash_score"] = {
            "standard": rng.randrange(0, 10),
            "medium": rng.randrange(10, 14),
            "high": rng.randrange(14, 24),
        }[dash]
        data["adults"].append(
            {
                "role": "suspect",
                "given_name": "Testsuspect",
                "family_name": f"Example-{rng.choice(FAMILY_WORDS)}",
            }
        )
    model = PoliceNotification.model_validate(data)
    run.remember(household, subjects, f"police:{incident}")
    hub, out_of_area = run.hub(household)
    return SimRecord(
        record=run.encode(
            INBOUND_POLICE, notification_id, model, cal.system, reported, ("contact", n)
        ),
        kind="police",
        source="6",
        incident_type=incident,
        dash_risk=dash,
        repeat=slot.repeat,
        children=len(children),
        hub=hub,
        out_of_area=out_of_area,
        no_fixed_abode=household.no_fixed_abode,
    )


def _subjects_single(rng: random.Random, household: Household, repeat: bool) -> list[SimChild]:
    """The one child a notification other than domestic abuse is about: on a repeat, one
    already seen; else the eldest."""
    candidates = [c for c in household.children if c.contacted] if repeat else []
    if not candidates:
        born = [c for c in household.children if c.date_of_birth is not None]
        candidates = sorted(born or household.children, key=lambda c: c.date_of_birth or date.max)[
            :1
        ]
    return [rng.choice(candidates)]
