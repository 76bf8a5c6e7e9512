"""Streaming digests: BLAKE3 and SHA-256 of a stream in one pass, constant memory.

SHA-256 runs on a second thread over the same buffers while the caller's thread reads,
writes and feeds BLAKE3, so hashing does not serialise the copy (both hash libraries and
the file syscalls release the GIL on large buffers). Buffers come from a small fixed pool
and are reused with ``readinto``: memory does not grow with the file.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import blake3

from integrity.errors import DigestMismatch, SizeMismatch

CHUNK_SIZE = 1 << 20
_POOL = 4


class Readable(Protocol):
    def readinto(self, buffer: memoryview, /) -> int | None: ...


class Writable(Protocol):
    def write(self, data: memoryview, /) -> int | None: ...


@dataclass(frozen=True)
class Digests:
    """What we know of a byte string: its size and two independent digests (hex)."""

    size: int
    blake3: str
    sha256: str

    def check_against(self, other: Digests, *, subject: str, sha256: bool = True) -> None:
        """Raise if ``other`` (a re-read) differs; the size is the cheapest check.

        ``sha256=False`` compares size and BLAKE3 only, for a re-read hashed with
        ``hash_stream(..., sha256=False)``: equal BLAKE3 already proves equal bytes.
        """
        if other.size != self.size:
            raise SizeMismatch(
                f"{subject}: size {other.size} != expected {self.size}",
                subject=subject, expected=self.size, actual=other.size,
            )
        if other.blake3 != self.blake3 or (sha256 and other.sha256 != self.sha256):
            raise DigestMismatch(
                f"{subject}: digest differs from the expected one",
                subject=subject, expected=self.blake3, actual=other.blake3,
                expected_sha256=self.sha256, actual_sha256=other.sha256,
            )


def blake3_hex(data: bytes) -> str:
    return str(blake3.blake3(data).hexdigest())


class _Sha256Worker:
    """Hashes buffers handed to it on its own thread, then returns them to the pool."""

    def __init__(self, free: queue.Queue[bytearray]) -> None:
        self._todo: queue.SimpleQueue[tuple[bytearray, int] | None] = queue.SimpleQueue()
        self._free = free
        self._sha = hashlib.sha256()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._todo.get()) is not None:
            buf, n = item
            try:
                if self._error is None:
                    self._sha.update(memoryview(buf)[:n])
            except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
                self._error = exc
            finally:
                self._free.put(buf)

    def submit(self, buf: bytearray, n: int) -> None:
        self._todo.put((buf, n))

    def finish(self) -> str:
        self._todo.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._sha.hexdigest()


def copy_and_hash(
    src: Readable,
    dst: Writable | None = None,
    *,
    chunk_size: int = CHUNK_SIZE,
    on_chunk: Callable[[int], None] | None = None,
) -> Digests:
    """Read ``src`` to its end once, writing to ``dst`` (if any); return its digests.

    ``on_chunk(n)`` is called after each chunk (progress, test hooks); it may raise to
    abort. A short write raises OSError rather than silently dropping bytes.
    """
    free: queue.Queue[bytearray] = queue.Queue()
    for _ in range(_POOL):
        free.put(bytearray(chunk_size))
    sha = _Sha256Worker(free)
    b3 = blake3.blake3()
    size = 0
    try:
        while True:
            buf = free.get()
            n = src.readinto(memoryview(buf)) or 0
            if n == 0:
                free.put(buf)
                break
            view = memoryview(buf)[:n]
            sha.submit(buf, n)
            b3.update(view)
            if dst is not None:
                _write_all(dst, view)
            size += n
            if on_chunk is not None:
                on_chunk(n)
    finally:
        sha256 = sha.finish()
    return Digests(size=size, blake3=str(b3.hexdigest()), sha256=sha256)


def _write_all(dst: Writable, view: memoryview) -> None:
    while view:
        written = dst.write(view)
        if not written:
            raise OSError("short write: destination accepted no bytes")
        view = view[written:]


def hash_stream(src: Readable, *, chunk_size: int = CHUNK_SIZE, sha256: bool = True,
                ) -> Digests:
    """Digests of a stream, read once (the verify side of a copy).

    ``sha256=False`` computes only BLAKE3 (``Digests.sha256`` is left empty): when both
    digests of the original are known, an equal size and BLAKE3 prove the bytes equal,
    so a verify re-read needs no second SHA-256, the costlier hash by ~2.5x here.
    """
    if sha256:
        return copy_and_hash(src, None, chunk_size=chunk_size)
    buf = bytearray(chunk_size)
    view = memoryview(buf)
    b3 = blake3.blake3()
    size = 0
    while n := src.readinto(view) or 0:
        b3.update(view[:n])
        size += n
    return Digests(size=size, blake3=str(b3.hexdigest()), sha256="")
