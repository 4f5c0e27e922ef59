"""The firewall, as a property: whatever arrives, nothing but allow-listed fields leaves.

Random police notifications and referrals carry unique markers in everything that must
stay inside the hub — narratives, adults' names, officer details, crime references, the
referrer's own details, children's addresses and ids — and random routings carry markers
in other agencies' information (target agency, decision and queue ids). Each goes through
intake's pure contact builder and then every outbound path of notifications:
acknowledgement, outcome, update, Operation Encompass notice, and the webhook body in both
CloudEvents modes. No outbound byte may hold a marker (a child's own name may reach only
that child's school), and no outbound event may hold a field outside its audience's
allow-list. Pure and fast: no broker, no database.
"""

from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import examples as ex
from schemas.cloudevents import CloudEvent
from schemas.events import Contact, Feedback, Routed
from schemas.inbound import PoliceNotification, Referral
from services.common.calendar import WorkingCalendar
from services.common.kafka import InboundMessage
from services.common.topology import load_topology
from services.intake import contacts as intake
from services.notifications.encompass import school_notices
from services.notifications.feedback import Reported, acknowledgement, on_routed
from services.notifications.firewall import ALLOW_LIST, Disclosure
from services.notifications.webhooks import Endpoint, signed_request

TOPOLOGY = load_topology("two-hubs")
CALENDAR = WorkingCalendar()
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
ENDPOINTS = [
    Endpoint("any-agency", "https://agency.example.invalid/hook", mode, b"a-secret-for-tests-only")
    for mode in ("structured", "binary")
]
CLOUDEVENT_ATTRIBUTES = {"specversion", "id", "source", "type", "time", "datacontenttype", "data"}
#: Letters that never occur in a UUID or in the outcome wording's capitals: a marker
#: cannot appear in an outbound event by coincidence.
TOKEN_LETTERS = "GHJKMNPQRSTVWXYZ"
#: Characters of the random free text around markers: quotes, backslashes, non-ASCII.
TEXT_POOL = (
    string.ascii_letters + string.digits + " .,;:'\"\\/-_()!?&@#%\n\t" + "éüßøЖж中文😀\u2013\u2019"
)


