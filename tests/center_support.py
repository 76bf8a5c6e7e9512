"""Configs and steps shared by the center tests (a center and its stations on 127.0.0.1).

A station reaches its center over HTTPS with a client certificate issued by the test CA
(tests/pki_support.py); the center maps each certificate's subject to a user with the
role ``station`` and trusts each station's public keyring file.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from evidock_testing import ok_json
from pki_support import Issued
from service_support import RunningService


def free_port() -> int:
    """A port nobody listens on now (the center binds it itself later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def station_toml(name: str, *, port: int, center_keyring: Path, ca: Path,
                 cert: Issued) -> str:
    """[station] and [center] of a station that pushes to the center on ``port``."""
    return f"""
[station]
id = "{name}"

[center]
url = "https://127.0.0.1:{port}"
keyring = "{center_keyring}"
ca_file = "{ca}"
client_cert = "{cert.cert}"
client_key = "{cert.key}"
"""


def center_toml(*, port: int, server: Issued, ca: Path, users: Iterable[str],
                stations: Iterable[tuple[str, Path, str]]) -> str:
    """A center on ``port`` (HTTPS, mutual TLS): a ``station`` user per certificate CN in
    ``users``, and [[witness.stations]] of (id, keyring file, object-key prefix)."""
    mapped = "".join(f"""
[[access.users]]
name = "{n}"
roles = ["station"]
cert_subjects = ["CN={n},O=Test Agency"]
""" for n in users)
    witnessed = "".join(f"""
[[witness.stations]]
id = "{sid}"
keyring = "{keyring}"
key_prefix = "{prefix}"
""" for sid, keyring, prefix in stations)
    return mapped + f"""
[station]
id = "center"

[service]
listen = "127.0.0.1:{port}"
tls_cert = "{server.cert}"
tls_key = "{server.key}"
tls_client_ca = "{ca}"
""" + witnessed


def push(station: RunningService, code: int = 0) -> dict[str, Any]:
    """`evidock witness push --json` as the station's admin; its JSON (exit ``code``)."""
    out = ok_json(station.cli("witness", "push", "--json", user="admin"), code)
    assert isinstance(out, dict)
    return out
