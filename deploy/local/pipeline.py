"""Run the whole pipeline locally: the four services as processes, with the lag exporter
beside them, fed with simulated traffic from ``mash simulate``.

    python -m deploy.local.pipeline run     # stack up, services up, traffic in, summary out
    python -m deploy.local.pipeline run --secure   # the same on the secured broker
    python -m deploy.local.pipeline stop    # stop services and exporter (the stack stays up)
    python -m deploy.local.pipeline status

The same :class:`ServiceProcesses` starts the services for the end-to-end tests.

The database is migrated first, as its own step (``mash db migrate``, as the local
superuser ``mash``: the operator); each service then logs in as its own role's login user
(``mash_<service>_login``, member of ``mash_<service>``: ``services/common/database_roles.yaml``)
over TLS verified against the local CA. An external ``DATABASE_URL`` is migrated the same
way, and its services keep that one DSN (the stack knows no login users there).

``--secure`` (``make run SECURE=1``) runs on the secured broker (``stack.py up --secure``,
with ``deploy/security/principals.yaml`` applied): the operator (``admin``) creates the
topics and feeds the traffic; each service and the lag exporter log in as their own
principal and create nothing (``MASH_CREATE_TOPICS=false``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import asyncpg

from deploy.local.config import PG_DATABASE, Config
from deploy.local.kafka_secure import secure_client_env
from deploy.local.postgres_access import role_database_url
from deploy.local.scram_users import ADMIN_USER
from mash.jsonl import ReplayRecord
from mash.simulation import SimulationRequest, generate, load_calibration
from services.common.kafka import ensure_topics
from services.common.kafka_security import kafka_client_security
from services.common.settings import DEFAULT_METRICS_PORTS, Settings
from services.common.topics import TopicNames
from services.common.topology import load_topology
from services.screening.app import history_changelog_topic

SERVICES = ("intake", "screening", "routing", "notifications")
#: The consumer-lag exporter: not a service worker, so its figures outlive any worker.
LAG_EXPORTER = "lag-exporter"
#: Processes started beside the services, by name: the module each one runs.
TOOLS = {LAG_EXPORTER: "mash.lag_exporter"}
REPO = Path(__file__).resolve().parents[2]
RUN_DIR = REPO / ".run"


class ServiceProcesses:
    """The four service processes of one pipeline, with their logs and PID files."""

    def __init__(
        self,
        env: Mapping[str, str],
        run_dir: Path = RUN_DIR,
        role_env: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.env = dict(env)
        #: Per service (every worker of it): what its processes add to ``env``, e.g. the
        #: DATABASE_URL of its own database role.
        self.role_env = {name: dict(extra) for name, extra in (role_env or {}).items()}
        self.run_dir = run_dir
        self.log_dir = run_dir / "logs"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def pid_file(self, service: str) -> Path:
        """Where the PID of ``service`` is kept."""
        return self.run_dir / f"{service}.pid"

    def running_pid(self, service: str) -> int | None:
        """PID of a live process of ``service`` started from this run dir, if any."""
        try:
            pid = int(self.pid_file(service).read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def start(self, service: str, extra_env: Mapping[str, str] | None = None) -> None:
        """Start ``service`` unless it already runs.

        ``service`` may name a further worker of a service, ``screening-2``: the same
        service in its own process (same consumer group), with its own log and PID file;
        or ``lag-exporter`` (:data:`TOOLS`). ``extra_env`` adds to the environment of this
        process only (e.g. its metrics port).
        """
        if self.running_pid(service) is not None:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{service}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", module_of(service)],
            cwd=REPO,
            env={**self.env, **self._role_env_of(service), **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[service] = proc
        self.pid_file(service).write_text(str(proc.pid))

    def _role_env_of(self, process: str) -> dict[str, str]:
        if process in TOOLS:
            return {}
        return self.role_env.get(service_of(process), {})

    def start_all(self, services: Iterable[str] = SERVICES) -> None:
        """Start every service that is not running."""
        for service in services:
            self.start(service)

    def stop(self, service: str, *, kill: bool = False, wait_seconds: float = 30.0) -> None:
        """Stop ``service``: SIGTERM (graceful) or SIGKILL (a crash), and wait for it."""
        pid = self.running_pid(service)
        if pid is None:
            return
        os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
        proc = self.procs.pop(service, None)
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            if proc is not None:
                if proc.poll() is not None:
                    break
            elif self.running_pid(service) is None:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
            if proc is not None:
                proc.wait(10)
        self.pid_file(service).unlink(missing_ok=True)

    def stop_all(self) -> None:
        """Stop every service, and every further worker started from this run dir."""
        workers = {p.stem for p in self.run_dir.glob("*.pid")} | set(self.procs)
        for service in sorted(workers | set(SERVICES)):
            self.stop(service)


def module_of(process: str) -> str:
    """The module a process runs: a tool's own (:data:`TOOLS`), else its service's."""
    return TOOLS.get(process) or f"services.{service_of(process)}"


def service_of(worker: str) -> str:
    """The service a worker name belongs to: ``screening-2`` -> ``screening``."""
    service = worker.split("-", 1)[0]
    if service not in SERVICES:
        raise ValueError(f"{worker!r} names no service; expected one of {SERVICES}")
    return service


#: How many simulated contacts have travelled the whole way: recorded, acknowledged, and
#: their routing handled by notifications.
PROGRESS_SQL = """
SELECT count(*) FROM contacts c
WHERE c.source_event_id = ANY($1::text[])
  AND EXISTS (SELECT 1 FROM feedback f
              WHERE f.contact_id = c.contact_id AND f.kind = 'acknowledgement')
  AND EXISTS (SELECT 1 FROM outbox o
              JOIN processed_events p ON p.event_id = o.event_id
                AND p.service = 'notifications' AND p.outcome <> 'pending'
              WHERE o.service = 'routing' AND o.topic LIKE '%mash.routed.v1'
                AND convert_from(o.value, 'UTF8')::jsonb ->> 'contact_id' = c.contact_id)
