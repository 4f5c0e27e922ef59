"""The whole pipeline on the secured broker, every service under its own principal.

The secured Apache Kafka (``stack.py up --secure``: SASL_SSL, SCRAM-SHA-512, denying
whatever ``deploy/security/principals.yaml`` does not allow) with the product's topics
created by the admin super user, as an operator would (``MASH_CREATE_TOPICS=false``: a
service has no right to create them). The police force's principal publishes a
notification; intake, screening, routing and notifications each log in as themselves; the
hub's principal reads the child's item off its own s47 queue.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from deploy.local.config import Config
from deploy.local.kafka_secure import secure_client_env
from deploy.local.pipeline import SERVICES, ServiceProcesses
from schemas import examples as ex
from schemas.cloudevents import encode_binary
from schemas.inbound import PoliceNotification
from services.common.db import apply_migrations
from services.common.lag import stop_consumer
from services.common.settings import Settings
from services.common.topics import INBOUND_POLICE, TopicNames, queue_topic
from services.common.topology import load_topology
from services.screening.app import history_changelog_topic
from tests.support import (
    SecureStack,
    Stack,
    create_product_topics,
    fetchval,
    fresh_database,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

TOPOLOGY = "two-hubs"
HUB = "north-west-central"  # the example notification's B6 postcode
SPECS = [
    *TopicNames().all_specs(load_topology(TOPOLOGY).hub_ids, 4),
    # The services' group suffix is empty here, as in make run SECURE=1.
    history_changelog_topic(Settings(group_suffix="")),
]


def _secured(principal: str | None = None) -> dict[str, str]:
    """How a client of the secured broker connects (as ``principal`` when named): what
    ``stack.py env --secure`` prints and ``make run SECURE=1`` uses."""
    return secure_client_env(Config.from_environ(os.environ), principal)


def service_env(dsn: str) -> dict[str, str]:
    """What every service shares: the secured broker, its CA, no topic creation."""
    return {
        **os.environ,
        **_secured(),
        "MASH_CREATE_TOPICS": "false",
        "DATABASE_URL": dsn,
        "MASH_TOPOLOGY": TOPOLOGY,
        "MASH_METRICS_PORT": "0",
        "MASH_OUTBOX_POLL_SECONDS": "0.2",
    }


@pytest.fixture(scope="module")
async def pipeline(
    secure_stack: SecureStack, stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[ServiceProcesses, str]]:
    """The four services on the secured broker, each logged in as its own principal."""
    await create_product_topics(secure_stack, SPECS)
    dsn = await fresh_database(stack)
    conn = await asyncpg.connect(dsn)
    try:
        await apply_migrations(conn)  # tables exist before the test looks
    finally:
        await conn.close()
    run_dir: Path = tmp_path_factory.mktemp("secured-pipeline")
    services = ServiceProcesses(service_env(dsn), run_dir=run_dir)
    for service in SERVICES:
        services.start(service, _secured(service))
    try:
        yield services, dsn
    finally:
        services.stop_all()
        for log in sorted((run_dir / "logs").glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-15:]
            print(f"--- {log.name} (last lines)", *tail, sep="\n")


async def test_a_notification_goes_end_to_end_with_every_service_under_its_own_principal(
    secure_stack: SecureStack, pipeline: tuple[ServiceProcesses, str]
) -> None:
    _, dsn = pipeline
    reference = f"WM-SECURE-{uuid.uuid4().hex[:8]}"
    notification = PoliceNotification.model_validate(
        ex.police_notification(notification_id=reference)
    )
    value, headers = encode_binary(
        event_id=f"evt-{reference}",
        source="urn:police:west-midlands:niche",
        data=notification,
        time=datetime.now(UTC),
    )
    producer = AIOKafkaProducer(**secure_stack.options("police-force"), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(INBOUND_POLICE, value, key=reference.encode(), headers=headers)
    finally:
        await producer.stop()

    async def outcome_sent() -> str | None:
        return await fetchval(  # type: ignore[no-any-return]
            dsn,
            "SELECT c.contact_id FROM contacts c JOIN feedback f USING (contact_id)"
            " WHERE c.source_reference = $1 AND f.kind = 'outcome'",
            reference,
        )

    found = await wait_until(
        outcome_sent, timeout=120, what="the notification screened, routed and answered"
    )
    assert found is not None
    contact_id = found

    # The hub reads the child's s47 item off its own queue, under its own principal.
    hub = AIOKafkaConsumer(**secure_stack.options(f"hub-{HUB}"), enable_auto_commit=False)
    await hub.start()
    try:
        topic = queue_topic(HUB, "s47")
        hub.assign([TopicPartition(topic, p) for p in range(4)])
        await hub.seek_to_beginning()

        async def item_on_queue() -> bool:
            batches = await hub.getmany(timeout_ms=500)
            return any(
                contact_id.encode() in (record.value or b"")
                for records in batches.values()
                for record in records
            )

        await wait_until(item_on_queue, timeout=60, what="the s47 item on the hub's queue")
    finally:
        await stop_consumer(hub)


async def test_no_service_logs_a_kafka_password(
    secure_stack: SecureStack, pipeline: tuple[ServiceProcesses, str]
) -> None:
    # After the end-to-end run above: each service logged its start (with its security
    # protocol and mechanism), and no line holds any principal's password.
    services, _ = pipeline
    passwords = {p: secure_stack.password(p) for p in (*SERVICES, "admin")}
    for service in SERVICES:
        logs = "".join(
            log.read_text(errors="replace") for log in services.log_dir.glob(f"{service}*.log")
        )
        assert "service_starting" in logs, service
        assert "SASL_SSL" in logs, service
        for principal, password in passwords.items():
            assert password not in logs, f"{principal}'s password in {service}'s log"
