"""The secured broker refuses what the principals file does not allow.

Against the real secured Apache Kafka (``stack.py up --secure``: SASL_SSL, SCRAM-SHA-512,
the StandardAuthorizer denying whatever no ACL allows) with the ACLs of
``deploy/security/principals.yaml`` applied by ``python -m deploy.security.acls apply``.
Each test makes an attempt the broker must refuse *and* the neighbouring attempt it must
allow, so that a broker letting everything through (or refusing everything) fails it.

A read is attempted with a Fetch request straight to the broker (aiokafka's consumer only
logs a topic it may not describe and waits); the broker answers it per partition with
TOPIC_AUTHORIZATION_FAILED (29) or data. Writes go through aiokafka's idempotent producer.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    TopicAuthorizationFailedError,
)
from aiokafka.protocol.fetch import FetchRequest

from deploy.local import kafka_wire
from deploy.local import stack as local_stack
from deploy.security import acls
from deploy.security.principals import load
from services.common.lag import stop_consumer
from services.common.topics import (
    CONTACTS,
    DECISIONS,
    FEEDBACK_AGENCY_OF_SOURCE,
    FEEDBACK_TOPICS,
    INBOUND_CASE_STATUS,
    INBOUND_POLICE,
    INBOUND_REFERRALS,
    PRACTITIONER_DECISIONS,
    QUEUE_UPDATES,
    ROUTED,
    TopicNames,
    TopicSpec,
    feedback_topic,
    queue_topic,
)
from services.common.topology import TOPOLOGIES_DIR, load_topology
from tests.support import SecureStack, create_product_topics, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

#: Kafka error code TOPIC_AUTHORIZATION_FAILED.
TOPIC_AUTHORIZATION_FAILED = 29
#: Bound on any one client operation against the local broker.
OP_SECONDS = 30.0
HUBS = sorted(
    {h for path in TOPOLOGIES_DIR.glob("*.yaml") for h in load_topology(path.stem).hub_ids}
)
INBOUND = (INBOUND_POLICE, INBOUND_REFERRALS, INBOUND_CASE_STATUS)
HISTORY_CHANGELOG = "mash-screening-history-changelog"
SPECS = [
    *TopicNames().all_specs(HUBS, 4),
    TopicSpec(HISTORY_CHANGELOG, 4, {"cleanup.policy": "compact"}),
]
ALL_TOPICS = [spec.name for spec in SPECS]


def s47(hub: str) -> str:
    """A hub's s47 queue topic."""
    return queue_topic(hub, "s47")


@pytest.fixture(scope="module")
async def secured(secure_stack: SecureStack) -> SecureStack:
    """The secured broker with every product topic of every shipped topology (created by
    the admin super user, as an operator would; no service may create them)."""
    await create_product_topics(secure_stack, SPECS, OP_SECONDS)
    return secure_stack


async def publish(secured: SecureStack, principal: str, topic: str, value: bytes) -> int:
    """Publish ``value`` to partition 0 of ``topic`` as ``principal``; its offset. Raises
    what the broker answers (TopicAuthorizationFailedError when refused)."""
    producer = AIOKafkaProducer(
        **secured.options(principal),
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=int(OP_SECONDS * 1000),
    )
    await asyncio.wait_for(producer.start(), OP_SECONDS)
    try:
        sent = await asyncio.wait_for(producer.send_and_wait(topic, value, partition=0), OP_SECONDS)
        offset: int = sent.offset
        return offset
    finally:
        await producer.stop()


async def fetch_errors(
    secured: SecureStack, principal: str, topics: Iterable[str]
) -> dict[str, int]:
    """Fetch partition 0 of each topic from offset 0 as ``principal``, in one request; the
    broker's error code per topic (0: it handed over the records)."""
    names = list(topics)
    client = AIOKafkaClient(**secured.options(principal))
    await asyncio.wait_for(client.bootstrap(), OP_SECONDS)
    try:
        node = client.get_random_node()
        request = FetchRequest(
            max_wait_time=0,
            min_bytes=0,
            max_bytes=1 << 20,
            isolation_level=0,
            topics=[(name, [(0, 0, 1 << 20)]) for name in names],
        )
        response = await asyncio.wait_for(client.send(node, request), OP_SECONDS)
    finally:
        await client.close()
    errors = {topic[0]: topic[1][0][1] for topic in response.topics}
    assert set(errors) == set(names), errors
    return errors


