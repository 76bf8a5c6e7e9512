"""The index reader (ingest/mp4index.py) on files built box by box: it places every
sample where the moov's tables say (stsz, stsc, stco or co64), judges only what it
follows, and declines (the packets are then read) rather than guess or fail.

Real camera files and cuts of them are in test_media_check.py; there its answer is also
compared with what ffprobe's packet count says."""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import pytest

from fixtures.media import FFPROBE
from ingest.mp4index import IndexCheck, check_index


def box(kind: bytes, *children: bytes) -> bytes:
    body = b"".join(children)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def full(kind: bytes, body: bytes, flags: int = 0) -> bytes:
    return box(kind, struct.pack(">I", flags) + body)


def trak(sizes: list[int], offsets: list[int], runs: list[tuple[int, int]], *,
         wide: bool = False, shared: int = 0, dref_flags: int = 1) -> bytes:
    stsz = full(b"stsz", struct.pack(">II", shared, len(sizes))
                + (b"" if shared else struct.pack(f">{len(sizes)}I", *sizes)))
    chunks = full(b"co64" if wide else b"stco", struct.pack(">I", len(offsets))
                  + struct.pack(f">{len(offsets)}{'Q' if wide else 'I'}", *offsets))
    stsc = full(b"stsc", struct.pack(">I", len(runs))
                + b"".join(struct.pack(">III", first, n, 1) for first, n in runs))
    dref = full(b"dref", struct.pack(">I", 1) + full(b"url ", b"", flags=dref_flags))
    minf = box(b"minf", box(b"dinf", dref), box(b"stbl", stsz, chunks, stsc))
    return box(b"trak", box(b"mdia", minf))


B = 1008  # where the mdat's payload starts in these files


def mp4(tmp: Path, *traks: bytes, data: int, moov_extra: bytes = b"") -> Path:
    """ftyp, moov, free, then an mdat of ``data`` bytes whose payload starts at byte B."""
    ftyp = box(b"ftyp", b"isom\0\0\2\0isom")
    moov = box(b"moov", *traks, moov_extra)
    pad = B - 8 - len(ftyp) - len(moov)
    assert pad >= 8, "the moov is too large for the layout of these tests"
    path = tmp / "f.mp4"
    path.write_bytes(ftyp + moov + box(b"free", bytes(pad - 8)) + box(b"mdat", bytes(data)))
    return path


def test_samples_inside_the_file_are_judged_with_no_gap(tmp_path: Path) -> None:
    # the mdat's payload is bytes B..B+100; two chunks of 2 samples, the last ending there
    path = mp4(tmp_path, trak([10, 20, 30, 40], [B, B + 30], [(1, 2)]), data=100)
    assert check_index(path) == IndexCheck(judged=True, gap=None)


@pytest.mark.parametrize("wide", [False, True], ids=["stco", "co64"])
def test_a_sample_past_the_end_is_a_gap(tmp_path: Path, wide: bool) -> None:
    path = mp4(tmp_path, trak([10, 20, 30, 41], [B, B + 30], [(1, 2)], wide=wide), data=100)
    got = check_index(path)
    assert got.judged and got.gap is not None
    assert f"up to byte {B + 101}" in got.gap and f"ends at byte {B + 100}" in got.gap


def test_runs_of_stsc_and_a_shared_size_place_samples(tmp_path: Path) -> None:
    """Chunks 1–2 hold 1 sample, chunks 3 on hold 2; every sample 10 bytes (stsz's
    shared size): the last chunk starts at B+82 and ends at B+102, past the end."""
    t = trak([10] * 6, [B, B + 22, B + 42, B + 82], [(1, 1), (3, 2)], shared=10)
    got = check_index(mp4(tmp_path, t, data=100))
    assert got.judged and got.gap is not None and f"up to byte {B + 102}" in got.gap
    t = trak([10] * 6, [B, B + 22, B + 42, B + 80], [(1, 1), (3, 2)], shared=10)
    assert check_index(mp4(tmp_path, t, data=100)) == IndexCheck(judged=True)


def test_every_track_is_bounded(tmp_path: Path) -> None:
    ok, bad = trak([10], [B], [(1, 1)]), trak([10], [B + 95], [(1, 1)])
    got = check_index(mp4(tmp_path, ok, bad, data=100))
    assert got.gap is not None and got.gap.startswith("track 2:")


@pytest.mark.parametrize("why", ["fragmented", "other file", "too many samples",
                                 "too few samples", "table longer than its box"])
def test_what_it_does_not_follow_is_not_judged(tmp_path: Path, why: str) -> None:
    t, extra = trak([10, 20], [B], [(1, 2)]), b""
    if why == "fragmented":
        extra = box(b"mvex", full(b"trex", bytes(20)))
    elif why == "other file":
        t = trak([10, 20], [B], [(1, 2)], dref_flags=0)
    elif why == "too many samples":
        t = trak([10, 20], [B, B + 30], [(1, 2)])
    elif why == "too few samples":
        t = trak([10, 20, 30], [B], [(1, 2)])
    else:  # an entry count of 2**32-1 in a box of a few bytes: no allocation, no error
        t = t.replace(struct.pack(">II", 0, 2), struct.pack(">II", 0, 0xFFFFFFFF), 1)
    assert check_index(mp4(tmp_path, t, data=100, moov_extra=extra)) == IndexCheck(False)


def test_files_that_are_no_mp4_or_unreadable_are_not_judged(tmp_path: Path) -> None:
    riff = tmp_path / "clip.avi"
    riff.write_bytes(b"RIFF" + bytes(100))
    assert check_index(riff) == IndexCheck(False)
    assert check_index(tmp_path / "absent.mp4") == IndexCheck(False)
    target = mp4(tmp_path, trak([10], [B], [(1, 1)]), data=100)
    link = tmp_path / "link.mp4"
    link.symlink_to(target)
    assert check_index(target).judged and check_index(link) == IndexCheck(False)


def test_a_moov_cut_short_is_not_judged_here(tmp_path: Path) -> None:
    path = mp4(tmp_path, trak([10], [B], [(1, 1)]), data=100)
    data = path.read_bytes()
    path.write_bytes(data[:40])  # inside the moov: ffprobe and the box walk judge it
    assert check_index(path) == IndexCheck(False)


def test_it_places_samples_where_ffprobe_reads_them(tmp_path: Path) -> None:
    """A real file (moov in front): the farthest sample end from the tables is the end of
    the last packet ffprobe reads. Cut there: no gap; one byte earlier: that very byte."""
    from fixtures.camera import DEFAULT_START
    from fixtures.media import ClipSpec, encode_clip

    clip = tmp_path / "clip.mp4"
    encode_clip(clip, ClipSpec(duration_s=2.0, height=240, kbps=600),
                creation_time=DEFAULT_START, faststart=True)
    out = subprocess.run([FFPROBE, "-v", "error", "-ignore_editlist", "1", "-show_entries",
                          "packet=pos,size", "-of", "json", str(clip)],
                         capture_output=True, check=True, timeout=60).stdout
    last = max(int(p["pos"]) + int(p["size"]) for p in json.loads(out)["packets"])
    data = clip.read_bytes()
    assert check_index(clip) == IndexCheck(judged=True)
    clip.write_bytes(data[:last])
    assert check_index(clip) == IndexCheck(judged=True)
    clip.write_bytes(data[:last - 1])
    got = check_index(clip)
    assert got.gap is not None and f"up to byte {last}, the file ends at byte {last - 1}" \
        in got.gap
