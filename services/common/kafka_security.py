"""How every Kafka client of the product connects: TLS, SASL and their secrets.

Two functions turn the one settings object (``MASH_KAFKA_SECURITY_PROTOCOL`` and the other
``MASH_KAFKA_SASL_*`` / ``MASH_KAFKA_SSL_*`` variables) into what a client needs:

- :func:`kafka_client_security`: keyword arguments for any aiokafka client
  (``AIOKafkaProducer``, ``AIOKafkaConsumer``, ``AIOKafkaAdminClient``): the outbox
  relays, topic creation, the health probe, the lag exporter and the ``mash`` tools;
- :func:`faust_broker_credentials`: Faust's ``broker_credentials`` for the services'
  agents (:func:`services.common.kafka.make_app`).

Both read the secret files and build the TLS context when called: a process reads them
once, at start-up, so a rotated password or certificate takes effect at its next start;
the OAUTHBEARER token file is read again at every authentication. The TLS
context always verifies the broker's certificate and host name. Nothing here logs a
secret, and :class:`ClientSecurity` masks the password in its ``repr``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import faust
from aiokafka.abc import AbstractTokenProvider
from aiokafka.helpers import create_ssl_context
from faust.types.auth import CredentialsT

from services.common.settings import (
    SASL_PROTOCOLS,
    TLS_PROTOCOLS,
    Settings,
    SettingsError,
    env_var,
)

#: Keyword arguments whose value is a secret: masked by :class:`ClientSecurity`'s repr.
SECRET_KWARGS = frozenset({"sasl_plain_password"})
MASK = "**********"


class ClientSecurity(Mapping[str, Any]):
    """aiokafka keyword arguments for the security settings (``**security`` into a client).

    Immutable, and its ``repr`` masks the password, so options objects that carry it can be
    printed or logged safely.
    """

    def __init__(self, kwargs: Mapping[str, Any]) -> None:
        self._kwargs = dict(kwargs)

    def __getitem__(self, key: str) -> Any:
        return self._kwargs[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._kwargs)

    def __len__(self) -> int:
        return len(self._kwargs)

    def __repr__(self) -> str:
        shown = {
            k: MASK if k in SECRET_KWARGS and v is not None else v for k, v in self._kwargs.items()
        }
        return f"ClientSecurity({shown!r})"


#: What the product's clients use when no security is configured (and the tests' helpers).
PLAINTEXT = ClientSecurity({"security_protocol": "PLAINTEXT"})


class FileTokenProvider(AbstractTokenProvider):  # type: ignore[misc]  # aiokafka is untyped
    """OAUTHBEARER tokens read from a file at each authentication, so the process that
    refreshes the token (a sidecar, a mounted secret) needs no restart of the service."""

    def __init__(self, path: str) -> None:
        self.path = path

    async def token(self) -> str:
        """The token now in the file (surrounding whitespace removed)."""
        return await asyncio.to_thread(self.read)

    def read(self) -> str:
        """The token, read synchronously; SettingsError naming the variable if unreadable."""
        try:
            value = Path(self.path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise SettingsError(
                f"{env_var('kafka_sasl_oauth_token_file')}: cannot read {self.path} ({reason})"
            ) from None
        if not value:
            raise SettingsError(f"{env_var('kafka_sasl_oauth_token_file')}: {self.path} is empty")
        return value

    def __repr__(self) -> str:
        return f"FileTokenProvider(path={self.path!r})"


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of SSL and SASL_SSL (None for the other protocols): the configured
    CA (else the system's), broker host name checked, and the client certificate for
    mutual TLS. SettingsError, naming the variables and not the key password, if the
    files do not load."""
    if settings.kafka_security_protocol not in TLS_PROTOCOLS:
        return None
    ca = settings.kafka_ssl_ca_file
    try:
        context: ssl.SSLContext = create_ssl_context(cafile=ca)
    except (ssl.SSLError, OSError) as exc:
        raise SettingsError(
            f"{env_var('kafka_ssl_ca_file')}: {ca} holds no usable PEM CA certificate"
            f" ({_reason(exc)})"
        ) from None
    cert, key = settings.kafka_ssl_cert_file, settings.kafka_ssl_key_file
    if cert is not None:
        password = settings.kafka_ssl_key_password_value()
        try:
            context.load_cert_chain(
                cert, key, None if password is None else password.get_secret_value()
            )
        except (ssl.SSLError, OSError) as exc:
            raise SettingsError(
                f"{env_var('kafka_ssl_cert_file')}/{env_var('kafka_ssl_key_file')}: cannot"
                f" load the client certificate and key ({_reason(exc)}; wrong key password,"
                " or a key that does not match the certificate?)"
            ) from None
    return context


