"""ffprobe JSON parsed once into typed MediaInfo, and the validity check of a stored file.

Exit codes are not validation (ffprobe accepts a JPEG named .mp4, and a truncated MP4
with moov at the front still reports its full duration), so validity is judged by the
format and streams, plus a demux pass that reads every packet without decoding.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest.tools import ToolResult, run_tool
from integrity.codes import Code

# Container families ffprobe reports (format_name is a comma list) per file extension.
_EXPECTED_FORMATS = {
    "mp4": {"mov", "mp4"}, "mov": {"mov", "mp4"}, "3gp": {"mov", "3gp"}, "m4a": {"mov", "m4a"},
    "avi": {"avi"}, "mkv": {"matroska"}, "ts": {"mpegts"},
    "jpg": {"image2", "jpeg_pipe"}, "jpeg": {"image2", "jpeg_pipe"}, "png": {"png_pipe", "image2"},
    "wav": {"wav"}, "mp3": {"mp3"}, "aac": {"aac"}, "amr": {"amr"}, "opus": {"ogg"},
}


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


@dataclass(frozen=True)
class Validity:
    """The verdict on a stored file: flags (empty when fine) and a one-line reason."""

    flags: tuple[str, ...]
    reason: str
    info: MediaInfo | None = None


class Prober:
    def __init__(self, *, ffprobe: str = "ffprobe", ffmpeg: str = "ffmpeg",
                 timeout_s: float = 120) -> None:
        self.ffprobe = ffprobe
        self.ffmpeg = ffmpeg
        self.timeout_s = timeout_s

    def probe(self, path: Path) -> tuple[MediaInfo | None, ToolResult]:
        res = run_tool([self.ffprobe, "-v", "error", "-print_format", "json", "-show_format",
                        "-show_streams", str(path)], timeout=self.timeout_s)
        if res.returncode != 0:
            return None, res
        try:
            return parse_probe(json.loads(res.stdout or b"{}")), res
        except (ValueError, TypeError):
            return None, res

    def check(self, path: Path, *, kind: str, ext: str) -> Validity:
        """Is this a playable file of the kind its name claims? Never raises on bad media."""
        if kind not in ("video", "audio", "photo"):
            return Validity((), "not media; stored as is")
        info, res = self.probe(path)
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
        return self._demux_check(path, info)

    def _demux_check(self, path: Path, info: MediaInfo) -> Validity:
        # Reading every packet (no decoding) catches truncation that the header hides.
        res = run_tool([self.ffmpeg, "-nostdin", "-v", "error", "-xerror", "-i", str(path),
                        "-map", "0", "-c", "copy", "-f", "null", "-"], timeout=self.timeout_s)
        if res.returncode != 0:
            return Validity((Code.F_TRUNCATED,), f"demux failed: {res.stderr_line()}", info)
        return Validity((), "ok", info)
