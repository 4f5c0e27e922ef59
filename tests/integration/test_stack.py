"""The local stack (deploy/local/stack.py) reports both servers up and exports their addresses.

The suite's conftest runs ``stack.py up`` first; these tests check what it left behind
through the same CLI that developers and CI use, plus one independent Kafka protocol
round trip with the script's own metadata client.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "deploy" / "local" / "stack.py"


def _stack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(STACK), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _load_stack() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mash_local_stack", STACK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _exports(text: str) -> dict[str, str]:
    result = {}
    for line in text.splitlines():
        assert line.startswith("export "), line
        name, _, value = line.removeprefix("export ").partition("=")
        result[name] = shlex.split(value)[0]
    return result


def test_status_reports_both_servers_up() -> None:
    proc = _stack("status")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    states = {}
    for line in proc.stdout.splitlines():
        name, state, *_ = line.split()
        states[name] = state
    assert states == {"kafka": "up", "postgres": "up"}, proc.stdout


def test_env_exports_both_addresses() -> None:
    proc = _stack("env")
    assert proc.returncode == 0, proc.stderr
    exports = _exports(proc.stdout)
    assert set(exports) == {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"}
    assert exports["DATABASE_URL"].startswith("postgresql://")
    assert ":" in exports["KAFKA_BOOTSTRAP_SERVERS"]
    for name, value in exports.items():
        if os.environ.get(name):  # servers started elsewhere are passed through unchanged
            assert value == os.environ[name]


def test_bootstrap_answers_a_metadata_request() -> None:
    stack = _load_stack()
    bootstrap = _exports(_stack("env").stdout)["KAFKA_BOOTSTRAP_SERVERS"]
    host, port = stack.parse_bootstrap(bootstrap)[0]
    brokers = stack.kafka_metadata(host, port, timeout=10.0)
    assert brokers, "metadata response lists no brokers"
    assert all(b.port > 0 and b.host for b in brokers)