"""


async def wait_for_contacts(dsn: str, event_ids: list[str], wait_seconds: float) -> None:
    """Wait until every inbound event in ``event_ids`` has travelled the whole pipeline."""
    deadline = time.monotonic() + wait_seconds
    done = 0
    while True:
        try:
            conn = await asyncpg.connect(dsn)
            try:
                done = await conn.fetchval(PROGRESS_SQL, event_ids)
            finally:
                await conn.close()
            if done >= len(event_ids):
                return
        except (OSError, asyncpg.PostgresError):
            pass  # services still applying migrations
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{done} of {len(event_ids)} contacts travelled the whole pipeline in "
                f"{wait_seconds:.0f}s; see .run/logs"
            )
        await asyncio.sleep(0.5)


async def summary(dsn: str) -> str:
    """A plain-text summary of what the pipeline recorded."""
    conn = await asyncpg.connect(dsn)
    try:
        contacts = await conn.fetchval("SELECT count(*) FROM contacts")
        dead = await conn.fetch(
            "SELECT reason, count(*) AS n FROM dead_letters GROUP BY 1 ORDER BY 1"
        )
        outcomes = await conn.fetch(
            "SELECT outcome, count(*) AS n FROM decisions GROUP BY 1 ORDER BY 1"
        )
        queues = await conn.fetch(
            "SELECT hub, queue, count(*) AS n FROM queue_items GROUP BY 1, 2 ORDER BY 1, 2"
        )
        feedback = await conn.fetch(
            "SELECT kind, count(*) AS n FROM feedback GROUP BY 1 ORDER BY 1"
        )
    finally:
        await conn.close()
    lines = [f"contacts recorded:        {contacts}"]
    lines += [f"dead letters ({r['reason']}): {r['n']}" for r in dead]
    lines += [f"decisions {r['outcome']:<20} {r['n']}" for r in outcomes]
    lines += [f"queue items {r['hub']:<20} {r['queue']:<20} {r['n']}" for r in queues]
    lines += [f"feedback {r['kind']:<16} {r['n']}" for r in feedback]
    return "\n".join(lines)


def database_role_env(cfg: Config, database: str = PG_DATABASE) -> dict[str, dict[str, str]]:
    """Per service, the DATABASE_URL of its own role's login user on the local PostgreSQL
    (TLS, verified), for :class:`ServiceProcesses`; empty for an external database."""
    if cfg.external_database is not None:
        return {}
    out = {}
    for service in SERVICES:
        url = role_database_url(cfg, f"mash_{service}", database)
        out[service] = {"DATABASE_URL": url, "MASH_DATABASE_URL": url}
    return out


def migrate_database(env: Mapping[str, str]) -> None:
    """``mash db migrate`` against the environment's database: the migrations, then the
    roles' grants (the same command works by hand)."""
    command = [sys.executable, "-m", "mash", "db", "migrate"]
    print("$ mash " + " ".join(command[3:]))
    proc = subprocess.run(command, env=dict(env), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr.strip() or f"mash db migrate: exit {proc.returncode}")
    print(proc.stdout.strip().splitlines()[-1])  # the summary line


