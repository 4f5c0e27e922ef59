"""No personal data or secret leaves through the side doors: the four services run on an
isolated world with a database password in ``DATABASE_URL``, fed referrals and police
notifications whose every personal field (names, dates of birth, postcodes, addresses,
phone numbers, e-mail, NHS numbers, narrative) carries a known marker, plus bad messages
carrying the same markers (one schema violation with personal data in each offending
field: pydantic's error messages would echo it). Then no marker may appear in any
service's log, any ``/metrics`` page, any dead letter's reason or errors (in PostgreSQL
and on the dead-letter topic) or the audit log. The markers did travel: intake's raw
payloads hold them."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from deploy.local.pipeline import SERVICES, ServiceProcesses
from schemas import examples as ex
from schemas.cloudevents import encode_binary
from schemas.inbound import PoliceNotification, Referral
from services.common.topics import DEAD_LETTER, INBOUND_POLICE, INBOUND_REFERRALS, ROUTED
from tests.sample import synthetic_nhs_numbers
from tests.support import (
    Isolated,
    Outgoing,
    Stack,
    fetch,
    fetchval,
    free_port,
    isolated_world,
    publish,
    read_topic,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

TOKEN = uuid.uuid4().hex[:10]
#: A password in the DSN (the local PostgreSQL trusts 127.0.0.1, so any password works).
DB_PASSWORD = f"Dbsecret{TOKEN}"
NHS = synthetic_nhs_numbers(4, start=9990007000)
#: Every personal value of the marked traffic; none may show up where it is scanned.
MARKERS = {
    "child given name": f"Markchild{TOKEN}",
    "family name": f"Markfamily{TOKEN}",
    "adult name": f"Markadult{TOKEN}",
    "referrer name": f"Markreferrer{TOKEN}",
    "child date of birth": "2011-04-17",
    "adult date of birth": "1987-09-13",
    "home postcode": "B11 9ZX",
    "incident postcode": "B6 7MK",
    "address": f"{TOKEN} Markerstreet",
    "referrer phone": "0121 496 0777",
    "officer phone": "0121 496 0778",
    "email": f"mark{TOKEN}@school.example",
    "narrative": f"Marknarrative{TOKEN}",
    "nhs number": NHS[0],
    "database password": DB_PASSWORD,
}
#: Bad messages, each carrying markers in what makes it bad.
BAD = 3


def spellings(marker: str) -> list[str]:
    """The marker as it could be written: as given, and without spaces (a postcode or a
    phone number normalised)."""
    return sorted({marker.lower(), marker.replace(" ", "").lower()})


def leaks(text: str) -> list[str]:
    """The markers ``text`` contains (case-insensitive)."""
    lowered = text.lower()
    return [name for name, m in MARKERS.items() if any(s in lowered for s in spellings(m))]


def marked_traffic(world: Isolated, now: datetime) -> list[Outgoing]:
    """One police notification and one referral, every personal field a marker."""
    home = {"line1": MARKERS["address"], "town": "Birmingham", "postcode": MARKERS["home postcode"]}
    child = {
        "given_name": MARKERS["child given name"],
        "family_name": MARKERS["family name"],
        "date_of_birth": MARKERS["child date of birth"],
        "address": home,
    }
    police = PoliceNotification.model_validate(
        ex.police_notification(
            notification_id=f"WM-PII-{TOKEN}",
            occurred_at=(now - timedelta(hours=2)).isoformat(),
            reported_at=(now - timedelta(minutes=1)).isoformat(),
            location_postcode=MARKERS["incident postcode"],
            children=[ex.police_child(child_ref="PII-P", nhs_number=NHS[0], **child)],
            adults=[
                ex.adult(
                    given_name=MARKERS["adult name"],
                    family_name=MARKERS["family name"],
                    date_of_birth=MARKERS["adult date of birth"],
                )
            ],
            officer=ex.officer(phone=MARKERS["officer phone"]),
            narrative=f"Synthetic. {MARKERS['narrative']} at {MARKERS['address']}.",
        )
    )
    referral = Referral.model_validate(
        ex.referral(
            referral_id=f"REF-PII-{TOKEN}",
            received_at=(now - timedelta(minutes=1)).isoformat(),
            referrer=ex.referrer(
                name=MARKERS["referrer name"],
                email=MARKERS["email"],
                phone=MARKERS["referrer phone"],
            ),
            children=[ex.child(child_ref="PII-R", nhs_number=NHS[1], **child)],
            narrative=f"Synthetic. {MARKERS['narrative']}.",
        )
    )
    out: list[Outgoing] = []
    for topic, key, payload, source in (
        (INBOUND_POLICE, police.notification_id, police, "urn:police:test:pii"),
        (INBOUND_REFERRALS, referral.referral_id, referral, "urn:portal:test:pii"),
    ):
        value, headers = encode_binary(
            event_id=str(uuid.uuid4()), source=source, data=payload, time=now
        )
        out.append((world.topics(topic), key.encode(), value, headers))
    return out


def bad_traffic(world: Isolated, now: datetime) -> list[Outgoing]:
    """A schema violation with personal data in each offending field, malformed JSON and a
    message without headers, all carrying markers."""
    invalid = ex.referral(referral_id=f"REF-PII-BAD-{TOKEN}")
    invalid["referrer"].update(
        name=MARKERS["referrer name"],
        email=f"{MARKERS['email']} (not an address)",
        phone=f"call {MARKERS['referrer phone']} {MARKERS['referrer name']}",
    )
    invalid["children"][0].update(
        given_name=MARKERS["child given name"],
        family_name=MARKERS["family name"],
        date_of_birth=f"born {MARKERS['child date of birth']} to {MARKERS['adult name']}",
        gender=MARKERS["narrative"],
        nhs_number=f"{MARKERS['nhs number']} {MARKERS['family name']}",
        address={"line1": MARKERS["address"], "postcode": f"{MARKERS['home postcode']} UK"},
    )
    invalid["narrative"] = MARKERS["narrative"] * 3000  # over the length limit
    invalid["consent"] = {"obtained": MARKERS["adult name"]}
    _, headers = encode_binary(
        event_id=str(uuid.uuid4()),
        source="urn:portal:test:pii",
        data=Referral.model_validate(ex.referral()),
        time=now,
    )
    malformed = json.dumps({"narrative": MARKERS["narrative"], "name": MARKERS["adult name"]})
    return [
        (world.topics(INBOUND_REFERRALS), b"bad-1", json.dumps(invalid).encode(), headers),
        (world.topics(INBOUND_REFERRALS), b"bad-2", malformed.encode()[:-7], headers),
        (world.topics(INBOUND_POLICE), b"bad-3", malformed.encode(), []),
    ]


@dataclass(frozen=True)
class Ran:
    """The world after the traffic: where its logs are, its metrics ports."""

    world: Isolated
    log_dir: Path
    ports: dict[str, int]


def metrics_page(port: int) -> str:
    """GET /metrics on 127.0.0.1:``port`` ('' while it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return str(r.read().decode())
    except OSError:
        return ""


@pytest.fixture(scope="module")
async def ran(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Ran]:
    """The four services, each with a metrics port, after the marked and bad traffic."""
    plain = await isolated_world(stack)
    base, at, rest = plain.dsn.partition("@")
    if at and ":" not in base.removeprefix("postgresql://"):
        dsn = f"{base}:{DB_PASSWORD}@{rest}"
    else:  # an external DATABASE_URL with its own password: scan for that one instead
        dsn = plain.dsn
        MARKERS["database password"] = base.rpartition(":")[2]
    world = Isolated(stack, plain.prefix, dsn, plain.topology)
    run_dir = tmp_path_factory.mktemp("no-personal-data")
    ports = {s: free_port() for s in SERVICES}
    services = ServiceProcesses(world.env(), run_dir=run_dir)
    try:
        for service in SERVICES:
            services.start(service, {"MASH_METRICS_PORT": str(ports[service])})
        now = datetime.now(UTC)
        marked = marked_traffic(world, now)
        await publish(stack.bootstrap, [*marked, *bad_traffic(world, now)])

        async def all_handled() -> bool:
            reported = await fetchval(
                dsn,
                "SELECT count(*) FROM processed_events WHERE service = 'notifications'"
                " AND topic = $1 AND outcome <> 'pending'",
                world.topics(ROUTED),
            )
            letters = await fetchval(dsn, "SELECT count(*) FROM dead_letters")
            return bool(reported == len(marked) and letters == BAD)

        await wait_until(all_handled, timeout=180, what="the traffic routed and dead-lettered")
        yield Ran(world, run_dir / "logs", ports)
    finally:
        services.stop_all()


async def test_the_markers_travelled_into_the_case_record(ran: Ran) -> None:
    carried = await fetchval(
        ran.world.dsn,
        "SELECT count(*) FROM raw_payloads WHERE position($1 in convert_from(value, 'UTF8')) > 0",
        MARKERS["narrative"],
    )
    assert carried == 2
    # Each marker is spelled as the scan looks for it: all but the password are in the
    # payloads, and the services were given the password.
    payloads = await fetch(
        ran.world.dsn, "SELECT convert_from(value, 'UTF8') AS v FROM raw_payloads"
    )
    assert set(leaks(" ".join(r["v"] for r in payloads))) == set(MARKERS) - {"database password"}
    assert MARKERS["database password"] in ran.world.env()["DATABASE_URL"]
    reasons = {r["reason"] for r in await fetch(ran.world.dsn, "SELECT reason FROM dead_letters")}
    assert reasons == {"schema_violation", "malformed_json", "missing_header"}


async def test_no_log_line_holds_personal_data_or_a_secret(ran: Ran) -> None:
    for service in SERVICES:
        text = (ran.log_dir / f"{service}.log").read_text(errors="replace")
        assert text.strip(), f"{service} logged nothing"
        assert leaks(text) == [], f"{service}'s log holds {leaks(text)}"


async def test_no_metrics_page_holds_personal_data_or_a_secret(ran: Ran) -> None:
    for service, port in ran.ports.items():

        async def answered(port: int = port) -> str:
            return metrics_page(port)

        page = await wait_until(answered, timeout=30, what=f"{service}'s /metrics")
        assert "mash_events_consumed_total" in page, service
        assert leaks(page) == [], f"{service}'s /metrics holds {leaks(page)}"


async def test_dead_letter_errors_and_the_audit_log_name_fields_not_values(ran: Ran) -> None:
    rows = await fetch(ran.world.dsn, "SELECT reason, errors::text AS errors FROM dead_letters")
    violation = next(r for r in rows if r["reason"] == "schema_violation")
    paths = {e["path"] for e in json.loads(violation["errors"])}
    # Each offending field is named, so the sender can fix it...
    assert {"referrer.phone", "children.0.date_of_birth", "consent.obtained"} <= paths
    # ...and none of their values is repeated.
    for row in rows:
        assert leaks(row["reason"] + row["errors"]) == [], row
    on_topic = await read_topic(ran.world.stack.bootstrap, ran.world.topics(DEAD_LETTER))
    assert len(on_topic) >= BAD
    for record in on_topic:
        letter = record.json()
        assert leaks(json.dumps([letter["reason"], letter["errors"]])) == [], letter["errors"]
    audit = await fetch(ran.world.dsn, "SELECT action, detail::text AS detail FROM audit_log")
    assert audit, "the pipeline audited nothing"
    for row in audit:
        assert leaks(row["action"] + row["detail"]) == [], row
