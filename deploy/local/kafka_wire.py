"""A hand-written Kafka wire-protocol client, just enough to tell whether a broker really
answers: ApiVersions, Metadata and a SCRAM-SHA-512 login (SaslHandshake and
SaslAuthenticate, verifying the server's signature too), over plain TCP or TLS; and the
readiness checks ``stack.py`` builds on them.

Hand-written because ``stack.py`` checks the brokers before the project's virtualenv (and
so aiokafka) may exist: the standard library's ``socket``, ``ssl``, ``struct`` and
``hashlib`` are enough for the non-flexible request versions used here (ApiVersions v0,
Metadata v1-v8, SaslHandshake and SaslAuthenticate v1). The functions raise ``OSError``
(cannot connect, TLS refused) or :class:`KafkaProtocolError`; the ``*_check`` functions
turn both into a reason (None when the broker is healthy).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import socket
import ssl
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from deploy.local.config import StackError

# Kafka protocol (https://kafka.apache.org/protocol): API keys used by the readiness check.
API_METADATA = 3
API_SASL_HANDSHAKE = 17
API_VERSIONS = 18
API_SASL_AUTHENTICATE = 36
CLIENT_ID = "mash-stack-check"
MAX_FRAME = 64 * 1024 * 1024


class KafkaProtocolError(Exception):
    """The peer did not speak the Kafka protocol the way a broker should."""


class _Reader:
    """Big-endian reader over one Kafka response body."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def _take(self, n: int) -> bytes:
        if n < 0 or self._pos + n > len(self._data):
            raise KafkaProtocolError("truncated response")
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def int8(self) -> int:
        return int(struct.unpack(">b", self._take(1))[0])

    def int16(self) -> int:
        return int(struct.unpack(">h", self._take(2))[0])

    def int32(self) -> int:
        return int(struct.unpack(">i", self._take(4))[0])

    def int64(self) -> int:
        return int(struct.unpack(">q", self._take(8))[0])

    def nullable_bytes(self) -> bytes | None:
        length = self.int32()
        if length == -1:
            return None
        return self._take(length)

    def nullable_string(self) -> str | None:
        length = self.int16()
        if length == -1:
            return None
        return self._take(length).decode("utf-8")

    def string(self) -> str:
        value = self.nullable_string()
        if value is None:
            raise KafkaProtocolError("unexpected null string")
        return value

    def array_length(self, limit: int = 100_000) -> int:
        n = self.int32()
        if n < -1 or n > limit:
            raise KafkaProtocolError(f"implausible array length {n}")
        return max(n, 0)


def _kafka_string(value: str) -> bytes:
    raw = value.encode("utf-8")
    return struct.pack(">h", len(raw)) + raw


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise KafkaProtocolError("connection closed by peer")
        buf += chunk
    return bytes(buf)


def _kafka_call(
    sock: socket.socket, api_key: int, api_version: int, correlation_id: int, body: bytes
) -> bytes:
    """Send one request (header v1) and return the response body (after header v0)."""
    header = struct.pack(">hhi", api_key, api_version, correlation_id) + _kafka_string(CLIENT_ID)
    frame = header + body
    sock.sendall(struct.pack(">i", len(frame)) + frame)
    size = struct.unpack(">i", _recv_exact(sock, 4))[0]
    if not 4 <= size <= MAX_FRAME:
        raise KafkaProtocolError(f"implausible response size {size}")
    payload = _recv_exact(sock, size)
    got = struct.unpack(">i", payload[:4])[0]
    if got != correlation_id:
        raise KafkaProtocolError(f"correlation id {got}, expected {correlation_id}")
    return payload[4:]


@dataclass(frozen=True)
class BrokerInfo:
    """One broker from a Metadata response."""

    node_id: int
    host: str
    port: int


