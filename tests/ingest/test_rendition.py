"""Archival renditions with the real ffmpeg: remux, transcode, audio, no-rendition kinds,
truncated originals, segment continuity (packets, durations, keyframes, bit-identity),
signed manifests, idempotence and the append-only catalog.

One camera is built, offloaded and rendered once per module; tests only read it, except
the last ones, which append rows (never change what earlier tests read).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import blake3
import pytest
from evidock_testing import StepClock, open_services
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, select

from archive.catalog import Blob, Recording
from archive.catalog.models import Rendition, Segment
from config import load_settings
from evidock.wiring import Services
from fixtures.camera import log_relpath, media_relpath
from fixtures.media import (
    VIDEO_ENCODERS,
    ClipSpec,
    encode_clip,
    has_encoder,
    run_ffmpeg,
    write_photo,
)
from ingest.outcome import OffloadRequest
from integrity import manifest as mf

SERIAL, OFFICER = "ZFY0001", "123456"
START = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
FPS = 25
LONG = ClipSpec(duration_s=25.0, height=240, fps=FPS)  # GOP 2 s (fixtures use -g 2*fps)
SHORT_HEVC = ClipSpec(duration_s=3.0, height=240, codec="hevc", fps=FPS)
TRUNCATE_AT = 0.6


# --------------------------------------------------------------------------- the camera


def _name(seq: int, kind: str = "video") -> str:
    return media_relpath("A", serial=SERIAL, officer=OFFICER, seq=seq, kind=kind,
                         start=START + timedelta(minutes=seq))


def _truncated(path: Path, *, faststart: bool) -> None:
    full = path.with_name(path.name + ".full")
    encode_clip(full, ClipSpec(duration_s=2.0, height=240), creation_time=START,
                faststart=faststart)
    data = full.read_bytes()
    full.unlink()
    path.write_bytes(data[: int(len(data) * TRUNCATE_AT)])


def _lavfi_av(path: Path, *, vcodec: str, acodec: str, seconds: float, fmt: str) -> None:
    run_ffmpeg(["-f", "lavfi", "-i", f"testsrc2=size=320x240:rate={FPS}",
                "-f", "lavfi", "-i", "sine=frequency=700:sample_rate=16000",
                "-t", f"{seconds}", "-map", "0:v", "-map", "1:a", "-c:v", vcodec,
                "-c:a", acodec, "-ac", "1", "-f", fmt, path])


def _lavfi_audio(path: Path, *, acodec: str, seconds: float) -> None:
    run_ffmpeg(["-f", "lavfi", "-i", "sine=frequency=300:sample_rate=16000",
                "-t", f"{seconds}", "-ac", "1", "-c:a", acodec, "-f", "wav", path])


# what -> (relpath, how to make it at that path)
def _plan(has_hevc: bool) -> dict[str, tuple[str, object]]:
    avi = _name(3).replace(".MP4", ".AVI")  # cameras of this model write MP4: F_NAME_UNPARSED
    plan: dict[str, tuple[str, object]] = {
        "h264": (_name(1), lambda p: encode_clip(p, LONG, creation_time=START)),
        "mjpeg-avi": (avi, lambda p: _lavfi_av(p, vcodec="mjpeg", acodec="pcm_u8",
                                               seconds=12, fmt="avi")),
        "wav-pcm": (_name(4, "audio"), lambda p: _lavfi_audio(p, acodec="pcm_s16le",
                                                              seconds=12)),
        "wav-adpcm": (_name(5, "audio"), lambda p: _lavfi_audio(p, acodec="adpcm_ima_wav",
                                                                seconds=3)),
        "photo": (_name(6, "photo"), lambda p: write_photo(p, taken=START, height=240)),
        "log": (log_relpath("A", serial=SERIAL, day=START),
                lambda p: p.write_text("2026-11-20 16:30:00 [123456] POWER_ON\n")),
        "truncated-moov-at-end": (_name(7), lambda p: _truncated(p, faststart=False)),
        "truncated-faststart": (_name(8), lambda p: _truncated(p, faststart=True)),
    }
    if has_hevc:
        plan["hevc"] = (_name(2), lambda p: encode_clip(p, SHORT_HEVC, creation_time=START))
    return plan


@dataclass
class World:
    svc: Services
    camera: Path
    recs: dict[str, Recording]  # by what
    first: dict[str, Rendition]  # the rendition made right after the offload
    flags: dict[str, tuple[str, ...]]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("rendition")
    camera = root / "camera"
    plan = _plan(has_encoder(VIDEO_ENCODERS["hevc"]))

    def make(item: tuple[str, object]) -> None:
        rel, maker = item
        path = camera / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        maker(path)  # type: ignore[operator]

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(make, plan.values()))
    svc = open_services(load_settings(environ={"EVIDOCK_HOME": str(root / "home")}),
                        clock=StepClock())
    report = svc.offloader().run(OffloadRequest(source=camera, device_serial=SERIAL,
                                                officer_id=OFFICER))
    by_rel = {os.fsdecode(f.relpath): f for f in report.files}
    recs: dict[str, Recording] = {}
    with Session(svc.catalog.engine) as s:
        for what, (rel, _) in plan.items():
            outcome = by_rel[rel]
            assert outcome.recording_id, (what, outcome)
            rec = s.get(Recording, outcome.recording_id)
            assert rec is not None
            recs[what] = rec
    renderer = svc.renderer()
    first = {what: renderer.render(rec) for what, rec in recs.items()}
    flags = {what: by_rel[rel].flags for what, (rel, _) in plan.items()}
    yield World(svc, camera, recs, first, flags)
    svc.close()


# --------------------------------------------------------------------------- helpers


def _segments(svc: Services, rendition: Rendition) -> list[Segment]:
    with Session(svc.catalog.engine) as s:
        return list(s.exec(select(Segment).where(Segment.rendition_id == rendition.id)
                           .order_by(Segment.index)))  # type: ignore[arg-type]


def _renditions(svc: Services, recording_id: str) -> list[Rendition]:
    with Session(svc.catalog.engine) as s:
        return list(s.exec(select(Rendition).where(Rendition.recording_id == recording_id)
                           .order_by(Rendition.created_at)))  # type: ignore[arg-type]


def _seg_paths(world: World, what: str) -> list[Path]:
    return [world.svc.store.path_for(s.blake3)
            for s in _segments(world.svc, world.first[what])]


def _original(world: World, what: str) -> Path:
    return world.svc.store.path_for(world.recs[what].blake3)


def _ffprobe(path: Path, *args: str) -> dict[str, object]:
    res = subprocess.run(["ffprobe", "-v", "error", "-of", "json", *args, str(path)],
                         capture_output=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def _streams(path: Path) -> dict[str, dict[str, str]]:
    """Per codec_type: codec_name, nb_read_packets, duration (first stream of each type)."""
    data = _ffprobe(path, "-count_packets", "-show_entries",
                    "stream=codec_type,codec_name,nb_read_packets,duration")
    out: dict[str, dict[str, str]] = {}
    for st in data["streams"]:  # type: ignore[union-attr]
        out.setdefault(st["codec_type"], st)
    return out


def _packet_md5s(path: Path, stream: str) -> list[tuple[str, str]]:
    """(size, md5) of every packet of one stream, in order (pts/dts left out)."""
    res = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path),
                          "-map", f"0:{stream}", "-c", "copy", "-f", "framemd5", "-"],
                         capture_output=True, timeout=120)
    assert res.returncode == 0, res.stderr
    rows = [ln.split(",") for ln in res.stdout.decode().splitlines()
            if ln and not ln.startswith("#")]
    return [(r[4].strip(), r[5].strip()) for r in rows]


def _signed(world: World, what: str) -> mf.SignedManifest:
    rend = world.first[what]
    assert rend.manifest_blake3 is not None
    return mf.load_signed(world.svc.store.path_for(rend.manifest_blake3).read_bytes())


# --------------------------------------------------------------------------- remux


REMUXED = ["h264", pytest.param("hevc", marks=pytest.mark.skipif(
    not has_encoder(VIDEO_ENCODERS["hevc"]), reason="ffmpeg without libx265"))]


@pytest.mark.parametrize("what", REMUXED)
def test_remux_stores_signed_segments_as_blobs(world: World, what: str) -> None:
    rec, rend = world.recs[what], world.first[what]
    assert world.flags[what] == ()
    assert (rend.status, rend.code, rend.kind, rend.container) == ("ok", "R_REMUX", "remux",
                                                                   "mp4")
    assert rend.source_blake3 == rec.blake3
    assert rend.tool and rend.tool.startswith("ffmpeg ")
    assert "{input}" in rend.argv and "copy" in rend.argv and "libx264" not in rend.argv
    segs = _segments(world.svc, rend)
    assert segs and [s.index for s in segs] == list(range(len(segs)))
    with Session(world.svc.catalog.engine) as s:
        for seg in segs:
            path = world.svc.store.path_for(seg.blake3)
            assert path.is_file() and stat.S_IMODE(path.stat().st_mode) == 0o444
            data = path.read_bytes()
            assert blake3.blake3(data).hexdigest() == seg.blake3 and len(data) == seg.size
            assert seg.name == f"seg{seg.index:05d}.mp4"
            blob = s.get(Blob, seg.blake3)
            assert blob is not None and blob.size == seg.size
        assert rend.manifest_blake3 is not None and s.get(Blob, rend.manifest_blake3)

    manifest_bytes = world.svc.store.path_for(rend.manifest_blake3).read_bytes()
    assert blake3.blake3(manifest_bytes).hexdigest() == rend.manifest_blake3
    signed = mf.load_signed(manifest_bytes)
    m = signed.manifest
    assert [(e.index, e.name, e.start_us, e.end_us, e.size, e.blake3) for e in m.entries()] \
        == [(s.index, s.name, s.start_us, s.end_us, s.size, s.blake3) for s in segs]
    assert m.merkle_root == rend.merkle_root == m.computed_merkle_root()
    assert signed.key_id == rend.key_id
    assert mf.verify_signed_manifest(signed, world.svc.keys.keyring()) == []
    assert m.originals == (mf.OriginalRef(recording_id=rec.id, name=rec.original_display,
                                          size=rec.size, blake3=rec.blake3,
                                          sha256=rec.sha256),)
    assert (m.device_serial, m.officer_id) == (SERIAL, OFFICER)
    assert m.station_id == world.svc.settings.station.id
    assert m.rendition.kind == "remux" and list(m.rendition.argv) == rend.argv


def test_long_clip_is_cut_into_several_contiguous_segments(world: World) -> None:
    segs = _segments(world.svc, world.first["h264"])
    # 25 s with 2 s GOPs and a 10 s target: cuts at the keyframes at 10 s and 20 s.
    assert len(segs) == 3
    assert segs[0].start_us == 0
    for prev, cur in zip(segs, segs[1:], strict=False):
        assert cur.start_us == prev.end_us
    spans = [s.end_us - s.start_us for s in segs]
    frame_us = 1e6 / FPS
    assert abs(spans[0] - 10e6) <= frame_us and abs(spans[1] - 10e6) <= frame_us
    assert abs(segs[-1].end_us - LONG.duration_s * 1e6) <= frame_us


def test_segments_hold_every_packet_and_the_whole_duration(world: World) -> None:
    original = _streams(_original(world, "h264"))
    parts = [_streams(p) for p in _seg_paths(world, "h264")]
    for kind in ("video", "audio"):
        assert sum(int(p[kind]["nb_read_packets"]) for p in parts) \
            == int(original[kind]["nb_read_packets"]), kind
        assert all(p[kind]["codec_name"] == original[kind]["codec_name"] for p in parts)
    video_s = sum(Fraction(p["video"]["duration"]) for p in parts)
    assert abs(video_s - Fraction(original["video"]["duration"])) <= Fraction(1, FPS)
    assert int(original["video"]["nb_read_packets"]) == LONG.duration_s * FPS


def test_segments_start_on_a_keyframe_and_play(world: World) -> None:
    for path in _seg_paths(world, "h264"):
        first = _ffprobe(path, "-select_streams", "v:0", "-show_entries", "packet=flags",
                         "-read_intervals", "%+#1")["packets"]
        assert first and first[0]["flags"].startswith("K"), path  # type: ignore[index]
        play = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-xerror", "-i", str(path),
                               "-f", "null", "-"], capture_output=True, timeout=120)
        assert play.returncode == 0 and not play.stderr.strip(), play.stderr


@pytest.mark.parametrize("what", [
    pytest.param("h264"),
    pytest.param("hevc", marks=[pytest.mark.skipif(
        not has_encoder(VIDEO_ENCODERS["hevc"]), reason="ffmpeg without libx265")]),
    pytest.param("mjpeg-avi"),
])
def test_segment_times_follow_the_original_timeline(world: World, what: str) -> None:
    """A segment's start_us is where its first frame sits in the original, as a player
    shows the original (export picks segments by these times)."""
    packets = _ffprobe(_original(world, what), "-select_streams", "v:0",
                       "-show_entries", "packet=pts_time")["packets"]
    pts = [Fraction(p["pts_time"]) for p in packets]  # type: ignore[union-attr]
    origin = min(pts)
    segs = _segments(world.svc, world.first[what])
    before = 0  # video packets in the earlier segments
    starts = []
    for path in _seg_paths(world, what):
        starts.append(round((pts[before] - origin) * 1_000_000))  # its keyframe, decode order
        before += int(_streams(path)["video"]["nb_read_packets"])
    assert [s.start_us for s in segs] == pytest.approx(starts, abs=1000)
    duration_us = float(Fraction(_streams(_original(world, what))["video"]["duration"])) * 1e6
    assert segs[-1].end_us == pytest.approx(duration_us, abs=1000)


@pytest.mark.parametrize("stream", ["v", "a"])
def test_remux_packets_are_bit_identical(world: World, stream: str) -> None:
    original = _packet_md5s(_original(world, "h264"), stream)
    joined = [row for p in _seg_paths(world, "h264") for row in _packet_md5s(p, stream)]
    assert len(original) > 100
    assert joined == original


# --------------------------------------------------------------------------- transcode


def test_unaccepted_codecs_are_transcoded_to_h264_aac(world: World) -> None:
    rend = world.first["mjpeg-avi"]
    assert "F_NAME_UNPARSED" in world.flags["mjpeg-avi"]  # flagged, still rendered
    assert (rend.status, rend.code, rend.kind, rend.container) == ("ok", "R_TRANSCODE",
                                                                   "transcode", "mp4")
    assert "video mjpeg" in rend.reason and "audio pcm_u8" in rend.reason
    assert rend.media["streams"][0]["codec"] == "mjpeg"  # probe facts of the original
    segs = _segments(world.svc, rend)
    assert [s.name for s in segs] == ["seg00000.mp4", "seg00001.mp4"]
    frame_us = 1e6 / FPS  # forced keyframes every 10 s; x264's B-frame delay may add 2 frames
    assert abs((segs[0].end_us - segs[0].start_us) - 10e6) <= 3 * frame_us
    paths = _seg_paths(world, "mjpeg-avi")
    parts = [_streams(p) for p in paths]
    assert all(p["video"]["codec_name"] == "h264" and p["audio"]["codec_name"] == "aac"
               for p in parts)
    assert sum(int(p["video"]["nb_read_packets"]) for p in parts) == 12 * FPS
    for path in paths:
        first = _ffprobe(path, "-select_streams", "v:0", "-show_entries", "packet=flags",
                         "-read_intervals", "%+#1")["packets"]
        assert first[0]["flags"].startswith("K")  # type: ignore[index]
    signed = _signed(world, "mjpeg-avi")
    assert signed.manifest.rendition.kind == "transcode"
    assert mf.verify_signed_manifest(signed, world.svc.keys.keyring()) == []


# --------------------------------------------------------------------------- audio


def test_pcm_wav_is_segmented_by_stream_copy(world: World) -> None:
    rend = world.first["wav-pcm"]
    assert (rend.status, rend.code, rend.kind, rend.container) == ("ok", "R_AUDIO", "audio",
                                                                   "wav")
    segs = _segments(world.svc, rend)
    assert [s.name for s in segs] == ["seg00000.wav", "seg00001.wav"]
    assert segs[1].start_us == segs[0].end_us and segs[0].start_us == 0
    paths = _seg_paths(world, "wav-pcm")
    parts = [_streams(p)["audio"] for p in paths]
    assert all(p["codec_name"] == "pcm_s16le" for p in parts)
    assert sum(Fraction(p["duration"]) for p in parts) == 12
    # PCM samples are the same bytes: the payloads concatenate to the original's.
    original = _original(world, "wav-pcm").read_bytes()
    payload = b"".join(_wav_data(p.read_bytes()) for p in paths)
    assert payload == _wav_data(original)


def _wav_data(data: bytes) -> bytes:
    """The bytes of a RIFF/WAVE file's data chunk."""
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        if cid == b"data":
            return data[pos + 8:pos + 8 + size]
        pos += 8 + size + (size & 1)
    raise AssertionError("no data chunk")


