"""Least privilege and TLS in the real PostgreSQL: each service's role does what
services/common/database_roles.yaml grants and nothing else (no DDL, no other service's
table), a service refuses an unmigrated database, ``mash db migrate`` is exact and
idempotent, the roles file covers the migrated schema, and TLS verifies the server."""

from __future__ import annotations

import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from deploy.local.postgres_access import login_name, role_database_url
from services.common import database_roles
from services.common.database_roles import (
    RolesFile,
    coverage_problems,
    granted,
    schema_objects,
)
from services.common.db import SchemaNotMigrated, create_pool, shipped_versions
from tests.support import (
    MASH,
    REPO,
    Isolated,
    Stack,
    database_name,
    fetch,
    fetchval,
    fresh_database,
    isolated_world,
    local_stack_config,
    start_pipeline,
    wait_until,
)

pytestmark = pytest.mark.integration

ROLES = database_roles.load_roles()
#: How many tables the schema has.
TABLES = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"


@pytest.fixture(scope="module")
async def migrated(stack: Stack) -> str:
    """A database migrated with the grants (the superuser's DSN)."""
    if local_stack_config().external_database is not None:
        pytest.skip("the login users exist on the local stack only")
    return await fresh_database(stack)


def as_role(dsn: str, role: str, *, tls: bool = True) -> str:
    """The DSN of ``role``'s login user on the database of ``dsn``."""
    return role_database_url(local_stack_config(), role, database_name(dsn), tls=tls)


@pytest.fixture
async def notifications(migrated: str) -> AsyncIterator[asyncpg.Connection[asyncpg.Record]]:
    conn = await asyncpg.connect(as_role(migrated, "mash_notifications"))
    yield conn
    await conn.close()


@pytest.fixture
async def intake(migrated: str) -> AsyncIterator[asyncpg.Connection[asyncpg.Record]]:
    conn = await asyncpg.connect(as_role(migrated, "mash_intake"))
    yield conn
    await conn.close()


# ------------------------------------------------------------------- the file and schema


async def test_the_roles_file_names_every_table_and_sequence_of_the_migrated_schema(
    migrated: str,
) -> None:
    conn = await asyncpg.connect(migrated)
    try:
        assert coverage_problems(ROLES, await schema_objects(conn)) == []
    finally:
        await conn.close()


async def test_coverage_finds_a_table_missing_from_the_file_and_a_stale_one(
    stack: Stack,
) -> None:
    dsn = await fresh_database(stack)
    conn = await asyncpg.connect(dsn)
    try:
        # A new migration's table the file forgot, and a table the file names but which no
        # migration made.
        await conn.execute("CREATE TABLE forgotten_by_the_file (id int)")
        raw = ROLES.model_dump()
        raw["tables"]["no_such_table"] = "intake"
        stale = RolesFile.model_validate(raw)
        problems = coverage_problems(stale, await schema_objects(conn))
    finally:
        await conn.close()
    assert problems == [
        "table forgotten_by_the_file is not in the roles file",
        "roles file names table no_such_table, which does not exist",
    ]


async def test_every_object_belongs_to_the_migration_role(migrated: str) -> None:
    owners = await fetch(
        migrated,
        "SELECT DISTINCT pg_get_userbyid(relowner) AS owner FROM pg_class"
        " WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'v', 'S')",
    )
    assert [r["owner"] for r in owners] == [ROLES.migrator]


async def test_the_grants_in_the_database_are_exactly_the_files(migrated: str) -> None:
    conn = await asyncpg.connect(migrated)
    try:
        held = await granted(conn, ROLES.group_roles)
    finally:
        await conn.close()
    on_objects = {p for p in held if p.kind in ("table", "sequence")}
    assert on_objects == ROLES.privileges()


# ------------------------------------------------------------------------- refusals


async def test_a_service_cannot_read_a_table_it_has_no_grant_on(
    notifications: asyncpg.Connection[asyncpg.Record],
) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await notifications.fetch("SELECT * FROM contacts")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await notifications.fetch("SELECT * FROM audit_log")  # append-only for services


@pytest.mark.parametrize(
    "ddl",
    [
        "CREATE TABLE sneaky (id int)",
        "CREATE TEMPORARY TABLE sneaky (id int)",
        "ALTER TABLE feedback ADD COLUMN sneaky text",
        "DROP TABLE feedback",
        "TRUNCATE feedback",
        "CREATE INDEX sneaky ON feedback (contact_id)",
        "CREATE VIEW sneaky AS SELECT 1 AS one",
    ],
)
async def test_a_service_cannot_run_ddl_even_on_its_own_tables(
    notifications: asyncpg.Connection[asyncpg.Record], ddl: str
) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await notifications.execute(ddl)


async def test_the_cross_service_read_is_select_only(
    intake: asyncpg.Connection[asyncpg.Record],
) -> None:
    assert await intake.fetchval("SELECT count(*) FROM queue_items") == 0
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await intake.execute("UPDATE queue_items SET status = 'closed'")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await intake.execute("DELETE FROM queue_items")
    # Its own table: the privileges the file gives, no more (contacts: select, insert).
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await intake.execute("DELETE FROM contacts")


async def test_a_revoked_privilege_comes_back_and_a_stray_one_goes_with_migrate(
    migrated: str,
) -> None:
    conn = await asyncpg.connect(migrated)
    try:
        await conn.execute("REVOKE SELECT ON queue_items FROM mash_intake")
        await conn.execute("GRANT DELETE ON contacts TO mash_notifications")
        report = await database_roles.migrate(conn, ROLES)
        assert [str(c) for c in report.changes] == [
            "revoke DELETE on table contacts from mash_notifications",
            "grant SELECT on table queue_items to mash_intake",
        ]
        assert (await database_roles.migrate(conn, ROLES)).changed is False
    finally:
        await conn.close()