async def read_value(
    secured: SecureStack,
    principal: str,
    topic: str,
    value: bytes,
    group: str,
    *,
    commit: bool = False,
) -> bool:
    """Whether ``principal``, consuming ``topic`` in consumer group ``group`` from the
    earliest offset, sees a record holding ``value`` (within the time bound); ``commit``
    commits the group's position then."""
    consumer = AIOKafkaConsumer(
        topic,
        **secured.options(principal),
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        await asyncio.wait_for(consumer.start(), OP_SECONDS)

        async def seen() -> bool:
            batch = await consumer.getmany(timeout_ms=500)
            return any(m.value == value for records in batch.values() for m in records)

        found = await wait_until(seen, timeout=OP_SECONDS, what=f"{value!r} on {topic}")
        if commit:
            await asyncio.wait_for(consumer.commit(), OP_SECONDS)
        return found
    finally:
        await stop_consumer(consumer)


def marker() -> bytes:
    """A value no other test run wrote."""
    return f"marker-{uuid.uuid4().hex}".encode()


# --------------------------------------------------------------------------- hubs


@pytest.mark.parametrize(
    ("hub", "other"),
    [
        ("east-south", "north-west-central"),
        ("north-west-central", "east-south"),
        # A prefix ACL ends in a dot: `east` must not reach `east-south`'s queues.
        ("east", "east-south"),
        ("north", "north-west-central"),
    ],
)
async def test_a_hub_reads_its_own_s47_queue_but_not_another_hubs(
    secured: SecureStack, hub: str, other: str
) -> None:
    own_value, other_value = marker(), marker()
    await publish(secured, "admin", s47(hub), own_value)
    await publish(secured, "admin", s47(other), other_value)
    principal = f"hub-{hub}"

    assert await read_value(secured, principal, s47(hub), own_value, f"{principal}.desk")
    errors = await fetch_errors(secured, principal, [s47(hub), s47(other)])
    assert errors == {s47(hub): 0, s47(other): TOPIC_AUTHORIZATION_FAILED}
    # The other hub reads its own queue fine: the refusal is the ACL, not the topic.
    assert (await fetch_errors(secured, f"hub-{other}", [s47(other)]))[s47(other)] == 0


async def test_a_hub_writes_practitioner_decisions_and_queue_updates_but_no_queue_item(
    secured: SecureStack,
) -> None:
    hub = "hub-east-south"
    assert await publish(secured, hub, PRACTITIONER_DECISIONS, marker()) >= 0
    assert await publish(secured, hub, QUEUE_UPDATES, marker()) >= 0
    with pytest.raises(TopicAuthorizationFailedError):  # only routing puts items on queues
        await publish(secured, hub, s47("east-south"), marker())
    assert await publish(secured, "routing", s47("east-south"), marker()) >= 0


# --------------------------------------------------------------------------- producers


@pytest.mark.parametrize(
    ("producer", "own"),
    [
        ("police-force", INBOUND_POLICE),
        ("council-portal", INBOUND_REFERRALS),
        ("case-system", INBOUND_CASE_STATUS),
    ],
)
async def test_an_upstream_producer_writes_only_its_own_inbound_topic(
    secured: SecureStack, producer: str, own: str
) -> None:
    assert await publish(secured, producer, own, marker()) >= 0
    for topic in INBOUND:
        if topic != own:
            with pytest.raises(TopicAuthorizationFailedError):
                await publish(secured, producer, topic, marker())


@pytest.mark.parametrize(
    ("producer", "own"),
    [
        ("police-force", INBOUND_POLICE),
        ("council-portal", INBOUND_REFERRALS),
        ("case-system", INBOUND_CASE_STATUS),
    ],
)
async def test_an_upstream_producer_reads_nothing(
    secured: SecureStack, producer: str, own: str
) -> None:
    await publish(secured, producer, own, marker())
    errors = await fetch_errors(secured, producer, ALL_TOPICS)
    # The portal passes acknowledgements on to members of the public: that topic only.
    readable = {feedback_topic("public")} if producer == "council-portal" else set()
    assert errors == {t: 0 if t in readable else TOPIC_AUTHORIZATION_FAILED for t in ALL_TOPICS}
    # Nor may it join a consumer group, even on the topic it writes.
    with pytest.raises(GroupAuthorizationFailedError):
        await read_value(secured, producer, own, b"-", f"{producer}.reader")
    # Intake, the topic's reader, gets the same records.
    assert (await fetch_errors(secured, "intake", [own]))[own] == 0


# --------------------------------------------------------------------------- services


@pytest.mark.parametrize(
    ("service", "owned", "not_owned"),
    [
        ("intake", CONTACTS, DECISIONS),
        ("screening", DECISIONS, ROUTED),
        # Routing reads the decisions topic but may not write to it.
        ("routing", ROUTED, DECISIONS),
        ("notifications", feedback_topic("police"), s47("east-south")),
        ("notifications", feedback_topic("education"), CONTACTS),
    ],
)
async def test_a_service_cannot_write_a_topic_it_does_not_own(
    secured: SecureStack, service: str, owned: str, not_owned: str
) -> None:
    assert await publish(secured, service, owned, marker()) >= 0
    with pytest.raises(TopicAuthorizationFailedError):
        await publish(secured, service, not_owned, marker())


@pytest.mark.parametrize(
    ("service", "reads", "does_not_read"),
    [
        ("intake", INBOUND_POLICE, CONTACTS),
        ("screening", CONTACTS, INBOUND_POLICE),
        ("routing", DECISIONS, s47("east-south")),
        ("notifications", ROUTED, DECISIONS),
        ("lag-exporter", HISTORY_CHANGELOG, CONTACTS),
    ],
)
async def test_a_service_reads_only_its_input_topics(
    secured: SecureStack, service: str, reads: str, does_not_read: str
) -> None:
    if service == "lag-exporter":  # it may see offsets, never records
        errors = await fetch_errors(secured, service, [reads, does_not_read])
        assert errors == dict.fromkeys([reads, does_not_read], TOPIC_AUTHORIZATION_FAILED)
        return
    errors = await fetch_errors(secured, service, [reads, does_not_read])
    assert errors == {reads: 0, does_not_read: TOPIC_AUTHORIZATION_FAILED}


async def test_a_service_joins_only_its_own_consumer_group(secured: SecureStack) -> None:
    value = marker()
    await publish(secured, "police-force", INBOUND_POLICE, value)
    suffix = uuid.uuid4().hex[:8]
    assert await read_value(secured, "intake", INBOUND_POLICE, value, f"mash-intake-{suffix}")
    with pytest.raises(GroupAuthorizationFailedError):
        await read_value(secured, "intake", INBOUND_POLICE, value, f"mash-screening-{suffix}")


async def test_the_lag_exporter_sees_offsets_of_the_mash_groups(secured: SecureStack) -> None:
    value = marker()
    await publish(secured, "admin", CONTACTS, value)
    group = f"mash-screening-{uuid.uuid4().hex[:8]}"
    assert await read_value(secured, "screening", CONTACTS, value, group, commit=True)

    admin = AIOKafkaAdminClient(**secured.options("lag-exporter"))
    await admin.start()
    try:
        offsets = await asyncio.wait_for(admin.list_consumer_group_offsets(group), OP_SECONDS)
        assert offsets[TopicPartition(CONTACTS, 0)].offset >= 1
        listed = {g[0] for g in await asyncio.wait_for(admin.list_consumer_groups(), OP_SECONDS)}
        assert group in listed
    finally:
        await admin.close()
    # A group outside mash-* is not its business.
    outsider = AIOKafkaAdminClient(**secured.options("lag-exporter"))
    await outsider.start()
    try:
        with pytest.raises(GroupAuthorizationFailedError):
            await asyncio.wait_for(
                outsider.list_consumer_group_offsets("hub-east-south.desk"), OP_SECONDS
            )
    finally:
        await outsider.close()


# --------------------------------------------------------------------------- agencies


AGENCIES = [p.name for p in load().principals if p.kind == "agency"]


@pytest.mark.parametrize("agency", AGENCIES)
async def test_an_agency_reads_its_own_feedback_and_no_other_agencys(
    secured: SecureStack, agency: str
) -> None:
    own = feedback_topic(agency.removeprefix("agency-"))
    value = marker()
    await publish(secured, "notifications", own, value)
    assert await read_value(secured, agency, own, value, f"{agency}.feedback")
    errors = await fetch_errors(secured, agency, [*FEEDBACK_TOPICS, *INBOUND, s47("east-south")])
    assert {t for t, code in errors.items() if code == 0} == {own}
    assert set(errors.values()) == {0, TOPIC_AUTHORIZATION_FAILED}


def test_every_kind_of_professional_referrer_has_an_agency_that_reads_its_feedback() -> None:
    # `public` is read by the portal and `other` (8, 10: no system to connect) goes by
    # webhook; every other feedback topic has exactly one agency principal reading it.
    read = {topic for p in load().principals if p.kind == "agency" for topic in p.topics.read}
    expected = {feedback_topic(a) for a in set(FEEDBACK_AGENCY_OF_SOURCE.values())}
    assert read == expected - {feedback_topic("public"), feedback_topic("other")}


# --------------------------------------------------------------------------- authentication


async def _starts(options: dict[str, Any]) -> None:
    producer = AIOKafkaProducer(**options, request_timeout_ms=10_000)
    try:
        await asyncio.wait_for(producer.start(), OP_SECONDS)
    finally:
        await producer.stop()


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


async def test_a_wrong_password_is_refused(secured: SecureStack) -> None:
    host, port = _host_port(secured.bootstrap)
    right = secured.password("police-force")
    brokers = local_stack.secure_kafka_metadata(host, port, secured.ca_file, "police-force", right)
    assert [b.port for b in brokers] == [port]
    await _starts(secured.options("police-force"))

    for user, password in [("police-force", right + "x"), ("police-force", ""), ("nobody", right)]:
        with pytest.raises(local_stack.KafkaProtocolError, match="SASL authentication failed"):
            local_stack.secure_kafka_metadata(host, port, secured.ca_file, user, password)
    with pytest.raises(KafkaConnectionError):
        await _starts(secured.options("police-force", password=right + "x"))
    # Another principal's password is wrong too.
    with pytest.raises(KafkaConnectionError):
        await _starts(secured.options("police-force", password=secured.password("intake")))


def _tls_handshake(address: str, context: ssl.SSLContext) -> None:
    host, port = _host_port(address)
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.do_handshake()


async def test_a_client_that_does_not_trust_the_local_ca_is_refused(
    secured: SecureStack, tmp_path: Path
) -> None:
    _tls_handshake(secured.bootstrap, ssl.create_default_context(cafile=str(secured.ca_file)))
    await _starts(secured.options("intake"))

    another_ca = local_stack.make_ca(
        local_stack.keytool_path(), tmp_path, "changeit-" + uuid.uuid4().hex, "CN=another CA"
    )
    for context in (
        ssl.create_default_context(),  # the system's CAs only
        ssl.create_default_context(cafile=str(another_ca)),  # a certificate from another CA
    ):
        with pytest.raises(ssl.SSLCertVerificationError):
            _tls_handshake(secured.bootstrap, context)
        with pytest.raises(KafkaConnectionError):
            await _starts(secured.options("intake", ssl_context=context))


async def test_plaintext_is_refused_on_the_client_port(secured: SecureStack) -> None:
    host, port = _host_port(secured.bootstrap)
    assert local_stack.kafka_check(host, port, port, timeout=5.0) is not None
    brokers = local_stack.secure_kafka_metadata(
        host, port, secured.ca_file, "admin", secured.password("admin")
    )
    assert [b.port for b in brokers] == [port]


def _api_versions_over_tls(address: str, context: ssl.SSLContext) -> None:
    host, port = _host_port(address)
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.settimeout(10)
        kafka_wire.api_versions(tls)


async def test_the_controller_listener_refuses_clients_without_a_certificate(
    secured: SecureStack,
) -> None:
    # A client trusting the CA but holding no certificate of it: the TLS handshake (or, in
    # TLS 1.3, the first read after it) fails. Plaintext gets nowhere either.
    context = ssl.create_default_context(cafile=str(secured.ca_file))
    with pytest.raises((ssl.SSLError, ConnectionError, local_stack.KafkaProtocolError)):
        _api_versions_over_tls(secured.controller, context)
    host, port = _host_port(secured.controller)
    assert local_stack.kafka_check(host, port, None, timeout=5.0) is not None
    # The one client it admits, the broker itself (CN=broker), did register: the metadata
    # lists it, which only its heartbeats to the controller make happen.
    host, port = _host_port(secured.bootstrap)
    brokers = local_stack.secure_kafka_metadata(
        host, port, secured.ca_file, "admin", secured.password("admin")
    )
    assert [(b.node_id, b.port) for b in brokers] == [(1, port)]


# --------------------------------------------------------------------------- apply


async def test_apply_holds_the_broker_to_exactly_the_file(secured: SecureStack) -> None:
    connection = acls.Connection(
        secured.bootstrap, secured.ca_file, "admin", secured.password("admin")
    )
    doc = load()
    assert (await acls.apply(connection, doc)).empty  # the fixture applied it already

    # A grant nobody wrote down: police-force reading the referrals.
    stray = acls.AclEntry("User:police-force", acls.RESOURCE_TOPIC, INBOUND_REFERRALS, 3, 3)
    admin = AIOKafkaAdminClient(**secured.options("admin"))
    await admin.start()
    try:
        await acls.create_acls(admin, [stray])
    finally:
        await admin.close()

    async def readable() -> bool:
        errors = await fetch_errors(secured, "police-force", [INBOUND_REFERRALS])
        return errors[INBOUND_REFERRALS] == 0

    assert await wait_until(readable, timeout=OP_SECONDS, what="the stray grant to take effect")

    changes = await acls.apply(connection, doc)
    assert changes.deleted == (stray,)
    assert changes.created == ()
    errors = await fetch_errors(secured, "police-force", [INBOUND_REFERRALS])
    assert errors == {INBOUND_REFERRALS: TOPIC_AUTHORIZATION_FAILED}
    assert (await acls.apply(connection, doc)).empty
