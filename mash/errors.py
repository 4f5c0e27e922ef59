"""The two ways a ``mash`` command fails, each with its exit code.

Both carry a one-line message; :func:`mash.cli.main` prints it on stderr and
exits with the code, so a script can tell "you asked wrongly" (2) from "it went wrong" (1).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
#: The reader of stdout went away (``mash topics --json | head -2``): 128 + SIGPIPE, what a
#: shell reports for any Unix tool the signal stopped, so ``set -o pipefail`` still sees
#: that the output was cut short.
EXIT_BROKEN_PIPE = 141


#: How long a client that failed to start may take to close.
CLOSE_AFTER_FAILED_START_SECONDS = 5.0


class ToolError(Exception):
    """Something failed at run time (broker unreachable, file unreadable): exit 1."""

    exit_code = EXIT_FAILURE


class UsageError(ToolError):
    """The command was asked for something it will not do as given: exit 2."""

    exit_code = EXIT_USAGE


class Interrupted(ToolError):
    """Ctrl-C or SIGTERM stopped the command (what was durable is kept): exit 130."""

    exit_code = EXIT_INTERRUPTED


async def start_client(client: Any, bootstrap: list[str]) -> None:
    """Start an aiokafka client (producer, consumer or admin); when the brokers do not
    answer, close it (bounded: a half-started client must not hang the command) and raise
    ToolError naming them, never the client's own traceback."""
    try:
        await client.start()
    except Exception as exc:
        with contextlib.suppress(Exception):
            close = getattr(client, "close", None) or client.stop
            await asyncio.wait_for(close(), CLOSE_AFTER_FAILED_START_SECONDS)
        raise ToolError(
            f"cannot reach Kafka at {','.join(bootstrap)} ({type(exc).__name__})"
        ) from exc


async def connect_database(dsn: str) -> asyncpg.Connection[asyncpg.Record]:
    """Connect to PostgreSQL for a ``mash`` command (bounded at 10 s); when it does not
    answer or refuses, raise ToolError naming the kind of failure, never the DSN (it may
    hold a password)."""
    try:
        conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(dsn, timeout=10)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise ToolError(f"cannot reach PostgreSQL at DATABASE_URL ({type(exc).__name__})") from exc
    return conn
