"""The ``mash`` command: replay, simulate, whatif and topics for developers and ops.

Exit codes: 0 done, 1 failed (broker unreachable, unreadable file...), 2 asked wrongly
(bad arguments, bad settings, a refused write, a command not available), 130 interrupted,
141 stdout closed by its reader. Every error is one line on stderr: ``mash: error:
<message>``. ``-`` as a file is stdin or stdout; ``--json`` prints JSON on stdout. Broker
address and topic prefix come from the one settings object (``KAFKA_BOOTSTRAP_SERVERS``,
``MASH_TOPIC_PREFIX``); ``--bootstrap-servers`` and ``--prefix`` override them for one run.
Every Kafka client connects as the services do: TLS and SASL from the same
``MASH_KAFKA_*`` variables (:mod:`services.common.kafka_security`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn, TypeVar

import structlog
from rich.console import Console
from rich.table import Table

from mash.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_OK,
    EXIT_USAGE,
    Interrupted,
    ToolError,
    UsageError,
)
from mash.inventory import inventory, product_topics
from mash.jsonl import to_line
from mash.naming import deployed
from mash.progress import make_progress
from mash.replay import (
    ReplayOptions,
    Selection,
    checkpoint_path_for,
    parse_instant,
    publish_records,
    run_replay,
)
from mash.simulate import ASSUMPTIONS, Summary, summarise
from mash.simulation import DEFAULT_START, SimulationRequest, generate, load_calibration
from mash.stdio import is_stdio
from mash.whatif import WhatIfRequest, run_whatif
from services.common.kafka_security import kafka_client_security
from services.common.metrics import build_version
from services.common.settings import Settings, SettingsError, load_settings
from services.common.topology import TopologyError, load_topology

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

T = TypeVar("T")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (UsageError, exit 2) instead of usage dumps."""

    def error(self, message: str) -> NoReturn:
        """Raise instead of printing the usage block."""
        raise UsageError(f"{message} (see {self.prog} --help)")

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        # argparse ignores a failed write; let main() see a closed stdout after --help or
        # --version as it does after any other output.
        if message:
            (file or sys.stderr).write(message)


class _Formatter(argparse.HelpFormatter):
    """Wraps one-paragraph descriptions; keeps multi-line examples exactly as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


_FORMATTER = _Formatter

REPLAY_EXAMPLES = """\
examples:
  # a topic to a file (all partitions, everything there now)
  mash replay --from-topic mash.contacts.v1 --to-file contacts.jsonl
  # part of partition 2 only (start offset included, end offset not)
  mash replay --from-topic mash.decisions.v1 --partition 2 --start-offset 100 \\
      --end-offset 200 --to-file decisions.jsonl
  # one morning, by broker timestamp (times without an offset are UTC)
  mash replay --from-topic mash.inbound.referrals.v1 --since 2026-01-05T08:00:00Z \\
      --until 2026-01-05T12:00:00Z --to-file morning.jsonl
  # a file back onto each record's own topic in a test world, 50 messages/s
  MASH_TOPIC_PREFIX=dev1. mash replay --from-file morning.jsonl --rate 50 --allow-inbound
  # production inbound into a developer's world (different prefixes each side)
  mash replay --from-topic mash.inbound.police-notifications.v1 --source-prefix '' \\
      --target-prefix dev1. --to-topic mash.inbound.police-notifications.v1 --allow-inbound
  # - is stdout for --to-file and stdin for --from-file: pipe records through other tools
  mash replay --from-topic mash.decisions.v1 --to-file - | wc -l
  # carry on after Ctrl-C or a crash: the same command with --resume
  mash replay --from-topic mash.contacts.v1 --to-file contacts.jsonl --resume

