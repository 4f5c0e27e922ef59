"""TLS material of the secured broker, made with Java's ``keytool`` (it comes with the
Java runtime the broker needs anyway; openssl only writes a client's key as PEM): a local
CA (``ca.p12``, and ``ca.pem``, which clients trust), the broker's key and certificate
(``CN=broker``, for 127.0.0.1 and localhost, signed by the CA) in ``broker.p12``, and
``truststore.p12`` holding the CA, all protected by one generated store password.

They live in ``<run dir>/secure/tls`` (mode 0700, files 0600) and are made once, all or
nothing (:func:`ensure_tls`). Standard library only (see ``stack.py``).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from deploy.local.config import HOST, Config, StackError
from deploy.local.host import ensure_password, private_dir, run, say
from deploy.local.kafka_broker import INSTALL_JAVA_MAVEN, kafka_pid, require_java
from deploy.local.scram_users import BROKER_USER

#: Validity of the local CA and of the broker's certificate (days).
CA_VALIDITY_DAYS = 3650
CERT_VALIDITY_DAYS = 825
TLS_FILES = ("ca.p12", "ca.pem", "broker.p12", "truststore.p12", "store.password")


def keytool_path() -> str:
    """Java's keytool (beside the java binary, else on PATH)."""
    java = require_java()
    beside = Path(java).resolve().parent / "keytool"
    if beside.is_file():
        return str(beside)
    tool = shutil.which("keytool")
    if tool is None:
        raise StackError(f"keytool not found beside {java} or on PATH; {INSTALL_JAVA_MAVEN}")
    return tool


def _keytool(tool: str, *args: str) -> None:
    run([tool, *args, "-noprompt"], timeout=120)


def make_ca(tool: str, directory: Path, password: str, dname: str) -> Path:
    """A self-signed CA in ``directory``: ``ca.p12`` (its key) and ``ca.pem`` (its
    certificate, what clients trust). Returns the PEM path."""
    store = str(directory / "ca.p12")
    pem = directory / "ca.pem"
    common = ["-keystore", store, "-storetype", "PKCS12", "-storepass", password, "-alias", "ca"]
    _keytool(
        tool,
        "-genkeypair",
        *common,
        "-dname",
        dname,
        "-keyalg",
        "EC",
        "-groupname",
        "secp256r1",
        "-validity",
        str(CA_VALIDITY_DAYS),
        "-ext",
        "bc:c=ca:true,pathlen:0",
        "-ext",
        "ku:c=keyCertSign,cRLSign",
    )
    _keytool(tool, "-exportcert", *common, "-rfc", "-file", str(pem))
    return pem


#: The names the local broker's certificate is valid for (keytool's ``san=`` syntax).
LOCAL_BROKER_NAMES = f"ip:{HOST},dns:localhost"


def make_broker_keystores(
    tool: str, directory: Path, password: str, names: str = LOCAL_BROKER_NAMES
) -> None:
    """The broker's key and certificate (CN=broker, valid for ``names``: by default
    127.0.0.1 and localhost), signed by the CA in ``directory``: ``broker.p12``; and
    ``truststore.p12`` holding the CA. Clients always verify the host name, so a broker
    reached by another name (``kafka`` on a compose network) needs that name here."""
    broker = str(directory / "broker.p12")
    ca_store = str(directory / "ca.p12")
    csr, signed, pem = directory / "broker.csr", directory / "broker.pem", directory / "ca.pem"
    store = ["-storetype", "PKCS12", "-storepass", password]
    _keytool(
        tool,
        "-genkeypair",
        "-keystore",
        broker,
        *store,
        "-alias",
        BROKER_USER,
        "-dname",
        f"CN={BROKER_USER}",
        "-keyalg",
        "EC",
        "-groupname",
        "secp256r1",
        "-validity",
        str(CERT_VALIDITY_DAYS),
    )
    _keytool(
        tool, "-certreq", "-keystore", broker, *store, "-alias", BROKER_USER, "-file", str(csr)
    )
    _keytool(
        tool,
        "-gencert",
        "-keystore",
        ca_store,
        *store,
        "-alias",
        "ca",
        "-infile",
        str(csr),
        "-outfile",
        str(signed),
        "-rfc",
        "-validity",
        str(CERT_VALIDITY_DAYS),
        "-ext",
        f"san={names}",
        "-ext",
        "ku:c=digitalSignature",
        # Server on both listeners; client when the broker calls its own controller.
        "-ext",
        "eku=serverAuth,clientAuth",
    )
    _keytool(tool, "-importcert", "-keystore", broker, *store, "-alias", "ca", "-file", str(pem))
    _keytool(
        tool,
        "-importcert",
        "-keystore",
        broker,
        *store,
        "-alias",
        BROKER_USER,
        "-file",
        str(signed),
    )
    truststore = str(directory / "truststore.p12")
    _keytool(
        tool, "-importcert", "-keystore", truststore, *store, "-alias", "ca", "-file", str(pem)
    )
    csr.unlink(missing_ok=True)
    signed.unlink(missing_ok=True)


