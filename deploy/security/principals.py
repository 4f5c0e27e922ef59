"""The principals file (``deploy/security/principals.yaml``): its model, the ACL bindings
it stands for, and the README table made from it. Pure: no broker, no I/O but reading the
file."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, cast

from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator

from services.common.readme_tables import framed, replace_table
from services.common.yaml_files import load_yaml_model

#: The file in the repository.
PRINCIPALS_FILE = Path(__file__).with_name("principals.yaml")
#: Super users of the secured broker (its ``super.users``); never listed in the file.
SUPER_USERS = ("broker", "admin")

#: A topic or group name, or a prefix of names when it ends in ``*`` (never ``*`` alone).
ResourceName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]+\*?$", max_length=249)]
PrincipalName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]*$", max_length=64)]
Kind = Literal["service", "producer", "hub", "agency", "monitoring"]
ResourceType = Literal["topic", "group"]
PatternType = Literal["literal", "prefixed"]
Operation = Literal["read", "write", "create", "describe", "describe_configs"]


class PrincipalsError(ValueError):
    """The principals file is missing or invalid (one line, naming the file)."""


class _Rights(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def granted(self) -> Iterator[tuple[Operation, str]]:
        """(operation, resource name) pairs, in field order."""
        for operation in type(self).model_fields:
            for name in getattr(self, operation):
                yield cast(Operation, operation), name


class TopicRights(_Rights):
    """What a principal may do on topics (lists of names or ``prefix*``)."""

    read: tuple[ResourceName, ...] = ()
    write: tuple[ResourceName, ...] = ()
    create: tuple[ResourceName, ...] = ()
    describe: tuple[ResourceName, ...] = ()
    describe_configs: tuple[ResourceName, ...] = ()


class GroupRights(_Rights):
    """What a principal may do on consumer groups: join and commit (``read``), or only
    look at offsets (``describe``)."""

    read: tuple[ResourceName, ...] = ()
    describe: tuple[ResourceName, ...] = ()


class Principal(BaseModel):
    """One principal (a SCRAM user) and its rights."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: PrincipalName
    kind: Kind
    about: str
    topics: TopicRights = TopicRights()
    groups: GroupRights = GroupRights()
    later: str | None = None

    @property
    def kafka_principal(self) -> str:
        """The principal as the broker names it: ``User:<name>``."""
        return f"User:{self.name}"

    def bindings(self) -> list[Binding]:
        """The ALLOW bindings this principal stands for (any host)."""
        out: list[Binding] = []
        rights: tuple[tuple[ResourceType, _Rights], ...] = (
            ("topic", self.topics),
            ("group", self.groups),
        )
        for resource_type, granted in rights:
            for operation, name in granted.granted():
                prefixed = name.endswith("*")
                out.append(
                    Binding(
                        self.name,
                        resource_type,
                        "prefixed" if prefixed else "literal",
                        name.removesuffix("*"),
                        operation,
                    )
                )
        return out


class PrincipalsFile(BaseModel):
    """The whole file: every principal, names unique, no super user among them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    principals: tuple[Principal, ...]

    @model_validator(mode="after")
    def _unique(self) -> PrincipalsFile:
        names = [p.name for p in self.principals]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"principals listed twice: {dupes}")
        reserved = sorted(set(names) & set(SUPER_USERS))
        if reserved:
            raise ValueError(f"{reserved} are super users of the broker, not file principals")
        return self

    def get(self, name: str) -> Principal:
        """The principal called ``name`` (KeyError when absent)."""
        for principal in self.principals:
            if principal.name == name:
                return principal
        raise KeyError(name)

    def bindings(self) -> list[Binding]:
        """Every binding of every principal, sorted, without duplicates."""
        return sorted({b for p in self.principals for b in p.bindings()})


@dataclass(frozen=True, order=True)
class Binding:
    """One ALLOW ACL: ``principal`` may do ``operation`` on the ``resource_type`` named
    ``resource_name`` (exactly, or every name starting with it when ``prefixed``)."""

    principal: str
    resource_type: ResourceType
    pattern_type: PatternType
    resource_name: str
    operation: Operation

    def __str__(self) -> str:
        star = "*" if self.pattern_type == "prefixed" else ""
        return (
            f"User:{self.principal} may {self.operation} "
            f"{self.resource_type} {self.resource_name}{star}"
        )


def load(path: Path = PRINCIPALS_FILE) -> PrincipalsFile:
    """Parse and validate the principals file; PrincipalsError names what is wrong."""
    return load_yaml_model(path, PrincipalsFile, PrincipalsError, what="principals")


# --------------------------------------------------------------------------- README table

TABLE_START = "<!-- principals-table:start (python -m deploy.security.acls readme) -->"
TABLE_END = "<!-- principals-table:end -->"


def _names(names: tuple[str, ...]) -> str:
    return ", ".join(f"`{n}`" for n in names) if names else "—"


def table(doc: PrincipalsFile) -> str:
    """The principal/ACL table of the README (Markdown), one row per principal."""
    rows = [
        "| principal | kind | reads (topics) | writes (topics) | consumer groups | also |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for p in doc.principals:
        also = [
            f"{operation.replace('_', ' ')} {_names(names)}"
            for operation, names in (
                ("create", p.topics.create),
                ("describe", p.topics.describe),
                ("describe_configs", p.topics.describe_configs),
            )
            if names
        ]
        if p.groups.describe:
            also.append(f"describe groups {_names(p.groups.describe)}")
        if p.later:
            also.append(f"later: {p.later}")
        rows.append(
            f"| `{p.name}` | {p.kind} | {_names(p.topics.read)} | {_names(p.topics.write)} "
            f"| {_names(p.groups.read)} | {'; '.join(also) or '—'} |"
        )
    return "\n".join(rows) + "\n"


def readme_block(doc: PrincipalsFile) -> str:
    """The table framed by the markers the README keeps it between."""
    return framed(TABLE_START, TABLE_END, table(doc))


def replace_readme_table(readme: str, doc: PrincipalsFile) -> str:
    """``readme`` with the text between the table markers replaced by the current table."""
    return replace_table(readme, TABLE_START, TABLE_END, table(doc), PrincipalsError)
