"""``mash whatif``: a thin wrapper over the screening what-if.

The what-if itself (two rule-set versions over a JSONL of contacts, the outcome matrix
and the contacts that move) belongs to screening: ``services/screening/whatif.py``. This
wrapper imports it only when the command is used, so every other ``mash`` command works
without it, and hands it the options ``mash whatif`` checked (its own command line:
``CONTACTS --baseline X --candidate Y [--json FILE] [--csv FILE]``).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from services.tools.errors import UsageError

#: The module that does the work, and the function it must offer: ``main(argv) -> int``.
WHATIF_MODULE = "services.screening.whatif"
ENTRY_POINT = "main"


def run_whatif(argv: Sequence[str]) -> int:
    """Run the screening what-if with ``argv``; UsageError (exit 2) if it is not there."""
    try:
        module = importlib.import_module(WHATIF_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name not in (WHATIF_MODULE, "services.screening"):
            raise  # the module exists but something it imports is missing: a real fault
        raise UsageError(
            f"whatif is not available in this build: {WHATIF_MODULE} is not installed"
        ) from None
    entry = getattr(module, ENTRY_POINT, None)
    if not callable(entry):
        raise UsageError(f"whatif is not available: {WHATIF_MODULE} has no {ENTRY_POINT}(argv)")
    result = entry(list(argv))
    return int(result or 0)
