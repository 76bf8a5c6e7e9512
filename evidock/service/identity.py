"""Who is asking: the kernel's word on the station socket, a login over the network.

There is no third way. No header, environment variable or config file of the client's
names the user: on the socket the peer's uid (SO_PEERCRED) is mapped to its OS account
and through ``[[access.users]]`` to an evidock user; over TCP the user must have logged
in (a signed session cookie, see :mod:`evidock.service.sessions`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from fastapi import Request

from evidock.service.peer import STATE_KEY, PeerCred
from integrity.errors import UnknownUser
from records.permissions import Actor, Gate


class Identity(Protocol):
    def __call__(self, request: Request) -> Actor: ...


class StationIdentity:
    """The evidock user behind a request (refused and audited when there is none)."""

    def __init__(self, *, gate: Callable[[], Gate],
                 session_user: Callable[[Request], str | None]) -> None:
        self._gate, self._session_user = gate, session_user

    def __call__(self, request: Request) -> Actor:
        peer = getattr(request.state, STATE_KEY, None)
        gate = self._gate()
        if isinstance(peer, PeerCred):
            account = peer.account
            if account is None:
                gate.unknown(f"uid:{peer.uid}")
            return gate.identify(account=account)
        user = self._session_user(request)
        if user is None:
            raise UnknownUser("not logged in: log in at /login (or use the station "
                              "socket)", path=request.url.path)
        return gate.by_name(user)
