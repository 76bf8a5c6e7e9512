"""copy_and_hash: one pass, both digests, exact bytes, at every size around the chunk."""

from __future__ import annotations

import errno
import hashlib
import io
import threading

import blake3
import pytest

from integrity.digest import Digests, copy_and_hash, hash_stream
from integrity.errors import DigestMismatch, SizeMismatch

CHUNK = 4096


@pytest.mark.parametrize("read_ahead", [False, True])
@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 7 * CHUNK + 13, 300_000])
def test_copy_and_hash_matches_reference(size: int, read_ahead: bool) -> None:
    data = bytes((i * 31 + 7) % 251 for i in range(size))
    out = io.BytesIO()
    seen: list[int] = []
    d = copy_and_hash(io.BytesIO(data), out, chunk_size=CHUNK, on_chunk=seen.append,
                      read_ahead=read_ahead)
    assert out.getvalue() == data
    assert d == Digests(size, blake3.blake3(data).hexdigest(), hashlib.sha256(data).hexdigest())
    assert sum(seen) == size
    assert hash_stream(io.BytesIO(data), chunk_size=CHUNK) == d


def test_short_writes_are_completed_not_dropped() -> None:
    class Dribble(io.BytesIO):
        def write(self, b) -> int:  # type: ignore[override]
            return super().write(bytes(b[:7]))

    data = b"x" * 10_000
    out = Dribble()
    copy_and_hash(io.BytesIO(data), out, chunk_size=CHUNK)
    assert out.getvalue() == data


def test_zero_length_write_raises() -> None:
    class Stuck(io.BytesIO):
        def write(self, b) -> int:  # type: ignore[override]
            return 0

    with pytest.raises(OSError, match="short write"):
        copy_and_hash(io.BytesIO(b"abc"), Stuck(), chunk_size=CHUNK)


class _Slow(io.BytesIO):
    """A source that hands out little per read and remembers which thread read it."""

    def __init__(self, data: bytes, *, fail_at: int | None = None) -> None:
        super().__init__(data)
        self.readers: set[str] = set()
        self.reads, self._fail_at = 0, fail_at

    def readinto(self, b) -> int:  # type: ignore[override]
        self.readers.add(threading.current_thread().name)
        self.reads += 1
        if self.reads == self._fail_at:
            raise OSError(errno.EIO, "camera gone")
        return super().readinto(memoryview(b)[:100])


def test_read_ahead_reads_on_its_own_thread_and_keeps_the_bytes() -> None:
    data = bytes(range(256)) * 40
    src, out = _Slow(data), io.BytesIO()
    d = copy_and_hash(src, out, chunk_size=CHUNK, read_ahead=True)
    assert out.getvalue() == data and d.size == len(data)
    assert d.sha256 == hashlib.sha256(data).hexdigest()
    assert src.readers == {"read-ahead"}


def test_read_ahead_raises_the_sources_error_and_stops() -> None:
    before = threading.active_count()
    with pytest.raises(OSError, match="camera gone") as info:
        copy_and_hash(_Slow(b"y" * 5000, fail_at=7), io.BytesIO(), chunk_size=CHUNK,
                      read_ahead=True)
    assert info.value.errno == errno.EIO, "the source's own exception, unchanged"
    assert threading.active_count() == before, "no reader or hashing thread left behind"


def test_an_abort_between_chunks_stops_the_read_ahead() -> None:
    class Abort(Exception):
        pass

    def stop(n: int) -> None:
        raise Abort

    src = _Slow(b"z" * 100_000)
    before = threading.active_count()
    with pytest.raises(Abort):
        copy_and_hash(src, io.BytesIO(), chunk_size=CHUNK, on_chunk=stop, read_ahead=True)
    assert threading.active_count() == before
    assert src.reads <= 5, "it read at most the pool ahead, then stopped"


def test_check_against_names_size_then_digest() -> None:
    a = hash_stream(io.BytesIO(b"abc"))
    with pytest.raises(SizeMismatch):
        a.check_against(hash_stream(io.BytesIO(b"abcd")), subject="s")
    with pytest.raises(DigestMismatch) as info:
        a.check_against(hash_stream(io.BytesIO(b"abd")), subject="s")
    assert info.value.code == "E_DIGEST_MISMATCH"
    assert info.value.details["expected"] == a.blake3
