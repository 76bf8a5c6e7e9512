"""HTTPS on the service's TCP address, and who a client certificate says the caller is.

With ``[service] tls_client_ca`` the service asks every TLS client for a certificate
(optional: people without one log in with a password). A certificate is checked against
that CA during the handshake, so a connection that reaches the app either has none or
has one the agency's CA issued; its subject (RFC 4514) is read once per connection, as
the socket's peer credentials are (:mod:`evidock.service.peer`), and mapped to a user
through ``[[access.users]] cert_subjects``.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from cryptography import x509
from fastapi import Request
from uvicorn.protocols.http.h11_impl import H11Protocol

from config.service import ServiceSettings
from integrity.errors import ConfigError

STATE_KEY = "evidock_client_cert"


def server_context(service: ServiceSettings) -> ssl.SSLContext:
    """TLS 1.2+ with the configured chain; client certificates asked for when a CA is."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(service.tls_cert, service.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"service.tls_cert/tls_key: cannot load {service.tls_cert} with "
                          f"{service.tls_key}: {exc}", key="service.tls_cert",
                          file=service.tls_cert) from None
    if service.tls_client_ca:
        try:
            ctx.load_verify_locations(cafile=service.tls_client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"service.tls_client_ca: cannot load {service.tls_client_ca}: "
                              f"{exc}", key="service.tls_client_ca",
                              file=service.tls_client_ca) from None
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def subject_of(der: bytes) -> str:
    """A certificate's subject as RFC 4514 (``openssl x509 -subject -nameopt RFC2253``)."""
    return x509.load_der_x509_certificate(der).subject.rfc4514_string()


def client_subject(request: Request) -> str | None:
    """The subject of the verified client certificate of this request's connection."""
    found = getattr(request.state, STATE_KEY, None)
    return found if isinstance(found, str) else None


class ClientCertProtocol(H11Protocol):
    """uvicorn's h11 protocol, plus the client certificate's subject in each request's
    state (asyncio calls ``connection_made`` once the TLS handshake has completed)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        tls = transport.get_extra_info("ssl_object")
        der = tls.getpeercert(binary_form=True) if isinstance(tls, ssl.SSLObject) else None
        if der:
            # A fresh dict per connection: app_state is shared between connections.
            state: dict[str, Any] = dict(self.app_state)
            state[STATE_KEY] = subject_of(der)
            self.app_state = state


__all__ = ["STATE_KEY", "ClientCertProtocol", "client_subject", "server_context",
           "subject_of"]
