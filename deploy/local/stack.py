#!/usr/bin/env python3
"""Start, check and stop the local (no-Docker) Kafka + PostgreSQL stack for mash-router.

    python3 deploy/local/stack.py up [--timeout 90] [--reset] [--fast]
    python3 deploy/local/stack.py status
    python3 deploy/local/stack.py down
    python3 deploy/local/stack.py stop kafka|postgres [--kill]   # one server (fault tests)
    python3 deploy/local/stack.py env          # eval "$(python3 deploy/local/stack.py env)"

* Kafka: a real single-node Apache Kafka broker (KRaft, combined broker+controller) run
  from the jars Maven Central serves; the jars are fetched once with Maven into
  ``${MASH_CACHE_DIR:-~/.cache/mash-router}/kafka-<version>/libs`` and reused.
* PostgreSQL: Debian's server binaries (installed with apt-get when missing and we are
  root) running a private cluster in our own data directory, never the system cluster.

Both listen on 127.0.0.1 only. Everything is idempotent: ``up`` twice starts nothing new,
``down`` on a stopped stack is harmless, stale PID files are cleaned up. ``up`` returns
only when each server answers a real request (a Kafka metadata round trip; ``select 1``
as the ``mash`` role), or exits non-zero with the tail of the server's log.

External servers: when ``KAFKA_BOOTSTRAP_SERVERS`` and/or ``DATABASE_URL`` are set in the
environment (to anything other than the local stack's own address), ``up`` and
``status`` only check that those answer and do not start the local server; ``down``
only ever stops local servers.

Settings (environment): ``MASH_KAFKA_PORT`` (19092), ``MASH_KAFKA_CONTROLLER_PORT``
(19093), ``MASH_PG_PORT`` (54329), ``MASH_CACHE_DIR`` (~/.cache/mash-router),
``MASH_RUN_DIR`` (/dev/shm/mash-router when /dev/shm exists, else <cache>/run).

Standard library only: this runs before the project's virtualenv may exist.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# The one place the Kafka version is pinned (Scala 2.13 build: org.apache.kafka:kafka_2.13).
# docker-compose.yml uses the same version (image apache/kafka:<KAFKA_VERSION>).
KAFKA_VERSION = "4.0.2"
SCALA_BINARY_VERSION = "2.13"

HERE = Path(__file__).resolve().parent
POM_FILE = HERE / "kafka" / "pom.xml"
LOG4J_CONFIG = HERE / "kafka" / "log4j2.properties"
PG_LIB_DIR = Path("/usr/lib/postgresql")  # Debian layout: <PG_LIB_DIR>/<major>/bin/postgres

DEFAULT_KAFKA_PORT = 19092
DEFAULT_CONTROLLER_PORT = 19093
DEFAULT_PG_PORT = 54329
DEFAULT_TIMEOUT = 90.0
KAFKA_STOP_GRACE = 30.0
HOST = "127.0.0.1"

PG_ROLE = "mash"
PG_DATABASE = "mash"
PG_OS_USER = "postgres"
#: Loaded at server start: pg_stat_statements (postgresql-contrib, in Debian's postgresql-NN).
PG_PRELOAD = "pg_stat_statements"

KAFKA_JVM_OPTS = ("-Xms256m", "-Xmx768m", "-XX:+UseG1GC", "-Djava.awt.headless=true")
MIN_JAVA_MAJOR = 17
INSTALL_JAVA_MAVEN = "apt-get install openjdk-17-jre-headless maven"

# Kafka protocol (https://kafka.apache.org/protocol): API keys used by the readiness check.
API_METADATA = 3
API_VERSIONS = 18
CLIENT_ID = "mash-stack-check"
MAX_FRAME = 64 * 1024 * 1024


class StackError(Exception):
    """A failure to report to the user as one line (plus any log tail printed before)."""


class KafkaProtocolError(Exception):
    """The peer did not speak the Kafka protocol the way a broker should."""


def say(message: str) -> None:
    """Print a progress line to stdout, immediately."""
    print(message, flush=True)


def warn(message: str) -> None:
    """Print a line to stderr, immediately."""
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- configuration


def _env_port(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise StackError(f"{name}={raw!r} is not a port number") from None
    if not 0 < port < 65536:
        raise StackError(f"{name}={port} is out of range 1-65535")
    return port


@dataclass(frozen=True)
class Config:
    """Where things live and which ports they use; derived from the environment."""

    cache_dir: Path
    run_dir: Path
    kafka_port: int
    controller_port: int
    pg_port: int
    external_kafka: str | None
    external_database: str | None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Config:
        """Build the configuration from ``environ`` (normally ``os.environ``)."""
        cache_raw = environ.get("MASH_CACHE_DIR", "").strip()
        cache_dir = Path(cache_raw or "~/.cache/mash-router").expanduser().absolute()
        run_raw = environ.get("MASH_RUN_DIR", "").strip()
        if run_raw:
            run_dir = Path(run_raw).expanduser().absolute()
        elif Path("/dev/shm").is_dir():
            run_dir = Path("/dev/shm/mash-router")
        else:
            run_dir = cache_dir / "run"
        kafka_port = _env_port(environ, "MASH_KAFKA_PORT", DEFAULT_KAFKA_PORT)
        controller_port = _env_port(environ, "MASH_KAFKA_CONTROLLER_PORT", DEFAULT_CONTROLLER_PORT)
        if controller_port == kafka_port:
            raise StackError("MASH_KAFKA_PORT and MASH_KAFKA_CONTROLLER_PORT must differ")
        pg_port = _env_port(environ, "MASH_PG_PORT", DEFAULT_PG_PORT)
        local_bootstrap = f"{HOST}:{kafka_port}"
        local_db = local_database_url(pg_port)
        # A value equal to the local stack's own address (e.g. after `eval "$(stack.py env)"`)
        # means "the local stack", not an external server.
        ext_kafka = environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip() or None
        if ext_kafka == local_bootstrap:
            ext_kafka = None
        ext_db = environ.get("DATABASE_URL", "").strip() or None
        if ext_db == local_db:
            ext_db = None
        return cls(cache_dir, run_dir, kafka_port, controller_port, pg_port, ext_kafka, ext_db)

    # Kafka paths -----------------------------------------------------------------------
    @property
    def kafka_home(self) -> Path:
        """Cache folder for this Kafka version (libs + completion marker)."""
        return self.cache_dir / f"kafka-{KAFKA_VERSION}"

    @property
    def kafka_libs(self) -> Path:
        """Folder holding every jar of the broker's runtime classpath."""
        return self.kafka_home / "libs"

    @property
    def kafka_dir(self) -> Path:
        """Run folder of the local broker."""
        return self.run_dir / "kafka"

    @property
    def kafka_data(self) -> Path:
        """The broker's log.dirs (topic data and KRaft metadata log)."""
        return self.kafka_dir / "data"

    @property
    def kafka_logs(self) -> Path:
        """Folder for the broker's own log files (kafka.logs.dir)."""
        return self.kafka_dir / "logs"

    @property
    def kafka_stdout(self) -> Path:
        """The broker process's stdout/stderr (WARN and up, JVM errors)."""
        return self.kafka_dir / "kafka.out"

    @property
    def kafka_properties(self) -> Path:
        """Generated server.properties."""
        return self.kafka_dir / "server.properties"

    @property
    def kafka_pid_file(self) -> Path:
        """PID file of the broker process."""
        return self.kafka_dir / "kafka.pid"

    @property
    def cluster_id_file(self) -> Path:
        """Persisted KRaft cluster id, so a re-``up`` reuses the formatted data dir."""
        return self.kafka_dir / "cluster.id"

    @property
    def bootstrap(self) -> str:
        """Bootstrap address of the local broker."""
        return f"{HOST}:{self.kafka_port}"

    # PostgreSQL paths ------------------------------------------------------------------
    @property
    def pg_dir(self) -> Path:
        """Run folder of the local PostgreSQL (owned by the postgres OS user when root)."""
        return self.run_dir / "postgres"

    @property
    def pg_data(self) -> Path:
        """The private cluster's data directory."""
        return self.pg_dir / "data"

    @property
    def pg_socket_dir(self) -> Path:
        """Unix socket directory (keeps us off /var/run/postgresql)."""
        return self.pg_dir / "socket"

    @property
    def pg_log(self) -> Path:
        """Server log written by pg_ctl -l."""
        return self.pg_dir / "postgres.log"

    @property
    def database_url(self) -> str:
        """URL of the local ``mash`` database."""
        return local_database_url(self.pg_port)

    # Effective addresses (external when given) ---------------------------------------
    @property
    def effective_bootstrap(self) -> str:
        """KAFKA_BOOTSTRAP_SERVERS the services should use."""
        return self.external_kafka or self.bootstrap

    @property
    def effective_database_url(self) -> str:
        """DATABASE_URL the services should use."""
        return self.external_database or self.database_url