def api_versions(sock: socket.socket) -> dict[int, tuple[int, int]]:
    """ApiVersions v0 (allowed before authentication): the broker's (min, max) per API key."""
    reader = _Reader(_kafka_call(sock, API_VERSIONS, 0, 1, b""))
    error = reader.int16()
    if error != 0:
        raise KafkaProtocolError(f"ApiVersions error code {error}")
    ranges: dict[int, tuple[int, int]] = {}
    for _ in range(reader.array_length()):
        key, low, high = reader.int16(), reader.int16(), reader.int16()
        ranges[key] = (low, high)
    return ranges


def _metadata(
    sock: socket.socket, ranges: Mapping[int, tuple[int, int]], correlation_id: int
) -> list[BrokerInfo]:
    """Metadata (v1-v8, no topics) over an open connection: the brokers it lists."""
    if API_METADATA not in ranges:
        raise KafkaProtocolError("broker does not offer the Metadata API")
    low, high = ranges[API_METADATA]
    version = min(high, 8)  # v9+ are "flexible" encodings; 1-8 are enough here
    if version < max(low, 1):
        raise KafkaProtocolError(f"no Metadata version in 1-8 (broker offers {low}-{high})")
    body = struct.pack(">i", 0)  # topics: empty array = no topics (v1+)
    if version >= 4:
        body += b"\x00"  # allow_auto_topic_creation = false
    if version >= 8:
        body += b"\x00\x00"  # include cluster/topic authorized operations = false
    reader = _Reader(_kafka_call(sock, API_METADATA, version, correlation_id, body))
    if version >= 3:
        reader.int32()  # throttle_time_ms
    brokers = []
    for _ in range(reader.array_length()):
        node_id, broker_host, broker_port = reader.int32(), reader.string(), reader.int32()
        reader.nullable_string()  # rack
        brokers.append(BrokerInfo(node_id, broker_host, broker_port))
    return brokers


def kafka_metadata(host: str, port: int, timeout: float = 5.0) -> list[BrokerInfo]:
    """Do ApiVersions v0 then Metadata (v1-v8) against ``host:port``; return the brokers.

    Raises OSError (cannot connect / timeout) or KafkaProtocolError (not a healthy broker).
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        return _metadata(sock, api_versions(sock), 2)


# SCRAM (RFC 5802 / RFC 7677) as Kafka speaks it: SaslHandshake v1, then the client's and
# the server's messages wrapped in SaslAuthenticate v1 requests (KIP-152).
SCRAM_MECHANISM = "SCRAM-SHA-512"
SCRAM_HASH = "sha512"


def _saslname(name: str) -> str:
    return name.replace("=", "=3D").replace(",", "=2C")


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, SCRAM_HASH).digest()


def _sasl_authenticate(sock: socket.socket, correlation_id: int, token: bytes) -> bytes:
    """One SaslAuthenticate v1 round trip: send ``token``, return the server's bytes."""
    body = struct.pack(">i", len(token)) + token
    reader = _Reader(_kafka_call(sock, API_SASL_AUTHENTICATE, 1, correlation_id, body))
    error, message = reader.int16(), reader.nullable_string()
    data = reader.nullable_bytes() or b""
    reader.int64()  # session_lifetime_ms
    if error != 0:
        raise KafkaProtocolError(f"SASL authentication failed (error {error}): {message}")
    return data


