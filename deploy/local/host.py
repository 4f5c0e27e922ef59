"""What the local stack needs of the machine it runs on: progress lines, commands, log
tails, PID files and ``/proc``, free ports, the run-dir lock and owner-only files.

Shared by the Kafka and PostgreSQL modules of ``deploy/local``; standard library only.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from deploy.local.config import HOST, Config, StackError


def say(message: str) -> None:
    """Print a progress line to stdout, immediately."""
    print(message, flush=True)


def warn(message: str) -> None:
    """Print a line to stderr, immediately."""
    print(message, file=sys.stderr, flush=True)


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


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (mode 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(text)


def private_dir(path: Path) -> Path:
    """Create ``path`` (mode 0700) if needed and return it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def ensure_password(path: Path) -> str:
    """The password kept in ``path``, generating a random one (0600) the first time."""
    with contextlib.suppress(FileNotFoundError):
        existing = path.read_text().strip()
        if existing:
            return existing
    private_dir(path.parent)
    # URL-safe characters only: nothing to escape in JAAS, --add-scram or a DSN.
    password = secrets.token_urlsafe(24)
    write_private(path, password)
    return password


def status_line(name: str, up: bool, pid: str, address: str, note: str) -> str:
    """One line of ``stack.py status``: name, state, pid, address and a note."""
    state = "up" if up else "down"
    return f"{name:<9} {state:<5} pid {pid:<9} {address:<22} {note}".rstrip()
