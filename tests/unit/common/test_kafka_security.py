"""Kafka client security: the ``MASH_KAFKA_*`` settings, the aiokafka arguments and Faust
credentials made from them, one-line errors for inconsistent combinations, and secrets
that never show (repr, dumps, errors, logs). No broker needed: the TLS material is made
here with the ``openssl`` command."""

from __future__ import annotations

import ast
import json
import ssl
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types.auth import AuthProtocol

from mash.cli import main as mash
from mash.replay import ReplayOptions
from services.common.kafka_security import (
    PLAINTEXT,
    ClientSecurity,
    FileTokenProvider,
    faust_broker_credentials,
    kafka_client_security,
    security_log_fields,
)
from services.common.logging import configure_logging
from services.common.settings import Settings, SettingsError, env_var, load_settings
from tests.support import REPO

SASL_PASSWORD = "sasl-Pa55-Secret"
KEY_PASSWORD = "key-Pa55-Secret"
TOKEN = "eyJ-token-Secret"
SECRETS = (SASL_PASSWORD, KEY_PASSWORD, TOKEN)


@pytest.fixture(autouse=True)
def no_security_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from the defaults, whatever the shell running pytest exports."""
    for field in Settings.model_fields:
        if field.startswith("kafka_") and field != "kafka_bootstrap_servers":
            monkeypatch.delenv(env_var(field), raising=False)


@dataclass(frozen=True)
class Tls:
    """A CA, and a client certificate it signed whose key is encrypted with KEY_PASSWORD."""

    ca: Path
    cert: Path
    key: Path
    key_password_file: Path


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """TLS material made with openssl (.ci/run installs it where missing)."""
    d = tmp_path_factory.mktemp("tls")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    openssl(
        "req", "-x509", *ec, "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-subj", "/CN=mash-test-ca", "-days", "2",
    )  # fmt: skip
    openssl(
        "req", *ec, "-keyout", "client.key", "-passout", f"pass:{KEY_PASSWORD}",
        "-out", "client.csr", "-subj", "/CN=mash-intake",
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "client.pem", "-days", "2",
    )  # fmt: skip
    (d / "key-password").write_text(KEY_PASSWORD + "\n")
    return Tls(d / "ca.pem", d / "client.pem", d / "client.key", d / "key-password")


@pytest.fixture
def secret_files(tmp_path: Path) -> dict[str, Path]:
    """A SASL password file (with the trailing newline ``echo`` adds) and a token file."""
    password = tmp_path / "sasl-password"
    password.write_text(SASL_PASSWORD + "\n")
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    return {"password": password, "token": token}


def settings(**fields: Any) -> Settings:
    """Settings from field values (paths as strings), through the one loader."""
    return load_settings(**{k: str(v) if isinstance(v, Path) else v for k, v in fields.items()})


def scram(tls: Tls | None = None, **more: Any) -> Settings:
    """SCRAM-SHA-512, over TLS when given the CA."""
    fields: dict[str, Any] = {
        "kafka_security_protocol": "SASL_SSL" if tls else "SASL_PLAINTEXT",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": "mash-intake",
        "kafka_sasl_password": SASL_PASSWORD,
    }
    if tls is not None:
        fields["kafka_ssl_ca_file"] = tls.ca
    return settings(**{**fields, **more})


# --- parsing -------------------------------------------------------------------------------


def test_the_default_is_plaintext_for_every_client() -> None:
    s = Settings()
    assert s.kafka_security_protocol == "PLAINTEXT"
    assert dict(kafka_client_security(s)) == {"security_protocol": "PLAINTEXT"}
    assert dict(PLAINTEXT) == {"security_protocol": "PLAINTEXT"}
    assert faust_broker_credentials(s) is None


def test_settings_come_from_the_mash_kafka_variables_and_secret_files(
    monkeypatch: pytest.MonkeyPatch, tls: Tls, secret_files: dict[str, Path]
) -> None:
    monkeypatch.setenv("MASH_KAFKA_SECURITY_PROTOCOL", "sasl_ssl")  # any case
    monkeypatch.setenv("MASH_KAFKA_SASL_MECHANISM", "scram-sha-256")
    monkeypatch.setenv("MASH_KAFKA_SASL_USERNAME", "mash-routing")
    monkeypatch.setenv("MASH_KAFKA_SASL_PASSWORD_FILE", str(secret_files["password"]))
    monkeypatch.setenv("MASH_KAFKA_SSL_CA_FILE", str(tls.ca))
    monkeypatch.setenv("MASH_KAFKA_SSL_CERT_FILE", "")  # empty, as compose files write it
    s = load_settings()
    assert s.kafka_security_protocol == "SASL_SSL"
    assert s.kafka_sasl_mechanism == "SCRAM-SHA-256"
    assert s.kafka_sasl_username == "mash-routing"
    assert s.kafka_sasl_password is None
    assert s.kafka_ssl_cert_file is None
    password = s.kafka_sasl_password_value()
    assert password is not None
    assert password.get_secret_value() == SASL_PASSWORD  # the newline is not part of it


def test_a_password_file_is_read_again_for_each_new_client(
    secret_files: dict[str, Path],
) -> None:
    s = scram(kafka_sasl_password=None, kafka_sasl_password_file=secret_files["password"])
    assert kafka_client_security(s)["sasl_plain_password"] == SASL_PASSWORD
    secret_files["password"].write_text("rotated\n")
    assert kafka_client_security(s)["sasl_plain_password"] == "rotated"


def test_every_variable_is_named_in_the_mash_kafka_style() -> None:
    names = {env_var(f) for f in Settings.model_fields if f.startswith("kafka_")}
    assert names == {
        "KAFKA_BOOTSTRAP_SERVERS",
        "MASH_KAFKA_SECURITY_PROTOCOL",
        "MASH_KAFKA_SASL_MECHANISM",
        "MASH_KAFKA_SASL_USERNAME",
        "MASH_KAFKA_SASL_PASSWORD",
        "MASH_KAFKA_SASL_PASSWORD_FILE",
        "MASH_KAFKA_SASL_OAUTH_TOKEN_FILE",
        "MASH_KAFKA_SSL_CA_FILE",
        "MASH_KAFKA_SSL_CERT_FILE",
        "MASH_KAFKA_SSL_KEY_FILE",
        "MASH_KAFKA_SSL_KEY_PASSWORD",
        "MASH_KAFKA_SSL_KEY_PASSWORD_FILE",
    }


# --- aiokafka arguments and Faust credentials, per protocol and mechanism --------------------


def test_ssl_verifies_the_broker_with_the_given_ca(tls: Tls) -> None:
    s = settings(kafka_security_protocol="SSL", kafka_ssl_ca_file=tls.ca)
    kwargs = kafka_client_security(s)
    assert set(kwargs) == {"security_protocol", "ssl_context"}
    assert kwargs["security_protocol"] == "SSL"
    context = kwargs["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] != []
    credentials = faust_broker_credentials(s)
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.protocol is AuthProtocol.SSL


def test_ssl_without_a_ca_trusts_the_system_s_cas() -> None:
    kwargs = kafka_client_security(settings(kafka_security_protocol="SSL"))
    assert kwargs["ssl_context"].verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize("from_file", [False, True], ids=["key-password", "key-password-file"])
def test_mutual_tls_loads_the_client_certificate_and_encrypted_key(
    tls: Tls, from_file: bool
) -> None:
    password: dict[str, Any] = (
        {"kafka_ssl_key_password_file": tls.key_password_file}
        if from_file
        else {"kafka_ssl_key_password": KEY_PASSWORD}
    )
    s = settings(
        kafka_security_protocol="SSL",
        kafka_ssl_ca_file=tls.ca,
        kafka_ssl_cert_file=tls.cert,
        kafka_ssl_key_file=tls.key,
        **password,
    )
    assert kafka_client_security(s)["security_protocol"] == "SSL"
    assert isinstance(faust_broker_credentials(s), faust.SSLCredentials)


def test_a_wrong_key_password_is_one_line_naming_the_files_not_the_password(tls: Tls) -> None:
    s = settings(
        kafka_security_protocol="SSL",
        kafka_ssl_ca_file=tls.ca,
        kafka_ssl_cert_file=tls.cert,
        kafka_ssl_key_file=tls.key,
        kafka_ssl_key_password="not-" + KEY_PASSWORD,
    )
    for build in (kafka_client_security, faust_broker_credentials):
        with pytest.raises(SettingsError) as caught:
            build(s)
        message = str(caught.value)
        assert "MASH_KAFKA_SSL_CERT_FILE/MASH_KAFKA_SSL_KEY_FILE" in message
        assert "\n" not in message
        assert KEY_PASSWORD not in message


def test_a_ca_file_that_is_no_certificate_is_named(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    with pytest.raises(SettingsError, match=r"^MASH_KAFKA_SSL_CA_FILE: .*ca\.pem holds no usable"):
        kafka_client_security(settings(kafka_security_protocol="SSL", kafka_ssl_ca_file=bogus))


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"])
def test_sasl_ssl_with_a_password_mechanism(tls: Tls, mechanism: str) -> None:
    s = scram(tls, kafka_sasl_mechanism=mechanism)
    kwargs = kafka_client_security(s)
    assert {k: v for k, v in kwargs.items() if k != "ssl_context"} == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "mash-intake",
        "sasl_plain_password": SASL_PASSWORD,
    }
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    credentials = faust_broker_credentials(s)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol is AuthProtocol.SASL_SSL
    assert credentials.mechanism.value == mechanism
    assert (credentials.username, credentials.password) == ("mash-intake", SASL_PASSWORD)


def test_sasl_plaintext_has_no_tls_context() -> None:
    s = scram(kafka_sasl_mechanism="SCRAM-SHA-256")
    assert dict(kafka_client_security(s)) == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "mash-intake",
        "sasl_plain_password": SASL_PASSWORD,
    }
    credentials = faust_broker_credentials(s)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol is AuthProtocol.SASL_PLAINTEXT
    assert credentials.ssl_context is None


def oauth(tls: Tls, token_file: Path) -> Settings:
    return settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="OAUTHBEARER",
        kafka_sasl_oauth_token_file=token_file,
        kafka_ssl_ca_file=tls.ca,
    )


async def test_oauthbearer_reads_the_token_file_at_each_authentication(
    tls: Tls, secret_files: dict[str, Path]
) -> None:
    s = oauth(tls, secret_files["token"])
    kwargs = kafka_client_security(s)
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "OAUTHBEARER"
    assert "sasl_plain_password" not in kwargs
    provider = kwargs["sasl_oauth_token_provider"]
    assert isinstance(provider, FileTokenProvider)
    assert await provider.token() == TOKEN
    secret_files["token"].write_text("refreshed-token")
    assert await provider.token() == "refreshed-token"
    credentials = faust_broker_credentials(s)
    assert isinstance(credentials, faust.OAuthCredentials)
    assert credentials.protocol is AuthProtocol.SASL_SSL
    assert isinstance(credentials.oauth_cb, FileTokenProvider)


def _comparable(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments with objects replaced by their type (contexts and providers are rebuilt)."""
    return {
        k: type(v).__name__ if k in {"ssl_context", "sasl_oauth_token_provider"} else v
        for k, v in kwargs.items()
        if v is not None
    }


