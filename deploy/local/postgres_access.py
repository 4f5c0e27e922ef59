"""Who may connect to the local PostgreSQL, and how: TLS, client authentication and the
login users of the product's roles.

* **TLS**: a local CA made with ``openssl`` (``<run dir>/postgres-tls/ca.pem``, what
  clients trust) signs a server certificate for ``localhost`` and ``127.0.0.1``, kept in the
  data directory as ``server.crt``/``server.key``; ``ssl = on`` (``ALTER SYSTEM``, then a
  reload: no restart of a running server). Plain connections keep working; a client that
  wants TLS asks for it (``?sslmode=verify-full&sslrootcert=<ca.pem>``).
* **Login users**: one LOGIN user ``<role>_login`` per group role of the roles file
  (``services/common/database_roles.yaml``: ``mash_intake_login`` is a member of
  ``mash_intake``, ...) and ``mash_migrator_login`` for the migration role, each with a
  password generated once into ``<run dir>/postgres-credentials/<login>.password`` (0600)
  and set again on every ``up``. In production the operator creates the login roles and
  grants them membership; the group roles and their privileges are ``mash db migrate``'s.
* **pg_hba.conf** (rewritten on every ``up``): those users log in with their password
  (scram-sha-256); the migrator only over TLS (``hostssl``; refused without); everyone
  else as before (trust on 127.0.0.1, the ``mash`` superuser the tests and tools use).

Standard library only (see ``stack.py``).
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import tempfile
from pathlib import Path
from urllib.parse import quote, urlencode

from deploy.local.config import HOST, PG_DATABASE, Config, StackError
from deploy.local.host import ensure_password, run, write_private

#: The roles file; this module reads only the role names from it (``  - role: <name>``
#: lines and ``migrator: <name>``); ``mash db migrate`` parses the whole file.
ROLES_FILE = Path(__file__).resolve().parents[2] / "services" / "common" / "database_roles.yaml"
_ROLE_LINE = re.compile(r"^  - role: *(mash_[a-z][a-z0-9_]*) *(?:#.*)?$")
_MIGRATOR_LINE = re.compile(r"^migrator: *(mash_[a-z][a-z0-9_]*) *(?:#.*)?$")
PG_OS_USER = "postgres"
#: The server certificate's names: what ``sslmode=verify-full`` checks the host against.
SERVER_NAMES = "DNS:localhost,IP:127.0.0.1,IP:::1"


def database_roles(path: Path = ROLES_FILE) -> tuple[str, list[str]]:
    """(migration role, group roles) named in the roles file (no YAML parser here)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise StackError(f"cannot read the roles file {path}: {exc}") from None
    migrator = None
    roles = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("migrator:"):
            match = _MIGRATOR_LINE.match(line)
            if match is None:
                raise StackError(f"{path}:{number}: written `migrator: mash_<name>`")
            migrator = match.group(1)
        elif line.lstrip().startswith("- role:"):
            match = _ROLE_LINE.match(line)
            if match is None:
                raise StackError(f"{path}:{number}: a role is written `  - role: mash_<name>`")
            roles.append(match.group(1))
    if migrator is None or not roles:
        raise StackError(f"{path} names no migrator or no role")
    return migrator, roles


def login_name(role: str) -> str:
    """The local stack's LOGIN user of group role ``role``."""
    return f"{role}_login"


def login_users(path: Path = ROLES_FILE) -> list[str]:
    """Every login user the local stack creates: the migrator's, then one per group role."""
    migrator, roles = database_roles(path)
    return [login_name(migrator), *(login_name(r) for r in roles)]


def ensure_login_password(cfg: Config, login: str) -> str:
    """The password of ``login``, generated (URL-safe, 0600) the first time."""
    return ensure_password(cfg.pg_password_file(login))


def read_login_password(cfg: Config, login: str) -> str:
    """The generated password of ``login``."""
    try:
        return cfg.pg_password_file(login).read_text().strip()
    except OSError as exc:
        raise StackError(f"no password for {login}: {exc} (run stack.py up)") from None


def role_database_url(
    cfg: Config, role: str, database: str = PG_DATABASE, *, tls: bool = True
) -> str:
    """DSN of ``role``'s login user on the local PostgreSQL (verified TLS unless not
    ``tls``): what ``make run`` and the tests give each service as DATABASE_URL."""
    login = login_name(role)
    password = read_login_password(cfg, login)
    url = f"postgresql://{login}:{quote(password, safe='')}@{HOST}:{cfg.pg_port}/{database}"
    if tls:
        url += "?" + urlencode({"sslmode": "verify-full", "sslrootcert": str(cfg.pg_ca_file)})
    return url


# ----------------------------------------------------------------------------- TLS


def _openssl() -> str:
    tool = shutil.which("openssl")
    if tool is None:
        raise StackError("openssl not found (PostgreSQL TLS); apt-get install openssl")
    return tool