Writing into an inbound topic (mash.inbound.*, mash.practitioner-decisions.v1,
mash.queue-updates.v1, with any prefix) is refused without --allow-inbound: the services
act on every message there. Replaying events the services have seen changes nothing
(effects are keyed on event ids), so a replay is safe to repeat.
"""

SIMULATE_EXAMPLES = """\
examples:
  # one simulated week (about 1,000 contacts) into a file, then onto the local pipeline
  mash simulate --seed 7 --weeks 1 --start 2026-01-05 --to-file week.jsonl
  mash replay --from-file week.jsonl --allow-inbound
  # the same without the file (- is stdout; the summary then goes to stderr)
  mash simulate --seed 7 --count 50 --to-file - | mash replay --from-file - --allow-inbound
  # straight onto Kafka at 20 messages/s, 5% bad messages
  mash simulate --seed 7 --count 200 --bad-rate 0.05 --rate 20 --to-kafka
  # a capacity test on today's clock (deadlines run from now, not from a past week)
  mash simulate --start today --weeks 1 --rate 100 --to-kafka
  # a month with your own mix (a changed copy of mash/simulation.yaml), summary
  # as JSON
  mash simulate --weeks 4 --calibration my-mix.yaml --to-file month.jsonl --json

The same seed and options always give byte-identical messages.
"""

WHATIF_EXAMPLES = """\
examples:
  # your draft is a changed copy of a shipped rule set (services/screening/rulesets/)
  mash replay --from-topic mash.contacts.v1 --to-file contacts.jsonl
  mash whatif contacts.jsonl --candidate ./draft-rules.yaml
  mash whatif contacts.jsonl --baseline default-v3 --candidate ./draft-rules.yaml \\
      --csv moved.csv --json whatif.json
  # straight from the topic (- is stdin), the result as JSON on stdout
  mash replay --from-topic mash.contacts.v1 --to-file - \\
      | mash whatif - --candidate ./draft-rules.yaml --json
"""

TOPICS_EXAMPLES = """\
examples:
  mash topics
  MASH_TOPIC_PREFIX=t1a2b3c4. MASH_GROUP_SUFFIX=-t1a2b3c4 mash topics --json
