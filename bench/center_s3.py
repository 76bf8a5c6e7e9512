"""The object-store half of the center's feed check, measured apart (bench.center).

`bench.center` answers the feed's blob check from memory; this module measures what the
real check (:class:`archive.witness.objectcheck.ObjectCheck`) costs per blob against a
real SeaweedFS on 127.0.0.1 (tests/replica/s3server.py), so a reader can add it: an
``ingest.file`` names two blobs, the original (size + SHA-256: a HEAD with checksums
suffices when the store reports a full-object SHA-256) and its signed record (no SHA-256
in the event: HEAD, then a GET that re-hashes the bytes).
"""

from __future__ import annotations

import hashlib
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import blake3

from archive.witness.mirror import NamedBlob
from archive.witness.objectcheck import ObjectCheck
from bench.common import REPO

sys.path.insert(0, str(REPO / "tests" / "replica"))  # the tests' server launcher


@dataclass(frozen=True)
class S3Figures:
    blobs: int
    original_p50_ms: float
    original_p95_ms: float
    record_p50_ms: float
    record_p95_ms: float
    gets_original: int  # read-backs among the originals' checks (0: HEAD was enough)
    gets_record: int
    boot_s: float

    def per_recording_ms(self) -> float:
        return self.original_p50_ms + self.record_p50_ms


class _Gets:
    """Counts the GetObject calls of a boto3 client (the check's read-back path)."""

    def __init__(self, client: Any) -> None:
        self.count = 0
        client.meta.events.register("before-call.s3.GetObject", self._seen)

    def _seen(self, **_kwargs: Any) -> None:
        self.count += 1


def _upload(objects: Any, root: Path, n: int, *, size: int) -> list[NamedBlob]:
    from archive.replica.s3 import BlobRef

    until = datetime.now(UTC) + timedelta(days=1)
    named = []
    for i in range(n):
        data = blake3.blake3(f"center-{size}-{i}".encode()).digest(length=size)
        b3, sha = blake3.blake3(data).hexdigest(), hashlib.sha256(data).hexdigest()
        path = root / b3
        path.write_bytes(data)
        objects.upload(BlobRef(blake3=b3, sha256=sha, size=size, path=path),
                       retain_until=until)
        # An original is named with its size and SHA-256, a signed record by BLAKE3 alone.
        named.append(NamedBlob(b3, sha, size) if size > 4096 else NamedBlob(b3))
    return named


def _times(check: ObjectCheck, blobs: list[NamedBlob]) -> list[float]:
    out = []
    for blob in blobs:
        t = time.perf_counter()
        why = check(blob)
        out.append((time.perf_counter() - t) * 1000)
        if why is not None:
            raise RuntimeError(f"blob check failed: {why}")
    return out


def _p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def measure(blobs: int) -> S3Figures:
    """``blobs`` objects (half originals of 64 KiB, half records of 1 KiB), each checked
    once with the real ObjectCheck after all are uploaded."""
    import s3server  # type: ignore[import-not-found]
    from storage_support import client_for, make_bucket  # type: ignore[import-not-found]

    from archive.replica.objectstore import ObjectStore

    with tempfile.TemporaryDirectory(prefix="evidock-center-s3-") as tmp:
        server = s3server.WeedServer(root=Path(tmp) / "weed")
        try:
            t0 = time.perf_counter()
            endpoint = server.start()
            boot = time.perf_counter() - t0
            objects = ObjectStore(client=client_for(endpoint), bucket=make_bucket(endpoint),
                                  key_prefix="st-001")
            (Path(tmp) / "f").mkdir()
            originals = _upload(objects, Path(tmp) / "f", blobs // 2, size=64 << 10)
            records = _upload(objects, Path(tmp) / "f", blobs - blobs // 2, size=1 << 10)
            check, gets = ObjectCheck(objects=objects), _Gets(objects.client)
            _times(check, originals[:20] + records[:20])  # warm the connections
            gets.count = 0
            o = _times(check, originals)
            got, gets.count = gets.count, 0
            r = _times(check, records)
        finally:
            server.kill()
    return S3Figures(blobs, statistics.median(o), _p(o, 95), statistics.median(r), _p(r, 95),
                     got, gets.count, boot)
