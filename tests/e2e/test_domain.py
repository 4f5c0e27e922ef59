"""The domain end to end: state comes from earlier events through the four real services,
never from hand-inserted rows (the domain issue's pipeline-level tests).

- per-child outcomes for a sibling group: each child its own queue; the referrer hears
  the highest;
- the same incident by another channel is linked, not a re-referral; a later referral
  about another incident is one, and lifts neglect to an assessment;
- escalation: the third low-graded police notification about a child in 90 days;
- repeat domestic abuse across a house move: the family's history follows it (a probable
  match on the child's names and birth date at the new postcode);
- case status from the council: an open child protection plan makes a new domestic-abuse
  notification s47; an open early-help case steps a level-3 concern up to assessment.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from deploy.local.pipeline import ServiceProcesses
from schemas import examples as ex
from schemas.base import ContractModel
from schemas.cloudevents import encode_binary
from schemas.inbound import CaseStatus, PoliceNotification, Referral
from services.common.topics import INBOUND_CASE_STATUS, INBOUND_POLICE, INBOUND_REFERRALS
from tests.support import Isolated, fetch, fetchval, publish, wait_until

pytestmark = pytest.mark.integration

POLICE_SOURCE = "urn:police:west-midlands:niche"
SCHOOL_SOURCE = "urn:schools:example-primary"
SENT_AT = datetime(2024, 3, 13, tzinfo=UTC)


async def _send(world: Isolated, topic: str, key: str, source: str, data: ContractModel) -> None:
    value, headers = encode_binary(event_id=f"evt-{key}", source=source, data=data, time=SENT_AT)
    await publish(world.stack.bootstrap, [(world.topics(topic), key.encode(), value, headers)])


async def _screened(world: Isolated, reference: str) -> dict[str, Any]:
    """The contact recorded for ``reference`` once it is decided and routed: its flags,
    decision and queue items."""

    async def routed() -> bool:
        return bool(
            await fetchval(
                world.dsn,
                "SELECT count(*) FROM contacts c JOIN routing_decisions r USING (contact_id)"
                " WHERE c.source_reference = $1",
                reference,
            )
        )

    await wait_until(routed, timeout=60, what=f"contact {reference} routed")
    [contact] = await fetch(
        world.dsn,
        "SELECT contact_id, re_referral, open_case FROM contacts WHERE source_reference = $1",
        reference,
    )
    [decision] = await fetch(
        world.dsn,
        "SELECT level, outcome, rules FROM decisions WHERE contact_id = $1 AND source = 'rules'",
        contact["contact_id"],
    )
    items = await fetch(
        world.dsn,
        "SELECT subject_id, queue, outcome, rag, target_agency FROM queue_items"
        " WHERE contact_id = $1 ORDER BY queue",
        contact["contact_id"],
    )
    links = await fetch(
        world.dsn,
        "SELECT linked_contact_id FROM contact_links WHERE contact_id = $1",
        contact["contact_id"],
    )
    rules = decision["rules"]
    rules = json.loads(rules) if isinstance(rules, str) else rules
    return {
        "contact_id": contact["contact_id"],
        "re_referral": contact["re_referral"],
        "open_case": contact["open_case"],
        "linked": sorted(r["linked_contact_id"] for r in links),
        "level": decision["level"],
        "outcome": decision["outcome"],
        "rules": [hit["id"] for hit in (rules if isinstance(rules, list) else [])],
        "items": [(r["queue"], r["outcome"], r["rag"], r["target_agency"]) for r in items],
    }


def _school_referral(
    reference: str, received_at: str, children: list[dict[str, Any]], **more: Any
) -> Referral:
    return Referral.model_validate(
        ex.referral(referral_id=reference, received_at=received_at, children=children, **more)
    )


def _child(ref: str, family_name: str, born: str, **more: Any) -> dict[str, Any]:
    """A child without an NHS number (matched on name, birth date and postcode)."""
    return ex.child(
        child_ref=ref,
        family_name=family_name,
        date_of_birth=born,
        nhs_number=None,
        address={"line1": "5 Example Way", "town": "Birmingham", "postcode": ex.POSTCODE_SOUTH},
        **more,
    )


def _low_graded_police(reference: str, day: str, kid: dict[str, Any]) -> PoliceNotification:
    """A PPN-low notification of a child coming to notice, at home with ``kid`` on ``day``."""
    return PoliceNotification.model_validate(
        ex.police_notification(
            notification_id=reference,
            incident_type="child_coming_to_notice",
            occurred_at=f"{day}T08:00:00+00:00",
            reported_at=f"{day}T09:00:00+00:00",
            location_postcode=ex.POSTCODE_SOUTH,
            crime_reference=None,
            ppn_grade="low",
            dash_risk=None,
            dash_score=None,
            factors=[],
            children=[{**kid, "present_at_incident": True, "resident": True}],
        )
    )


async def test_each_child_of_a_sibling_group_gets_its_own_queue(
    world: Isolated, pipeline: ServiceProcesses
) -> None:
    # An injury seen on the baby only; physical abuse by an adult (18C) for the family.
    baby = _child("C-BABY", "Example-Sib", "2023-10-01", indicators={"injury_observed": True})
    older = _child("C-OLDER", "Example-Sib", "2016-11-02")
    referral = _school_referral(
        "REF-SIB-1", "2024-03-13T09:15:00+00:00", [baby, older], factors=["18C"]
    )
    await _send(world, INBOUND_REFERRALS, "REF-SIB-1", SCHOOL_SOURCE, referral)
    seen = await _screened(world, "REF-SIB-1")
    assert (seen["level"], seen["outcome"]) == (4, "s47")
    assert {"R4-INJ-BABY", "R4-PHYS", "R3-SIBLING"} <= set(seen["rules"])
    # The baby on the s47 queue, the sibling on the assessment queue (R3-SIBLING).
    assert seen["items"] == [
        ("initial-assessment", "initial_assessment", "amber", None),
        ("s47", "s47", "red", None),
    ]

    async def outcome_sent() -> bool:
        return bool(
            await fetchval(
                world.dsn,
                "SELECT count(*) FROM feedback WHERE contact_id = $1 AND kind = 'outcome'",
                seen["contact_id"],
            )
        )

    await wait_until(outcome_sent, timeout=60, what="the referrer's outcome")


async def test_a_linked_contact_is_not_a_re_referral_and_a_later_one_is(
    world: Isolated, pipeline: ServiceProcesses
) -> None:
    kid = _child("C-LINK", "Example-Link", "2016-11-02")
    police = _low_graded_police("WM-LINK-1", "2024-03-12", kid)
    await _send(world, INBOUND_POLICE, "WM-LINK-1", POLICE_SOURCE, police)
    first = await _screened(world, "WM-LINK-1")
    # The school reports the same day: the same incident by another channel.
    same_day = _school_referral("REF-LINK-1", "2024-03-12T15:00:00+00:00", [kid])
    await _send(world, INBOUND_REFERRALS, "REF-LINK-1", SCHOOL_SOURCE, same_day)
    linked = await _screened(world, "REF-LINK-1")
    assert linked["linked"] == [first["contact_id"]]
    assert linked["re_referral"] is False
    assert (linked["level"], linked["rules"]) == (2, ["R2-NEGLECT"])
    # Two months later the school refers the child again: a re-referral, so neglect is
    # an assessment (R3-NEGLECT), even of a seven-year-old.
    later = _school_referral("REF-LINK-2", "2024-05-20T10:00:00+00:00", [kid])
    await _send(world, INBOUND_REFERRALS, "REF-LINK-2", SCHOOL_SOURCE, later)
    again = await _screened(world, "REF-LINK-2")
    assert again["re_referral"] is True
    assert again["linked"] == []
    assert again["level"] == 3
    assert "R3-NEGLECT" in again["rules"]


async def test_the_third_low_graded_police_notification_in_90_days_escalates(
    world: Isolated, pipeline: ServiceProcesses
) -> None:
    kid = _child("C-ESC", "Example-Esc", "2012-04-04")
    seen = []
    for n, day in enumerate(("2024-01-10", "2024-02-10", "2024-03-12"), start=1):
        reference = f"WM-ESC-{n}"
        notification = _low_graded_police(reference, day, kid)
        await _send(world, INBOUND_POLICE, reference, POLICE_SOURCE, notification)
        seen.append(await _screened(world, reference))
    assert ["R3-ESCALATE" in s["rules"] for s in seen] == [False, False, True]
    assert seen[2]["level"] == 3


def _standard_da(
    reference: str, day: str, kid: dict[str, Any], postcode: str
) -> PoliceNotification:
    """A standard-risk domestic-abuse notification with ``kid`` at home at ``postcode``."""
    home = {"line1": "5 Example Way", "town": "Birmingham", "postcode": postcode}
    return PoliceNotification.model_validate(
        ex.police_notification(
            notification_id=reference,
            occurred_at=f"{day}T21:00:00+00:00",
            reported_at=f"{day}T23:00:00+00:00",
            location_postcode=postcode,
            crime_reference=None,
            ppn_grade="medium",
            dash_risk="standard",
            dash_score=4,
            factors=[],
            children=[{**kid, "address": home, "present_at_incident": True, "resident": True}],
        )
    )


async def test_repeat_domestic_abuse_follows_a_family_that_moved(
    world: Isolated, pipeline: ServiceProcesses
) -> None:
    # Two notifications at the old address (B11), then the family moves to B12 (the same
    # hub) and a third is the third in a year: R3-DA-REPEAT, as if it had not moved.
    kid = _child("C-MOVE", "Example-Move", "2015-06-06")
    seen = []
    for n, (day, postcode) in enumerate(
        (("2024-01-05", "B11 1AA"), ("2024-02-05", "B11 1AA"), ("2024-03-05", "B12 9ZZ")),
        start=1,
    ):
        reference = f"WM-MOVE-{n}"
        notification = _standard_da(reference, day, kid, postcode)
        await _send(world, INBOUND_POLICE, reference, POLICE_SOURCE, notification)
        seen.append(await _screened(world, reference))
    assert ["R3-DA-REPEAT" in s["rules"] for s in seen] == [False, False, True]
    assert seen[2]["level"] == 3
    [moved] = await fetch(
        world.dsn,
        "SELECT cc.subject_id, cc.matched_subject_ids, c.subject_key FROM contact_children cc"
        " JOIN contacts c USING (contact_id) WHERE c.contact_id = $1",
        seen[2]["contact_id"],
    )
    [before] = await fetch(
        world.dsn,
        "SELECT cc.subject_id, c.subject_key FROM contact_children cc"
        " JOIN contacts c USING (contact_id) WHERE c.contact_id = $1",
        seen[1]["contact_id"],
    )
    assert moved["subject_id"] != before["subject_id"], "a new postcode: a new subject"
    assert list(moved["matched_subject_ids"]) == [before["subject_id"]]
    assert moved["subject_key"] == before["subject_key"], "the family's history key"


async def _council_opens(
    world: Isolated, child_ref: str, case_type: str, kid: dict[str, Any]
) -> None:
    """The council's case system opens a case for ``kid`` (known to it without an address)."""
    status = CaseStatus.model_validate(
        ex.case_status(
            child={
                "child_ref": child_ref,
                "given_name": kid["given_name"],
                "family_name": kid["family_name"],
                "date_of_birth": kid["date_of_birth"],
            },
            case_type=case_type,
            hub=None,
            at="2024-02-01T10:00:00+00:00",
        )
    )
    await _send(world, INBOUND_CASE_STATUS, child_ref, "urn:council:liquidlogic", status)

    async def recorded() -> bool:
        return bool(
            await fetchval(
                world.dsn,
                "SELECT count(*) FROM council_cases WHERE child_ref = $1 AND status = 'open'",
                child_ref,
            )
        )

    await wait_until(recorded, timeout=60, what=f"the council's {case_type} case recorded")


