"""The container image's entry point: one image, every process of the product.

    podman run IMAGE intake|screening|routing|notifications   # a service worker
    podman run IMAGE lag-exporter                             # the consumer-lag exporter
    podman run IMAGE db migrate                               # a mash command: the mash CLI

Compose files and Kubernetes manifests are written against exactly this contract. The
chosen program replaces this process (``os.execv``), so as PID 1 it receives SIGTERM
itself and stops gracefully, with no shell or supervisor in between. Nothing here touches
the network or the disk: the image starts with no network until the program connects.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

#: The four service workers: ``services.<name>`` runs each.
SERVICES = ("intake", "screening", "routing", "notifications")
#: Processes beside the services, by the word that starts them: the module each one runs.
TOOLS = {"lag-exporter": "mash.lag_exporter"}
#: The ``mash`` CLI (``mash.cli:main``) as a module.
CLI_MODULE = "mash"
#: The ``mash`` CLI's commands. Kept here rather than read from its parser, whose imports
#: cost seconds before the exec; a unit test holds the two lists together.
MASH_COMMANDS = ("db", "deadletters", "purge", "replay", "simulate", "topics", "whatif")
#: Exit code of a call that asks for nothing the image runs (as ``mash`` uses it).
EXIT_USAGE = 2

_RUNS = {
    "|".join(SERVICES): "run that service worker",
    "|".join(TOOLS): "run the consumer-lag exporter",
    "<mash command> [options]": "run the mash CLI",
}
USAGE = (
    "\n".join(
        f"{'usage:' if n == 0 else '':6} <image> {words:<40} {what}"
        for n, (words, what) in enumerate(_RUNS.items())
    )
    + f"""
    mash commands: {", ".join(MASH_COMMANDS)}, or --help
    e.g. db migrate | topics --apply | simulate --count 50 --to-kafka

Settings come from the environment (KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL, MASH_*);
MASH_DATA_DIR (/var/lib/mash) must be writable, the rest of the image may be read-only.
"""
)


class UsageError(ValueError):
    """The arguments name nothing the image runs."""


def command_for(args: Sequence[str], python: str = sys.executable) -> list[str]:
    """The argv to exec for the container's arguments ``args``: a service worker, the lag
    exporter, or the ``mash`` CLI (a mash command or option first) with every argument
    passed on. UsageError when there are none (a container started without saying what to
    run) or the first names nothing the image runs (``intak``)."""
    if not args:
        raise UsageError("say which service or mash command to run")
    first, rest = args[0], list(args[1:])
    if first in SERVICES:
        return [python, "-m", f"services.{first}", *rest]
    if first in TOOLS:
        return [python, "-m", TOOLS[first], *rest]
    if first in MASH_COMMANDS or first.startswith("-"):
        return [python, "-m", CLI_MODULE, *args]
    raise UsageError(f"{first!r} is no service, no lag-exporter and no mash command")


def main(argv: Sequence[str] | None = None) -> int:
    """Replace this process with what the arguments name; print the usage and return 2
    when they name nothing."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        command = command_for(args)
    except UsageError as exc:
        print(f"{USAGE}\nerror: {exc}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)
    return 0  # not reached: execv returns only by raising


if __name__ == "__main__":
    raise SystemExit(main())
