"""``mash topics --apply``: make the broker's topics match the catalogue's configs.

Every product topic (the catalogue, each hub's queues, screening's history changelog) gets
explicit ``cleanup.policy``, ``retention.ms`` and ``max.message.bytes`` from
:data:`services.common.topics.TOPIC_RULES`, and ``min.insync.replicas`` from the settings
(``MASH_MIN_INSYNC_REPLICAS``, derived from ``MASH_REPLICATION_FACTOR`` when unset).
``--apply`` creates missing topics with them and sets them on existing ones; a value the
topic only inherits from the broker's defaults counts as different (a changed broker
default must not change a topic's retention). ``--dry-run`` prints the same plan and
changes nothing.

Only those four configs are touched, with Kafka's IncrementalAlterConfigs (aiokafka's
``alter_configs`` is the legacy AlterConfigs, which replaces every override of a topic and
so would drop one an operator set for another reason). What configs cannot fix is
reported and exits 1: a partition count other than ``MASH_PARTITIONS`` (keyed topics must
stay co-partitioned) or fewer replicas than ``MASH_REPLICATION_FACTOR`` (a partition
reassignment, an operator's job). On a secured cluster run it as the operator (``admin``):
it needs Create, DescribeConfigs and AlterConfigs on the topics.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Boolean, Int8, Int16, Int32, Schema, String

from mash.deadletters import CliHooks
from mash.errors import EXIT_OK, ToolError, UsageError, start_client
from services.common.kafka import ensure_topics
from services.common.kafka_security import PLAINTEXT, kafka_client_security
from services.common.readme_tables import replace_table
from services.common.settings import Settings
from services.common.topics import (
    TOPIC_RULES,
    TopicNames,
    TopicRule,
    TopicSpec,
    with_min_insync_replicas,
)
from services.common.topology import TopologyError, load_topology

#: The configs this command owns on every product topic.
OWNED_CONFIGS = ("cleanup.policy", "retention.ms", "max.message.bytes", "min.insync.replicas")
#: DescribeConfigs ``config_source`` of a value set on the topic itself.
DYNAMIC_TOPIC_CONFIG = 1
#: IncrementalAlterConfigs operation SET.
OP_SET = 0
RESOURCE_TOPIC = int(ConfigResourceType.TOPIC)

APPLY_EXAMPLES = """\
configs (--apply, --dry-run):
  mash topics --apply --dry-run     # what would be created or changed
  mash topics --apply               # create missing topics, set retention and sizes
  MASH_REPLICATION_FACTOR=3 MASH_MIN_INSYNC_REPLICAS=2 mash topics --apply   # production