"""


def _common(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: absent options must not overwrite values from the settings object.
    parser.add_argument(
        "--bootstrap-servers",
        default=argparse.SUPPRESS,
        help="Kafka brokers (default: KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:19092)",
    )
    parser.add_argument(
        "--prefix",
        default=argparse.SUPPRESS,
        help="topic prefix of the deployment (default: MASH_TOPIC_PREFIX, empty)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show the Kafka client's own warnings"
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``mash`` argument parser with its four subcommands."""
    parser = _Parser(
        prog="mash",
        description="Developer tooling for mash-router: replay, simulate, whatif, topics,"
        " deadletters, purge.",
        epilog="Run 'mash <command> --help' for a command's options and examples. A file"
        " named - is stdin or stdout. Exit codes: 0 done, 1 failed, 2 asked wrongly,"
        " 130 interrupted, 141 stdout closed by its reader.",
    )
    parser.add_argument("--version", action="version", version=f"mash {build_version()}")
    commands = parser.add_subparsers(dest="command", metavar="<command>", parser_class=_Parser)
    commands.required = True

    replay = commands.add_parser(
        "replay",
        help="copy records between topics and JSONL files",
        description="Copy Kafka records (keys, values and headers, byte for byte) from a"
        " topic or JSONL file to a topic or JSONL file, by offset or time range,"
        " rate-limited and resumable.",
        epilog=REPLAY_EXAMPLES,
        formatter_class=_FORMATTER,
    )
    _common(replay)
    source = replay.add_mutually_exclusive_group(required=True)
    source.add_argument("--from-topic", metavar="TOPIC", help="read this topic")
    source.add_argument(
        "--from-file", metavar="FILE", type=Path, help="read this JSONL file (-: stdin)"
    )
    target = replay.add_mutually_exclusive_group()
    target.add_argument(
        "--to-topic",
        metavar="TOPIC",
        help="write to this topic (a file source without it: each record to its own topic)",
    )
    target.add_argument(
        "--to-file", metavar="FILE", type=Path, help="write a JSONL file (-: stdout)"
    )
    pick = replay.add_argument_group("what to copy")
    pick.add_argument(
        "--partition", type=int, action="append", metavar="N", help="only this partition"
    )
    pick.add_argument("--start-offset", type=int, metavar="N", help="first offset (included)")
    pick.add_argument("--end-offset", type=int, metavar="N", help="end offset (not included)")
    pick.add_argument("--since", metavar="TIME", help="broker timestamp from (included)")
    pick.add_argument("--until", metavar="TIME", help="broker timestamp to (not included)")
    pick.add_argument("--max-messages", type=int, metavar="N", help="stop after copying N")
    how = replay.add_argument_group("how to write")
    how.add_argument("--rate", type=float, metavar="MSG_PER_S", help="at most this many a second")
    how.add_argument(
        "--allow-inbound", action="store_true", help="allow writing into an inbound topic"
    )
    how.add_argument(
        "--keep-partitions",
        action="store_true",
        help="write each record to its original partition number (default: by key)",
    )
    how.add_argument(
        "--keep-timestamps",
        action="store_true",
        help="keep the records' timestamps (default: the broker's clock)",
    )
    how.add_argument("--source-prefix", help="topic prefix of the source (default: --prefix)")
    how.add_argument("--target-prefix", help="topic prefix of the target (default: --prefix)")
    how.add_argument("--create-topics", action="store_true", help="create a missing target topic")
    how.add_argument("--overwrite", action="store_true", help="replace an existing target file")
    resume = replay.add_argument_group("resuming")
    resume.add_argument(
        "--checkpoint",
        type=Path,
        metavar="FILE",
        help="checkpoint file (default: .mash-replay-<hash>.checkpoint.json here)",
    )
    resume.add_argument(
        "--resume", action="store_true", help="continue from the checkpoint of an earlier run"
    )
    replay.add_argument("--no-progress", action="store_true", help="no progress bar")
    replay.set_defaults(handler=_replay)

    simulate = commands.add_parser(
        "simulate",
        help="generate realistic synthetic traffic",
        description="Generate seeded, reproducible synthetic police notifications and"
        " referrals (with bad messages) about obviously fictional people, calibrated to"
        " the hub's figures, into a JSONL file or onto the inbound topics.",
        epilog=f"{ASSUMPTIONS}\n{SIMULATE_EXAMPLES}",
        formatter_class=_FORMATTER,
    )
    _common(simulate)
    out = simulate.add_mutually_exclusive_group(required=True)
    out.add_argument("--to-file", metavar="FILE", type=Path, help="write a JSONL file (-: stdout)")
    out.add_argument(
        "--to-kafka", action="store_true", help="publish to the inbound topics (with --prefix)"
    )
    simulate.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    simulate.add_argument(
        "--weeks", type=float, default=1.0, help="simulated period in weeks (default 1)"
    )
    simulate.add_argument(
        "--start",
        default=DEFAULT_START.date().isoformat(),
        metavar="TIME",
        help=f"start of the simulated period, or 'today' (default {DEFAULT_START.date()},"
        " a Monday; deadlines of a period long past are all breached at once)",
    )
    simulate.add_argument(
        "--count", type=int, help="number of contacts (default: the calibration's weekly volume)"
    )
    simulate.add_argument(
        "--bad-rate", type=float, help="bad messages per contact (default from the calibration)"
    )
    simulate.add_argument(
        "--rate", type=float, metavar="MSG_PER_S", help="publishing rate with --to-kafka"
    )
    simulate.add_argument(
        "--calibration", type=Path, help="calibration YAML (default: shipped; -: stdin)"
    )
    simulate.add_argument(
        "--topology", help="hub topology for addresses (default: MASH_TOPOLOGY, two-hubs)"
    )
    simulate.add_argument(
        "--keep-timestamps",
        action="store_true",
        help="with --to-kafka: stamp records with their simulated receive time (the broker"
        " refuses times far ahead, so not with --start today)",
    )
    simulate.add_argument(
        "--create-topics", action="store_true", help="create missing inbound topics"
    )
    simulate.add_argument("--overwrite", action="store_true", help="replace an existing file")
    simulate.add_argument(
        "--summary",
        choices=("table", "json", "none"),
        default="table",
        help="what to print on stdout afterwards (default table; stderr with --to-file -)",
    )
    simulate.add_argument(
        "--json",
        action="store_const",
        const="json",
        dest="summary",
        help="the summary as JSON (same as --summary json)",
    )
    simulate.add_argument("--no-progress", action="store_true", help="no progress bar")
    simulate.set_defaults(handler=_simulate)

    whatif = commands.add_parser(
        "whatif",
        help="compare two rule-set versions over a JSONL of contacts",
        description="Run a JSONL of contacts (from replay or simulate) through two rule-set"
        " versions and report the outcome matrix and the contacts that move. Touches"
        " neither Kafka nor the database.",
        epilog=WHATIF_EXAMPLES,
        formatter_class=_FORMATTER,
    )
    whatif.add_argument(
        "contacts", type=Path, help="JSONL of contacts or replay records (-: stdin)"
    )
    whatif.add_argument(
        "--baseline",
        default=Settings.model_fields["screening_rule_set"].default,
        help="rule set: shipped name or YAML path (default: the one screening applies)",
    )
    whatif.add_argument("--candidate", required=True, help="rule set: shipped name or YAML path")
    whatif.add_argument(
        "--json",
        type=Path,
        nargs="?",
        const=Path("-"),
        metavar="FILE",
        help="the result as JSON: on stdout instead of the report, or also into FILE",
    )
    whatif.add_argument(
        "--csv", type=Path, metavar="FILE", help="also write moved contacts as CSV (-: stdout)"
    )
    whatif.set_defaults(handler=_whatif)

    topics = commands.add_parser(
        "topics",
        help="list the product's topics, end offsets and consumer lag",
        description="List the product's topics (the catalogue and the hub queues of the"
        " active topology, under the prefix) with partition counts, end offsets and the lag"
        " of each mash-* consumer group. Fails (exit 1) when none of them exists under the"
        " prefix.",
        epilog=TOPICS_EXAMPLES,
        formatter_class=_FORMATTER,
    )
    _common(topics)
    topics.add_argument("--topology", help="hub topology (default: MASH_TOPOLOGY, two-hubs)")
    topics.add_argument("--json", action="store_true", help="JSON instead of the table")
    topics.set_defaults(handler=_topics)

    # mash deadletters: its options and handlers live in mash/deadletters.py,
    # which borrows this module's conventions (common options, settings, signals); so do
    # mash topics --apply (topic_configs.py), mash purge (retention.py) and mash db
    # (database.py).
    from mash import database, retention, topic_configs
    from mash.deadletters import CliHooks, register

    hooks = CliHooks(common=_common, settings=_settings, run=_run, formatter_class=_FORMATTER)
    register(commands, hooks)
    topic_configs.register(topics, hooks, listing=_topics)
    retention.register(commands, hooks)
    database.register(commands, hooks)  # mash db (migrate, roles)
    return parser


