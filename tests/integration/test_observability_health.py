"""Readiness names the dependency that is missing: a service whose database does not answer
is alive (/healthz 200) but not ready (/readyz 503 naming the database, mash_ready 0)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from deploy.local.pipeline import ServiceProcesses
from tests.support import Stack, free_port, isolated_world, wait_until

pytestmark = pytest.mark.integration


def get(port: int, path: str) -> tuple[int, str] | None:
    """(status, body) of GET ``path``, or None while nothing listens."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return None


async def test_a_service_without_its_database_is_alive_but_not_ready(
    stack: Stack, tmp_path: Path
) -> None:
    world = await isolated_world(stack)
    port = free_port()
    nowhere = f"postgresql://mash@127.0.0.1:{free_port()}/mash"  # nothing listens there
    processes = ServiceProcesses(
        {
            **world.env(),
            "DATABASE_URL": nowhere,
            "MASH_METRICS_PORT": str(port),
            "MASH_HEALTH_PROBE_SECONDS": "1",
        },
        run_dir=tmp_path,
    )
    processes.start("intake")
    try:
        verdict: dict[str, Any] = {}

        async def broker_checked() -> bool:
            nonlocal verdict
            answer = get(port, "/readyz")
            if answer is None:
                return False
            status, body = answer
            verdict = json.loads(body)
            assert status == (200 if verdict["status"] == "ok" else 503)
            checks = verdict["checks"]
            # Wait for a full round: broker measured and partitions assigned.
            return bool(checks["broker"]["ok"] and checks["consumer_assigned"]["ok"])

        await wait_until(broker_checked, timeout=90, what="intake to measure the broker")
        assert verdict["status"] == "failing"
        failing = {name for name, check in verdict["checks"].items() if not check["ok"]}
        assert failing == {"database"}
        assert verdict["checks"]["database"]["detail"] == "not connected yet"
        assert get(port, "/healthz") == (
            200,
            json.dumps(
                {"checks": {"event_loop": {"detail": "turning", "ok": True}}, "status": "ok"},
                sort_keys=True,
            ),
        )
        metrics = get(port, "/metrics")
        assert metrics is not None
        assert "mash_ready 0.0" in metrics[1]
        assert 'mash_health_check{check="database"} 0.0' in metrics[1]
        assert 'mash_health_check{check="broker"} 1.0' in metrics[1]
    finally:
        processes.stop_all()
