"""The exact-range derivative: the approved [start, end) cut from the covering segments.

The covering segments are joined with ffmpeg's concat demuxer and the whole trimmed clip
is re-encoded (H.264/AAC for video, the segments' own audio codec family for audio).
Re-encoding is frame-accurate wherever the cut falls; a stream copy is accurate only at
a keyframe (every 2 s in camera footage), which would deliver up to a GOP outside the
approved range. Approved clips are short, so this costs well under a second of CPU per
second of footage (docs/BENCHMARKS.md "Exports"). The result is a *derivative*, never
the original: its provenance (sources and digests, offsets, tool, argv) is recorded and
signed by :mod:`integrity.derivative`.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from integrity.errors import MediaError, ToolMissing

LIST, OUTPUT = "{list}", "{output}"
_AUDIO_ARGS = {"wav": ("-c:a", "pcm_s16le", "-f", "wav"),
               "m4a": ("-c:a", "aac", "-b:a", "128k", "-f", "mp4")}
_VIDEO_ARGS = ("-map", "0:v:0", "-map", "0:a?", "-c:v", "libx264", "-preset", "veryfast",
               "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k",
               "-movflags", "+faststart", "-f", "mp4")


@dataclass(frozen=True, kw_only=True)
class TrimResult:
    argv: tuple[str, ...]  # with {list} and {output} placeholders, as recorded
    tool: str  # e.g. "ffmpeg 5.1.6-0+deb12u1"
    method: str  # "re-encode"
    offset_us: int  # the cut's start, from the first source segment's start
    duration_us: int
    seconds: float  # wall time the trim took


def trim_argv(*, kind: str, ext: str, offset_us: int, duration_us: int) -> list[str]:
    """The argv for one trim (placeholders for the concat list and the output)."""
    encode: tuple[str, ...]
    if kind == "video":
        encode = _VIDEO_ARGS
    elif ext in _AUDIO_ARGS:
        encode = ("-map", "0:a:0", *_AUDIO_ARGS[ext])
    else:
        raise MediaError(f"no trim for {kind} segments of type .{ext}", kind=kind, ext=ext)
    # -ss/-t after -i: decoded and cut at the exact frame, not at the nearest keyframe.
    return ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-f", "concat",
            "-safe", "0", "-i", LIST, "-ss", f"{offset_us / 1e6:.6f}",
            "-t", f"{duration_us / 1e6:.6f}", "-map_metadata", "-1", "-fflags", "+bitexact",
            *encode, OUTPUT]


@cache
def ffmpeg_version() -> str:
    if shutil.which("ffmpeg") is None:
        raise ToolMissing("ffmpeg is not installed (apt-get install ffmpeg)", tool="ffmpeg")
    first = subprocess.run(["ffmpeg", "-version"], capture_output=True, check=False,
                           timeout=30).stdout.decode("utf-8", "replace").split()
    return f"{first[0]} {first[2]}" if len(first) > 2 else "ffmpeg"


def trim(sources: list[Path], *, first_start_us: int, start_us: int, end_us: int,
         kind: str, ext: str, out: Path, timeout: float = 600.0) -> TrimResult:
    """Write [start_us, end_us) of the recording, whose covering segments in order are
    ``sources`` (the first starting at ``first_start_us``), to ``out``."""
    offset_us, duration_us = start_us - first_start_us, end_us - start_us
    if offset_us < 0 or duration_us <= 0:
        raise MediaError("the range does not start inside its covering segments",
                         start_us=start_us, first_start_us=first_start_us, end_us=end_us)
    argv = trim_argv(kind=kind, ext=ext, offset_us=offset_us, duration_us=duration_us)
    with tempfile.TemporaryDirectory(prefix="evidock-trim-") as tmp:
        listing = Path(tmp) / "sources.txt"
        listing.write_text("".join(f"file '{_quoted(p)}'\n" for p in sources),
                           encoding="utf-8")
        real = [str(listing) if a == LIST else str(out) if a == OUTPUT else a for a in argv]
        began = time.monotonic()
        try:
            proc = subprocess.run(real, capture_output=True, timeout=timeout, check=False,
                                  stdin=subprocess.DEVNULL)
        except FileNotFoundError as exc:
            raise ToolMissing("ffmpeg is not installed", tool="ffmpeg") from exc
        except subprocess.TimeoutExpired as exc:
            raise MediaError(f"trimming took longer than {timeout:.0f}s", argv=argv) from exc
        took = time.monotonic() - began
    if proc.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
        why = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise MediaError(f"ffmpeg could not trim the clip: {why[0]}", argv=argv,
                         returncode=proc.returncode)
    return TrimResult(argv=tuple(argv), tool=ffmpeg_version(), method="re-encode",
                      offset_us=offset_us, duration_us=duration_us, seconds=took)


def _quoted(path: Path) -> str:
    """A path for the concat list: single quotes escaped as the demuxer wants."""
    return str(path.resolve()).replace("'", "'\\''")


__all__ = ["TrimResult", "ffmpeg_version", "trim", "trim_argv"]
