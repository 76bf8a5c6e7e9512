"""The media check of an MP4 is a read of its index (ingest/mp4index.py: every sample the
moov's tables list must end inside the file), one ffprobe call for its header and
streams, and a walk of the top-level boxes (ingest/mp4boxes.py). Where the index reader
declines (a fragmented file; here also forced, ``NO_INDEX``) the same ffprobe call counts
every packet the demuxer can read against what the index lists, and a file whose last
box runs "to the end of the file" also gets an ffmpeg demux. Each cut is tested on both
paths.

Real ffmpeg/ffprobe make every file. Each cut is one a camera or a bad copy produces:
mid-file behind a front index, exactly at a packet boundary (measured: `ffmpeg -xerror
-c copy -f null`, the demux this replaced, exits 0 on it), inside the last packet (every
packet is still counted; the box framing shows it), a fragmented file cut inside a
fragment, and an index that points past a whole mdat. Healthy files must not be flagged:
moov at the end or front, fragmented, zero-padded, and an edit list shorter than the
media (counted without `-ignore_editlist` it reads fewer packets than the index lists).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fixtures.camera import DEFAULT_START
from fixtures.media import FFPROBE, ClipSpec, encode_clip, run_ffmpeg
from ingest.media import MediaInfo, Prober
from ingest.mp4boxes import walk_boxes
from ingest.mp4index import IndexCheck, check_index
from integrity.codes import Code
from integrity.errors import ToolMissing

_SPEC = ClipSpec(duration_s=3.0, height=240, kbps=600)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media-check")
    encode_clip(end := d / "end.mp4", _SPEC, creation_time=DEFAULT_START)
    encode_clip(front := d / "front.mp4", _SPEC, creation_time=DEFAULT_START, faststart=True)
    run_ffmpeg(["-i", end, "-c", "copy", "-movflags", "+frag_keyframe+empty_moov",
                frag := d / "frag.mp4"])
    run_ffmpeg(["-i", end, "-c", "copy", "-an", avi := d / "clip.avi"])
    return {"end": end, "front": front, "frag": frag, "avi": avi}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _packet_ends(path: Path) -> list[int]:
    out = subprocess.run([FFPROBE, "-v", "error", "-show_entries", "packet=pos,size",
                          "-of", "json", str(path)], capture_output=True, check=True,
                         timeout=60).stdout
    return sorted(int(p["pos"]) + int(p["size"]) for p in json.loads(out)["packets"])


def NO_INDEX(path: Path) -> IndexCheck:  # noqa: N802 - a constant-like collaborator
    """An index reader that declines every file, as it does a fragmented one."""
    return IndexCheck(judged=False)


class CountingProber(Prober):
    """The real prober; it notes each probe that read every packet."""

    def __init__(self, *, ffmpeg: str = "ffmpeg", index: bool = True) -> None:
        super().__init__(ffmpeg=ffmpeg, index_reader=check_index if index else NO_INDEX)
        self.counted = 0

    def probe(self, path: Path, *, count: bool = False) -> tuple[MediaInfo | None, Any]:
        self.counted += count
        return super().probe(path, count=count)


def _check(path: Path, *, ffmpeg: str = "ffmpeg", index: bool = True,
           ) -> tuple[tuple[str, ...], str]:
    prober = Prober(ffmpeg=ffmpeg, index_reader=check_index if index else NO_INDEX)
    v = prober.check(path, kind="video", ext=path.suffix[1:])
    return tuple(str(f) for f in v.flags), v.reason


INDEX_CUT = "its index lists samples up to byte"  # the reason of the index path
BOTH = pytest.mark.parametrize("index", [True, False], ids=["index", "counted"])


def _unsized(data: bytes) -> bytes:
    """The file with its last box (mdat, behind a front index) declared "to the end"."""
    pos, last = 0, -1
    while pos < len(data):
        last, length = pos, struct.unpack_from(">I", data, pos)[0]
        pos += length
    assert data[last + 4:last + 8] == b"mdat"
    return data[:last] + bytes(4) + data[last + 4:]


@pytest.mark.parametrize("name", ["end", "front", "frag"])
@BOTH
def test_healthy_mp4s_pass(clips: dict[str, Path], name: str, index: bool) -> None:
    assert _check(clips[name], index=index) == ((), "ok")


def test_zero_padding_after_the_last_box_is_not_a_cut(clips: dict[str, Path],
                                                      tmp_path: Path) -> None:
    padded = _write(tmp_path / "padded.mp4", clips["end"].read_bytes() + bytes(4096))
    assert _check(padded) == ((), "ok")


def test_data_appended_after_the_last_box_is_not_a_cut(clips: dict[str, Path],
                                                       tmp_path: Path) -> None:
    """Some cameras append a trailer that is no box (no four-character type)."""
    trailer = bytes([0x00, 0x00, 0x10, 0x00, 0x01, 0x02, 0x03, 0x04]) + bytes(range(56))
    appended = _write(tmp_path / "trailer.mp4", clips["end"].read_bytes() + trailer)
    assert _check(appended) == ((), "ok")
    data = clips["front"].read_bytes()
    cut = _write(tmp_path / "cut-trailer.mp4", data[: len(data) * 6 // 10] + trailer)
    assert _check(cut)[0] == (Code.F_TRUNCATED,), "a cut before a trailer still shows"


def test_an_edit_list_shorter_than_the_media_is_not_a_cut(clips: dict[str, Path],
                                                          tmp_path: Path) -> None:
    data = bytearray(clips["front"].read_bytes())
    at = data.find(b"elst")
    assert at > 0, "ffmpeg wrote no edit list to shorten"
    width = 4 if data[at + 4] == 0 else 8  # version 0: 32-bit durations
    data[at + 12:at + 12 + width] = (1000).to_bytes(width, "big")  # 1st edit: 1 s of 3 s
    edited = _write(tmp_path / "short-edit.mp4", bytes(data))
    for index in (True, False):
        prober = CountingProber(index=index)
        assert prober.check(edited, kind="video", ext="mp4").flags == ()
        assert prober.counted == (not index), "the packets were counted"


@BOTH
def test_a_cut_behind_a_front_index_is_truncated(clips: dict[str, Path],
                                                 tmp_path: Path, index: bool) -> None:
    data = clips["front"].read_bytes()
    cut = _write(tmp_path / "cut.mp4", data[: len(data) * 6 // 10])
    flags, reason = _check(cut, index=index)
    assert flags == (Code.F_TRUNCATED,)
    assert (INDEX_CUT if index else "packets readable") in reason


@BOTH
def test_a_cut_exactly_at_a_packet_boundary_is_truncated(clips: dict[str, Path],
                                                         tmp_path: Path, index: bool) -> None:
    data, ends = clips["front"].read_bytes(), _packet_ends(clips["front"])
    assert ends[-1] == len(data)  # faststart: the last packet ends the file
    for name, cut in (("boundary.mp4", data[: ends[-2]]),
                      ("boundary-unsized.mp4", _unsized(data)[: ends[-2]])):
        flags, reason = _check(_write(tmp_path / name, cut), index=index)
        assert flags == (Code.F_TRUNCATED,)
        assert (INDEX_CUT if index else "packets readable") in reason


def test_a_cut_inside_the_last_packet_is_truncated(clips: dict[str, Path],
                                                   tmp_path: Path) -> None:
    data = clips["front"].read_bytes()
    cut = _write(tmp_path / "last.mp4", data[:-10])
    unsized = _write(tmp_path / "last-unsized.mp4", _unsized(data)[:-10])
    for path in (cut, unsized):  # the index places the last sample 10 bytes too far
        flags, reason = _check(path)
        assert flags == (Code.F_TRUNCATED,) and INDEX_CUT in reason
    # Counted, every packet still reads: the box framing shows the cut ...
    flags, reason = _check(cut, index=False)
    assert flags == (Code.F_TRUNCATED,)
    assert "'mdat'" in reason and "cut short" in reason
    # ... and without a length to frame it, the demux of the short packet
    flags, reason = _check(unsized, index=False)
    assert flags == (Code.F_TRUNCATED,)
    assert reason.startswith("demux failed")


def test_an_index_pointing_past_a_whole_mdat_is_truncated(clips: dict[str, Path],
                                                          tmp_path: Path) -> None:
    """Boxes that tile the file, but half the samples the index lists are not in it."""
    data = clips["front"].read_bytes()
    mdat = data.rindex(b"mdat") - 4
    length = struct.unpack_from(">I", data, mdat)[0]
    half = data[:mdat] + struct.pack(">I", length // 2) + data[mdat + 4:mdat + length // 2]
    edited = _write(tmp_path / "index-past-mdat.mp4", half)
    assert walk_boxes(edited).gap is None
    for index, says in ((True, INDEX_CUT), (False, "packets readable")):
        flags, reason = _check(edited, index=index)
        assert flags == (Code.F_TRUNCATED,)
        assert says in reason


def test_a_fragmented_file_cut_inside_a_fragment_is_truncated(clips: dict[str, Path],
                                                              tmp_path: Path) -> None:
    data = clips["frag"].read_bytes()
    cut = _write(tmp_path / "frag-cut.mp4", data[: len(data) * 6 // 10])
    assert _check(cut)[0] == (Code.F_TRUNCATED,)


def test_a_cut_moov_at_the_end_is_unplayable(clips: dict[str, Path], tmp_path: Path) -> None:
    data = clips["end"].read_bytes()
    cut = _write(tmp_path / "no-moov.mp4", data[: len(data) * 6 // 10])
    assert _check(cut)[0] == (Code.F_UNPLAYABLE,)


def test_an_mp4_is_judged_without_ffmpeg_other_containers_with_it(
        clips: dict[str, Path], tmp_path: Path) -> None:
    """One ffprobe per MP4, reading its header only where the index answers (moov at the
    end or in front) and every packet where it does not (fragmented), and no ffmpeg (it
    would fail here: there is none at that name). Counted, an MP4 ending in a box "to
    the end of the file" is demuxed too; an AVI gets its demux."""
    missing = "/nonexistent/ffmpeg"
    for name in ("end", "front", "frag"):
        prober = CountingProber(ffmpeg=missing)
        assert prober.check(clips[name], kind="video", ext="mp4").flags == ()
        assert prober.counted == (name == "frag")
    unsized = _write(tmp_path / "unsized.mp4", _unsized(clips["front"].read_bytes()))
    assert _check(unsized) == ((), "ok")
    assert _check(unsized, ffmpeg=missing) == ((), "ok")  # the index answers
    with pytest.raises(ToolMissing):
        _check(unsized, ffmpeg=missing, index=False)
    with pytest.raises(ToolMissing):
        _check(clips["avi"], ffmpeg=missing)
    assert _check(clips["avi"]) == ((), "ok")


