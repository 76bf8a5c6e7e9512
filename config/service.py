"""Settings of the station service (``[service]``): where it listens and how people log in.

Only the service reads these (from its own, root-owned config); a client needs nothing
but the socket's path, which it finds in EVIDOCK_SOCKET or the default.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

#: Where the CLI finds the service on a station (systemd's RuntimeDirectory=evidock).
DEFAULT_SOCKET = "/run/evidock/evidock.sock"


class ServiceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The Unix socket the CLI talks to; its peers are identified by the kernel.
    socket: str = DEFAULT_SOCKET
    #: The OS account the service, the dock daemon and the scheduler run as; only it
    #: may read the catalog, the store and the keys.
    account: str = "evidock"
    #: "HOST:PORT" for the web desk and other machines; empty: the socket only.
    listen: str = ""
    #: PEM certificate chain and key: HTTPS on ``listen``. Without them a non-loopback
    #: ``listen`` is refused unless ``allow_plain_http`` (a LAN the agency vouches for).
    tls_cert: str = ""
    tls_key: str = ""
    #: CA bundle: ask for client certificates (mutual TLS) and accept their holders.
    tls_client_ca: str = ""
    allow_plain_http: bool = False
    #: How long a web session lasts, and failed logins allowed per account and minute.
    session_hours: float = Field(default=8.0, gt=0, le=24)
    login_attempts_per_minute: int = Field(default=5, ge=1, le=100)
