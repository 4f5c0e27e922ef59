"""Where the local stack lives and which ports it uses: :class:`Config` (from the
environment), the pinned Kafka version, and :class:`StackError`.

Every other module of ``deploy/local`` takes a :class:`Config`, built once by ``stack.py``
from the environment; :meth:`Config.secured` is the secured broker's view of it (its own
run dir and ports), on which the Kafka paths and functions apply to that broker. Kept
apart from the servers' code so that each of them (``kafka_broker``, ``kafka_secure``,
``postgres``) needs only this and ``host``.

Standard library only: ``stack.py`` runs before the project's virtualenv may exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

# The one place the Kafka version is pinned (Scala 2.13 build: org.apache.kafka:kafka_2.13).
# docker-compose.yml uses the same version (image apache/kafka:<KAFKA_VERSION>).
KAFKA_VERSION = "4.0.2"
SCALA_BINARY_VERSION = "2.13"

DEFAULT_KAFKA_PORT = 19092
DEFAULT_CONTROLLER_PORT = 19093
DEFAULT_SECURE_KAFKA_PORT = 19094
DEFAULT_SECURE_CONTROLLER_PORT = 19095
DEFAULT_SECURE_MTLS_PORT = 19096
DEFAULT_PG_PORT = 54329
HOST = "127.0.0.1"

PG_ROLE = "mash"
PG_DATABASE = "mash"


class StackError(Exception):
    """A failure to report to the user as one line (plus any log tail printed before)."""


def _env_port(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise StackError(f"{name}={raw!r} is not a port number") from None
    if not 0 < port < 65536:
        raise StackError(f"{name}={port} is out of range 1-65535")
    return port


@dataclass(frozen=True)
class Config:
    """Where things live and which ports they use; derived from the environment."""

    cache_dir: Path
    run_dir: Path
    kafka_port: int
    controller_port: int
    pg_port: int
    external_kafka: str | None
    external_database: str | None
    secure_kafka_port: int = DEFAULT_SECURE_KAFKA_PORT
    secure_controller_port: int = DEFAULT_SECURE_CONTROLLER_PORT
    #: The secured broker's mutual-TLS client listener (the principal is the certificate's CN).
    secure_mtls_port: int = DEFAULT_SECURE_MTLS_PORT
    #: True for the secured broker's view (:meth:`secured`): its own run dir and ports.
    secure: bool = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Config:
        """Build the configuration from ``environ`` (normally ``os.environ``)."""
        cache_raw = environ.get("MASH_CACHE_DIR", "").strip()
        cache_dir = Path(cache_raw or "~/.cache/mash-router").expanduser().absolute()
        run_raw = environ.get("MASH_RUN_DIR", "").strip()
        if run_raw:
            run_dir = Path(run_raw).expanduser().absolute()
        elif Path("/dev/shm").is_dir():
            run_dir = Path("/dev/shm/mash-router")
        else:
            run_dir = cache_dir / "run"
        kafka_port = _env_port(environ, "MASH_KAFKA_PORT", DEFAULT_KAFKA_PORT)
        controller_port = _env_port(environ, "MASH_KAFKA_CONTROLLER_PORT", DEFAULT_CONTROLLER_PORT)
        if controller_port == kafka_port:
            raise StackError("MASH_KAFKA_PORT and MASH_KAFKA_CONTROLLER_PORT must differ")
        pg_port = _env_port(environ, "MASH_PG_PORT", DEFAULT_PG_PORT)
        local_bootstrap = f"{HOST}:{kafka_port}"
        local_db = local_database_url(pg_port)
        # A value equal to the local stack's own address (e.g. after `eval "$(stack.py env)"`)
        # means "the local stack", not an external server.
        ext_kafka = environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip() or None
        if ext_kafka == local_bootstrap:
            ext_kafka = None
        ext_db = environ.get("DATABASE_URL", "").strip() or None
        if ext_db == local_db:
            ext_db = None
        secure_port = _env_port(environ, "MASH_SECURE_KAFKA_PORT", DEFAULT_SECURE_KAFKA_PORT)
        secure_controller = _env_port(
            environ, "MASH_SECURE_KAFKA_CONTROLLER_PORT", DEFAULT_SECURE_CONTROLLER_PORT
        )
        secure_mtls = _env_port(environ, "MASH_SECURE_KAFKA_MTLS_PORT", DEFAULT_SECURE_MTLS_PORT)
        return cls(
            cache_dir,
            run_dir,
            kafka_port,
            controller_port,
            pg_port,
            ext_kafka,
            ext_db,
            secure_port,
            secure_controller,
            secure_mtls,
        )

    def secured(self) -> Config:
        """The secured broker's view: run dir ``<run dir>/secure``, the secure ports, never
        an external server. Every Kafka path and function then applies to that broker."""
        if self.secure:
            return self
        ports = [self.kafka_port, self.controller_port, self.pg_port]
        secure = [self.secure_kafka_port, self.secure_controller_port, self.secure_mtls_port]
        if set(secure) & set(ports) or len(set(secure)) < len(secure):
            raise StackError(
                "MASH_SECURE_KAFKA_PORT, MASH_SECURE_KAFKA_CONTROLLER_PORT and "
                "MASH_SECURE_KAFKA_MTLS_PORT must differ from each other and from the "
                f"plaintext stack's ports {ports}"
            )
        return replace(
            self,
            run_dir=self.run_dir / "secure",
            kafka_port=self.secure_kafka_port,
            controller_port=self.secure_controller_port,
            external_kafka=None,
            external_database=None,
            secure=True,
        )

    # Kafka paths -----------------------------------------------------------------------
    @property
    def kafka_home(self) -> Path:
        """Cache folder for this Kafka version (libs + completion marker)."""
        return self.cache_dir / f"kafka-{KAFKA_VERSION}"

    @property
    def kafka_libs(self) -> Path:
        """Folder holding every jar of the broker's runtime classpath."""
        return self.kafka_home / "libs"

    @property
    def kafka_dir(self) -> Path:
        """Run folder of the local broker."""
        return self.run_dir / "kafka"

    @property
    def kafka_data(self) -> Path:
        """The broker's log.dirs (topic data and KRaft metadata log)."""
        return self.kafka_dir / "data"

    @property
    def kafka_logs(self) -> Path:
        """Folder for the broker's own log files (kafka.logs.dir)."""
        return self.kafka_dir / "logs"

    @property
    def kafka_stdout(self) -> Path:
        """The broker process's stdout/stderr (WARN and up, JVM errors)."""
        return self.kafka_dir / "kafka.out"

    @property
    def kafka_properties(self) -> Path:
        """Generated server.properties."""
        return self.kafka_dir / "server.properties"

    @property
    def kafka_pid_file(self) -> Path:
        """PID file of the broker process."""
        return self.kafka_dir / "kafka.pid"

    @property
    def cluster_id_file(self) -> Path:
        """Persisted KRaft cluster id, so a re-``up`` reuses the formatted data dir."""
        return self.kafka_dir / "cluster.id"

    @property
    def bootstrap(self) -> str:
        """Bootstrap address of the local broker."""
        return f"{HOST}:{self.kafka_port}"

    @property
    def kafka_label(self) -> str:
        """How messages name this broker: ``kafka`` or ``kafka-secure``."""
        return "kafka-secure" if self.secure else "kafka"

    # Secured broker paths (meaningful on the :meth:`secured` view) ----------------------
    @property
    def tls_dir(self) -> Path:
        """The local CA, the broker's keystore and the truststore (mode 0700)."""
        return self.run_dir / "tls"

    @property
    def ca_file(self) -> Path:
        """PEM certificate of the local CA: what clients trust."""
        return self.tls_dir / "ca.pem"

    @property
    def credentials_dir(self) -> Path:
        """One ``<principal>.password`` file per SCRAM user (mode 0700, files 0600)."""
        return self.run_dir / "credentials"

    def password_file(self, principal: str) -> Path:
        """Where the generated password of ``principal`` is kept."""
        return self.credentials_dir / f"{principal}.password"

    @property
    def admin_properties(self) -> Path:
        """Kafka client properties of the ``admin`` super user (for Kafka's own tools)."""
        return self.run_dir / "admin.properties"

    @property
    def connection_file(self) -> Path:
        """JSON summary for clients: bootstrap, protocol, mechanism, CA and credentials."""
        return self.run_dir / "connection.json"

    @property
    def scram_users_file(self) -> Path:
        """Names whose SCRAM credentials the broker holds (added at format time or later)."""
        return self.kafka_dir / "scram-users"

    # PostgreSQL paths ------------------------------------------------------------------
    @property
    def pg_dir(self) -> Path:
        """Run folder of the local PostgreSQL (owned by the postgres OS user when root)."""
        return self.run_dir / "postgres"

    @property
    def pg_data(self) -> Path:
        """The private cluster's data directory."""
        return self.pg_dir / "data"

    @property
    def pg_socket_dir(self) -> Path:
        """Unix socket directory (keeps us off /var/run/postgresql)."""
        return self.pg_dir / "socket"

    @property
    def pg_log(self) -> Path:
        """Server log written by pg_ctl -l."""
        return self.pg_dir / "postgres.log"

    @property
    def pg_tls_dir(self) -> Path:
        """The local PostgreSQL CA (certificate public, key 0600)."""
        return self.run_dir / "postgres-tls"

    @property
    def pg_ca_file(self) -> Path:
        """PEM certificate of the CA that signed the PostgreSQL server's: what clients
        trust (``sslrootcert``)."""
        return self.pg_tls_dir / "ca.pem"

    @property
    def pg_ca_key(self) -> Path:
        """Private key of the local PostgreSQL CA."""
        return self.pg_tls_dir / "ca.key"

    @property
    def pg_credentials_dir(self) -> Path:
        """One ``<login>.password`` per PostgreSQL login user (mode 0700, files 0600)."""
        return self.run_dir / "postgres-credentials"

    def pg_password_file(self, login: str) -> Path:
        """Where the generated password of PostgreSQL login user ``login`` is kept."""
        return self.pg_credentials_dir / f"{login}.password"

    @property
    def database_url(self) -> str:
        """URL of the local ``mash`` database."""
        return local_database_url(self.pg_port)

    # Effective addresses (external when given) ---------------------------------------
    @property
    def effective_bootstrap(self) -> str:
        """KAFKA_BOOTSTRAP_SERVERS the services should use."""
        return self.external_kafka or self.bootstrap

    @property
    def effective_database_url(self) -> str:
        """DATABASE_URL the services should use."""
        return self.external_database or self.database_url


def local_database_url(port: int) -> str:
    """The DATABASE_URL of the local stack's database on ``port``."""
    return f"postgresql://{PG_ROLE}@{HOST}:{port}/{PG_DATABASE}"
