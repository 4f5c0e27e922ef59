"""``mash purge``: remove personal data from PostgreSQL once its retention has passed.

What goes, and what stays (the settings are in README "Configuration"):

- ``raw_payloads`` rows stored more than ``MASH_RAW_PAYLOAD_RETENTION_DAYS`` ago are
  deleted. They are intake's verbatim copy of each accepted inbound message: everything
  the sender sent, third-party details and narrative included. The contact's case record
  (contacts, children, decisions, queue items, audit) stays; it is not this job's to
  expire. Nothing reads a raw payload back: a dead-lettered message never has one
  (it was not accepted), and ``mash deadletters redrive`` re-sends from the dead-letter
  topic, so no redrive can be starved by this purge.
- A dead letter's contents (its published outbox row: the original key, value and
  headers, base64) are blanked once older than ``MASH_DEAD_LETTER_RETENTION_DAYS``; the
  ``dead_letters`` row (service, original topic, partition, offset, reason, errors, time)
  stays for the audit trail. Its errors name fields and rules, never the values
  (:func:`schemas.cloudevents.validate_data`). The dead-letter topic keeps the original
  for as long (``retention.ms``, ``mash topics --apply``): that copy is the one a redrive
  reads, so a dead letter nobody redrives within the window is gone from both.
- Every other published outbox row (an event already on Kafka: contacts, decisions,
  school notices...) has its value and headers blanked after
  ``MASH_OUTBOX_RETENTION_DAYS``. The row itself stays: its (topic, event id) keeps
  effects idempotent, and ``published_at`` stays readable. Unpublished rows are never
  touched: the relay still has to send them.

Work goes in batches of ``MASH_PURGE_BATCH_SIZE`` rows, one short transaction each
(``FOR UPDATE SKIP LOCKED``, walking the primary key), so a large backlog neither holds
long locks nor loads much into memory, and two runs at once share the rows instead of
waiting on each other. The cut-off is fixed at the start of a run (the database's clock).
A second run finds nothing left to do. Each run (not ``--dry-run``) writes one
``audit_log`` row (service ``mash-cli``, entity ``retention``, action ``purged``) with the
counts and cut-offs, never a value.

It connects as the retention job's own database role, ``mash_retention``
(``services/common/database_roles.yaml``: it may read, blank and delete expired rows and
write its audit row, nothing else), not as a service.

Scheduling: once a day is plenty. With cron, on a host that has the ``mash`` command and
``DATABASE_URL`` (a login of ``mash_retention``)::

    17 2 * * *  mash purge >> /var/log/mash-purge.log 2>&1

On Kubernetes, a CronJob running the services' image with that role's ``DATABASE_URL``
secret: ``schedule: "17 2 * * *"``, ``concurrencyPolicy: Forbid`` (overlapping runs are
safe, only wasteful), command ``["python", "-m", "mash", "purge"]``. A non-zero
exit (database unreachable) fails the Job, which the cluster's alerting on failed Jobs
reports.
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

from mash.deadletters import CliHooks
from mash.errors import EXIT_OK, ToolError, connect_database
from services.common.audit import AuditEntry, write_audit
from services.common.settings import Settings

#: ``audit_log`` coordinates of a purge run.
AUDIT_SERVICE = "mash-cli"
AUDIT_ENTITY = "retention"
AUDIT_ACTION = "purged"

if TYPE_CHECKING:
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record]


@dataclass(frozen=True)
class Target:
    """One kind of expiring data: how to find a batch of it, and what to do with it.

    ``pick`` selects (as ``key``) up to ``$3`` keys after ``$2`` in key order, of rows
    older than the cut-off ``$1``, locking them and skipping rows another run holds;
    ``act`` deletes or blanks the ``picked`` rows, returning one row each; ``count``
    counts what is due.
    """

    name: str
    verb: str
    setting: str
    key_type: str
    pick: str
    act: str
    count: str

    def retention_days(self, settings: Settings) -> int:
        """This target's retention in days."""
        days: int = getattr(settings, self.setting)
        return days


