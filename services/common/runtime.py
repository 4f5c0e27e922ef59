"""What every service process shares at run time: settings, logger, metrics, clock,
database pool, outbox relay, topic names, background loops — built once, started lazily
inside Faust's event loop.

Every service reads "now" from :attr:`ServiceRuntime.clock` (``MASH_CLOCK_FILE`` lets tests
fix and move it: :mod:`services.common.clock`), retries through :meth:`ServiceRuntime.retry`
and runs its background loops through :meth:`ServiceRuntime.every`
(:mod:`services.common.retry`).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import asyncpg
import faust
import structlog

from services.common.clock import Clock, clock_from
from services.common.db import SchemaNotMigrated, create_pool, require_migrated
from services.common.health import Bounds, HealthCollector, HealthState, probe_timeout
from services.common.kafka import ensure_topics, make_app
from services.common.kafka_security import kafka_client_security, security_log_fields
from services.common.lag import ConsumerProbe
from services.common.logging import configure_logging
from services.common.metrics import ServiceMetrics, stage_label
from services.common.outbox import OutboxRelay
from services.common.retry import Retry, every, no_fields
from services.common.settings import Settings, load_settings
from services.common.topics import TopicNames, TopicSpec


class ServiceRuntime:
    """The shared runtime of one service process."""

    def __init__(
        self, service: str, settings: Settings | None = None, clock: Clock | None = None
    ) -> None:
        self.service = service
        self.settings = settings or load_settings()
        #: "Now" for everything this process records or decides: the real time, or the
        #: instant in ``MASH_CLOCK_FILE`` (tests).
        self.clock: Clock = clock or clock_from(self.settings.clock_file)
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
            retry = self.retry("database_connect", first=0.5)
            while True:
                try:
                    self._pool = await create_pool(self.settings.database_url)
                    break
                except SchemaNotMigrated as exc:
                    # The database was down at start (run() could not check it) and is
                    # behind this release: wait for `mash db migrate`, saying so.
                    retry.failed(
                        "database_schema_not_migrated", exc, {"missing": exc.missing}, level="error"
                    )
                except (OSError, asyncpg.PostgresError) as exc:
                    retry.failed("database_unavailable", exc)
                await retry.wait()
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

    def retry(self, work: str, *, first: float) -> Retry:
        """The back-off of one of this service's kinds of work (its stage: ``work``, see
        :func:`~services.common.metrics.stage_label`): from ``first`` seconds, doubling up
        to ``retry_max_seconds``."""
        return Retry(
            self.metrics,
            self.log,
            stage=stage_label(self.service, work),
            first=first,
            cap=self.settings.retry_max_seconds,
        )

    async def every(
        self,
        seconds: float,
        job: Callable[[], Awaitable[float | None]],
        *,
        work: str,
        failed: str,
        first_retry: float | None = None,
        wakeup: asyncio.Event | None = None,
        fields: Callable[[], Mapping[str, object]] = no_fields,
    ) -> None:
        """Run a background loop of this service once it is :meth:`ready`: ``job`` every
        ``seconds`` (see :func:`services.common.retry.every`), backing off from
        ``first_retry`` (default: ``seconds``) after a failure logged as ``failed``."""
        await self.ready()
        retry = self.retry(work, first=seconds if first_retry is None else first_retry)
        await every(seconds, job, retry, failed=failed, wakeup=wakeup, fields=fields)

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
