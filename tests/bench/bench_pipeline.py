"""Pipeline benchmark: prints figures, asserts nothing (``make bench``).

1. Intake alone: N inbound events already on the topic, intake started cold; measures
   contacts recorded per second (validation, de-duplication, Postgres, outbox).
2. The rest of the pipeline catching up on those N contacts: screening, routing and
   notifications together; measures contacts fully handled (outcome feedback) per second.

    python -m tests.bench.bench_pipeline [--events 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from deploy.local.pipeline import ServiceProcesses
from schemas import examples as ex
from schemas.cloudevents import encode_binary
from schemas.inbound import PoliceNotification, Referral
from services.common.ids import derive_id
from services.common.topics import INBOUND_POLICE, INBOUND_REFERRALS, ROUTED
from tests.sample import synthetic_nhs_numbers
from tests.support import (
    POLL_SECONDS,
    Isolated,
    Outgoing,
    fetchval,
    isolated_world,
    publish,
    stack_up,
)

FACTORS = (["16A"], ["19C"], ["20"], ["17A"], ["21"])


def traffic(world: Isolated, count: int) -> list[Outgoing]:
    """``count`` events: two referrals for every police notification, distinct children."""
    nhs = synthetic_nhs_numbers(count, start=9991000000)
    now = datetime.now(UTC)
    out: list[Outgoing] = []
    for n in range(count):
        child = ex.child(child_ref=f"B{n}", nhs_number=nhs[n])
        if n % 3 == 0:
            police = PoliceNotification.model_validate(
                ex.police_notification(
                    notification_id=f"WM-BENCH-{n:06d}",
                    children=[{**child, "present_at_incident": True, "resident": True}],
                    dash_risk=("standard", "medium", "high")[n % 3],
                )
            )
            value, headers = encode_binary(
                event_id=derive_id("bench", n), source="urn:police:bench", data=police, time=now
            )
            out.append(
                (world.topics(INBOUND_POLICE), police.notification_id.encode(), value, headers)
            )
        else:
            referral = Referral.model_validate(
                ex.referral(
                    referral_id=f"REF-BENCH-{n:06d}",
                    children=[child],
                    factors=FACTORS[n % len(FACTORS)],
                )
            )
            value, headers = encode_binary(
                event_id=derive_id("bench", n), source="urn:portal:bench", data=referral, time=now
            )
            out.append(
                (world.topics(INBOUND_REFERRALS), referral.referral_id.encode(), value, headers)
            )
    return out


async def wait_for(dsn: str, sql: str, target: int, *args: object, limit: float = 900) -> float:
    """Seconds until ``sql`` counts ``target`` rows."""
    started = time.monotonic()
    while (n := await fetchval(dsn, sql, *args)) < target:
        if time.monotonic() - started > limit:
            raise TimeoutError(f"only {n}/{target} after {limit}s")
        await asyncio.sleep(POLL_SECONDS)
    return time.monotonic() - started


async def bench(events: int) -> None:
    """Run both stages and print the figures."""
    world = await isolated_world(stack_up())
    records = traffic(world, events)
    t0 = time.monotonic()
    await publish(world.stack.bootstrap, records)
    print(f"published {events} inbound events in {time.monotonic() - t0:.1f}s")
    with tempfile.TemporaryDirectory() as tmp:
        services = ServiceProcesses(world.env(), run_dir=Path(tmp))
        try:
            services.start("intake")
            intake_s = await wait_for(world.dsn, "SELECT count(*) FROM contacts", events)
            services.start_all()
            rest_s = await wait_for(
                world.dsn,
                "SELECT count(*) FROM processed_events WHERE service = 'notifications'"
                " AND topic = $1 AND outcome <> 'pending'",
                events,
                world.topics(ROUTED),
            )
        finally:
            services.stop_all()
    print(f"intake (cold start included): {events / intake_s:8.1f} contacts/s  ({intake_s:.1f}s)")
    print(f"screening+routing+notifications: {events / rest_s:8.1f} contacts/s  ({rest_s:.1f}s)")


def main() -> None:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2000)
    asyncio.run(bench(parser.parse_args().events))


if __name__ == "__main__":
    main()
