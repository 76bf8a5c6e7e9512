"""Rendering a redaction plan with the real ffmpeg: decoded frames in, H.264/AAC MP4 out.

One ffmpeg decodes the exact range of the rendition segments (concat demuxer, cut on
decoded frame times like :mod:`records.trim`, so the cut is frame-accurate: the first
frame is the first at or after the start) to raw RGB frames
at a constant frame rate on a pipe; each frame is read into ONE reused buffer, the plan's
regions for the time it is shown are hidden in place (blur: a coarse mosaic then a
Gaussian, so no fine texture survives; solid: black), and the frame is written to a second
ffmpeg that encodes H.264 and takes the audio of the same range from the same sources
through a per-sample gate (muted, or replaced by a 1 kHz tone). Memory stays one frame
whatever the length. Both children are argv lists (no shell), killed together on timeout
or error; their stderr goes to bounded temporary files. Timestamps are t = start +
i / fps on the recording's timeline, as the plan's are.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np
import numpy.typing as npt

from integrity.errors import MediaError, ToolMissing
from integrity.redaction import Box, Plan
from records.trim import LIST, OUTPUT, ffmpeg_version

Frame = npt.NDArray[np.uint8]
TONE_HZ, TONE_LEVEL = 1000, 0.25
STDERR_TAIL = 4096
_ENCODE = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
           "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", "-map_metadata", "-1",
           "-fflags", "+bitexact", "-f", "mp4")


@dataclass(frozen=True, kw_only=True)
class Rendered:
    decode_argv: tuple[str, ...]  # with {list} placeholder (concat list of sources)
    encode_argv: tuple[str, ...]  # with {list} and {output} placeholders
    tool: str  # "ffmpeg <version>"
    frames: int
    fps: str  # e.g. "25/1"
    seconds: float


def _ffprobe(path: Path, selector: str, entries: str) -> list[dict[str, Any]]:
    argv = ["ffprobe", "-v", "error", "-select_streams", selector, "-show_entries",
            f"stream={entries}", "-of", "json", str(path)]
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=60, check=False,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise ToolMissing("ffprobe is not installed", tool="ffprobe") from exc
    except subprocess.TimeoutExpired as exc:
        raise MediaError("ffprobe took longer than 60s", file=path.name) from exc
    if proc.returncode != 0:
        raise MediaError("ffprobe could not read the segment", file=path.name,
                         stderr=proc.stderr[-STDERR_TAIL:].decode("utf-8", "replace"))
    streams: list[dict[str, Any]] = json.loads(proc.stdout or b"{}").get("streams", [])
    return streams


def probe_frame(sources: list[Path]) -> tuple[int, int, str]:
    """Width, height and frame rate ("25/1") of the first source's first video stream."""
    if not sources:
        raise MediaError("no source segments to redact")
    streams = _ffprobe(sources[0], "v:0", "width,height,avg_frame_rate,r_frame_rate")
    if not streams:
        raise MediaError("the source has no video stream", file=sources[0].name)
    s = streams[0]
    for key in ("avg_frame_rate", "r_frame_rate"):  # avg: r_ may be a field rate
        num, _, den = str(s.get(key, "0/0")).partition("/")
        if num.isdigit() and den.isdigit() and int(num) > 0 and int(den) > 0:
            rate = Fraction(int(num), int(den))
            return int(s["width"]), int(s["height"]), f"{rate.numerator}/{rate.denominator}"
    raise MediaError("the source has no usable frame rate", file=sources[0].name)


def has_audio(sources: list[Path]) -> bool:
    return bool(_ffprobe(sources[0], "a:0", "codec_type"))


def _range(plan: Plan, first_start_us: int) -> tuple[str, str]:
    offset_us = plan.start_us - first_start_us
    if offset_us < 0:
        raise MediaError("the range does not start inside its covering segments",
                         start_us=plan.start_us, first_start_us=first_start_us)
    return f"{offset_us / 1e6:.6f}", f"{(plan.end_us - plan.start_us) / 1e6:.6f}"


