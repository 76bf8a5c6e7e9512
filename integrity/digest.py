"""Streaming digests: BLAKE3 and SHA-256 of a stream in one pass, constant memory.

SHA-256 runs on a second thread over the same buffers while the caller's thread reads,
writes and feeds BLAKE3, so hashing does not serialise the copy (both hash libraries and
the file syscalls release the GIL on large buffers). With ``read_ahead`` a third thread
reads the source ahead into free buffers. Buffers come from a small fixed pool and are
reused with ``readinto``: memory does not grow with the file.
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


class _Lease:
    """A pooled buffer lent to the writer and to the SHA-256 thread: it goes back to the
    pool only when both are done with it (a reader thread may refill it at once)."""

    __slots__ = ("buf", "_free", "_left", "_lock")

    def __init__(self, buf: bytearray, free: queue.Queue[bytearray | None]) -> None:
        self.buf, self._free, self._left = buf, free, 2
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last:
            self._free.put(self.buf)


class _Sha256Worker:
    """Hashes buffers handed to it on its own thread, then releases them."""

    def __init__(self) -> None:
        self._todo: queue.SimpleQueue[tuple[_Lease, int] | None] = queue.SimpleQueue()
        self._sha = hashlib.sha256()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._todo.get()) is not None:
            lease, n = item
            try:
                if self._error is None:
                    self._sha.update(memoryview(lease.buf)[:n])
            except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
                self._error = exc
            finally:
                lease.release()

    def submit(self, lease: _Lease, n: int) -> None:
        self._todo.put((lease, n))

    def finish(self) -> str:
        self._todo.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._sha.hexdigest()


#: What the read-ahead thread hands over: a filled buffer and its count (0: the end),
#: or the exception the source raised.
_Filled = tuple[bytearray, int] | BaseException


class _ReadAhead:
    """Reads ``src`` on its own thread into free pool buffers, up to the pool ahead of
    the consumer, so a slow source (a USB camera) is never idle while a chunk is hashed
    and written. The source's exceptions are handed over and raised by the consumer."""

    def __init__(self, src: Readable, free: queue.Queue[bytearray | None]) -> None:
        self._src, self._free = src, free
        self._filled: queue.SimpleQueue[_Filled] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="read-ahead", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while (buf := self._free.get()) is not None and not self._stop.is_set():
                n = self._src.readinto(memoryview(buf)) or 0
                self._filled.put((buf, n))
                if n == 0:
                    return
        except BaseException as exc:  # noqa: BLE001 - raised on the consumer's thread
            self._filled.put(exc)

    def next(self) -> tuple[bytearray, int]:
        item = self._filled.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        """Stop reading (wakes a thread waiting for a buffer) and wait for it."""
        self._stop.set()
        self._free.put(None)
        self._thread.join()


def copy_and_hash(
    src: Readable,
    dst: Writable | None = None,
    *,
    chunk_size: int = CHUNK_SIZE,
    on_chunk: Callable[[int], None] | None = None,
    read_ahead: bool = False,
) -> Digests:
    """Read ``src`` to its end once, writing to ``dst`` (if any); return its digests.

    ``on_chunk(n)`` is called after each chunk (progress, test hooks); it may raise to
    abort. A short write raises OSError rather than silently dropping bytes.
    ``read_ahead``: read ``src`` on a thread of its own, ahead of hashing and writing
    (for slow sources; its exceptions are raised here, unchanged).
    """
    free: queue.Queue[bytearray | None] = queue.Queue()
    for _ in range(_POOL):
        free.put(bytearray(chunk_size))
    sha = _Sha256Worker()
    ahead = _ReadAhead(src, free) if read_ahead else None
    b3 = blake3.blake3()
    size = 0
    try:
        while True:
            buf, n = ahead.next() if ahead else _read(src, free)
            if n == 0:
                free.put(buf)
                break
            view = memoryview(buf)[:n]
            lease = _Lease(buf, free)
            sha.submit(lease, n)
            try:
                b3.update(view)
                if dst is not None:
                    _write_all(dst, view)
            finally:
                lease.release()
            size += n
            if on_chunk is not None:
                on_chunk(n)
    finally:
        if ahead is not None:
            ahead.close()
        sha256 = sha.finish()
    return Digests(size=size, blake3=str(b3.hexdigest()), sha256=sha256)


def _read(src: Readable, free: queue.Queue[bytearray | None]) -> tuple[bytearray, int]:
    buf = free.get()
    assert buf is not None  # only a closing read-ahead puts None
    return buf, src.readinto(memoryview(buf)) or 0


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
