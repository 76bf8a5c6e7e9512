"""Who is on the other end of the station socket, as the kernel says (SO_PEERCRED).

The CLI reaches the service over a Unix socket; the kernel records the connecting
process's uid when it connects, so a client cannot claim to be someone else (unlike an
environment variable or a header). uvicorn gives the app no access to the socket, so
its HTTP protocol is subclassed to read the credentials once per connection and hand
them to every request of that connection through the ASGI ``state``.
"""

from __future__ import annotations

import asyncio
import pwd
import socket
import struct
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

_UCRED = struct.Struct("3i")  # struct ucred: pid_t pid; uid_t uid; gid_t gid
STATE_KEY = "evidock_peer"


@dataclass(frozen=True, slots=True)
class PeerCred:
    pid: int
    uid: int
    gid: int
    #: The OS account of the uid (None for a uid with no passwd entry), looked up once
    #: per connection rather than per request (each lookup reads the passwd database).
    account: str | None


def _account(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def peer_of(sock: socket.socket) -> PeerCred | None:
    """The credentials of a Unix-socket peer; None for any other kind of socket."""
    if sock.family != socket.AF_UNIX:
        return None
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return PeerCred(pid=pid, uid=uid, gid=gid, account=_account(uid))


class PeerCredProtocol(H11Protocol):
    """uvicorn's h11 protocol, plus the peer's credentials in each request's state."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        peer = peer_of(sock) if sock is not None else None
        if peer is not None:
            # A fresh dict per connection: app_state is shared between connections.
            state: dict[str, Any] = dict(self.app_state)
            state[STATE_KEY] = peer
            self.app_state = state