async def test_an_open_child_protection_plan_makes_new_domestic_abuse_s47(
    world: Isolated, pipeline: ServiceProcesses
) -> None:
    kid = _child("C-CPP", "Example-Plan", "2014-02-02")
    before = await _screen_da(world, "WM-CPP-0", "2024-01-20", kid)
    assert (before["level"], before["open_case"]) == (2, False), "standard risk, no case"
    await _council_opens(world, "LCS-CPP", "child_protection_plan", kid)
    seen = await _screen_da(world, "WM-CPP-1", "2024-03-05", kid)
    assert seen["open_case"] is True
    assert (seen["level"], seen["outcome"]) == (4, "s47")
    assert "R4-DA-CP-PLAN" in seen["rules"]


async def test_an_open_early_help_case_steps_a_level_3_concern_up_to_assessment(
    world: Isolated, pipeline: ServiceProcesses
) -> None:
    kid = _child("C-EH", "Example-Help", "2013-07-07")
    await _council_opens(world, "LCS-EH", "early_help", kid)
    seen = await _screen_da(world, "WM-EH-1", "2024-03-05", kid, dash="medium")
    assert seen["open_case"] is True
    assert (seen["level"], seen["items"]) == (
        3,
        [("initial-assessment", "initial_assessment", "amber", None)],
    )
    [item] = await fetch(
        world.dsn,
        "SELECT step_up, open_case_update FROM queue_items WHERE contact_id = $1",
        seen["contact_id"],
    )
    assert (item["step_up"], item["open_case_update"]) == (True, False)


async def _screen_da(
    world: Isolated, reference: str, day: str, kid: dict[str, Any], dash: str = "standard"
) -> dict[str, Any]:
    notification = _standard_da(reference, day, kid, ex.POSTCODE_SOUTH)
    if dash != "standard":
        notification = notification.model_copy(update={"dash_risk": dash})
    await _send(world, INBOUND_POLICE, reference, POLICE_SOURCE, notification)
    return await _screened(world, reference)
