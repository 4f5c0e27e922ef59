"""asyncpg pool and plain-SQL migrations, applied in order and recorded.

Migrations live in ``services/common/migrations/NNNN_name.sql``: one ordered history for
the one system of record. Each service applies pending ones at start-up under an advisory
lock, so four services starting together apply each file exactly once.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import asyncpg

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    #: A connection, whether taken from the pool or opened directly.
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]

#: Arbitrary constant key of the advisory lock that serialises migrations.
MIGRATION_LOCK_KEY = 0x6D617368  # "mash"


def migration_files() -> list[tuple[str, str]]:
    """(version, sql) of every shipped migration, in order of file name."""
    folder = resources.files("services.common") / "migrations"
    files = sorted((p for p in folder.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name)
    return [(Path(p.name).stem, p.read_text(encoding="utf-8")) for p in files]


async def apply_migrations(conn: Connection) -> list[str]:
    """Apply pending migrations in order; return the versions applied now."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    text PRIMARY KEY,
                checksum   text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
        done = {r["version"]: r["checksum"] for r in rows}
        for version, sql in migration_files():
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            if version in done:
                if done[version] != checksum:
                    # An applied migration must never change: add a new file instead.
                    raise RuntimeError(f"migration {version} was edited after being applied")
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)",
                    version,
                    checksum,
                )
            applied_now.append(version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    return applied_now


async def _keep_session(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """Release without asyncpg's default reset (``RESET ALL; UNLISTEN *; CLOSE ALL;
    SELECT pg_advisory_unlock_all()``): one round trip per batch and per relay cycle for
    session state the product never leaves behind (no SET, LISTEN, cursors or session
    locks outside the migrations, which unlock their own). asyncpg still rolls back a
    transaction left open."""


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 5) -> asyncpg.Pool:
    """A connection pool to the system of record, with migrations applied."""
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        reset=_keep_session,
        # asyncpg prepares every statement; after five runs PostgreSQL may switch a
        # prepared statement to a generic plan made without the ``= ANY($1)`` array or the
        # table's current size, and keep it for the connection's life: a batch lookup on a
        # table that has grown since turns into a sequential scan (seen in ``make bench``:
        # 10-20 ms per lookup). A custom plan per run costs far less with batches.
        server_settings={"plan_cache_mode": "force_custom_plan"},
    )
    async with pool.acquire() as conn:
        await apply_migrations(conn)
    return pool