def test_unaccepted_audio_codec_is_transcoded_to_aac_m4a(world: World) -> None:
    rend = world.first["wav-adpcm"]
    assert (rend.status, rend.code, rend.kind, rend.container) == (
        "ok", "R_AUDIO_TRANSCODE", "audio", "mp4")
    assert "adpcm_ima_wav" in rend.reason
    segs = _segments(world.svc, rend)
    assert [s.name for s in segs] == ["seg00000.m4a"]
    audio = _streams(_seg_paths(world, "wav-adpcm")[0])
    assert set(audio) == {"audio"} and audio["audio"]["codec_name"] == "aac"
    aac_frame_s = 1024 / 16000  # encoder priming and padding: a few frames at most
    assert abs(float(audio["audio"]["duration"]) - 3.0) <= 3 * aac_frame_s


# --------------------------------------------------------------------------- no rendition


@pytest.mark.parametrize("what", ["photo", "log"])
def test_photos_and_logs_get_no_rendition(world: World, what: str) -> None:
    rend = world.first[what]
    assert (rend.status, rend.code) == ("none", "R_NONE")
    assert rend.manifest_blake3 is None and rend.merkle_root is None and rend.argv == []
    assert _segments(world.svc, rend) == []
    assert world.svc.renderer().render(world.recs[what]).id == rend.id  # finished: kept