def decode_argv(plan: Plan, *, first_start_us: int, fps: str,
                size: tuple[int, int] | None = None) -> list[str]:
    """Raw RGB frames of the plan's exact range at a constant ``fps`` (scaled to
    ``size`` if given: the detector's smaller frames)."""
    offset, duration = _range(plan, first_start_us)
    # Timestamps from the first segment's first frame (the concat demuxer may shift the
    # first file by its B-frame delay, which would repeat frame 0), a constant rate, then
    # the exact frames whose time is in [start, end): the trim filter, decoded and cut on
    # frame times as records.trim's -ss/-t after -i is.
    vf = (f"setpts=PTS-STARTPTS,fps={fps},trim=start={offset}:duration={duration},"
          f"setpts=PTS-STARTPTS" + (f",scale={size[0]}:{size[1]}:flags=area" if size else ""))
    return ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-f", "concat", "-safe",
            "0", "-i", LIST, "-map", "0:v:0", "-an", "-vf", vf, "-f", "rawvideo",
            "-pix_fmt", "rgb24", "pipe:1"]


def _gate(ranges: list[tuple[int, int]], start_us: int) -> str:
    """1 while the output time t is inside any range, else 0 (per sample, exact)."""
    terms = [f"gte(t,{(a - start_us) / 1e6:.6f})*lt(t,{(b - start_us) / 1e6:.6f})"
             for a, b in ranges]
    return f"gt({'+'.join(terms)},0)" if terms else "0"


def audio_filter(plan: Plan, *, first_start_us: int) -> str:
    """The exact range of the sources' audio, muted or replaced by a tone where planned."""
    offset, duration = _range(plan, first_start_us)
    chain = (f"[1:a:0]asetpts=PTS-STARTPTS,atrim=start={offset}:duration={duration},"
             "asetpts=PTS-STARTPTS")
    mute, tone = (_gate(plan.audio_ranges(k), plan.start_us) for k in ("mute", "tone"))
    if mute != "0" or tone != "0":
        chain += (f",aeval=exprs='val(ch)*(1-max({mute},{tone}))"
                  f"+{tone}*{TONE_LEVEL}*sin(2*PI*{TONE_HZ}*t)':c=same")
    return chain + "[a]"


def encode_argv(plan: Plan, *, first_start_us: int, fps: str, width: int, height: int,
                audio: bool) -> list[str]:
    head = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-n", "-f", "rawvideo",
            "-pix_fmt", "rgb24", "-video_size", f"{width}x{height}", "-framerate", fps,
            "-i", "pipe:0"]
    if not audio:
        return [*head, "-map", "0:v:0", *_ENCODE, OUTPUT]
    return [*head, "-f", "concat", "-safe", "0", "-i", LIST, "-filter_complex",
            audio_filter(plan, first_start_us=first_start_us), "-map", "0:v:0",
            "-map", "[a]", *_ENCODE, OUTPUT]