@dataclass
class Example:
    """One random example: its random source, and the markers placed in it."""

    rng: random.Random
    secret: list[str] = field(default_factory=list)
    child_names: dict[str, list[str]] = field(default_factory=dict)

    def text(self) -> str:
        """Random free text."""
        return "".join(self.rng.choices(TEXT_POOL, k=self.rng.randint(0, 30)))

    def marked(self, tag: str, *, text: bool = True, into: list[str] | None = None) -> str:
        """A value carrying a new unique marker, inside random free text unless ``text``."""
        token = "".join(self.rng.choices(TOKEN_LETTERS, k=10))
        marker = f"QZX{tag}{token}QZX"
        (self.secret if into is None else into).append(marker)
        if not text:
            return marker
        return f"{self.text().strip()} {marker} {self.text().strip()}".strip()

    def child(self, n: int, police: bool) -> dict[str, Any]:
        """A child with markers in its id and address (secret) and its name (its own)."""
        rng = self.rng
        ref = self.marked(f"CREF{n}", text=False)
        names = self.child_names.setdefault(ref, [])
        child = ex.child(
            child_ref=ref,
            given_name=self.marked(f"GIVEN{n}", into=names)[:100],
            family_name=self.marked(f"FAMILY{n}", into=names)[:100],
            date_of_birth=(date(2004, 1, 1) + timedelta(days=rng.randint(0, 7300))).isoformat(),
            nhs_number=None,
            school_urn=rng.choice([None, ex.SCHOOL_URN, "999002", "123456"]),
            address={
                "line1": self.marked(f"LINE{n}")[:200],
                "town": self.marked(f"TOWN{n}")[:200],
                "postcode": rng.choice([ex.POSTCODE_NORTH, ex.POSTCODE_SOUTH, "B90 1AA"]),
            },
        )
        if police:
            child["present_at_incident"] = rng.random() < 0.5
            child["resident"] = rng.random() < 0.5
        return child

    def inbound(self, shape: Shape) -> PoliceNotification | Referral:
        """A police notification or referral with markers in everything secret."""
        rng, m = self.rng, self.marked
        children = [self.child(n, shape.police) for n in range(shape.children)]
        occurred = datetime(2023, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randint(0, 2**21))
        if shape.police:
            return PoliceNotification.model_validate(
                ex.police_notification(
                    notification_id=f"WM-PROP-{rng.randint(0, 10**9)}",
                    incident_type=shape.incident_type,
                    occurred_at=occurred.isoformat(),
                    reported_at=(occurred + timedelta(minutes=rng.randint(0, 600))).isoformat(),
                    crime_reference=m("CRIME", text=False),
                    dash_risk=rng.choice(["standard", "medium", "high"]),
                    dash_score=rng.randint(0, 27),
                    restricted=rng.random() < 0.5,
                    children=children,
                    adults=[
                        ex.adult(
                            role=role,
                            given_name=m(f"ADULTG{i}")[:100],
                            family_name=m(f"ADULTF{i}")[:100],
                        )
                        for i, role in enumerate(["victim", "suspect", "parent", "other"])
                    ],
                    officer=ex.officer(collar_number=m("COL", text=False), unit=m("UNIT")[:200]),
                    narrative=m("NARRATIVE"),
                )
            )
        return Referral.model_validate(
            ex.referral(
                referral_id=f"REF-PROP-{rng.randint(0, 10**9)}",
                received_at=occurred.isoformat(),
                referral_source=shape.referral_source,
                referrer=ex.referrer(
                    agency_id=rng.choice(["school-999001", "gp-1", "public"]),
                    organisation=m("ORG")[:200],
                    name=m("REFNAME")[:200],
                    role=m("ROLE")[:200],
                    email=f"{m('EMAIL', text=False).lower()}@example.invalid",
                ),
                children=children,
                narrative=m("NARRATIVE"),
            )
        )

    def routing(self, contact: Contact, n: int, outcome: str, hub: str) -> Routed:
        """A routing of ``contact`` with markers in other agencies' information."""
        rng, m = self.rng, self.marked
        decided = contact.recorded_at + timedelta(hours=n)
        return Routed.model_validate(
            {
                "routed_id": m(f"ROUTED{n}", text=False),
                "contact_id": contact.contact_id,
                "contact_reference": contact.contact_reference,
                "decision_id": m(f"DECISION{n}", text=False),
                "decision_source": rng.choice(["rules", "practitioner"]),
                "level": rng.randint(1, 4),
                "outcome": outcome,
                "rag": rng.choice(["blue", "green", "amber", "red"]),
                "target_agency": m(f"AGENCY{n}"),
                "hub": hub,
                "queue": None if outcome == "no_further_action" else "s47",
                "queue_item_ids": [m(f"QUEUE{n}", text=False)],
                "contact_source": contact.source.model_dump(),
                "received_at": contact.received_at.isoformat(),
                "decided_at": decided.isoformat(),
                "routed_at": (decided + timedelta(seconds=1)).isoformat(),
            }
        )


@dataclass(frozen=True)
class Shape:
    """What hypothesis chooses for an example; a drawn seed fills in the rest (free text,
    markers, dates, flags), which keeps thousands of examples to a few seconds."""

    seed: int
    police: bool
    children: int
    incident_type: str
    referral_source: str
    outcomes: tuple[str, str]
    hubs: tuple[str, str]


OUTCOMES = st.sampled_from(["no_further_action", "single_agency", "initial_assessment", "s47"])
HUBS = st.sampled_from(TOPOLOGY.hub_ids)
SHAPES = st.builds(
    Shape,
    seed=st.integers(0, 2**32),
    police=st.booleans(),
    children=st.integers(1, 3),
    incident_type=st.sampled_from(["domestic_abuse", "child_neglect"]),
    referral_source=st.sampled_from(["1A", "1B", "1C", "1D", "2A", "3A", "3B", "4", "5D", "9"]),
    outcomes=st.tuples(OUTCOMES, OUTCOMES),
    hubs=st.tuples(HUBS, HUBS),
)


