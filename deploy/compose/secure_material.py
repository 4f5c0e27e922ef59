"""The certificates and passwords of ``docker-compose.secure.yml``, made once into
``.run/compose-secure/`` (outside git) with the secured local stack's own functions:

* ``tls/``: a CA (``ca.p12``, its key, which no container sees; ``ca.pem``, what clients
  trust), the broker's key and certificate ``broker.p12`` (``CN=broker``, valid for
  ``kafka``, ``localhost`` and ``127.0.0.1``: clients always verify the host name, and in
  compose they reach the broker as ``kafka``), ``truststore.p12`` and ``store.password``;
* ``credentials/<user>.password``: one SCRAM-SHA-512 password per user, the ``admin`` and
  ``broker`` super users and every principal of ``deploy/security/principals.yaml``.

    python -m deploy.compose.secure_material            # needs Java's keytool
    python -m deploy.compose.secure_material --dir DIR  # elsewhere (then edit the overlay)

Existing files are kept, so running it again changes nothing; delete the folder (and the
broker's volume: ``docker compose ... down -v``) to start afresh.

File modes: the folders are 0700, so no other user of the host gets in; the files the
containers read are 0644, because compose bind-mounts file secrets with their host owner
and mode, and the containers run as other users (the broker as ``appuser``, the services
as uid 10001). The CA's key stays 0600. Standard library only, like ``deploy/local``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from deploy.local.config import StackError
from deploy.local.host import ensure_password, private_dir, say
from deploy.local.kafka_tls import keytool_path, make_broker_keystores, make_ca
from deploy.local.scram_users import scram_user_names

REPO = Path(__file__).resolve().parents[2]
#: Where docker-compose.secure.yml mounts its secrets from (relative to the repository).
DEFAULT_DIR = REPO / ".run" / "compose-secure"
#: The names the broker's certificate is valid for: its compose service name, and the host
#: addresses its published listener is reached on.
BROKER_NAMES = "dns:kafka,dns:localhost,ip:127.0.0.1"
TLS_FILES = ("ca.p12", "ca.pem", "broker.p12", "truststore.p12", "store.password")
#: Files no container mounts: they stay readable by their owner only.
PRIVATE_FILES = frozenset({"ca.p12"})


def ensure_material(folder: Path) -> list[str]:
    """Make the TLS files (all or nothing) and the missing passwords in ``folder``; return
    the SCRAM users it holds passwords for."""
    tls = private_dir(folder / "tls")
    credentials = private_dir(folder / "credentials")
    users = scram_user_names()
    for name in users:
        ensure_password(credentials / f"{name}.password")
    if not all((tls / name).is_file() for name in TLS_FILES):
        for leftover in tls.iterdir():  # a half-made set is made again
            leftover.unlink()
        tool = keytool_path()
        password = ensure_password(tls / "store.password")
        make_ca(tool, tls, password, "CN=mash-router compose CA,O=mash-router")
        make_broker_keystores(tool, tls, password, BROKER_NAMES)
        say(f"compose-secure: made a CA and the broker's certificate in {tls}")
    for path in [*tls.iterdir(), *credentials.iterdir()]:
        path.chmod(0o600 if path.name in PRIVATE_FILES else 0o644)
    return users


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m deploy.compose.secure_material",
        description="Make the TLS files and SCRAM passwords of docker-compose.secure.yml.",
    )
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"default {DEFAULT_DIR}")
    args = parser.parse_args(argv)
    try:
        users = ensure_material(args.dir.absolute())
    except StackError as exc:
        print(f"secure_material: {exc}", file=sys.stderr)
        return 1
    say(f"compose-secure: {len(users)} SCRAM users' passwords in {args.dir / 'credentials'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
