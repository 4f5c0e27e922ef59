"""Bad messages the simulator draws: each a police notification or referral broken for one
dead-letter reason (malformed JSON, a schema violation, a missing header, an unknown or
unsupported type, too large), so every path to the dead letters gets traffic.

Built by hand rather than through the CloudEvents encoder, which would refuse them; the
household and the times still come from the run, so a seed gives the same bad messages.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from typing import Any

from mash.jsonl import ReplayRecord
from mash.simulation.calibration import Calibration, pick
from mash.simulation.people import NARRATIVE, Household, child_payload
from mash.simulation.run import SimRecord, SimulationRun
from schemas.base import ContractModel
from schemas.inbound import PoliceNotification, Referral
from schemas.types import ce_type_of
from services.common.ids import derive_id
from services.common.topics import INBOUND_POLICE, INBOUND_REFERRALS


def bad_message(run: SimulationRun, n: int) -> SimRecord:
    """Bad message ``n``: a valid-looking contact broken for one dead-letter reason, drawn
    by the calibration's weights (and named in the record, for the tests and summary)."""
    rng = run.rng
    reason = pick(rng, run.cal.bad_messages.weights)
    police = rng.random() < 0.5
    at = run.slot_time("6" if police else "2A")
    topic = INBOUND_POLICE if police else INBOUND_REFERRALS
    key = f"{run.seed_tag}-BAD-{n:05d}"
    household = run.world.new_household()
    data, system, model = _valid_contact(run.cal, key, at, household, police)
    ce_type = ce_type_of(model)
    if reason == "schema_violation":
        data = _break_schema(rng, data, police)
    elif reason == "too_large":
        data["narrative"] = "Synthetic padding. " * 16_000  # ~300 KiB: over the 256 KiB limit
    value = json.dumps(data).encode()
    headers: list[tuple[str, bytes | None]] = [
        ("ce_specversion", b"1.0"),
        ("ce_id", derive_id("simulate", run.request.seed, "bad", n).encode()),
        ("ce_source", system.encode()),
        ("ce_type", ce_type.encode()),
        ("ce_time", at.isoformat().encode()),
        ("content-type", b"application/json"),
    ]
    if reason == "malformed_json":
        value = value[: rng.randrange(1, len(value) - 1)]
    elif reason == "missing_header":
        dropped = rng.choice(("ce_id", "ce_type", "ce_source"))
        headers = [h for h in headers if h[0] != dropped]
    elif reason == "unknown_type":
        headers[3] = ("ce_type", b"uk.gov.mash.parking-fine.v1")
    elif reason == "unsupported_version":
        headers[3] = ("ce_type", ce_type.removesuffix(".v1").encode() + b".v2")
    return SimRecord(
        record=ReplayRecord(
            topic=topic,
            key=key.encode(),
            value=value,
            headers=tuple(headers),
            timestamp=int(at.timestamp() * 1000),
        ),
        kind="bad",
        source="6" if police else "2A",
        intended_reason=reason,
    )


def _valid_contact(
    cal: Calibration, key: str, at: datetime, household: Household, police: bool
) -> tuple[dict[str, Any], str, type[ContractModel]]:
    """The fixed, valid contact a bad message starts from (no draws): its payload, sending
    system and contract model."""
    child = child_payload(household.children[0], household, True)
    if police:
        data: dict[str, Any] = {
            "notification_id": key,
            "force": cal.police.force,
            "incident_type": "domestic_abuse",
            "occurred_at": (at - timedelta(hours=2)).isoformat(),
            "reported_at": at.isoformat(),
            "location_postcode": household.postcode or "B6 4AA",
            "ppn_grade": "low",
            "dash_risk": "standard",
            "children": [{**child, "present_at_incident": True, "resident": True}],
            "factors": ["3B"],
            "officer": {
                "collar_number": "SIM0000",
                "unit": "Example Public Protection Unit",
                "phone": "0121 496 0999",
            },
            "narrative": NARRATIVE,
        }
        return data, cal.police.system, PoliceNotification
    data = {
        "referral_id": key,
        "received_at": at.isoformat(),
        "referral_source": "2A",
        "referrer": {
            "agency_id": "school-999100",
            "organisation": "Example School",
            "name": "Testreferrer Example-Sender",
            "role": "Designated safeguarding lead",
            "email": "dsl@school-999100.example",
            "phone": "0121 496 0998",
        },
        "children": [child],
        "factors": ["16A"],
        "consent": {"obtained": True},
        "narrative": NARRATIVE,
    }
    return data, cal.referrals.system, Referral


def _break_schema(rng: random.Random, data: dict[str, Any], police: bool) -> dict[str, Any]:
    """``data`` with one contract rule broken, drawn from four."""
    broken = dict(data)
    how = rng.randrange(4)
    if how == 0:  # an NHS number with a wrong check digit
        child = dict(broken["children"][0])
        number = child["nhs_number"]
        child["nhs_number"] = number[:9] + str((int(number[9]) + 1) % 10)
        broken["children"] = [child]
    elif how == 1:  # a field the contract does not know
        broken["favourite_colour"] = "green"
    elif how == 2:  # no children at all
        broken["children"] = []
    elif police:  # domestic abuse without a DASH risk
        del broken["dash_risk"]
    else:  # no factors on a referral
        broken["factors"] = []
    return broken
