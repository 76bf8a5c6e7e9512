"""Fixtures for the object-storage tests: a real S3 server on 127.0.0.1, a catalog with
blobs in a real content store, and the uploader wired to both.

The session's SeaweedFS server is shared; every test gets its own Object-Lock bucket.
So is the center desk tests' world (``center_desk``), built on first use.
Tests that kill the server start their own (``WeedServer`` in their tmp dir). Helpers
live in ``storage_support.py`` (this directory is put on sys.path here).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from center_desk_support import CenterDesk, center_desk_world  # noqa: E402
from desk_support import need_browser  # noqa: E402
from evidock_testing import migrated, stored_blob  # noqa: E402
from s3server import CephRgw, WeedServer  # noqa: E402
from storage_support import (  # noqa: E402
    T0,
    AddBlob,
    StoredBlob,
    client_for,
    make_bucket,
    pseudo_random,
    weed_server,
)

from archive.catalog import Catalog  # noqa: E402
from archive.replica.objectstore import MiB, ObjectStore  # noqa: E402
from archive.store import ContentStore  # noqa: E402
from fixtures.camera import CameraTree  # noqa: E402


@pytest.fixture(scope="session")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WeedServer]:
    with weed_server(tmp_path_factory.mktemp("weed")) as server:
        yield server


@pytest.fixture(scope="session")
def ceph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CephRgw]:
    try:
        server = CephRgw(root=tmp_path_factory.mktemp("ceph"))
    except FileNotFoundError as exc:
        pytest.skip(f"Ceph RGW: {exc}")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def center_desk(tmp_path_factory: pytest.TempPathFactory, weed: WeedServer,
                camera_template: CameraTree) -> Iterator[CenterDesk]:
    """The center desk tests' world (center_desk_support.py), built on first use and
    shared by test_center_desk.py and test_center_desk_exports.py (a module fixture was
    built once per module, 7-12 s each; tests/worker_plan.py keeps both on one worker)."""
    need_browser()
    with center_desk_world(tmp_path_factory.mktemp("center-desk"), weed.endpoint,
                           camera_template.root) as world:
        yield world


@pytest.fixture
def bucket(weed: WeedServer) -> str:
    return make_bucket(weed.endpoint)


@pytest.fixture
def objects(weed: WeedServer, bucket: str) -> ObjectStore:
    return ObjectStore(client=client_for(weed.endpoint), bucket=bucket, part_size=5 * MiB,
                       multipart_threshold=5 * MiB, max_concurrency=3)


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    # The real, migrated schema (triggers included), like a station's.
    cat = Catalog.open(migrated(f"sqlite:///{tmp_path / 'catalog.sqlite3'}"))
    yield cat
    cat.close()


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    s = ContentStore(root=tmp_path / "store")
    s.ensure()
    return s


@pytest.fixture
def add_blob(catalog: Catalog, store: ContentStore) -> AddBlob:
    """Put bytes into the content store and the catalog, as an offload would."""

    def add(data: bytes | None = None, *, size: int = 1000, seed: int = 0) -> StoredBlob:
        payload = data if data is not None else pseudo_random(size, seed)
        b3, sha = stored_blob(store, catalog, payload, at=T0)
        return StoredBlob(b3, sha, len(payload), store.path_for(b3))

    return add


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[WeedServer]:
    """A server this test may kill (the session's one stays up for the others)."""
    with weed_server(tmp_path / "weed") as server:
        yield server