def _stack(*args: str) -> None:
    subprocess.run([sys.executable, str(REPO / "deploy/local/stack.py"), *args], check=True)


def simulated_event_ids(
    seed: int, contacts: int, topology: str, bad_rate: float | None = None
) -> tuple[list[str], int]:
    """The inbound event ids of the valid contacts ``mash simulate`` will publish (binary
    and structured mode alike), and how many bad messages it sends besides."""
    request = SimulationRequest(seed=seed, count=contacts, bad_rate=bad_rate)
    simulated = generate(request, load_calibration(), load_topology(topology))
    ids = [_event_id(sim.record) for sim in simulated if sim.kind != "bad"]
    return ids, sum(sim.kind == "bad" for sim in simulated)


def _event_id(record: ReplayRecord) -> str:
    for name, value in record.headers:
        if name == "ce_id" and value is not None:
            return value.decode()
    # Structured mode: the id is in the envelope.
    return str(json.loads(record.value or b"{}")["id"])


def _secured(principal: str | None = None) -> dict[str, str]:
    """How a client of the secured broker connects, as ``principal`` when named."""
    return secure_client_env(Config.from_environ(os.environ), principal)


def run(wait_seconds: float, contacts: int, seed: int, secure: bool = False) -> int:
    """Bring everything up, feed simulated traffic, print the summary and where to look."""
    _stack("up")
    shared: dict[str, str] = dict(os.environ)
    if secure:
        _stack("up", "--secure")
        subprocess.run([sys.executable, "-m", "deploy.security.acls", "apply"], check=True)
        shared |= _secured() | {"MASH_CREATE_TOPICS": "false"}
        # This process is the operator from here on: it creates the topics and feeds them.
        os.environ.update(_secured(ADMIN_USER))
    settings = Settings()
    migrate_database(os.environ)
    services = ServiceProcesses(shared, role_env=database_role_env(Config.from_environ(os.environ)))
    topics = TopicNames(settings.topic_prefix)
    specs = topics.all_specs(load_topology(settings.topology).hub_ids, settings.partitions)
    asyncio.run(
        ensure_topics(
            settings.bootstrap_list,
            [*specs, history_changelog_topic(settings)],
            security=kafka_client_security(settings),
        )
    )
    for name in (*SERVICES, LAG_EXPORTER):
        services.start(name, _secured(name) if secure else None)
    # The developers' own tool feeds the pipeline: the same command works by hand.
    simulate = [sys.executable, "-m", "mash", "simulate", "--seed", str(seed)]
    simulate += ["--count", str(contacts), "--to-kafka", "--no-progress"]
    print("$ mash " + " ".join(simulate[3:]))
    subprocess.run(simulate, check=True, env=os.environ)
    event_ids, _ = simulated_event_ids(seed, contacts, settings.topology)
    asyncio.run(wait_for_contacts(settings.database_url, event_ids, wait_seconds))
    print(asyncio.run(summary(settings.database_url)))
    print()
    print("The four services and the lag exporter keep running. Where to look:")
    ports = {**DEFAULT_METRICS_PORTS, LAG_EXPORTER: settings.lag_exporter_port}
    for name in (*SERVICES, LAG_EXPORTER):
        print(
            f"  {name:<14} metrics http://127.0.0.1:{ports[name]}/metrics"
            f"   log {services.log_dir / (name + '.log')}"
        )
    print(f"  database       psql {settings.database_url}")
    print(f"  broker         {settings.kafka_bootstrap_servers} (topics mash.*; try: mash topics)")
    print("More traffic: .venv/bin/mash simulate --weeks 1 --to-kafka   Stop: make stop")
    return 0


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser(
        "run", help="stack up, services up, feed simulated traffic, print a summary"
    )
    run_p.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for the traffic"
    )
    run_p.add_argument("--contacts", type=int, default=200, help="simulated contacts to feed")
    run_p.add_argument("--seed", type=int, default=7, help="simulation seed")
    run_p.add_argument(
        "--secure",
        action="store_true",
        help="on the secured broker, every service under its own principal",
    )
    sub.add_parser("stop", help="stop the four services and the lag exporter")
    sub.add_parser("status", help="show which services run")
    args = parser.parse_args(argv)
    services = ServiceProcesses(os.environ)
    if args.command == "run":
        return run(args.timeout, args.contacts, args.seed, args.secure)
    if args.command == "stop":
        services.stop_all()
        return 0
    for name in (*SERVICES, LAG_EXPORTER):
        pid = services.running_pid(name)
        print(f"{name:<14} {'up   pid ' + str(pid) if pid else 'down'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
