"""ffprobe JSON parsed once into typed MediaInfo, and the validity check of a stored file.

Exit codes are not validation (ffprobe accepts a JPEG named .mp4, and a truncated MP4
with moov at the front still reports its full duration), so validity is judged by the
format and streams, plus a proof that every packet is there. For the MP4 family that is
the index (ingest/mp4index.py: every sample the moov's tables list must end inside the
file; for a fragmented file or tables it does not follow, the same ffprobe call reads and
counts every packet, ``-count_packets``) and the top-level boxes must tile the file
(ingest/mp4boxes.py); other containers get an ``ffmpeg -xerror`` demux.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest.mp4boxes import walk_boxes
from ingest.mp4index import IndexCheck, check_index
from ingest.tools import ToolResult, run_tool, tool_version
from integrity.codes import Code
from integrity.errors import EvidockError, MediaError

# Container families ffprobe reports (format_name is a comma list) per file extension.
_EXPECTED_FORMATS = {
    "mp4": {"mov", "mp4"}, "mov": {"mov", "mp4"}, "3gp": {"mov", "3gp"}, "m4a": {"mov", "m4a"},
    "avi": {"avi"}, "mkv": {"matroska"}, "ts": {"mpegts"},
    "jpg": {"image2", "jpeg_pipe"}, "jpeg": {"image2", "jpeg_pipe"}, "png": {"png_pipe", "image2"},
    "wav": {"wav"}, "mp3": {"mp3"}, "aac": {"aac"}, "amr": {"amr"}, "opus": {"ogg"},
}
# A body camera writes far more than this per second (video, audio); a header whose
# duration brings the file's average rate below it is wrong about the duration.
_MIN_BITRATE_BPS = {"video": 16_000, "audio": 2_000}
# A container duration beyond its longest stream by more than 10 % + this is not believed.
_STREAM_SLACK_S = 5.0
# The largest ffprobe answer kept with a recording (a hostile file may list many streams).
MAX_KEPT_PROBE = 64 << 10
# ffprobe's names for ISO BMFF files: their index says how many samples each stream has.
_MOV_FAMILY = frozenset({"mov", "mp4", "m4a", "3gp", "3g2", "mj2"})


@dataclass(frozen=True)
class StreamInfo:
    index: int
    kind: str  # video | audio | subtitle | data | attachment
    codec: str
    width: int | None = None
    height: int | None = None
    frame_rate: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    duration_s: float | None = None
    rotation: int | None = None
    frames_declared: int | None = None  # what the container's index lists (nb_frames)
    packets_read: int | None = None  # what a demux could read (only with count=True)


@dataclass(frozen=True)
class MediaInfo:
    format_names: tuple[str, ...]
    duration_s: float | None
    size: int | None
    bit_rate: int | None
    creation_time: datetime | None
    tags: tuple[tuple[str, str], ...]
    streams: tuple[StreamInfo, ...]

    @property
    def video(self) -> tuple[StreamInfo, ...]:
        return tuple(s for s in self.streams if s.kind == "video")

    @property
    def audio(self) -> tuple[StreamInfo, ...]:
        return tuple(s for s in self.streams if s.kind == "audio")

    def tag(self, name: str) -> str | None:
        return dict(self.tags).get(name)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _stream(raw: dict[str, Any]) -> StreamInfo:
    rotation = _int((raw.get("tags") or {}).get("rotate"))
    for side in raw.get("side_data_list") or []:
        if "rotation" in side:
            rotation = _int(side["rotation"])
    return StreamInfo(
        index=int(raw.get("index", 0)), kind=str(raw.get("codec_type", "data")),
        codec=str(raw.get("codec_name", "unknown")), width=_int(raw.get("width")),
        height=_int(raw.get("height")), frame_rate=raw.get("avg_frame_rate"),
        sample_rate=_int(raw.get("sample_rate")), channels=_int(raw.get("channels")),
        duration_s=_float(raw.get("duration")), rotation=rotation,
        frames_declared=_int(raw.get("nb_frames")), packets_read=_int(raw.get("nb_read_packets")),
    )


def parse_probe(data: dict[str, Any]) -> MediaInfo:
    """Turn ffprobe ``-show_format -show_streams`` JSON into MediaInfo."""
    fmt = data.get("format") or {}
    tags = {str(k).lower(): str(v) for k, v in (fmt.get("tags") or {}).items()}
    return MediaInfo(
        format_names=tuple(str(fmt.get("format_name", "")).split(",")),
        duration_s=_float(fmt.get("duration")), size=_int(fmt.get("size")),
        bit_rate=_int(fmt.get("bit_rate")), creation_time=_time(tags.get("creation_time")),
        tags=tuple(sorted(tags.items())),
        streams=tuple(_stream(s) for s in data.get("streams") or []),
    )


def duration_doubt(info: MediaInfo, *, size: int, kind: str) -> str | None:
    """Why the header's duration cannot be true, or None if it is plausible. Pure."""
    claimed = info.duration_s
    if claimed is None or claimed <= 0:
        return None
    rate = size * 8 / claimed
    if rate < _MIN_BITRATE_BPS.get(kind, 0):
        return f"header claims {claimed:.0f} s for {size} bytes ({rate:.1f} bit/s)"
    longest = max((s.duration_s for s in info.streams if s.duration_s), default=None)
    if longest is not None and claimed > longest * 1.1 + _STREAM_SLACK_S:
        return f"header claims {claimed:.0f} s, its longest stream {longest:.1f} s"
    return None


