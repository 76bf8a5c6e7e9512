"""Running the service: uvicorn on the station socket, telling systemd when it listens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import uvicorn

from docks.sdnotify import Notifier
from evidock.service.app import build_app
from evidock.service.peer import PeerCredProtocol
from evidock.wiring import Services


class NotifyingServer(uvicorn.Server):
    """uvicorn's server, telling systemd (Type=notify) when it listens and stops."""

    def __init__(self, config: uvicorn.Config, *, notifier: Notifier) -> None:
        super().__init__(config)
        self.notifier = notifier

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.notifier.notify("READY=1", f"STATUS=listening on {self.config.uds}")

    async def shutdown(self, sockets: Any = None) -> None:
        self.notifier.notify("STOPPING=1")
        await super().shutdown(sockets=sockets)


def serve(services: Services, *, socket: Path) -> None:
    """Serve until SIGTERM/SIGINT; requests in flight finish (up to 30 s)."""
    socket.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    if socket.is_socket():
        socket.unlink()  # left by a stopped service
    app = build_app(services=services)
    config = uvicorn.Config(app, uds=str(socket), http=PeerCredProtocol, log_level="warning",
                            lifespan="off", timeout_graceful_shutdown=30)
    NotifyingServer(config, notifier=Notifier()).run()
