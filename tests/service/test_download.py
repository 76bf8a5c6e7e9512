"""The client's download rules, on archives made with tarfile: only what the service
listed, under safe names, each file checked; anything else refused, nothing outside."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from evidock.download import landing, listing, receive
from integrity.errors import EvidockError, TransferFailed
from records.exportarea import PackageFile

GOOD = {"bagit.txt": b"BagIt-Version: 1.0\n", "data/segments/seg00000.mp4": b"\x00\x01" * 3000}


def _listed(files: dict[str, bytes]) -> list[PackageFile]:
    return [PackageFile(name, len(data), hashlib.sha256(data).hexdigest())
            for name, data in files.items()]


def _tar(add: Callable[[tarfile.TarFile], None]) -> list[bytes]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        add(tar)
    data = buf.getvalue()
    return [data[i:i + 1000] for i in range(0, len(data), 1000)]  # pieces, as they arrive


def _file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _good(tar: tarfile.TarFile) -> None:
    for name, data in GOOD.items():
        _file(tar, name, data)


def test_a_listed_archive_is_written_exactly(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    receive(_tar(_good), dest, _listed(GOOD))
    written = {p.relative_to(dest).as_posix(): p.read_bytes()
               for p in dest.rglob("*") if p.is_file()}
    assert written == GOOD


def _special(kind: bytes, name: str = "data/x") -> Callable[[tarfile.TarFile], None]:
    def add(tar: tarfile.TarFile) -> None:
        _good(tar)
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, "/etc/passwd"
        tar.addfile(info)
    return add


def _extra(name: str, data: bytes = b"x") -> Callable[[tarfile.TarFile], None]:
    def add(tar: tarfile.TarFile) -> None:
        _good(tar)
        _file(tar, name, data)
    return add


def _big_pax(tar: tarfile.TarFile) -> None:
    info = tarfile.TarInfo("bagit.txt")
    info.size = len(GOOD["bagit.txt"])
    info.pax_headers = {"comment": "x" * 1_000_000}  # far more than anything listed
    tar.addfile(info, io.BytesIO(GOOD["bagit.txt"]))


@pytest.mark.parametrize("add", [
    _special(tarfile.SYMTYPE), _special(tarfile.LNKTYPE), _special(tarfile.CHRTYPE),
    _special(tarfile.FIFOTYPE), _extra("../escaped"), _extra("/tmp/absolute"),
    _extra("data/./x"), _extra("unlisted.txt"), _extra("bagit.txt", GOOD["bagit.txt"]),
    _big_pax,
], ids=["symlink", "hardlink", "device", "fifo", "dotdot", "absolute", "dot", "unlisted",
        "twice", "oversized"])
def test_anything_unlisted_or_unsafe_is_refused(tmp_path: Path,
                                                add: Callable[[tarfile.TarFile], None]) -> None:
    dest = tmp_path / "box" / "dest"
    dest.mkdir(parents=True)
    with pytest.raises(TransferFailed):
        receive(_tar(add), dest, _listed(GOOD))
    outside = sorted(p.name for p in (tmp_path / "box").iterdir())
    assert outside == ["dest"] and not Path("/tmp/absolute").exists()
    assert not (dest / "data" / "x").is_symlink()


def test_a_size_or_digest_other_than_listed_is_refused(tmp_path: Path) -> None:
    changed = {**GOOD, "bagit.txt": b"BagIt-Version: 0.97\n"}
    with pytest.raises(TransferFailed, match="bagit.txt"):
        receive(_tar(lambda t: [_file(t, n, d) for n, d in changed.items()]), tmp_path,
                _listed(GOOD))
    same_size = {**GOOD, "bagit.txt": b"BagIt-Version: 1.1\n"}
    with pytest.raises(TransferFailed, match="SHA-256"):
        receive(_tar(lambda t: [_file(t, n, d) for n, d in same_size.items()]),
                tmp_path / "again", _listed(GOOD))


def test_a_missing_file_or_a_cut_stream_is_refused(tmp_path: Path) -> None:
    only_one = _tar(lambda t: _file(t, "bagit.txt", GOOD["bagit.txt"]))
    with pytest.raises(TransferFailed, match="without 1 listed"):
        receive(only_one, tmp_path / "a", _listed(GOOD))
    pieces = _tar(_good)
    with pytest.raises(TransferFailed):
        receive(pieces[: len(pieces) // 2], tmp_path / "b", _listed(GOOD))


@pytest.mark.parametrize("raw", [
    [{"path": "../x", "size": 1, "sha256": "0" * 64}],
    [{"path": "a", "size": -1, "sha256": "0" * 64}],
    [{"path": "a", "size": 1, "sha256": "nothex"}],
    [{"path": "a", "size": 1, "sha256": "0" * 64}] * 2,
    {"path": "a"},
])
def test_a_bad_listing_is_refused_before_anything_is_written(raw: object) -> None:
    with pytest.raises(TransferFailed):
        listing(raw)


def test_landing_is_all_or_nothing(tmp_path: Path) -> None:
    full = tmp_path / "full"
    full.mkdir()
    (full / "mine.txt").write_text("keep")
    with pytest.raises(EvidockError, match="not an empty directory"), landing(full):
        raise AssertionError("never entered")
    out = tmp_path / "out"
    with pytest.raises(TransferFailed), landing(out) as tmp:
        (tmp / "half").write_bytes(b"x")
        raise TransferFailed("broken")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]
    with landing(out) as tmp:
        (tmp / "whole").write_bytes(b"x")
    assert [p.name for p in out.iterdir()] == ["whole"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full", "out"]