def local_database_url(port: int) -> str:
    """The DATABASE_URL of the local stack's database on ``port``."""
    return f"postgresql://{PG_ROLE}@{HOST}:{port}/{PG_DATABASE}"


# --------------------------------------------------------------------------- small helpers


def run(
    cmd: Sequence[str],
    *,
    check: bool = True,
    timeout: float | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdin_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` capturing text output; with ``check`` raise StackError on failure."""
    try:
        proc = subprocess.run(
            list(cmd),
            input=stdin_text,
            stdin=None if stdin_text is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            check=False,
        )
    except FileNotFoundError:
        raise StackError(f"command not found: {cmd[0]}") from None
    except subprocess.TimeoutExpired:
        raise StackError(f"timed out after {timeout}s: {shlex.join(cmd)}") from None
    if check and proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip()
        if output:
            warn(output)
        raise StackError(f"exit status {proc.returncode}: {shlex.join(cmd)}")
    return proc


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of ``path`` ('' when it cannot be read)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 256 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def print_tail(path: Path, lines: int = 40) -> None:
    """Print the tail of a log file to stderr, framed with its name."""
    text = tail(path, lines)
    warn(f"----- last {lines} lines of {path} -----")
    warn(text if text else "(empty or missing)")
    warn("-----")


def pid_alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    except (OSError, IndexError):
        pass
    return True


def cmdline(pid: int) -> list[str]:
    """The argv of process ``pid`` ([] when unknown)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def read_pid_file(path: Path) -> int | None:
    """The integer on the first line of ``path``, or None."""
    try:
        first = path.read_text().splitlines()[0].strip()
        return int(first)
    except (OSError, IndexError, ValueError):
        return None


def port_free(port: int) -> bool:
    """True when nothing is bound to 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def require_free_port(port: int, what: str, env_name: str) -> None:
    """Fail clearly when ``port`` is taken by something we did not start."""
    if not port_free(port):
        raise StackError(
            f"{HOST}:{port} ({what}) is already in use by another process; "
            f"stop it or set {env_name} to a free port"
        )


@contextlib.contextmanager
def stack_lock(cfg: Config) -> Iterator[None]:
    """Serialise concurrent ``up``/``down`` runs (e.g. parallel test workers)."""
    ensure_run_dir(cfg)
    lock_path = cfg.run_dir / ".stack.lock"
    with lock_path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another stack.py run to finish (lock {lock_path}) ...")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_run_dir(cfg: Config) -> None:
    """Create the run dir, traversable by the postgres OS user."""
    try:
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        if cfg.run_dir.stat().st_uid == os.geteuid():
            cfg.run_dir.chmod(0o755)
    except OSError as exc:
        raise StackError(f"cannot create run dir {cfg.run_dir}: {exc} (set MASH_RUN_DIR)") from None


# --------------------------------------------------------------------------- Kafka protocol


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


def kafka_metadata(host: str, port: int, timeout: float = 5.0) -> list[BrokerInfo]:
    """Do ApiVersions v0 then Metadata (v1-v8) against ``host:port``; return the brokers.

    Raises OSError (cannot connect / timeout) or KafkaProtocolError (not a healthy broker).
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        reader = _Reader(_kafka_call(sock, API_VERSIONS, 0, 1, b""))
        error = reader.int16()
        if error != 0:
            raise KafkaProtocolError(f"ApiVersions error code {error}")
        ranges: dict[int, tuple[int, int]] = {}
        for _ in range(reader.array_length()):
            key, low, high = reader.int16(), reader.int16(), reader.int16()
            ranges[key] = (low, high)
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
        reader = _Reader(_kafka_call(sock, API_METADATA, version, 2, body))
        if version >= 3:
            reader.int32()  # throttle_time_ms
        brokers = []
        for _ in range(reader.array_length()):
            node_id, broker_host, broker_port = reader.int32(), reader.string(), reader.int32()
            reader.nullable_string()  # rack
            brokers.append(BrokerInfo(node_id, broker_host, broker_port))
        return brokers


def kafka_check(host: str, port: int, expect_port: int | None, timeout: float = 5.0) -> str | None:
    """None when ``host:port`` answers a metadata request properly, else the reason."""
    try:
        brokers = kafka_metadata(host, port, timeout)
    except (OSError, KafkaProtocolError) as exc:
        return f"{type(exc).__name__}: {exc}"
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


# --------------------------------------------------------------------------- Kafka process


def require_java() -> str:
    """Path of a java (17+) binary, or a one-line StackError naming what to install."""
    java = shutil.which("java")
    if java is None:
        raise StackError(f"java not found on PATH; install it: {INSTALL_JAVA_MAVEN}")
    proc = run([java, "-version"], check=False, timeout=60)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', proc.stderr + proc.stdout)
    if match:
        major = int(match.group(1))
        if major == 1 and match.group(2):  # "1.8.0_x" style
            major = int(match.group(2))
        if major < MIN_JAVA_MAJOR:
            raise StackError(
                f"Kafka {KAFKA_VERSION} needs Java {MIN_JAVA_MAJOR}+, found Java {major}; "
                f"install it: {INSTALL_JAVA_MAVEN}"
            )
    return java


def _pom_fingerprint() -> str:
    digest = hashlib.sha256(POM_FILE.read_bytes())
    digest.update(KAFKA_VERSION.encode())
    return digest.hexdigest()


def ensure_kafka_libs(cfg: Config) -> Path:
    """Fetch the broker's jars into the cache once; reuse them when the marker matches."""
    marker = cfg.kafka_home / ".complete"
    fingerprint = _pom_fingerprint()
    libs = cfg.kafka_libs
    with contextlib.suppress(OSError):
        if marker.read_text().strip() == fingerprint and any(libs.glob("kafka_*.jar")):
            return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(f"mvn (Maven) not found on PATH; install it: {INSTALL_JAVA_MAVEN}")
    say(f"fetching Apache Kafka {KAFKA_VERSION} jars from Maven Central into {libs} ...")
    started = time.monotonic()
    marker.unlink(missing_ok=True)
    shutil.rmtree(libs, ignore_errors=True)  # a half download (or another pom) is redone
    libs.mkdir(parents=True, exist_ok=True)
    cmd = [
        mvn,
        "-q",
        "-B",
        "-Dstyle.color=never",
        "-f",
        str(POM_FILE),
        "dependency:copy-dependencies",
        f"-Dkafka.version={KAFKA_VERSION}",
        f"-DoutputDirectory={libs}",
        "-DincludeScope=runtime",
    ]
    proc = run(cmd, check=False, timeout=1800, cwd=POM_FILE.parent)
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip().splitlines()
        warn("\n".join(output[-40:]))
        raise StackError(f"Maven could not fetch the Kafka jars (exit {proc.returncode})")
    expected = [
        f"kafka_{SCALA_BINARY_VERSION}-{KAFKA_VERSION}.jar",
        f"kafka-clients-{KAFKA_VERSION}.jar",
    ]
    missing = [name for name in expected if not (libs / name).is_file()]
    if not any(libs.glob("log4j-slf4j-impl-*.jar")):
        missing.append("log4j-slf4j-impl-*.jar")
    if missing:
        raise StackError(f"Maven finished but {libs} lacks {', '.join(missing)}")
    marker.write_text(fingerprint + "\n")
    jars = len(list(libs.glob("*.jar")))
    say(f"fetched {jars} jars in {time.monotonic() - started:.1f}s")
    return libs


def new_cluster_id() -> str:
    """A KRaft cluster id: 22-char URL-safe base64 of a random UUID, not starting with '-'."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not cid.startswith("-"):
            return cid


def cluster_id(cfg: Config) -> str:
    """The persisted cluster id (or the formatted data dir's), creating one if needed."""
    with contextlib.suppress(OSError):
        cid = cfg.cluster_id_file.read_text().strip()
        if cid:
            return cid
    cid = ""
    with contextlib.suppress(OSError):
        for line in (cfg.kafka_data / "meta.properties").read_text().splitlines():
            if line.startswith("cluster.id="):
                cid = line.split("=", 1)[1].strip()
    cid = cid or new_cluster_id()
    cfg.cluster_id_file.write_text(cid + "\n")
    return cid


def server_properties(cfg: Config) -> str:
    """server.properties for a single-node combined broker+controller on 127.0.0.1."""
    lines = [
        "# Generated by deploy/local/stack.py; edits are overwritten on every `up`.",
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@{HOST}:{cfg.controller_port}",
        f"listeners=PLAINTEXT://{HOST}:{cfg.kafka_port},CONTROLLER://{HOST}:{cfg.controller_port}",
        f"advertised.listeners=PLAINTEXT://{HOST}:{cfg.kafka_port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        f"log.dirs={cfg.kafka_data}",
        # One node: every replication factor must be 1 or consumer groups never form.
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        # Fast tests: no 3 s initial rebalance delay, no 50-partition internal topics.
        "group.initial.rebalance.delay.ms=0",
        "offsets.topic.num.partitions=1",
        "transaction.state.log.num.partitions=1",
        "num.partitions=1",
        # The services create their topics explicitly.
        "auto.create.topics.enable=false",
    ]
    return "\n".join(lines) + "\n"


def kafka_jvm_opts(cfg: Config) -> list[str]:
    """JVM options for both StorageTool and the broker."""
    return [
        *KAFKA_JVM_OPTS,
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        f"-Dkafka.logs.dir={cfg.kafka_logs}",
    ]


def _is_our_kafka(pid: int, cfg: Config) -> bool:
    argv = cmdline(pid)
    return "kafka.Kafka" in argv and str(cfg.kafka_properties) in argv


def kafka_pid(cfg: Config) -> int | None:
    """PID of the local broker, cleaning a stale PID file; finds a broker whose file is lost."""
    pid = read_pid_file(cfg.kafka_pid_file)
    if pid is not None and pid_alive(pid) and _is_our_kafka(pid, cfg):
        return pid
    if cfg.kafka_pid_file.exists():
        cfg.kafka_pid_file.unlink(missing_ok=True)
        warn(f"kafka: removed stale PID file (pid {pid} is gone)")
    with contextlib.suppress(OSError):
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and _is_our_kafka(int(entry.name), cfg):
                found = int(entry.name)
                if pid_alive(found):
                    cfg.kafka_pid_file.write_text(f"{found}\n")
                    return found
    return None


@dataclass
class KafkaLaunch:
    """A broker being brought up: the process (None when it was already running)."""

    pid: int
    started: float
    proc: subprocess.Popen[bytes] | None


def kafka_start(cfg: Config) -> KafkaLaunch:
    """Format the storage (once) and start the broker in the background; do not wait."""
    started = time.monotonic()
    pid = kafka_pid(cfg)
    if pid is not None:
        return KafkaLaunch(pid, started, None)
    java = require_java()
    libs = ensure_kafka_libs(cfg)
    started = time.monotonic()
    require_free_port(cfg.kafka_port, "Kafka broker", "MASH_KAFKA_PORT")
    require_free_port(cfg.controller_port, "Kafka controller", "MASH_KAFKA_CONTROLLER_PORT")
    for folder in (cfg.kafka_dir, cfg.kafka_data, cfg.kafka_logs):
        folder.mkdir(parents=True, exist_ok=True)
    cfg.kafka_properties.write_text(server_properties(cfg))
    cid = cluster_id(cfg)
    classpath = f"{libs}/*"  # one argv element: the JVM expands the wildcard
    jvm = kafka_jvm_opts(cfg)
    fmt = [
        java,
        *jvm,
        "-cp",
        classpath,
        "kafka.tools.StorageTool",
        "format",
        "-t",
        cid,
        "-c",
        str(cfg.kafka_properties),
        "--ignore-formatted",
    ]
    # Same effect as --ignore-formatted, minus a JVM start (~2 s) when already formatted.
    formatted = (cfg.kafka_data / "meta.properties").is_file()
    proc = run(fmt, check=False, timeout=300, cwd=cfg.kafka_dir) if not formatted else None
    if proc is not None and proc.returncode != 0:
        warn((proc.stdout + proc.stderr).strip())
        raise StackError(
            f"kafka storage format failed (exit {proc.returncode}) in {cfg.kafka_data}"
        )
    argv = [java, *jvm, "-cp", classpath, "kafka.Kafka", str(cfg.kafka_properties)]
    with cfg.kafka_stdout.open("ab") as out:
        out.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(argv)}\n".encode())
        out.flush()
        broker = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cfg.kafka_dir,
            start_new_session=True,
        )
    cfg.kafka_pid_file.write_text(f"{broker.pid}\n")
    say(f"kafka: started broker pid {broker.pid} (cluster id {cid}), waiting for it to answer ...")
    return KafkaLaunch(broker.pid, started, broker)


def _kafka_failure(cfg: Config, message: str) -> StackError:
    print_tail(cfg.kafka_logs / "server.log")
    print_tail(cfg.kafka_stdout, 20)
    return StackError(message)


def kafka_wait(cfg: Config, launch: KafkaLaunch, timeout: float) -> None:
    """Poll until the broker answers a metadata round trip listing our port."""
    deadline = launch.started + timeout if launch.proc is not None else time.monotonic() + timeout
    reason: str | None = "not checked yet"
    while True:
        if launch.proc is not None and launch.proc.poll() is not None:
            code = launch.proc.returncode
            cfg.kafka_pid_file.unlink(missing_ok=True)
            raise _kafka_failure(cfg, f"kafka broker exited with status {code} during startup")
        if launch.proc is None and not pid_alive(launch.pid):
            raise _kafka_failure(cfg, f"kafka broker pid {launch.pid} exited")
        reason = kafka_check(HOST, cfg.kafka_port, cfg.kafka_port, timeout=5.0)
        if reason is None:
            break
        if time.monotonic() >= deadline:
            raise _kafka_failure(
                cfg,
                f"kafka did not answer on {cfg.bootstrap} within {timeout:.0f}s ({reason}); "
                f"pid {launch.pid} is still running: `stack.py down` stops it",
            )
        time.sleep(0.25)
    elapsed = time.monotonic() - launch.started
    if launch.proc is None:
        say(f"kafka already running (pid {launch.pid}), answered in {elapsed:.2f}s")
    else:
        say(f"kafka ready in {elapsed:.1f}s on {cfg.bootstrap} (pid {launch.pid})")


def kafka_stop(cfg: Config, *, kill: bool = False) -> None:
    """SIGTERM the broker, wait up to 30 s, then SIGKILL; remove the PID file.

    ``kill`` sends SIGKILL at once: a crash, as the fault tests need it.
    """
    pid = kafka_pid(cfg)
    if pid is None:
        say("kafka: not running")
        return
    started = time.monotonic()
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
    deadline = started + KAFKA_STOP_GRACE
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    how = "SIGKILL" if kill else "SIGTERM"
    if pid_alive(pid):
        how = "SIGKILL after 30s"
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        kill_deadline = time.monotonic() + 10
        while pid_alive(pid) and time.monotonic() < kill_deadline:
            time.sleep(0.1)
    if pid_alive(pid):
        raise StackError(f"kafka pid {pid} survived SIGKILL")
    cfg.kafka_pid_file.unlink(missing_ok=True)
    say(f"kafka stopped (pid {pid}, {how}) in {time.monotonic() - started:.1f}s")


# --------------------------------------------------------------------------- PostgreSQL


def _pg_major(path: Path) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in path.parent.parent.name.split("."))
    except ValueError:
        return (0,)


def find_pg_bindir(cfg: Config) -> Path | None:
    """Debian's server bin dir: the data dir's major version if present, else the newest."""
    candidates = sorted(PG_LIB_DIR.glob("*/bin/postgres"), key=_pg_major)
    if not candidates:
        return None
    with contextlib.suppress(OSError):
        wanted = (cfg.pg_data / "PG_VERSION").read_text().strip()
        for cand in candidates:
            if cand.parent.parent.name == wanted:
                return cand.parent
    return candidates[-1].parent


def ensure_pg_bindir(cfg: Config) -> Path:
    """Find the PostgreSQL server binaries, installing them with apt-get when root."""
    bindir = find_pg_bindir(cfg)
    if bindir is not None:
        return bindir
    if os.geteuid() != 0:
        raise StackError(
            f"PostgreSQL server not found ({PG_LIB_DIR}/*/bin/postgres); "
            "install it as root: apt-get install postgresql"
        )
    apt = shutil.which("apt-get")
    if apt is None:
        raise StackError("PostgreSQL server not found and apt-get is missing; install postgresql")
    say("postgres: server not installed; running apt-get update && apt-get install -y postgresql")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run([apt, "update"], env=env, timeout=900)
    run([apt, "install", "-y", "postgresql"], env=env, timeout=1800)
    bindir = find_pg_bindir(cfg)
    if bindir is None:
        raise StackError(f"apt-get installed postgresql but {PG_LIB_DIR}/*/bin is missing")
    return bindir


def as_pg_user(cmd: Sequence[str]) -> list[str]:
    """``cmd`` run as the postgres OS user when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return list(cmd)
    runuser = shutil.which("runuser")
    if runuser is not None:
        return [runuser, "-u", PG_OS_USER, "--", *cmd]
    return ["su", PG_OS_USER, "-s", "/bin/sh", "-c", shlex.join(cmd)]


def prepare_pg_dirs(cfg: Config) -> None:
    """Create <run>/postgres (and its socket dir), owned by the postgres user when root."""
    cfg.pg_dir.mkdir(mode=0o700, exist_ok=True)
    cfg.pg_socket_dir.mkdir(mode=0o700, exist_ok=True)
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam(PG_OS_USER)
        except KeyError:
            raise StackError(
                f"OS user {PG_OS_USER!r} missing; apt-get install postgresql"
            ) from None
        for path in (cfg.pg_dir, cfg.pg_socket_dir):
            os.chown(path, user.pw_uid, user.pw_gid)
        probe = run(as_pg_user(["test", "-w", str(cfg.pg_dir)]), check=False, cwd=Path("/"))
        if probe.returncode != 0:
            raise StackError(
                f"the {PG_OS_USER} OS user cannot write {cfg.pg_dir} (a parent dir is not "
                "traversable); set MASH_RUN_DIR to e.g. /tmp/mash-router"
            )


def pg_initdb(cfg: Config, bindir: Path) -> None:
    """Create our private cluster (trust auth, UTF8) unless it already exists."""
    if (cfg.pg_data / "PG_VERSION").is_file():
        return
    shutil.rmtree(cfg.pg_data, ignore_errors=True)  # a half-made data dir
    base = [
        str(bindir / "initdb"),
        "-D",
        str(cfg.pg_data),
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
    ]
    say(f"postgres: initdb {cfg.pg_data}")
    proc = run(as_pg_user([*base, "--locale=C.UTF-8"]), check=False, cwd=cfg.pg_dir, timeout=300)
    if proc.returncode != 0:
        shutil.rmtree(cfg.pg_data, ignore_errors=True)
        say("postgres: locale C.UTF-8 unavailable, retrying initdb with --locale=C")
        proc = run(as_pg_user([*base, "--locale=C"]), check=False, cwd=cfg.pg_dir, timeout=300)
    if proc.returncode != 0:
        warn((proc.stdout + proc.stderr).strip())
        raise StackError(f"initdb failed (exit {proc.returncode}) for {cfg.pg_data}")


def pg_pid(cfg: Config) -> int | None:
    """PID of our postmaster, from its postmaster.pid, when that process is alive."""
    pid = read_pid_file(cfg.pg_data / "postmaster.pid")
    if pid is None or not pid_alive(pid):
        return None
    argv = cmdline(pid)
    if argv and not any("postgres" in part for part in argv):
        return None
    return pid


def find_psql(cfg: Config) -> str | None:
    """A psql binary: the server's bin dir first, then PATH."""
    bindir = find_pg_bindir(cfg)
    if bindir is not None and (bindir / "psql").is_file():
        return str(bindir / "psql")
    return shutil.which("psql")


def psql(
    psql_bin: str, url: str, sql: str, timeout: float = 10.0
) -> subprocess.CompletedProcess[str]:
    """Run SQL (from stdin, so psql meta-commands work) against ``url``; never prompts."""
    env = {**os.environ, "PGCONNECT_TIMEOUT": str(max(2, int(timeout)))}
    cmd = [psql_bin, "-X", "-w", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", "-"]
    try:
        return run(cmd, check=False, timeout=timeout + 5, env=env, stdin_text=sql, cwd=Path("/"))
    except StackError as exc:
        return subprocess.CompletedProcess(cmd, 1, "", str(exc))


def libpq_url(url: str) -> str:
    """Drop a SQLAlchemy-style driver suffix (postgresql+asyncpg://) so libpq accepts it."""
    scheme, sep, rest = url.partition("://")
    if sep and "+" in scheme:
        return scheme.split("+", 1)[0] + "://" + rest
    return url


def pg_check(psql_bin: str, url: str, timeout: float = 5.0) -> str | None:
    """None when ``select 1`` over ``url`` returns 1, else the reason."""
    proc = psql(psql_bin, libpq_url(url), "select 1;\n", timeout)
    if proc.returncode == 0 and proc.stdout.strip() == "1":
        return None
    detail = " ".join(line.strip() for line in (proc.stderr or proc.stdout).splitlines())
    return detail.strip() or f"psql exit {proc.returncode}"


def pg_admin_url(cfg: Config) -> str:
    """Superuser connection to the maintenance database of our cluster."""
    return f"postgresql://postgres@{HOST}:{cfg.pg_port}/postgres"


ROLE_AND_DB_SQL = f"""
SELECT 'CREATE ROLE {PG_ROLE} LOGIN SUPERUSER'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{PG_ROLE}') \\gexec
SELECT 'CREATE DATABASE {PG_DATABASE} OWNER {PG_ROLE} ENCODING ''UTF8'' TEMPLATE template0'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{PG_DATABASE}') \\gexec
"""


def pg_up(cfg: Config, timeout: float, fast: bool) -> None:
    """Ensure our PostgreSQL runs and the mash role/database answer ``select 1``."""
    started = time.monotonic()
    bindir = ensure_pg_bindir(cfg)
    psql_bin = str(bindir / "psql")
    pid = pg_pid(cfg)
    if pid is None:
        started = time.monotonic()
        prepare_pg_dirs(cfg)
        pg_initdb(cfg, bindir)
        require_free_port(cfg.pg_port, "PostgreSQL", "MASH_PG_PORT")
        options = [
            f"-p {cfg.pg_port}",
            f"-k {shlex.quote(str(cfg.pg_socket_dir))}",
            f"-c listen_addresses={HOST}",
            # Per-statement counts for `make bench` (SQL statements per contact).
            f"-c shared_preload_libraries={PG_PRELOAD}",
        ]
        if fast:  # test-only: durability off (data is thrown away anyway)
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        else:
            options += ["-c synchronous_commit=on"]
        cmd = [
            str(bindir / "pg_ctl"),
            "-D",
            str(cfg.pg_data),
            "-l",
            str(cfg.pg_log),
            "-o",
            " ".join(options),
            "-w",
            "-t",
            str(max(1, int(timeout))),
            "start",
        ]
        proc = run(as_pg_user(cmd), check=False, cwd=cfg.pg_dir, timeout=timeout + 30)
        if proc.returncode != 0:
            warn((proc.stdout + proc.stderr).strip())
            print_tail(cfg.pg_log)
            raise StackError(f"pg_ctl start failed (exit {proc.returncode}) for {cfg.pg_data}")
        pid = pg_pid(cfg)
        mode = " (fast: fsync off)" if fast else ""
        say(f"postgres: started pid {pid} on {HOST}:{cfg.pg_port}{mode}")
        fresh = True
    else:
        fresh = False
    deadline = started + timeout
    reason: str | None = None
    while True:
        setup = psql(psql_bin, pg_admin_url(cfg), ROLE_AND_DB_SQL)
        reason = (
            pg_check(psql_bin, cfg.database_url)
            if setup.returncode == 0
            else ((setup.stderr or setup.stdout).strip() or f"psql exit {setup.returncode}")
        )
        if reason is None:
            break
        if time.monotonic() >= deadline:
            print_tail(cfg.pg_log)
            raise StackError(
                f"postgres did not answer {cfg.database_url} within {timeout:.0f}s: {reason}"
            )
        time.sleep(0.25)
    elapsed = time.monotonic() - started
    if fresh:
        say(f"postgres ready in {elapsed:.1f}s at {cfg.database_url} (pid {pid})")
    else:
        say(f"postgres already running (pid {pid}), answered in {elapsed:.2f}s")
        preload = psql(psql_bin, pg_admin_url(cfg), "SHOW shared_preload_libraries;\n")
        if preload.returncode == 0 and PG_PRELOAD not in preload.stdout:
            warn(
                f"postgres: pid {pid} was started without {PG_PRELOAD} (make bench counts no "
                "SQL statements); `stack.py down` then `stack.py up` loads it"
            )


def pg_stop(cfg: Config) -> None:
    """``pg_ctl stop -m fast`` our cluster, if it runs."""
    pid = pg_pid(cfg)
    if pid is None:
        say("postgres: not running")
        return
    started = time.monotonic()
    bindir = find_pg_bindir(cfg)
    if bindir is None:
        raise StackError(f"postgres pid {pid} runs but pg_ctl is missing; kill it by PID")
    cmd = [str(bindir / "pg_ctl"), "-D", str(cfg.pg_data), "-m", "fast", "-w", "-t", "60", "stop"]
    proc = run(as_pg_user(cmd), check=False, cwd=cfg.pg_dir, timeout=90)
    if proc.returncode != 0 and pg_pid(cfg) is not None:
        warn((proc.stdout + proc.stderr).strip())
        raise StackError(f"pg_ctl stop failed (exit {proc.returncode}) for {cfg.pg_data}")
    say(f"postgres stopped (pid {pid}) in {time.monotonic() - started:.1f}s")


# --------------------------------------------------------------------------- commands


def wipe(cfg: Config) -> None:
    """Delete the local data dirs (servers must be stopped)."""
    for path in (cfg.kafka_dir, cfg.pg_dir):
        if path.exists():
            shutil.rmtree(path)
            say(f"reset: removed {path}")


def cmd_up(cfg: Config, args: argparse.Namespace) -> int:
    """Start whatever is not running and wait until both answer."""
    timeout: float = args.timeout
    with stack_lock(cfg):
        if args.reset:
            kafka_stop(cfg)
            pg_stop(cfg)
            wipe(cfg)
        launch: KafkaLaunch | None = None
        try:
            if cfg.external_kafka is None:
                launch = kafka_start(cfg)  # the JVM boots while postgres starts
            if cfg.external_database is None:
                pg_up(cfg, timeout, args.fast)
        except BaseException:
            if launch is not None and launch.proc is not None:
                warn(f"kafka: broker pid {launch.pid} left running; `stack.py down` stops it")
            raise
        if launch is not None:
            kafka_wait(cfg, launch, timeout)
        failures = []
        if cfg.external_kafka is not None:
            reason = external_kafka_check(cfg.external_kafka)
            if reason is None:
                say(f"kafka: external KAFKA_BOOTSTRAP_SERVERS={cfg.external_kafka} answers")
            else:
                failures.append(f"external kafka {cfg.external_kafka}: {reason}")
        if cfg.external_database is not None:
            psql_bin = find_psql(cfg)
            if psql_bin is None:
                raise StackError(
                    "psql not found to check DATABASE_URL; apt-get install postgresql-client"
                )
            reason = pg_check(psql_bin, cfg.external_database)
            if reason is None:
                say(f"postgres: external DATABASE_URL={cfg.external_database} answers")
            else:
                failures.append(f"external database {cfg.external_database}: {reason}")
        if failures:
            raise StackError("; ".join(failures))
    say(f'stack up: eval "$(python3 {display_path()} env)"')
    return 0


def cmd_down(cfg: Config, args: argparse.Namespace) -> int:
    """Stop the local servers (harmless when already stopped)."""
    del args
    if not cfg.run_dir.exists():
        say("kafka: not running")
        say("postgres: not running")
        return 0
    with stack_lock(cfg):
        errors = []
        for stop in (kafka_stop, pg_stop):
            try:
                stop(cfg)
            except StackError as exc:
                errors.append(str(exc))
        if errors:
            raise StackError("; ".join(errors))
    return 0


def cmd_stop(cfg: Config, args: argparse.Namespace) -> int:
    """Stop one local server, gracefully or (Kafka, ``--kill``) with SIGKILL; ``up`` restarts it."""
    if args.kill and args.server != "kafka":
        raise StackError("--kill is for kafka; postgres always stops with pg_ctl -m fast")
    with stack_lock(cfg):
        if args.server == "kafka":
            kafka_stop(cfg, kill=args.kill)
        else:
            pg_stop(cfg)
    return 0


def _status_line(name: str, up: bool, pid: str, address: str, note: str) -> str:
    state = "up" if up else "down"
    return f"{name:<9} {state:<5} pid {pid:<9} {address:<22} {note}".rstrip()


def cmd_status(cfg: Config, args: argparse.Namespace) -> int:
    """Print each server's state; exit 0 only if both answer."""
    del args
    lines = []
    all_up = True
    if cfg.external_kafka is not None:
        reason = external_kafka_check(cfg.external_kafka)
        lines.append(
            _status_line(
                "kafka",
                reason is None,
                "external",
                cfg.external_kafka,
                reason or "(KAFKA_BOOTSTRAP_SERVERS)",
            )
        )
        all_up &= reason is None
    else:
        pid = kafka_pid(cfg) if cfg.kafka_dir.exists() else None
        reason = (
            kafka_check(HOST, cfg.kafka_port, cfg.kafka_port) if pid is not None else "no process"
        )
        note = f"(data {cfg.kafka_data})" if reason is None else f"({reason})"
        lines.append(_status_line("kafka", reason is None, str(pid or "-"), cfg.bootstrap, note))
        all_up &= reason is None
    psql_bin = find_psql(cfg)
    if cfg.external_database is not None:
        reason = pg_check(psql_bin, cfg.external_database) if psql_bin else "psql not installed"
        lines.append(
            _status_line(
                "postgres",
                reason is None,
                "external",
                "-",
                f"{cfg.external_database} {reason or ''}",
            )
        )
        all_up &= reason is None
    else:
        # postmaster.pid may be unreadable (another user's 0700 dir): the query decides.
        pg = pg_pid(cfg) if cfg.pg_dir.exists() else None
        reason = pg_check(psql_bin, cfg.database_url) if psql_bin else "psql not installed"
        if reason is not None and pg is None:
            reason = "no process"
        pid_text = str(pg) if pg is not None else ("?" if reason is None else "-")
        note = f"({cfg.database_url})" if reason is None else f"({reason})"
        lines.append(
            _status_line("postgres", reason is None, pid_text, f"{HOST}:{cfg.pg_port}", note)
        )
        all_up &= reason is None
    for line in lines:
        print(line)
    return 0 if all_up else 1


def cmd_env(cfg: Config, args: argparse.Namespace) -> int:
    """Print shell ``export`` lines for the services and tests."""
    del args
    print(f"export KAFKA_BOOTSTRAP_SERVERS={shlex.quote(cfg.effective_bootstrap)}")
    print(f"export DATABASE_URL={shlex.quote(cfg.effective_database_url)}")
    return 0


def display_path() -> str:
    """This script's path relative to the current directory when possible."""
    here = Path(__file__).resolve()
    with contextlib.suppress(ValueError):
        return str(here.relative_to(Path.cwd()))
    return str(here)


def build_parser() -> argparse.ArgumentParser:
    """The CLI: up | down | stop | status | env."""
    parser = argparse.ArgumentParser(
        prog="stack.py",
        description=f"Local Apache Kafka {KAFKA_VERSION} (KRaft) + PostgreSQL for mash-router.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{up,down,stop,status,env}")
    up = sub.add_parser("up", help="start both servers (idempotent) and wait until they answer")
    up.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="seconds to wait for each server (default %(default)s)",
    )
    up.add_argument(
        "--reset",
        action="store_true",
        help="stop and wipe the local data dirs first (clean test run)",
    )
    up.add_argument(
        "--fast",
        action="store_true",
        help="start PostgreSQL with fsync/synchronous_commit off (tests only)",
    )
    up.set_defaults(handler=cmd_up)
    sub.add_parser("down", help="stop both local servers").set_defaults(handler=cmd_down)
    stop = sub.add_parser("stop", help="stop one local server (fault tests); up restarts it")
    stop.add_argument("server", choices=("kafka", "postgres"))
    stop.add_argument("--kill", action="store_true", help="SIGKILL the broker (a crash)")
    stop.set_defaults(handler=cmd_stop)
    sub.add_parser("status", help="exit 0 only if both answer").set_defaults(handler=cmd_status)
    sub.add_parser("env", help="print export lines").set_defaults(handler=cmd_env)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        cfg = Config.from_environ(os.environ)
        handler: Callable[[Config, argparse.Namespace], int] = args.handler
        return handler(cfg, args)
    except StackError as exc:
        warn(f"stack.py: error: {exc}")
        return 1
    except KeyboardInterrupt:
        warn("stack.py: interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
