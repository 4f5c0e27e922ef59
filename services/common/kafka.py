"""The one Kafka app factory, topic creation, and the message shape agents work with.

Faust is configured for at-least-once delivery with effects made idempotent elsewhere
(docs/kafka-faust-notes.md: exactly_once has open duplicate bugs). Values are consumed as raw
bytes: Faust acks and skips what it cannot decode, so decoding and dead-lettering are
explicit in :mod:`services.common.pipeline`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from mode.utils.queues import FlowControlEvent

from services.common.kafka_security import PLAINTEXT, faust_broker_credentials
from services.common.settings import Settings, default_min_insync_replicas
from services.common.topics import TopicSpec, with_min_insync_replicas

log = structlog.get_logger(__name__)

Headers = list[tuple[str, bytes | None]]

#: Kafka protocol error code TOPIC_ALREADY_EXISTS.
TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True)
class InboundMessage:
    """One Kafka record as the pipeline sees it: coordinates, key, value, headers."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp: float | None = None


def _normalise_headers(
    raw: Sequence[tuple[str, bytes | None]] | Mapping[str, Any] | None,
) -> Headers:
    if not raw:
        return []
    items = raw.items() if isinstance(raw, Mapping) else raw
    out: Headers = []
    for k, v in items:
        key = k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k)
        value = v.encode() if isinstance(v, str) else v
        out.append((key, value))
    return out


def inbound_message(event: Any) -> InboundMessage:
    """Build an :class:`InboundMessage` from a Faust ``EventT`` (``stream.events()``)."""
    m = event.message
    return InboundMessage(
        topic=m.topic,
        partition=m.partition,
        offset=m.offset,
        key=m.key,
        value=m.value,
        headers=_normalise_headers(m.headers),
        timestamp=m.timestamp,
    )


class KeepFetchedFlowControl(FlowControlEvent):
    """Faust's flow control, except that a resume while flow is already active clears no
    buffer (see :func:`keep_fetched_messages_on_resume`)."""

    def resume(self) -> None:
        """Resume flow; clear the buffers only when flow was suspended."""
        if self.is_active():
            return
        super().resume()


def keep_fetched_messages_on_resume(app: faust.App) -> None:
    """Stop Faust dropping messages it has fetched for newly assigned partitions.

    With a table, Faust's recovery resumes flow (to read the changelog), later resumes
    the stream partitions, seeks them and resumes flow *again*. The fetcher is already
    running in between, so messages waiting on the contacts topic (a restart with a
    backlog) reach the agent's buffer before that second resume — which clears every
    buffer. The message the agent is not already holding is dropped, its offset counts as
    read, so it is never screened and the group's commit stops at it until the next
    restart (seen in tests/integration/test_screening_history.py, about one run in three).

    Clearing is right when flow goes from suspended to resumed (the buffers may hold
    messages of revoked partitions; Faust also clears them on revocation); a resume while
    flow is already active clears nothing here. At worst a kept message is delivered
    twice after the seek, which the inbox and the idempotent history absorb.

    Must run before the app first touches ``app.flow_control``. The event gets no loop:
    mode's events bind to the running loop when first awaited (Faust passes ``app.loop``,
    which read this early would pin the app to a loop that never runs).
    """
    if "flow_control" in vars(app):
        raise RuntimeError("the app's flow control exists already; replace it before start")
    vars(app)["flow_control"] = KeepFetchedFlowControl()


def make_app(service: str, settings: Settings) -> faust.App:
    """The Faust app of ``service``: group ``mash-<service>``, at-least-once, no Faust web,
    connecting as the Kafka security settings say (TLS, SASL)."""
    # Faust makes a data folder per app even with in-memory tables, by default in the
    # working directory; keep them together under MASH_DATA_DIR (Faust creates only the
    # last level itself).
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        f"mash-{service}{settings.group_suffix}",
        broker=[f"kafka://{b}" for b in settings.bootstrap_list],
        broker_credentials=faust_broker_credentials(settings),
        datadir=data_dir / "{conf.name}-data",
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        # Topics are created by ensure_topics() from the one catalogue, not by Faust.
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        processing_guarantee="at_least_once",
        # Our own prometheus endpoint replaces Faust's web server.
        web_enabled=False,
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=settings.heartbeat_interval_seconds,
        broker_commit_every=100,
        broker_commit_interval=1.0,
        stream_wait_empty=True,
    )
    keep_fetched_messages_on_resume(app)
    return app


