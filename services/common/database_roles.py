"""Least privilege in the system of record: the roles file (``database_roles.yaml``
beside this module), the privileges it stands for, and ``mash db migrate``'s work: apply
the migrations as the migration role, then make the roles' privileges exactly the file's.

The file is data, the database is made to match it: :func:`plan` compares what the file
grants with what the catalogue says (``aclexplode`` of each table, sequence, the schema and
the database) and lists the statements that close the gap, revoking whatever the file does
not grant to its roles (or to PUBLIC) and granting what it does. Applying the plan twice
changes nothing the second time.

Over 400 lines on purpose: the roles file, the catalogue's grants and the plan between them
are one comparison, read together.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import asyncpg
from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator

from services.common.db import MIGRATION_LOCK_KEY, apply_migrations, missing_migrations
from services.common.readme_tables import framed, replace_table
from services.common.yaml_files import load_yaml_model

if TYPE_CHECKING:
    from services.common.db import Connection

#: The roles file shipped with the code (``mash db migrate`` reads it in production too).
ROLES_FILE = Path(str(resources.files("services.common") / "database_roles.yaml"))
#: The schema the migrations create their objects in.
SCHEMA = "public"
#: Who may own a table: a service, the bookkeeping every service writes, or the migrations.
SERVICES = ("intake", "screening", "routing", "notifications")
Owner = Literal["intake", "screening", "routing", "notifications", "shared", "migrations"]
RoleService = Literal["intake", "screening", "routing", "notifications", "cli", "retention"]
TablePrivilege = Literal["select", "insert", "update", "delete"]
RoleName = Annotated[str, StringConstraints(pattern=r"^mash_[a-z][a-z0-9_]*$", max_length=63)]
ObjectName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=63)]
#: The PUBLIC pseudo-role, as plans name it.
PUBLIC = "PUBLIC"


class RolesError(ValueError):
    """The roles file is missing or invalid (one line, naming the file)."""


class DatabaseRole(BaseModel):
    """One group role and what it may do."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: RoleName
    service: RoleService
    about: str
    tables: dict[ObjectName, tuple[TablePrivilege, ...]] = {}
    reads: dict[ObjectName, str] = {}
    sequences: tuple[ObjectName, ...] = ()


class RolesFile(BaseModel):
    """The whole file: the migration role, every table and sequence with its owner, and
    the group roles. Validated for consistency: a role writes only its own service's and
    the shared tables, reads another's only under ``reads``, draws only from sequences of
    tables it inserts into."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    migrator: RoleName
    tables: dict[ObjectName, Owner]
    sequences: dict[ObjectName, ObjectName]
    roles: tuple[DatabaseRole, ...]

    @model_validator(mode="after")
    def _consistent(self) -> RolesFile:
        names = [r.role for r in self.roles]
        dupes = sorted({n for n in names if names.count(n) > 1} | ({self.migrator} & set(names)))
        if dupes:
            raise ValueError(f"roles listed twice (or also the migrator): {dupes}")
        for sequence, table in self.sequences.items():
            if table not in self.tables:
                raise ValueError(f"sequence {sequence} numbers {table}, which is not in tables")
        for role in self.roles:
            self._check_role(role)
        return self

    def _check_role(self, role: DatabaseRole) -> None:
        for table, privileges in role.tables.items():
            owner = self.tables.get(table)
            if owner is None:
                raise ValueError(f"{role.role}: {table} is not in tables")
            if owner == "migrations" and set(privileges) != {"select"}:
                raise ValueError(f"{role.role}: {table} belongs to the migrations: select only")
            if role.service == "retention" and owner != "migrations":
                # The purge job (mash purge) removes what has outlived its retention from
                # any service's tables; it may read, blank and delete, never add.
                if "insert" in privileges and table != "audit_log":
                    raise ValueError(f"{role.role}: the purge job inserts nothing but audit")
            elif owner not in (role.service, "shared", "migrations"):
                raise ValueError(
                    f"{role.role}: {table} is {owner}'s; another service's table goes under"
                    " reads (select only), with why"
                )
            if len(set(privileges)) != len(privileges) or not privileges:
                raise ValueError(f"{role.role}: {table}: privileges empty or repeated")
        for table in role.reads:
            owner = self.tables.get(table)
            if owner is None:
                raise ValueError(f"{role.role}: reads {table}, which is not in tables")
            if owner not in SERVICES or owner == role.service:
                raise ValueError(f"{role.role}: reads is for another service's table, not {table}")
        for sequence in role.sequences:
            numbers = self.sequences.get(sequence)
            if numbers is None:
                raise ValueError(f"{role.role}: sequence {sequence} is not in sequences")
            if "insert" not in role.tables.get(numbers, ()):
                raise ValueError(f"{role.role}: draws from {sequence} but inserts no {numbers}")

    @property
    def role_names(self) -> list[str]:
        """Every role the file names: the migration role, then the group roles."""
        return [self.migrator, *self.group_roles]

    @property
    def group_roles(self) -> list[str]:
        """The group roles, whose privileges :func:`plan` makes exactly the file's."""
        return [r.role for r in self.roles]

    def get(self, name: str) -> DatabaseRole:
        """The group role called ``name`` (KeyError when absent)."""
        for role in self.roles:
            if role.role == name:
                return role
        raise KeyError(name)

    def privileges(self) -> set[Privilege]:
        """Every privilege the file grants on tables, views and sequences."""
        out: set[Privilege] = set()
        for role in self.roles:
            for table, privileges in role.tables.items():
                out |= {Privilege(role.role, "table", table, p.upper()) for p in privileges}
            out |= {Privilege(role.role, "table", table, "SELECT") for table in role.reads}
            out |= {Privilege(role.role, "sequence", s, "USAGE") for s in role.sequences}
        return out


