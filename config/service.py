"""Settings of the station service (``[service]``): where it listens and how people log in.

Only the service reads these (from its own, root-owned config); a client needs nothing
but the socket's path, which it finds in EVIDOCK_SOCKET or the default.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from config.endpoint import DEFAULT_SOCKET

# "host:port", "[v6]:port"; the host is an IP literal or a name (bound as resolved).
_LISTEN = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.-]+)):(?P<port>\d{1,5})$")


@dataclass(frozen=True, slots=True)
class ListenAddress:
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        """Reachable from this machine only (a name other than localhost is not trusted
        to stay loopback: DNS can change)."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def url(self, *, tls: bool, port: int | None = None) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if tls else 'http'}://{host}:{self.port if port is None else port}"


def parse_listen(value: str) -> ListenAddress:
    m = _LISTEN.match(value)
    if m is None or int(m["port"]) > 65535:
        raise ValueError(f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:8443 or [::1]:8443)")
    host = m["v6"] or m["host"]
    if m["v6"]:
        ipaddress.IPv6Address(host)  # ValueError names the bad address
    return ListenAddress(host=host, port=int(m["port"]))


class ServiceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The Unix socket the CLI talks to; its peers are identified by the kernel.
    socket: str = DEFAULT_SOCKET
    #: The OS account the service, the dock daemon and the scheduler run as; only it
    #: may read the catalog, the store and the keys.
    account: str = "evidock"
    #: "HOST:PORT" for the web desk and other machines; empty: the socket only. Port 0
    #: lets the kernel choose (the address is in the service's systemd STATUS).
    listen: str = ""
    #: PEM certificate chain and key: HTTPS on ``listen``. Without them a non-loopback
    #: ``listen`` is refused unless ``allow_plain_http`` (a LAN the agency vouches for).
    tls_cert: str = ""
    tls_key: str = Field(default="", validate_default=True)
    #: CA bundle: ask for client certificates (mutual TLS) and accept their holders
    #: (``[[access.users]] cert_subjects``); clients without one may still log in.
    tls_client_ca: str = ""
    allow_plain_http: bool = Field(default=False, validate_default=True)
    #: How long a web session lasts, and failed logins allowed per account (and per
    #: client address) and minute.
    session_hours: float = Field(default=8.0, gt=0, le=24)
    login_attempts_per_minute: int = Field(default=5, ge=1, le=100)

    # Field validators (not one model check) so that an error names its own key; each
    # sees the fields declared above it in ``info.data``.
    @field_validator("listen")
    @classmethod
    def _address(cls, value: str) -> str:
        if value:
            parse_listen(value)
        return value

    @field_validator("tls_key")
    @classmethod
    def _pair(cls, value: str, info: ValidationInfo) -> str:
        if bool(value) != bool(info.data.get("tls_cert")):
            raise ValueError("tls_cert and tls_key go together: set both (HTTPS) or neither")
        return value

    @field_validator("tls_client_ca")
    @classmethod
    def _mutual(cls, value: str, info: ValidationInfo) -> str:
        if value and not info.data.get("tls_cert"):
            raise ValueError("mutual TLS needs tls_cert and tls_key (HTTPS) too")
        return value

    @field_validator("allow_plain_http")
    @classmethod
    def _plain(cls, value: bool, info: ValidationInfo) -> bool:
        listen = info.data.get("listen") or ""
        if listen and not value and not info.data.get("tls_cert") \
                and not parse_listen(listen).loopback:
            # Passwords and session cookies would cross the network in clear.
            raise ValueError(
                f"false, but listen = {listen!r} is not a loopback address and has no "
                "TLS: set tls_cert and tls_key, or allow_plain_http = true (passwords and "
                "session cookies then cross the network in clear)")
        return value

    @property
    def listen_address(self) -> ListenAddress | None:
        return parse_listen(self.listen) if self.listen else None

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)
