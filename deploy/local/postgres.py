"""The local PostgreSQL: Debian's server binaries (installed with apt-get when missing and
we are root) running a private cluster in our own data directory (``<run dir>/postgres``,
never the system cluster), on 127.0.0.1 with trust auth, ``pg_stat_statements`` loaded,
and the ``mash`` role and database; ``psql`` for the readiness check (``select 1``). TLS,
pg_hba.conf and the login users of the product's roles: ``postgres_access.py``.

Run as the ``postgres`` OS user when invoked as root (initdb refuses root). Standard
library only (see ``stack.py``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from deploy.local.config import HOST, PG_DATABASE, PG_ROLE, Config, StackError
from deploy.local.host import (
    cmdline,
    pid_alive,
    print_tail,
    read_pid_file,
    require_free_port,
    run,
    say,
    warn,
)
from deploy.local.postgres_access import access_sql, prepare_access

PG_LIB_DIR = Path("/usr/lib/postgresql")  # Debian layout: <PG_LIB_DIR>/<major>/bin/postgres
PG_OS_USER = "postgres"
#: Loaded at server start: pg_stat_statements (postgresql-contrib, in Debian's postgresql-NN).
PG_PRELOAD = "pg_stat_statements"


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


def tls_check_url(cfg: Config) -> str:
    """The local database as the ``mash`` role over TLS verified against the local CA."""
    return f"{cfg.database_url}?sslmode=verify-full&sslrootcert={cfg.pg_ca_file}"


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
    # Certificate and pg_hba.conf before the server reads them (the reload below, for a
    # server that was already running).
    prepare_access(cfg)
    deadline = started + timeout
    reason: str | None = None
    setup_sql = ROLE_AND_DB_SQL + access_sql(cfg)
    while True:
        setup = psql(psql_bin, pg_admin_url(cfg), setup_sql)
        reason = (
            pg_check(psql_bin, cfg.database_url)
            if setup.returncode == 0
            else ((setup.stderr or setup.stdout).strip() or f"psql exit {setup.returncode}")
        )
        if reason is None:
            # TLS answers once the server has reloaded (asynchronous after pg_reload_conf).
            reason = pg_check(psql_bin, tls_check_url(cfg))
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
        say(f"postgres ready in {elapsed:.1f}s at {cfg.database_url} (pid {pid}, TLS on)")
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