@dataclass(frozen=True)
class Validity:
    """The verdict on a stored file: flags (empty when fine) and a one-line reason."""

    flags: tuple[str, ...]
    reason: str
    info: MediaInfo | None = None
    #: ffprobe's JSON when it came from a plain probe (:meth:`Prober.probe`, the call the
    #: renderer makes) that parsed: kept with the recording, so that its rendition need not
    #: start ffprobe again (issue 14).
    probe: bytes | None = None


class Prober:
    def __init__(self, *, ffprobe: str = "ffprobe", ffmpeg: str = "ffmpeg",
                 timeout_s: float = 120,
                 index_reader: Callable[[Path], IndexCheck] = check_index) -> None:
        self.ffprobe = ffprobe
        self.ffmpeg = ffmpeg
        self.timeout_s = timeout_s
        self._index = index_reader

    def probe(self, path: Path, *, count: bool = False) -> tuple[MediaInfo | None, ToolResult]:
        """``count``: also read every packet (no decoding) and report how many per stream;
        edit lists are ignored so that the count is of the samples the index lists."""
        extra = ["-count_packets", "-ignore_editlist", "1"] if count else []
        res = run_tool([self.ffprobe, "-v", "error", *extra, "-print_format", "json",
                        "-show_format", "-show_streams", str(path)], timeout=self.timeout_s)
        if res.returncode != 0:
            return None, res
        try:
            return parse_probe(json.loads(res.stdout or b"{}")), res
        except (ValueError, TypeError):
            return None, res

    def keepable(self, probe: bytes | None) -> tuple[str, str] | None:
        """(this ffprobe's version, its answer as text) for a check's plain probe
        (:attr:`Validity.probe`), to keep with the recording. Only an aid to the
        rendition: a tool that cannot say its version or an answer that is not UTF-8 is
        not kept."""
        if probe is None:
            return None
        try:
            return tool_version(self.ffprobe), probe.decode("utf-8")
        except (UnicodeDecodeError, EvidockError, OSError):
            return None

    def reuse(self, tool: str, probe: str) -> MediaInfo | None:
        """A kept answer as :meth:`probe` would give it now: the same call on the same
        bytes (the recording's BLAKE3 names them) by the same ffprobe. None (probe
        again) when this station's ffprobe is another version (issue 14)."""
        if tool != tool_version(self.ffprobe):
            return None
        try:
            return parse_probe(json.loads(probe))
        except (ValueError, TypeError):
            return None

    def check(self, path: Path, *, kind: str, ext: str) -> Validity:
        """Is this a playable file of the kind its name claims? Never raises on bad media."""
        if kind not in ("video", "audio", "photo"):
            return Validity((), "not media; stored as is")
        # The moov's sample tables, read first (~1–20 ms): when they answer, ffprobe
        # need not read every packet (0.13–0.2 CPU-s for a 279 MB file).
        index = self._index(path) if kind != "photo" else IndexCheck(judged=False)
        counted = kind != "photo" and not index.judged
        try:
            info, res = self._probe_for_check(path, count=counted)
        except MediaError as exc:  # a hung probe is this file's trouble, not the offload's
            return Validity((Code.F_PROBE_TIMEOUT,), f"ffprobe: {exc.message}")
        verdict = self._judge(path, info, res, kind=kind, ext=ext, index=index)
        kept = kind != "photo" and not counted and isinstance(info, MediaInfo) \
            and len(res.stdout) <= MAX_KEPT_PROBE
        return replace(verdict, probe=res.stdout) if kept else verdict

    def _judge(self, path: Path, info: MediaInfo | Validity | None, res: ToolResult, *,
               kind: str, ext: str, index: IndexCheck) -> Validity:
        if isinstance(info, Validity):
            return info
        if info is None:
            return Validity((Code.F_UNPLAYABLE,), f"ffprobe: {res.stderr_line()}")
        expected = _EXPECTED_FORMATS.get(ext.lower())
        if expected and not expected & set(info.format_names):
            found = ",".join(info.format_names)
            return Validity((Code.F_FORMAT_MISMATCH,), f"named .{ext} but is {found}", info)
        wanted = {"video": info.video, "audio": info.audio, "photo": info.video}[kind]
        if not wanted:
            return Validity((Code.F_NO_STREAM,), f"no {kind} stream found", info)
        if kind == "photo":
            return Validity((), "ok", info)
        verdict = self._mov_check(path, info, index) \
            if _MOV_FAMILY & set(info.format_names) else self._demux_check(path, info)
        doubt = duration_doubt(info, size=path.stat().st_size, kind=kind)
        if verdict.flags or doubt is None:
            return verdict
        # Kept and rendered all the same: the packets are fine, only the header lies.
        return Validity((Code.F_DURATION_IMPLAUSIBLE,), doubt, info)

    def _probe_for_check(self, path: Path, *, count: bool,
                         ) -> tuple[MediaInfo | Validity | None, ToolResult]:
        info, res = self.probe(path, count=count)
        if info is not None or not count:
            return info, res
        # The counting read failed: if the header alone reads, packets are what is wrong.
        header, plain = self.probe(path)
        if header is None:
            return None, plain
        return Validity((Code.F_TRUNCATED,), f"packets unreadable: {res.stderr_line()}",
                        header), res

    def _mov_check(self, path: Path, info: MediaInfo, index: IndexCheck) -> Validity:
        # A sample the index lists but the file lacks (a cut behind a front index, at a
        # packet boundary, inside the last packet; an index pointing past the end): its
        # bytes end beyond the file, or, when the probe read every packet, it was not
        # readable.
        if index.gap:
            return Validity((Code.F_TRUNCATED,), index.gap, info)
        for s in info.streams:
            if s.frames_declared and s.packets_read is not None \
                    and s.packets_read < s.frames_declared:
                return Validity((Code.F_TRUNCATED,), f"stream {s.index}: {s.packets_read} of "
                                f"its {s.frames_declared} packets readable", info)
        try:  # a cut inside the last packet leaves it counted: the box framing shows it
            framing = walk_boxes(path)
        except OSError as exc:
            return Validity((Code.F_UNPLAYABLE,), f"cannot read: {exc.strerror}", info)
        if framing.gap:
            return Validity((Code.F_TRUNCATED,), framing.gap, info)
        # A last box "to the end of the file" hides such a cut from the walk: the index
        # places every sample, or else a demux flags the short packet (rare: cameras
        # write the length when they close the file).
        if framing.sized or index.judged:
            return Validity((), "ok", info)
        return self._demux_check(path, info)

    def _demux_check(self, path: Path, info: MediaInfo) -> Validity:
        # Reading every packet (no decoding) catches truncation that the header hides.
        try:
            res = run_tool([self.ffmpeg, "-nostdin", "-v", "error", "-xerror", "-i",
                            str(path), "-map", "0", "-c", "copy", "-f", "null", "-"],
                           timeout=self.timeout_s)
        except MediaError as exc:
            return Validity((Code.F_PROBE_TIMEOUT,), f"demux: {exc.message}", info)
        if res.returncode != 0:
            return Validity((Code.F_TRUNCATED,), f"demux failed: {res.stderr_line()}", info)
        return Validity((), "ok", info)

    def packet_span_s(self, path: Path, *, timeout_s: float) -> float | None:
        """How long the packets really run (not what the header says): one demux pass.
        Raises MediaError on a timeout."""
        res = run_tool([self.ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-map", "0",
                        "-c", "copy", "-f", "null", "-progress", "pipe:1", "-nostats", "-"],
                       timeout=timeout_s)
        times = [line.partition(b"=")[2] for line in res.stdout.splitlines()
                 if line.startswith(b"out_time_us=")]
        span = _int(times[-1].decode("ascii", "replace")) if times else None
        return None if res.returncode != 0 or span is None or span <= 0 else span / 1e6
