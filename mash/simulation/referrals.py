"""Referrals the simulator draws: from the census sources other than police, each about a
concern (neglect, missing, exploitation, ...) with its factors and indicators, from a
fictional referrer. Valid against the contract (``schemas.inbound.Referral``) by
construction: the payload is validated before it is encoded.
"""

from __future__ import annotations

from typing import Any

from mash.simulation.calibration import REFERRERS, Concern, pick
from mash.simulation.people import NARRATIVE, child_payload
from mash.simulation.run import SimRecord, SimulationRun, Slot
from schemas.inbound import Referral
from services.common.topics import INBOUND_REFERRALS

#: Census sources that are members of the public: one shared agency id, "public".
PUBLIC_SOURCES = frozenset({"1A", "1B", "1C", "1D", "9"})
#: Concerns about a teenager: a new household's first child is 11-17.
TEEN_CONCERNS = frozenset(
    {"missing", "sexual_exploitation", "criminal_exploitation", "self_harm", "behaviour"}
)


def _concern(run: SimulationRun, source: str) -> tuple[str, Concern]:
    """What a referral is about, by the calibration's weights as ``source`` leans them."""
    concerns = run.cal.referrals.concerns
    bias = run.cal.referrals.source_bias.get(source, {})
    weights = {name: c.weight * bias.get(name, 1.0) for name, c in concerns.items()}
    name = pick(run.rng, weights)
    return name, concerns[name]


def referral(run: SimulationRun, n: int, slot: Slot) -> SimRecord:
    """Contact ``n``: a referral from the slot's census source about a new household (a
    teenager for the teenage concerns) or, on a repeat, a child already seen; its
    referrer, indicators and consent drawn to the calibration."""
    rng = run.rng
    cal = run.cal.referrals
    name, concern = _concern(run, slot.source)
    household = slot.household
    if household is None:
        household = run.world.new_household(teen=name in TEEN_CONCERNS)
        first = household.children[0]
    else:
        first = rng.choice([c for c in household.children if c.contacted])
    subjects = [first]
    if rng.random() < cal.siblings_included_chance:
        subjects += [c for c in household.children if c is not first]
    factors = list(concern.factors)
    if rng.random() < cal.extra_factor_chance and factors != ["21"]:
        _, extra = _concern(run, slot.source)
        factors += [f for f in extra.factors if f not in factors and f != "21"]
    indicators: dict[str, Any] = {
        "immediate_danger": rng.random() < cal.immediate_danger_chance,
        "injury_observed": rng.random() < concern.injury_chance,
        "disclosure": concern.disclosure,
        "forced_marriage": concern.forced_marriage,
        "missing_episodes_90d": (
            rng.randint(*concern.missing_episodes) if concern.missing_episodes else 0
        ),
    }
    if rng.random() < cal.consent_obtained_chance:
        consent: dict[str, Any] = {"obtained": True}
    else:
        consent = {
            "obtained": False,
            "override_reason": pick(rng, cal.consent_override_reasons),
        }
    prefix, organisation, role = REFERRERS[slot.source]
    if slot.source in PUBLIC_SOURCES:
        agency = "public"
    elif slot.source == "2A" and first.school_urn is not None:
        agency = f"school-{first.school_urn}"
    else:
        agency = f"{prefix}-{rng.randrange(1, 40):02d}"
    referral_id = f"{run.seed_tag}-REF-{n:06d}"
    data = {
        "referral_id": referral_id,
        "received_at": slot.at.isoformat(),
        "referral_source": slot.source,
        "referrer": {
            "agency_id": agency,
            "organisation": organisation,
            "name": "Testreferrer Example-Sender",
            "role": role,
            "email": f"referrals@{agency}.example",
            "phone": f"0121 496 0{rng.randrange(100, 1000)}",
        },
        "children": [
            child_payload(c, household, rng.random() < cal.nhs_number_chance) for c in subjects
        ],
        "factors": factors,
        "indicators": indicators,
        "consent": consent,
        "narrative": NARRATIVE,
    }
    model = Referral.model_validate(data)
    run.remember(household, subjects, "referral")
    hub, out_of_area = run.hub(household)
    return SimRecord(
        record=run.encode(
            INBOUND_REFERRALS, referral_id, model, cal.system, slot.at, ("contact", n)
        ),
        kind="referral",
        source=slot.source,
        repeat=slot.repeat,
        children=len(subjects),
        hub=hub,
        out_of_area=out_of_area,
        no_fixed_abode=household.no_fixed_abode,
    )
