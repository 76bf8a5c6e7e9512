"""copy_and_hash: one pass, both digests, exact bytes, at every size around the chunk."""

from __future__ import annotations

import hashlib
import io

import blake3
import pytest

from integrity.digest import Digests, copy_and_hash, hash_stream
from integrity.errors import DigestMismatch, SizeMismatch

CHUNK = 4096


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 7 * CHUNK + 13, 300_000])
def test_copy_and_hash_matches_reference(size: int) -> None:
    data = bytes((i * 31 + 7) % 251 for i in range(size))
    out = io.BytesIO()
    seen: list[int] = []
    d = copy_and_hash(io.BytesIO(data), out, chunk_size=CHUNK, on_chunk=seen.append)
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


def test_check_against_names_size_then_digest() -> None:
    a = hash_stream(io.BytesIO(b"abc"))
    with pytest.raises(SizeMismatch):
        a.check_against(hash_stream(io.BytesIO(b"abcd")), subject="s")
    with pytest.raises(DigestMismatch) as info:
        a.check_against(hash_stream(io.BytesIO(b"abd")), subject="s")
    assert info.value.code == "E_DIGEST_MISMATCH"
    assert info.value.details["expected"] == a.blake3