# --- the box walk alone --------------------------------------------------------------------


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(body), kind) + body


def test_boxes_that_tile_the_file_have_no_gap(tmp_path: Path) -> None:
    large = struct.pack(">I4sQ", 1, b"mdat", 16 + 5) + b"12345"  # 64-bit size
    path = _write(tmp_path / "ok.mp4", _box(b"ftyp", b"isom") + large + _box(b"moov", b""))
    assert (walk_boxes(path).gap, walk_boxes(path).sized) == (None, True)
    to_end = _write(tmp_path / "to-end.mp4", _box(b"ftyp", b"isom") +
                    struct.pack(">I4s", 0, b"mdat") + b"anything")
    assert (walk_boxes(to_end).gap, walk_boxes(to_end).sized) == (None, False)


@pytest.mark.parametrize(("tail", "words"), [
    (struct.pack(">I4s", 4, b"free"), "impossible 4 bytes"),
    (struct.pack(">I4sQ", 1, b"mdat", 8), "impossible 8 bytes"),
    (struct.pack(">I4s", 100, b"mdat") + b"x" * 10, "ends 18 bytes into it"),
    (b"\x00\x00\x01", "3 bytes after the last whole box"),
])
def test_a_box_the_file_cannot_hold_is_named(tmp_path: Path, tail: bytes, words: str) -> None:
    path = _write(tmp_path / "bad.mp4", _box(b"ftyp", b"isom") + tail)
    gap = walk_boxes(path).gap
    assert gap is not None and words in gap


def test_the_box_walk_does_not_follow_a_symlink(clips: dict[str, Path],
                                                tmp_path: Path) -> None:
    os.symlink(clips["end"], link := tmp_path / "link.mp4")
    with pytest.raises(OSError):
        walk_boxes(link)
