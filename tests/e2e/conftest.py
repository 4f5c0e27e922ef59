"""A whole pipeline (four real service processes) per test module, in an isolated world."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from deploy.local.pipeline import ServiceProcesses
from tests.support import Isolated, Stack, isolated_world, start_pipeline


@pytest.fixture(scope="module")
async def world(stack: Stack) -> Isolated:
    """Fresh topics and an empty database for this module."""
    return await isolated_world(stack)


@pytest.fixture(scope="module")
async def pipeline(
    world: Isolated, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServiceProcesses]:
    """The four services running against ``world``; their logs are printed if a test fails."""
    run_dir: Path = tmp_path_factory.mktemp("pipeline")
    services = start_pipeline(world, run_dir)
    yield services
    services.stop_all()
    for log in sorted((run_dir / "logs").glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-15:]
        print(f"--- {log.name} (last lines)", *tail, sep="\n")
