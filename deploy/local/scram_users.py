"""Who may log in to the secured broker, and with which password: its SCRAM-SHA-512
users (the ``admin`` and ``broker`` super users, plus one per principal of
``deploy/security/principals.yaml``), their generated passwords (``<run
dir>/secure/credentials/<principal>.password``, mode 0600, never in the repository), and
which users the broker already holds credentials for.

Only the principal names are read from the principals file, line by line (standard
library only, no YAML parser); the ACLs are applied by ``python -m deploy.security.acls
apply``, which parses the whole file. The TLS side of the secured broker is
``kafka_tls``; the broker itself and its commands are ``kafka_secure``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from deploy.local.config import Config, StackError
from deploy.local.kafka_wire import SCRAM_MECHANISM

#: The declarative principals file (deploy/security/principals.yaml). This module reads only
#: the principal names from it (``  - name: <principal>`` lines; the ACLs are applied by
#: ``python -m deploy.security.acls apply``, which parses the whole file).
PRINCIPALS_FILE = Path(__file__).resolve().parent.parent / "security" / "principals.yaml"
_PRINCIPAL_LINE = re.compile(r"^  - name: *([a-z][a-z0-9-]*) *(?:#.*)?$")
#: The super users of the secured broker (``super.users``): ``broker`` is the broker itself
#: (inter-broker SCRAM login, and the CN of its certificate on the controller listener),
#: ``admin`` the operator (topics, ACLs, SCRAM users). Neither may appear in the file.
ADMIN_USER = "admin"
BROKER_USER = "broker"
SUPER_USERS = (BROKER_USER, ADMIN_USER)


def principal_names(path: Path = PRINCIPALS_FILE) -> list[str]:
    """The principal names of the principals file, in file order (no YAML parser here)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise StackError(f"cannot read the principals file {path}: {exc}") from None
    names = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith(("- name:", "name:")):
            match = _PRINCIPAL_LINE.match(line)
            if match is None:
                raise StackError(
                    f"{path}:{number}: a principal is written `  - name: <lower-case-name>`"
                )
            names.append(match.group(1))
    clash = sorted({n for n in names if names.count(n) > 1} | (set(names) & set(SUPER_USERS)))
    if clash:
        raise StackError(f"{path}: duplicate or reserved principal names {clash}")
    if not names:
        raise StackError(f"{path} names no principal")
    return names


def scram_user_names(path: Path = PRINCIPALS_FILE) -> list[str]:
    """Every SCRAM user of the secured broker: the super users, then the file's principals."""
    return [*SUPER_USERS, *principal_names(path)]


def read_password(cfg: Config, principal: str) -> str:
    """The generated password of ``principal`` on the secured broker."""
    try:
        return cfg.password_file(principal).read_text().strip()
    except OSError as exc:
        raise StackError(f"no password for {principal}: {exc}") from None


def scram_format_args(cfg: Config) -> list[str]:
    """``--add-scram`` arguments of ``kafka-storage format``: every SCRAM user's password."""
    args = []
    for name in scram_user_names():
        password = read_password(cfg, name)
        args += ["--add-scram", f"{SCRAM_MECHANISM}=[name={name},password={password}]"]
    return args


def recorded_scram_users(cfg: Config) -> set[str]:
    """Users the secured broker was given credentials for (at format time or later)."""
    try:
        return set(cfg.scram_users_file.read_text().split())
    except OSError:
        return set()


def record_scram_users(cfg: Config, names: Sequence[str]) -> None:
    """Remember that the broker holds credentials for ``names``."""
    known = recorded_scram_users(cfg) | set(names)
    cfg.scram_users_file.write_text("".join(f"{n}\n" for n in sorted(known)))
