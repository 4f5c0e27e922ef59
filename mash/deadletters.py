"""``mash deadletters``: find, read, fix and redrive dead letters.

``list`` finds them, ``show`` decodes one (:mod:`mash.deadletter_view`),
``redrive`` re-publishes the original, or a corrected value, onto its original topic under a
new event id, audited in PostgreSQL (:mod:`mash.redrive`). :func:`register` adds
the subcommand to ``mash``.

What ``show`` and ``redrive --dry-run`` print is the hub's data (names, dates of birth,
narratives): the tool is for staff entitled to read it. Nothing of a message is ever
logged, and the audit holds ids, codes and a digest only.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from rich.console import Console

from mash.deadletter_view import (
    LetterFilter,
    detail,
    find,
    load,
    original_value,
    show_lines,
    summary,
    table,
)
from mash.errors import EXIT_OK, ToolError, UsageError
from mash.naming import deployed
from mash.redrive import (
    REDRIVABLE_UNCHANGED,
    RedriveRequest,
    parse_header_option,
    run_redrive,
    staff_id,
)
from mash.replay import parse_instant
from mash.stdio import is_stdio
from schemas.events import DeadLetterReason
from services.common.kafka_security import kafka_client_security
from services.common.settings import Settings
from services.common.topics import DEAD_LETTER

T = TypeVar("T")


# --- the command line ------------------------------------------------------------------


class Runner(Protocol):
    """How ``mash`` runs a coroutine (signals, interruption)."""

    def __call__(self, coroutine: Coroutine[Any, Any, T], /) -> T:
        """Run ``coroutine`` to completion."""
        ...


@dataclass(frozen=True)
class CliHooks:
    """What the ``mash`` entry point lends this subcommand."""

    common: Callable[[argparse.ArgumentParser], None]
    """Adds --bootstrap-servers, --prefix and --verbose."""
    settings: Callable[[argparse.Namespace], Settings]
    run: Runner
    formatter_class: type[argparse.HelpFormatter] = argparse.HelpFormatter


DEADLETTERS_EXAMPLES = """\
examples:
  # find: what is dead-lettered, by reason, sender, original topic or time
  mash deadletters list
  mash deadletters list --reason schema_violation --since 2026-01-05 --json
  # read one: its errors, headers and the original value
  mash deadletters show 1b4e28ba-2fa1-5d6e-9b0c-3c0d5a6f7e81
  # fix: take the value, correct it, send it back under a new event id
  mash deadletters show 1b4e28ba-2fa1-5d6e-9b0c-3c0d5a6f7e81 --raw-value > fixed.json
  mash deadletters redrive 1b4e28ba-2fa1-5d6e-9b0c-3c0d5a6f7e81 --payload fixed.json \\
      --by staff-1 --dry-run
  mash deadletters redrive 1b4e28ba-2fa1-5d6e-9b0c-3c0d5a6f7e81 --payload fixed.json --by staff-1
  # updates that arrived before the item they change: send them again as they are
  mash deadletters redrive --reason unknown_reference --by staff-1

show and redrive --dry-run print the hub's data (names, dates of birth, narratives): for
staff entitled to read it. Nothing of a message is logged; the audit (audit_log, entity
dead_letter) keeps ids, who and a digest.
"""

REDRIVE_EXAMPLES = """\
examples:
  mash deadletters redrive 1b4e28ba-2fa1-5d6e-9b0c-3c0d5a6f7e81 --payload fixed.json --by staff-1
  mash deadletters redrive 1b4e28ba-2fa1-5d6e-9b0c-3c0d5a6f7e81 --payload - \\
      --by staff-1 < fixed.json
  mash deadletters redrive 1b4e28ba-2fa1-5d6e-9b0c-3c0d5a6f7e81 \\
      --header ce_type=uk.gov.mash.referral.v1 --by staff-1
  mash deadletters redrive --reason invalid_transition \\
      --topic mash.queue-updates.v1 --by staff-1 --dry-run

