"""copy_and_hash: one pass, both digests, exact bytes, at every size around the chunk."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import threading

import blake3
import pytest

from integrity.digest import Digests, copy_and_hash, hash_stream
from integrity.errors import DigestMismatch, SizeMismatch

CHUNK = 4096


@pytest.mark.parametrize("behind", [False, True], ids=["inline", "write-behind"])
@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 7 * CHUNK + 13, 300_000])
def test_copy_and_hash_matches_reference(size: int, behind: bool) -> None:
    data = bytes((i * 31 + 7) % 251 for i in range(size))
    out = io.BytesIO()
    seen: list[int] = []
    d = copy_and_hash(io.BytesIO(data), out, chunk_size=CHUNK, on_chunk=seen.append,
                      write_behind=behind)
    assert out.getvalue() == data
    assert d == Digests(size, blake3.blake3(data).hexdigest(), hashlib.sha256(data).hexdigest())
    assert sum(seen) == size
    assert hash_stream(io.BytesIO(data), chunk_size=CHUNK) == d


@pytest.mark.parametrize("behind", [False, True], ids=["inline", "write-behind"])
def test_short_writes_are_completed_not_dropped(behind: bool) -> None:
    class Dribble(io.BytesIO):
        def write(self, b) -> int:  # type: ignore[override]
            return super().write(bytes(b[:7]))

    data = bytes(range(256)) * 40
    out = Dribble()
    copy_and_hash(io.BytesIO(data), out, chunk_size=CHUNK, write_behind=behind)
    assert out.getvalue() == data


@pytest.mark.parametrize("behind", [False, True], ids=["inline", "write-behind"])
def test_zero_length_write_raises(behind: bool) -> None:
    class Stuck(io.BytesIO):
        def write(self, b) -> int:  # type: ignore[override]
            return 0

    with pytest.raises(OSError, match="short write"):
        copy_and_hash(io.BytesIO(b"abc"), Stuck(), chunk_size=CHUNK, write_behind=behind)


class Counted(io.BytesIO):
    """A source that counts its reads and fails at read ``fail_at`` (if given)."""

    def __init__(self, data: bytes, fail_at: int = 0) -> None:
        super().__init__(data)
        self.reads, self.fail_at = 0, fail_at

    def readinto(self, b) -> int:  # type: ignore[override]
        self.reads += 1
        if self.reads == self.fail_at:
            raise OSError(errno.EIO, "camera unplugged")
        return super().readinto(b)


def _behind_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name in ("write-behind", "sha256")]


def test_writes_behind_go_in_order_on_their_own_thread() -> None:
    data = os.urandom(200 * CHUNK + 5)
    out, writers = io.BytesIO(), set()

    class Recorded(io.BytesIO):
        def write(self, b) -> int:  # type: ignore[override]
            writers.add(threading.current_thread().name)
            return out.write(bytes(b))

    copy_and_hash(io.BytesIO(data), Recorded(), chunk_size=CHUNK, write_behind=True)
    assert out.getvalue() == data and writers == {"write-behind"}
    assert _behind_threads() == []


def test_a_write_behind_that_fails_stops_the_copy_and_raises() -> None:
    """A full disk met by the writer thread: the copy stops within a few chunks (it does
    not read the camera to its end) and raises that error; no thread is left."""
    class Full(io.BytesIO):
        def write(self, b) -> int:  # type: ignore[override]
            if self.tell() >= 3 * CHUNK:
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(bytes(b))

    src = Counted(os.urandom(1000 * CHUNK))
    with pytest.raises(OSError) as info:
        copy_and_hash(src, Full(), chunk_size=CHUNK, write_behind=True)
    assert info.value.errno == errno.ENOSPC
    assert src.reads < 20, src.reads
    assert _behind_threads() == []


def test_a_failing_source_with_writes_behind_raises_its_error_after_a_prefix() -> None:
    data = os.urandom(50 * CHUNK)
    out = io.BytesIO()
    with pytest.raises(OSError, match="camera unplugged"):
        copy_and_hash(Counted(data, fail_at=10), out, chunk_size=CHUNK, write_behind=True)
    assert out.getvalue() == data[:9 * CHUNK]  # what was read went out, in order
    assert _behind_threads() == []


def test_check_against_names_size_then_digest() -> None:
    a = hash_stream(io.BytesIO(b"abc"))
    with pytest.raises(SizeMismatch):
        a.check_against(hash_stream(io.BytesIO(b"abcd")), subject="s")
    with pytest.raises(DigestMismatch) as info:
        a.check_against(hash_stream(io.BytesIO(b"abd")), subject="s")
    assert info.value.code == "E_DIGEST_MISMATCH"
    assert info.value.details["expected"] == a.blake3
