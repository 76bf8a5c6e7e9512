"""Clip export and offline verification: the package, every tamper case (caught and named
by its stable code, all findings at once), time parsing, segment choice, and the
verification of stored recordings."""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import bagit
import pytest
from evidock_testing import StepClock, open_services
from sqlmodel import Session, select

from archive.catalog import Recording
from archive.catalog.models import Rendition, Segment
from archive.verify_stored import StoredVerifier
from config import load_settings
from evidock.wiring import Services
from fixtures.camera import media_relpath
from fixtures.media import ClipSpec, encode_clip, write_photo
from ingest.outcome import OffloadRequest
from integrity import package as pkg
from integrity.canonical import canonical_bytes
from integrity.errors import DigestMismatch, EvidockError, NotFound
from integrity.findings import (
    E_DIGEST_MISMATCH,
    E_KEY_UNKNOWN,
    E_MANIFEST_INVALID,
    E_PROOF_INVALID,
    E_SIGNATURE_INVALID,
    Finding,
)
from integrity.keys import KeyPair, PublicKey, new_keyring
from records.models import Export
from records.package import Exporter, covering, parse_offset

SERIAL, OFFICER = "ZFY0001", "123456"
START = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
LONG = ClipSpec(duration_s=25.0, height=240)
SHORT = ClipSpec(duration_s=3.0, height=240)
SEGS = ("seg00000.mp4", "seg00001.mp4", "seg00002.mp4")


@dataclass
class World:
    svc: Services
    long: Recording
    short: Recording
    photo: Recording
    exporter: Exporter
    root: Path

    def trusted(self) -> dict[str, PublicKey]:
        return self.svc.keys.keyring().by_id()

    def verify(self, path: Path) -> list[Finding]:
        return pkg.verify_package(path, trusted=self.trusted())


def _rel(seq: int, kind: str = "video") -> str:
    return media_relpath("A", serial=SERIAL, officer=OFFICER, start=START + timedelta(minutes=seq),
                         seq=seq, kind=kind)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("export")
    camera = root / "camera"
    rels = {"long": _rel(1), "short": _rel(2), "photo": _rel(3, "photo")}
    for rel in rels.values():
        (camera / rel).parent.mkdir(parents=True, exist_ok=True)
    encode_clip(camera / rels["long"], LONG, creation_time=START + timedelta(minutes=1))
    encode_clip(camera / rels["short"], SHORT, creation_time=START + timedelta(minutes=2))
    write_photo(camera / rels["photo"], taken=START, height=240)
    svc = open_services(load_settings(environ={"EVIDOCK_HOME": str(root / "home")}),
                        clock=StepClock())
    report = svc.offloader().run(OffloadRequest(source=camera, device_serial=SERIAL,
                                                officer_id=OFFICER))
    assert report.outcome == "completed"
    ids = {os.fsdecode(f.relpath): f.recording_id for f in report.files}
    renderer = svc.renderer()
    recs = {}
    with Session(svc.catalog.engine) as s:
        for what, rel in rels.items():
            rec = s.get(Recording, ids[rel])
            assert rec is not None
            recs[what] = rec
    for rec in recs.values():
        renderer.render(rec)
    exporter = Exporter(store=svc.store, catalog=svc.catalog, keys=svc.keys, clock=svc.clock,
                        station_id=svc.settings.station.id)
    yield World(svc, recs["long"], recs["short"], recs["photo"], exporter, root)
    svc.close()


@pytest.fixture(scope="module")
def full_package(world: World) -> Path:
    """The whole 25 s recording: three segments. Copy it before changing it."""
    out = world.root / "full"
    res = world.exporter.export(world.long.id, start="0", end="25", out=out, actor="test")
    assert res.segments == SEGS
    return out


