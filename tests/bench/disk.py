"""A private Kafka + PostgreSQL whose data live on disk, for the benchmark's on-disk row.

The local stack keeps its data under /dev/shm (memory). This one is the same script
(``deploy/local/stack.py``) with other ports and a run folder on disk, as the fault suite
starts its own (tests/faults/harness.py): PostgreSQL started by plain ``up`` (fsync on,
``synchronous_commit=on``), Kafka with its defaults (it leaves flushing to the OS).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import REPO, Stack

STACK_SCRIPT = REPO / "deploy/local/stack.py"
#: Ports of the on-disk stack (the local stack: 19092/54329; the fault suite: 29092/54339).
DISK_PORTS = {
    "MASH_KAFKA_PORT": "39092",
    "MASH_KAFKA_CONTROLLER_PORT": "39093",
    "MASH_PG_PORT": "54349",
}
DEFAULT_DISK_DIR = REPO / ".run/bench-disk"


@dataclass(frozen=True)
class DiskStack:
    """The on-disk stack's run folder; ``up`` starts it from empty data dirs."""

    run_dir: Path = DEFAULT_DISK_DIR
    ports: dict[str, str] = field(default_factory=lambda: dict(DISK_PORTS))

    def env(self) -> dict[str, str]:
        """Environment of the stack script for this stack (never an external server)."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")
        }
        return {**env, **self.ports, "MASH_RUN_DIR": str(self.run_dir)}

    def script(self, *args: str) -> None:
        """Run ``deploy/local/stack.py ARGS`` on this stack."""
        subprocess.run(
            [sys.executable, str(STACK_SCRIPT), *args],
            env=self.env(),
            check=True,
            timeout=300,
        )

    def up(self) -> Stack:
        """Start both servers on fresh data dirs (durable settings); wait until they answer."""
        self.script("up", "--reset")
        return Stack(
            f"127.0.0.1:{self.ports['MASH_KAFKA_PORT']}",
            f"postgresql://mash@127.0.0.1:{self.ports['MASH_PG_PORT']}/mash",
        )

    def down(self) -> None:
        """Stop both servers and delete their data."""
        try:
            self.script("down")
        finally:
            shutil.rmtree(self.run_dir, ignore_errors=True)