def ensure_pg_ca(cfg: Config) -> None:
    """The local CA (key 0600, certificate world-readable), made once."""
    if cfg.pg_ca_file.is_file() and cfg.pg_ca_key.is_file():
        return
    cfg.pg_tls_dir.mkdir(parents=True, exist_ok=True)
    cfg.pg_tls_dir.chmod(0o755)  # the certificate is public; the key file is 0600
    run(
        [
            _openssl(),
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(cfg.pg_ca_key),
            "-out",
            str(cfg.pg_ca_file),
            "-days",
            "3650",
            "-subj",
            "/CN=mash-router local PostgreSQL CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        cwd=cfg.pg_tls_dir,
    )
    cfg.pg_ca_key.chmod(0o600)
    cfg.pg_ca_file.chmod(0o644)


def _signed_by_ca(cfg: Config, cert: Path) -> bool:
    proc = run(
        [_openssl(), "verify", "-CAfile", str(cfg.pg_ca_file), str(cert)],
        check=False,
        cwd=cfg.pg_tls_dir,
    )
    return proc.returncode == 0


def ensure_server_certificate(cfg: Config) -> bool:
    """``server.crt``/``server.key`` in the data directory, signed by the local CA, owned
    by the postgres OS user when root; True when (re)made."""
    cert, key = cfg.pg_data / "server.crt", cfg.pg_data / "server.key"
    ensure_pg_ca(cfg)
    if cert.is_file() and key.is_file() and _signed_by_ca(cfg, cert):
        return False
    openssl = _openssl()
    with tempfile.TemporaryDirectory(dir=cfg.pg_tls_dir) as scratch:
        work = Path(scratch)
        (work / "ext.cnf").write_text(
            f"subjectAltName={SERVER_NAMES}\n"
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
            "subjectKeyIdentifier=hash\n"
            "authorityKeyIdentifier=keyid\n"
        )
        request = ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key"]
        run([openssl, *request, "-out", "server.csr", "-subj", "/CN=localhost"], cwd=work)
        sign = ["x509", "-req", "-in", "server.csr", "-CA", str(cfg.pg_ca_file)]
        sign += ["-CAkey", str(cfg.pg_ca_key), "-set_serial", str(secrets.randbits(63))]
        run([openssl, *sign, "-days", "825", "-extfile", "ext.cnf", "-out", "server.crt"], cwd=work)
        for name in ("server.crt", "server.key"):
            shutil.copyfile(work / name, cfg.pg_data / name)
    key.chmod(0o600)  # PostgreSQL refuses a key others can read
    _give_to_postgres(cert, key)
    return True


# ------------------------------------------------------------------------- pg_hba.conf


def hba_conf(cfg: Config) -> str:
    """The cluster's pg_hba.conf: the login users by password (the migrator over TLS
    only), everyone else trusted on the loopback as before."""
    migrator, roles = database_roles()
    services = ",".join(login_name(r) for r in roles)
    migrator_login = login_name(migrator)
    lines = [
        "# Written by deploy/local/postgres_access.py on every `stack.py up`; edits are lost.",
        "# TYPE    DATABASE     USER    ADDRESS    METHOD",
        "local     all          all                trust",
        f"hostssl   all          {migrator_login}  127.0.0.1/32  scram-sha-256",
        f"hostssl   all          {migrator_login}  ::1/128       scram-sha-256",
        f"host      all          {migrator_login}  all           reject",
        f"host      all          {services}  127.0.0.1/32  scram-sha-256",
        f"host      all          {services}  ::1/128       scram-sha-256",
        "host      all          all     127.0.0.1/32  trust",
        "host      all          all     ::1/128       trust",
        "local     replication  all                trust",
        "host      replication  all     127.0.0.1/32  trust",
    ]
    return "\n".join(lines) + "\n"


def write_hba_conf(cfg: Config) -> bool:
    """Write pg_hba.conf into the data directory; True when it changed."""
    path = cfg.pg_data / "pg_hba.conf"
    text = hba_conf(cfg)
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    write_private(path, text)
    _give_to_postgres(path)
    return True


def _give_to_postgres(*paths: Path) -> None:
    if os.geteuid() != 0:
        return
    user = pwd.getpwnam(PG_OS_USER)
    for path in paths:
        os.chown(path, user.pw_uid, user.pw_gid)


def prepare_access(cfg: Config) -> None:
    """Before the server (re)reads its configuration: certificate, key and pg_hba.conf."""
    ensure_server_certificate(cfg)
    write_hba_conf(cfg)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def access_sql(cfg: Config) -> str:
    """SQL (for psql, as the superuser) that turns TLS on, creates the group roles and
    their login users (passwords set each time) and reloads the configuration."""
    migrator, roles = database_roles()
    statements = [
        "ALTER SYSTEM SET ssl = on",
        "ALTER SYSTEM SET password_encryption = 'scram-sha-256'",
    ]
    for role in [migrator, *roles]:
        login = login_name(role)
        password = _literal(ensure_login_password(cfg, login))
        statements += [
            f"SELECT 'CREATE ROLE {role} NOLOGIN' WHERE NOT EXISTS"
            f" (SELECT FROM pg_roles WHERE rolname = '{role}') \\gexec",
            f"SELECT 'CREATE ROLE {login} LOGIN' WHERE NOT EXISTS"
            f" (SELECT FROM pg_roles WHERE rolname = '{login}') \\gexec",
            f"ALTER ROLE {login} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {password}",
            f"GRANT {role} TO {login}",
        ]
    statements.append("SELECT pg_reload_conf()")
    return "".join(s + "\n" if s.endswith("\\gexec") else s + ";\n" for s in statements)
