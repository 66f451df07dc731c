"""How every Kafka client of the service authenticates and encrypts, from the settings.

One definition for all of them: Faust's producer and consumers (the agents' consumer, the
reply consumer) take `faust_credentials`; the clients we open ourselves (the claims
consumer, the admin client that creates our topics, replay) take `kafka_client_kwargs`.
Both come from the same checks, so a client can never be left on PLAINTEXT by mistake.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import faust
from aiokafka.helpers import create_ssl_context

from app.settings import Settings

SSL_PROTOCOLS = ("SSL", "SASL_SSL")
SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")

_ENV = "DISTRIBUTION_"  # the settings' prefix, to name variables in errors


def _var(field: str) -> str:
    return _ENV + field.upper()


def _check(s: Settings) -> None:
    """Refuse settings that would connect differently from what the operator meant."""
    protocol = s.kafka_security_protocol
    if protocol in SASL_PROTOCOLS:
        missing = [_var(f) for f in ("kafka_sasl_username", "kafka_sasl_password")
                   if not _value(getattr(s, f))]
        if missing:
            raise ValueError(f"{_var('kafka_security_protocol')}={protocol} needs "
                             + " and ".join(missing))
    else:
        # credentials given but never sent: the operator expected SASL
        for f in ("kafka_sasl_username", "kafka_sasl_password"):
            if _value(getattr(s, f)):
                raise ValueError(f"{_var(f)} is set but {_var('kafka_security_protocol')} is "
                                 f"{protocol}; use SASL_PLAINTEXT or SASL_SSL")
    files = ("kafka_ssl_ca_file", "kafka_ssl_cert_file", "kafka_ssl_key_file",
             "kafka_ssl_key_password")
    if protocol not in SSL_PROTOCOLS:
        # a CA or client certificate given for a connection that would not use TLS
        for f in files:
            if _value(getattr(s, f)):
                raise ValueError(f"{_var(f)} is set but {_var('kafka_security_protocol')} is "
                                 f"{protocol}; use SSL or SASL_SSL")
        return
    if bool(s.kafka_ssl_cert_file) != bool(s.kafka_ssl_key_file):
        raise ValueError(f"{_var('kafka_ssl_cert_file')} and {_var('kafka_ssl_key_file')} "
                         "go together (the client certificate and its key)")
    if s.kafka_ssl_key_password and not s.kafka_ssl_key_file:
        raise ValueError(f"{_var('kafka_ssl_key_password')} is set without "
                         f"{_var('kafka_ssl_key_file')}")
    for f in files[:3]:
        path = getattr(s, f)
        if path and not Path(path).is_file():
            raise ValueError(f"{_var(f)}={path}: no such file")


def _value(v: Any) -> str | None:
    """A setting's plain value (SecretStr unwrapped); empty strings count as unset."""
    if v is not None and hasattr(v, "get_secret_value"):
        v = v.get_secret_value()
    return v or None


def ssl_context(s: Settings) -> ssl.SSLContext | None:
    """The TLS context of SSL and SASL_SSL (None otherwise): the broker's certificate is
    verified against the CA file (the system's CAs when unset), host name included; the
    client certificate is presented when one is configured (mutual TLS)."""
    _check(s)
    if s.kafka_security_protocol not in SSL_PROTOCOLS:
        return None

    def no_password() -> bytes:  # asked for an encrypted key; OpenSSL would prompt instead
        raise ValueError(f"{_var('kafka_ssl_key_file')} is encrypted: set "
                         f"{_var('kafka_ssl_key_password')}")

    try:
        return create_ssl_context(cafile=s.kafka_ssl_ca_file or None,
                                  certfile=s.kafka_ssl_cert_file or None,
                                  keyfile=s.kafka_ssl_key_file or None,
                                  password=_value(s.kafka_ssl_key_password) or no_password)
    except ssl.SSLError as exc:  # e.g. a key that does not match, or a wrong key password
        raise ValueError(f"the Kafka TLS files cannot be loaded ({_var('kafka_ssl_ca_file')}, "
                         f"{_var('kafka_ssl_cert_file')}, {_var('kafka_ssl_key_file')}, "
                         f"{_var('kafka_ssl_key_password')}): {exc}") from exc


def kafka_client_kwargs(s: Settings) -> dict[str, Any]:
    """Keyword arguments for AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient."""
    context = ssl_context(s)  # checks the settings first
    kwargs: dict[str, Any] = {"security_protocol": s.kafka_security_protocol}
    if context is not None:
        kwargs["ssl_context"] = context
    if s.kafka_security_protocol in SASL_PROTOCOLS:
        kwargs.update(sasl_mechanism=s.kafka_sasl_mechanism,
                      sasl_plain_username=s.kafka_sasl_username,
                      sasl_plain_password=_value(s.kafka_sasl_password))
    return kwargs


def faust_credentials(s: Settings) -> faust.SASLCredentials | faust.SSLCredentials | None:
    """Faust's `broker_credentials`: Faust turns them into the same aiokafka arguments for
    its producer and every consumer it opens (faust.transport.drivers.aiokafka
    `credentials_to_aiokafka_auth`)."""
    context = ssl_context(s)
    if s.kafka_security_protocol in SASL_PROTOCOLS:
        # with a context Faust says SASL_SSL, without it SASL_PLAINTEXT
        return faust.SASLCredentials(username=s.kafka_sasl_username,
                                     password=_value(s.kafka_sasl_password),
                                     mechanism=s.kafka_sasl_mechanism, ssl_context=context)
    if context is not None:
        return faust.SSLCredentials(context)
    return None