# --- helpers -------------------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "bootstrap_servers", None):
        overrides["KAFKA_BOOTSTRAP_SERVERS"] = args.bootstrap_servers
    if getattr(args, "prefix", None) is not None:
        overrides["topic_prefix"] = args.prefix
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        raise UsageError(f"bad settings: {exc}") from None


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine``; SIGTERM and Ctrl-C cancel it (so checkpoints are saved)."""

    async def guarded() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            return await coroutine
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    try:
        return asyncio.run(guarded())
    except (KeyboardInterrupt, asyncio.CancelledError):
        raise Interrupted("interrupted") from None


def _quiet_logs(verbose: bool) -> None:
    # aiokafka logs retries and metadata chatter as warnings, and the shared helpers log
    # through structlog to stdout; a CLI user wants clean stdout and one-line errors.
    level = logging.INFO if verbose else logging.CRITICAL
    logging.basicConfig(level=level, stream=sys.stderr)
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def _progress_enabled(args: argparse.Namespace) -> bool:
    return not args.no_progress and sys.stderr.isatty()


class _Console(Console):
    """A rich console that lets a closed stdout surface as BrokenPipeError."""

    def on_broken_pipe(self) -> None:
        # rich's own handling exits 1; main() owns that decision for every command.
        raise BrokenPipeError


def _report_stream(data_to_stdout: bool) -> IO[str]:
    """Where the human-readable report goes: stderr when stdout carries data (``-``)."""
    return sys.stderr if data_to_stdout else sys.stdout


# --- subcommands ---------------------------------------------------------------------------


def _replay(args: argparse.Namespace) -> int:
    settings = _settings(args)
    source_prefix = settings.topic_prefix if args.source_prefix is None else args.source_prefix
    target_prefix = settings.topic_prefix if args.target_prefix is None else args.target_prefix
    if args.from_topic is not None and args.to_topic is None and args.to_file is None:
        raise UsageError("a topic source needs --to-topic or --to-file (see mash replay --help)")
    for name in ("start_offset", "end_offset", "max_messages"):
        value = getattr(args, name)
        if value is not None and value < 0:
            raise UsageError(f"--{name.replace('_', '-')} must not be negative")
    if is_stdio(args.checkpoint):
        raise UsageError("--checkpoint must be a file: it is read back on --resume")
    selection = Selection(
        partitions=frozenset(args.partition) if args.partition else None,
        start_offset=args.start_offset,
        end_offset=args.end_offset,
        since_ms=parse_instant(args.since) if args.since else None,
        until_ms=parse_instant(args.until) if args.until else None,
        max_messages=args.max_messages,
    )
    options = ReplayOptions(
        bootstrap=settings.bootstrap_list,
        source_topic=deployed(args.from_topic, source_prefix) if args.from_topic else None,
        source_file=args.from_file,
        target_topic=deployed(args.to_topic, target_prefix) if args.to_topic else None,
        target_file=args.to_file,
        target_prefix=target_prefix,
        selection=selection,
        rate=args.rate,
        allow_inbound=args.allow_inbound,
        keep_partitions=args.keep_partitions,
        keep_timestamps=args.keep_timestamps,
        checkpoint=args.checkpoint,
        resume=args.resume,
        overwrite=args.overwrite,
        create_partitions=settings.partitions if args.create_topics else None,
        security=kafka_client_security(settings),
    )
    checkpoint = checkpoint_path_for(options)
    progress = make_progress(_progress_enabled(args))
    try:
        with progress:
            result = _run(run_replay(options, progress))
    except Interrupted:
        raise Interrupted(
            f"interrupted; checkpoint saved in {checkpoint}: add --resume to carry on"
        ) from None
    where = ", ".join(result.destinations) or str(args.to_file)
    state = "done" if result.complete else "stopped early (--resume to carry on)"
    print(
        f"copied {result.copied} records ({result.scanned} read) to {where}; {state};"
        f" checkpoint {result.checkpoint}",
        file=_report_stream(is_stdio(args.to_file)),
    )
    return EXIT_OK


def _print_summary(summary: Summary, how: str, stream: IO[str]) -> None:
    if how == "none":
        return
    if how == "json":
        print(json.dumps(summary.as_dict(), indent=2), file=stream)
        return
    console = _Console(file=stream)
    head = Table(title="simulated contacts", show_header=False)
    for label, value in (
        ("contacts", summary.contacts),
        ("police notifications", summary.police),
        ("referrals", summary.referrals),
        ("repeat contacts", summary.repeats),
        ("children named", summary.children),
        ("out of area", summary.out_of_area),
        ("no fixed abode", summary.no_fixed_abode),
    ):
        head.add_row(label, str(value))
    console.print(head)
    for title, counter in (
        ("by referral source (census code; 6 = police)", summary.by_source),
        ("police by incident type", summary.by_incident_type),
        ("domestic abuse by DASH risk", summary.by_dash_risk),
        ("by hub", summary.by_hub),
        ("bad messages by intended dead-letter reason", summary.bad_by_reason),
    ):
        table = Table(title=title)
        table.add_column("")
        table.add_column("count", justify="right")
        for key, count in counter.most_common():
            table.add_row(key, str(count))
        console.print(table)


def _simulate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    calibration = load_calibration(args.calibration)
    try:
        topology = load_topology(args.topology or settings.topology)
    except TopologyError as exc:
        raise UsageError(str(exc)) from None
    if args.start == "today":
        # Resolved here, at the edge: the generator itself never reads the clock.
        today = datetime.now(UTC).date()
        start = datetime(today.year, today.month, today.day, tzinfo=UTC)
    else:
        start = datetime.fromtimestamp(parse_instant(args.start) / 1000, tz=UTC)
    request = SimulationRequest(
        seed=args.seed,
        start=start,
        weeks=args.weeks,
        count=args.count,
        bad_rate=args.bad_rate,
    )
    if args.rate is not None and args.to_file is not None:
        raise UsageError("--rate applies to --to-kafka only")
    simulated = generate(request, calibration, topology)
    records = [s.record for s in simulated]
    if args.to_file is not None:
        _write_jsonl(args.to_file, records, overwrite=args.overwrite)
        where = "stdout" if is_stdio(args.to_file) else str(args.to_file)
    else:
        progress = make_progress(_progress_enabled(args))
        try:
            with progress:
                _run(
                    publish_records(
                        settings.bootstrap_list,
                        records,
                        prefix=settings.topic_prefix,
                        rate=args.rate,
                        keep_timestamps=args.keep_timestamps,
                        create_partitions=settings.partitions if args.create_topics else None,
                        progress=progress,
                        description="simulate",
                        security=kafka_client_security(settings),
                    )
                )
        except Interrupted:
            raise Interrupted("interrupted; some simulated messages were not published") from None
        where = f"Kafka ({settings.topic_prefix or 'no prefix'})"
    print(f"wrote {len(records)} messages to {where}", file=sys.stderr)
    _print_summary(summarise(simulated), args.summary, _report_stream(is_stdio(args.to_file)))
    return EXIT_OK


def _write_jsonl(path: Path, records: Sequence[Any], *, overwrite: bool) -> None:
    if is_stdio(path):
        for record in records:
            sys.stdout.write(to_line(record) + "\n")
        sys.stdout.flush()
        return
    if path.exists() and not overwrite:
        raise UsageError(f"{path} exists: add --overwrite to replace it")
    temporary = path.with_name(path.name + ".tmp")
    try:
        with temporary.open("w", encoding="utf-8") as handle:
            for record in records:
                handle.write(to_line(record) + "\n")
        os.replace(temporary, path)
    except OSError as exc:
        raise ToolError(f"cannot write {path} ({exc.strerror})") from None


def _whatif(args: argparse.Namespace) -> int:
    return run_whatif(
        WhatIfRequest(args.contacts, args.baseline, args.candidate, args.json, args.csv)
    )


def _topics(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        topology = load_topology(args.topology or settings.topology)
    except TopologyError as exc:
        raise UsageError(str(exc)) from None
    names = product_topics(settings.topic_prefix, topology.hub_ids)
    rows = _run(
        inventory(
            settings.bootstrap_list,
            names,
            group_suffix=settings.group_suffix,
            security=kafka_client_security(settings),
        )
    )
    if all(row.partitions is None for row in rows):
        # Usually a wrong prefix or broker, or services never started: not an empty table.
        raise ToolError(
            f"none of the product's {len(rows)} topics exists under prefix"
            f" {settings.topic_prefix!r} on {settings.kafka_bootstrap_servers}"
            " (check --prefix / MASH_TOPIC_PREFIX, or start the services: they create them)"
        )
    if args.json:
        print(
            json.dumps(
                {"prefix": settings.topic_prefix, "topics": [r.as_dict() for r in rows]},
                indent=2,
            )
        )
        return EXIT_OK
    table = Table(title=f"mash topics ({settings.topic_prefix or 'no prefix'})")
    table.add_column("topic")
    table.add_column("partitions", justify="right")
    table.add_column("end offsets", justify="right")
    table.add_column("consumer lag")
    for row in rows:
        if row.partitions is None:
            table.add_row(row.name, "-", "-", "[red]missing")
            continue
        lag = ", ".join(f"{g}: {n}" for g, n in sorted(row.lag.items())) or "-"
        table.add_row(row.name, str(row.partitions), str(row.messages_end), lag)
    _Console(width=200).print(table)
    return EXIT_OK


# --- entry point ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mash`` with ``argv`` (default: the process arguments); return the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        try:
            args = parser.parse_args(arguments)
            _quiet_logs(getattr(args, "verbose", False))
            code: int = args.handler(args)
            return code
        finally:
            # Flush here, not at exit, so a reader that went away is noticed below (also
            # after --help and --version, which exit from inside argparse).
            sys.stdout.flush()
    except ToolError as exc:
        print(f"mash: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except SettingsError as exc:  # the Kafka TLS material or a secret file does not load
        print(f"mash: error: bad settings: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # `mash topics --json | head -2`: the reader has what it wanted. Stop quietly, as a
        # tool killed by SIGPIPE would; stdout goes to /dev/null so the interpreter's own
        # flush at exit cannot raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE
