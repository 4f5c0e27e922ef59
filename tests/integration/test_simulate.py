"""``mash simulate`` onto the real broker, in an isolated world: what lands on the inbound
topics is exactly the seeded generator's output, valid or bad as intended, near the
calibration, and a JSONL file replayed with ``mash replay`` lands the same bytes."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mash.jsonl import ReplayRecord
from mash.naming import contract_name
from mash.simulation import SimulationRequest, generate, load_calibration
from schemas.cloudevents import ContractError, decode, validate_data
from schemas.inbound import PoliceNotification, Referral
from schemas.types import ce_type_of
from services.common.topics import INBOUND_POLICE, INBOUND_REFERRALS
from services.common.topology import load_topology
from tests.support import Isolated, Stack, isolated_world, read_exact, run_mash

pytestmark = pytest.mark.integration

ACCEPTED: dict[str, dict[str, Any]] = {
    INBOUND_POLICE: {ce_type_of(PoliceNotification): PoliceNotification},
    INBOUND_REFERRALS: {ce_type_of(Referral): Referral},
}
START = datetime(2026, 1, 5, tzinfo=UTC)


async def inbound_records(world: Isolated) -> list[ReplayRecord]:
    out = []
    for topic in (INBOUND_POLICE, INBOUND_REFERRALS):
        out += await read_exact(world.stack.bootstrap, world.topics(topic), 4)
    return out


def essence(r: ReplayRecord) -> tuple[str, bytes | None, bytes | None, tuple[Any, ...]]:
    # The contract topic (prefix removed), key, value and headers.
    return (contract_name(r.topic), r.key, r.value, r.headers)


async def test_a_simulated_week_on_kafka_is_the_seeded_output_valid_and_calibrated(
    stack: Stack, tmp_path: Path
) -> None:
    world = await isolated_world(stack)
    done = run_mash(
        world, tmp_path, "simulate", "--seed", "9", "--start", "2026-01-05", "--weeks", "1",
        "--to-kafka", "--keep-timestamps", "--summary", "json", "--no-progress",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert '"contacts": 1000' in done.stdout

    expected = generate(
        SimulationRequest(seed=9, start=START, weeks=1),
        load_calibration(),
        load_topology("two-hubs"),
    )
    landed = await inbound_records(world)
    assert Counter(essence(r) for r in landed) == Counter(
        (s.record.topic, s.record.key, s.record.value, s.record.headers) for s in expected
    ), "byte for byte what the pure generator makes for this seed"
    assert sorted(r.timestamp or 0 for r in landed) == sorted(
        s.record.timestamp or 0 for s in expected
    ), "--keep-timestamps stamps each record with its simulated receive time"

    intended = {s.record.key: s.intended_reason for s in expected}
    payloads = []
    for record in landed:
        reason = intended[record.key]
        if reason is not None:
            with pytest.raises(ContractError) as caught:
                validate_data(
                    decode(record.value, list(record.headers)), ACCEPTED[essence(record)[0]]
                )
            assert str(caught.value.reason) == reason
            continue
        event = decode(record.value, list(record.headers))
        payloads.append(validate_data(event, ACCEPTED[essence(record)[0]]))
    assert len(payloads) == 1000

    # A loose check of the mix against simulation.yaml, from what is on the broker.
    police = [p for p in payloads if isinstance(p, PoliceNotification)]
    referrals = [p for p in payloads if isinstance(p, Referral)]
    assert 0.38 < len(police) / 1000 < 0.52
    sources = Counter(r.referral_source for r in referrals)
    assert len(police) > max(sources.values()) * 2, "police are by far the largest source"
    incidents = Counter(p.incident_type for p in police)
    assert incidents.most_common(1)[0][0] == "domestic_abuse"
    assert 0.45 < incidents["domestic_abuse"] / len(police) < 0.65
    dash = Counter(p.dash_risk for p in police if p.incident_type == "domestic_abuse")
    assert dash["standard"] > dash["high"] > 0
    assert dash["standard"] > dash["medium"] > 0
    children = [c.child_ref for p in payloads for c in p.children]
    contacts_about_a_known_child = 0
    seen: set[str] = set()
    for p in sorted(
        payloads,
        key=lambda p: p.reported_at if isinstance(p, PoliceNotification) else p.received_at,
    ):
        refs = {c.child_ref for c in p.children}
        contacts_about_a_known_child += bool(refs & seen)
        seen |= refs
    assert 0.14 < contacts_about_a_known_child / 1000 < 0.30, "about 20% repeat contacts"
    assert len(children) > 1000, "households with siblings"


async def test_a_simulated_file_replayed_lands_the_same_bytes_at_the_set_rate(
    stack: Stack, tmp_path: Path
) -> None:
    direct, via_file = await isolated_world(stack), await isolated_world(stack)
    common = ["--seed", "31", "--count", "40", "--bad-rate", "0.1", "--summary", "none"]
    started = time.monotonic()
    done = run_mash(direct, tmp_path, "simulate", *common, "--to-kafka", "--rate", "25")
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert elapsed > 44 / 25 - 0.2, "44 messages at 25/s take at least about 1.7 s"

    done = run_mash(via_file, tmp_path, "simulate", *common, "--to-file", "sim.jsonl")
    assert done.returncode == 0, done.stderr
    refused = run_mash(via_file, tmp_path, "replay", "--from-file", "sim.jsonl", "--no-progress")
    assert refused.returncode == 2, "the simulated file targets inbound topics"
    done = run_mash(
        via_file, tmp_path, "replay", "--from-file", "sim.jsonl", "--allow-inbound", "--no-progress"
    )
    assert done.returncode == 0, done.stderr
    assert "copied 44 " in done.stdout

    def strip(world: Isolated, records: list[ReplayRecord]) -> Counter[tuple[Any, ...]]:
        return Counter(
            (r.topic.removeprefix(world.prefix), r.key, r.value, r.headers) for r in records
        )

    assert strip(direct, await inbound_records(direct)) == strip(
        via_file, await inbound_records(via_file)
    )