def contact_of(payload: PoliceNotification | Referral) -> Contact:
    """The contact intake would record (its pure builder, no database)."""
    police = isinstance(payload, PoliceNotification)
    event = CloudEvent(
        id="evt-prop",
        source="urn:police:west-midlands:prop" if police else "urn:council:portal:prop",
        type="uk.gov.mash.police-notification.v1" if police else "uk.gov.mash.referral.v1",
        time=None,
        subject=None,
        data=None,
        mode="binary",
    )
    message = InboundMessage("mash.inbound.prop", 0, 1, None, None, [])
    arrival = intake.arrival_of(payload, event, message)
    hub = intake.resolve_hub(payload, TOPOLOGY)
    return intake.contact_of(arrival, hub, intake.ContactHistory(), NOW)


def carried(obj: dict[str, Any]) -> set[str]:
    """Names of the fields that carry a value (an optional field is sent as null)."""
    return {k for k, v in obj.items() if v is not None}


def outbound_bytes(d: Disclosure) -> list[tuple[bytes, set[str]]]:
    """Every byte string that leaves for this disclosure, with the keys its JSON holds."""
    out: list[tuple[bytes, set[str]]] = []
    body = d.event.model_dump_json().encode()
    out.append((body, carried(json.loads(body))))
    if isinstance(d.event, Feedback):
        for endpoint in ENDPOINTS:
            request = signed_request(
                endpoint,
                delivery_id="DEL-PROP",
                event_id=d.event_id,
                source="urn:mash-router:notifications",
                time=NOW,
                feedback=d.event,
            )
            parsed = json.loads(request.body)
            if endpoint.mode == "structured":
                assert set(parsed) <= CLOUDEVENT_ATTRIBUTES
                keys = carried(parsed["data"])
            else:
                keys = carried(parsed)
            headers = "\n".join(f"{k}: {v}" for k, v in request.headers.items()).encode()
            out.append((request.body, keys))
            out.append((headers, keys))
    return out


def assert_nothing_leaks(d: Disclosure, forbidden: list[str]) -> None:
    allowed = ALLOW_LIST[d.audience]
    assert set(d.fields) <= allowed
    for raw, keys in outbound_bytes(d):
        assert keys <= allowed, f"{d.audience} got fields {sorted(keys - allowed)}"
        text = raw.decode()
        leaked = [m for m in forbidden if m in text]
        assert not leaked, f"{d.rule} to {d.audience} leaked {leaked}"


@settings(max_examples=2000, deadline=None)
@given(SHAPES)
def test_no_outbound_event_carries_a_marker_or_a_field_outside_the_allow_list(
    shape: Shape,
) -> None:
    example = Example(random.Random(shape.seed))
    contact = contact_of(example.inbound(shape))
    first = example.routing(contact, 0, shape.outcomes[0], shape.hubs[0])
    second = example.routing(contact, 1, shape.outcomes[1], shape.hubs[1])
    every_child_name = [m for ms in example.child_names.values() for m in ms]

    feedback = [acknowledgement(contact, NOW)]
    decided = on_routed(first, None, TOPOLOGY, NOW)
    if decided.disclosure is not None:
        feedback.append(decided.disclosure)
    reported = Reported(first.outcome, first.hub, 0, first.decided_at, first.routed_at)
    update = on_routed(second, reported, TOPOLOGY, NOW)
    if update.disclosure is not None:
        feedback.append(update.disclosure)
    for d in feedback:
        assert d.audience in {"professional", "public", "police_force"}
        assert_nothing_leaks(d, example.secret + every_child_name)

    scheme = school_notices(contact, CALENDAR)
    refs = {c.subject_id: c.child_ref for c in contact.children}
    for notice in scheme.notices:
        assert notice.disclosure.audience == "school"
        own = example.child_names[refs[notice.subject_id]]
        others = [m for m in every_child_name if m not in own]
        assert_nothing_leaks(notice.disclosure, example.secret + others)


def test_no_allow_list_names_anything_that_must_stay_in_the_hub() -> None:
    never = {
        "narrative",
        "adults",
        "officer",
        "dash_risk",
        "dash_score",
        "rules",
        "reason",
        "restricted",
        "crime_reference",
        "target_agency",
        "factors",
        "indicators",
        "rag",
        "level",
        "address",
        "postcode",
        "nhs_number",
        "referrer",
    }
    for audience, allowed in ALLOW_LIST.items():
        assert not allowed & never, audience
        assert not any("address" in f or "name" in f for f in allowed if audience != "school")
