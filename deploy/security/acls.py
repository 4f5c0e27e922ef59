"""Apply the principals file to a secured Kafka: make the broker's ACLs exactly what
``deploy/security/principals.yaml`` says.

    python -m deploy.security.acls apply [--dry-run] [--prune]
    python -m deploy.security.acls show            # the bindings the file stands for
    python -m deploy.security.acls table           # the README's principal table
    python -m deploy.security.acls readme          # rewrite that table in README.md

``apply`` logs in as a super user (by default the ``admin`` of the local secured stack,
``python3 deploy/local/stack.py up --secure``; elsewhere ``--bootstrap-servers``,
``--ca-file``, ``--username`` and ``--password-file``), creates the ALLOW bindings the file
lists that the broker lacks, deletes every other binding of the file's principals, and
returns once the broker answers with exactly the file's bindings. ACLs of principals the
file does not name are reported and left alone, unless ``--prune`` (never on a cluster
other applications share). SCRAM users themselves are made by the platform (on the local
stack: ``stack.py up --secure``), not here.

aiokafka 0.14's admin client has no ACL calls, but ships the CreateAcls, DescribeAcls and
DeleteAcls (v1) request structures; they are sent over the admin client's own
(authenticated, TLS) connection.

One module, over 400 lines, on purpose: the file's bindings, the broker's and the difference
between them are read together when reviewing an ACL change; the wire structures it sends
are aiokafka's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import (
    CreateAclsRequest_v1,
    DeleteAclsRequest_v1,
    DescribeAclsRequest_v1,
)
from aiokafka.protocol.api import Request

from deploy.local import stack
from deploy.security.principals import (
    PRINCIPALS_FILE,
    Binding,
    PrincipalsError,
    PrincipalsFile,
    load,
    replace_readme_table,
    table,
)

README = Path(__file__).resolve().parents[2] / "README.md"

# Kafka's wire enums (org.apache.kafka.common.resource / acl).
RESOURCE_ANY, RESOURCE_TOPIC, RESOURCE_GROUP = 1, 2, 3
PATTERN_ANY, PATTERN_LITERAL, PATTERN_PREFIXED = 1, 3, 4
OPERATION_ANY = 1
PERMISSION_ANY, PERMISSION_DENY, PERMISSION_ALLOW = 1, 2, 3
RESOURCE_TYPES = {"topic": RESOURCE_TOPIC, "group": RESOURCE_GROUP}
PATTERN_TYPES = {"literal": PATTERN_LITERAL, "prefixed": PATTERN_PREFIXED}
OPERATIONS = {
    "all": 2,
    "read": 3,
    "write": 4,
    "create": 5,
    "delete": 6,
    "alter": 7,
    "describe": 8,
    "cluster_action": 9,
    "describe_configs": 10,
    "alter_configs": 11,
    "idempotent_write": 12,
}
_NAMES = {
    "resource": {v: k for k, v in {**RESOURCE_TYPES, "cluster": 4, "user": 7}.items()},
    "pattern": {v: k for k, v in PATTERN_TYPES.items()},
    "operation": {v: k for k, v in OPERATIONS.items()},
    "permission": {PERMISSION_DENY: "DENY", PERMISSION_ALLOW: "ALLOW"},
}
ANY_HOST = "*"
#: How long apply waits for the broker to show the ACLs it was asked to create/delete.
SETTLE_SECONDS = 30.0


class AclError(Exception):
    """The broker refused an ACL request (one line)."""


@dataclass(frozen=True, order=True)
class AclEntry:
    """One ACL as the broker holds it (wire enums)."""

    principal: str
    resource_type: int
    resource_name: str
    pattern_type: int
    operation: int
    permission: int = PERMISSION_ALLOW
    host: str = ANY_HOST

    @classmethod
    def allow(cls, binding: Binding) -> AclEntry:
        """The ALLOW entry (any host) a file binding stands for."""
        return cls(
            f"User:{binding.principal}",
            RESOURCE_TYPES[binding.resource_type],
            binding.resource_name,
            PATTERN_TYPES[binding.pattern_type],
            OPERATIONS[binding.operation],
        )

    def __str__(self) -> str:
        star = "*" if self.pattern_type == PATTERN_PREFIXED else ""
        host = "" if self.host == ANY_HOST else f" from {self.host}"
        return (
            f"{_NAMES['permission'].get(self.permission, self.permission)} {self.principal} "
            f"{_NAMES['operation'].get(self.operation, self.operation)} "
            f"{_NAMES['resource'].get(self.resource_type, self.resource_type)} "
            f"{self.resource_name}{star}{host}"
        )


# aiokafka's Request picks the highest struct version the broker supports among those it
# is parameterised with; these carry whole lists (aiokafka's own builders take one ACL).
class _DescribeAllAcls(Request[DescribeAclsRequest_v1]):  # type: ignore[misc]
    API_KEY = 29

    def build(self, request_struct_class: Any) -> Any:
        return request_struct_class(
            RESOURCE_ANY, None, PATTERN_ANY, None, None, OPERATION_ANY, PERMISSION_ANY
        )


def _acl_rows(entries: Sequence[AclEntry]) -> list[tuple[Any, ...]]:
    """ACL entries field by field, as CreateAcls and DeleteAcls v1 both carry them."""
    return [
        (e.resource_type, e.resource_name, e.pattern_type, e.principal, e.host, e.operation,
         e.permission)
        for e in entries
    ]  # fmt: skip


# aiokafka reads each request's struct class from its one generic base, so the two cannot
# share a base class; they share _acl_rows.
class _CreateAcls(Request[CreateAclsRequest_v1]):  # type: ignore[misc]
    API_KEY = 30

    def __init__(self, entries: Sequence[AclEntry]) -> None:
        self.entries = entries

    def build(self, request_struct_class: Any) -> Any:
        return request_struct_class(_acl_rows(self.entries))


class _DeleteAcls(Request[DeleteAclsRequest_v1]):  # type: ignore[misc]
    API_KEY = 31

    def __init__(self, entries: Sequence[AclEntry]) -> None:
        self.entries = entries

    def build(self, request_struct_class: Any) -> Any:
        return request_struct_class(_acl_rows(self.entries))


@dataclass(frozen=True)
class Connection:
    """How to reach a secured broker as a super user: SASL_SSL with SCRAM-SHA-512."""

    bootstrap_servers: str
    ca_file: Path
    username: str
    password: str = field(repr=False)
    mechanism: str = "SCRAM-SHA-512"

    @classmethod
    def local(cls) -> Connection:
        """The ``admin`` super user of the local secured stack (``stack.py up --secure``)."""
        cfg = stack.Config.from_environ(os.environ).secured()
        try:
            password = stack.read_password(cfg, stack.ADMIN_USER)
        except stack.StackError as exc:
            raise AclError(f"{exc}; start it with `stack.py up --secure`") from None
        return cls(cfg.bootstrap, cfg.ca_file, stack.ADMIN_USER, password)

    def ssl_context(self) -> ssl.SSLContext:
        """TLS trusting only the given CA, host names checked."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments of any aiokafka client for this connection."""
        return {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": "SASL_SSL",
            "ssl_context": self.ssl_context(),
            "sasl_mechanism": self.mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password,
        }


