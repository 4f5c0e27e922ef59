"""Mutual TLS on the real secured broker (its second client listener, ``stack.py up
--secure``): a client certificate of the local CA is the login, ``CN=intake`` is
``User:intake`` under intake's ACLs; an expired certificate, a certificate from another CA
and no certificate are refused. The client side is the product's own settings
(``MASH_KAFKA_SECURITY_PROTOCOL=SSL`` with CA, certificate and key files), as README
"Connecting to a secured Kafka" shows."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaClient, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError
from aiokafka.protocol.fetch import FetchRequest

from deploy.local.config import Config
from deploy.local.kafka_tls import keytool_path, make_ca, make_client_certificate
from services.common.kafka_security import kafka_client_security
from services.common.settings import load_settings
from services.common.topics import CONTACTS, INBOUND_POLICE, TopicSpec
from tests.support import SecureStack, create_product_topics

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

OP_SECONDS = 30.0
TOPIC_AUTHORIZATION_FAILED = 29


@dataclass(frozen=True)
class Certificate:
    """A client certificate and its key (PEM files)."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Certificates:
    """The client certificates of this module, all with ``CN=intake``."""

    valid: Certificate
    expired: Certificate
    other_ca: Certificate


@pytest.fixture(scope="module")
async def certificates(
    secure_stack: SecureStack, tmp_path_factory: pytest.TempPathFactory
) -> Certificates:
    """The product topics these tests touch, and three certificates for ``intake``: valid,
    expired nine days ago, and signed by a CA the broker does not trust."""
    await create_product_topics(
        secure_stack, [TopicSpec(INBOUND_POLICE, 4), TopicSpec(CONTACTS, 4)], OP_SECONDS
    )
    cfg = Config.from_environ(os.environ).secured()
    folder = tmp_path_factory.mktemp("mtls")

    def made(name: str, **kwargs: Any) -> Certificate:
        directory = folder / name
        directory.mkdir()
        return Certificate(*make_client_certificate(cfg, "intake", directory, **kwargs))

    other = folder / "other-ca"
    other.mkdir()
    password = (cfg.tls_dir / "store.password").read_text().strip()
    make_ca(keytool_path(), other, password, "CN=another CA,O=elsewhere")
    return Certificates(
        valid=made("valid"),
        expired=made("expired", start="-10d", validity_days=1),
        other_ca=made("other-ca-signed", ca_dir=other),
    )


def options(secured: SecureStack, certificate: Certificate | None) -> dict[str, Any]:
    """aiokafka keyword arguments from the product's settings: SSL, the local CA, and the
    client certificate (none: TLS without one)."""
    fields: dict[str, Any] = {
        "KAFKA_BOOTSTRAP_SERVERS": secured.mtls_bootstrap,
        "kafka_security_protocol": "SSL",
        "kafka_ssl_ca_file": str(secured.ca_file),
    }
    if certificate is not None:
        fields["kafka_ssl_cert_file"] = str(certificate.cert)
        fields["kafka_ssl_key_file"] = str(certificate.key)
    settings = load_settings(**fields)
    assert settings.kafka_security_protocol == "SSL"
    return {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "client_id": "test-mtls",
        "request_timeout_ms": 10_000,
        **kafka_client_security(settings),
    }


async def fetch_errors(kwargs: dict[str, Any], topics: list[str]) -> dict[str, int]:
    """The broker's error code per topic for a fetch of partition 0 from offset 0."""
    client = AIOKafkaClient(**kwargs)
    await asyncio.wait_for(client.bootstrap(), OP_SECONDS)
    try:
        request = FetchRequest(
            max_wait_time=0,
            min_bytes=0,
            max_bytes=1 << 20,
            isolation_level=0,
            topics=[(name, [(0, 0, 1 << 20)]) for name in topics],
        )
        response = await asyncio.wait_for(client.send(client.get_random_node(), request), 30)
    finally:
        await client.close()
    return {topic[0]: topic[1][0][1] for topic in response.topics}


async def starts(kwargs: dict[str, Any]) -> None:
    """Start (and stop) a producer: the TLS handshake and a metadata request."""
    producer = AIOKafkaProducer(**kwargs)
    try:
        await asyncio.wait_for(producer.start(), OP_SECONDS)
    finally:
        await producer.stop()


async def test_a_certificate_of_the_local_ca_logs_in_as_its_common_name(
    secure_stack: SecureStack, certificates: Certificates
) -> None:
    kwargs = options(secure_stack, certificates.valid)
    # intake's ACLs, not anyone's: it reads its input and may not read its own output.
    errors = await fetch_errors(kwargs, [INBOUND_POLICE, CONTACTS])
    assert errors == {INBOUND_POLICE: 0, CONTACTS: TOPIC_AUTHORIZATION_FAILED}
    producer = AIOKafkaProducer(**kwargs, acks="all")
    await asyncio.wait_for(producer.start(), OP_SECONDS)
    try:
        sent = await asyncio.wait_for(producer.send_and_wait(CONTACTS, b"mtls"), OP_SECONDS)
        assert sent.offset >= 0
        with pytest.raises(TopicAuthorizationFailedError):  # it writes only its outputs
            await asyncio.wait_for(producer.send_and_wait(INBOUND_POLICE, b"mtls"), OP_SECONDS)
    finally:
        await producer.stop()


@pytest.mark.parametrize("which", ["expired", "other_ca", "none"])
async def test_an_expired_untrusted_or_missing_client_certificate_is_refused(
    secure_stack: SecureStack, certificates: Certificates, which: str
) -> None:
    certificate = None if which == "none" else getattr(certificates, which)
    with pytest.raises(KafkaConnectionError):
        await starts(options(secure_stack, certificate))
    # The same client with the valid certificate gets in: the refusal is the certificate.
    await starts(options(secure_stack, certificates.valid))
