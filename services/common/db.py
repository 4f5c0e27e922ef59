"""asyncpg pool and plain-SQL migrations, applied in order and recorded.

Migrations live in ``services/common/migrations/NNNN_name.sql``: one ordered history for
the one system of record. Only ``mash db migrate`` applies them (under an advisory lock, as
the migration role, then the grants of ``database_roles.yaml``:
:mod:`services.common.database_roles`); a service runs no DDL: :func:`create_pool` checks
the schema is at the shipped version and refuses with :class:`SchemaNotMigrated` otherwise.
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


class SchemaNotMigrated(RuntimeError):
    """The database lacks migrations this release ships (or they cannot be read): one
    machine-readable line, ``schema_not_migrated missing=<v1>,<v2> ...``, naming the fix."""

    def __init__(self, missing: list[str], reason: str | None = None) -> None:
        self.missing = missing
        detail = f" reason={reason}" if reason else ""
        super().__init__(
            f"schema_not_migrated missing={','.join(missing) or '-'}{detail}"
            " fix='run mash db migrate'"
        )


def shipped_versions() -> list[str]:
    """The version of every shipped migration, in order."""
    return [version for version, _ in migration_files()]


async def missing_migrations(conn: Connection) -> list[str]:
    """Shipped migrations the database has not recorded as applied, in order."""
    if not await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
        return shipped_versions()
    done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
    return [version for version in shipped_versions() if version not in done]


async def require_migrated(conn: Connection) -> None:
    """Raise :class:`SchemaNotMigrated` unless every shipped migration is applied."""
    try:
        missing = await missing_migrations(conn)
    except asyncpg.InsufficientPrivilegeError:
        # A role without the grants of database_roles.yaml: the same fix applies them.
        raise SchemaNotMigrated(shipped_versions(), "no_select_on_schema_migrations") from None
    if missing:
        raise SchemaNotMigrated(missing)


async def _keep_session(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """Release without asyncpg's default reset (``RESET ALL; UNLISTEN *; CLOSE ALL;
    SELECT pg_advisory_unlock_all()``): one round trip per batch and per relay cycle for
    session state the product never leaves behind (no SET, LISTEN, cursors or session
    locks outside the migrations, which unlock their own). asyncpg still rolls back a
    transaction left open."""


async def create_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 5, migrate: bool = False
) -> asyncpg.Pool:
    """A connection pool to the system of record, whose schema is at the shipped version.

    Raises :class:`SchemaNotMigrated` when it is not. ``migrate=True`` applies pending
    migrations instead, as the connecting role (tests and tools on a scratch database;
    services never do: ``mash db migrate`` does, as the migration role, with the grants).
    """
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
    try:
        async with pool.acquire() as conn:
            if migrate:
                await apply_migrations(conn)
            else:
                await require_migrated(conn)
    except BaseException:
        await pool.close()
        raise
    return pool