def make_client_certificate(
    cfg: Config,
    principal: str,
    directory: Path,
    *,
    ca_dir: Path | None = None,
    start: str | None = None,
    validity_days: int = CERT_VALIDITY_DAYS,
) -> tuple[Path, Path]:
    """A client certificate ``CN=<principal>`` for the mutual-TLS listener, signed by the
    local CA (or the CA in ``ca_dir``, made by :func:`make_ca` with the local store
    password): ``(<principal>.crt, <principal>.key)`` in ``directory``, PEM, the key
    unencrypted (mode 0600). ``start`` is keytool's ``-startdate`` (e.g. ``-10d``: with a
    short validity, a certificate that has already expired). keytool cannot write a PEM
    key, so ``openssl`` converts it."""
    tool = keytool_path()
    password = (cfg.tls_dir / "store.password").read_text().strip()
    ca_store = (ca_dir or cfg.tls_dir) / "ca.p12"
    store = directory / f"{principal}.p12"
    csr, cert, key = (directory / f"{principal}.{ext}" for ext in ("csr", "crt", "key"))
    common = ["-storetype", "PKCS12", "-storepass", password]
    _keytool(
        tool,
        "-genkeypair",
        "-keystore",
        str(store),
        *common,
        "-alias",
        principal,
        "-dname",
        f"CN={principal}",
        "-keyalg",
        "EC",
        "-groupname",
        "secp256r1",
    )
    _keytool(
        tool, "-certreq", "-keystore", str(store), *common, "-alias", principal, "-file", str(csr)
    )
    dates = ["-startdate", start] if start else []
    _keytool(
        tool,
        "-gencert",
        "-keystore",
        str(ca_store),
        *common,
        "-alias",
        "ca",
        "-infile",
        str(csr),
        "-outfile",
        str(cert),
        "-rfc",
        *dates,
        "-validity",
        str(validity_days),
        "-ext",
        "ku:c=digitalSignature",
        "-ext",
        "eku=clientAuth",
    )
    openssl = shutil.which("openssl")
    if openssl is None:
        raise StackError("openssl not found (apt-get install openssl)")
    to_pem = ["pkcs12", "-in", str(store), "-nocerts", "-nodes", "-passin", "stdin"]
    run(
        [openssl, *to_pem, "-out", str(key)],
        stdin_text=password + "\n",
        timeout=60,
    )
    key.chmod(0o600)
    csr.unlink(missing_ok=True)
    store.unlink(missing_ok=True)
    return cert, key


def ensure_tls(cfg: Config) -> None:
    """Make the local CA, the broker's keystore and the truststore once (all or nothing)."""
    tls = private_dir(cfg.tls_dir)
    if all((tls / name).is_file() for name in TLS_FILES):
        return
    if cfg.kafka_dir.exists() and kafka_pid(cfg) is not None:
        raise StackError(
            f"the secured broker runs but its TLS files in {tls} are incomplete; "
            "start afresh with `stack.py up --secure --reset`"
        )
    for leftover in tls.iterdir():  # a half-made set is made again
        leftover.unlink()
    started = time.monotonic()
    tool = keytool_path()
    password = ensure_password(tls / "store.password")
    make_ca(tool, tls, password, "CN=mash-router local CA,O=mash-router")
    make_broker_keystores(tool, tls, password)
    for path in tls.iterdir():
        path.chmod(0o600)
    say(
        f"kafka-secure: made a local CA and broker certificate in {time.monotonic() - started:.1f}s"
    )
