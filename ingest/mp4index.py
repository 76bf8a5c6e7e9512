"""Does every sample an MP4's index lists lie inside the file? (ISO/IEC 14496-12 §8.7)

Each track's sample tables say where every sample's bytes are: ``stco``/``co64`` where
each chunk starts, ``stsc`` how many samples each chunk holds, ``stsz`` each sample's
size. A file cut short behind its index (moov in front), at a packet boundary or inside
the last packet, or an index pointing past the data, lists samples that end beyond the
file's last byte. Reading the moov (~100 kB for ten minutes of camera footage) answers
what reading every packet answered (ffprobe ``-count_packets``, 0.13–0.2 CPU-s for a
279 MB file, issue 14). What this does not follow is not judged here, and the caller
reads the packets instead: a fragmented file (``mvex``), samples in another file
(``dref``), compact sizes (``stz2``), tables that do not add up or do not fit their box.
"""

from __future__ import annotations

import itertools
import os
import struct
import sys
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_MAX_TOP = 1 << 16  # top-level boxes walked to find the moov (a non-fragmented file: ~4)
_MAX_MOOV = 64 << 20  # a moov this large is not a camera's: not judged
_HEADER = struct.Struct(">I4s")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


class NotJudged(Exception):
    """The index is one this reader does not follow; the packets are read instead."""


@dataclass(frozen=True)
class IndexCheck:
    """``judged``: the sample tables were read; ``gap``: why not every sample is in the
    file (None: all are)."""

    judged: bool
    gap: str | None = None


def check_index(path: Path) -> IndexCheck:
    """Read ``path``'s moov (without following a link) and bound every sample by the
    file's size. Never raises: an unreadable file is not judged here."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return IndexCheck(judged=False)
    try:
        size = os.fstat(fd).st_size
        moov = _read_moov(fd, size)
        return IndexCheck(judged=True, gap=_gap(moov, size))
    except (NotJudged, OSError, struct.error):
        return IndexCheck(judged=False)
    finally:
        os.close(fd)


def _read_moov(fd: int, size: int) -> bytes:
    pos = 0
    for _ in range(_MAX_TOP):
        head = os.pread(fd, 16, pos)
        if len(head) < 8:
            break
        length, kind = _HEADER.unpack_from(head)
        header = 8
        if length == 1 and len(head) == 16:
            length, header = _U64.unpack_from(head, 8)[0], 16
        if length < header or pos + length > size:
            break  # "to the end", impossible or cut: the box walk and ffprobe judge it
        if kind == b"moov":
            if length > _MAX_MOOV:
                break
            return os.pread(fd, length - header, pos + header)
        pos += length
    raise NotJudged("no whole moov")


def _boxes(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(type, payload) of each box in ``data``; a box that does not fit: not judged."""
    pos = 0
    while pos < len(data):
        length, kind = _HEADER.unpack_from(data, pos)
        header = 8
        if length == 1:
            length, header = _U64.unpack_from(data, pos + 8)[0], 16
        if length < header or pos + length > len(data):
            raise NotJudged(f"box {kind!r} does not fit its parent")
        yield kind, data[pos + header:pos + length]
        pos += length


def _child(data: bytes, kind: bytes) -> bytes | None:
    return next((body for k, body in _boxes(data) if k == kind), None)


def _gap(moov: bytes, size: int) -> str | None:
    tracks = [body for kind, body in _boxes(moov) if kind == b"trak"]
    if _child(moov, b"mvex") is not None or not tracks:
        raise NotJudged("fragmented, or no track")
    for number, trak in enumerate(tracks, start=1):
        end = _track_end(trak)
        if end > size:
            return (f"track {number}: its index lists samples up to byte {end}, the file "
                    f"ends at byte {size} (cut short)")
    return None


def _track_end(trak: bytes) -> int:
    """The last byte + 1 of this track's samples, as its tables place them."""
    mdia = _child(trak, b"mdia")
    minf = _child(mdia, b"minf") if mdia is not None else None
    stbl = _child(minf, b"stbl") if minf is not None else None
    if minf is None or stbl is None or not _self_contained(minf):
        raise NotJudged("no sample table, or samples in another file")
    shared, sizes, count = _sizes(_need(stbl, b"stsz"))
    # 8 bytes a sample (a day of 30 fps video: ~21 MB), not a list of Python ints.
    prefix = array("Q") if shared else array("Q", itertools.accumulate(sizes, initial=0))
    offsets, runs = _offsets(stbl), _table(_need(stbl, b"stsc"), 3)
    sample, farthest = 0, 0
    firsts = [*runs[0::3], len(offsets) + 1]
    for i, per_chunk in enumerate(runs[1::3]):
        for chunk in range(firsts[i], min(firsts[i + 1], len(offsets) + 1)):
            if chunk < 1 or sample + per_chunk > count:
                raise NotJudged("stsc places more samples than stsz has")
            span = shared * per_chunk if shared \
                else prefix[sample + per_chunk] - prefix[sample]
            farthest = max(farthest, offsets[chunk - 1] + span)
            sample += per_chunk
    if sample != count:
        raise NotJudged("stsc places fewer samples than stsz has")
    return farthest


def _self_contained(minf: bytes) -> bool:
    """Every data reference is "this file" (flag 1), as cameras write."""
    dref = _child(_child(minf, b"dinf") or b"", b"dref")
    if dref is None or len(dref) < 8:
        return False
    return all(len(body) >= 4 and _U32.unpack_from(body)[0] & 1
               for _, body in _boxes(dref[8:]))


def _need(stbl: bytes, kind: bytes) -> bytes:
    body = _child(stbl, kind)
    if body is None:
        raise NotJudged(f"no {kind!r}")
    return body


def _sizes(stsz: bytes) -> tuple[int, array[int], int]:
    """(the size all samples share, or 0; each sample's size when they do not; count)."""
    shared, count = struct.unpack_from(">II", stsz, 4)
    if shared:
        return shared, array("I"), count
    sizes = _table(stsz, 1, skip=4)
    if len(sizes) != count:
        raise NotJudged("stsz count and entries differ")
    return 0, sizes, count


def _offsets(stbl: bytes) -> array[int]:
    stco, co64 = _child(stbl, b"stco"), _child(stbl, b"co64")
    if stco is not None:
        return _table(stco, 1)
    if co64 is not None:
        return _table(co64, 1, wide=True)
    raise NotJudged("no chunk offsets")


def _table(box: bytes, fields: int, *, skip: int = 0, wide: bool = False) -> array[int]:
    """A full box's big-endian table: version/flags, entry count, entries of ``fields``
    numbers each (``skip`` bytes before the count)."""
    count = _U32.unpack_from(box, 4 + skip)[0]
    width = 8 if wide else 4
    start, need = 8 + skip, count * fields * width
    if start + need > len(box):
        raise NotJudged("a table longer than its box")
    out = array("Q" if wide else "I", box[start:start + need])
    if out.itemsize != width:
        raise NotJudged("no native integer of the table's width")
    if sys.byteorder == "little":
        out.byteswap()  # big-endian in the file
    return out
