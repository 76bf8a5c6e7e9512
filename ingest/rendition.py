"""Rendition policy (pure) and the ffmpeg argv that carries it out.

The camera original stays the evidential master. The archival rendition exists so that
any part of a recording can be handed out as independently playable, individually
hashed and signed segments. Accepted codecs are stream-copied (bit-identical packets,
hundreds × real time); anything else is transcoded to H.264/AAC. Photos, logs and other
files get no rendition.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ffmpeg  # ffmpeg-python: builds the argv; we run it ourselves with a timeout

from config.settings import RenditionSettings
from ingest.media import MediaInfo, StreamInfo
from integrity.codes import Code

INPUT, OUTPUT, LIST = "{input}", "{output}", "{list}"
# Flags from ingest that mean the original cannot be read as media.
UNREADABLE_FLAGS = (Code.F_EMPTY, Code.F_UNPLAYABLE, Code.F_TRUNCATED, Code.F_FORMAT_MISMATCH,
                    Code.F_NO_STREAM)
_PCM_PREFIX = "pcm_"


@dataclass(frozen=True)
class RenditionPlan:
    action: str  # remux | transcode | none | fail
    code: str
    reason: str
    kind: str | None = None  # remux | transcode | audio
    container: str | None = None  # ffmpeg muxer: mp4 | mov | wav
    ext: str | None = None
    video: StreamInfo | None = None
    audio: tuple[StreamInfo, ...] = ()
    copy_video: bool = True
    copy_audio: bool = True


def plan_rendition(*, kind: str, flags: tuple[str, ...], info: MediaInfo | None,
                   policy: RenditionSettings) -> RenditionPlan:
    """Decide what to make of one recording. Pure: values in, a plan out."""
    if kind not in ("video", "audio"):
        return RenditionPlan("none", Code.R_NONE, f"{kind} files are archived as originals only")
    bad = [f for f in flags if f in UNREADABLE_FLAGS]
    if bad or info is None:
        return RenditionPlan("fail", Code.E_RENDITION_SOURCE_INVALID,
                             f"original is not readable media ({', '.join(bad) or 'probe'});"
                             " kept bit-exact and flagged")
    if kind == "video":
        return _plan_video(info, policy)
    return _plan_audio(info, policy)


def _plan_video(info: MediaInfo, policy: RenditionSettings) -> RenditionPlan:
    if not info.video:
        return RenditionPlan("fail", Code.E_RENDITION_SOURCE_INVALID, "no video stream")
    video = info.video[0]
    copy_v = video.codec in policy.accept_video
    copy_a = all(a.codec in policy.accept_audio for a in info.audio)
    pcm = copy_a and any(a.codec.startswith(_PCM_PREFIX) for a in info.audio)
    container, ext = ("mov", "mov") if pcm else ("mp4", "mp4")
    if copy_v and copy_a:
        return RenditionPlan("remux", Code.R_REMUX, "codecs accepted: stream copy", "remux",
                             container, ext, video, info.audio)
    what = [] if copy_v else [f"video {video.codec}"]
    what += [] if copy_a else [f"audio {','.join(a.codec for a in info.audio)}"]
    return RenditionPlan("transcode", Code.R_TRANSCODE, f"transcoding {' and '.join(what)}",
                         "transcode", "mp4", "mp4", video, info.audio, copy_v, copy_a)


def _plan_audio(info: MediaInfo, policy: RenditionSettings) -> RenditionPlan:
    if not info.audio:
        return RenditionPlan("fail", Code.E_RENDITION_SOURCE_INVALID, "no audio stream")
    audio = info.audio[:1]
    codec = audio[0].codec
    if codec in policy.accept_audio:
        container, ext = ("wav", "wav") if codec.startswith(_PCM_PREFIX) else ("mp4", "m4a")
        return RenditionPlan("remux", Code.R_AUDIO, "audio codec accepted: stream copy", "audio",
                             container, ext, None, audio)
    return RenditionPlan("transcode", Code.R_AUDIO_TRANSCODE, f"transcoding audio {codec}",
                         "audio", "mp4", "m4a", None, audio, True, False)


def segment_argv(plan: RenditionPlan, policy: RenditionSettings, *, ffmpeg_bin: str = "ffmpeg",
                 src: str = INPUT, out_pattern: str = OUTPUT, seg_list: str = LIST,
                 ) -> list[str]:
    """The ffmpeg argv for a plan. Defaults give the placeholder form we record."""
    inp = ffmpeg.input(src)
    streams = ([inp[f"{plan.video.index}"]] if plan.video else []) + \
        [inp[f"{a.index}"] for a in plan.audio]
    seconds = f"{policy.segment_seconds:g}"
    opts: dict[str, object] = {
        "f": "segment", "segment_time": seconds, "segment_format": plan.container,
        "reset_timestamps": 1, "segment_list": seg_list, "segment_list_type": "csv",
        "map_metadata": 0,
        # Keep the original's timeline: the default shift (AAC priming, B-frame delay)
        # would move every segment time off the clock a player shows for the original.
        "avoid_negative_ts": "disabled",
    }
    if plan.video is not None:
        opts["c:v"] = "copy" if plan.copy_video else "libx264"
        if not plan.copy_video:
            opts.update({"preset": policy.transcode_preset, "crf": policy.transcode_crf,
                         "pix_fmt": "yuv420p",
                         "force_key_frames": f"expr:gte(t,n_forced*{seconds})"})
    if plan.audio:
        opts["c:a"] = "copy" if plan.copy_audio else "aac"
        if not plan.copy_audio:
            opts["b:a"] = policy.audio_bitrate
    node = ffmpeg.output(*streams, out_pattern, **opts)
    return [ffmpeg_bin, "-nostdin", "-hide_banner", "-v", "error",
            *node.compile(cmd="ffmpeg")[1:]]


def output_pattern(directory: Path, plan: RenditionPlan) -> str:
    return str(directory / f"seg%05d.{plan.ext}")
