"""The traffic generator: reproducible, valid, fictional, and near its calibration."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mash.errors import UsageError
from mash.jsonl import to_line
from mash.simulate import ASSUMPTIONS, summarise
from mash.simulation import (
    Calibration,
    SimRecord,
    SimulationRequest,
    generate,
    load_calibration,
)
from mash.simulation.people import ADULT_NAMES, GIVEN_NAMES
from schemas.base import is_valid_nhs_number
from schemas.cloudevents import ContractError, decode, validate_data
from schemas.inbound import PoliceNotification, Referral
from schemas.types import ce_type_of
from services.common.topics import INBOUND_POLICE, INBOUND_REFERRALS
from services.common.topology import Topology, load_topology

ACCEPTED: dict[str, dict[str, Any]] = {
    INBOUND_POLICE: {ce_type_of(PoliceNotification): PoliceNotification},
    INBOUND_REFERRALS: {ce_type_of(Referral): Referral},
}
START = datetime(2026, 1, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def calibration() -> Calibration:
    return load_calibration()


@pytest.fixture(scope="module")
def topology() -> Topology:
    return load_topology("two-hubs")


@pytest.fixture(scope="module")
def week(calibration: Calibration, topology: Topology) -> list[SimRecord]:
    """A default simulated week, with more bad messages than usual to cover each reason."""
    return generate(SimulationRequest(seed=11, start=START, bad_rate=0.05), calibration, topology)


def payload(record: SimRecord) -> Any:
    event = decode(record.record.value, list(record.record.headers))
    return validate_data(event, ACCEPTED[record.record.topic])


def test_the_same_seed_gives_byte_identical_output(
    calibration: Calibration, topology: Topology
) -> None:
    request = SimulationRequest(seed=5, start=START, count=150, bad_rate=0.1)
    first = [to_line(r.record) for r in generate(request, calibration, topology)]
    second = [to_line(r.record) for r in generate(request, calibration, topology)]
    assert first == second
    other = [
        to_line(r.record)
        for r in generate(SimulationRequest(seed=6, start=START, count=150), calibration, topology)
    ]
    assert other != first


def test_every_valid_message_passes_the_contract(week: list[SimRecord]) -> None:
    valid = [r for r in week if r.kind != "bad"]
    assert len(valid) == 1000
    kinds = Counter(type(payload(r)).__name__ for r in valid)
    assert kinds["PoliceNotification"] + kinds["Referral"] == 1000
    modes = Counter(decode(r.record.value, list(r.record.headers)).mode for r in valid)
    assert modes["binary"] > modes["structured"] > 0, "both CloudEvents modes are exercised"


def test_every_bad_message_fails_for_its_intended_reason(week: list[SimRecord]) -> None:
    bad = [r for r in week if r.kind == "bad"]
    assert len(bad) == 50
    for record in bad:
        with pytest.raises(ContractError) as caught:
            payload(record)
        assert str(caught.value.reason) == record.intended_reason
    assert {r.intended_reason for r in bad} >= {
        "malformed_json",
        "schema_violation",
        "missing_header",
        "unknown_type",
        "unsupported_version",
    }


def test_too_large_messages_exceed_the_limit(calibration: Calibration, topology: Topology) -> None:
    only_large = calibration.model_copy(
        update={
            "bad_messages": calibration.bad_messages.model_copy(
                update={"weights": {"too_large": 1.0}}
            )
        }
    )
    records = generate(
        SimulationRequest(seed=2, start=START, count=10, bad_rate=0.2), only_large, topology
    )
    bad = [r for r in records if r.kind == "bad"]
    assert len(bad) == 2
    for record in bad:
        assert len(record.record.value or b"") > 256 * 1024
        with pytest.raises(ContractError) as caught:
            payload(record)
        assert caught.value.reason == "too_large"


def test_the_mix_is_near_the_calibration(week: list[SimRecord], calibration: Calibration) -> None:
    summary = summarise(week)
    assert summary.contacts == calibration.contacts_per_week
    police_share = calibration.sources["6"] / sum(calibration.sources.values())
    assert abs(summary.police / summary.contacts - police_share) < 0.05
    assert summary.by_source.most_common(1)[0][0] == "6", "police are the largest source"
    assert abs(summary.repeats / summary.contacts - calibration.repeats.share) < 0.05
    assert summary.by_incident_type.most_common(1)[0][0] == "domestic_abuse"
    assert summary.by_dash_risk.most_common(1)[0][0] == "standard"
    referral_sources = {s for s in summary.by_source if s != "6"}
    assert len(referral_sources) >= 15, "a realistic spread of referral sources"
    assert summary.children > summary.contacts, "some contacts name siblings"


def test_people_are_obviously_fictional(week: list[SimRecord]) -> None:
    given = {n for names in GIVEN_NAMES.values() for n in names} | set(ADULT_NAMES)
    given |= {"Testsuspect", "Testreferrer Example-Sender"}
    for record in week:
        if record.kind == "bad":
            continue
        data = payload(record)
        for child in data.children:
            assert child.given_name is None or child.given_name in given
            assert (child.family_name or "").startswith("Example-")
            if child.nhs_number is not None:
                assert child.nhs_number.startswith("999")
                assert is_valid_nhs_number(child.nhs_number)
        if isinstance(data, PoliceNotification):
            for adult in data.adults:
                assert adult.given_name in given
                assert adult.family_name.startswith("Example-")
            assert data.officer.phone.startswith("0121 496 0")
        else:
            assert data.referrer.email.endswith(".example")
            assert data.referrer.phone.startswith("0121 496 0")


def test_simulated_nhs_numbers_avoid_the_fixed_examples(week: list[SimRecord]) -> None:
    numbers = {
        c.nhs_number for r in week if r.kind != "bad" for c in payload(r).children if c.nhs_number
    }
    assert numbers
    assert all(not n.startswith("9990") for n in numbers)


def test_addresses_spread_over_the_topology_with_some_out_of_area_and_no_abode(
    week: list[SimRecord], topology: Topology
) -> None:
    areas: Counter[str] = Counter()
    out_of_area: set[str] = set()
    no_abode = 0
    for record in week:
        if record.kind == "bad":
            continue
        for child in payload(record).children:
            if child.no_fixed_abode:
                no_abode += 1
                continue
            resolved = topology.resolve(child.address.postcode)
            if resolved.out_of_area:
                out_of_area.add(str(resolved.district))
            else:
                areas[str(resolved.area)] += 1
    assert set(areas) == set(topology.areas), "every area gets traffic"
    assert out_of_area <= {"B90", "B43"}
    assert out_of_area
    assert no_abode > 0
    summary = summarise(week)
    assert set(summary.by_hub) == set(topology.hub_ids)


def test_households_have_siblings_and_repeat_contacts_over_time(week: list[SimRecord]) -> None:
    seen: dict[str, list[datetime]] = defaultdict(list)
    multi_child = 0
    for record in week:
        if record.kind == "bad":
            continue
        data = payload(record)
        multi_child += len(data.children) > 1
        when = data.reported_at if isinstance(data, PoliceNotification) else data.received_at
        for child in data.children:
            seen[child.child_ref].append(when)
    repeated = {ref: times for ref, times in seen.items() if len(times) > 1}
    assert multi_child > 50
    assert len(repeated) > 100
    assert any(len(times) >= 3 for times in repeated.values()), "some children keep coming back"
    assert all(times == sorted(times) for times in repeated.values())


def test_times_fall_inside_the_simulated_period_in_order(
    calibration: Calibration, topology: Topology
) -> None:
    records = generate(
        SimulationRequest(seed=3, start=START, weeks=2, count=300), calibration, topology
    )
    end = START + timedelta(weeks=2)
    stamps = [r.record.timestamp or 0 for r in records]
    assert stamps == sorted(stamps)
    for record in records:
        at = datetime.fromtimestamp((record.record.timestamp or 0) / 1000, tz=UTC)
        assert START <= at < end
        if record.kind == "police":
            data = payload(record)
            assert data.occurred_at < data.reported_at
    # Referrals are mostly made in office hours on weekdays.
    referral_times = [
        datetime.fromtimestamp((r.record.timestamp or 0) / 1000, tz=UTC)
        for r in records
        if r.kind == "referral"
    ]
    office = [t for t in referral_times if t.weekday() < 5 and 8 <= t.hour < 18]
    assert len(office) / len(referral_times) > 0.75


def test_ids_are_unique_and_carry_the_seed(week: list[SimRecord]) -> None:
    ids = [decode(r.record.value, list(r.record.headers)).id for r in week if r.kind != "bad"]
    assert len(ids) == len(set(ids)) == 1000
    keys = [r.record.key or b"" for r in week]
    assert len(keys) == len(set(keys))
    assert all(re.match(rb"^SIM11-", k) for k in keys)


def test_a_bad_calibration_is_a_one_line_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "mix.yaml"
    path.write_text("contacts_per_week: 0\n", encoding="utf-8")
    with pytest.raises(UsageError, match="contacts_per_week"):
        load_calibration(path)
    with pytest.raises(UsageError, match="cannot read calibration"):
        load_calibration(tmp_path / "missing.yaml")


def test_a_calibration_that_is_not_yaml_is_refused_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "mix.yaml"
    path.write_text("sources: [1\n  police: 2\n", encoding="utf-8")
    with pytest.raises(UsageError, match="not valid YAML at line") as refused:
        load_calibration(path)
    assert str(path) in str(refused.value)
    assert len(str(refused.value).splitlines()) == 1, "the YAML parser's lines, joined"


def test_a_request_refuses_nonsense() -> None:
    with pytest.raises(UsageError):
        SimulationRequest(weeks=0)
    with pytest.raises(UsageError):
        SimulationRequest(bad_rate=1.5)
    with pytest.raises(UsageError):
        SimulationRequest(start=datetime(2026, 1, 5))  # naive: which timezone?


# --- what --help says it assumes -----------------------------------------------------------


def _share(weights: dict[str, float], key: str) -> str:
    return f"{weights[key] / sum(weights.values()):.0%}"


def test_the_stated_assumptions_are_the_shipped_calibrations_figures(
    calibration: Calibration,
) -> None:
    """Every figure ``mash simulate --help`` states, worked out from simulation.yaml: a
    changed calibration that leaves the help behind fails here."""
    text = " ".join(ASSUMPTIONS.split())  # as one line: figures may wrap
    police, households = calibration.police, calibration.households
    children = households.children
    stated = [
        f"about {calibration.contacts_per_week:,} contacts a week",
        f"{_share(calibration.sources, '6')} police notifications",
        f"({_share(police.incident_types, 'domestic_abuse')} of them domestic abuse)",
        "DASH standard {}, medium {}, high {}".format(
            *(_share(police.dash_risk, k) for k in ("standard", "medium", "high"))
        ),
        "low {}, medium {}, high {}.".format(
            *(_share(police.ppn_grade, k) for k in ("low", "medium", "high"))
        ),
        "households of 1-{} children ({}%)".format(
            max(int(k) for k in children),
            "/".join(_share(children, k).removesuffix("%") for k in sorted(children)),
        ),
        f"siblings {calibration.referrals.siblings_included_chance:.0%} of the time (referrals)"
        f" or {police.siblings_included_chance:.0%} (police neglect and abuse)",
        f"{calibration.repeats.share:.0%} of contacts are about a household already contacted",
        f"at least {calibration.repeats.same_kind_chance:.0%} of the time",
        "{}-{} hours after the incident".format(*(f"{h:g}" for h in police.report_delay_hours)),
        f"referrals {calibration.referrals.office_hours_share:.0%} in office hours",
        f"(South {_share(households.areas, 'south')}), "
        f"{households.out_of_area_share:.0%} out of area "
        f"({', '.join(households.out_of_area_districts)}), "
        f"{households.no_fixed_abode_share:.0%} of no fixed abode",
        f"{calibration.bad_messages.rate:.0%} bad messages",
        f"{calibration.structured_mode_share:.0%} structured mode",
    ]
    missing = [figure for figure in stated if figure not in text]
    assert missing == []
    # The evening is the police's busiest time, as stated.
    busiest = max(range(24), key=lambda h: police.hour_weights[h])
    assert 17 <= busiest <= 22
    # Its examples of fictional people are the generator's own.
    assert "Testchild" in GIVEN_NAMES["female"]