@pytest.mark.parametrize(
    "case", ["plaintext", "ssl", "mtls", "sasl_ssl", "sasl_plaintext", "plain", "oauth"]
)
def test_faust_connects_with_the_same_arguments_as_the_aiokafka_clients(
    case: str, tls: Tls, secret_files: dict[str, Path]
) -> None:
    s = {
        "plaintext": lambda: settings(),
        "ssl": lambda: settings(kafka_security_protocol="SSL", kafka_ssl_ca_file=tls.ca),
        "mtls": lambda: settings(
            kafka_security_protocol="SSL",
            kafka_ssl_ca_file=tls.ca,
            kafka_ssl_cert_file=tls.cert,
            kafka_ssl_key_file=tls.key,
            kafka_ssl_key_password_file=tls.key_password_file,
        ),
        "sasl_ssl": lambda: scram(tls),
        "sasl_plaintext": lambda: scram(),
        "plain": lambda: scram(tls, kafka_sasl_mechanism="PLAIN"),
        "oauth": lambda: oauth(tls, secret_files["token"]),
    }[case]()
    ours = _comparable(kafka_client_security(s))
    fausts = _comparable(credentials_to_aiokafka_auth(faust_broker_credentials(s)))
    assert fausts == ours


def test_make_app_hands_faust_the_credentials(tls: Tls, tmp_path: Path) -> None:
    from services.common.kafka import make_app

    app = make_app("intake", scram(tls, data_dir=str(tmp_path)))
    credentials = app.conf.broker_credentials
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol is AuthProtocol.SASL_SSL


