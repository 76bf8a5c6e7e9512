"""The media check's ffprobe answer is kept with the recording (``recordingprobe``) and
the rendition plans from it instead of starting ffprobe again (issue 14); only while the
station's ffprobe is the one that gave it. Real ffprobe and ffmpeg, behind wrappers
that log every call they get: a wrapper is a boundary (the tool), not our logic.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from evidock_testing import StepClock, open_services
from sqlmodel import Session

from archive.catalog import Recording
from archive.catalog.models import RecordingProbe
from config import load_settings
from evidock.wiring import Services
from fixtures.camera import media_relpath
from fixtures.media import ClipSpec, encode_clip, run_ffmpeg
from ingest.media import Prober
from ingest.outcome import OffloadRequest
from ingest.process import _media_json
from ingest.tools import tool_version

SERIAL, OFFICER = "ZFY0001", "123456"
START = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)


def _wrapper(directory: Path, name: str, *, version: str | None = None) -> tuple[str, Path]:
    """An ffprobe that logs its argv and runs the real one (or claims another version)."""
    real = shutil.which("ffprobe")
    assert real, "ffprobe is not installed"
    log = directory / f"{name}.log"
    claim = (f'[ "$1" = "-version" ] && {{ echo "ffprobe version {version} Copyright"; '
             f"exit 0; }}\n") if version else ""
    script = directory / name
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\n{claim}exec "{real}" "$@"\n')
    script.chmod(0o755)
    return str(script), log


def _calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def _camera(root: Path) -> dict[str, str]:
    """An MP4 (its index judges it: one plain probe, kept) and an AVI (judged by a
    counting probe, not the renderer's call: not kept)."""
    names = {"mp4": media_relpath("A", serial=SERIAL, officer=OFFICER, seq=1, kind="video",
                                  start=START),
             "avi": media_relpath("A", serial=SERIAL, officer=OFFICER, seq=2, kind="video",
                                  start=START).replace(".MP4", ".AVI")}
    for rel in names.values():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
    encode_clip(root / names["mp4"], ClipSpec(duration_s=3.0, height=240), creation_time=START)
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "2",
                "-c:v", "mjpeg", "-f", "avi", root / names["avi"]])
    return names


def _ingest(tmp_path: Path, ffprobe: str) -> tuple[Services, dict[str, Recording]]:
    names = _camera(tmp_path / "camera")
    svc = open_services(load_settings(environ={"EVIDOCK_HOME": str(tmp_path / "home")}),
                        clock=StepClock())
    svc = dataclasses.replace(svc, prober=Prober(ffprobe=ffprobe))
    report = svc.offloader().run(OffloadRequest(source=tmp_path / "camera",
                                                device_serial=SERIAL, officer_id=OFFICER))
    by_rel = {os.fsdecode(f.relpath): f.recording_id for f in report.files}
    recs = {what: svc.catalog.recording(str(by_rel[rel])) for what, rel in names.items()}
    return svc, recs


def _kept(svc: Services, recording_id: str) -> RecordingProbe | None:
    with Session(svc.catalog.engine) as s:
        return s.get(RecordingProbe, recording_id)


def test_the_rendition_plans_from_the_probe_kept_at_ingest(tmp_path: Path) -> None:
    at_ingest, _ = _wrapper(tmp_path, "ffprobe-ingest")
    svc, recs = _ingest(tmp_path, at_ingest)
    try:
        kept = _kept(svc, recs["mp4"].id)
        assert kept is not None and kept.tool == tool_version("ffprobe")
        original = svc.store.path_for(recs["mp4"].blake3)
        fresh, _ = Prober().probe(original)
        assert fresh is not None and Prober().reuse(kept.tool, kept.probe) == fresh
        assert _kept(svc, recs["avi"].id) is None  # a counting probe is not the same call

        at_render, log = _wrapper(tmp_path, "ffprobe-render")
        renderer = dataclasses.replace(svc, prober=Prober(ffprobe=at_render)).renderer()
        made = renderer.render(recs["mp4"])
        assert made.status == "ok", made.reason
        assert made.media == _media_json(fresh)  # the same facts as a probe now
        assert not [c for c in _calls(log) if str(original) in c]
        avi = renderer.render(recs["avi"])
        assert avi.status == "ok", avi.reason
        avi_path = str(svc.store.path_for(recs["avi"].blake3))
        assert [c for c in _calls(log) if avi_path in c]  # no row: probed as before
    finally:
        svc.close()


def test_another_ffprobe_version_probes_again(tmp_path: Path) -> None:
    older, _ = _wrapper(tmp_path, "ffprobe-older", version="0.0-older")
    svc, recs = _ingest(tmp_path, older)
    try:
        kept = _kept(svc, recs["mp4"].id)
        assert kept is not None and kept.tool == "ffprobe 0.0-older"
        assert Prober().reuse(kept.tool, kept.probe) is None

        at_render, log = _wrapper(tmp_path, "ffprobe-render")
        made = dataclasses.replace(svc, prober=Prober(ffprobe=at_render)).renderer() \
            .render(recs["mp4"])
        assert made.status == "ok", made.reason
        original = str(svc.store.path_for(recs["mp4"].blake3))
        assert [c for c in _calls(log) if original in c]
    finally:
        svc.close()


@pytest.mark.parametrize("answer", [b"\xff\xfe not UTF-8", None])
def test_an_answer_that_cannot_be_kept_is_not(answer: bytes | None) -> None:
    assert Prober().keepable(answer) is None


def test_a_kept_answer_that_does_not_parse_means_probe_again() -> None:
    assert Prober().reuse(tool_version("ffprobe"), "{not json") is None