_DEAD_LETTER_ROW = "EXISTS (SELECT 1 FROM dead_letters d WHERE d.dead_letter_id = o.event_id)"
# Unpublished rows are the relay's; a blanked row has an empty value (that is what makes
# a second run find nothing).
_PUBLISHED_FULL = "o.published_at IS NOT NULL AND o.created_at < $1 AND octet_length(o.value) > 0"
_BLANK = """
    UPDATE outbox o SET value = ''::bytea, headers = '[]'::jsonb
    FROM picked WHERE o.id = picked.key
    RETURNING o.id
"""

TARGETS: tuple[Target, ...] = (
    Target(
        name="raw payloads",
        verb="deleted",
        setting="raw_payload_retention_days",
        key_type="text",
        pick="""
            SELECT contact_id AS key FROM raw_payloads
            WHERE stored_at < $1 AND contact_id > $2
            ORDER BY contact_id LIMIT $3 FOR UPDATE SKIP LOCKED
        """,
        act="""
            DELETE FROM raw_payloads r USING picked WHERE r.contact_id = picked.key
            RETURNING r.contact_id
        """,
        count="SELECT count(*) FROM raw_payloads WHERE stored_at < $1",
    ),
    Target(
        name="dead-letter contents",
        verb="blanked",
        setting="dead_letter_retention_days",
        key_type="bigint",
        pick=f"""
            SELECT o.id AS key FROM outbox o
            WHERE {_PUBLISHED_FULL} AND o.id > $2 AND {_DEAD_LETTER_ROW}
            ORDER BY o.id LIMIT $3 FOR UPDATE SKIP LOCKED
        """,
        act=_BLANK,
        count=f"SELECT count(*) FROM outbox o WHERE {_PUBLISHED_FULL} AND {_DEAD_LETTER_ROW}",
    ),
    Target(
        name="published event contents",
        verb="blanked",
        setting="outbox_retention_days",
        key_type="bigint",
        pick=f"""
            SELECT o.id AS key FROM outbox o
            WHERE {_PUBLISHED_FULL} AND o.id > $2 AND NOT {_DEAD_LETTER_ROW}
            ORDER BY o.id LIMIT $3 FOR UPDATE SKIP LOCKED
        """,
        act=_BLANK,
        count=f"SELECT count(*) FROM outbox o WHERE {_PUBLISHED_FULL} AND NOT {_DEAD_LETTER_ROW}",
    ),
)

#: Keyset start: below every key of its type.
_FIRST_KEY: dict[str, Any] = {"text": "", "bigint": -1}


@dataclass(frozen=True)
class Purged:
    """What one target's purge did (or, in a dry run, would do)."""

    target: Target
    days: int
    cutoff: datetime
    rows: int
    batches: int

    def line(self, dry_run: bool) -> str:
        """One line of the report."""
        verb = f"would be {self.target.verb}" if dry_run else self.target.verb
        return (
            f"{self.target.name}: {self.rows} {verb} (older than {self.days} days,"
            f" before {self.cutoff.isoformat(timespec='seconds')})"
        )


async def purge_target(
    conn: Connection, target: Target, cutoff: datetime, batch_size: int
) -> tuple[int, int]:
    """Delete or blank ``target``'s rows older than ``cutoff``, one transaction per batch;
    (rows, batches)."""
    # The next batch starts after the largest key picked, as the database orders keys
    # (its collation, not Python's): the walk reads each row once, however many expire.
    statement = (
        f"WITH picked AS ({target.pick}), acted AS ({target.act})"
        " SELECT (SELECT count(*) FROM acted) AS n, (SELECT max(key) FROM picked) AS last"
    )
    after: Any = _FIRST_KEY[target.key_type]
    rows = batches = 0
    while True:
        async with conn.transaction():
            result = await conn.fetchrow(statement, cutoff, after, batch_size)
        assert result is not None
        if result["last"] is None:
            return rows, batches
        rows += int(result["n"])
        batches += 1
        after = result["last"]