# --- one-line errors, without secrets --------------------------------------------------------

BAD: dict[str, tuple[dict[str, Any], str]] = {
    "sasl without mechanism": (
        {"kafka_security_protocol": "SASL_SSL"},
        "MASH_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs MASH_KAFKA_SASL_MECHANISM",
    ),
    "mechanism without sasl": (
        {"kafka_sasl_mechanism": "SCRAM-SHA-512", "kafka_sasl_password": SASL_PASSWORD},
        "MASH_KAFKA_SASL_MECHANISM is set but MASH_KAFKA_SECURITY_PROTOCOL=PLAINTEXT uses no SASL",
    ),
    "password over plain ssl": (
        {"kafka_security_protocol": "SSL", "kafka_sasl_password": SASL_PASSWORD},
        "MASH_KAFKA_SASL_PASSWORD is set but MASH_KAFKA_SECURITY_PROTOCOL=SSL uses no SASL",
    ),
    "ca without tls": (
        {
            "kafka_security_protocol": "SASL_PLAINTEXT",
            "kafka_sasl_mechanism": "PLAIN",
            "kafka_sasl_username": "u",
            "kafka_sasl_password": SASL_PASSWORD,
            "kafka_ssl_ca_file": "/etc/hostname",
        },
        "MASH_KAFKA_SSL_CA_FILE is set but MASH_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT uses no TLS",
    ),
    "no username": (
        {
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": "SCRAM-SHA-256",
            "kafka_sasl_password": SASL_PASSWORD,
        },
        "MASH_KAFKA_SASL_MECHANISM=SCRAM-SHA-256 needs MASH_KAFKA_SASL_USERNAME",
    ),
    "no password": (
        {
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": "SCRAM-SHA-512",
            "kafka_sasl_username": "u",
        },
        "needs one of MASH_KAFKA_SASL_PASSWORD and MASH_KAFKA_SASL_PASSWORD_FILE",
    ),
    "password twice": (
        {
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": "SCRAM-SHA-512",
            "kafka_sasl_username": "u",
            "kafka_sasl_password": SASL_PASSWORD,
            "kafka_sasl_password_file": "PASSWORD_FILE",
        },
        "MASH_KAFKA_SASL_PASSWORD_FILE, not both",
    ),
    "oauth without token": (
        {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "OAUTHBEARER"},
        "MASH_KAFKA_SASL_MECHANISM=OAUTHBEARER needs MASH_KAFKA_SASL_OAUTH_TOKEN_FILE",
    ),
    "oauth with password": (
        {
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": "OAUTHBEARER",
            "kafka_sasl_oauth_token_file": "TOKEN_FILE",
            "kafka_sasl_password": SASL_PASSWORD,
        },
        "MASH_KAFKA_SASL_PASSWORD is not used with MASH_KAFKA_SASL_MECHANISM=OAUTHBEARER",
    ),
    "token with scram": (
        {
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": "SCRAM-SHA-512",
            "kafka_sasl_username": "u",
            "kafka_sasl_password": SASL_PASSWORD,
            "kafka_sasl_oauth_token_file": "TOKEN_FILE",
        },
        "MASH_KAFKA_SASL_OAUTH_TOKEN_FILE is for OAUTHBEARER, not SCRAM-SHA-512",
    ),
    "cert without key": (
        {"kafka_security_protocol": "SSL", "kafka_ssl_cert_file": "/etc/hostname"},
        "MASH_KAFKA_SSL_CERT_FILE and MASH_KAFKA_SSL_KEY_FILE go together",
    ),
    "key without cert": (
        {"kafka_security_protocol": "SSL", "kafka_ssl_key_file": "/etc/hostname"},
        "MASH_KAFKA_SSL_CERT_FILE and MASH_KAFKA_SSL_KEY_FILE go together",
    ),
    "key password without key": (
        {"kafka_security_protocol": "SSL", "kafka_ssl_key_password": KEY_PASSWORD},
        "MASH_KAFKA_SSL_KEY_PASSWORD is set without MASH_KAFKA_SSL_KEY_FILE",
    ),
    "key password twice": (
        {
            "kafka_security_protocol": "SSL",
            "kafka_ssl_cert_file": "/etc/hostname",
            "kafka_ssl_key_file": "/etc/hostname",
            "kafka_ssl_key_password": KEY_PASSWORD,
            "kafka_ssl_key_password_file": "PASSWORD_FILE",
        },
        "give one of MASH_KAFKA_SSL_KEY_PASSWORD and MASH_KAFKA_SSL_KEY_PASSWORD_FILE, not both",
    ),
    "missing ca file": (
        {"kafka_security_protocol": "SSL", "kafka_ssl_ca_file": "/nonexistent/ca.pem"},
        "MASH_KAFKA_SSL_CA_FILE: cannot read /nonexistent/ca.pem (no such file)",
    ),
    "missing password file": (
        {
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": "SCRAM-SHA-512",
            "kafka_sasl_username": "u",
            "kafka_sasl_password_file": "/nonexistent/password",
        },
        "MASH_KAFKA_SASL_PASSWORD_FILE: cannot read /nonexistent/password (No such file",
    ),
    "empty token file": (
        {
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": "OAUTHBEARER",
            "kafka_sasl_oauth_token_file": "EMPTY_FILE",
        },
        "MASH_KAFKA_SASL_OAUTH_TOKEN_FILE: ",
    ),
    "unknown protocol": (
        {"kafka_security_protocol": "TLS"},
        "MASH_KAFKA_SECURITY_PROTOCOL: Input should be 'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT' or",
    ),
    "unknown mechanism": (
        {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "GSSAPI"},
        "MASH_KAFKA_SASL_MECHANISM: Input should be",
    ),
}