def scram_login(
    sock: socket.socket, ranges: Mapping[int, tuple[int, int]], username: str, password: str
) -> None:
    """Authenticate the connection as ``username`` with SCRAM-SHA-512, verifying the
    server's signature too. Raises KafkaProtocolError when refused."""
    for key, name in (
        (API_SASL_HANDSHAKE, "SaslHandshake"),
        (API_SASL_AUTHENTICATE, "SaslAuthenticate"),
    ):
        low, high = ranges.get(key, (1, 0))
        if not low <= 1 <= high:
            raise KafkaProtocolError(f"broker offers no {name} v1 ({low}-{high})")
    reader = _Reader(_kafka_call(sock, API_SASL_HANDSHAKE, 1, 2, _kafka_string(SCRAM_MECHANISM)))
    error = reader.int16()
    offered = [reader.string() for _ in range(reader.array_length())]
    if error != 0:
        raise KafkaProtocolError(f"SaslHandshake error {error}; broker offers {offered}")
    client_nonce = base64.b64encode(secrets.token_bytes(24)).decode("ascii")
    first_bare = f"n={_saslname(username)},r={client_nonce}"
    server_first = _sasl_authenticate(sock, 3, f"n,,{first_bare}".encode()).decode()
    fields = dict(item.split("=", 1) for item in server_first.split(","))
    nonce, salt, iterations = fields["r"], base64.b64decode(fields["s"]), int(fields["i"])
    if not nonce.startswith(client_nonce):
        raise KafkaProtocolError("SCRAM server nonce does not extend the client's")
    salted = hashlib.pbkdf2_hmac(SCRAM_HASH, password.encode(), salt, iterations)
    client_key = _hmac(salted, b"Client Key")
    stored_key = hashlib.new(SCRAM_HASH, client_key).digest()
    without_proof = f"c=biws,r={nonce}"
    auth_message = f"{first_bare},{server_first},{without_proof}".encode()
    signature = _hmac(stored_key, auth_message)
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature, strict=True)))
    final = f"{without_proof},p={proof.decode('ascii')}".encode()
    server_final = _sasl_authenticate(sock, 4, final).decode()
    expected = _hmac(_hmac(salted, b"Server Key"), auth_message)
    if server_final != "v=" + base64.b64encode(expected).decode("ascii"):
        raise KafkaProtocolError(f"SCRAM server signature does not verify: {server_final!r}")


def secure_kafka_metadata(
    host: str, port: int, cafile: Path, username: str, password: str, timeout: float = 5.0
) -> list[BrokerInfo]:
    """TLS (trusting only ``cafile``), SCRAM-SHA-512 login, then Metadata; the brokers.

    Raises OSError (cannot connect, TLS refused) or KafkaProtocolError.
    """
    context = ssl.create_default_context(cafile=str(cafile))
    with (
        socket.create_connection((host, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=host) as sock,
    ):
        sock.settimeout(timeout)
        ranges = api_versions(sock)
        scram_login(sock, ranges, username, password)
        return _metadata(sock, ranges, 5)


def kafka_check(host: str, port: int, expect_port: int | None, timeout: float = 5.0) -> str | None:
    """None when ``host:port`` answers a metadata request properly, else the reason."""
    try:
        brokers = kafka_metadata(host, port, timeout)
    except (OSError, KafkaProtocolError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return brokers_reason(brokers, expect_port)


def brokers_reason(brokers: Sequence[BrokerInfo], expect_port: int | None) -> str | None:
    """None when the metadata lists a broker (on ``expect_port`` when given), else why not."""
    if not brokers:
        return "metadata response lists no brokers yet"
    if expect_port is not None and not any(b.port == expect_port for b in brokers):
        listed = ", ".join(f"{b.host}:{b.port}" for b in brokers)
        return f"metadata lists brokers {listed}, not port {expect_port}"
    return None


def parse_bootstrap(servers: str) -> list[tuple[str, int]]:
    """Split a KAFKA_BOOTSTRAP_SERVERS value ('h1:9092,PLAINTEXT://h2:9093') into pairs."""
    result = []
    for item in servers.split(","):
        item = item.strip()
        if not item:
            continue
        if "://" in item:
            item = item.split("://", 1)[1]
        host, sep, port = item.rpartition(":")
        if not sep or not port.isdigit():
            raise StackError(f"cannot parse bootstrap server {item!r} (want host:port)")
        result.append((host.strip("[]"), int(port)))
    if not result:
        raise StackError("KAFKA_BOOTSTRAP_SERVERS is empty")
    return result


def external_kafka_check(servers: str, timeout: float = 5.0) -> str | None:
    """None when any of the bootstrap servers answers a metadata request."""
    reasons = []
    for host, port in parse_bootstrap(servers):
        reason = kafka_check(host, port, None, timeout)
        if reason is None:
            return None
        reasons.append(f"{host}:{port}: {reason}")
    return "; ".join(reasons)
