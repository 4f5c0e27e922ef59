"""Table-driven tests of the inbound contract models: what is accepted, what is refused, where.

Each case is validated three ways that must agree: ``model_validate`` on the dict (how
services build models in Python), :func:`schemas.cloudevents.validate_data` (strict JSON,
how consumers validate Kafka payloads) and, where the rule is expressible and
``jsonschema`` is installed, the exported JSON Schema (what non-Python producers use).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from schemas import examples as ex
from schemas.base import (
    ContractModel,
    is_valid_nhs_number,
    nhs_check_digit,
    normalise_postcode,
)
from schemas.cloudevents import CloudEvent, ContractError, validate_data
from schemas.events import DeadLetterReason
from schemas.export import render
from schemas.inbound import (
    Child,
    Consent,
    PoliceNotification,
    PractitionerDecision,
    QueueUpdate,
    Referral,
)
from schemas.types import CE_TYPES, ce_type_of

Payload = dict[str, Any]


def _validate_json(model: type[ContractModel], payload: Payload) -> ContractModel:
    event = CloudEvent(
        id="evt-test",
        source="urn:test",
        type=ce_type_of(model),
        time=None,
        subject=None,
        data=payload,
        mode="binary",
    )
    return validate_data(event, {ce_type_of(model): model})


def _with_child(builder: Any, **child_overrides: Any) -> Payload:
    """A payload from ``builder`` whose only child has ``child_overrides`` applied."""
    payload: Payload = builder()
    payload["children"] = [{**payload["children"][0], **child_overrides}]
    return payload


def _without(payload: Payload, *keys: str) -> Payload:
    return {key: value for key, value in payload.items() if key not in keys}


# --- valid payloads ----------------------------------------------------------------------

VALID: list[Any] = [
    pytest.param(PoliceNotification, ex.police_notification(), id="police-default"),
    pytest.param(Referral, ex.referral(), id="referral-default"),
    pytest.param(PractitionerDecision, ex.practitioner_decision(), id="decision-override"),
    pytest.param(
        PractitionerDecision,
        _without(ex.practitioner_decision(kind="confirm"), "outcome"),
        id="decision-confirm-without-outcome",
    ),
    pytest.param(
        PractitionerDecision,
        ex.practitioner_decision(outcome="single_agency", target_agency="early_help"),
        id="decision-override-single-agency",
    ),
    pytest.param(QueueUpdate, ex.queue_update(), id="queue-acknowledged"),
    pytest.param(
        QueueUpdate,
        ex.queue_update(status="strategy_discussion_held", strategy_outcome="s47_joint"),
        id="queue-strategy-held",
    ),
    pytest.param(
        QueueUpdate, ex.queue_update(status="closed", closure_reason="RC8"), id="queue-closed"
    ),
    pytest.param(
        Referral,
        _with_child(
            ex.referral,
            date_of_birth=None,
            expected_date_of_birth="2024-09-01",
            given_name=None,
            nhs_number=None,
        ),
        id="unborn-child-without-given-name",
    ),
    pytest.param(
        Referral,
        _with_child(ex.referral, no_fixed_abode=True, address=None),
        id="no-fixed-abode-without-address",
    ),
    pytest.param(
        Referral,
        _with_child(ex.referral, no_fixed_abode=True, address={"line1": "Last known: a hostel"}),
        id="no-fixed-abode-address-without-postcode",
    ),
    pytest.param(
        Referral, _with_child(ex.referral, nhs_number=None, school_urn=None), id="optional-ids"
    ),
    pytest.param(
        Referral,
        _with_child(ex.referral, address={"line1": "2 Example Road", "postcode": "b11 1aa"}),
        id="lower-case-postcode",
    ),
    pytest.param(Referral, ex.referral(factors=["21"]), id="factor-21-alone"),
    pytest.param(
        Referral,
        ex.referral(consent={"obtained": False, "override_reason": "risk_of_significant_harm"}),
        id="consent-overridden",
    ),
    pytest.param(
        Referral, _without(ex.referral(), "indicators", "narrative"), id="referral-defaults"
    ),
    pytest.param(
        PoliceNotification,
        _without(
            ex.police_notification(incident_type="missing_child"),
            "dash_risk",
            "dash_score",
            "crime_reference",
            "adults",
            "factors",
            "narrative",
            "restricted",
        ),
        id="police-not-da-minimal",
    ),
    pytest.param(
        PoliceNotification,
        ex.police_notification(incident_type="child_neglect", dash_risk="standard"),
        id="police-dash-on-other-incident",
    ),
    pytest.param(
        PoliceNotification,
        ex.police_notification(dash_score=0, occurred_at="2024-03-12t21:40:00.5z"),
        id="police-lower-case-rfc3339",
    ),
    pytest.param(
        PoliceNotification,
        ex.police_notification(reported_at="2024-03-12T23:05:00+01:00"),
        id="police-offset-time",
    ),
]


@pytest.mark.parametrize(("model", "payload"), VALID)
def test_valid_payloads_are_accepted(model: type[ContractModel], payload: Payload) -> None:
    """Valid payloads pass both python-mode and strict JSON validation, identically."""
    from_python = model.model_validate(payload)
    from_json = _validate_json(model, payload)
    assert from_python == from_json
    # What we would publish again validates to the same model (no lossy serialisation).
    assert model.model_validate_json(from_json.model_dump_json(), strict=True) == from_json


# --- invalid payloads --------------------------------------------------------------------
# (model, payload, expected error path, fragment of the message, the JSON Schema sees it too)

INVALID: list[Any] = [
    # NHS number
    pytest.param(
        Referral,
        _with_child(ex.referral, nhs_number=ex.INVALID_NHS_NUMBER),
        "children.0.nhs_number",
        "invalid NHS number check digit",
        False,
        id="nhs-check-digit",
    ),
    pytest.param(
        Referral,
        _with_child(ex.referral, nhs_number="999000001"),
        "children.0.nhs_number",
        "pattern",
        True,
        id="nhs-nine-digits",
    ),
    pytest.param(
        Referral,
        _with_child(ex.referral, nhs_number="999 000 0018"),
        "children.0.nhs_number",
        "pattern",
        True,
        id="nhs-with-spaces",
    ),
    pytest.param(
        Referral,
        _with_child(ex.referral, nhs_number=9990000018),
        "children.0.nhs_number",
        "string",
        True,
        id="nhs-as-number",
    ),
    # date of birth / expected date of birth
    pytest.param(
        Referral,
        _with_child(ex.referral, expected_date_of_birth="2024-09-01"),
        "children.0",
        "exactly one of date_of_birth and expected_date_of_birth",
        True,
        id="dob-and-edd",
    ),
    pytest.param(
        Referral,
        _with_child(ex.referral, date_of_birth=None),
        "children.0",
        "exactly one of date_of_birth and expected_date_of_birth",
        True,
        id="neither-dob-nor-edd",
    ),
    pytest.param(
        Referral,
        _with_child(ex.referral, date_of_birth="17/05/2019"),
        "children.0.date_of_birth",
        "ISO date",
        True,
        id="dob-not-iso",
    ),
    pytest.param(
        Referral,
        _with_child(ex.referral, given_name=None),
        "children.0",
        "given_name and family_name are required for a born child",
        True,
        id="born-child-without-given-name",
    ),
    # DASH
    pytest.param(
        PoliceNotification,
        _without(ex.police_notification(), "dash_risk"),
        "",
        "dash_risk is required when incident_type is domestic_abuse",
        True,
        id="da-without-dash",
    ),
    pytest.param(
        PoliceNotification,
        ex.police_notification(dash_risk=None),
        "",
        "dash_risk is required when incident_type is domestic_abuse",
        True,
        id="da-with-null-dash",
    ),
    pytest.param(
        PoliceNotification,
        ex.police_notification(dash_score=28),
        "dash_score",
        "less than or equal to 27",
        True,
        id="dash-score-too-high",
    ),
    # unknown fields, top level and nested
    pytest.param(
        PoliceNotification,
        ex.police_notification(severity="high"),
        "severity",
        "Extra inputs are not permitted",
        True,
        id="unknown-top-level",
    ),
    pytest.param(
        Referral,
        _with_child(ex.referral, eye_colour="blue"),
        "children.0.eye_colour",
        "Extra inputs are not permitted",
        True,
        id="unknown-in-child",
    ),
    pytest.param(
        Referral,
        _with_child(
            ex.referral, address={"line1": "2 Example Road", "postcode": "B11 1AA", "x": 1}
        ),
        "children.0.address.x",
        "Extra inputs are not permitted",
        True,
        id="unknown-in-address",
    ),
    pytest.param(
        Referral,
        ex.referral(referrer=ex.referrer(pager="123")),
        "referrer.pager",
        "Extra inputs are not permitted",
        True,
        id="unknown-in-referrer",
    ),
    pytest.param(
        PoliceNotification,
        ex.police_notification(officer=ex.officer(rank="PC")),
        "officer.rank",
        "Extra inputs are not permitted",
        True,
        id="unknown-in-officer",
    ),
    # address and postcode
    pytest.param(
        Referral,
        _with_child(ex.referral, address={"line1": "2 Example Road"}),
        "children.0",
        "address.postcode is required unless no_fixed_abode is true",
        True,
        id="postcode-missing",
    ),
    pytest.param(
        Referral,
        _with_child(ex.referral, address=None),
        "children.0",
        "address.postcode is required unless no_fixed_abode is true",
        True,
        id="address-missing",
    ),
    pytest.param(
        Referral,
        _with_child(ex.referral, address={"line1": "2 Example Road", "postcode": "NOT A CODE"}),
        "children.0.address.postcode",
        "pattern",
        True,
        id="postcode-invalid",
    ),
    pytest.param(
        PoliceNotification,
        ex.police_notification(location_postcode="B6"),
        "location_postcode",
        "pattern",
        True,
        id="location-postcode-incomplete",
    ),
    # factors
    pytest.param(
        Referral,
        ex.referral(factors=["21", "16A"]),
        "",
        "factor 21 (no factors) must not be combined",
        True,
        id="factor-21-combined",
    ),
    pytest.param(
        PoliceNotification,
        ex.police_notification(factors=["3B", "21"]),
        "",
        "factor 21 (no factors) must not be combined",
        True,
        id="police-factor-21-combined",
    ),
    pytest.param(
        Referral, ex.referral(factors=[]), "factors", "at least 1 item", True, id="no-factors"
    ),
    pytest.param(
        Referral,
        ex.referral(factors=["16B"]),
        "factors.0",
        "Input should be",
        True,
        id="bad-factor",
    ),
    # children
    pytest.param(
        Referral, ex.referral(children=[]), "children", "at least 1 item", True, id="no-children"
    ),
    pytest.param(
        Referral,
        ex.referral(children=[ex.child(), ex.child(given_name="Testtwin")]),
        "",
        "child_ref must be unique",
        False,
        id="duplicate-child-ref",
    ),
    pytest.param(
        PoliceNotification,
        ex.police_notification(children=[ex.child()]),
        "children.0.present_at_incident",
        "Field required",
        True,
        id="police-child-without-present",
    ),
    # consent
    pytest.param(
        Referral,
        ex.referral(consent={"obtained": False}),
        "consent",
        "override_reason is required when consent was not obtained",
        True,
        id="consent-without-reason",
    ),
    pytest.param(
        Referral,
        ex.referral(consent={"obtained": True, "override_reason": "undue_delay"}),
        "consent",
        "override_reason must be absent when consent was obtained",
        True,
        id="consent-obtained-with-reason",
    ),
    # practitioner decision
    pytest.param(
        PractitionerDecision,
        _without(ex.practitioner_decision(), "outcome"),
        "",
        "outcome is required for an override",
        True,
        id="override-without-outcome",
    ),
    pytest.param(
        PractitionerDecision,
        ex.practitioner_decision(outcome="single_agency"),
        "",
        "target_agency is required",
        True,
        id="override-single-agency-without-target",
    ),
    pytest.param(
        PractitionerDecision,
        ex.practitioner_decision(reason="   "),
        "reason",
        "pattern",
        True,
        id="blank-reason",
    ),
    pytest.param(
        PractitionerDecision,
        ex.practitioner_decision(agency="council"),
        "agency",
        "Input should be",
        True,
        id="unknown-agency",
    ),
    # queue update
    pytest.param(
        QueueUpdate,
        ex.queue_update(status="closed"),
        "",
        "closure_reason is required when status is closed",
        True,
        id="closed-without-reason",
    ),
    pytest.param(
        QueueUpdate,
        ex.queue_update(status="closed", closure_reason="RC10"),
        "closure_reason",
        "Input should be",
        True,
        id="closed-unknown-reason",
    ),
    pytest.param(
        QueueUpdate,
        ex.queue_update(closure_reason="RC1"),
        "",
        "closure_reason is only allowed when status is closed",
        True,
        id="closure-reason-when-open",
    ),
    pytest.param(
        QueueUpdate,
        ex.queue_update(status="strategy_discussion_held"),
        "",
        "strategy_outcome is required",
        True,
        id="strategy-held-without-outcome",
    ),
    # times
    pytest.param(
        PoliceNotification,
        ex.police_notification(occurred_at="2024-03-12T21:40:00"),
        "occurred_at",
        "RFC 3339",
        True,
        id="naive-datetime",
    ),
    pytest.param(
        Referral,
        ex.referral(received_at="2024-03-13"),
        "received_at",
        "RFC 3339",
        True,
        id="date-for-datetime",
    ),
    pytest.param(
        Referral,
        ex.referral(received_at=1710321300),
        "received_at",
        "RFC 3339",
        True,
        id="unix-time-number",
    ),
    pytest.param(
        QueueUpdate,
        ex.queue_update(at="1710321300"),
        "at",
        "RFC 3339",
        True,
        id="unix-time-string",
    ),
    pytest.param(
        PractitionerDecision,
        ex.practitioner_decision(decided_at="2024-02-30T10:00:00Z"),
        "decided_at",
        "day is out of range",
        False,
        id="impossible-date",
    ),
    # code lists and limits
    pytest.param(
        PoliceNotification,
        ex.police_notification(incident_type="burglary"),
        "incident_type",
        "Input should be",
        True,
        id="unknown-incident-type",
    ),
    pytest.param(
        Referral, ex.referral(referral_source="11"), "referral_source", "Input", True, id="source"
    ),
    pytest.param(
        Referral,
        _with_child(ex.referral, gender="M"),
        "children.0.gender",
        "Input should be",
        True,
        id="bad-gender",
    ),
    pytest.param(
        Referral,
        _with_child(ex.referral, school_urn="12345"),
        "children.0.school_urn",
        "pattern",
        True,
        id="short-urn",
    ),
    pytest.param(
        Referral,
        ex.referral(narrative="x" * 20001),
        "narrative",
        "at most 20000 characters",
        True,
        id="narrative-too-long",
    ),
    pytest.param(
        Referral,
        _with_child(ex.referral, family_name="X" * 101),
        "children.0.family_name",
        "at most 100 characters",
        True,
        id="name-too-long",
    ),
    pytest.param(
        Referral,
        ex.referral(indicators={"missing_episodes_90d": -1}),
        "indicators.missing_episodes_90d",
        "greater than or equal to 0",
        True,
        id="negative-missing-episodes",
    ),
    pytest.param(
        Referral,
        ex.referral(referral_id=""),
        "referral_id",
        "at least 1 character",
        True,
        id="empty-id",
    ),
]


@pytest.mark.parametrize(("model", "payload", "path", "fragment", "in_json_schema"), INVALID)
def test_invalid_payloads_are_refused(
    model: type[ContractModel], payload: Payload, path: str, fragment: str, in_json_schema: bool
) -> None:
    """Invalid payloads fail in python mode and in strict JSON mode, at the expected path."""
    with pytest.raises(ValidationError):
        model.model_validate(payload)
    with pytest.raises(ContractError) as caught:
        _validate_json(model, payload)
    assert caught.value.reason is DeadLetterReason.SCHEMA_VIOLATION
    found = [(error.path, error.message) for error in caught.value.errors]
    assert any(p == path and fragment in message for p, message in found), found


def _json_schema_validator(model: type[ContractModel]) -> Any:
    return jsonschema.Draft7Validator(json.loads(render(model, CE_TYPES[model])))


@pytest.mark.parametrize(("model", "payload"), VALID)
def test_json_schema_accepts_valid_payloads(model: type[ContractModel], payload: Payload) -> None:
    """The exported JSON Schema accepts every payload the models accept."""
    errors = list(_json_schema_validator(model).iter_errors(payload))
    assert not errors, [error.message for error in errors]


# The NHS check digit, impossible calendar dates and unique child_refs are beyond JSON Schema.
IN_JSON_SCHEMA = [case for case in INVALID if case.values[4]]


@pytest.mark.parametrize(("model", "payload", "path", "fragment", "in_json_schema"), IN_JSON_SCHEMA)
def test_json_schema_refuses_invalid_payloads(
    model: type[ContractModel], payload: Payload, path: str, fragment: str, in_json_schema: bool
) -> None:
    """The exported JSON Schema refuses what the models refuse, where JSON Schema can say it."""
    assert not _json_schema_validator(model).is_valid(payload)


# --- focused checks ----------------------------------------------------------------------


@pytest.mark.parametrize("nhs_number", ex.NHS_NUMBERS)
def test_synthetic_nhs_numbers_are_valid_and_in_test_range(nhs_number: str) -> None:
    """The shared synthetic NHS numbers are valid and in the 999 test range."""
    assert nhs_number.startswith("999")
    assert is_valid_nhs_number(nhs_number)


@pytest.mark.parametrize("nhs_number", ex.NHS_NUMBERS)
def test_any_single_digit_change_breaks_the_check_digit(nhs_number: str) -> None:
    """Modulus 11 catches every single-digit error; the validator must too."""
    for position in range(10):
        for digit in "0123456789":
            if digit == nhs_number[position]:
                continue
            changed = nhs_number[:position] + digit + nhs_number[position + 1 :]
            assert not is_valid_nhs_number(changed), changed


def test_check_digit_of_ten_means_no_valid_number() -> None:
    """Nine digits whose remainder gives 10 have no valid check digit at all."""
    # 999000010: weights 10..2 give 9*10 + 9*9 + 9*8 + 1*3 = 246; 246 % 11 = 4; 11 - 4 = 7.
    assert nhs_check_digit("999000010") == 7
    no_number = next(
        f"999{n:06d}" for n in range(1_000_000) if nhs_check_digit(f"999{n:06d}") is None
    )
    assert not any(is_valid_nhs_number(no_number + digit) for digit in "0123456789")


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [("b6 4aa", "B6 4AA"), ("B64AA", "B6 4AA"), (" b11  1aa ", "B11 1AA"), ("EC1A1BB", "EC1A 1BB")],
)
def test_postcodes_are_normalised(raw: str, canonical: str) -> None:
    """Postcodes are stored upper case with one space before the inward code."""
    assert normalise_postcode(raw) == canonical
    address = {"line1": "1 Example Street", "postcode": raw}
    child = Child.model_validate(ex.child(address=address))
    assert child.address is not None
    assert child.address.postcode == canonical


def test_naive_datetime_objects_are_refused() -> None:
    """A naive datetime built in Python is refused, not assumed to be UTC."""
    with pytest.raises(ValidationError, match="timezone"):
        QueueUpdate(
            queue_item_id="QI-TEST-0001",
            status="acknowledged",
            at=datetime(2024, 3, 13, 12, 0),  # naive on purpose
            by="PRAC-TEST-01",
        )
    update = QueueUpdate(
        queue_item_id="QI-TEST-0001",
        status="acknowledged",
        at=datetime(2024, 3, 13, 12, 0, tzinfo=timezone(timedelta(hours=1))),
        by="PRAC-TEST-01",
    )
    assert update.at.utcoffset() == timedelta(hours=1)


def test_datetime_is_not_accepted_for_a_date() -> None:
    """A date field holds a calendar date; a datetime there is a producer bug."""
    with pytest.raises(ValidationError, match="ISO date"):
        Child.model_validate({**ex.child(), "date_of_birth": datetime(2019, 5, 17, tzinfo=UTC)})
    assert Child.model_validate({**ex.child(), "date_of_birth": date(2019, 5, 17)})


def test_models_are_frozen() -> None:
    """Validated payloads cannot be changed in place."""
    consent = Consent(obtained=True)
    with pytest.raises(ValidationError):
        consent.obtained = False  # type: ignore[misc]


def test_strict_json_refuses_coercions_that_python_mode_allows() -> None:
    """Over the wire, "true" is not a boolean and "5" is not an integer."""
    payload = ex.police_notification(restricted="true", dash_score="5")
    assert PoliceNotification.model_validate(payload).dash_score == 5
    with pytest.raises(ContractError) as caught:
        _validate_json(PoliceNotification, payload)
    assert {error.path for error in caught.value.errors} == {"restricted", "dash_score"}


def test_examples_are_fresh_copies() -> None:
    """Mutating a builder's result never leaks into the next call."""
    first = ex.referral()
    first["children"][0]["given_name"] = "Changed"
    first["referrer"]["name"] = "Changed"
    assert ex.referral()["children"][0]["given_name"] == "Testchild"
    assert ex.referral()["referrer"]["name"] != "Changed"
    assert ex.police_notification(force="test-force")["force"] == "test-force"
