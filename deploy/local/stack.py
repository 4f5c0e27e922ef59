#!/usr/bin/env python3
"""Start, check and stop the local (no-Docker) Kafka + PostgreSQL stack for mash-router.

    python3 deploy/local/stack.py up [--timeout 90] [--reset] [--fast]
    python3 deploy/local/stack.py status
    python3 deploy/local/stack.py down
    python3 deploy/local/stack.py stop kafka|postgres [--kill]   # one server (fault tests)
    python3 deploy/local/stack.py env          # eval "$(python3 deploy/local/stack.py env)"
    python3 deploy/local/stack.py up|status|down|env --secure   # the secured broker

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
``MASH_RUN_DIR`` (/dev/shm/mash-router when /dev/shm exists, else <cache>/run),
``MASH_SECURE_KAFKA_PORT`` (19094), ``MASH_SECURE_KAFKA_CONTROLLER_PORT`` (19095).

The secured broker (``--secure``: SASL_SSL, SCRAM-SHA-512 users, ACLs; beside the plaintext
one, in ``<run dir>/secure``) is described in ``kafka_secure.py``.

This file is the command line; its sibling modules do the work (split along these seams,
issue 17, so that each reads in one sitting):

* ``config.py``: :class:`Config` (paths and ports from the environment), ``KAFKA_VERSION``;
* ``host.py``: commands, log tails, PID files, ports, the run-dir lock, owner-only files;
* ``kafka_wire.py``: the hand-written Kafka protocol client, SCRAM login, readiness checks;
* ``kafka_broker.py``: the broker process (jars, java, storage format, start/wait/stop);
* ``scram_users.py``, ``kafka_tls.py``, ``kafka_secure.py``: the secured broker's SCRAM
  users and passwords, its CA and certificates, and the broker with its commands;
* ``postgres.py``: the private PostgreSQL cluster.

They are imported as ``deploy.local.*`` both ways: by the tests and ``pipeline.py`` as
modules, and here when this file runs as a script (``python3 deploy/local/stack.py``, the
system Python, no virtualenv), for which the repository root is put on ``sys.path`` below.
The names other code imports from here are re-exported (``__all__``); new code imports
them from their own module.

Standard library only, this file and those modules: this runs before the project's
virtualenv may exist (``tests/unit/common/test_local_stack_modules.py`` checks both).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

if not __package__:  # run as a script: import the sibling modules as deploy.local.*
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from deploy.local.config import HOST, KAFKA_VERSION, Config, StackError
from deploy.local.host import say, stack_lock, status_line, warn
from deploy.local.kafka_broker import (
    PLAINTEXT_BROKER,
    KafkaLaunch,
    kafka_pid,
    kafka_start,
    kafka_stop,
    kafka_wait,
)
from deploy.local.kafka_secure import (
    cmd_down_secure,
    cmd_env_secure,
    cmd_status_secure,
    cmd_up_secure,
)
from deploy.local.kafka_tls import keytool_path, make_ca
from deploy.local.kafka_wire import (
    KafkaProtocolError,
    external_kafka_check,
    kafka_check,
    kafka_metadata,
    parse_bootstrap,
    secure_kafka_metadata,
)
from deploy.local.postgres import find_psql, pg_check, pg_pid, pg_stop, pg_up
from deploy.local.scram_users import (
    ADMIN_USER,
    PRINCIPALS_FILE,
    SUPER_USERS,
    principal_names,
    read_password,
)

__all__ = [
    # What other code imported from here before the split (its own module after it):
    "ADMIN_USER",  # (scram_users)
    "KAFKA_VERSION",  # (config)
    "PRINCIPALS_FILE",  # (scram_users)
    "SUPER_USERS",  # (scram_users)
    "Config",  # (config)
    "KafkaProtocolError",  # (kafka_wire)
    "StackError",  # (config)
    "build_parser",
    "kafka_check",  # (kafka_wire)
    "kafka_metadata",  # (kafka_wire)
    "keytool_path",  # (kafka_tls)
    "main",
    "make_ca",  # (kafka_tls)
    "parse_bootstrap",  # (kafka_wire)
    "principal_names",  # (scram_users)
    "read_password",  # (scram_users)
    "secure_kafka_metadata",  # (kafka_wire)
]


DEFAULT_TIMEOUT = 90.0


def wipe(cfg: Config) -> None:
    """Delete the local data dirs (servers must be stopped)."""
    for path in (cfg.kafka_dir, cfg.pg_dir):
        if path.exists():
            shutil.rmtree(path)
            say(f"reset: removed {path}")


def cmd_up(cfg: Config, args: argparse.Namespace) -> int:
    """Start whatever is not running and wait until both answer."""
    if args.secure:
        return cmd_up_secure(cfg, args)
    timeout: float = args.timeout
    with stack_lock(cfg):
        if args.reset:
            kafka_stop(cfg)
            pg_stop(cfg)
            wipe(cfg)
        launch: KafkaLaunch | None = None
        try:
            if cfg.external_kafka is None:
                launch = kafka_start(cfg, PLAINTEXT_BROKER)  # the JVM boots while postgres starts
            if cfg.external_database is None:
                pg_up(cfg, timeout, args.fast)
        except BaseException:
            if launch is not None and launch.proc is not None:
                warn(f"kafka: broker pid {launch.pid} left running; `stack.py down` stops it")
            raise
        if launch is not None:
            kafka_wait(cfg, launch, timeout, PLAINTEXT_BROKER)
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
    """Stop the local servers (harmless when already stopped); ``--secure``: the secured
    broker only."""
    if args.secure:
        return cmd_down_secure(cfg)
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


def cmd_status(cfg: Config, args: argparse.Namespace) -> int:
    """Print each server's state; exit 0 only if both answer."""
    if args.secure:
        return cmd_status_secure(cfg)
    lines = []
    all_up = True
    if cfg.external_kafka is not None:
        reason = external_kafka_check(cfg.external_kafka)
        lines.append(
            status_line(
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
        lines.append(status_line("kafka", reason is None, str(pid or "-"), cfg.bootstrap, note))
        all_up &= reason is None
    psql_bin = find_psql(cfg)
    if cfg.external_database is not None:
        reason = pg_check(psql_bin, cfg.external_database) if psql_bin else "psql not installed"
        lines.append(
            status_line(
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
            status_line("postgres", reason is None, pid_text, f"{HOST}:{cfg.pg_port}", note)
        )
        all_up &= reason is None
    for line in lines:
        print(line)
    return 0 if all_up else 1


def cmd_env(cfg: Config, args: argparse.Namespace) -> int:
    """Print shell ``export`` lines for the services and tests."""
    if args.secure:
        return cmd_env_secure(cfg, args)
    if args.principal:
        raise StackError("--principal goes with --secure")
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
    secure_help = (
        "the secured Kafka broker instead (SASL_SSL, SCRAM-SHA-512, ACLs; its own ports "
        "and run dir beside the plaintext stack)"
    )
    up.add_argument("--secure", action="store_true", help=secure_help)
    up.set_defaults(handler=cmd_up)
    down = sub.add_parser("down", help="stop both local servers")
    down.add_argument("--secure", action="store_true", help=secure_help)
    down.set_defaults(handler=cmd_down)
    stop = sub.add_parser("stop", help="stop one local server (fault tests); up restarts it")
    stop.add_argument("server", choices=("kafka", "postgres"))
    stop.add_argument("--kill", action="store_true", help="SIGKILL the broker (a crash)")
    stop.set_defaults(handler=cmd_stop)
    status = sub.add_parser("status", help="exit 0 only if both answer")
    status.add_argument("--secure", action="store_true", help=secure_help)
    status.set_defaults(handler=cmd_status)
    env = sub.add_parser("env", help="print export lines")
    env.add_argument("--secure", action="store_true", help=secure_help)
    env.add_argument(
        "--principal", help="with --secure: also log in as this principal (its password file)"
    )
    env.set_defaults(handler=cmd_env)
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
