"""The benchmark's output: one table on stdout and the same figures as JSON."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import asyncpg

from deploy.local.pipeline import SERVICES
from deploy.local.stack import KAFKA_VERSION
from tests.bench import measure
from tests.bench.baseline import RelayResult
from tests.bench.passes import LatencyResult, PassResult, RssSample
from tests.support import REPO, Stack


def git_commit() -> str:
    """Short commit of the work tree, ``+dirty`` when it has uncommitted changes."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


async def environment(stack: Stack) -> dict[str, Any]:
    """The machine, the servers' versions and the commit measured."""
    conn = await asyncpg.connect(stack.dsn)
    try:
        pg_version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return {
        **measure.machine_info(),
        "kafka_version": KAFKA_VERSION,
        "postgresql_version": str(pg_version),
        "git_commit": git_commit(),
        "bootstrap": stack.bootstrap,
    }


def _num(value: float | int | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _ratio(result: PassResult | None, baseline: RelayResult | None) -> float | None:
    if result is None or baseline is None:
        return None
    return result.per_second / baseline.per_second


def _row(label: str, count: str, seconds: float, rate: float, ratio: float | None) -> str:
    return f"  {label:<44}{count:>14}{seconds:>9.1f}{rate:>12,.1f}{_num(ratio, 4):>10}"


def throughput_lines(
    baseline: RelayResult | None, passes: Sequence[tuple[str, PassResult | None]]
) -> list[str]:
    """Rows of the throughput table."""
    lines = [f"  {'throughput':<44}{'count':>14}{'seconds':>9}{'per second':>12}{'÷ relay':>10}"]
    if baseline is not None:
        lines.append(
            _row(
                "raw aiokafka relay, 4 hops (messages)",
                f"{baseline.messages:,}",
                baseline.seconds,
                baseline.per_second,
                1.0,
            )
        )
    for label, result in passes:
        if result is not None:
            lines.append(
                _row(
                    label,
                    f"{result.contacts:,}",
                    result.seconds,
                    result.per_second,
                    _ratio(result, baseline),
                )
            )
    return lines


def latency_lines(latency: LatencyResult) -> list[str]:
    """Rows of the latency table (milliseconds)."""
    lines = [
        f"  {'latency, ms (inbound publish -> event)':<40}{'contacts':>9}{'achieved/s':>11}"
        f"{'drain s':>8}   {'queue item p50/p95/p99':>24}   {'outcome p50/p95/p99':>24}"
    ]
    for w in latency.windows:
        stages = latency.stages[f"{w.rate:g}"]
        achieved = w.contacts / max(0.001, (w.handled_ms - w.first_ms) / 1000)
        cells = [
            "/".join(_num(stages[s][p]) for p in ("p50", "p95", "p99"))
            for s in ("queue_item", "outcome_feedback")
        ]
        lines.append(
            f"  {f'offered {w.rate:g} contacts/s':<40}{w.contacts:>9,}{achieved:>11,.1f}"
            f"{(w.handled_ms - w.last_ms) / 1000:>8.1f}   {cells[0]:>24}   {cells[1]:>24}"
        )
    return lines


def service_lines(result: PassResult) -> list[str]:
    """Per-service costs of one throughput pass."""
    per = 1000 / result.contacts
    n = result.contacts
    lines = [
        f"  {'per service (' + result.name + ')':<26}{'CPU s/1k contacts':>18}"
        f"{'peak RSS MB':>12}{'SQL stmts/contact':>18}{'of which pool reset':>20}"
        f"{'COMMITs/contact':>16}"
    ]
    for s in SERVICES:
        c = result.services[s]
        lines.append(
            f"  {s:<26}{c.cpu_seconds * per:>18.2f}{c.peak_rss_mb:>12.0f}"
            f"{_num(_per(c.statements, n), 1):>18}{_num(_per(c.pool_resets, n), 1):>20}"
            f"{_num(_per(c.commits, n), 2):>16}"
        )
    total_cpu = sum(c.cpu_seconds for c in result.services.values())
    resets = [c.pool_resets for c in result.services.values()]
    resets_total = None if None in resets else sum(r or 0 for r in resets) / n
    lines.append(
        f"  {'all four':<26}{total_cpu * per:>18.2f}{'':>12}"
        f"{_num(statements_per_contact(result), 1):>18}{_num(resets_total, 1):>20}"
    )
    tx = None if result.transactions is None else result.transactions / result.contacts
    lines.append(
        f"  transactions per contact (pg_stat_database, all four): {_num(tx, 2)};"
        f" machine CPU busy {result.machine_cpu_seconds:,.0f} s of"
        f" {result.seconds * (os.cpu_count() or 1):,.0f} s available"
        f" (services {total_cpu:,.0f} s; the rest: Kafka, PostgreSQL, this process, others)"
    )
    parts = cpu_ms_per_contact(result)
    lines.append(
        "  machine CPU ms per contact: "
        + ", ".join(f"{name} {ms:.2f}" for name, ms in parts.items())
        + f" (at 1,000 contacts/s, {os.cpu_count() or 1} cores give"
        f" {float(os.cpu_count() or 1):.2f} ms per contact in all)"
    )
    return lines


def cpu_ms_per_contact(result: PassResult) -> dict[str, float]:
    """Where the machine's CPU went, in ms per contact: the four services, PostgreSQL,
    Kafka, everything else (the publisher, this process), and the whole machine."""
    n = result.contacts
    services = sum(c.cpu_seconds for c in result.services.values())
    stack = result.stack_cpu_seconds
    known = services + sum(stack.values())
    return {
        "services": 1000 * services / n,
        "postgresql": 1000 * stack.get("postgresql", 0.0) / n,
        "kafka": 1000 * stack.get("kafka", 0.0) / n,
        "other": 1000 * max(0.0, result.machine_cpu_seconds - known) / n,
        "machine": 1000 * result.machine_cpu_seconds / n,
    }


def _per(value: int | None, contacts: int) -> float | None:
    return None if value is None else value / contacts


def statements_per_contact(result: PassResult) -> float | None:
    """SQL statements of all four services per contact (None without pg_stat_statements)."""
    counts = [c.statements for c in result.services.values()]
    if any(c is None for c in counts):
        return None
    return sum(c or 0 for c in counts) / result.contacts


def pass_json(result: PassResult | None) -> dict[str, Any] | None:
    """One pass as JSON."""
    if result is None:
        return None
    n = result.contacts
    return {
        "contacts": n,
        "seconds": round(result.seconds, 2),
        "contacts_per_s": round(result.per_second, 2),
        "cpu_seconds_per_1000_contacts": {
            s: round(c.cpu_seconds * 1000 / n, 3) for s, c in result.services.items()
        },
        "rss_mb": {s: round(c.peak_rss_mb, 1) for s, c in result.services.items()},
        "statements_per_contact": {
            s: None if c.statements is None else round(c.statements / n, 2)
            for s, c in result.services.items()
        },
        "commits_per_contact": {
            s: None if c.commits is None else round(c.commits / n, 3)
            for s, c in result.services.items()
        },
        "pool_reset_statements_per_contact": {
            s: None if c.pool_resets is None else round(c.pool_resets / n, 2)
            for s, c in result.services.items()
        },
        "transactions_per_contact": (
            None if result.transactions is None else round(result.transactions / n, 3)
        ),
        "machine_cpu_seconds": round(result.machine_cpu_seconds, 1),
        "cpu_ms_per_contact": {k: round(v, 3) for k, v in cpu_ms_per_contact(result).items()},
    }


def latency_json(latency: LatencyResult | None) -> dict[str, Any]:
    """Latency percentiles per rate and stage, with the windows' figures."""
    if latency is None:
        return {}
    out: dict[str, Any] = {}
    for w in latency.windows:
        key = f"{w.rate:g}"
        out[key] = {
            **{
                stage: {k: v if k == "n" or v is None else round(v, 1) for k, v in q.items()}
                for stage, q in latency.stages[key].items()
            },
            "contacts": w.contacts,
            "publish_seconds": round((w.last_ms - w.first_ms) / 1000, 1),
            "drain_seconds": round((w.handled_ms - w.last_ms) / 1000, 1),
        }
    return out


def write_json(path: Path, figures: Mapping[str, Any]) -> None:
    """Write ``figures`` to ``path`` (its folder created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


def memory_lines(samples: Sequence[RssSample], peaks: Mapping[str, float]) -> list[str]:
    """RSS at the start, the middle (half the contacts handled) and the end, and the peak."""
    total = samples[-1].handled
    middle = min(samples, key=lambda s: abs(s.handled - total / 2))
    lines = [
        f"  {'RSS MB':<16}{'start':>10}{'middle':>10}{'end':>10}{'peak':>10}"
        f"   (after 0 / {middle.handled:,} / {total:,} contacts)"
    ]
    for s in SERVICES:
        lines.append(
            f"  {s:<16}{samples[0].rss_mb[s]:>10.0f}{middle.rss_mb[s]:>10.0f}"
            f"{samples[-1].rss_mb[s]:>10.0f}{peaks[s]:>10.0f}"
        )
    return lines