"""


# --- IncrementalAlterConfigs (API key 44), which aiokafka does not build ------------------


class _IncrementalAlterConfigsResponseV0(Response):  # type: ignore[misc]
    API_KEY = 44
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "responses",
            Array(
                ("error_code", Int16),
                ("error_message", String("utf-8")),
                ("resource_type", Int8),
                ("resource_name", String("utf-8")),
            ),
        ),
    )


class _IncrementalAlterConfigsRequestV0(RequestStruct):  # type: ignore[misc]
    API_KEY = 44
    API_VERSION = 0
    RESPONSE_TYPE = _IncrementalAlterConfigsResponseV0
    SCHEMA = Schema(
        (
            "resources",
            Array(
                ("resource_type", Int8),
                ("resource_name", String("utf-8")),
                (
                    "configs",
                    Array(
                        ("name", String("utf-8")),
                        ("config_operation", Int8),
                        ("value", String("utf-8")),
                    ),
                ),
            ),
        ),
        ("validate_only", Boolean),
    )


class _IncrementalAlterConfigs(Request[_IncrementalAlterConfigsRequestV0]):  # type: ignore[misc]
    API_KEY = 44

    def __init__(self, topics: Mapping[str, Mapping[str, str]]) -> None:
        self.topics = topics

    def build(self, request_struct_class: Any) -> Any:
        resources = [
            (RESOURCE_TOPIC, topic, [(name, OP_SET, value) for name, value in configs.items()])
            for topic, configs in self.topics.items()
        ]
        return request_struct_class(resources, False)


# --- the plan ------------------------------------------------------------------------


@dataclass(frozen=True)
class CurrentConfig:
    """A config as the broker reports it: its value and whether the topic sets it."""

    value: str | None
    on_topic: bool


@dataclass(frozen=True)
class ConfigChange:
    """One config to set on one topic (``old`` None: the topic inherited ``inherited``)."""

    topic: str
    name: str
    old: str | None
    new: str
    inherited: str | None = None

    def describe(self) -> str:
        """One line: ``topic: name old -> new``."""
        before = self.old if self.old is not None else f"{self.inherited} (broker default)"
        return f"{self.topic}: {self.name} {before} -> {self.new}"


@dataclass
class ApplyResult:
    """What ``--apply`` did (or, with ``dry_run``, would do)."""

    dry_run: bool
    topics: int = 0
    created: list[str] = field(default_factory=list)
    changes: list[ConfigChange] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def unchanged(self) -> int:
        """Topics that already matched."""
        return self.topics - len(self.created) - len({c.topic for c in self.changes})

    def lines(self) -> list[str]:
        """The report: one line per creation, change and problem, then a summary."""
        would = "would " if self.dry_run else ""
        out = [f"{would}create {name}" for name in self.created]
        out += [f"{would}set {change.describe()}" for change in self.changes]
        out += [f"problem: {p}" for p in self.problems]
        altered = len({c.topic for c in self.changes})
        if self.dry_run:
            summary = (
                f"{self.topics} topics: {len(self.created)} to create, {altered} to change"
                f" ({len(self.changes)} configs), {self.unchanged} unchanged;"
                " dry run, nothing changed"
            )
        else:
            summary = (
                f"{self.topics} topics: {len(self.created)} created, {altered} changed"
                f" ({len(self.changes)} configs), {self.unchanged} unchanged"
            )
        return [*out, summary]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "dry_run": self.dry_run,
            "topics": self.topics,
            "created": self.created,
            "changes": [
                {"topic": c.topic, "config": c.name, "old": c.old, "new": c.new}
                for c in self.changes
            ],
            "unchanged": self.unchanged,
            "problems": self.problems,
        }


def config_changes(
    topic: str, desired: Mapping[str, str], current: Mapping[str, CurrentConfig]
) -> list[ConfigChange]:
    """The configs of ``desired`` the topic does not set itself to the desired value."""
    changes = []
    for name, value in desired.items():
        seen = current.get(name)
        if seen is not None and seen.on_topic and seen.value == value:
            continue
        if seen is not None and seen.on_topic:
            changes.append(ConfigChange(topic, name, seen.value, value))
        else:
            changes.append(
                ConfigChange(topic, name, None, value, None if seen is None else seen.value)
            )
    return changes


def product_specs(settings: Settings, hubs: Iterable[str]) -> list[TopicSpec]:
    """Every topic of the product under the settings' prefix, with its full configs."""
    # Imported here: the screening app pulls in Faust, which listing topics does not need.
    from services.screening.app import history_changelog_topic

    specs = [
        *TopicNames(settings.topic_prefix).all_specs(hubs, settings.partitions),
        history_changelog_topic(settings),
    ]
    min_insync = settings.topic_min_insync_replicas
    return [
        TopicSpec(s.name, s.partitions, with_min_insync_replicas(s.configs, min_insync))
        for s in specs
    ]


# --- talking to the broker -----------------------------------------------------------


async def describe_configs(
    admin: AIOKafkaAdminClient, topics: Sequence[str]
) -> dict[str, dict[str, CurrentConfig]]:
    """The owned configs of each of ``topics``; ToolError when the broker refuses one."""
    if not topics:
        return {}
    found: dict[str, dict[str, CurrentConfig]] = {}
    wanted = dict.fromkeys(OWNED_CONFIGS)
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, t, configs=wanted) for t in topics]
    )
    for response in responses:
        for error_code, error_message, _type, name, entries in response.resources:
            if error_code:
                raise ToolError(
                    f"cannot describe the configs of {name}: error {error_code}"
                    f" {error_message or ''}".rstrip()
                )
            found[name] = {
                entry[0]: CurrentConfig(entry[1], entry[3] == DYNAMIC_TOPIC_CONFIG)
                for entry in entries
            }
    return found


