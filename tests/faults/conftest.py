"""Fixtures of the fault suite: its private stack, and the table every scenario adds a row
to, printed at the end of the run (and kept in ``.run/faults/table.md``)."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.faults.harness import FaultStack, Pipeline
from tests.faults.tally import Row, markdown_table
from tests.support import REPO, Isolated, isolated_world

#: Rows of this run, in the order the scenarios ran.
FAULT_ROWS: list[Row] = []
RUN_DIR = REPO / ".run" / "faults"
TABLE_FILE = RUN_DIR / "table.md"


@pytest.fixture(scope="session")
def fault_stack() -> Iterator[FaultStack]:
    """A broker and a database of the suite's own, fresh, stopped at the end."""
    stack = FaultStack.up(reset=True)
    yield stack
    stack.down()


@pytest.fixture
async def world(fault_stack: FaultStack) -> Isolated:
    """Fresh topics, groups and database on the private stack, for one scenario."""
    return await isolated_world(fault_stack.as_stack)


@pytest.fixture
async def pipeline(world: Isolated, request: pytest.FixtureRequest) -> AsyncIterator[Pipeline]:
    """The scenario's workers; their logs stay in ``.run/faults/<scenario>/logs`` (the
    last run of each scenario) and their tails are printed when it fails."""
    run_dir = RUN_DIR / re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)
    shutil.rmtree(run_dir, ignore_errors=True)
    workers = Pipeline(world, run_dir)
    yield workers
    workers.stop_all()
    for tail in workers.log_tails():
        print(tail)


@pytest.fixture(scope="session")
def fault_rows() -> list[Row]:
    """Where scenarios put their row of the table."""
    return FAULT_ROWS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the fault table after the run and keep a copy."""
    if not FAULT_ROWS:
        return
    table = markdown_table(FAULT_ROWS)
    TABLE_FILE.parent.mkdir(parents=True, exist_ok=True)
    TABLE_FILE.write_text(table + "\n")
    terminalreporter.section("fault table")
    terminalreporter.write_line(table)
