"""The camera reader asks the kernel for the bytes beyond each chunk (POSIX_FADV_WILLNEED)
so a slow camera's reads stay queued while the chunk is hashed and written, and lets the
pages it has read go (POSIX_FADV_DONTNEED); the advice never changes what is read, and a
failing advice does not fail the copy.
(What it buys at camera speed is measured in bench.camera, docs/BENCHMARKS.md.)"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from evidock_testing import cached_bytes, on_disk_only

from ingest import camread
from ingest.camread import CameraReader, SourceReadError
from ingest.hooks import Hooks
from integrity.digest import copy_and_hash, hash_stream

CHUNK = 64 << 10


def _file(tmp_path: Path, size: int) -> Path:
    path = tmp_path / "clip.mp4"
    path.write_bytes(os.urandom(size))
    return path


def _advice_of_a_copy(path: Path, monkeypatch: pytest.MonkeyPatch,
                      **reader: int) -> list[tuple[int, int, int]]:
    """Copy ``path`` through a CameraReader(**reader); the advice it gave, in order. The
    digests must be the file's: advice never changes what is read."""
    advised: list[tuple[int, int, int]] = []
    real = os.posix_fadvise

    def spy(fd: int, offset: int, length: int, advice: int) -> None:
        advised.append((offset, length, advice))
        real(fd, offset, length, advice)

    monkeypatch.setattr(camread.os, "posix_fadvise", spy)
    fd = os.open(path, os.O_RDONLY)
    try:
        got = copy_and_hash(CameraReader(fd, Hooks(), **reader), chunk_size=CHUNK)
    finally:
        os.close(fd)
    with open(path, "rb") as fh:
        assert got == hash_stream(fh)
    return advised


def test_each_read_asks_for_the_bytes_just_beyond_it(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    advised = _advice_of_a_copy(_file(tmp_path, 5 * CHUNK + 123), monkeypatch, ahead=4 * CHUNK)
    assert advised == [((i + 1) * CHUNK if i < 5 else 5 * CHUNK + 123, 4 * CHUNK,
                        os.POSIX_FADV_WILLNEED) for i in range(6)]


def test_no_advice_when_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _file(tmp_path, 3 * CHUNK)
    monkeypatch.setattr(camread.os, "posix_fadvise", lambda *a: pytest.fail("advised"))
    fd = os.open(path, os.O_RDONLY)
    try:
        assert copy_and_hash(CameraReader(fd, Hooks()), chunk_size=CHUNK).size == 3 * CHUNK
    finally:
        os.close(fd)


def test_a_refused_advice_does_not_fail_the_copy_a_failed_read_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _file(tmp_path, 3 * CHUNK)

    def refuse(*args: int) -> None:
        raise OSError(errno.EINVAL, "no advice here")

    monkeypatch.setattr(camread.os, "posix_fadvise", refuse)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert copy_and_hash(CameraReader(fd, Hooks(), ahead=CHUNK),
                             chunk_size=CHUNK).size == 3 * CHUNK
    finally:
        os.close(fd)
    with pytest.raises(SourceReadError) as caught:  # a closed descriptor: the read fails
        copy_and_hash(CameraReader(fd, Hooks(), ahead=CHUNK), chunk_size=CHUNK)
    assert caught.value.os_error.errno == errno.EBADF


def test_pages_read_are_dropped_behind_the_reader_every_so_many_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    advised = _advice_of_a_copy(_file(tmp_path, 5 * CHUNK + 123), monkeypatch,
                                drop_behind=2 * CHUNK)
    dropped = [(at, n) for at, n, advice in advised if advice == os.POSIX_FADV_DONTNEED]
    assert dropped == [(0, 2 * CHUNK), (2 * CHUNK, 2 * CHUNK), (4 * CHUNK, CHUNK + 123)]


@pytest.mark.parametrize("drop_behind", [0, 2 * CHUNK])
def test_a_file_read_for_its_copy_leaves_the_page_cache_as_it_found_it(
        tmp_path: Path, drop_behind: int) -> None:
    path = _file(tmp_path, 40 * CHUNK + 5)
    on_disk_only(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        copy_and_hash(CameraReader(fd, Hooks(), ahead=4 * CHUNK, drop_behind=drop_behind),
                      chunk_size=CHUNK)
    finally:
        os.close(fd)
    cached = cached_bytes(path)
    assert cached == 0 if drop_behind else cached >= 40 * CHUNK