async def alter_configs(admin: AIOKafkaAdminClient, changes: Sequence[ConfigChange]) -> list[str]:
    """Set ``changes`` in one IncrementalAlterConfigs request; the refusals, one line each."""
    by_topic: dict[str, dict[str, str]] = {}
    for change in changes:
        by_topic.setdefault(change.topic, {})[change.name] = change.new
    if not by_topic:
        return []
    node = admin._client.get_random_node()
    if node is None:
        raise ToolError("the broker listed no node to send the config changes to")
    response = await admin._client.send(node, _IncrementalAlterConfigs(by_topic))
    return [
        f"cannot alter the configs of {name}: error {code} {message or ''}".rstrip()
        for code, message, _type, name in response.responses
        if code
    ]


async def _layout(admin: AIOKafkaAdminClient, names: Sequence[str]) -> dict[str, tuple[int, int]]:
    """(partitions, smallest replica count) of each existing topic of ``names``."""
    if not names:
        return {}
    return {
        t["topic"]: (
            len(t["partitions"]),
            min((len(p["replicas"]) for p in t["partitions"]), default=0),
        )
        for t in await admin.describe_topics(list(names))
        if t["error_code"] == 0
    }


async def apply_topic_configs(
    bootstrap: list[str],
    specs: Sequence[TopicSpec],
    *,
    replication_factor: int,
    dry_run: bool,
    security: Mapping[str, Any] = PLAINTEXT,
    settle_seconds: float = 30.0,
) -> ApplyResult:
    """Create the missing topics of ``specs`` and set each spec's configs on the others
    (``dry_run``: only find out what that would do). Problems configs cannot fix are
    listed in the result, not raised; so is a config the broker still reports otherwise
    ``settle_seconds`` after the change."""
    result = ApplyResult(dry_run=dry_run, topics=len(specs))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **security)
    await start_client(admin, bootstrap)
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        result.created = [s.name for s in missing]
        present = [s for s in specs if s.name in existing]
        layout = await _layout(admin, [s.name for s in present])
        current = await describe_configs(admin, [s.name for s in present])
        left_alone: set[tuple[str, str]] = set()
        for spec in present:
            partitions, replicas = layout.get(spec.name, (spec.partitions, replication_factor))
            if partitions != spec.partitions:
                result.problems.append(
                    f"{spec.name} has {partitions} partitions, expected {spec.partitions}"
                    " (MASH_PARTITIONS): keyed topics must stay co-partitioned"
                )
            if replicas < replication_factor:
                result.problems.append(
                    f"{spec.name} has {replicas} replicas, MASH_REPLICATION_FACTOR is"
                    f" {replication_factor}: reassign its partitions (kafka-reassign-partitions)"
                )
            desired = dict(spec.configs)
            min_insync = int(desired.get("min.insync.replicas", "1"))
            if min_insync > replicas:
                # Setting it would make every acks=all write to the topic fail.
                desired.pop("min.insync.replicas")
                left_alone.add((spec.name, "min.insync.replicas"))
                result.problems.append(
                    f"{spec.name}: min.insync.replicas {min_insync} left alone, the topic has"
                    f" only {replicas} replicas"
                )
            result.changes += config_changes(spec.name, desired, current.get(spec.name, {}))
        if dry_run:
            return result
        if missing:
            await ensure_topics(
                bootstrap, missing, replication_factor=replication_factor, security=security
            )
        result.problems += await alter_configs(admin, result.changes)
        # Read back: what the broker holds is the answer, not what was asked. A broker
        # applies config changes from the metadata log a moment after acknowledging them.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settle_seconds
        while True:
            after = await describe_configs(admin, [s.name for s in specs])
            differing = [
                change
                for spec in specs
                for change in config_changes(spec.name, spec.configs, after.get(spec.name, {}))
                if (spec.name, change.name) not in left_alone
            ]
            if not differing or loop.time() > deadline:
                break
            await asyncio.sleep(0.2)
        result.problems += [f"after applying, {c.describe()} still differs" for c in differing]
        return result
    finally:
        await admin.close()