# ------------------------------------------------------------------- mash db migrate


def run_service(service: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``service`` as a process until it stops (it is expected to refuse)."""
    return subprocess.run(
        [*MASH[:1], "-m", f"services.{service}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def make_ca(directory: Path) -> Path:
    """A CA of our own: it signed nothing the server presents."""
    ca = directory / "other-ca.pem"
    request = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    subprocess.run(
        [
            "openssl",
            *request,
            "-keyout",
            str(directory / "other-ca.key"),
            "-out",
            str(ca),
            "-subj",
            "/CN=not the local CA",
        ],
        check=True,
        capture_output=True,
    )
    return ca


def mash_db(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MASH, "db", "migrate", "--database-url", dsn, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_mash_db_migrate_dry_run_changes_nothing_then_migrate_is_idempotent(
    stack: Stack,
) -> None:
    dsn = await fresh_database(stack, migrate=False)
    dry = mash_db(dsn, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would apply migration 0001_foundation" in dry.stdout
    assert await fetchval(dsn, TABLES) == 0  # the dry run created nothing

    first = mash_db(dsn)
    assert first.returncode == 0, first.stderr
    assert f"applied migration {shipped_versions()[-1]}" in first.stdout
    assert "grant SELECT on table queue_items to mash_intake" in first.stdout

    second = mash_db(dsn)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == (
        "nothing to do: 0 migration(s), 0 role/owner/privilege change(s)"
    )
    again = mash_db(dsn, "--dry-run")
    assert again.stdout.strip().startswith("nothing to do")


async def test_the_migrator_login_migrates_a_database_it_owns_over_tls_only(
    stack: Stack,
) -> None:
    cfg = local_stack_config()
    if cfg.external_database is not None:
        pytest.skip("the login users exist on the local stack only")
    dsn = await fresh_database(stack, migrate=False)
    name = database_name(dsn)
    conn = await asyncpg.connect(stack.dsn)
    try:
        await conn.execute(f'ALTER DATABASE "{name}" OWNER TO {ROLES.migrator}')
    finally:
        await conn.close()
    migrator_tls = role_database_url(cfg, ROLES.migrator, name)
    done = mash_db(migrator_tls)
    assert done.returncode == 0, done.stderr
    assert await fetchval(dsn, "SELECT count(*) FROM schema_migrations") == len(shipped_versions())
    # pg_hba.conf: the migrator's credentials are refused over a plain connection.
    plain = role_database_url(cfg, ROLES.migrator, name, tls=False) + "?sslmode=disable"
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError, match="no encryption"):
        await asyncpg.connect(plain)


# ------------------------------------------------------------- services do not migrate


async def test_create_pool_refuses_an_unmigrated_database_naming_what_is_missing(
    stack: Stack,
) -> None:
    dsn = await fresh_database(stack, migrate=False)
    with pytest.raises(SchemaNotMigrated) as refused:
        await create_pool(dsn)
    assert refused.value.missing == shipped_versions()
    assert await fetchval(dsn, TABLES) == 0


async def test_a_service_started_on_an_unmigrated_database_stops_with_one_line(
    stack: Stack, tmp_path: Path
) -> None:
    # No topics needed: the service stops before it looks for them.
    world = Isolated(stack, "tunmigrated.", await fresh_database(stack, migrate=False))
    proc = run_service("intake", world.env())
    assert proc.returncode == 2
    refusal = [line for line in proc.stderr.splitlines() if "schema_not_migrated" in line]
    assert len(refusal) == 1, proc.stderr
    match = re.fullmatch(
        r"intake: schema_not_migrated missing=(\S+) fix='run mash db migrate'", refusal[0]
    )
    assert match is not None, refusal[0]
    assert match.group(1).split(",") == shipped_versions()


async def test_the_pipeline_runs_each_service_as_its_own_role_over_tls(
    stack: Stack, tmp_path: Path
) -> None:
    if local_stack_config().external_database is not None:
        pytest.skip("the login users exist on the local stack only")
    world: Isolated = await isolated_world(stack)
    services = start_pipeline(world, tmp_path)
    try:
        logins = {
            login_name(f"mash_{s}") for s in ("intake", "screening", "routing", "notifications")
        }

        async def connected() -> list[asyncpg.Record] | None:
            rows = await fetch(
                world.dsn,
                "SELECT a.usename, s.ssl FROM pg_stat_activity a"
                " JOIN pg_stat_ssl s USING (pid) WHERE a.datname = current_database()"
                " AND a.usename <> current_user",
            )
            return rows if {r["usename"] for r in rows} == logins else None

        rows = await wait_until(connected, timeout=120, what="every service connected")
        assert rows is not None
        assert all(r["ssl"] for r in rows)
    finally:
        services.stop_all()


# ------------------------------------------------------------------------------ TLS


async def test_verify_full_with_the_local_ca_connects_over_tls(migrated: str) -> None:
    cfg = local_stack_config()
    pool = await create_pool(
        f"{migrated}?sslmode=verify-full&sslrootcert={cfg.pg_ca_file}", min_size=1, max_size=1
    )
    try:
        assert await pool.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    finally:
        await pool.close()


async def test_a_server_certificate_from_another_ca_is_refused(
    migrated: str, tmp_path: Path
) -> None:
    other_ca = make_ca(tmp_path)
    with pytest.raises(Exception, match="certificate verify failed"):
        await create_pool(
            f"{migrated}?sslmode=verify-full&sslrootcert={other_ca}", min_size=1, max_size=1
        )


async def test_plain_connections_still_work(migrated: str) -> None:
    conn = await asyncpg.connect(f"{migrated}?sslmode=disable")
    try:
        assert (
            await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") is False
        )
    finally:
        await conn.close()
