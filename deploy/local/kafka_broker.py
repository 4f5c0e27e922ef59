"""The local Apache Kafka broker process: java, the jars (fetched once with Maven into the
cache), the KRaft cluster id and storage format, the plaintext broker's
``server.properties``, and start / wait until it answers / stop.

The same code runs both local brokers, a single-node combined broker+controller each: the
plaintext one (:data:`PLAINTEXT_BROKER`) and the secured one
(``kafka_secure.SECURED_BROKER``). A :class:`BrokerKind` carries what differs (the
properties, extra storage-format arguments, the readiness check), so no TLS or SCRAM code
lives here; a :class:`~deploy.local.config.Config`'s secured view gives that broker its own
run dir, ports, label and smaller heap.

Standard library only (see ``stack.py``).

One module, over 400 lines, on purpose: starting, waiting for and stopping the local broker
is one sequence whose steps depend on each other's files and timing; split, a reader would
hop between files to follow one start.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deploy.local.config import HOST, KAFKA_VERSION, SCALA_BINARY_VERSION, Config, StackError
from deploy.local.host import (
    cmdline,
    pid_alive,
    print_tail,
    read_pid_file,
    require_free_port,
    run,
    say,
    warn,
    write_private,
)
from deploy.local.kafka_wire import kafka_check

HERE = Path(__file__).resolve().parent
POM_FILE = HERE / "kafka" / "pom.xml"
LOG4J_CONFIG = HERE / "kafka" / "log4j2.properties"
KAFKA_STOP_GRACE = 30.0

KAFKA_JVM_OPTS = ("-Xms256m", "-Xmx768m", "-XX:+UseG1GC", "-Djava.awt.headless=true")
#: The secured broker carries only the ACL tests' few records: a smaller heap, since it
#: runs beside the plaintext broker (and the fault suite's) on one machine.
SECURE_KAFKA_HEAP = ("-Xms128m", "-Xmx384m")
MIN_JAVA_MAJOR = 17
INSTALL_JAVA_MAVEN = "apt-get install openjdk-17-jre-headless maven"


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
    """server.properties of the plaintext broker: a single-node combined
    broker+controller on 127.0.0.1."""
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
        *SINGLE_NODE_SETTINGS,
    ]
    return "\n".join(lines) + "\n"


#: Settings both local brokers share: one node, small internal topics, no auto-creation.
SINGLE_NODE_SETTINGS = (
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
)


def plaintext_check(cfg: Config, timeout: float = 5.0) -> str | None:
    """None when the plaintext broker of ``cfg`` answers a metadata round trip listing its
    port, else the reason."""
    return kafka_check(HOST, cfg.kafka_port, cfg.kafka_port, timeout=timeout)


def _no_format_args(cfg: Config) -> list[str]:
    return []


def _nothing_to_record(cfg: Config) -> None:
    return None


@dataclass(frozen=True)
class BrokerKind:
    """What one kind of local broker does its own way; :func:`kafka_start` and
    :func:`kafka_wait` do the rest the same for both."""

    #: The text of server.properties, written on every start.
    properties: Callable[[Config], str]
    #: None when the broker answers (timeout in seconds), else the reason.
    check: Callable[[Config, float], str | None]
    #: Extra arguments of the storage format (the secured broker's SCRAM users).
    format_args: Callable[[Config], list[str]] = _no_format_args
    #: Called after the storage was formatted afresh, before the broker starts.
    formatted: Callable[[Config], None] = _nothing_to_record


#: The plaintext broker of the local stack (``stack.py up``).
PLAINTEXT_BROKER = BrokerKind(properties=server_properties, check=plaintext_check)


def kafka_jvm_opts(cfg: Config) -> list[str]:
    """JVM options for both StorageTool and the broker."""
    heap = SECURE_KAFKA_HEAP if cfg.secure else ()
    return [
        *KAFKA_JVM_OPTS,
        *heap,  # later -Xms/-Xmx win
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


def kafka_start(cfg: Config, kind: BrokerKind) -> KafkaLaunch:
    """Format the storage (once) and start the broker in the background; do not wait."""
    started = time.monotonic()
    pid = kafka_pid(cfg)
    if pid is not None:
        return KafkaLaunch(pid, started, None)
    java = require_java()
    libs = ensure_kafka_libs(cfg)
    started = time.monotonic()
    port_env = "MASH_SECURE_KAFKA_PORT" if cfg.secure else "MASH_KAFKA_PORT"
    require_free_port(cfg.kafka_port, "Kafka broker", port_env)
    require_free_port(
        cfg.controller_port, "Kafka controller", port_env.replace("_PORT", "_CONTROLLER_PORT")
    )
    if cfg.secure:
        require_free_port(
            cfg.secure_mtls_port, "Kafka mTLS listener", "MASH_SECURE_KAFKA_MTLS_PORT"
        )
    for folder in (cfg.kafka_dir, cfg.kafka_data, cfg.kafka_logs):
        folder.mkdir(parents=True, exist_ok=True)
    if cfg.secure:  # it holds the keystore password and the broker's own SCRAM password
        write_private(cfg.kafka_properties, kind.properties(cfg))
    else:
        cfg.kafka_properties.write_text(kind.properties(cfg))
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
        *kind.format_args(cfg),
    ]
    # Same effect as --ignore-formatted, minus a JVM start (~2 s) when already formatted.
    formatted = (cfg.kafka_data / "meta.properties").is_file()
    proc = run(fmt, check=False, timeout=300, cwd=cfg.kafka_dir) if not formatted else None
    if proc is not None and proc.returncode != 0:
        warn((proc.stdout + proc.stderr).strip())
        raise StackError(
            f"kafka storage format failed (exit {proc.returncode}) in {cfg.kafka_data}"
        )
    if proc is not None:
        kind.formatted(cfg)
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
    say(
        f"{cfg.kafka_label}: started broker pid {broker.pid} (cluster id {cid}), "
        "waiting for it to answer ..."
    )
    return KafkaLaunch(broker.pid, started, broker)


def _kafka_failure(cfg: Config, message: str) -> StackError:
    print_tail(cfg.kafka_logs / "server.log")
    print_tail(cfg.kafka_stdout, 20)
    return StackError(message)


def kafka_wait(cfg: Config, launch: KafkaLaunch, timeout: float, kind: BrokerKind) -> None:
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
        reason = kind.check(cfg, 5.0)
        if reason is None:
            break
        if time.monotonic() >= deadline:
            down = "stack.py down --secure" if cfg.secure else "stack.py down"
            raise _kafka_failure(
                cfg,
                f"{cfg.kafka_label} did not answer on {cfg.bootstrap} within {timeout:.0f}s "
                f"({reason}); pid {launch.pid} is still running: `{down}` stops it",
            )
        time.sleep(0.25)
    elapsed = time.monotonic() - launch.started
    label = cfg.kafka_label
    if launch.proc is None:
        say(f"{label} already running (pid {launch.pid}), answered in {elapsed:.2f}s")
    else:
        say(f"{label} ready in {elapsed:.1f}s on {cfg.bootstrap} (pid {launch.pid})")


def kafka_stop(cfg: Config, *, kill: bool = False) -> None:
    """SIGTERM the broker, wait up to 30 s, then SIGKILL; remove the PID file.

    ``kill`` sends SIGKILL at once: a crash, as the fault tests need it.
    """
    pid = kafka_pid(cfg)
    if pid is None:
        say(f"{cfg.kafka_label}: not running")
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
    say(f"{cfg.kafka_label} stopped (pid {pid}, {how}) in {time.monotonic() - started:.1f}s")
