"""`evidock serve`: run the station service (systemd runs it as the service account)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from evidock.cli_base import ConfigOpt, command


@command
def serve(config: ConfigOpt = None,
          socket: Annotated[Path | None, typer.Option(
              "--socket",
              help="Unix socket to listen on (default: the config's service.socket).")] = None,
          ) -> None:
    """Run the station service: the one process that opens the catalog, the store and the
    keys and decides every request. It listens on the station socket (callers named by
    the kernel) and, with service.listen set, on HOST:PORT for logins over the network
    (HTTPS with tls_cert/tls_key, client certificates with tls_client_ca). SIGTERM stops
    it after the requests in flight."""
    from config import load_settings
    from config.loader import config_files
    from evidock.service import server
    from evidock.service.trust import check_trusted
    from evidock.wiring import Services

    # The rules are the administrator's: refuse files anyone else could have edited.
    check_trusted(config_files(config_file=config), service_uid=os.geteuid())
    settings = load_settings(config_file=config)
    # The keyrings a witness trusts, and the center's, are rules too.
    check_trusted([*settings.witness.paths(settings.home),
                   *settings.center.paths(settings.home).values()],
                  service_uid=os.geteuid())
    svc = Services.from_config(settings)
    try:
        server.serve(svc, socket=socket or Path(settings.service.socket))
    finally:
        svc.close()