@dataclass(frozen=True)
class Changes:
    """What apply did (or, with ``dry_run``, would do)."""

    created: tuple[AclEntry, ...]
    deleted: tuple[AclEntry, ...]
    unchanged: int
    unlisted: tuple[AclEntry, ...]
    """ACLs of principals the file does not name (deleted only with ``prune``)."""

    @property
    def empty(self) -> bool:
        """True when the broker already held exactly the file's ACLs."""
        return not self.created and not self.deleted


async def _send(admin: AIOKafkaAdminClient, request: Any) -> Any:
    node = admin._client.get_random_node()
    if node is None:
        raise AclError("the broker listed no node to send ACL requests to")
    return await admin._client.send(node, request)


async def describe_acls(admin: AIOKafkaAdminClient) -> set[AclEntry]:
    """Every ACL the broker holds."""
    response = await _send(admin, _DescribeAllAcls())
    if response.error_code:
        raise AclError(f"DescribeAcls error {response.error_code}: {response.error_message}")
    found = set()
    for resource_type, resource_name, pattern_type, acls in response.resources:
        for principal, host, operation, permission in acls:
            found.add(
                AclEntry(
                    principal,
                    resource_type,
                    resource_name,
                    pattern_type,
                    operation,
                    permission,
                    host,
                )
            )
    return found


async def create_acls(admin: AIOKafkaAdminClient, entries: Sequence[AclEntry]) -> None:
    """Create ``entries`` in one request; AclError on the first refusal."""
    if not entries:
        return
    response = await _send(admin, _CreateAcls(entries))
    for entry, (code, message) in zip(entries, response.creation_responses, strict=True):
        if code:
            raise AclError(f"cannot create {entry}: error {code} {message or ''}".rstrip())


async def delete_acls(admin: AIOKafkaAdminClient, entries: Sequence[AclEntry]) -> None:
    """Delete exactly ``entries`` (each filter matches one ACL); AclError on a refusal."""
    if not entries:
        return
    response = await _send(admin, _DeleteAcls(entries))
    for entry, result in zip(entries, response.filter_responses, strict=True):
        code, message = result[0], result[1]
        if code:
            raise AclError(f"cannot delete {entry}: error {code} {message or ''}".rstrip())


def plan(doc: PrincipalsFile, current: Iterable[AclEntry], *, prune: bool = False) -> Changes:
    """What to create and delete so that the broker holds exactly ``doc``'s ACLs."""
    current = set(current)
    desired = {AclEntry.allow(b) for b in doc.bindings()}
    managed = {p.kafka_principal for p in doc.principals}
    stray = {e for e in current if e.principal in managed and e not in desired}
    unlisted = {e for e in current if e.principal not in managed}
    deleted = stray | (unlisted if prune else set())
    return Changes(
        created=tuple(sorted(desired - current)),
        deleted=tuple(sorted(deleted)),
        unchanged=len(desired & current),
        unlisted=tuple(sorted(unlisted)),
    )