# --------------------------------------------------------------------------- damaged input


@pytest.mark.parametrize(("what", "flag"), [("truncated-moov-at-end", "F_UNPLAYABLE"),
                                            ("truncated-faststart", "F_TRUNCATED")])
def test_truncated_original_fails_rendition_and_stays_bit_exact(world: World, what: str,
                                                                flag: str) -> None:
    assert flag in world.flags[what]
    rec, rend = world.recs[what], world.first[what]
    assert rec.status == "flagged"
    assert (rend.status, rend.code) == ("failed", "E_RENDITION_SOURCE_INVALID")
    assert flag in rend.reason
    assert rend.manifest_blake3 is None and _segments(world.svc, rend) == []
    camera_file = world.camera / os.fsdecode(rec.original_path)
    assert _original(world, what).read_bytes() == camera_file.read_bytes()
    assert blake3.blake3(camera_file.read_bytes()).hexdigest() == rec.blake3

    renderer = world.svc.renderer()
    assert rec.id in {r.id for r in renderer.pending()}  # failed tries are retried
    before = _renditions(world.svc, rec.id)
    again = renderer.render(rec)
    after = _renditions(world.svc, rec.id)
    assert again.id != rend.id and again.status == "failed"
    assert [r.id for r in after] == [r.id for r in before] + [again.id]  # appended
    assert [(r.id, r.status, r.code) for r in after[:len(before)]] \
        == [(r.id, r.status, r.code) for r in before]  # earlier attempts unchanged
    assert rec.id in {r.id for r in renderer.pending()}