def raw_topic(app: faust.App, name: str) -> Any:
    """A Faust topic that hands agents the raw key/value bytes."""
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        allow_empty=True,
    )


async def _all_led(admin: AIOKafkaAdminClient, names: list[str]) -> bool:
    if not names:
        return True
    described = await admin.describe_topics(names)
    return len(described) == len(set(names)) and all(
        t["error_code"] == 0
        and t["partitions"]
        and all(p["error_code"] == 0 and p["leader"] >= 0 for p in t["partitions"])
        for t in described
    )


async def ensure_topics(
    bootstrap_servers: Iterable[str],
    specs: Sequence[TopicSpec],
    *,
    replication_factor: int = 1,
    min_insync_replicas: int | None = None,
    wait_seconds: float = 60.0,
    security: Mapping[str, Any] = PLAINTEXT,
    create: bool = True,
) -> list[str]:
    """Create the topics in ``specs`` that do not exist yet; return those created.

    ``create=False`` (``MASH_CREATE_TOPICS=false``: a secured cluster whose topics an
    operator creates, where a service has no right to create or even see other services'
    topics) creates nothing and checks only the topics this client can see.

    Each topic is created with its spec's configs (retention and size:
    :data:`services.common.topics.TOPIC_RULES`) and an explicit ``min.insync.replicas``
    (default: :func:`~services.common.settings.default_min_insync_replicas` of
    ``replication_factor``), as ``mash topics --apply`` sets them on existing topics.

    ``security``: the client's connection arguments
    (:func:`services.common.kafka_security.kafka_client_security`).

    Raises RuntimeError when an existing topic has another partition count than its spec:
    keyed topics and the tables' changelogs must stay co-partitioned, and Faust would only
    notice at the first table write.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=list(bootstrap_servers), **security)
    deadline = asyncio.get_running_loop().time() + wait_seconds
    while True:
        try:
            await admin.start()
            break
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(1.0)
    try:
        existing = set(await admin.list_topics())
        if not create:
            specs = [s for s in specs if s.name in existing]
        wanted = [s for s in specs if s.name not in existing]
        created: list[str] = []
        min_insync = min_insync_replicas or default_min_insync_replicas(replication_factor)
        if wanted:
            response = await admin.create_topics(
                [
                    NewTopic(
                        s.name,
                        s.partitions,
                        replication_factor,
                        topic_configs=with_min_insync_replicas(s.configs, min_insync),
                    )
                    for s in wanted
                ],
                timeout_ms=int(wait_seconds * 1000),
            )
            for topic_error in response.topic_errors:
                name, code = topic_error[0], topic_error[1]
                if code == 0:
                    created.append(name)
                elif code != TOPIC_ALREADY_EXISTS:  # another service created it first
                    raise RuntimeError(f"could not create topic {name}: error code {code}")
            log.info("topics_created", topic_count=len(created))
        # Creation is asynchronous on the broker: wait until every partition has a leader,
        # so the first produce after start-up does not bounce off NotLeaderForPartition.
        names = [s.name for s in specs]
        while not await _all_led(admin, names):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"topics have no leader after {wait_seconds}s")
            await asyncio.sleep(0.1)
        counts = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(names)}
        for spec in specs:
            if counts.get(spec.name, spec.partitions) != spec.partitions:
                raise RuntimeError(
                    f"topic {spec.name} has {counts[spec.name]} partitions, expected "
                    f"{spec.partitions} (MASH_PARTITIONS): keyed topics must stay co-partitioned"
                )
        return created
    finally:
        await admin.close()