async def apply(
    connection: Connection,
    doc: PrincipalsFile,
    *,
    dry_run: bool = False,
    prune: bool = False,
    settle_seconds: float = SETTLE_SECONDS,
) -> Changes:
    """Make the broker's ACLs those of ``doc``; return once it answers with them."""
    admin = AIOKafkaAdminClient(**connection.client_options(), client_id="mash-acls")
    await admin.start()
    try:
        changes = plan(doc, await describe_acls(admin), prune=prune)
        if dry_run or changes.empty:
            return changes
        await delete_acls(admin, changes.deleted)
        await create_acls(admin, changes.created)
        # The controller commits ACLs to the metadata log; the broker's authorizer applies
        # them a moment later. Return only when the broker shows the new state.
        deadline = time.monotonic() + settle_seconds
        while True:
            held = await describe_acls(admin)
            if set(changes.created) <= held and not set(changes.deleted) & held:
                return changes
            if time.monotonic() >= deadline:
                raise AclError(f"the broker did not show the new ACLs within {settle_seconds}s")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


# --------------------------------------------------------------------------- command line


def _connection(args: argparse.Namespace) -> Connection:
    given = [args.bootstrap_servers, args.ca_file, args.username, args.password_file]
    if not any(given):
        return Connection.local()
    if not all(given):
        raise AclError("--bootstrap-servers, --ca-file, --username and --password-file go together")
    password = Path(args.password_file).read_text().strip()
    return Connection(args.bootstrap_servers, Path(args.ca_file), args.username, password)


def _cmd_apply(args: argparse.Namespace, doc: PrincipalsFile) -> int:
    changes = asyncio.run(apply(_connection(args), doc, dry_run=args.dry_run, prune=args.prune))
    verb = "would " if args.dry_run else ""
    for entry in changes.deleted:
        print(f"- {entry}")
    for entry in changes.created:
        print(f"+ {entry}")
    if changes.unlisted and not args.prune:
        names = sorted({e.principal for e in changes.unlisted})
        print(f"left alone: {len(changes.unlisted)} ACL(s) of principals not in the file {names}")
    print(
        f"acls: {verb}create {len(changes.created)}, {verb}delete {len(changes.deleted)}, "
        f"{changes.unchanged} already in place ({len(doc.principals)} principals)"
    )
    return 0


def _cmd_show(args: argparse.Namespace, doc: PrincipalsFile) -> int:
    del args
    for binding in doc.bindings():
        print(binding)
    return 0


def _cmd_table(args: argparse.Namespace, doc: PrincipalsFile) -> int:
    del args
    print(table(doc), end="")
    return 0


def _cmd_readme(args: argparse.Namespace, doc: PrincipalsFile) -> int:
    path = Path(args.readme)
    text = path.read_text()
    updated = replace_readme_table(text, doc)
    if updated != text:
        path.write_text(updated)
        print(f"updated the principal table in {path}")
    else:
        print(f"the principal table in {path} is up to date")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The CLI: apply | show | table | readme."""
    parser = argparse.ArgumentParser(
        prog="python -m deploy.security.acls",
        description="Apply deploy/security/principals.yaml to a secured Kafka.",
    )
    parser.add_argument("--file", default=str(PRINCIPALS_FILE), help="the principals file")
    sub = parser.add_subparsers(dest="command", required=True)
    apply_cmd = sub.add_parser("apply", help="make the broker's ACLs exactly the file's")
    apply_cmd.add_argument("--dry-run", action="store_true", help="show the changes only")
    apply_cmd.add_argument(
        "--prune",
        action="store_true",
        help="also delete ACLs of principals the file does not name",
    )
    apply_cmd.add_argument("--bootstrap-servers", help="default: the local secured stack")
    apply_cmd.add_argument("--ca-file", help="PEM CA certificate(s) to trust")
    apply_cmd.add_argument("--username", help="a super user's SCRAM-SHA-512 name")
    apply_cmd.add_argument("--password-file", help="file holding that user's password")
    apply_cmd.set_defaults(handler=_cmd_apply)
    sub.add_parser("show", help="print the bindings the file stands for").set_defaults(
        handler=_cmd_show
    )
    sub.add_parser("table", help="print the README's principal table").set_defaults(
        handler=_cmd_table
    )
    readme = sub.add_parser("readme", help="rewrite the principal table in the README")
    readme.add_argument("--readme", default=str(README))
    readme.set_defaults(handler=_cmd_readme)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        doc = load(Path(args.file))
        code: int = args.handler(args, doc)
        return code
    except (AclError, PrincipalsError, OSError, stack.StackError) as exc:
        print(f"acls: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
