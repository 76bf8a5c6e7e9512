"""Is a blob a station names in the object store, locked, with the right checksum?

The center's check before it keeps an event that names a blob (:mod:`.mirror`). A HEAD
first (with checksums): no object, no COMPLIANCE lock, or another size → not there. An
object whose full-object SHA-256 the store reports is compared with the event's
SHA-256. Otherwise (no SHA-256 named, as for a signed record or a manifest, or a
multipart object whose checksum is a composite of its parts) the object is read once,
bounded by its size, and its BLAKE3 (the blob's name) and SHA-256 computed with a reused
buffer: the center then knows the bytes, not just a claim about them.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from typing import Any

import blake3

from archive.replica.objectstore import ObjectStore
from archive.replica.s3 import b64_of_hex, s3_errors
from archive.witness.mirror import NamedBlob
from integrity.codes import Code
from integrity.digest import CHUNK_SIZE
from integrity.errors import UploadError

#: Blobs without a size in the event (records, manifests) are small; read at most this.
MAX_UNSIZED = 64 << 20


class ObjectCheck:
    def __init__(self, *, objects: ObjectStore) -> None:
        self.objects = objects  # a boto3 client is safe to share between threads
        self._local = threading.local()  # one read-back buffer per checking thread

    def __call__(self, blob: NamedBlob) -> str | None:
        """None when ``blob`` is in the store as named; else why not (it may come later)."""
        miss = self.check(blob)
        return None if miss is None else miss[1]

    def check(self, blob: NamedBlob) -> tuple[Code, str] | None:
        """None when ``blob`` is in the store as named; else a fixity code and why."""
        key = self.objects.key_for(blob.blake3)
        try:
            head = self.objects.head(key)
        except UploadError as exc:
            return Code.E_FIXITY_UNREADABLE, f"the object store cannot be asked: {exc.message}"
        if head is None:
            return Code.E_FIXITY_MISSING, "not in the object store yet"
        if head.lock_mode != "COMPLIANCE":
            return Code.E_FIXITY_ALTERED, (f"the object has no COMPLIANCE lock (mode "
                                           f"{head.lock_mode})")
        if blob.size is not None and head.size != blob.size:
            return Code.E_FIXITY_ALTERED, (f"the object has {head.size} bytes, the event "
                                           f"says {blob.size}")
        full = (head.checksum_type or "FULL_OBJECT") == "FULL_OBJECT"
        if blob.sha256 is not None and full and head.checksum_sha256 is not None:
            if head.checksum_sha256 != b64_of_hex(blob.sha256):
                return Code.E_FIXITY_ALTERED, ("the object's SHA-256 is not the one the "
                                               "event names")
            return None
        if head.size > MAX_UNSIZED and blob.size is None:
            return Code.E_FIXITY_UNREADABLE, (f"an unsized blob of {head.size} bytes: too "
                                              "large to read back")
        return self._read_back(key, head.version_id, head.size, blob)

    def _read_back(self, key: str, version_id: str | None, size: int,
                   blob: NamedBlob) -> tuple[Code, str] | None:
        params: dict[str, Any] = {"Bucket": self.objects.bucket, "Key": key}
        if version_id:
            params["VersionId"] = version_id
        b3, sha, seen = blake3.blake3(), hashlib.sha256(), 0
        if not hasattr(self._local, "buf"):
            self._local.buf = bytearray(CHUNK_SIZE)
        view = memoryview(self._local.buf)
        try:
            with s3_errors("GetObject", key):
                body = self.objects.client.get_object(**params)["Body"]
                try:
                    while seen <= size:
                        n = body.readinto(view) or 0  # type: ignore[arg-type]
                        if n == 0:
                            break
                        b3.update(view[:n])
                        sha.update(view[:n])
                        seen += n
                finally:
                    with contextlib.suppress(Exception):
                        body.close()
        except UploadError as exc:
            return Code.E_FIXITY_UNREADABLE, f"the object cannot be read: {exc.message}"
        if seen != size or b3.hexdigest() != blob.blake3:
            return Code.E_FIXITY_ALTERED, "the object's bytes are not the blob the event names"
        if blob.sha256 is not None and sha.hexdigest() != blob.sha256:
            return Code.E_FIXITY_ALTERED, "the object's SHA-256 is not the one the event names"
        return None