@pytest.fixture
def package(full_package: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "pkg"
    shutil.copytree(full_package, dest)
    return dest


def _failures(findings: list[Finding]) -> set[tuple[str, str | None]]:
    return {(f.code, f.subject) for f in findings if pkg.is_failure(f)}


def _segments(world: World, rec: Recording) -> list[Segment]:
    with Session(world.svc.catalog.engine) as s:
        rend = s.exec(select(Rendition).where(Rendition.recording_id == rec.id,
                                              Rendition.status == "ok")).one()
        return list(s.exec(select(Segment).where(Segment.rendition_id == rend.id)
                           .order_by(Segment.index)))  # type: ignore[arg-type]


def _exports(world: World) -> list[Export]:
    with Session(world.svc.catalog.engine) as s:
        return list(s.exec(select(Export)))


# --------------------------------------------------------------------------- export


def test_export_of_a_range_carries_exactly_the_covering_segments(world: World,
                                                                 tmp_path: Path) -> None:
    segs = _segments(world, world.long)
    assert len(segs) == 3 and segs[0].end_us > 8_000_000 and segs[1].start_us < 14_000_000
    out = tmp_path / "clip"
    res = world.exporter.export(world.long.id, start="8", end="14", out=out, actor="user:t",
                                purpose="court")
    assert res.segments == SEGS[:2] and (res.start_us, res.end_us) == (8_000_000, 14_000_000)
    files = sorted(pkg.relpath(out / "data", p) for p in (out / "data").rglob("*")
                   if p.is_file())
    assert files == sorted([*pkg.FIXED_DATA, "segments/seg00000.mp4", "segments/seg00001.mp4"])
    for seg in segs[:2]:
        assert (out / "data" / "segments" / seg.name).read_bytes() \
            == world.svc.store.path_for(seg.blake3).read_bytes()
    clip = json.loads((out / "data" / "clip.json").read_bytes())
    assert clip["segments"] == list(SEGS[:2]) and clip["range_us"] == [8_000_000, 14_000_000]
    assert clip["original"]["blake3"] == world.long.blake3
    assert clip["recording_id"] == world.long.id and clip["format"] == pkg.CLIP_FORMAT

    assert world.verify(out) == []
    untrusted = pkg.verify_package(out)  # only the keyring shipped in the package
    assert [f.code for f in untrusted] == [pkg.W_KEY_UNTRUSTED]
    bag = bagit.Bag(str(out))
    assert bag.version_info == (1, 0)
    bag.validate()  # raises BagValidationError on any mismatch
    assert bag.is_valid()

    row = next(e for e in _exports(world) if e.id == res.export_id)
    assert (row.recording_id, row.segments, row.start_us, row.end_us) == (
        world.long.id, [0, 1], 8_000_000, 14_000_000)
    assert (row.destination, row.actor, row.purpose) == (str(out), "user:t", "court")


def test_export_accepts_clock_and_iso_times(world: World, tmp_path: Path) -> None:
    assert world.long.camera_start is not None
    start = (world.long.camera_start + timedelta(seconds=21)).astimezone(
        timezone(timedelta(hours=8))).isoformat()  # in camera local time, with its zone
    res = world.exporter.export(world.long.id, start=start, end="0:00:24.5",
                                out=tmp_path / "iso", actor="t")
    assert res.segments == SEGS[2:] and res.start_us == 21_000_000
    assert world.verify(tmp_path / "iso") == []


@pytest.mark.parametrize(("start", "end", "expected"), [
    ("10", "10.01", SEGS[1:2]),  # the keyframe at 10.0 s opens seg00001
    ("9.99", "10.01", SEGS[:2]),
])
def test_export_at_a_segment_boundary_carries_the_frames_asked_for(
        world: World, tmp_path: Path, start: str, end: str,
        expected: tuple[str, ...]) -> None:
    res = world.exporter.export(world.long.id, start=start, end=end, out=tmp_path / "edge",
                                actor="t")
    assert res.segments == expected


def test_export_needs_a_finished_rendition(world: World, tmp_path: Path) -> None:
    before = len(_exports(world))
    with pytest.raises(NotFound) as err:
        world.exporter.export(world.photo.id, start="0", end="1", out=tmp_path / "p",
                              actor="t")
    assert err.value.code == "E_NOT_FOUND"
    with pytest.raises(NotFound):
        world.exporter.export("no-such-recording", start="0", end="1", out=tmp_path / "q",
                              actor="t")
    with pytest.raises(NotFound):  # a range past the end touches no segment
        world.exporter.export(world.long.id, start="30", end="40", out=tmp_path / "r",
                              actor="t")
    assert not any(tmp_path.iterdir()) and len(_exports(world)) == before


def test_export_never_writes_into_a_non_empty_directory(world: World, tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_bytes(b"mine")
    before = len(_exports(world))
    with pytest.raises(EvidockError, match="empty"):
        world.exporter.export(world.long.id, start="0", end="5", out=out, actor="t")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert (out / "keep.txt").read_bytes() == b"mine"
    assert [p.name for p in tmp_path.iterdir()] == ["busy"]  # no partial package left
    assert len(_exports(world)) == before
    empty = tmp_path / "empty"
    empty.mkdir()  # an empty directory is fine
    world.exporter.export(world.long.id, start="0", end="5", out=empty, actor="t")
    assert world.verify(empty) == []


def test_nothing_is_pending_once_every_recording_is_rendered(world: World) -> None:
    renderer = world.svc.renderer()
    assert renderer.pending() == []
    with Session(world.svc.catalog.engine) as s:
        before = sorted(r.id for r in s.exec(select(Rendition)))
    for rec in (world.long, world.short, world.photo):
        assert renderer.render(rec).id in before
    with Session(world.svc.catalog.engine) as s:
        assert sorted(r.id for r in s.exec(select(Rendition))) == before


def test_export_refuses_an_existing_file_as_destination(world: World, tmp_path: Path) -> None:
    out = tmp_path / "clip"
    out.write_bytes(b"mine")
    with pytest.raises(EvidockError):
        world.exporter.export(world.long.id, start="0", end="5", out=out, actor="t")
    assert out.read_bytes() == b"mine"


# --------------------------------------------------------------------------- tampering


def _flip(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if offset is None else offset
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def _seg(p: Path, name: str) -> Path:
    return p / "data" / "segments" / name


def _edit_json(path: Path, change: Callable[[dict], None]) -> None:
    obj = json.loads(path.read_bytes())
    change(obj)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _swap_names(p: Path) -> None:
    a, b = _seg(p, SEGS[0]), _seg(p, SEGS[1])
    tmp = a.with_name("x")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)


def _reorder(p: Path) -> None:
    _edit_json(p / "data" / "clip.json",
               lambda c: c.__setitem__("segments", [SEGS[1], SEGS[0], SEGS[2]]))


def _drop_middle(p: Path) -> None:
    _edit_json(p / "data" / "clip.json",
               lambda c: c.__setitem__("segments", [SEGS[0], SEGS[2]]))
    _seg(p, SEGS[1]).unlink()


def _edit_manifest_value(p: Path) -> None:
    path = p / "data" / "manifest.json"
    data = path.read_bytes()
    assert data.count(b'"officer_id":"123456"') == 1
    path.write_bytes(data.replace(b'"officer_id":"123456"', b'"officer_id":"654321"'))


def _edit_manifest_times(p: Path) -> None:
    """Move segment 1's start: still canonical JSON, no longer what was signed."""
    path = p / "data" / "manifest.json"
    doc = json.loads(path.read_bytes())
    doc["manifest"]["segments"][0]["end_us"] -= 1
    doc["manifest"]["segments"][1]["start_us"] -= 1
    path.write_bytes(canonical_bytes(doc))


def _pretty_manifest(p: Path) -> None:
    _edit_json(p / "data" / "manifest.json", lambda _: None)  # same content, not canonical


def _extra_file(p: Path) -> None:
    (p / "data" / "notes.txt").write_text("added later\n")


def _tamper_proof(p: Path) -> None:
    def change(doc: dict) -> None:
        proof = doc["proofs"][SEGS[1]]
        first = proof["path"][0] if "path" in proof else None
        assert first is not None, proof
        proof["path"][0] = ("0" if first[0] != "0" else "1") + first[1:]
    _edit_json(p / "data" / "proofs.json", change)


def _proof_for_other_leaf(p: Path) -> None:
    _edit_json(p / "data" / "proofs.json",
               lambda d: d["proofs"].__setitem__(SEGS[1], d["proofs"][SEGS[0]]))


TAMPERS: dict[str, tuple[Callable[[Path], None], set[tuple[str, str | None]]]] = {
    "flip-byte": (lambda p: _flip(_seg(p, SEGS[1])), {(E_DIGEST_MISMATCH, SEGS[1])}),
    "flip-first-byte": (lambda p: _flip(_seg(p, SEGS[2]), 0), {(E_DIGEST_MISMATCH, SEGS[2])}),
    "truncate": (lambda p: os.truncate(_seg(p, SEGS[1]), 1000),
                 {(pkg.E_SIZE_MISMATCH, SEGS[1])}),
    "delete": (lambda p: _seg(p, SEGS[1]).unlink(),
               {(pkg.E_MISSING_FILE, f"segments/{SEGS[1]}")}),
    "reorder": (_reorder, {(pkg.E_SEGMENT_ORDER, SEGS[0]), (pkg.E_SEGMENT_GAP, SEGS[2])}),
    "drop-middle": (_drop_middle, {(pkg.E_SEGMENT_GAP, SEGS[2])}),
    "edit-manifest-value": (_edit_manifest_value, {(E_SIGNATURE_INVALID, "manifest.json")}),
    "edit-manifest-times": (_edit_manifest_times, {(E_SIGNATURE_INVALID, "manifest.json")}),
    "pretty-manifest": (_pretty_manifest, {(E_MANIFEST_INVALID, "manifest.json")}),
    "extra-file": (_extra_file, {(pkg.E_EXTRA_FILE, "notes.txt")}),
    "extra-segment": (lambda p: shutil.copy(_seg(p, SEGS[0]), _seg(p, "seg00003.mp4")),
                      {(pkg.E_EXTRA_FILE, "segments/seg00003.mp4")}),
    "tampered-proof": (_tamper_proof, {(E_PROOF_INVALID, SEGS[1])}),
    "proof-of-other-leaf": (_proof_for_other_leaf, {(E_PROOF_INVALID, SEGS[1])}),
}


@pytest.mark.parametrize("case", sorted(TAMPERS))
def test_each_tamper_is_caught_and_named(world: World, package: Path, case: str) -> None:
    assert world.verify(package) == []
    tamper, expected = TAMPERS[case]
    tamper(package)
    assert _failures(world.verify(package)) == expected


def test_swapped_segment_files_are_both_caught(world: World, package: Path) -> None:
    sizes = [_seg(package, n).stat().st_size for n in SEGS[:2]]
    _swap_names(package)
    # Sizes are checked before digests (cheapest first): with different sizes the swap
    # shows as a size mismatch, with equal sizes as a digest mismatch; both files named.
    code = E_DIGEST_MISMATCH if sizes[0] == sizes[1] else pkg.E_SIZE_MISMATCH
    assert _failures(world.verify(package)) == {(code, SEGS[0]), (code, SEGS[1])}


def test_another_recordings_manifest_is_caught(world: World, package: Path,
                                               tmp_path: Path) -> None:
    other = world.exporter.export(world.short.id, start="0", end="3", out=tmp_path / "other",
                                  actor="t")
    assert other.segments == (SEGS[0],)
    shutil.copy(other.path / "data" / "manifest.json", package / "data" / "manifest.json")
    found = _failures(world.verify(package))
    assert found == {
        (pkg.E_ORIGINAL_MISMATCH, "clip.json"),
        (pkg.E_SIZE_MISMATCH, SEGS[0]),  # same name, other recording's bytes
        (E_PROOF_INVALID, SEGS[0]),
        (pkg.E_SEGMENT_UNKNOWN, SEGS[1]),
        (pkg.E_SEGMENT_UNKNOWN, SEGS[2]),
    }


def test_wrong_key_is_named(world: World, package: Path) -> None:
    stranger = KeyPair.generate().public
    found = pkg.verify_package(package, trusted={stranger.key_id: stranger})
    assert _failures(found) == {(pkg.E_KEY_MISMATCH, "manifest.json")}


def test_foreign_keyring_in_the_package_is_caught(world: World, package: Path) -> None:
    ring = new_keyring(KeyPair.generate().public)
    (package / "data" / "keys" / "keyring.json").write_text(json.dumps(ring.to_dict()))
    assert _failures(pkg.verify_package(package)) == {(E_KEY_UNKNOWN, "manifest.json")}
    assert world.verify(package) == []  # with the published key the package still holds


def test_several_tampers_are_all_reported(world: World, package: Path) -> None:
    _flip(_seg(package, SEGS[0]))
    _seg(package, SEGS[2]).unlink()
    _extra_file(package)
    _tamper_proof(package)
    assert _failures(world.verify(package)) == {
        (E_DIGEST_MISMATCH, SEGS[0]),
        (pkg.E_MISSING_FILE, f"segments/{SEGS[2]}"),
        (pkg.E_EXTRA_FILE, "notes.txt"),
        (E_PROOF_INVALID, SEGS[1]),
    }
    with pytest.raises(bagit.BagValidationError):
        bagit.Bag(str(package)).validate()


def test_a_directory_that_is_no_package_is_named(tmp_path: Path) -> None:
    assert _failures(pkg.verify_package(tmp_path)) == {(pkg.E_PACKAGE_MISSING, str(tmp_path))}


# --------------------------------------------------------------------------- times


CAMERA_START = datetime(2026, 11, 20, 8, 31, tzinfo=UTC)


@pytest.mark.parametrize(("text", "micros"), [
    ("95.5", 95_500_000),
    ("0", 0),
    (" 12 ", 12_000_000),
    ("1:35", 95_000_000),
    ("0:01:35.5", 95_500_000),
    ("1:00:00", 3_600_000_000),
    ("2026-11-20T16:32:35.5+08:00", 95_500_000),  # camera local time
    ("2026-11-20T08:31:10Z", 10_000_000),
    ("2026-11-20T08:31:10+00:00", 10_000_000),
])
def test_parse_offset(text: str, micros: int) -> None:
    assert parse_offset(text, CAMERA_START) == micros


@pytest.mark.parametrize(("text", "start"), [
    ("2026-11-20T16:32:35", CAMERA_START),  # no zone: ambiguous
    ("2026-11-20T08:31:10Z", None),  # recording without a known start
    ("soon", CAMERA_START),
    ("nan", CAMERA_START),
    ("1:2:3:4", CAMERA_START),
    ("", CAMERA_START),
])
def test_parse_offset_refuses_what_it_cannot_place(text: str,
                                                   start: datetime | None) -> None:
    with pytest.raises(NotFound):
        parse_offset(text, start)


@pytest.mark.parametrize("text", ["inf", "-inf", "1e400"])
def test_parse_offset_refuses_non_finite_numbers(text: str) -> None:
    with pytest.raises(NotFound):
        parse_offset(text, CAMERA_START)


def _segs(*edges: int) -> list[Segment]:
    return [Segment(rendition_id="r", index=i, name=f"seg{i:05d}.mp4", start_us=a, end_us=b,
                    size=1, blake3="0" * 64)
            for i, (a, b) in enumerate(zip(edges, edges[1:], strict=False))]


S = 1_000_000


@pytest.mark.parametrize(("start", "end", "indexes"), [
    (0, 10 * S, [0]),  # [start, end): ending exactly at an edge stops before the next
    (10 * S, 20 * S, [1]),  # starting exactly at an edge skips the previous
    (10 * S - 1, 10 * S + 1, [0, 1]),
    (10 * S, 10 * S + 1, [1]),
    (0, 25 * S, [0, 1, 2]),
    (-5 * S, 1, [0]),
    (24 * S, 99 * S, [2]),
    (25 * S - 1, 25 * S, [2]),
])
def test_covering(start: int, end: int, indexes: list[int]) -> None:
    assert [s.index for s in covering(_segs(0, 10 * S, 20 * S, 25 * S), start, end)] == indexes


@pytest.mark.parametrize(("start", "end"), [
    (5 * S, 5 * S),  # empty range
    (6 * S, 5 * S),  # reversed
    (25 * S, 30 * S),  # starts where the last segment ends
    (-5 * S, 0),  # ends where the first begins
])
def test_covering_refuses_ranges_that_touch_nothing(start: int, end: int) -> None:
    with pytest.raises(NotFound):
        covering(_segs(0, 10 * S, 20 * S, 25 * S), start, end)


# --------------------------------------------------------------------------- stored


def _stored_segments(services: Services, rec: Recording) -> list[Segment]:
    with Session(services.catalog.engine) as s:
        rend = s.exec(select(Rendition).where(Rendition.recording_id == rec.id,
                                              Rendition.status == "ok")).one()
        return list(s.exec(select(Segment).where(Segment.rendition_id == rend.id)))


def _writable(path: Path) -> Path:
    path.chmod(path.stat().st_mode | stat.S_IWUSR)
    return path


def test_stored_verify_names_each_damaged_blob(services: Services, camera: Path,
                                               tmp_path: Path) -> None:
    report = services.offloader().run(OffloadRequest(source=camera, device_serial=SERIAL))
    assert report.outcome == "completed"
    renderer = services.renderer()
    for rec in renderer.pending():
        renderer.render(rec)
    verifier = StoredVerifier(store=services.store, catalog=services.catalog,
                              keys=services.keys)
    recordings = services.catalog.recordings()
    for rec in recordings:  # photo, log and audio too: the original is checked
        assert verifier.verify(rec.id) == [], rec.original_display
    flipped, deleted, untouched = [r for r in recordings if r.kind == "video"][:3]

    seg = _stored_segments(services, flipped)[0]
    _flip(_writable(services.store.path_for(seg.blake3)))
    found = verifier.verify(flipped.id)
    assert [(f.code, f.subject) for f in found] == [(E_DIGEST_MISMATCH, seg.name)]
    assert found[0].details["expected"] == seg.blake3

    services.store.path_for(deleted.blake3).unlink()
    found = verifier.verify(deleted.id)
    assert [(f.code, f.subject) for f in found] == [(pkg.E_MISSING_FILE,
                                                    deleted.original_display)]
    assert verifier.verify(untouched.id) == []
    with pytest.raises(NotFound):
        verifier.verify("no-such-recording")

    exporter = Exporter(store=services.store, catalog=services.catalog, keys=services.keys,
                        clock=services.clock, station_id=services.settings.station.id)
    with pytest.raises(DigestMismatch):  # a package only ever carries the archived bytes
        exporter.export(flipped.id, start="0", end="1", out=tmp_path / "out", actor="t")
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.partial")]
