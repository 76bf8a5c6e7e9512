"""Configs and steps shared by the center tests (a center and its stations on 127.0.0.1).

A station reaches its center over HTTPS with a client certificate issued by the test CA
(tests/pki_support.py); the center maps each certificate's subject to a user with the
role ``station`` and trusts each station's public keyring file.
"""

from __future__ import annotations

import shutil
import socket
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evidock_testing import AGENCY_TOML, migrated, migrated_home, offload_camera, ok_json
from pki_support import CertAuthority, Issued
from service_support import RunningService
from sqlmodel import Session, col, select

from archive.catalog import Catalog
from archive.catalog.models import Rendition, Segment
from archive.keystore import StationKeys
from config import load_settings
from evidock.jobs import execute
from evidock.wiring import Services

if TYPE_CHECKING:
    from s3server import S3Endpoint  # tests/replica, on the path of the tests that use it


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


def upload_toml(endpoint: S3Endpoint, bucket: str, prefix: str) -> str:
    """[upload] to ``bucket`` under ``prefix`` (each station its own)."""
    return f"""
[upload]
enabled = true
endpoint_url = "{endpoint.url}"
bucket = "{bucket}"
key_prefix = "{prefix}"
access_key_id = "{endpoint.access_key}"
secret_access_key = "{endpoint.secret_key}"
retention_days = 1
connect_timeout_s = 2
read_timeout_s = 30
"""


@dataclass
class World:
    """A center (catalog on PostgreSQL, HTTPS + mutual TLS on ``port``) and its stations,
    all uploading to one SeaweedFS bucket, each under its own prefix."""

    root: Path
    ca: CertAuthority
    certs: dict[str, Issued]
    port: int
    center_home: Path
    endpoint: S3Endpoint
    bucket: str
    #: The center's catalog: PostgreSQL, as a central archive runs.
    center_url: str = ""

    def station(self, name: str) -> Path:
        return self.root / name


@contextmanager
def pg_world(root: Path, endpoint: S3Endpoint, stations: Iterable[str]) -> Iterator[World]:
    """A world under ``root``: the test CA and each station's certificate, a free port,
    a new bucket, and the center's catalog in a PostgreSQL cluster (gone after); the
    center's home made. For tests/replica, whose path has pg_support and storage_support."""
    archive_tests = str(Path(__file__).parent / "archive")  # pg_support lives there
    if archive_tests not in sys.path:
        sys.path.insert(0, archive_tests)
    from pg_support import pg_cluster
    from storage_support import make_bucket

    (root / "pki").mkdir()
    ca = CertAuthority(root / "pki", "agency-ca")
    with pg_cluster() as make:
        world = World(root, ca, {n: ca.issue(n) for n in stations}, free_port(),
                      root / "center", endpoint, make_bucket(endpoint), make())
        world.center_home.mkdir()
        yield world


def make_station(world: World, name: str, camera: Path, *, render: bool,
                 extra_toml: str = "") -> None:
    """A station at ``world.station(name)`` that offloaded ``camera`` (and rendered it);
    its public keyring is copied where the center's config names it."""
    home = world.station(name)
    home.mkdir()
    (home / "evidock.toml").write_text(
        AGENCY_TOML + station_toml(name, port=world.port, center_keyring=world.root /
                                   "center.json", ca=world.ca.root.cert,
                                   cert=world.certs[name])
        + upload_toml(world.endpoint, world.bucket, name) + extra_toml, encoding="utf-8")
    migrated_home(home)
    keys = StationKeys(directory=home / "keys")
    keys.init()
    shutil.copy(keys.keyring_path, world.root / f"{name}.json")
    offload_camera(home, camera, render=render)


def make_center(world: World, stations: Iterable[str]) -> None:
    """The center's home and migrated PostgreSQL catalog, witnessing ``stations``."""
    names = list(stations)
    home = world.center_home
    keys = StationKeys(directory=home / "keys")
    keys.init()
    shutil.copy(keys.keyring_path, world.root / "center.json")
    (home / "evidock.toml").write_text(AGENCY_TOML + center_toml(
        port=world.port, server=world.ca.issue("center", server=True), ca=world.ca.root.cert,
        users=names, stations=[(n, world.root / f"{n}.json", n) for n in names])
        + upload_toml(world.endpoint, world.bucket, "center")
        + f'\n[paths]\ncatalog_url = "{world.center_url}"\n', encoding="utf-8")
    migrated(world.center_url)


def services(home: Path) -> Services:
    """The services of the station (or center) at ``home``, in-process; close them."""
    return Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}))


def rows(home: Path, model: Any) -> list[Any]:
    """Every row of ``model`` in the catalog of the station at ``home``."""
    svc = services(home)
    try:
        with Session(svc.catalog.engine) as s:
            return list(s.exec(select(model)))
    finally:
        svc.close()


def run_job(home: Path, job: str) -> dict[str, Any]:
    """The scheduled ``job`` of the station at ``home``, run once in-process; its counts."""
    svc = services(home)
    try:
        result = execute(job, svc)
    finally:
        svc.close()
    assert result.outcome == "ok", result
    return result.counts


def upload(home: Path) -> dict[str, Any]:
    """The station's upload job, run once in-process; its counts."""
    return run_job(home, "upload")


def rendered_segments(home: Path) -> dict[str, list[Segment]]:
    """The station's recordings with an ok rendition, and their segments in order."""
    catalog = Catalog.open(f"sqlite:///{home / 'catalog.sqlite3'}")
    try:
        with Session(catalog.engine) as s:
            ok = s.exec(select(Rendition).where(Rendition.status == "ok")).all()
            return {r.recording_id: list(s.exec(select(Segment).where(
                Segment.rendition_id == r.id).order_by(col(Segment.index)))) for r in ok}
    finally:
        catalog.close()


def make_case(station: RunningService, number: str, unit: str, label: str,
                link: str | None = None) -> str:
    """A case made at the station by its clerk (CLI), optionally linked to ``link``;
    its id."""
    made = ok_json(station.cli("case", "create", number, "--type", "行政处罚", "--unit", unit,
                               "--sensitivity", label, "--json", user="clerk"))
    if link is not None:
        ok_json(station.cli("case", "link", number, link, "--stage", "调查取证",
                            "--reason", "执法记录", "--json", user="clerk"))
    return str(made["id"])


def push(station: RunningService, code: int = 0) -> dict[str, Any]:
    """`evidock witness push --json` as the station's admin; its JSON (exit ``code``)."""
    out = ok_json(station.cli("witness", "push", "--json", user="admin"), code)
    assert isinstance(out, dict)
    return out


def publish(station: RunningService, home: Path) -> None:
    """The station uploads, then pushes its log: every event reaches the center (none
    waits for a blob the object store lacks)."""
    upload(home)
    assert push(station)["events"]["waiting"] is None


def pull(station: RunningService, code: int = 0) -> dict[str, Any]:
    """`evidock retention pull --json` as the station's admin; its JSON (exit ``code``)."""
    out = ok_json(station.cli("retention", "pull", "--json", user="admin"), code)
    assert isinstance(out, dict)
    return out
