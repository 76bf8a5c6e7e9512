"""Redaction pixels and sound (issue 17), with the real ffmpeg and the real CenterFace.

The fixture (fixtures/faces.py) moves three real face photographs across a textured
background, holds a number plate still and plays a 440 Hz tone. The plan hides the plate
by hand over [1 s, 3 s), mutes [0.5 s, 1.2 s) and puts a tone over [2.0 s, 2.8 s); the
faces are found by :func:`records.facetrack.detect`. Source and output are both decoded
by ffmpeg and compared frame by frame and sample by sample.

Thresholds: re-encoding alone (CRF 18 over a CRF 12 source) moves pixels by ~2 levels on
average on this textured background (measured: mean absolute difference (MAD) at most 2.4
per frame, PSNR at least 38 dB), so "unchanged" is MAD < 3 and PSNR > 35 dB outside every
region; "hidden" is MAD > 15 inside each ground-truth box in each frame, six times the
codec error (measured: blur at least 24.7 — the smallest is the flattest, greyest face —,
solid at least 101).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from fixtures.faces import SOURCE_TONE_HZ, FaceVideo, write_face_video
from fixtures.media import ffprobe_json
from integrity.errors import MediaError
from integrity.redaction import AudioRange, Box, Fixed, Plan, Track
from records import facetrack, redact_render
from records.redact_render import frame_time

Frames = npt.NDArray[np.uint8]
HIDDEN, UNCHANGED, MIN_PSNR, MIN_RECALL = 15.0, 3.0, 35.0, 0.98
MUTE, TONE, PLATE_SPAN = (500_000, 1_200_000), (2_000_000, 2_800_000), (1_000_000, 3_000_000)
RATE = 48_000


@dataclass(frozen=True)
class Case:
    video: FaceVideo
    source: Frames
    plan: Plan  # after detection
    outputs: dict[str, Path]  # style -> rendered file


def _frames(path: Path, width: int, height: int) -> Frames:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "pipe:1"], capture_output=True, check=True,
                         timeout=120).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def _pcm(path: Path) -> npt.NDArray[np.float64]:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac",
                          "1", "-ar", str(RATE), "-f", "s16le", "pipe:1"],
                         capture_output=True, check=True, timeout=120).stdout
    return np.frombuffer(raw, "<i2").astype(np.float64) / 32768


def _mad(a: Frames, b: Frames) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _crop(frame: Frames, b: Box) -> Frames:
    return frame[b.y:b.y + b.h, b.x:b.x + b.w]


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Case:
    tmp = tmp_path_factory.mktemp("redact")
    video = write_face_video(tmp / "faces.mp4")
    drawn = Plan("rec-1", 0, 4_000_000, video.width, video.height, "blur",
                 boxes=(Fixed("plate", video.plate, *PLATE_SPAN),),
                 audio=(AudioRange("mute", *MUTE), AudioRange("tone", *TONE)))
    plan = facetrack.detect(drawn, [video.path], first_start_us=0)
    outputs = {}
    for style in ("blur", "solid"):
        styled = Plan(**{**plan.__dict__, "style": style})
        outputs[style] = tmp / f"{style}.mp4"
        made = redact_render.render(styled, [video.path], first_start_us=0,
                                    out=outputs[style])
        assert made.frames == video.frames and made.fps == "25/1"
    return Case(video, _frames(video.path, video.width, video.height), plan, outputs)


def _mask(plan: Plan, index: int) -> npt.NDArray[np.bool_]:
    mask = np.zeros((plan.height, plan.width), bool)
    for b in plan.regions_at(frame_time(plan, index, "25/1")):
        mask[b.y:b.y + b.h, b.x:b.x + b.w] = True
    return mask


@pytest.mark.parametrize("style", ["blur", "solid"])
def test_every_face_and_the_plate_are_hidden_in_every_frame(case: Case, style: str) -> None:
    out = _frames(case.outputs[style], case.video.width, case.video.height)
    assert len(out) == case.video.frames
    weak = []
    for i, (src, got) in enumerate(zip(case.source, out, strict=True)):
        boxes = dict(case.video.faces[i])
        if PLATE_SPAN[0] <= frame_time(case.plan, i, "25/1") < PLATE_SPAN[1]:
            boxes["plate"] = case.video.plate
        weak += [(i, name, round(d, 1)) for name, b in boxes.items()
                 if (d := _mad(_crop(src, b), _crop(got, b))) <= HIDDEN]
    assert weak == []


@pytest.mark.parametrize("style", ["blur", "solid"])
def test_pixels_outside_every_region_are_unchanged(case: Case, style: str) -> None:
    out = _frames(case.outputs[style], case.video.width, case.video.height)
    changed = []
    for i, (src, got) in enumerate(zip(case.source, out, strict=True)):
        keep = ~_mask(case.plan, i)
        diff = src[keep].astype(np.float64) - got[keep].astype(np.float64)
        mad, mse = float(np.abs(diff).mean()), float((diff ** 2).mean())
        psnr = 10 * np.log10(255 ** 2 / max(mse, 1e-9))
        if mad >= UNCHANGED or psnr <= MIN_PSNR:
            changed.append((i, round(mad, 2), round(psnr, 1)))
    assert changed == []


def test_detection_covers_every_face_in_every_frame(case: Case) -> None:
    """Recall: a face-frame counts as covered when the rendered regions cover 95% of its
    ground-truth box shrunk by 10% a side (the photo's corners are not face)."""
    covered = total = 0
    for i, faces in enumerate(case.video.faces):
        mask = _mask(case.plan, i)
        for b in faces.values():
            inner = Box(b.x + b.w // 10, b.y + b.h // 10, b.w * 8 // 10, b.h * 8 // 10)
            total += 1
            covered += float(_crop(mask, inner).mean()) >= 0.95
    recall = covered / total
    print(f"detection recall {recall:.4f} over {total} face-frames")
    assert recall >= MIN_RECALL
    assert case.plan.detector is not None and case.plan.detector["name"] == "CenterFace"
    assert len(case.plan.detector["model_blake3"]) == 64
    assert {t.source for t in case.plan.tracks} == {"auto"}
    # Three faces, each one track over the whole clip (detected every 2nd of 100
    # frames): not split into pieces a reviewer would have to find one by one.
    longest = sorted(len(t.samples) for t in case.plan.tracks)[-3:]
    assert longest[0] >= 45, [len(t.samples) for t in case.plan.tracks]


def _rms(x: npt.NDArray[np.float64], span: tuple[int, int], margin: float = 0.03
         ) -> float:
    a, b = round((span[0] / 1e6 + margin) * RATE), round((span[1] / 1e6 - margin) * RATE)
    return float(np.sqrt((x[a:b] ** 2).mean()))


def _peak_hz(x: npt.NDArray[np.float64], span: tuple[int, int]) -> float:
    a, b = round((span[0] / 1e6 + 0.03) * RATE), round((span[1] / 1e6 - 0.03) * RATE)
    spectrum = np.abs(np.fft.rfft(x[a:b] * np.hanning(b - a)))
    return float(np.fft.rfftfreq(b - a, 1 / RATE)[int(spectrum.argmax())])


def test_audio_is_muted_toned_and_otherwise_the_source(case: Case) -> None:
    src, out = _pcm(case.video.path), _pcm(case.outputs["blur"])
    assert abs(len(out) - len(src)) < RATE // 20
    assert _rms(out, MUTE) < 1e-3 < _rms(src, MUTE)
    assert abs(_peak_hz(out, TONE) - 1000) < 5  # the 1 kHz bleep
    assert abs(_peak_hz(src, TONE) - SOURCE_TONE_HZ) < 5
    for span in ((100_000, 450_000), (1_300_000, 1_900_000), (2_900_000, 3_900_000)):
        assert abs(_peak_hz(out, span) - SOURCE_TONE_HZ) < 5
        assert abs(_rms(out, span) - _rms(src, span)) < 0.05 * _rms(src, span)


def test_output_is_h264_aac_mp4(case: Case) -> None:
    info = ffprobe_json(case.outputs["solid"])
    codecs = sorted(s["codec_name"] for s in info["streams"])
    assert codecs == ["aac", "h264"]
    assert "mp4" in info["format"]["format_name"]
    [video] = [s for s in info["streams"] if s["codec_type"] == "video"]
    assert video["pix_fmt"] == "yuv420p" and (video["width"], video["height"]) == (640, 360)


def test_a_removed_track_leaves_that_face_visible(case: Case, tmp_path: Path) -> None:
    astro = case.video.faces[50]["astronaut"]
    [gone] = [t.id for t in case.plan.tracks
              if (b := t.at(frame_time(case.plan, 50, "25/1"))) is not None
              and abs(b.x - astro.x) < astro.w // 2 and abs(b.y - astro.y) < astro.h // 2]
    plan = case.plan.without([gone])
    redact_render.render(plan, [case.video.path], first_start_us=0, out=tmp_path / "o.mp4")
    out = _frames(tmp_path / "o.mp4", case.video.width, case.video.height)
    for i in (0, 30, 60):  # the astronaut crosses no other region in these frames
        b = case.video.faces[i]["astronaut"]
        assert _crop(_mask(plan, i), b).mean() == 0
        assert _mad(_crop(case.source[i], b), _crop(out[i], b)) < UNCHANGED
        other = case.video.faces[i]["lfw-0"]
        assert _mad(_crop(case.source[i], other), _crop(out[i], other)) > HIDDEN


def test_a_source_without_audio_gives_an_output_without_audio(case: Case,
                                                             tmp_path: Path) -> None:
    mute = tmp_path / "silent.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(case.video.path), "-an", "-c:v",
                    "copy", str(mute)], check=True, timeout=60)
    plan = Plan("rec-1", 1_000_000, 2_000_000, 640, 360, "solid",
                boxes=(Fixed("plate", case.video.plate, 1_000_000, 2_000_000),))
    made = redact_render.render(plan, [mute], first_start_us=0, out=tmp_path / "o.mp4")
    assert made.frames == 25
    assert [s["codec_type"] for s in ffprobe_json(tmp_path / "o.mp4")["streams"]] == ["video"]


def test_a_range_across_two_segments_is_cut_exactly(case: Case, tmp_path: Path) -> None:
    """Sources are rendition segments in order; the range starts in the first."""
    parts = []
    for n, (a, b) in enumerate(((0, 2), (2, 4))):
        parts.append(tmp_path / f"seg{n}.mp4")
        subprocess.run(["ffmpeg", "-v", "error", "-ss", str(a), "-t", str(b - a), "-i",
                        str(case.video.path), "-c:v", "libx264", "-crf", "12", "-c:a",
                        "aac", str(parts[-1])], check=True, timeout=60)
    plan = Plan("rec-1", 11_500_000, 12_500_000, 640, 360, "solid")  # 10 s = 1st start
    made = redact_render.render(plan, parts, first_start_us=10_000_000,
                                out=tmp_path / "o.mp4")
    out = _frames(tmp_path / "o.mp4", 640, 360)
    assert made.frames == len(out) == 25
    for k in (0, 12, 24):  # the first frame at or after 1.5 s is the source's 38th
        assert _mad(out[k], case.source[38 + k]) < UNCHANGED < _mad(out[k], case.source[37 + k])


def test_refusals_and_timeouts_are_media_errors(case: Case, tmp_path: Path) -> None:
    wrong = Plan("rec-1", 0, 1_000_000, 1280, 720)
    with pytest.raises(MediaError, match="another size"):
        redact_render.render(wrong, [case.video.path], first_start_us=0,
                             out=tmp_path / "a.mp4")
    plan = Plan("rec-1", 0, 4_000_000, 640, 360)
    with pytest.raises(MediaError, match="longer than"):
        redact_render.render(plan, [case.video.path], first_start_us=0,
                             out=tmp_path / "b.mp4", timeout_s=0.05)
    assert not (tmp_path / "b.mp4").exists()
    (tmp_path / "kept.mp4").write_bytes(b"an earlier file")
    with pytest.raises(MediaError, match="already exists"):  # never overwritten
        redact_render.render(plan, [case.video.path], first_start_us=0,
                             out=tmp_path / "kept.mp4")
    assert (tmp_path / "kept.mp4").read_bytes() == b"an earlier file"
    with pytest.raises(MediaError, match="does not start inside"):
        redact_render.render(plan, [case.video.path], first_start_us=1,
                             out=tmp_path / "c.mp4")


def test_the_tracker_keeps_faces_apart_and_bridges_short_misses() -> None:
    tracker = facetrack.Tracker(taken={"face-1"})
    a, b = Box(10, 10, 50, 50), Box(300, 10, 50, 50)
    tracker.add(0, [a, b])
    tracker.add(80_000, [Box(30, 12, 50, 50)])  # b missed once, a moved fast
    tracker.add(160_000, [Box(50, 14, 50, 50), Box(302, 10, 50, 50)])
    tracker.add(3_000_000, [Box(50, 14, 50, 50)])  # gone for > MAX_GAP: a new track
    tracks = {t.id: [s[0] for s in t.samples] for t in tracker.tracks()}
    assert tracks == {"face-2": [0, 80_000, 160_000], "face-3": [0, 160_000],
                      "face-4": [3_000_000]}


def test_detection_keeps_what_people_drew(case: Case) -> None:
    """Re-detecting replaces only the detector's own tracks; hand tracks, boxes and
    audio stay, and new ids never take a hand-drawn one's."""
    hand = Track("face-1", "hand", ((0, Box(0, 0, 40, 40)), (1_000_000, Box(50, 0, 40, 40))))
    drawn = Plan(**{**case.plan.__dict__, "tracks": (hand,), "detector": None})
    again = facetrack.detect(drawn, [case.video.path], first_start_us=0)
    assert again.tracks[0] == hand and again.boxes == drawn.boxes
    assert again.audio == drawn.audio
    auto = [t for t in again.tracks if t.source == "auto"]
    assert "face-1" not in {t.id for t in auto}
    assert [t.samples for t in auto] == [t.samples for t in case.plan.tracks]  # repeatable