def _reason(exc: ssl.SSLError | OSError) -> str:
    """A short, secret-free reason: OpenSSL's reason code, else the OS error text."""
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    return exc.strerror or type(exc).__name__


def kafka_client_security(settings: Settings) -> ClientSecurity:
    """Keyword arguments that make an aiokafka client connect as ``settings`` say:
    ``security_protocol``, and as it needs ``ssl_context``, ``sasl_mechanism``,
    ``sasl_plain_username`` / ``sasl_plain_password`` (SCRAM, PLAIN) or
    ``sasl_oauth_token_provider`` (OAUTHBEARER)."""
    protocol = settings.kafka_security_protocol
    kwargs: dict[str, Any] = {"security_protocol": protocol}
    context = tls_context(settings)
    if context is not None:
        kwargs["ssl_context"] = context
    if protocol in SASL_PROTOCOLS:
        mechanism = settings.kafka_sasl_mechanism
        kwargs["sasl_mechanism"] = mechanism
        if mechanism == "OAUTHBEARER":
            kwargs["sasl_oauth_token_provider"] = _token_provider(settings)
        else:
            password = settings.kafka_sasl_password_value()
            kwargs["sasl_plain_username"] = settings.kafka_sasl_username
            kwargs["sasl_plain_password"] = (
                None if password is None else password.get_secret_value()
            )
    return ClientSecurity(kwargs)


def faust_broker_credentials(settings: Settings) -> CredentialsT | None:
    """Faust's ``broker_credentials`` for ``settings`` (None for PLAINTEXT): Faust hands
    its consumers and producers the same arguments as :func:`kafka_client_security`."""
    protocol = settings.kafka_security_protocol
    context = tls_context(settings)
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        assert context is not None  # tls_context builds one for SSL
        return faust.SSLCredentials(context)
    # SASL_PLAINTEXT or SASL_SSL: Faust picks SASL_SSL exactly when given a TLS context.
    if settings.kafka_sasl_mechanism == "OAUTHBEARER":
        return faust.OAuthCredentials(oauth_cb=_token_provider(settings), ssl_context=context)
    password = settings.kafka_sasl_password_value()
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=None if password is None else password.get_secret_value(),
        ssl_context=context,
        mechanism=settings.kafka_sasl_mechanism,
    )


def _token_provider(settings: Settings) -> FileTokenProvider:
    path = settings.kafka_sasl_oauth_token_file
    if path is None:  # the settings refuse OAUTHBEARER without a token file
        raise SettingsError(f"OAUTHBEARER needs {env_var('kafka_sasl_oauth_token_file')}")
    provider = FileTokenProvider(path)
    provider.read()  # fail at start-up, not at the first connection
    return provider


def security_log_fields(security: Mapping[str, Any]) -> dict[str, str]:
    """Secret-free log fields saying how a client connects (protocol and SASL mechanism)."""
    fields = {"security_protocol": str(security.get("security_protocol", "PLAINTEXT"))}
    if "sasl_mechanism" in security:
        fields["sasl_mechanism"] = str(security["sasl_mechanism"])
    return fields
