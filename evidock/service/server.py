"""Running the service: uvicorn on the station socket and, with ``[service] listen``, on a
TCP address (HTTPS with ``tls_cert``), telling systemd when both listen.

One app and one :class:`~evidock.wiring.Services` serve both: each listener is its own
uvicorn server (the socket's protocol reads the peer's credentials, the TCP one the
client certificate) in the same event loop. Signals are handled here, once, for all of
them: uvicorn's own handlers would each replace the other's. The TCP socket is bound
before anything starts, so a busy port or a refused address stops the start with one
E_CONFIG line rather than a half-started service.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket as sockets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from config.service import ListenAddress, ServiceSettings
from docks.sdnotify import Notifier
from evidock.service.app import build_app
from evidock.service.peer import PeerCredProtocol
from evidock.service.routes.sessions import web_desk
from evidock.service.tls import ClientCertProtocol, server_context
from evidock.wiring import Services
from ingest.tools import WARM_UP_S, warm_up
from integrity.errors import ConfigError

# Behind no proxy: X-Forwarded-* from a client must not change its address or scheme.
_COMMON: dict[str, Any] = {"log_level": "warning", "lifespan": "off",
                           "timeout_graceful_shutdown": 30, "proxy_headers": False,
                           "server_header": False}


class Listener(uvicorn.Server):
    """One listening socket of the service; :func:`serve` handles the signals."""

    def __init__(self, config: uvicorn.Config, *, where: str,
                 bound: list[sockets.socket] | None = None) -> None:
        super().__init__(config)
        self.where, self.bound = where, bound
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.listening.set()


def serve(services: Services, *, socket: Path, notifier: Notifier | None = None) -> None:
    """Serve until SIGTERM/SIGINT; requests in flight finish (up to 30 s)."""
    services.start_group_commit()  # concurrent requests' audit events: one commit
    tools = warm_up()  # while the app is built
    app = build_app(services=services)
    service = services.settings.service
    listeners = []
    if service.listen:
        web_desk(app)  # the session key now: a bad one stops the start
        listeners.append(_tcp(app, service))
    listeners.insert(0, _unix(app, socket))
    # ffprobe/ffmpeg's libraries (~250 MB) in the page cache before the first request:
    # read cold during an offload they cost its first media check ~1 s and compete with
    # the copy for the disk (issue 14). Bounded, as in the dock daemon.
    tools.join(timeout=WARM_UP_S)
    asyncio.run(_run(listeners, notifier or Notifier()))


def _unix(app: FastAPI, path: Path) -> Listener:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        if path.is_socket():
            path.unlink()  # left by a stopped service
    except OSError as exc:
        raise ConfigError(f"cannot prepare the service socket {path}: {exc.strerror}",
                          key="service.socket", socket=str(path)) from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        # Caught here, not as a traceback from bind() inside the event loop.
        raise ConfigError(f"cannot create the service socket in {path.parent}: this "
                          "account may not write there", key="service.socket",
                          socket=str(path))
    config = uvicorn.Config(app, uds=str(path), http=PeerCredProtocol, **_COMMON)
    return Listener(config, where=str(path))


def _tcp(app: FastAPI, service: ServiceSettings) -> Listener:
    where = service.listen_address
    assert where is not None
    context = server_context(service) if service.tls else None
    bound = _bind(where)
    config = uvicorn.Config(app, http=ClientCertProtocol, **_COMMON)
    config.load()
    config.ssl = context  # ours: TLS 1.2+, optional client certificates
    port = int(bound.getsockname()[1])
    return Listener(config, where=where.url(tls=context is not None, port=port),
                    bound=[bound])


def _bind(where: ListenAddress) -> sockets.socket:
    try:
        family, _, _, _, address = sockets.getaddrinfo(
            where.host, where.port, type=sockets.SOCK_STREAM, flags=sockets.AI_PASSIVE)[0]
        bound = sockets.create_server(address, family=family, backlog=128)
        # Headers and body go out in two writes: without TCP_NODELAY the body waits for
        # the client's delayed ACK (~40 ms a request). Linux passes the option on to the
        # accepted sockets (asyncio sets it only on sockets made with IPPROTO_TCP).
        bound.setsockopt(sockets.IPPROTO_TCP, sockets.TCP_NODELAY, 1)
        return bound
    except OSError as exc:
        raise ConfigError(f"service.listen: cannot listen on {where.host}:{where.port}: "
                          f"{exc.strerror or exc}", key="service.listen",
                          host=where.host, port=where.port) from None


async def _run(listeners: list[Listener], notifier: Notifier) -> None:
    loop = asyncio.get_running_loop()

    def stop() -> None:
        notifier.notify("STOPPING=1")
        for listener in listeners:
            listener.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    tasks = [asyncio.create_task(x.serve(sockets=x.bound)) for x in listeners]
    ready = asyncio.create_task(_all_listening(listeners))
    done, _ = await asyncio.wait([ready, *tasks], return_when=asyncio.FIRST_COMPLETED)
    if ready in done:
        notifier.notify("READY=1", "STATUS=listening on "
                        + " and ".join(x.where for x in listeners))
    else:  # one listener ended before all listened: stop the others too
        ready.cancel()
        stop()
    for outcome in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(outcome, BaseException):
            raise outcome


async def _all_listening(listeners: list[Listener]) -> None:
    for listener in listeners:
        await listener.listening.wait()


__all__ = ["Listener", "serve"]
