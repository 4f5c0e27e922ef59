"""deploy/local/stack.py and its sibling modules keep working as a script on a bare Python.

``stack.py`` runs before the project's virtualenv may exist (``python3
deploy/local/stack.py up``), so it and the modules it imports (``deploy.local.config``,
``kafka_wire``, ``kafka_broker``, ``kafka_secure``, ``postgres``, ...) must need the
standard library only, and must import as ``deploy.local.*`` when run as a script.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
LOCAL = REPO / "deploy" / "local"
STACK = LOCAL / "stack.py"
#: Not part of the stack: it runs the services, from the virtualenv.
NOT_STACK = {"pipeline.py"}


def test_the_script_runs_with_the_standard_library_only(tmp_path: Path) -> None:
    # -I: no PYTHONPATH, no user site, script dir only; -S: no site-packages at all.
    # From another directory, so only stack.py's own path handling finds deploy.local.
    proc = subprocess.run(
        [sys.executable, "-I", "-S", str(STACK), "env", "--secure"],
        cwd=tmp_path,
        env={"MASH_RUN_DIR": str(tmp_path / "run"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "export MASH_KAFKA_SECURITY_PROTOCOL=SASL_SSL" in proc.stdout


def test_no_module_imports_the_script() -> None:
    # Run as a script, stack.py is __main__: a module importing deploy.local.stack would
    # load a second copy of it (with its own StackError).
    for path in sorted(LOCAL.glob("*.py")):
        if path.name in NOT_STACK | {"stack.py"}:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                names = [f"{node.module}.{alias.name}" for alias in node.names]
                names.append(node.module or "")
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            assert "deploy.local.stack" not in names, f"{path.name} imports deploy.local.stack"