# --------------------------------------------------------------------------- idempotence


def test_rendering_again_returns_the_finished_row(world: World) -> None:
    renderer = world.svc.renderer()
    store_before = sorted(p for p in world.svc.store.root.rglob("*") if p.is_file()
                          and ".staging" not in p.parts)
    for what in ("h264", "mjpeg-avi", "wav-pcm", "photo"):
        rows = _renditions(world.svc, world.recs[what].id)
        again = renderer.render(world.recs[what])
        assert again.id == world.first[what].id and again.merkle_root == rows[0].merkle_root
        assert len(_renditions(world.svc, world.recs[what].id)) == len(rows) == 1
    pending = {r.id for r in renderer.pending()}
    assert pending == {world.recs[w].id for w in ("truncated-moov-at-end",
                                                  "truncated-faststart")}
    assert sorted(p for p in world.svc.store.root.rglob("*") if p.is_file()
                  and ".staging" not in p.parts) == store_before


def test_every_rendition_attempt_is_an_audit_event(world: World) -> None:
    """Made, failed and "none" renditions each left one event naming the rendition."""
    from archive.audit.log import AuditEvent

    with Session(world.svc.catalog.engine) as s:
        events = [e for e in s.exec(select(AuditEvent)) if e.action == "rendition.make"]
    by_rendition = {e.subjects[1]: e for e in events}
    for what, row in world.first.items():
        event = by_rendition[f"rendition:{row.id}"]
        assert event.subjects[0] == f"recording:{world.recs[what].id}"
        assert event.details["status"] == row.status and event.details["code"] == row.code
        assert event.details["merkle_root"] == row.merkle_root
    assert {e.details["status"] for e in events} >= {"ok", "failed", "none"}


# --------------------------------------------------------------------------- append-only


@pytest.mark.parametrize("statement", [
    "UPDATE rendition SET status = 'ok', code = 'R_REMUX' WHERE status = 'failed'",
    "UPDATE rendition SET merkle_root = NULL",
    "DELETE FROM rendition",
    "UPDATE segment SET blake3 = (SELECT blake3 FROM segment LIMIT 1)",
    "UPDATE segment SET end_us = end_us + 1",
    "DELETE FROM segment",
])
def test_catalog_refuses_to_change_renditions_and_segments(world: World,
                                                           statement: str) -> None:
    def snapshot() -> list[tuple[object, ...]]:
        with world.svc.catalog.engine.connect() as conn:
            return [tuple(r) for t in ("rendition", "segment")
                    for r in conn.execute(text(f"SELECT * FROM {t} ORDER BY 1, 2"))]

    before = snapshot()
    with pytest.raises(DBAPIError, match="append-only"), \
            world.svc.catalog.engine.begin() as conn:
        conn.execute(text(statement))
    assert snapshot() == before