async def purge(
    conn: Connection,
    settings: Settings,
    *,
    dry_run: bool,
    actor: str = "system",
    targets: Sequence[Target] = TARGETS,
) -> list[Purged]:
    """Purge every target past its retention (``dry_run``: count only); one audit row
    per run that changes anything it finds, or nothing."""
    now: datetime = await conn.fetchval("SELECT now()")
    done = []
    for target in targets:
        days = target.retention_days(settings)
        cutoff = now - timedelta(days=days)
        if dry_run:
            rows, batches = int(await conn.fetchval(target.count, cutoff)), 0
        else:
            rows, batches = await purge_target(conn, target, cutoff, settings.purge_batch_size)
        done.append(Purged(target, days, cutoff, rows, batches))
    if not dry_run:
        detail = {
            p.target.setting: {
                "days": p.days,
                "cutoff": p.cutoff.isoformat(),
                p.target.verb: p.rows,
                "batches": p.batches,
            }
            for p in done
        }
        await write_audit(
            conn,
            AUDIT_SERVICE,
            [AuditEntry(AUDIT_ENTITY, str(uuid.uuid4()), AUDIT_ACTION, detail, actor=actor)],
        )
    return done


async def _run_purge(settings: Settings, *, dry_run: bool, actor: str) -> list[Purged]:
    conn = await connect_database(settings.database_url)
    try:
        return await purge(conn, settings, dry_run=dry_run, actor=actor)
    except asyncpg.PostgresError as exc:
        raise ToolError(f"purge failed: {type(exc).__name__}: {exc}") from exc
    finally:
        await conn.close()


PURGE_EXAMPLES = """\
examples:
  mash purge --dry-run          # what is past its retention
  mash purge                    # delete / blank it, in batches; audited
  MASH_RAW_PAYLOAD_RETENTION_DAYS=90 mash purge --by dpo-1

Schedule it daily (cron: 17 2 * * * mash purge; Kubernetes: a CronJob running
python -m mash purge). Safe to repeat and to run twice at once.
"""


def register(commands: Any, hooks: CliHooks) -> None:
    """Add ``purge`` to the ``mash`` subcommands."""
    parser = commands.add_parser(
        "purge",
        help="delete or blank personal data in PostgreSQL past its retention",
        description="Delete raw inbound payloads, and blank the contents of dead letters and"
        " published outbox events, once older than their retention settings"
        " (MASH_RAW_PAYLOAD_RETENTION_DAYS, MASH_DEAD_LETTER_RETENTION_DAYS,"
        " MASH_OUTBOX_RETENTION_DAYS), in bounded batches; DATABASE_URL says where.",
        epilog=PURGE_EXAMPLES,
        formatter_class=hooks.formatter_class,
    )
    parser.add_argument("--dry-run", action="store_true", help="count only, change nothing")
    parser.add_argument(
        "--by", default="system", metavar="ACTOR", help="who runs it (audited; default system)"
    )
    parser.add_argument("--json", action="store_true", help="the counts as JSON")

    def handle(args: argparse.Namespace) -> int:
        settings = hooks.settings(args)
        done = hooks.run(_run_purge(settings, dry_run=args.dry_run, actor=args.by))
        if args.json:
            print(
                json.dumps(
                    {
                        "dry_run": args.dry_run,
                        "purged": {
                            p.target.setting: {
                                "days": p.days,
                                "cutoff": p.cutoff.isoformat(),
                                "rows": p.rows,
                            }
                            for p in done
                        },
                    },
                    indent=2,
                )
            )
        else:
            for purged in done:
                print(purged.line(args.dry_run))
            if args.dry_run:
                print("dry run: nothing changed")
        return EXIT_OK

    parser.set_defaults(handler=handle)
