"""A small fixed sample of traffic for the end-to-end tests (``make run`` feeds the
pipeline with ``mash simulate`` instead).

Fourteen messages: police notifications and referrals of different kinds (binary and
structured CloudEvents), and two bad messages that must end up as dead letters. Event ids
are fixed, so feeding the sample twice has no further effect. All people are fictional
(``schemas.examples``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemas import examples as ex
from schemas.base import ContractModel
from schemas.cloudevents import encode_binary, encode_structured
from schemas.inbound import PoliceNotification, Referral
from services.common.ids import derive_id
from services.common.topics import INBOUND_POLICE, INBOUND_REFERRALS

POLICE_SOURCE = "urn:police:west-midlands:sample"
PORTAL_SOURCE = "urn:council:portal:sample"


@dataclass(frozen=True)
class SampleMessage:
    """One record to publish: contract topic name, key, value and headers."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    valid: bool


def _encode(
    model: ContractModel, *, event_id: str, source: str, structured: bool
) -> tuple[bytes, list[tuple[str, bytes]]]:
    encode: Callable[..., tuple[bytes, list[tuple[str, bytes]]]] = (
        encode_structured if structured else encode_binary
    )
    return encode(
        event_id=event_id,
        source=source,
        data=model,
        time=datetime.fromisoformat("2024-03-13T09:00:00+00:00"),
    )


def _police(n: int, structured: bool = False, **overrides: Any) -> SampleMessage:
    payload = PoliceNotification.model_validate(
        ex.police_notification(notification_id=f"WM-SAMPLE-{n:04d}", **overrides)
    )
    value, headers = _encode(
        payload,
        event_id=derive_id("sample", "police", n),
        source=POLICE_SOURCE,
        structured=structured,
    )
    return SampleMessage(INBOUND_POLICE, payload.notification_id.encode(), value, headers, True)


def _referral(n: int, structured: bool = False, **overrides: Any) -> SampleMessage:
    payload = Referral.model_validate(ex.referral(referral_id=f"REF-SAMPLE-{n:04d}", **overrides))
    value, headers = _encode(
        payload,
        event_id=derive_id("sample", "referral", n),
        source=PORTAL_SOURCE,
        structured=structured,
    )
    return SampleMessage(INBOUND_REFERRALS, payload.referral_id.encode(), value, headers, True)


def synthetic_nhs_numbers(count: int, start: int = 9990001000) -> list[str]:
    """NHS numbers from the 999 test range (never issued to people) with valid check digits."""
    found: list[str] = []
    n = start
    while len(found) < count:
        digits = [int(c) for c in str(n)]
        check = 11 - sum(d * (10 - i) for i, d in enumerate(digits[:9])) % 11
        check = 0 if check == 11 else check
        if check != 10 and check == digits[9]:
            found.append(str(n))
        n += 1
    return found


def sample_messages() -> list[SampleMessage]:
    """The sample, in publishing order."""
    nhs = synthetic_nhs_numbers(8)
    south = {"line1": "9 Sample Lane", "postcode": ex.POSTCODE_SOUTH}
    return [
        _police(1),  # DA high, child present in the North: s47
        _police(
            2,
            structured=True,
            dash_risk="medium",
            dash_score=11,
            children=[ex.police_child(child_ref="P2", nhs_number=nhs[2], address=south)],
        ),
        _police(
            3,
            dash_risk="standard",
            dash_score=4,
            ppn_grade="low",
            children=[ex.police_child(child_ref="P3", nhs_number=nhs[3])],
        ),
        _police(
            4,
            incident_type="child_sexual_abuse",
            dash_risk=None,
            dash_score=None,
            factors=["19C"],
            children=[ex.police_child(child_ref="P4", nhs_number=nhs[4], address=south)],
        ),
        _police(
            5,
            structured=True,
            dash_risk="standard",
            children=[
                ex.police_child(
                    child_ref="P5",
                    nhs_number=nhs[5],
                    address={"line1": "5 Border Road", "postcode": ex.POSTCODE_OUT_OF_AREA},
                )
            ],
        ),
        _police(
            6,
            dash_risk="high",
            children=[ex.police_child(child_ref="P6", present_at_incident=False, resident=False)],
        ),
        _referral(1),  # school, neglect: single agency (early help) in the full rule set
        _referral(
            2,
            structured=True,
            indicators={"immediate_danger": True, "injury_observed": True},
            referral_source="3A",
            referrer=ex.referrer(agency_id="gp-sample-01", organisation="Example Surgery"),
        ),
        _referral(
            3,
            referral_source="1A",
            referrer=ex.referrer(agency_id="public", organisation="Member of the public"),
        ),
        _referral(
            4,
            children=[
                ex.child(child_ref="S1", nhs_number=nhs[6], address=south),
                ex.child(
                    child_ref="S2",
                    given_name="Testsibling",
                    date_of_birth="2021-02-03",
                    nhs_number=nhs[7],
                    address=south,
                ),
            ],
            indicators={"disclosure": "sexual"},
        ),
        _referral(
            5,
            structured=True,
            children=[ex.child(child_ref="N1", nhs_number=None, address=None, no_fixed_abode=True)],
            referral_source="4",
            referrer=ex.referrer(agency_id="housing-sample-01", organisation="Example Housing"),
            factors=["20"],
        ),
        _referral(6, factors=["21"]),
        SampleMessage(
            INBOUND_REFERRALS,
            b"REF-SAMPLE-BAD-1",
            b'{"referral_id": "REF-SAMPLE-BAD-1", ',  # truncated JSON
            [
                ("ce_specversion", b"1.0"),
                ("ce_id", derive_id("sample", "bad", 1).encode()),
                ("ce_source", PORTAL_SOURCE.encode()),
                ("ce_type", b"uk.gov.mash.referral.v1"),
                ("content-type", b"application/json"),
            ],
            False,
        ),
        SampleMessage(
            INBOUND_POLICE,
            b"WM-SAMPLE-BAD-2",
            json.dumps(ex.police_notification(notification_id="WM-SAMPLE-BAD-2")).encode(),
            [("ce_specversion", b"1.0"), ("content-type", b"application/json")],  # no ce_id/type
            False,
        ),
    ]
