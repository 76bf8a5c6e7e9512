"""Streaming digests: BLAKE3 and SHA-256 of a stream in one pass, constant memory.

SHA-256 runs on a second thread over the same buffers while the caller's thread reads,
writes and feeds BLAKE3, so hashing does not serialise the copy (both hash libraries and
the file syscalls release the GIL on large buffers). Buffers come from a small fixed pool
and are reused with ``readinto``: memory does not grow with the file. A writer that
waits for the disk can have a thread of its own too (``write_behind``).
"""

from __future__ import annotations

import functools
import hashlib
import mmap
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


class _Pool:
    """A fixed set of chunk buffers, each back in the pool once every worker given it is
    done. Anonymous mappings: page-aligned, so a writer may hand them to the disk
    directly (``O_DIRECT``, archive/staging.py)."""

    def __init__(self, chunk_size: int, count: int) -> None:
        self._free: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
        self._holders: dict[int, int] = {}
        self._lock = threading.Lock()
        for _ in range(count):
            self._free.put(mmap.mmap(-1, chunk_size))

    def get(self) -> mmap.mmap:
        return self._free.get()

    def hand_out(self, buf: mmap.mmap, holders: int) -> None:
        self._holders[id(buf)] = holders

    def release(self, buf: mmap.mmap) -> None:
        with self._lock:
            self._holders[id(buf)] -= 1
            if self._holders[id(buf)]:
                return
        self._free.put(buf)


class _Worker:
    """Applies ``fn`` to the buffers handed to it, in order, on its own thread, and gives
    each back to the pool. After an error it only gives them back; :meth:`finish`
    re-raises it on the caller's thread."""

    def __init__(self, name: str, fn: Callable[[memoryview], object], pool: _Pool) -> None:
        self._fn, self._pool = fn, pool
        self._todo: queue.SimpleQueue[tuple[mmap.mmap, int] | None] = queue.SimpleQueue()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._todo.get()) is not None:
            buf, n = item
            try:
                if self.error is None:
                    self._fn(memoryview(buf)[:n])
            except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
                self.error = exc
            finally:
                self._pool.release(buf)

    def submit(self, buf: mmap.mmap, n: int) -> None:
        self._todo.put((buf, n))

    def stop(self) -> None:
        self._todo.put(None)
        self._thread.join()

    def finish(self) -> None:
        self.stop()
        if self.error is not None:
            raise self.error


def copy_and_hash(
    src: Readable,
    dst: Writable | None = None,
    *,
    chunk_size: int = CHUNK_SIZE,
    on_chunk: Callable[[int], None] | None = None,
    write_behind: bool = False,
) -> Digests:
    """Read ``src`` to its end once, writing to ``dst`` (if any); return its digests.

    ``on_chunk(n)`` is called after each chunk (progress, test hooks); it may raise to
    abort. A short write raises OSError rather than silently dropping bytes.
    ``write_behind``: ``dst`` is written on a thread of its own, in order, while the next
    chunk is read (a writer that waits for the disk, archive/staging.py); all of it is
    written, or its error raised, before this returns.
    """
    pool = _Pool(chunk_size, _POOL + 2 * write_behind)
    sha = hashlib.sha256()
    sha_worker = _Worker("sha256", sha.update, pool)
    writer = _Worker("write-behind", functools.partial(_write_all, dst), pool) \
        if write_behind and dst is not None else None
    b3, size = blake3.blake3(), 0
    try:
        while True:
            buf = pool.get()
            view = memoryview(buf)
            n = src.readinto(view) or 0
            if n == 0:
                pool.hand_out(buf, 1)
                pool.release(buf)
                break
            pool.hand_out(buf, 1 if writer is None else 2)
            sha_worker.submit(buf, n)
            b3.update(view[:n])
            if writer is not None:
                writer.submit(buf, n)
                if writer.error is not None:
                    raise writer.error
            elif dst is not None:
                _write_all(dst, view[:n])
            size += n
            if on_chunk is not None:
                on_chunk(n)
    except BaseException:
        sha_worker.stop()
        if writer is not None:
            writer.stop()
        raise
    sha_worker.finish()
    if writer is not None:
        writer.finish()
    return Digests(size=size, blake3=str(b3.hexdigest()), sha256=sha.hexdigest())


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
