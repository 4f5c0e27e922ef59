"""What every service process shares at run time: settings, logger, metrics, database
pool, outbox relay, topic names — built once, started lazily inside Faust's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterable
from typing import Any

import asyncpg
import faust
import structlog

from services.common.db import SchemaNotMigrated, create_pool, require_migrated
from services.common.health import Bounds, HealthCollector, HealthState, probe_timeout
from services.common.kafka import ensure_topics, make_app
from services.common.kafka_security import kafka_client_security, security_log_fields
from services.common.lag import ConsumerProbe
from services.common.logging import configure_logging
from services.common.metrics import ServiceMetrics
from services.common.outbox import OutboxRelay
from services.common.settings import Settings, load_settings
from services.common.topics import TopicNames, TopicSpec


class ServiceRuntime:
    """The shared runtime of one service process."""

    def __init__(self, service: str, settings: Settings | None = None) -> None:
        self.service = service
        self.settings = settings or load_settings()
        self.log: structlog.stdlib.BoundLogger = configure_logging(service, self.settings.log_level)
        self.metrics = ServiceMetrics(service)
        self.topics = TopicNames(self.settings.topic_prefix)
        #: How this process's own aiokafka clients connect (TLS, SASL); Faust's come from
        #: the same settings through make_app.
        self.kafka_security = kafka_client_security(self.settings)
        self.app: faust.App = make_app(service, self.settings)
        self._pool: asyncpg.Pool | None = None
        self._relay: OutboxRelay | None = None
        self._started = asyncio.Event()
        self._start_lock: asyncio.Lock | None = None
        self._relay_task: asyncio.Task[None] | None = None
        self.app.task(self._start_in_background)
        # Health: measured in Faust's loop (lag, commits, broker, database), read by
        # /readyz and /metrics from the metrics server's threads.
        self.health = HealthState(Bounds.from_settings(self.settings))
        self.metrics.registry.register(HealthCollector(self.health))
        self._probe = ConsumerProbe(
            self.app,
            self.health,
            bootstrap_servers=self.settings.bootstrap_list,
            group_id=self.app.conf.id,
            pool=lambda: self._pool,
            interval=self.settings.health_probe_seconds,
            timeout=probe_timeout(self.settings),
            security=self.kafka_security,
        )
        self._watch_tasks: list[asyncio.Task[None]] = []
        self.app.task(self._watch)

        async def before_shutdown(_app: Any, *_args: Any, **_kwargs: Any) -> None:
            await self._shutdown()

        # mode's stub types the receiver as a union of callables mypy cannot match.
        self.app.on_before_shutdown.connect(before_shutdown)  # type: ignore[arg-type]

    @property
    def pool(self) -> asyncpg.Pool:
        """The database pool (only after :meth:`ready`)."""
        if self._pool is None:
            raise RuntimeError("runtime not started")
        return self._pool

    @property
    def relay(self) -> OutboxRelay:
        """The outbox relay (only after :meth:`ready`)."""
        if self._relay is None:
            raise RuntimeError("runtime not started")
        return self._relay

    async def _start_in_background(self) -> None:
        await self.ready()

    async def _watch(self) -> None:
        """Start the loop heartbeat and the health probe."""
        loop = asyncio.get_running_loop()
        self._watch_tasks = [
            loop.create_task(self._probe.heartbeat()),
            loop.create_task(self._probe.run()),
        ]

    async def ready(self) -> None:
        """Connect to the database (retrying until it answers) and start the relay, once."""
        if self._started.is_set():
            return
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._started.is_set():
                return
            delay = 0.5
            while True:
                try:
                    self._pool = await create_pool(self.settings.database_url)
                    break
                except SchemaNotMigrated as exc:
                    # The database was down at start (run() could not check it) and is
                    # behind this release: wait for `mash db migrate`, saying so.
                    self.metrics.retries.labels(stage="database_connect").inc()
                    self.log.error(
                        "database_schema_not_migrated", missing=exc.missing, delay_seconds=delay
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.settings.retry_max_seconds)
                except (OSError, asyncpg.PostgresError) as exc:
                    self.metrics.retries.labels(stage="database_connect").inc()
                    self.log.warning(
                        "database_unavailable", error_type=type(exc).__name__, delay_seconds=delay
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.settings.retry_max_seconds)
            self._relay = OutboxRelay(
                service=self.service,
                pool=self._pool,
                bootstrap_servers=self.settings.bootstrap_list,
                metrics=self.metrics,
                batch_size=self.settings.outbox_batch_size,
                poll_seconds=self.settings.outbox_poll_seconds,
                retry_max_seconds=self.settings.retry_max_seconds,
                publish_timeout=self.settings.outbox_publish_timeout_seconds,
                health=self.health,
                security=self.kafka_security,
            )
            self._relay_task = asyncio.get_running_loop().create_task(
                self._relay.run(), name="outbox-relay"
            )
            self._started.set()
            self.log.info("service_ready")

    async def _shutdown(self) -> None:
        """Faust is stopping (consumer already stopped): flush the relay, close the pool."""
        for task in self._watch_tasks:
            task.cancel()
        for task in self._watch_tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._probe.close()
        if self._relay_task is not None:
            self._relay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay_task
        if self._relay is not None:
            await self._relay.stop()
        if self._pool is not None:
            await self._pool.close()
        self.log.info("service_stopped")

    async def _require_migrated(self) -> None:
        """Refuse to start on a database behind this release (SchemaNotMigrated); a
        database that does not answer yet is :meth:`ready`'s to wait for."""
        try:
            conn = await asyncpg.connect(self.settings.database_url, timeout=10)
        except (OSError, TimeoutError, asyncpg.PostgresError):
            return
        try:
            await require_migrated(conn)
        finally:
            await conn.close()

    def run(self, extra_topics: Iterable[TopicSpec] = ()) -> None:
        """Create topics, expose /metrics and run the Faust worker until stopped."""
        from faust.worker import Worker

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        # /healthz and /metrics answer from here on, also while topics are being created.
        port = self.settings.metrics_port_for(self.service)
        self.metrics.serve(port, self.health)
        # Heartbeat and probe run from the loop's first turn, through topic creation and
        # Faust's start-up: app tasks only start after table recovery, which can stall.
        self._watch_tasks += [
            loop.create_task(self._probe.heartbeat()),
            loop.create_task(self._probe.run()),
        ]
        try:
            loop.run_until_complete(self._require_migrated())
        except SchemaNotMigrated as exc:
            # Services run no DDL: one line, and `mash db migrate` is the fix.
            print(f"{self.service}: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        try:
            loop.run_until_complete(
                ensure_topics(
                    self.settings.bootstrap_list,
                    list(extra_topics),
                    replication_factor=self.settings.replication_factor,
                    min_insync_replicas=self.settings.topic_min_insync_replicas,
                    security=self.kafka_security,
                    create=self.settings.create_topics,
                )
            )
        except RuntimeError as exc:  # e.g. a partition count that breaks co-partitioning
            print(f"{self.service}: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        self.log.info(
            "service_starting", metrics_port=port, **security_log_fields(self.kafka_security)
        )
        worker = Worker(
            self.app,
            loglevel=self.settings.log_level,
            loop=loop,
            override_logging=False,
            redirect_stdouts=False,
            quiet=True,  # no start-up banner or spinner: logs are JSON lines only
        )
        # Faust's spinner writes terminal control codes ("\b\x1b[?25h") even when quiet,
        # which would break the first JSON line of the log.
        worker.spinner = None
        worker.execute_from_commandline()
