"""Hub resolution by intake, for every shipped topology: each area's districts, the
out-of-area postcodes (B90 Solihull, B43 Sandwell) and no fixed abode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from schemas import examples as ex
from schemas.inbound import PoliceNotification, Referral
from services.common.topics import INBOUND_POLICE, INBOUND_REFERRALS
from tests.integration.intake_harness import IntakeUnderTest
from tests.support import Stack

pytestmark = pytest.mark.integration

# postcode -> expected hub per topology (None: out of area / unresolved -> default hub)
CASES: list[tuple[str, dict[str, str]]] = [
    ("B6 4AA", {"two-hubs": "north-west-central", "central": "central", "four-areas": "north"}),
    (
        "B15 2TT",
        {"two-hubs": "north-west-central", "central": "central", "four-areas": "west-central"},
    ),
    ("B9 4AA", {"two-hubs": "east-south", "central": "central", "four-areas": "east"}),
    ("B31 2AA", {"two-hubs": "east-south", "central": "central", "four-areas": "south"}),
    ("B76 1AA", {"two-hubs": "north-west-central", "central": "central", "four-areas": "north"}),
]
DEFAULT_HUB = {"two-hubs": "north-west-central", "central": "central", "four-areas": "west-central"}


@pytest.fixture(scope="module", params=["two-hubs", "central", "four-areas"])
async def intake(
    request: pytest.FixtureRequest, stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[IntakeUnderTest]:
    topology: str = request.param
    harness = await IntakeUnderTest.start(
        stack, tmp_path_factory.mktemp(topology), topology=topology
    )
    yield harness
    await harness.stop()


async def _contact(intake: IntakeUnderTest, topic: str, payload: Any) -> dict[str, Any]:
    fate = await intake.fate(topic, *await intake.send(topic, payload))
    assert fate.contact_id is not None
    return await intake.contact(fate.contact_id)


@pytest.mark.parametrize(("postcode", "hubs"), CASES, ids=[c[0] for c in CASES])
async def test_home_postcode_picks_the_hub(
    intake: IntakeUnderTest, postcode: str, hubs: dict[str, str]
) -> None:
    payload = Referral.model_validate(
        ex.referral(
            referral_id=f"HUB-{postcode.replace(' ', '')}",
            children=[ex.child(address={"line1": "1 Test Road", "postcode": postcode})],
        )
    )
    contact = await _contact(intake, INBOUND_REFERRALS, payload)
    assert contact["hub"] == hubs[intake.world.topology]
    assert contact["out_of_area"] is False
    assert contact["address_unresolved"] is False


@pytest.mark.parametrize("postcode", ["B90 1AA", "B43 5AA"])
async def test_out_of_area_goes_to_the_default_hub_flagged(
    intake: IntakeUnderTest, postcode: str
) -> None:
    payload = PoliceNotification.model_validate(
        ex.police_notification(
            notification_id=f"OOA-{postcode.replace(' ', '')}",
            children=[ex.police_child(address={"line1": "1 Border Road", "postcode": postcode})],
        )
    )
    contact = await _contact(intake, INBOUND_POLICE, payload)
    assert contact["hub"] == DEFAULT_HUB[intake.world.topology]
    assert contact["out_of_area"] is True


async def test_no_fixed_abode_referral_goes_to_the_default_hub_flagged(
    intake: IntakeUnderTest,
) -> None:
    payload = Referral.model_validate(
        ex.referral(
            referral_id="NFA-1",
            children=[ex.child(address=None, no_fixed_abode=True, nhs_number=None)],
        )
    )
    contact = await _contact(intake, INBOUND_REFERRALS, payload)
    assert contact["hub"] == DEFAULT_HUB[intake.world.topology]
    assert contact["address_unresolved"] is True
    assert contact["out_of_area"] is False
    assert contact["children"][0]["household_key"] is None


async def test_no_fixed_abode_police_child_uses_the_incident_location(
    intake: IntakeUnderTest,
) -> None:
    payload = PoliceNotification.model_validate(
        ex.police_notification(
            notification_id="NFA-P-1",
            location_postcode="B31 2AA",
            children=[ex.police_child(address=None, no_fixed_abode=True)],
        )
    )
    contact = await _contact(intake, INBOUND_POLICE, payload)
    expected = {"two-hubs": "east-south", "central": "central", "four-areas": "south"}
    assert contact["hub"] == expected[intake.world.topology]
