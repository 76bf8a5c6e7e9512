"""What a package holds (issue 15): the exact-range derivative with its signed
provenance, ``exact`` packages that hold no byte outside the approved range, audio, the
index.html, and each tampering of them named by the verifier."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from evidock_testing import (
    StepClock,
    offloaded_home,
    ok_json,
    open_services,
    run_evidock,
    without_pending,
    write_agency_config,
)
from service_support import RunningService, open_dir, serving
from sqlmodel import Session, col, select
from station_homes import rebag

from archive.catalog import Recording
from archive.catalog.models import Rendition, Segment
from archive.keystore import StationKeys
from config import load_settings
from evidock.wiring import Services
from fixtures.camera import CameraTree, media_relpath
from fixtures.media import ClipSpec, encode_clip, ffprobe_json, write_audio_note
from ingest.outcome import OffloadRequest
from integrity import derivative
from integrity import package as pkg
from integrity.codes import Code
from integrity.findings import Finding
from integrity.keys import PublicKey
from records.models import Export
from records.package import Exporter

SERIAL, OFFICER = "ZFY0002", "654321"
START = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
FPS = 25  # fixtures.media.ClipSpec's default frame rate
FRAME = 1 / FPS


@dataclass
class World:
    svc: Services
    video: Recording
    audio: Recording
    exporter: Exporter
    root: Path

    def verify(self, path: Path) -> list[Finding]:
        return without_pending(pkg.verify_package(path,
                                                  trusted=self.svc.keys.keyring().by_id()))

    def segments(self, rec: Recording) -> list[Segment]:
        with Session(self.svc.catalog.engine) as s:
            rend = s.exec(select(Rendition).where(Rendition.recording_id == rec.id,
                                                  Rendition.status == "ok")).one()
            return list(s.exec(select(Segment).where(Segment.rendition_id == rend.id)
                               .order_by(Segment.index)))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("contents")
    camera = root / "camera"
    rels = {"video": media_relpath("A", serial=SERIAL, officer=OFFICER, start=START, seq=1,
                                       kind="video"),
            "audio": media_relpath("A", serial=SERIAL, officer=OFFICER,
                                   start=START + timedelta(minutes=5), seq=2, kind="audio")}
    for rel in rels.values():
        (camera / rel).parent.mkdir(parents=True, exist_ok=True)
    encode_clip(camera / rels["video"], ClipSpec(duration_s=14.0, height=240),
                creation_time=START)
    write_audio_note(camera / rels["audio"], start=START + timedelta(minutes=5),
                     duration_s=4.0)
    write_agency_config(root / "home")
    svc = open_services(load_settings(environ={"EVIDOCK_HOME": str(root / "home")}),
                        clock=StepClock())
    report = svc.offloader().run(OffloadRequest(source=camera, device_serial=SERIAL,
                                                officer_id=OFFICER))
    assert report.outcome == "completed"
    ids = {os.fsdecode(f.relpath): f.recording_id for f in report.files}
    with Session(svc.catalog.engine) as s:
        recs = {k: s.get(Recording, ids[rel]) for k, rel in rels.items()}
    renderer = svc.renderer()
    for rec in recs.values():
        assert rec is not None
        renderer.render(rec)
    exporter = Exporter(store=svc.store, catalog=svc.catalog, keys=svc.keys, clock=svc.clock,
                        station_id=svc.settings.station.id,
                        zone=svc.settings.station.local_zone)
    assert recs["video"] is not None and recs["audio"] is not None
    yield World(svc, recs["video"], recs["audio"], exporter, root)
    svc.close()


def _failures(findings: list[Finding]) -> set[tuple[str, str | None]]:
    return {(f.code, f.subject) for f in findings if pkg.is_failure(f)}


def _duration(path: Path) -> float:
    return float(ffprobe_json(path)["format"]["duration"])


def _doc(out: Path) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((out / "data" / derivative.DOC).read_bytes())
    return loaded


@pytest.fixture(scope="module")
def covering_pkg(world: World) -> Path:
    out = world.root / "covering"
    world.exporter.export(world.video.id, start="1.0", end="2.0", out=out, actor="t")
    return out


@pytest.fixture(scope="module")
def exact_pkg(world: World) -> Path:
    out = world.root / "exact"
    world.exporter.export(world.video.id, start="1.0", end="2.0", out=out, actor="t",
                          exact=True)
    return out


def test_package_holds_the_covering_segments_and_the_exact_derivative(
        world: World, covering_pkg: Path) -> None:
    assert _failures(world.verify(covering_pkg)) == set()
    segs = world.segments(world.video)
    first = segs[0]
    assert first.start_us <= 1_000_000 and first.end_us >= 2_000_000
    held = (covering_pkg / "data" / "segments" / first.name).read_bytes()
    assert world.svc.store.path_for(first.blake3).read_bytes() == held
    doc = _doc(covering_pkg)
    clip = covering_pkg / "data" / str(doc["file"])
    assert abs(_duration(clip) - 1.0) <= FRAME + 1e-3  # ± one frame
    assert doc["label"] == derivative.LABEL and doc["range_us"] == [1_000_000, 2_000_000]
    assert doc["sources"] == [{"name": first.name, "index": first.index,
                               "blake3": first.blake3, "start_us": first.start_us,
                               "end_us": first.end_us}]
    trim = doc["trim"]
    assert isinstance(trim, dict) and trim["method"] == "re-encode"
    assert str(trim["tool"]).startswith("ffmpeg ") and "{list}" in trim["argv"]
    assert doc["size"] == clip.stat().st_size


def test_exact_package_holds_no_byte_outside_the_approved_range(
        world: World, exact_pkg: Path) -> None:
    assert _failures(world.verify(exact_pkg)) == set()
    files = {pkg.relpath(exact_pkg / "data", p) for p in (exact_pkg / "data").rglob("*")
             if p.is_file()}
    media = {f for f in files if f.endswith((".mp4", ".m4a", ".wav", ".mov"))}
    assert media == {"derivative/clip.mp4"}  # no segment, no original
    clip = exact_pkg / "data" / "derivative" / "clip.mp4"
    probe = ffprobe_json(clip)
    for stream in probe["streams"]:  # every stream's time span is the approved second
        assert float(stream["start_time"]) >= -FRAME
        assert float(stream["start_time"]) + float(stream["duration"]) <= 1.0 + FRAME + 1e-3
    assert abs(_duration(clip) - 1.0) <= FRAME + 1e-3
    clip_json = json.loads((exact_pkg / "data" / "clip.json").read_bytes())
    assert clip_json["exact"] is True and clip_json["segments"] == []
    rows = [e for e in _exports(world) if e.destination == str(exact_pkg)]
    assert len(rows) == 1 and (rows[0].start_us, rows[0].end_us) == (1_000_000, 2_000_000)


def test_audio_recording_gets_its_exact_derivative(world: World) -> None:
    out = world.root / "audio"
    world.exporter.export(world.audio.id, start="1.0", end="2.0", out=out, actor="t",
                          exact=True)
    assert _failures(world.verify(out)) == set()
    doc = _doc(out)
    clip = out / "data" / str(doc["file"])
    assert clip.suffix == ".wav" and abs(_duration(clip) - 1.0) <= 1e-3


def test_index_lists_every_file_with_its_digest_in_the_station_zone(
        world: World, covering_pkg: Path) -> None:
    page = (covering_pkg / "data" / "index.html").read_text(encoding="utf-8")
    sums = dict(reversed(line.split(" ", 1)) for line in
                (covering_pkg / "manifest-sha256.txt").read_text().splitlines())
    for path, digest in sums.items():
        if path != "data/index.html":
            assert path in page and digest in page, path
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")
    assert "derivative, not the original" in page and OFFICER in page and SERIAL in page
    zone = world.svc.settings.station.local_zone
    assert START.astimezone(zone).isoformat(" ") in page
    assert "evidock verify THIS_FOLDER --key station.pem" in page


def _exports(world: World) -> list[Export]:
    with Session(world.svc.catalog.engine) as s:
        return list(s.exec(select(Export)))


def _tampered(src: Path, tmp: Path) -> Path:
    dest = tmp / "pkg"
    shutil.copytree(src, dest)
    return dest


def _rebag(root: Path) -> None:
    """Recompute every bag digest: only the signatures and cross-checks remain."""
    clip_path = root / "data" / "clip.json"
    export_id = json.loads(clip_path.read_bytes())["export_id"] if clip_path.exists() else "c"
    rebag(root, bag_id=export_id)


def test_tampered_derivative_provenance_is_named(exact_pkg: Path, world: World,
                                                 tmp_path: Path) -> None:
    out = _tampered(exact_pkg, tmp_path)
    doc = _doc(out)
    sources = doc["sources"]
    assert isinstance(sources, list)
    sources[0]["blake3"] = "0" * 64
    doc["range_us"] = [0, 2_000_000]
    (out / "data" / derivative.DOC).write_bytes(json.dumps(doc).encode())
    _rebag(out)
    codes = {c for c, _ in _failures(world.verify(out))}
    assert {Code.E_SIGNATURE_INVALID, Code.E_DERIVATIVE_MISMATCH} <= codes


def test_replaced_derivative_clip_and_missing_signature_are_named(
        exact_pkg: Path, world: World, tmp_path: Path) -> None:
    out = _tampered(exact_pkg, tmp_path)
    clip = out / "data" / "derivative" / "clip.mp4"
    clip.write_bytes(clip.read_bytes()[:-100])
    (out / "data" / derivative.SIG).unlink()
    _rebag(out)
    failures = _failures(world.verify(out))
    assert (Code.E_DERIVATIVE_MISMATCH, "derivative/clip.mp4") in failures
    assert (Code.E_DERIVATIVE_UNSIGNED, derivative.DOC) in failures
    assert (Code.E_MISSING_FILE, f"data/{derivative.SIG}") in failures


def test_index_that_lies_is_named(covering_pkg: Path, world: World, tmp_path: Path) -> None:
    out = _tampered(covering_pkg, tmp_path)
    page = out / "data" / "index.html"
    sums = dict(reversed(line.split(" ", 1)) for line in
                (out / "manifest-sha256.txt").read_text().splitlines())
    seg = next(p for p in sums if p.startswith("data/segments/"))
    page.write_text(page.read_text(encoding="utf-8").replace(sums[seg], "f" * 64),
                    encoding="utf-8")
    _rebag(out)
    assert _failures(world.verify(out)) == {(Code.E_INDEX_MISMATCH, seg)}
    page.unlink()
    _rebag(out)
    assert (Code.E_MISSING_FILE, "data/index.html") in _failures(world.verify(out))


# --------------------------------------------------------------------------- a case, served


CASE = "邵城管罚〔2026〕第015号"
DOCUMENT = b"%PDF-1.4\n% interview record\n%%EOF\n"


@dataclass
class Served:
    svc: RunningService
    ids: dict[str, str]  # kind -> recording id
    originals: dict[str, tuple[str, int]]  # kind -> the original's (sha256, size)
    pem: Path
    outbox: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory,
           camera_template: CameraTree) -> Iterator[Served]:
    """A station that offloaded the template camera (clips, a photo, an audio note), with
    CASE linking 1.0-2.0 s of a video, 1.0-2.0 s of the audio note and the photo."""
    root = tmp_path_factory.mktemp("contents-served")
    home = offloaded_home(root / "home", camera_template.root)
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}))
    try:
        with Session(svc.catalog.engine) as s:
            rows = s.exec(select(Recording).order_by(col(Recording.id))).all()
            chosen = {k: next(r for r in rows if r.kind == k)
                      for k in ("video", "audio", "photo")}
            ids = {k: r.id for k, r in chosen.items()}
            originals = {k: (r.sha256, r.size) for k, r in chosen.items()}
        clerk = svc.gate().by_name("clerk")
        svc.cases().create(clerk, number=CASE, case_type="行政处罚", unit="城东中队")
        for kind, span in (("video", (1_000_000, 2_000_000)),
                           ("audio", (1_000_000, 2_000_000)), ("photo", (None, None))):
            svc.cases().link(clerk, CASE, ids[kind], stage="调查取证", reason=f"{kind} 证据",
                             start_us=span[0], end_us=span[1])
        record = root / "询问笔录.pdf"
        record.write_bytes(DOCUMENT)
        svc.cases().attach(clerk, CASE, record, description="询问笔录")
        svc.cases().stage(clerk, CASE, stage="调查取证", start_at=START,
                          end_at=START + timedelta(hours=1))
    finally:
        svc.close()
    pem = root / "station.pem"
    pem.write_bytes(StationKeys(directory=home / "keys").keyring().current_key.to_pem())
    outbox = open_dir("evidock-contents-")
    outbox.chmod(0o1777)
    try:
        with serving(home) as running:
            yield Served(running, ids, originals, pem, outbox)
    finally:
        shutil.rmtree(outbox, ignore_errors=True)


def _run_case(served: Served, name: str, *flags: str) -> tuple[str, Path]:
    made = ok_json(served.svc.cli("export", "request", "--case", CASE, "--purpose", "行政复议",
                                  "--recipient", "复议机关", *flags, "--json",
                                  user="inspector"))
    rid = str(made["id"])
    ok_json(served.svc.cli("export", "approve", rid, "--json", user="legal"))
    out = served.outbox / name
    ok_json(served.svc.cli("export", "run", rid, "--out", str(out), "--json",
                           user="inspector"))
    return rid, out


def _package_of(out: Path, recording_id: str) -> Path:
    return next(p for p in out.iterdir() if p.name.endswith(recording_id))


def test_approver_sees_exact_and_originals_before_approving(served: Served) -> None:
    made = ok_json(served.svc.cli("export", "request", "--case", CASE, "--purpose", "行政复议",
                                  "--recipient", "复议机关", "--exact", "--originals",
                                  "--json", user="inspector"))
    assert (made["exact"], made["originals"]) == (True, True)
    shown = served.svc.cli("export", "show", str(made["id"]), user="legal")
    assert shown.returncode == 0, shown.stderr
    assert "  package: exact (only the trimmed ranges, no covering segments); originals: yes" \
        in shown.stdout.splitlines()
    kinds = {i["recording_id"]: i["range_us"] for i in made["items"]}
    assert kinds == {served.ids["video"]: [1_000_000, 2_000_000],
                     served.ids["audio"]: [1_000_000, 2_000_000], served.ids["photo"]: [0, 0]}
    assert made["skipped"] == []


def test_case_export_holds_every_kind_and_verifies(served: Served, tmp_path: Path) -> None:
    _rid, out = _run_case(served, "plain")
    video, audio = _package_of(out, served.ids["video"]), _package_of(out, served.ids["audio"])
    photo = _package_of(out, served.ids["photo"])
    verdict = ok_json(run_evidock(tmp_path / "no-home", "verify", str(out), "--key",
                                  str(served.pem), "--json"))
    assert verdict["ok"] is True and without_pending(verdict["findings"]) == [], verdict
    for package in (video, audio):
        assert list((package / "data" / "segments").iterdir())  # covering segments too
        assert not (package / "data" / "originals").exists()
        doc = _doc(package)
        assert abs(_duration(package / "data" / str(doc["file"])) - 1.0) <= FRAME + 1e-3
    [held] = list((photo / "data" / "originals").iterdir())
    sha256, size = served.originals["photo"]
    assert hashlib.sha256(held.read_bytes()).hexdigest() == sha256
    assert held.stat().st_size == size
    assert not (photo / "data" / "segments").exists()
    page = (photo / "data" / "index.html").read_text(encoding="utf-8")
    assert sha256 in page and "the original camera file" in page


def test_exact_case_export_with_originals(served: Served, tmp_path: Path) -> None:
    _rid, out = _run_case(served, "exact", "--exact", "--originals")
    verdict = ok_json(run_evidock(tmp_path / "no-home", "verify", str(out), "--key",
                                  str(served.pem), "--json"))
    assert verdict["ok"] is True and without_pending(verdict["findings"]) == [], verdict
    for kind in ("video", "audio"):
        package = _package_of(out, served.ids[kind])
        assert not (package / "data" / "segments").exists()
        [original] = list((package / "data" / "originals").iterdir())
        assert hashlib.sha256(original.read_bytes()).hexdigest() == served.originals[kind][0]
        doc = _doc(package)
        assert abs(_duration(package / "data" / str(doc["file"])) - 1.0) <= FRAME + 1e-3


def test_tampered_original_is_named(served: Served, tmp_path: Path) -> None:
    _rid, out = _run_case(served, "tamper", "--originals")
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    photo = _package_of(copy, served.ids["photo"])
    [held] = list((photo / "data" / "originals").iterdir())
    data = bytearray(held.read_bytes())
    data[-10] ^= 0xFF
    held.write_bytes(bytes(data))
    _rebag(photo)  # the bag agrees: only the signed clip.json can tell
    failures = _failures(pkg.verify_package(copy))
    assert (Code.E_DIGEST_MISMATCH, f"{photo.name}/originals/{held.name}") in failures



def test_case_record_holds_documents_links_stages_and_the_index(
        served: Served, tmp_path: Path) -> None:
    _rid, out = _run_case(served, "record")
    case = out / "case"
    [document] = list((case / "data" / "documents").iterdir())
    assert document.read_bytes() == DOCUMENT and document.name == "01-询问笔录.pdf"
    doc = json.loads((case / "data" / "case.json").read_bytes())
    assert doc["case"]["number"] == CASE and doc["request"]["approved_by"] == "legal"
    assert {(lk["recording_id"], lk["stage"], lk["reason"], lk["start_us"], lk["end_us"])
            for lk in doc["links"]} == {
        (served.ids["video"], "调查取证", "video 证据", 1_000_000, 2_000_000),
        (served.ids["audio"], "调查取证", "audio 证据", 1_000_000, 2_000_000),
        (served.ids["photo"], "调查取证", "photo 证据", None, None)}
    assert [s["stage"] for s in doc["stages"]] == ["调查取证"]
    assert doc["documents"][0]["sha256"] == hashlib.sha256(DOCUMENT).hexdigest()
    page = (case / "data" / "index.html").read_text(encoding="utf-8")
    for package in (p for p in out.iterdir() if p.name[:2].isdigit()):
        for line in (package / "manifest-sha256.txt").read_text().splitlines():
            digest, _, rel = line.partition(" ")
            assert f"{package.name}/{rel}" in page and digest in page
    assert hashlib.sha256(DOCUMENT).hexdigest() in page and "<script" not in page
    assert "调查取证" in page and "video 证据" in page

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "case" / "data" / "documents" / document.name).write_bytes(b"%PDF-forged")
    _rebag(copy / "case")
    failures = _failures(pkg.verify_package(copy, trusted=_trusted(served)))
    assert failures == {(Code.E_DIGEST_MISMATCH, f"case/documents/{document.name}")}
    shutil.rmtree(copy / "case")
    failures = _failures(pkg.verify_package(copy, trusted=_trusted(served)))
    assert failures == {(Code.E_MISSING_FILE, "case/")}


def _trusted(served: Served) -> dict[str, PublicKey]:
    public = PublicKey.from_pem(served.pem.read_bytes())
    return {public.key_id: public}
