"""``mash db``: the system of record's schema and roles.

``migrate`` applies pending migrations as the migration role and then makes the group
roles' privileges exactly those of ``services/common/database_roles.yaml``
(:mod:`services.common.database_roles`); ``--dry-run`` prints the changes and makes none.
Services never run DDL: they refuse to start on a database this command has not brought
to their version. ``roles`` prints the README's role table (or rewrites it in a README).
:func:`register` adds the subcommand to ``mash``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import asyncpg

from mash.deadletters import CliHooks
from mash.errors import EXIT_OK, ToolError, connect_database
from services.common.database_roles import (
    MigrateError,
    MigrateReport,
    RolesError,
    RolesFile,
    load_roles,
    migrate,
    replace_readme_table,
    table,
)

DB_EXAMPLES = """\
examples:
  # what would change (pending migrations, owners, grants and revokes); changes nothing
  mash db migrate --dry-run
  # apply them (as a superuser, or a member of mash_migrator on a database it owns)
  MASH_DATABASE_URL=postgresql://mash_migrator_login@db.example:5432/mash?sslmode=verify-full \\
      mash db migrate
  # the README's role table, from services/common/database_roles.yaml
  mash db roles
  mash db roles --readme README.md

A second migrate changes nothing. Services do not migrate: started on a database behind
their release they stop with one line, schema_not_migrated missing=<versions> ...
"""


def register(commands: Any, hooks: CliHooks) -> None:
    """Add ``db {migrate,roles}`` to the ``mash`` subcommands."""
    parser = commands.add_parser(
        "db",
        help="migrate the database and apply the roles' grants",
        description="The system of record's schema and least-privilege roles.",
        epilog=DB_EXAMPLES,
        formatter_class=hooks.formatter_class,
    )
    actions = parser.add_subparsers(
        dest="db_command", metavar="<action>", parser_class=type(parser)
    )
    actions.required = True

    migrate_cmd = actions.add_parser(
        "migrate",
        help="apply pending migrations, then the roles file's grants exactly",
        description="Apply pending migrations as the migration role (which owns every"
        " table), then grant the group roles what services/common/database_roles.yaml says"
        " and revoke what it does not. Idempotent.",
        epilog=DB_EXAMPLES,
        formatter_class=hooks.formatter_class,
    )
    migrate_cmd.add_argument(
        "--database-url",
        metavar="DSN",
        help="PostgreSQL DSN to migrate (default: MASH_DATABASE_URL / DATABASE_URL)",
    )
    migrate_cmd.add_argument(
        "--dry-run", action="store_true", help="print the changes, change nothing"
    )
    migrate_cmd.add_argument(
        "--roles-file", type=Path, help="roles file (default: the shipped database_roles.yaml)"
    )
    migrate_cmd.add_argument("--json", action="store_true", help="the changes as JSON")
    migrate_cmd.set_defaults(handler=lambda args: _migrate(args, hooks))

    roles = actions.add_parser(
        "roles",
        help="print the README's role table",
        description="Print the role table made from services/common/database_roles.yaml.",
        formatter_class=hooks.formatter_class,
    )
    roles.add_argument("--readme", type=Path, help="rewrite the table in this README instead")
    roles.set_defaults(handler=_roles)


def _migrate(args: argparse.Namespace, hooks: CliHooks) -> int:
    doc = _load(args.roles_file)
    dsn = args.database_url or hooks.settings(args).database_url
    report = hooks.run(_migrate_dsn(dsn, doc, args.dry_run))
    if args.json:
        print(
            json.dumps(
                {
                    "dry_run": report.dry_run,
                    "migrations": report.migrations,
                    "changes": [str(c) for c in report.changes],
                }
            )
        )
        return EXIT_OK
    for line in report.lines():
        print(line)
    what = "would change" if report.dry_run else "changed"
    print(
        f"{'nothing to do' if not report.changed else what}: {len(report.migrations)}"
        f" migration(s), {len(report.changes)} role/owner/privilege change(s)"
    )
    return EXIT_OK


async def _migrate_dsn(dsn: str, doc: RolesFile, dry_run: bool) -> MigrateReport:
    conn = await connect_database(dsn)
    try:
        return await migrate(conn, doc, dry_run=dry_run)
    except (MigrateError, RuntimeError, asyncpg.PostgresError) as exc:
        raise ToolError(f"db migrate: {exc}") from None
    finally:
        await conn.close()


def _roles(args: argparse.Namespace) -> int:
    doc = _load(None)
    if args.readme is None:
        sys.stdout.write(table(doc))
        return EXIT_OK
    try:
        text = args.readme.read_text()
        args.readme.write_text(replace_readme_table(text, doc))
    except (OSError, RolesError) as exc:
        raise ToolError(str(exc)) from None
    print(f"rewrote the role table in {args.readme}")
    return EXIT_OK


def _load(path: Path | None) -> RolesFile:
    try:
        return load_roles(path) if path is not None else load_roles()
    except RolesError as exc:
        raise ToolError(str(exc)) from None