def load_roles(path: Path = ROLES_FILE) -> RolesFile:
    """Parse and validate the roles file; RolesError names what is wrong."""
    return load_yaml_model(path, RolesFile, RolesError, what="database roles")


# ----------------------------------------------------------------------- the catalogue


@dataclass(frozen=True, order=True)
class Privilege:
    """``grantee`` (a role, or PUBLIC) may do ``privilege`` on the ``kind`` named ``name``."""

    grantee: str
    kind: Literal["table", "sequence", "schema", "database"]
    name: str
    privilege: str


@dataclass(frozen=True)
class SchemaObject:
    """A table, view or sequence of the schema, with its owner."""

    name: str
    kind: Literal["table", "view", "sequence"]
    owner: str
    #: For a sequence: the table whose column owns it (it follows that table's owner).
    owned_by: str | None = None


@dataclass(frozen=True)
class Change:
    """One statement of a plan and what it does, in words."""

    sql: str
    what: str

    def __str__(self) -> str:
        return self.what


#: Tables, views and sequences of the schema, their owners, and a sequence's table.
OBJECTS_SQL = """
SELECT c.relname AS name,
       CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' ELSE 'table' END AS kind,
       pg_get_userbyid(c.relowner) AS owner,
       (SELECT t.relname FROM pg_depend d JOIN pg_class t ON t.oid = d.refobjid
         WHERE d.objid = c.oid AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
           AND d.refclassid = 'pg_class'::regclass LIMIT 1) AS owned_by
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
ORDER BY 1
"""

#: Every privilege granted on the schema's tables, views and sequences, the schema itself
#: and the current database (``acldefault`` stands in for a never-changed ACL).
GRANTED_SQL = """
SELECT CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE 'table' END AS kind, c.relname AS name,
       a.grantee, a.privilege_type
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
     aclexplode(coalesce(c.relacl, acldefault(
        CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))) a
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
UNION ALL
SELECT 'schema', n.nspname, a.grantee, a.privilege_type
FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
WHERE n.nspname = $1
UNION ALL
SELECT 'database', d.datname, a.grantee, a.privilege_type
FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
WHERE d.datname = current_database()
"""


async def schema_objects(conn: Connection) -> list[SchemaObject]:
    """The tables, views and sequences of the schema, in name order."""
    rows = await conn.fetch(OBJECTS_SQL, SCHEMA)
    return [SchemaObject(r["name"], r["kind"], r["owner"], r["owned_by"]) for r in rows]


async def granted(conn: Connection, grantees: Iterable[str]) -> set[Privilege]:
    """What ``grantees`` (role names; ``PUBLIC`` for everyone) hold now, granted directly."""
    wanted = set(grantees)
    oids = {
        r["oid"]: r["rolname"]
        for r in await conn.fetch(
            "SELECT oid, rolname FROM pg_roles WHERE rolname = ANY($1::text[])", list(wanted)
        )
    }
    if PUBLIC in wanted:
        oids[0] = PUBLIC
    rows = await conn.fetch(GRANTED_SQL, SCHEMA)
    return {
        Privilege(oids[r["grantee"]], r["kind"], r["name"], r["privilege_type"])
        for r in rows
        if r["grantee"] in oids
    }


async def existing_roles(conn: Connection, names: Iterable[str]) -> set[str]:
    """Which of ``names`` exist as roles in the cluster."""
    rows = await conn.fetch("SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[])", names)
    return {r["rolname"] for r in rows}


# ---------------------------------------------------------------------------- planning


def _quote(name: str) -> str:
    return name if name == PUBLIC else f'"{name}"'


def _on(kind: str, name: str) -> str:
    return f"{kind.upper()} {_quote(name)}" if kind != "table" else f"TABLE {_quote(name)}"


def wanted_privileges(
    doc: RolesFile, database: str, objects: Sequence[SchemaObject]
) -> set[Privilege]:
    """What the file grants the group roles and PUBLIC, on the objects that exist, plus
    CONNECT on the database and USAGE on the schema for every group role. (The migration
    role owns the objects: its rights are an owner's, never planned here.)"""
    present = {o.name for o in objects}
    wanted = {p for p in doc.privileges() if p.name in present}
    for role in doc.roles:
        wanted.add(Privilege(role.role, "database", database, "CONNECT"))
        wanted.add(Privilege(role.role, "schema", SCHEMA, "USAGE"))
    # PUBLIC keeps CONNECT on the database and USAGE on the schema (what PostgreSQL gives
    # every database): without a grant on a table they open nothing. It loses TEMPORARY
    # (temporary tables are DDL too) and anything on the product's objects.
    wanted.add(Privilege(PUBLIC, "database", database, "CONNECT"))
    wanted.add(Privilege(PUBLIC, "schema", SCHEMA, "USAGE"))
    return wanted


def privilege_changes(wanted: set[Privilege], current: set[Privilege]) -> list[Change]:
    """GRANT what ``wanted`` has and ``current`` lacks, REVOKE the opposite (revokes first)."""
    changes = [
        Change(
            f"REVOKE {p.privilege} ON {_on(p.kind, p.name)} FROM {_quote(p.grantee)}",
            f"revoke {p.privilege} on {p.kind} {p.name} from {p.grantee}",
        )
        for p in sorted(current - wanted)
    ]
    changes += [
        Change(
            f"GRANT {p.privilege} ON {_on(p.kind, p.name)} TO {_quote(p.grantee)}",
            f"grant {p.privilege} on {p.kind} {p.name} to {p.grantee}",
        )
        for p in sorted(wanted - current)
    ]
    return changes


def ownership_changes(doc: RolesFile, objects: Sequence[SchemaObject]) -> list[Change]:
    """Give the migration role every object another role owns (a sequence of a column
    follows its table)."""
    out = []
    for obj in objects:
        if obj.owner == doc.migrator or (obj.kind == "sequence" and obj.owned_by):
            continue
        keyword = {"table": "TABLE", "view": "VIEW", "sequence": "SEQUENCE"}[obj.kind]
        out.append(
            Change(
                f"ALTER {keyword} {_quote(obj.name)} OWNER TO {_quote(doc.migrator)}",
                f"owner of {obj.kind} {obj.name}: {obj.owner} -> {doc.migrator}",
            )
        )
    return out


def role_changes(doc: RolesFile, existing: set[str]) -> list[Change]:
    """Create the file's roles that do not exist (NOLOGIN: members log in, not the group)."""
    return [
        Change(f"CREATE ROLE {_quote(name)} NOLOGIN", f"create role {name} (NOLOGIN)")
        for name in doc.role_names
        if name not in existing
    ]


def coverage_problems(doc: RolesFile, objects: Sequence[SchemaObject]) -> list[str]:
    """Tables, views and sequences the schema has and the file does not name, and the
    reverse: each one is a grant forgotten (or a stale line)."""
    tables = {o.name for o in objects if o.kind != "sequence"}
    sequences = {o.name for o in objects if o.kind == "sequence"}
    problems = [f"table {t} is not in the roles file" for t in sorted(tables - set(doc.tables))]
    problems += [
        f"roles file names table {t}, which does not exist"
        for t in sorted(set(doc.tables) - tables)
    ]
    problems += [
        f"sequence {s} is not in the roles file" for s in sorted(sequences - set(doc.sequences))
    ]
    problems += [
        f"roles file names sequence {s}, which does not exist"
        for s in sorted(set(doc.sequences) - sequences)
    ]
    return problems


# ----------------------------------------------------------------------------- applying


@dataclass
class MigrateReport:
    """What ``mash db migrate`` did (or, dry, would do)."""

    migrations: list[str]
    changes: list[Change]
    dry_run: bool

    @property
    def changed(self) -> bool:
        """Whether anything was (or would be) changed."""
        return bool(self.migrations or self.changes)

    def lines(self) -> list[str]:
        """One line per migration and change, in order."""
        verb = "would apply" if self.dry_run else "applied"
        out = [f"{verb} migration {v}" for v in self.migrations]
        prefix = "would " if self.dry_run else ""
        return out + [f"{prefix}{c.what}" for c in self.changes]


class MigrateError(RuntimeError):
    """``mash db migrate`` could not finish (one line: what, and why)."""


async def migrate(conn: Connection, doc: RolesFile, *, dry_run: bool = False) -> MigrateReport:
    """Apply pending migrations as the migration role, then the file's privileges exactly.

    ``conn`` logs in as a superuser, or as a member of the migration role on a database
    it owns. Everything runs under the migrations' advisory lock, so two runs at once
    apply each step once.
    """
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        return await _migrate_locked(conn, doc, dry_run)
    except asyncpg.InsufficientPrivilegeError as exc:
        user = await conn.fetchval("SELECT session_user")
        raise MigrateError(
            f"{user} may not do this ({exc}); migrate as a superuser, or as a member of"
            f" {doc.migrator} on a database {doc.migrator} owns"
        ) from None
    finally:
        await conn.execute("RESET ROLE")
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)


async def _migrate_locked(conn: Connection, doc: RolesFile, dry_run: bool) -> MigrateReport:
    database: str = await conn.fetchval("SELECT current_database()")
    changes = role_changes(doc, await existing_roles(conn, doc.role_names))
    pending = await missing_migrations(conn)
    if dry_run:
        objects = await schema_objects(conn)
        changes += ownership_changes(doc, objects)
        changes += await _migrator_schema_changes(conn, doc)
        wanted = wanted_privileges(doc, database, objects)
        current = await granted(conn, [*doc.group_roles, PUBLIC])
        changes += privilege_changes(wanted, current)
        return MigrateReport(pending, changes, dry_run=True)
    await _run(conn, changes)
    # The migration role must own what exists (an older release's tables, owned by
    # whoever ran them) and may create in the schema before it migrates.
    prepare = ownership_changes(doc, await schema_objects(conn))
    prepare += await _migrator_schema_changes(conn, doc)
    await _run(conn, prepare)
    await conn.execute(f"SET ROLE {_quote(doc.migrator)}")
    applied = await apply_migrations(conn)
    await conn.execute("RESET ROLE")
    objects = await schema_objects(conn)
    wanted = wanted_privileges(doc, database, objects)
    grants = privilege_changes(wanted, await granted(conn, [*doc.group_roles, PUBLIC]))
    await _run(conn, grants)
    return MigrateReport(applied, [*changes, *prepare, *grants], dry_run=False)


async def _migrator_schema_changes(conn: Connection, doc: RolesFile) -> list[Change]:
    """USAGE and CREATE on the schema for the migration role, unless it holds them (it
    creates the objects); never a revoke: its other rights are an owner's."""
    rights = {Privilege(doc.migrator, "schema", SCHEMA, p) for p in ("USAGE", "CREATE")}
    return privilege_changes(rights, await granted(conn, [doc.migrator]) & rights)


async def _run(conn: Connection, changes: Sequence[Change]) -> None:
    if not changes:
        return
    async with conn.transaction():
        for change in changes:
            await conn.execute(change.sql)


# --------------------------------------------------------------------------- README table

TABLE_START = "<!-- database-roles-table:start (mash db roles --readme) -->"
TABLE_END = "<!-- database-roles-table:end -->"


def table(doc: RolesFile) -> str:
    """The README's role table (Markdown): one row per role, its own and shared tables
    with their privileges, and the reads of another service's tables."""

    def abbreviate(privileges: Sequence[str]) -> str:
        return "".join(
            p[0].upper() for p in ("select", "insert", "update", "delete") if p in privileges
        )

    rows = [
        "| role | service | tables (S select, I insert, U update, D delete)"
        " | reads of others' tables | sequences |",
        "| --- | --- | --- | --- | --- |",
    ]
    for role in doc.roles:
        own = ", ".join(f"`{t}` {abbreviate(p)}" for t, p in role.tables.items())
        reads = ", ".join(f"`{t}` ({doc.tables[t]})" for t in role.reads) or "—"
        sequences = ", ".join(f"`{s}`" for s in role.sequences) or "—"
        rows.append(f"| `{role.role}` | {role.service} | {own} | {reads} | {sequences} |")
    return "\n".join(rows) + "\n"


def readme_block(doc: RolesFile) -> str:
    """The table framed by the markers the README keeps it between."""
    return framed(TABLE_START, TABLE_END, table(doc))


def replace_readme_table(readme: str, doc: RolesFile) -> str:
    """``readme`` with the text between the table markers replaced by the current table."""
    return replace_table(readme, TABLE_START, TABLE_END, table(doc), RolesError)
