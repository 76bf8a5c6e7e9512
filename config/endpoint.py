"""Where a client finds the station service, without the settings schema.

Every CLI command starts by finding the socket; importing ``config.service`` for this
one name built its pydantic models too (~80 ms of each command's start, issue 14).
"""

from __future__ import annotations

#: Where the CLI finds the service on a station (systemd's RuntimeDirectory=evidock).
DEFAULT_SOCKET = "/run/evidock/evidock.sock"

__all__ = ["DEFAULT_SOCKET"]
