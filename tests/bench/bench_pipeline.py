"""Pipeline benchmark (``make bench``): prints a table and writes the same figures to
``.run/bench/latest.json``. It asserts nothing.

One run, on the local stack's broker and database (or those of KAFKA_BOOTSTRAP_SERVERS /
DATABASE_URL), measures:

a. **baseline** — a raw aiokafka relay of the pipeline's shape (tests/bench/baseline.py):
   four consume -> produce hops, ~1 KB messages, ``acks=all`` idempotent producers, one
   process. Messages a second from the first send to the last message on the last topic:
   the transport's ceiling on this machine.
b. **throughput** — ``--contacts`` simulated contacts (the project's simulator, ``mash
   simulate --start today``: police notifications and referrals about realistic
   households, plus its ~1% bad messages) published as fast as the broker takes them to
   the inbound topics of a fresh prefix, the four services already running and ready.
   Seconds from the first inbound record (its Kafka timestamp) to the last routing
   handled by notifications (``processed_events``: service notifications, topic
   mash.routed.v1, outcome not pending; the ``now()`` of its transaction), one per valid
   contact; contacts a second and the ratio to (a). Then the same with the traffic dated
   a year ago, as a replay of old records presents it (every statutory clock overdue).
c. **latency** — contacts offered at fixed rates (``--rates``, each for
   ``--latency-seconds``, paced, one after the other on one world, each drained before
   the next): for every queue item event on the hubs' queue topics and every outcome
   feedback event on mash.feedback.<agency>.v1 (``kind`` outcome, not acknowledgements), its Kafka
   record timestamp (stamped by the outbox relay's producer when it publishes) minus its
   ``mash-ingress-ms`` header (the publish timestamp of the inbound record behind it);
   p50/p95/p99 per rate and stage. One sample per event: a contact about three children
   gives three queue items; public referrers get no outcome feedback.
d. **per service**, during the throughput pass dated now: CPU seconds per 1,000 contacts
   (utime + stime from /proc/<pid>/stat), peak RSS (VmHWM), SQL statements per contact
   (pg_stat_statements, BEGIN/COMMIT included: each service connects as its own role,
   ``mash_bench_<service>``), explicit transactions (COMMITs) per contact, and all four's
   transactions per contact (pg_stat_database, the benchmark's own polls taken off).
e. **replay** — ``mash replay`` of that pass's inbound topics into a fresh prefix with the
   four services consuming it: contacts a second, counted like (b).
f. **on disk** — pass (b) again on a private stack started for the purpose
   (tests/bench/disk.py: data on disk, PostgreSQL fsync on and synchronous_commit=on,
   Kafka defaults), stopped and deleted at the end.

``--memory-contacts N`` runs only the memory soak instead: N contacts, each service's RSS
sampled periodically; prints start/middle/end/peak (and writes .run/bench/memory.json).

    python -m tests.bench.bench_pipeline [--contacts 20000] [--latency-seconds 60]
        [--rates 50,200] [--skip disk --skip replay ...] [--memory-contacts 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.bench import measure, report
from tests.bench.baseline import RelayResult, run_relay
from tests.bench.disk import DiskStack
from tests.bench.passes import (
    LatencyResult,
    PassResult,
    latency_pass,
    memory_pass,
    publishing,
    throughput_pass,
)
from tests.bench.traffic import Traffic, replay_inbound, simulate_historical, simulate_now
from tests.bench.world import BenchTimeout, BenchWorld, drop_world
from tests.support import REPO, Isolated, Stack, stack_up

OUT_DIR = REPO / ".run/bench"
WORK_DIR = OUT_DIR / "work"
STEPS = ("baseline", "historical", "latency", "replay", "disk")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--contacts", type=int, default=20_000, help="contacts per pass")
    parser.add_argument("--seed", type=int, default=7, help="simulation seed")
    parser.add_argument(
        "--latency-seconds", type=float, default=60.0, help="seconds each rate is offered"
    )
    parser.add_argument(
        "--rates", default="50,200", help="offered rates, contacts a second (comma-separated)"
    )
    parser.add_argument(
        "--timeout", type=float, default=420.0, help="seconds one pass may take to drain"
    )
    parser.add_argument(
        "--total-timeout",
        type=float,
        default=1800.0,
        help="seconds the whole run may take (default run; the memory soak: its own)",
    )
    parser.add_argument("--skip", action="append", choices=STEPS, default=[], help="skip a step")
    parser.add_argument("--output", type=Path, default=OUT_DIR / "latest.json")
    parser.add_argument(
        "--memory-contacts", type=int, help="run only the memory soak with this many contacts"
    )
    parser.add_argument(
        "--memory-sample-seconds", type=float, default=10.0, help="RSS sampling interval"
    )
    return parser.parse_args(argv)


def say(line: str = "") -> None:
    """Progress and results on stdout, at once."""
    print(line, flush=True)


async def run_default(args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    """Every step of the default run; returns the JSON figures."""
    stats = await measure.statements_available(stack.dsn)
    if not stats:
        say(
            "note: PostgreSQL runs without pg_stat_statements (started before stack.py"
            " loaded it): no SQL statement counts. `make stack-down stack` restarts it."
        )
    baseline: RelayResult | None = None
    if "baseline" not in args.skip:
        say(f"baseline: raw aiokafka relay of {args.contacts:,} messages ...")
        baseline = await run_relay(stack.bootstrap, args.contacts)
    say(f"throughput: {args.contacts:,} simulated contacts dated now ...")
    now_traffic = simulate_now(args.contacts, args.seed)
    now = await throughput_pass(
        stack,
        WORK_DIR,
        "dated now",
        now_traffic.contacts,
        publishing(now_traffic),
        timeout=args.timeout,
        stats=stats,
        keep="replay" not in args.skip,
    )
    replay: PassResult | None = None
    if "replay" not in args.skip:
        say("replay: mash replay of those inbound topics into a fresh prefix ...")
        replay = await _replay_pass(stack, now, args)
    historical: PassResult | None = None
    if "historical" not in args.skip:
        say(f"throughput: {args.contacts:,} simulated contacts dated a year ago ...")
        old = simulate_historical(args.contacts, args.seed)
        historical = await throughput_pass(
            stack,
            WORK_DIR,
            "dated a year ago",
            old.contacts,
            publishing(old),
            timeout=args.timeout,
            stats=stats,
        )
    latency: LatencyResult | None = None
    if "latency" not in args.skip:
        rates = [float(r) for r in args.rates.split(",") if r.strip()]
        say(
            f"latency: {', '.join(f'{r:g}' for r in rates)} contacts/s,"
            f" {args.latency_seconds:g} s each ..."
        )
        latency = await latency_pass(
            stack, WORK_DIR, rates, args.latency_seconds, seed=args.seed, timeout=args.timeout
        )
    disk: PassResult | None = None
    if "disk" not in args.skip:
        say("on disk: the throughput pass on a private stack with its data on disk ...")
        try:
            disk = await _disk_pass(now_traffic, args)
        except (subprocess.SubprocessError, OSError) as exc:  # its stack did not start
            say(f"on disk: skipped, the private stack failed: {exc}")
    return _figures(stack, baseline, now, historical, replay, disk, latency)


async def _replay_pass(stack: Stack, source: PassResult, args: argparse.Namespace) -> PassResult:
    """``mash replay`` of ``source``'s inbound topics into a fresh world; drops the source."""
    work = WORK_DIR / "replay-checkpoints"
    work.mkdir(parents=True, exist_ok=True)

    async def feed(bench: BenchWorld) -> None:
        await replay_inbound(stack.bootstrap, source.prefix, bench.world.prefix, work)

    try:
        return await throughput_pass(
            stack,
            WORK_DIR,
            "mash replay",
            source.contacts,
            feed,
            timeout=args.timeout,
            stats=False,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
        await drop_world(BenchWorld(Isolated(stack, source.prefix, _dsn_of(stack, source)), work))


def _dsn_of(stack: Stack, result: PassResult) -> str:
    return f"{stack.dsn.rsplit('/', 1)[0]}/{result.database}"


async def _disk_pass(traffic: Traffic, args: argparse.Namespace) -> PassResult:
    """The throughput pass on :class:`DiskStack`, started here and stopped after."""
    disk = DiskStack()
    try:
        stack = await asyncio.to_thread(disk.up)
        stats = await measure.statements_available(stack.dsn)
        return await throughput_pass(
            stack,
            WORK_DIR,
            "on disk",
            traffic.contacts,
            publishing(traffic),
            timeout=args.timeout,
            stats=stats,
        )
    finally:
        await asyncio.to_thread(disk.down)


def _figures(
    stack: Stack,
    baseline: RelayResult | None,
    now: PassResult,
    historical: PassResult | None,
    replay: PassResult | None,
    disk: PassResult | None,
    latency: LatencyResult | None,
) -> dict[str, Any]:
    """Print the table; return the same figures for the JSON file."""
    say()
    for line in report.throughput_lines(
        baseline,
        [
            ("pipeline, simulated contacts dated now", now),
            ("pipeline, dated a year ago", historical),
            ("mash replay into a fresh prefix", replay),
            ("pipeline on disk (fsync, sync commit)", disk),
        ],
    ):
        say(line)
    if latency is not None:
        say()
        for line in report.latency_lines(latency):
            say(line)
    say()
    for line in report.service_lines(now):
        say(line)
    ratio = None if baseline is None else now.per_second / baseline.per_second
    per = report.pass_json(now)
    assert per is not None
    return {
        "throughput_contacts_per_s": round(now.per_second, 2),
        "baseline_relay_msgs_per_s": None if baseline is None else round(baseline.per_second, 1),
        "ratio_to_baseline": None if ratio is None else round(ratio, 5),
        "latency_ms": report.latency_json(latency),
        "rss_mb": per["rss_mb"],
        "statements_per_contact": _round(report.statements_per_contact(now), 2),
        "statements_per_contact_by_service": per["statements_per_contact"],
        "cpu_seconds_per_1000_contacts": per["cpu_seconds_per_1000_contacts"],
        "transactions_per_contact": per["transactions_per_contact"],
        "historical_contacts_per_s": None
        if historical is None
        else round(historical.per_second, 2),
        "replay_contacts_per_s": None if replay is None else round(replay.per_second, 2),
        "on_disk_contacts_per_s": None if disk is None else round(disk.per_second, 2),
        "passes": {
            "now": per,
            "historical": report.pass_json(historical),
            "replay": report.pass_json(replay),
            "on_disk": report.pass_json(disk),
        },
        "baseline": None
        if baseline is None
        else {"messages": baseline.messages, "seconds": round(baseline.seconds, 2)},
    }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def memory_timeout(args: argparse.Namespace) -> float:
    """How long the memory soak may take to drain: at least 25 contacts a second."""
    return float(max(args.timeout, args.memory_contacts / 25))


async def run_memory(args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    """The memory soak alone; returns its JSON figures."""
    contacts: int = args.memory_contacts
    say(f"memory: {contacts:,} simulated contacts, RSS every {args.memory_sample_seconds:g} s ...")
    samples, peaks = await memory_pass(
        stack,
        WORK_DIR,
        contacts,
        seed=args.seed,
        chunk=20_000,
        every=args.memory_sample_seconds,
        timeout=memory_timeout(args),
    )
    say()
    for line in report.memory_lines(samples, peaks):
        say(line)
    return {
        "contacts": samples[-1].handled,
        "peak_rss_mb": {s: round(v, 1) for s, v in peaks.items()},
        "samples": [
            {"seconds": round(s.at, 1), "handled": s.handled, "rss_mb": s.rss_mb} for s in samples
        ],
    }


async def main_async(args: argparse.Namespace) -> int:
    """Run what was asked, print it, write the JSON."""
    started = datetime.now(UTC)
    clock = time.monotonic()
    stack = stack_up()
    shutil.rmtree(WORK_DIR, ignore_errors=True)
    env = await report.environment(stack)
    say(
        f"machine: {env['nproc']} CPUs ({env['cpu_model']}), {env['memory_gb']} GB,"
        f" kernel {env['kernel']}; Kafka {env['kafka_version']}, PostgreSQL"
        f" {env['postgresql_version']}; commit {env['git_commit']}"
    )
    if args.memory_contacts:
        figures = await run_memory(args, stack)
        output = args.output.with_name("memory.json")
    else:
        figures = await run_default(args, stack)
        output = args.output
    figures |= {
        "machine": env,
        "started_at": started.isoformat(timespec="seconds"),
        "wall_seconds": round(time.monotonic() - clock, 1),
        "options": {k: str(v) for k, v in vars(args).items()},
    }
    report.write_json(output, figures)
    shutil.rmtree(WORK_DIR, ignore_errors=True)  # kept only when a step failed: its logs
    say(f"\nfigures written to {output} ({figures['wall_seconds']:.0f} s in all)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    args = parse_args(argv)
    # The Kafka client's transient warnings (a leader not elected yet on a new topic) are
    # not results; a real failure ends a step by its timeout.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        limit = args.total_timeout
        if args.memory_contacts:
            limit = memory_timeout(args) + 600  # + generating traffic and start-up
        return asyncio.run(asyncio.wait_for(main_async(args), limit))
    except TimeoutError as exc:
        what = str(exc) or "the whole run took longer than allowed (--total-timeout)"
        print(f"bench: timed out: {what}", file=sys.stderr)
        return 1
    except BenchTimeout as exc:
        print(f"bench: timed out: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