# --- the command line ----------------------------------------------------------------


def register(
    topics: argparse.ArgumentParser,
    hooks: CliHooks,
    listing: Callable[[argparse.Namespace], int],
) -> None:
    """Add ``--apply`` and ``--dry-run`` to ``mash topics`` (``listing``: what it does
    without them)."""
    topics.add_argument(
        "--apply",
        action="store_true",
        help="create missing topics and set their retention, cleanup policy, size limit and"
        " min.insync.replicas to the catalogue's (services/common/topics.py)",
    )
    topics.add_argument(
        "--dry-run",
        action="store_true",
        help="with --apply: print what would change, change nothing",
    )
    topics.epilog = f"{topics.epilog or ''}\n{APPLY_EXAMPLES}"

    def handle(args: argparse.Namespace) -> int:
        if not args.apply:
            if args.dry_run:
                raise UsageError("--dry-run goes with --apply")
            return listing(args)
        settings = hooks.settings(args)
        try:
            topology = load_topology(args.topology or settings.topology)
        except TopologyError as exc:
            raise UsageError(str(exc)) from None
        result = hooks.run(
            apply_topic_configs(
                settings.bootstrap_list,
                product_specs(settings, topology.hub_ids),
                replication_factor=settings.replication_factor,
                dry_run=args.dry_run,
                security=kafka_client_security(settings),
            )
        )
        if args.json:
            print(json.dumps(result.as_dict(), indent=2))
        else:
            for line in result.lines():
                print(line)
        if result.problems:
            raise ToolError(f"{len(result.problems)} problem(s) left (listed above)")
        return EXIT_OK

    topics.set_defaults(handler=handle)


# --- the README table ----------------------------------------------------------------

README = Path(__file__).resolve().parents[2] / "README.md"
TABLE_START = "<!-- retention-table:start (python -m mash.topic_configs readme) -->"
TABLE_END = "<!-- retention-table:end -->"


def _days(rule: TopicRule) -> str:
    if rule.retention_days is None:
        return "kept (compacted)"
    return f"{rule.retention_days} days"


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB" if limit % (1024 * 1024) == 0 else f"{limit} bytes"


def retention_table() -> str:
    """The README's topic-config table (Markdown), one row per rule of TOPIC_RULES."""
    rows = [
        "| topics | class | `retention.ms` | `cleanup.policy` | `max.message.bytes` | why |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for rule in TOPIC_RULES:
        patterns = ", ".join(f"`{p}`" for p in rule.patterns)
        rows.append(
            f"| {patterns} | {rule.topic_class} | {_days(rule)} | `{rule.cleanup_policy}`"
            f" | {_size(rule.max_message_bytes)} | {rule.why} |"
        )
    return "\n".join(rows) + "\n"


def replace_readme_table(readme: str) -> str:
    """``readme`` with the text between the table markers replaced by the current table."""
    return replace_table(readme, TABLE_START, TABLE_END, retention_table(), ToolError)


def main(argv: Sequence[str] | None = None) -> int:
    """``table`` prints the README's topic-config table; ``readme`` rewrites it there."""
    parser = argparse.ArgumentParser(prog="python -m mash.topic_configs")
    parser.add_argument("command", choices=("table", "readme"))
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args(argv)
    if args.command == "table":
        print(retention_table(), end="")
        return EXIT_OK
    text = args.readme.read_text(encoding="utf-8")
    updated = replace_readme_table(text)
    if updated != text:
        args.readme.write_text(updated, encoding="utf-8")
        print(f"updated the topic-config table in {args.readme}")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