The record goes back to its original topic with its key and headers, a new ce_id
(derived from the dead letter id and the attempt number; in structured mode the id in
the envelope) and the header mash_redrive_of: <dead letter id>. Running the same
redrive again sends nothing: the audit says it was done. A dead letter whose reason is
in the bytes (malformed_json, schema_violation, missing_header, too_large, unknown_type,
unsupported_version) is only redriven corrected (--payload, --header); unknown_reference
and invalid_transition may be redriven as they are. Every redrive is recorded in
audit_log (DATABASE_URL) with --by.
"""


def _reason(text: str) -> DeadLetterReason:
    try:
        return DeadLetterReason(text)
    except ValueError:
        known = ", ".join(r.value for r in DeadLetterReason)
        raise argparse.ArgumentTypeError(f"unknown reason {text!r}; one of {known}") from None


def _instant(text: str) -> datetime:
    return datetime.fromtimestamp(parse_instant(text) / 1000, tz=UTC)


def _read_payload(name: str) -> bytes:
    if is_stdio(name):
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as exc:
        raise ToolError(f"cannot read {name} ({exc.strerror})") from None


def register(commands: Any, hooks: CliHooks) -> None:
    """Add ``deadletters {list,show,redrive}`` to the ``mash`` subcommands."""
    parser = commands.add_parser(
        "deadletters",
        help="find, read, fix and redrive dead letters",
        description="Find, read, fix and redrive the messages services could not accept"
        " (topic mash.deadletter.v1). Prints the hub's data: for staff entitled to read it.",
        epilog=DEADLETTERS_EXAMPLES,
        formatter_class=hooks.formatter_class,
    )
    actions = parser.add_subparsers(
        dest="deadletters_command", metavar="<action>", parser_class=type(parser)
    )
    actions.required = True

    listing = actions.add_parser(
        "list",
        help="list dead letters, filtered",
        description="List the dead letters on the topic (re-sent copies once), oldest first.",
        epilog=DEADLETTERS_EXAMPLES,
        formatter_class=hooks.formatter_class,
    )
    hooks.common(listing)
    listing.add_argument(
        "--reason", type=_reason, action="append", default=[], help="this reason (repeatable)"
    )
    listing.add_argument(
        "--source",
        action="append",
        default=[],
        help="the original's ce_source (else its topic) (repeatable)",
    )
    listing.add_argument(
        "--topic", action="append", default=[], help="the original topic (repeatable)"
    )
    listing.add_argument("--since", type=_instant, metavar="TIME", help="dead-lettered from")
    listing.add_argument("--until", type=_instant, metavar="TIME", help="dead-lettered before")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")

    show = actions.add_parser(
        "show",
        help="show one dead letter decoded",
        description="Show one dead letter decoded: where the original was, the reason, every"
        " error, its headers and its value (as text when it is UTF-8, else base64). It"
        " prints the hub's data: for staff entitled to read it; nothing is logged.",
        epilog=DEADLETTERS_EXAMPLES,
        formatter_class=hooks.formatter_class,
    )
    hooks.common(show)
    show.add_argument("id", help="the dead letter id (from list)")
    shown = show.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="as one JSON object")
    shown.add_argument(
        "--raw-value", action="store_true", help="only the original value, bytes as they were"
    )

    redrive = actions.add_parser(
        "redrive",
        help="send dead letters back to their topic, as they were or corrected",
        description="Re-publish a dead letter's original record (or a corrected value or"
        " headers) to its original topic under a new event id, audited.",
        epilog=REDRIVE_EXAMPLES,
        formatter_class=hooks.formatter_class,
    )
    hooks.common(redrive)
    redrive.add_argument("id", nargs="?", help="the dead letter id (or --reason)")
    redrive.add_argument("--reason", type=_reason, help="every dead letter with this reason")
    redrive.add_argument("--topic", help="with --reason: only those from this original topic")
    redrive.add_argument("--by", required=True, metavar="STAFF_ID", help="who redrives (audited)")
    redrive.add_argument(
        "--payload", metavar="FILE", help="send this value instead ('-': standard input)"
    )
    redrive.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set this header (repeatable)",
    )
    redrive.add_argument("--dry-run", action="store_true", help="show what would be sent")

    def do_list(args: argparse.Namespace) -> int:
        settings = hooks.settings(args)
        topic = deployed(DEAD_LETTER, settings.topic_prefix)
        loaded = hooks.run(
            load(settings.bootstrap_list, topic, security=kafka_client_security(settings))
        )
        wanted = LetterFilter(
            reasons=frozenset(args.reason),
            sources=frozenset(args.source),
            topics=frozenset(deployed(t, settings.topic_prefix) for t in args.topic),
            since=args.since,
            until=args.until,
        )
        letters = [d for d in loaded.letters if wanted.accepts(d)]
        if loaded.unreadable:
            print(
                f"mash: note: {loaded.unreadable} records on {topic} are not dead letters;"
                " left out",
                file=sys.stderr,
            )
        if args.json:
            for letter in letters:
                print(json.dumps(summary(letter)))
            return EXIT_OK
        print(f"{topic}: {len(letters)} dead letters")
        # Rendered to text and printed like every other line, so a closed stdout reaches
        # mash's own handling instead of rich's. A terminal's width (long cells fold);
        # piped, wide enough not to fold ids.
        width = shutil.get_terminal_size().columns if sys.stdout.isatty() else 200
        rendered = io.StringIO()
        Console(file=rendered, width=width).print(table(letters))
        print(rendered.getvalue(), end="")
        return EXIT_OK

    def do_show(args: argparse.Namespace) -> int:
        settings = hooks.settings(args)
        topic = deployed(DEAD_LETTER, settings.topic_prefix)
        security = kafka_client_security(settings)
        letter = find(
            hooks.run(load(settings.bootstrap_list, topic, security=security)).letters, args.id
        )
        if letter is None:
            raise ToolError(f"no dead letter {args.id} on {topic}")
        if args.raw_value:
            value = original_value(letter)
            if value is None:
                raise ToolError(f"dead letter {args.id}: the original value was null")
            sys.stdout.buffer.write(value)
            sys.stdout.buffer.flush()
        elif args.json:
            print(json.dumps(detail(letter), indent=2))
        else:
            for line in show_lines(letter):
                print(line)
        return EXIT_OK

    def do_redrive(args: argparse.Namespace) -> int:
        if (args.id is None) == (args.reason is None):
            raise UsageError("give a dead letter id or --reason (not both)")
        if args.topic is not None and args.reason is None:
            raise UsageError("--topic applies to --reason only")
        if args.id is None and (args.payload is not None or args.header):
            raise UsageError("--payload and --header correct one dead letter: give its id")
        if args.reason is not None and args.reason not in REDRIVABLE_UNCHANGED:
            raise UsageError(
                f"refusing to redrive every {args.reason} dead letter unchanged: they fail"
                " again with the same bytes; correct each one with"
                " 'mash deadletters redrive ID --payload FILE'"
            )
        changes = tuple(parse_header_option(h) for h in args.header)
        by = staff_id(args.by)
        settings = hooks.settings(args)
        request = RedriveRequest(
            by=by,
            dead_letter_id=args.id,
            reason=args.reason,
            topic=None if args.topic is None else deployed(args.topic, settings.topic_prefix),
            payload=None if args.payload is None else _read_payload(args.payload),
            header_changes=changes,
            dry_run=args.dry_run,
        )
        hooks.run(run_redrive(settings, request, print))
        return EXIT_OK

    listing.set_defaults(handler=do_list)
    show.set_defaults(handler=do_show)
    redrive.set_defaults(handler=do_redrive)