def _files_in(fields: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """Replace the placeholders by real files: one holding a secret, one empty."""
    (tmp_path / "password").write_text(SASL_PASSWORD)
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "empty").write_text("\n")
    places = {
        "PASSWORD_FILE": tmp_path / "password",
        "TOKEN_FILE": tmp_path / "token",
        "EMPTY_FILE": tmp_path / "empty",
    }
    return {k: str(places.get(v, v)) if isinstance(v, str) else v for k, v in fields.items()}


@pytest.mark.parametrize("name", sorted(BAD))
def test_inconsistent_settings_are_refused_in_one_line_without_secrets(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fields, expected = BAD[name]
    fields = _files_in(fields, tmp_path)
    with pytest.raises(SettingsError) as caught:
        load_settings(**fields)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message
    assert not any(secret in message for secret in SECRETS)
    # The same from the environment, as a service reads it.
    for field, value in fields.items():
        monkeypatch.setenv(env_var(field), value)
    with pytest.raises(SettingsError) as from_env:
        load_settings()
    assert expected in str(from_env.value)
    assert not any(secret in str(from_env.value) for secret in SECRETS)


def test_a_service_with_inconsistent_settings_stops_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from services.common.main import run_service
    from services.intake.app import build

    monkeypatch.setenv("MASH_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("MASH_KAFKA_SASL_PASSWORD", SASL_PASSWORD)
    with pytest.raises(SystemExit) as stopped:
        run_service("intake", build)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "intake: invalid settings: MASH_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs"
        " MASH_KAFKA_SASL_MECHANISM (SCRAM-SHA-512, SCRAM-SHA-256, PLAIN or OAUTHBEARER)"
    ]


def test_mash_reads_the_same_settings_and_refuses_bad_ones_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tls: Tls
) -> None:
    monkeypatch.setenv("MASH_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("MASH_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("MASH_KAFKA_SASL_PASSWORD", SASL_PASSWORD)
    assert mash(["topics"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "mash: error: bad settings: MASH_KAFKA_SASL_MECHANISM=SCRAM-SHA-512 needs"
        " MASH_KAFKA_SASL_USERNAME"
    ]
    # Consistent settings, but a key that does not load: refused before connecting.
    monkeypatch.setenv("MASH_KAFKA_SECURITY_PROTOCOL", "SSL")
    for name in ("MASH_KAFKA_SASL_MECHANISM", "MASH_KAFKA_SASL_PASSWORD"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("MASH_KAFKA_SSL_CA_FILE", str(tls.ca))
    monkeypatch.setenv("MASH_KAFKA_SSL_CERT_FILE", str(tls.cert))
    monkeypatch.setenv("MASH_KAFKA_SSL_KEY_FILE", str(tls.key))
    monkeypatch.setenv("MASH_KAFKA_SSL_KEY_PASSWORD", "wrong-" + KEY_PASSWORD)
    assert mash(["topics"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert err.startswith("mash: error: bad settings: MASH_KAFKA_SSL_CERT_FILE/")
    assert KEY_PASSWORD not in err


# --- secrets never show ----------------------------------------------------------------------


def test_secrets_are_absent_from_repr_str_and_dumps_of_the_settings(tls: Tls) -> None:
    s = settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="mash-intake",
        kafka_sasl_password=SASL_PASSWORD,
        kafka_ssl_ca_file=tls.ca,
        kafka_ssl_cert_file=tls.cert,
        kafka_ssl_key_file=tls.key,
        kafka_ssl_key_password=KEY_PASSWORD,
    )
    shown = [
        repr(s),
        str(s),
        json.dumps(s.model_dump(mode="json")),
        s.model_dump_json(),
        repr(s.model_dump()),
    ]
    for text in shown:
        assert SASL_PASSWORD not in text
        assert KEY_PASSWORD not in text
    assert s.model_dump(mode="json")["kafka_sasl_password"] == "**********"


def test_client_arguments_and_credentials_print_without_secrets(
    tls: Tls, secret_files: dict[str, Path]
) -> None:
    security = kafka_client_security(scram(tls))
    assert isinstance(security, ClientSecurity)
    assert security["sasl_plain_password"] == SASL_PASSWORD  # the client gets it...
    shown = [repr(security), str(security), repr(faust_broker_credentials(scram(tls)))]
    token_security = kafka_client_security(oauth(tls, secret_files["token"]))
    shown += [
        repr(token_security),
        repr(faust_broker_credentials(oauth(tls, secret_files["token"]))),
    ]
    options = ReplayOptions(bootstrap=["broker:9093"], source_topic="t", security=security)
    shown.append(repr(options))
    for text in shown:  # ...but printing never shows it
        assert not any(secret in text for secret in SECRETS), text
    assert "'sasl_plain_password': '**********'" in repr(security)


def test_client_arguments_cannot_be_changed() -> None:
    with pytest.raises(TypeError):
        PLAINTEXT["security_protocol"] = "SSL"  # type: ignore[index]


@pytest.mark.usefixtures("restore_logging")
def test_the_start_up_log_says_how_it_connects_never_with_what(
    capsys: pytest.CaptureFixture[str], tls: Tls
) -> None:
    security = kafka_client_security(scram(tls))
    log = configure_logging("intake", "INFO")
    # As services/common/runtime.py logs it (and the lag exporter).
    log.info("service_starting", metrics_port=9101, **security_log_fields(security))
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["security_protocol"] == "SASL_SSL"
    assert record["sasl_mechanism"] == "SCRAM-SHA-512"
    assert SASL_PASSWORD not in line


# --- every client of the product uses them ---------------------------------------------------

#: aiokafka clients: built with ``**security`` (or ``**self.security``).
CLIENTS = {"AIOKafkaProducer", "AIOKafkaConsumer", "AIOKafkaAdminClient"}
#: The product's helpers that build clients: called with ``security=`` from product code
#: (their default, plaintext, is for the tests' own helpers).
HELPERS = {
    "ensure_topics", "OutboxRelay", "ConsumerProbe", "OffsetClients", "LagExporter",
    "TopicSource", "TopicSink", "topic_partition_counts", "prepare_topics",
    "publish_records", "inventory", "load", "ReplayOptions", "require_topics",
    "start_producer",
}  # fmt: skip


def _product_sources() -> list[Path]:
    return [
        *sorted((REPO / "services").rglob("*.py")),
        *sorted((REPO / "mash").rglob("*.py")),
        REPO / "deploy/local/pipeline.py",
    ]


def _called(node: ast.Call) -> str:
    func = node.func
    return func.id if isinstance(func, ast.Name) else ""


def test_every_kafka_client_of_the_product_gets_the_security_arguments() -> None:
    wanted: dict[str, str | None] = {
        **dict.fromkeys(CLIENTS, None),  # None: a ``**security`` argument
        **dict.fromkeys(HELPERS, "security"),
        "faust.App": "broker_credentials",
    }
    forgotten = []
    for path in _product_sources():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            name = _called(node)
            if isinstance(node.func, ast.Attribute) and node.func.attr == "App":
                name = "faust.App"
            keywords = {k.arg for k in node.keywords}
            where = f"{path.relative_to(REPO)}:{node.lineno} {name}"
            if name in wanted and wanted[name] not in keywords:
                forgotten.append(where)
    assert forgotten == []


@pytest.mark.parametrize(
    "fields",
    [
        {"kafka_security_protocol": "SSL"},
        {"MASH_KAFKA_SECURITY_PROTOCOL": "SSL"},
        {"mash_kafka_security_protocol": "SSL"},
    ],
)
def test_an_override_by_field_or_variable_name_takes(fields: dict[str, str]) -> None:
    # A variable name used to be dropped without a word (the environment's extra="ignore"),
    # leaving the client on PLAINTEXT against a TLS port.
    assert load_settings(**fields).kafka_security_protocol == "SSL"


def test_an_aliased_setting_takes_its_field_or_variable_name() -> None:
    for name in ("database_url", "DATABASE_URL", "MASH_DATABASE_URL"):
        assert load_settings(**{name: "postgresql://x@h/d"}).database_url == "postgresql://x@h/d"


def test_an_unknown_override_is_refused_by_name() -> None:
    with pytest.raises(SettingsError, match=r"^MASH_KAFKA_SECURITY_PROTOKOL: no such setting$"):
        load_settings(MASH_KAFKA_SECURITY_PROTOKOL="SSL")