def hide(frame: Frame, boxes: list[Box], style: str) -> None:
    """Hide each box of ``frame`` in place."""
    for b in boxes:
        roi = frame[b.y:b.y + b.h, b.x:b.x + b.w]
        if style == "solid":
            roi[...] = 0
            continue
        # Averaged down to cells of 1/5 of the region's short side (at least 8 px), blurred
        # there and stretched back smoothly: nothing finer than a cell (eyes, digits)
        # survives, and the cost is that of the small image, not of a wide kernel.
        cell = max(8, min(b.w, b.h) // 5)
        small = cv2.resize(roi, (max(1, b.w // cell), max(1, b.h // cell)),
                           interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (3, 3), 0.6)
        roi[...] = cv2.resize(small, (b.w, b.h), interpolation=cv2.INTER_LINEAR)


def frame_time(plan: Plan, index: int, fps: str) -> int:
    """When frame ``index`` is shown, on the recording's timeline (µs)."""
    rate = Fraction(fps)
    return plan.start_us + int(index * 1_000_000 * rate.denominator // rate.numerator)


@dataclass
class _Children:
    procs: list[subprocess.Popen[bytes]]
    errs: list[IO[bytes]]
    timed_out: bool = False

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()

    def expire(self) -> None:
        self.timed_out = True
        self.kill()

    def stderr(self) -> str:
        tails = []
        for fh in self.errs:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - STDERR_TAIL))
            tails.append(fh.read().decode("utf-8", "replace").strip())
        return " | ".join(t for t in tails if t)[-STDERR_TAIL:]


@contextmanager
def children(argvs: list[list[str]], *, timeout_s: float, what: str
             ) -> Iterator[_Children]:
    """Start the children (the first's stdout and the second's stdin are pipes the caller
    reads and writes); kill every one at the deadline, which also covers their final
    flush, or on any error."""
    with tempfile.TemporaryFile() as e0, tempfile.TemporaryFile() as e1:
        errs: list[IO[bytes]] = [e0, e1]
        group = _Children([], errs[:len(argvs)])
        timer = threading.Timer(timeout_s, group.expire)
        try:
            for n, argv in enumerate(argvs):
                group.procs.append(subprocess.Popen(  # noqa: SIM115 - waited for below
                    argv, stdin=subprocess.PIPE if n else subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL if n else subprocess.PIPE,
                    stderr=group.errs[n]))
            timer.start()
            yield group
        except FileNotFoundError as exc:
            raise ToolMissing("ffmpeg is not installed", tool="ffmpeg") from exc
        except BaseException:
            group.kill()
            if group.timed_out:  # killed at the deadline: say so, not "ended mid-frame"
                raise MediaError(f"{what} took longer than {timeout_s:g}s",
                                 timeout_s=timeout_s) from None
            raise
        finally:
            for p in group.procs:
                for pipe in (p.stdin, p.stdout):
                    if pipe is not None:
                        pipe.close()
                p.wait()
            timer.cancel()
        if group.timed_out:
            raise MediaError(f"{what} took longer than {timeout_s:g}s", timeout_s=timeout_s)
        failed = [p.args for p in group.procs if p.returncode != 0]
        if failed:
            raise MediaError(f"ffmpeg failed while {what}: {group.stderr() or 'no output'}"
                             [:500], returncodes=[p.returncode for p in group.procs])


def read_frames(stream: IO[bytes], buffer: bytearray) -> Iterator[int]:
    """Fill ``buffer`` with each whole frame in turn; yields the frame's index."""
    view, size, index = memoryview(buffer), len(buffer), 0
    while True:
        got = 0
        while got < size:
            n = stream.readinto(view[got:])  # type: ignore[attr-defined]
            if not n:
                if got:
                    raise MediaError("the decoder ended inside a frame", bytes=got)
                return
            got += n
        yield index
        index += 1


def listing_file(sources: list[Path], tmp: Path) -> Path:
    """The concat demuxer's list (single quotes escaped as it wants, as records.trim)."""
    listing = tmp / "sources.txt"
    quoted = (str(p.resolve()).replace("'", "'\\''") for p in sources)
    listing.write_text("".join(f"file '{q}'\n" for q in quoted), encoding="utf-8")
    return listing


def _real(argv: list[str], listing: Path, out: Path | None = None) -> list[str]:
    return [str(listing) if a == LIST else str(out) if a == OUTPUT else a for a in argv]


def render(plan: Plan, sources: list[Path], *, first_start_us: int, out: Path,
           timeout_s: float = 600.0) -> Rendered:
    """Write the plan's range of ``sources`` with every planned region and sound hidden
    to ``out`` (H.264/AAC MP4)."""
    width, height, fps = probe_frame(sources)
    if (width, height) != (plan.width, plan.height):
        raise MediaError("the plan was drawn on frames of another size",
                         plan=[plan.width, plan.height], source=[width, height])
    dec = decode_argv(plan, first_start_us=first_start_us, fps=fps)
    enc = encode_argv(plan, first_start_us=first_start_us, fps=fps, width=width,
                      height=height, audio=has_audio(sources))
    began, frames, out_existed = time.monotonic(), 0, out.exists()  # -n: never replaced
    buffer = bytearray(width * height * 3)
    frame: Frame = np.frombuffer(buffer, dtype=np.uint8).reshape(height, width, 3)
    with tempfile.TemporaryDirectory(prefix="evidock-redact-") as tmp:
        listing = listing_file(sources, Path(tmp))
        try:
            with children([_real(dec, listing), _real(enc, listing, out)],
                          timeout_s=timeout_s, what="rendering the redaction") as group:
                decoder, encoder = group.procs
                assert decoder.stdout is not None and encoder.stdin is not None
                for index in read_frames(decoder.stdout, buffer):
                    hide(frame, plan.regions_at(frame_time(plan, index, fps)), plan.style)
                    try:
                        encoder.stdin.write(buffer)
                    except BrokenPipeError:  # the encoder failed: its stderr says why
                        decoder.kill()
                        break
                    frames = index + 1
        except (MediaError, ToolMissing):
            if not out_existed:
                out.unlink(missing_ok=True)
            raise
    if frames == 0 or not out.is_file() or out.stat().st_size == 0:
        if not out_existed:
            out.unlink(missing_ok=True)
        raise MediaError("the redaction rendered no frames", frames=frames)
    return Rendered(decode_argv=tuple(dec), encode_argv=tuple(enc), tool=ffmpeg_version(),
                    frames=frames, fps=fps, seconds=time.monotonic() - began)


__all__ = ["Rendered", "decode_argv", "encode_argv", "frame_time", "hide", "probe_frame",
           "render"]
