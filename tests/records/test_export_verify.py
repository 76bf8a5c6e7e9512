"""Clip export and offline verification: the package, every tamper case (caught and named
by its stable code, all findings at once), time parsing, segment choice, and the
verification of stored recordings."""

from __future__ import annotations

import hashlib
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
from evidock_testing import (
    StepClock,
    open_services,
    verify_offline,
    without_pending,
    write_agency_config,
)
from sqlmodel import Session, select
from station_homes import rebag

from archive.catalog import Recording
from archive.catalog.models import Rendition, Segment
from archive.verify_stored import StoredVerifier
from config import load_settings
from evidock.wiring import Services
from fixtures.camera import media_relpath
from fixtures.media import ClipSpec, encode_clip, write_photo
from ingest.outcome import OffloadRequest
from integrity import clipsign
from integrity import package as pkg
from integrity.canonical import canonical_bytes
from integrity.codes import Code
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
# What an approved request puts in clip.json (records.exports), for the package below.
PROVENANCE = {"request_id": "r-1", "case_id": None, "case_number": None, "purpose": "court",
              "recipient": "人民法院", "requested_by": "inspector",
              "requested_at": "2026-11-23T08:00:00+00:00", "reason": "",
              "approved_by": "legal", "approved_at": "2026-11-23T08:01:00+00:00",
              "valid_until": "2026-11-26T08:01:00+00:00", "exported_by": "inspector",
              "skipped": [], "link_id": None}


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
        return without_pending(pkg.verify_package(path, trusted=self.trusted()))


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
    write_agency_config(root / "home")  # the people of the case export below
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
    """The whole 25 s recording: three segments, an approved request in its clip.json.
    Copy it before changing it."""
    out = world.root / "full"
    res = world.exporter.export(world.long.id, start="0", end="25", out=out, actor="test",
                                provenance=PROVENANCE)
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
    assert files == sorted([*pkg.FIXED_DATA, "segments/seg00000.mp4", "segments/seg00001.mp4",
                            "index.html", "derivative/clip.mp4", "derivative/derivative.json",
                            "derivative/derivative.sig.json",  # issue 15: the exact range
                            "timestamps.json"])  # issue 16: its RFC 3161 tokens
    for seg in segs[:2]:
        assert (out / "data" / "segments" / seg.name).read_bytes() \
            == world.svc.store.path_for(seg.blake3).read_bytes()
    clip = json.loads((out / "data" / "clip.json").read_bytes())
    assert clip["segments"] == list(SEGS[:2]) and clip["range_us"] == [8_000_000, 14_000_000]
    assert clip["original"]["blake3"] == world.long.blake3
    assert clip["recording_id"] == world.long.id and clip["format"] == pkg.CLIP_FORMAT

    assert world.verify(out) == []
    untrusted = pkg.verify_package(out)  # only the keyring shipped in the package
    assert [f.code for f in without_pending(untrusted)] == [pkg.W_KEY_UNTRUSTED]
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
    photo = world.exporter.export(world.photo.id, start="0", end="1", out=tmp_path / "p",
                                  actor="t")  # issue 15: a photo leaves as its original
    assert photo.segments == () and list((tmp_path / "p" / "data" / "originals").iterdir())
    shutil.rmtree(tmp_path / "p")
    before = len(_exports(world))
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
#
# Every kind of file a package holds is changed, added or removed, and the real CLI
# (`python -m evidock verify PKG --key PEM --json`, a plain subprocess, no station) must
# name it with its stable code and exit 1. The expected sets are exact: a finding too
# many is as wrong as one too few.

C = Code
OXUM = (C.E_BAG_OXUM, "bag-info.txt")  # the payload's byte or file count changed


def _flip(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if offset is None else offset
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def _seg(p: Path, name: str) -> Path:
    return p / "data" / "segments" / name


def _edit_json(path: Path, change: Callable[[dict], None]) -> None:
    """Change a JSON file, written back the way the exporter writes it."""
    obj = json.loads(path.read_bytes())
    change(obj)
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True) + "\n",
                    encoding="utf-8")


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, (path, old)
    path.write_text(text.replace(old, new), encoding="utf-8")


def _manifest_line(p: Path, manifest: str, listed: str) -> str:
    lines = (p / manifest).read_text(encoding="utf-8").splitlines(keepends=True)
    [line] = [x for x in lines if x.rstrip("\n").endswith(" " + listed)]
    return line


def _change_digest(p: Path, manifest: str, listed: str) -> None:
    """Another (well-formed) digest for one entry of a payload or tag manifest."""
    line = _manifest_line(p, manifest, listed)
    digest, _, rest = line.partition(" ")
    _replace(p / manifest, line, ("0" if digest[0] != "0" else "1") + digest[1:] + " " + rest)


def _on(change: Callable[..., None], *args: str) -> Callable[[Path], None]:
    return lambda p: change(p, *args)


def _flip_segment(p: Path, name: str) -> None:
    _flip(_seg(p, name))


def _remove(p: Path, name: str) -> None:
    (p / name).unlink()


def _swap_names(p: Path) -> None:
    a, b = _seg(p, SEGS[0]), _seg(p, SEGS[1])
    tmp = a.with_name("x")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)


def _clip(change: Callable[[dict], None]) -> Callable[[Path], None]:
    return lambda p: _edit_json(p / "data" / "clip.json", change)


def _reorder(c: dict) -> None:
    c["segments"] = [SEGS[1], SEGS[0], SEGS[2]]


def _drop_middle(p: Path) -> None:
    _edit_json(p / "data" / "clip.json", lambda c: c.__setitem__("segments",
                                                                 [SEGS[0], SEGS[2]]))
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


def _foreign_keyring(p: Path) -> None:
    ring = new_keyring(KeyPair.generate().public)
    _edit_json(p / "data" / "keys" / "keyring.json", lambda d: (d.clear(),
                                                                  d.update(ring.to_dict())))


def _flip_signature(p: Path) -> None:
    """Another signature of the same form on clip.json (one hex digit changed)."""
    path = p / "data" / "clip.sig.json"
    doc = json.loads(path.read_bytes())
    doc["sig"] = ("1" if doc["sig"][0] == "0" else "0") + doc["sig"][1:]
    path.write_bytes(canonical_bytes(doc))


def _drop_manifest_line(manifest: str, listed: str) -> Callable[[Path], None]:
    return lambda p: _replace(p / manifest, _manifest_line(p, manifest, listed), "")


def _same_length(text: str) -> str:
    """Another value of the same length (a size check alone cannot see the change)."""
    return ("y" if text[0] == "x" else "x") + text[1:]


def _set_request(field: str) -> Callable[[dict], None]:
    return lambda c: c["request"].__setitem__(field, _same_length(c["request"][field]))


CLIP = (C.E_BAG_DIGEST_MISMATCH, "data/clip.json")
SIG = (E_SIGNATURE_INVALID, "clip.json")  # the station's signature on clip.json
SEL = (C.E_SELECTION_MISMATCH, "clip.json")  # its segments are not its range's
Expect = set[tuple[str, str | None]]
TAMPERS: dict[str, tuple[Callable[[Path], None], Expect]] = {
    # the segments
    **{f"flip-{name}": (_on(_flip_segment, name), {(E_DIGEST_MISMATCH, name)})
       for name in SEGS},
    "flip-first-byte": (lambda p: _flip(_seg(p, SEGS[2]), 0), {(E_DIGEST_MISMATCH, SEGS[2])}),
    "truncate": (lambda p: os.truncate(_seg(p, SEGS[1]), 1000),
                 {(pkg.E_SIZE_MISMATCH, SEGS[1]), OXUM}),
    "delete": (lambda p: _seg(p, SEGS[1]).unlink(),
               {(pkg.E_MISSING_FILE, f"data/segments/{SEGS[1]}"), OXUM}),
    "extra-segment": (lambda p: shutil.copy(_seg(p, SEGS[0]), _seg(p, "seg00003.mp4")),
                      {(pkg.E_EXTRA_FILE, "data/segments/seg00003.mp4"), OXUM}),
    # clip.json: its order, its fields, the approved request it records
    "reorder": (_clip(_reorder), {(pkg.E_SEGMENT_ORDER, SEGS[0]),
                                  (pkg.E_SEGMENT_GAP, SEGS[2]), CLIP, SIG, SEL}),
    "drop-middle": (_drop_middle, {(pkg.E_SEGMENT_GAP, SEGS[2]), CLIP, OXUM, SIG, SEL,
                                   (pkg.E_MISSING_FILE, f"data/segments/{SEGS[1]}")}),
    "clip-approver": (_clip(_set_request("approved_by")), {CLIP, SIG}),
    "clip-purpose": (_clip(_set_request("purpose")), {CLIP, SIG}),
    "clip-requester": (_clip(_set_request("requested_by")), {CLIP, SIG}),
    "clip-range": (_clip(lambda c: c["range_us"].__setitem__(0, 1)), {CLIP, SIG}),
    "clip-camera-start": (_clip(lambda c: c.__setitem__(
        "camera_start", c["camera_start"].replace("08:31", "08:32"))), {CLIP, SIG}),
    "clip-original": (_clip(lambda c: c["original"].__setitem__(
        "blake3", _same_length(c["original"]["blake3"]))),
        {CLIP, SIG, (pkg.E_ORIGINAL_MISMATCH, "clip.json")}),
    "clip-longer": (_clip(lambda c: c["request"].__setitem__("purpose", "court, amended")),
                    {CLIP, SIG, OXUM}),
    "clip-selection-digest": (_clip(lambda c: c["selection"]["segments"][0].__setitem__(
        "blake3", _same_length(c["selection"]["segments"][0]["blake3"]))), {CLIP, SIG, SEL}),
    "clip-signature": (_flip_signature, {SIG, (C.E_BAG_DIGEST_MISMATCH,
                                               "data/clip.sig.json")}),
    "clip-unsigned": (_on(_remove, "data/clip.sig.json"),
                      {(pkg.E_MISSING_FILE, "data/clip.sig.json"), OXUM,
                       (C.E_CLIP_UNSIGNED, "clip.json")}),
    # the signed manifest, the proofs, the keyring, README.txt
    "edit-manifest-value": (_edit_manifest_value,
                            {(E_SIGNATURE_INVALID, "manifest.json"),
                             (C.E_BAG_DIGEST_MISMATCH, "data/manifest.json")}),
    "edit-manifest-times": (_edit_manifest_times,
                            {(E_SIGNATURE_INVALID, "manifest.json"), OXUM, SEL,
                             (C.E_BAG_DIGEST_MISMATCH, "data/manifest.json")}),
    "pretty-manifest": (_pretty_manifest, {(E_MANIFEST_INVALID, "manifest.json"), OXUM,
                                           (C.E_BAG_DIGEST_MISMATCH, "data/manifest.json")}),
    "tampered-proof": (_tamper_proof, {(E_PROOF_INVALID, SEGS[1]),
                                       (C.E_BAG_DIGEST_MISMATCH, "data/proofs.json")}),
    "proof-of-other-leaf": (_proof_for_other_leaf,
                            {(E_PROOF_INVALID, SEGS[1]),  # a proof of the same length
                             (C.E_BAG_DIGEST_MISMATCH, "data/proofs.json")}),
    "foreign-keyring": (_foreign_keyring,
                        {(C.E_BAG_DIGEST_MISMATCH, "data/keys/keyring.json")}),
    "readme": (lambda p: _replace(p / "data" / "README.txt", "offline", "online!"),
               {(C.E_BAG_DIGEST_MISMATCH, "data/README.txt")}),
    # the bag's own files
    "bagit-version": (lambda p: _replace(p / "bagit.txt", "1.0", "0.97"),
                      {(C.E_BAG_INVALID, "bagit.txt"),
                       (C.E_BAG_DIGEST_MISMATCH, "bagit.txt")}),
    "bag-info": (lambda p: _replace(p / "bag-info.txt", "evidock", "someone"),
                 {(C.E_BAG_DIGEST_MISMATCH, "bag-info.txt")}),
    **{f"digest-in-{m}": (_on(_change_digest, m, "data/clip.json"),
                          {CLIP, (C.E_BAG_DIGEST_MISMATCH, m)})
       for m in ("manifest-sha256.txt", "manifest-sha512.txt")},
    **{f"digest-in-{m}": (_on(_change_digest, m, "bagit.txt"),
                          {(C.E_BAG_DIGEST_MISMATCH, "bagit.txt")})
       for m in ("tagmanifest-sha256.txt", "tagmanifest-sha512.txt")},
    "unlisted-in-manifest": (_drop_manifest_line("manifest-sha512.txt", "data/README.txt"),
                             {(C.E_BAG_UNLISTED, "data/README.txt"),
                              (C.E_BAG_DIGEST_MISMATCH, "manifest-sha512.txt")}),
    "unlisted-in-tagmanifest": (_drop_manifest_line("tagmanifest-sha256.txt", "bag-info.txt"),
                                {(C.E_BAG_UNLISTED, "bag-info.txt")}),
    "manifest-line-garbled": (lambda p: _replace(p / "manifest-sha256.txt", " data/README.txt",
                                                 "data/README.txt"),
                              {(C.E_BAG_INVALID, "manifest-sha256.txt"),
                               (C.E_BAG_UNLISTED, "data/README.txt"),
                               (C.E_BAG_DIGEST_MISMATCH, "manifest-sha256.txt")}),
    # files added or removed anywhere
    "extra-file": (lambda p: (p / "data" / "notes.txt").write_text("added later\n"),
                   {(pkg.E_EXTRA_FILE, "data/notes.txt"), OXUM}),
    "extra-tag-file": (lambda p: (p / "notes.txt").write_text("added later\n"),
                       {(pkg.E_EXTRA_FILE, "notes.txt")}),
    "extra-directory": (lambda p: (p / "data" / "more").mkdir(),
                        {(pkg.E_EXTRA_FILE, "data/more/")}),
    **{f"remove-{name}": (_on(_remove, name), {(pkg.E_MISSING_FILE, name), OXUM})
       for name in ("data/README.txt", "data/clip.json", "data/manifest.json",
                    "data/proofs.json", "data/keys/keyring.json")},
    **{f"remove-{name}": (_on(_remove, name), {(pkg.E_MISSING_FILE, name)})
       for name in ("bagit.txt", "bag-info.txt", "manifest-sha256.txt", "manifest-sha512.txt",
                    "tagmanifest-sha256.txt", "tagmanifest-sha512.txt")},
}


@pytest.fixture(scope="module")
def pem(world: World) -> Path:
    """The station's published key, as `evidock keys export-public` writes it."""
    path = world.root / "station.pem"
    path.write_bytes(world.svc.keys.keyring().current_key.to_pem())
    return path


def _cli_failures(target: Path, pem: Path) -> Expect:
    code, out, _ = verify_offline(target, "--key", str(pem))
    failures = {(f["code"], f["subject"]) for f in out["findings"]
                if not f["code"].startswith("W_")}
    assert code == (1 if failures else 0) and out["ok"] is (not failures), out
    return failures


@pytest.mark.parametrize("case", sorted(TAMPERS))
def test_each_tamper_is_caught_and_named(world: World, package: Path, pem: Path,
                                         case: str) -> None:
    assert world.verify(package) == []
    tamper, expected = TAMPERS[case]
    tamper(package)
    assert _cli_failures(package, pem) == expected
    assert _failures(world.verify(package)) == expected  # the same in-process


# --------------------------------------------------------------------------- issue 19, item 9
#
# An attacker who can rewrite everything but the station's key: drop the last segment,
# make clip.json say so (segments, range, selection), re-make every BagIt manifest and
# the Payload-Oxum. The bag is then consistent, the manifest and proofs still hold for
# the segments left; only the station's signature on clip.json can tell.


def _rebag(p: Path) -> None:
    """Every BagIt file recomputed for the package as it now is (bagit, as anyone can)."""
    rebag(p)


def _drop_last_segment(p: Path) -> None:
    _seg(p, SEGS[2]).unlink()

    def shorter(c: dict) -> None:
        kept = c["selection"]["segments"][:2]
        c["segments"] = [e["name"] for e in kept]
        c["selection"]["segments"] = kept
        c["range_us"] = [c["range_us"][0], kept[-1]["end_us"]]
    _edit_json(p / "data" / "clip.json", shorter)
    proofs = p / "data" / "proofs.json"
    _edit_json(proofs, lambda d: d["proofs"].pop(SEGS[2]))


def _unsigned(p: Path) -> None:
    (p / "data" / "clip.sig.json").unlink()


def _self_signed(p: Path) -> None:
    """clip.json re-signed with the attacker's key, added to the package's keyring."""
    mine = KeyPair.generate()
    clip = (p / "data" / "clip.json").read_bytes()
    (p / "data" / "clip.sig.json").write_bytes(clipsign.sign_clip(clip, mine))
    ring = p / "data" / "keys" / "keyring.json"
    doc = json.loads(ring.read_bytes())
    doc["keys"].append({"alg": "ed25519", "key_id": mine.key_id, "public": mine.public.to_hex()})
    ring.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _approved_by_requester(p: Path) -> None:
    _edit_json(p / "data" / "clip.json", lambda c: c["request"].__setitem__(
        "approved_by", c["request"]["requested_by"]))


REWRITES: dict[str, tuple[list[Callable[[Path], None]], Expect]] = {
    "drop-last-segment": ([_drop_last_segment], {SIG}),
    "drop-last-and-the-signature": ([_drop_last_segment, _unsigned],
                                    {(C.E_CLIP_UNSIGNED, "clip.json"),
                                     (pkg.E_MISSING_FILE, "data/clip.sig.json")}),
    "drop-last-and-sign-it-yourself": ([_drop_last_segment, _self_signed],
                                       {(pkg.E_KEY_MISMATCH, "clip.json")}),
    "approver-is-the-requester": ([_approved_by_requester], {SIG}),
    "selection-without-segment-1": (
        [lambda p: _edit_json(p / "data" / "clip.json", lambda c: c.__setitem__(
            "segments", [SEGS[0], SEGS[2]])), lambda p: _seg(p, SEGS[1]).unlink()],
        {SIG, SEL, (pkg.E_SEGMENT_GAP, SEGS[2])}),
}


@pytest.mark.parametrize("case", sorted(REWRITES))
def test_a_rewritten_and_rebagged_clip_is_caught_by_its_signature(
        world: World, package: Path, pem: Path, case: str) -> None:
    changes, expected = REWRITES[case]
    for change in changes:
        change(package)
    _rebag(package)
    assert bagit.Bag(str(package)).is_valid()  # the bag itself is consistent again
    assert _cli_failures(package, pem) == expected


def test_the_reference_tool_agrees_a_tampered_bag_is_invalid(full_package: Path,
                                                             tmp_path: Path) -> None:
    """bagit-python's full validation as a second opinion: the untouched package passes,
    a changed clip.json (the same size: bagit's fast mode would pass it) fails."""
    assert bagit.Bag(str(full_package)).is_valid()
    copy = tmp_path / "copy"
    shutil.copytree(full_package, copy)
    _clip(_set_request("approved_by"))(copy)
    assert bagit.Bag(str(copy)).is_valid(fast=True)
    with pytest.raises(bagit.BagValidationError):
        bagit.Bag(str(copy)).validate()


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
        (C.E_BAG_DIGEST_MISMATCH, "data/manifest.json"), OXUM, SEL,
        (C.E_DERIVATIVE_MISMATCH, "derivative.json"),  # its sources are not that manifest's
    }


def test_wrong_key_is_named(world: World, package: Path) -> None:
    stranger = KeyPair.generate().public
    found = pkg.verify_package(package, trusted={stranger.key_id: stranger})
    assert _failures(found) == {(pkg.E_KEY_MISMATCH, "manifest.json"),
                                (pkg.E_KEY_MISMATCH, "clip.json"),
                                (pkg.E_KEY_MISMATCH, "derivative/derivative.json")}


@pytest.fixture(scope="module")
def center_package(world: World) -> tuple[Path, PublicKey]:
    """A package made as the center makes one (records/centralexports.py): the station's
    manifest and keyring, clip.json and the derivative signed by another service's key,
    which clip.json names as the exporter; and that key."""
    from archive.keystore import StationKeys
    from records.clipsource import StoreSource

    center = StationKeys(directory=world.root / "center-keys")
    center.init()
    writer = Exporter(store=world.svc.store, catalog=world.svc.catalog, keys=center,
                      clock=world.svc.clock, station_id="center")
    writer.exported_by = "center"
    rec, rendition, segs = world.svc.catalog.rendered(world.long.id)
    assert rendition is not None and rendition.manifest_blake3 is not None
    source = StoreSource(store=world.svc.store, rec=rec, rendition=rendition, segments=segs,
                         keyring=world.svc.keys.keyring(), manifest_bytes=world.svc.store
                         .path_for(rendition.manifest_blake3).read_bytes())
    out = world.root / "center-made"
    writer.stage_from(source, start_us=0, end_us=12_000_000, at=out,
                      destination=out, actor="test", provenance=PROVENANCE)
    return out, center.load().public


def test_a_center_package_needs_the_station_key_and_the_center_key_each_in_its_role(
        world: World, center_package: tuple[Path, PublicKey]) -> None:
    out, center = center_package
    clip = json.loads((out / "data" / "clip.json").read_bytes())
    assert clip["exporter"] == {"role": "center", "id": "center", "key_id": center.key_id,
                                "keyring": "keys/exporter.json"}
    both = pkg.verify_package(out, trusted=world.trusted(), center={center.key_id: center})
    assert without_pending(both) == []
    # Without --center-key the package's own copy of the center's keys is used: a warning.
    assert [(f.code, f.subject) for f in without_pending(
        pkg.verify_package(out, trusted=world.trusted()))] == [
        (Code.W_KEY_UNTRUSTED, "keys/exporter.json")]
    stranger = KeyPair.generate().public
    assert _failures(pkg.verify_package(out, trusted=world.trusted(),
                                        center={stranger.key_id: stranger})) == {
        (pkg.E_KEY_MISMATCH, "clip.json"),
        (pkg.E_KEY_MISMATCH, "derivative/derivative.json")}
    # The center's key cannot stand for the station's manifest, nor the station's for
    # the center's claims.
    assert _failures(pkg.verify_package(out, trusted={center.key_id: center},
                                        center=world.trusted())) == {
        (pkg.E_KEY_MISMATCH, "manifest.json"), (pkg.E_KEY_MISMATCH, "clip.json"),
        (pkg.E_KEY_MISMATCH, "derivative/derivative.json")}


def test_a_center_key_given_for_a_station_s_own_package_is_named(world: World,
                                                                  package: Path) -> None:
    stranger = KeyPair.generate().public
    found = pkg.verify_package(package, trusted=world.trusted(),
                               center={stranger.key_id: stranger})
    assert _failures(found) == {(pkg.E_KEY_MISMATCH, "clip.json")}


def test_foreign_keyring_in_the_package_is_caught(world: World, package: Path) -> None:
    _foreign_keyring(package)
    assert _failures(pkg.verify_package(package)) == {
        (E_KEY_UNKNOWN, "manifest.json"), (E_KEY_UNKNOWN, "clip.json"),
        (E_KEY_UNKNOWN, "derivative/derivative.json"),
        (C.E_BAG_DIGEST_MISMATCH, "data/keys/keyring.json")}
    # With the published key the signature holds; the changed file is still named.
    assert _failures(world.verify(package)) == {
        (C.E_BAG_DIGEST_MISMATCH, "data/keys/keyring.json")}


def test_several_tampers_are_all_reported(world: World, package: Path, pem: Path) -> None:
    _flip(_seg(package, SEGS[0]))
    _seg(package, SEGS[2]).unlink()
    (package / "data" / "notes.txt").write_text("added later\n")
    _tamper_proof(package)
    _replace(package / "data" / "README.txt", "offline", "online!")
    assert _cli_failures(package, pem) == {
        (E_DIGEST_MISMATCH, SEGS[0]),
        (pkg.E_MISSING_FILE, f"data/segments/{SEGS[2]}"),
        (pkg.E_EXTRA_FILE, "data/notes.txt"),
        (E_PROOF_INVALID, SEGS[1]),
        (C.E_BAG_DIGEST_MISMATCH, "data/proofs.json"),
        (C.E_BAG_DIGEST_MISMATCH, "data/README.txt"),
        OXUM,
    }
    with pytest.raises(bagit.BagValidationError):
        bagit.Bag(str(package)).validate()


def test_a_bag_digest_mismatch_names_each_manifest_and_both_digests(
        world: World, package: Path) -> None:
    _replace(package / "data" / "README.txt", "offline", "online!")
    [found] = [f for f in world.verify(package) if f.code == C.E_BAG_DIGEST_MISMATCH]
    assert set(found.details["manifests"]) == {"manifest-sha256.txt", "manifest-sha512.txt"}
    sha512 = found.details["manifests"]["manifest-sha512.txt"]
    assert sha512["actual"] == hashlib.sha512(
        (package / "data" / "README.txt").read_bytes()).hexdigest()
    assert sha512["expected"] != sha512["actual"] and len(sha512["expected"]) == 128


def test_a_directory_that_is_no_package_is_named(tmp_path: Path, pem: Path) -> None:
    assert _failures(pkg.verify_package(tmp_path)) == {(pkg.E_PACKAGE_MISSING, str(tmp_path))}
    assert _cli_failures(tmp_path, pem) == {(pkg.E_PACKAGE_MISSING, str(tmp_path))}


# --------------------------------------------------------------------------- case exports
#
# A case export is NN-<recording>/ packages plus request.json, which no bag covers: each
# of its claims must be one the packages' clip.json make under their digests.

CASE = "邵城管罚〔2019〕第002号"


@pytest.fixture(scope="module")
def case_export(world: World) -> Path:
    """A real case export run through the export desk: two linked ranges, two packages."""
    svc, gate = world.svc, world.svc.gate()
    cases = svc.cases()
    cases.create(gate.by_name("clerk"), number=CASE, case_type="行政处罚", unit="城东中队")
    for rec, start, end in ((world.long, 0, 4_000_000), (world.short, None, None)):
        cases.link(gate.by_name("clerk"), CASE, rec.id, stage="调查取证", reason="现场取证",
                   start_us=start, end_us=end)
    desk = svc.exports()
    rid = desk.request(gate.by_name("inspector"), case=CASE, purpose="行政复议",
                       recipient="复议机关").id
    desk.approve(gate.by_name("legal"), rid, reason="依法提供")
    out = world.root / "case"
    packages = desk.run(gate.by_name("inspector"), rid, out=out)
    assert [p.path.name for p in packages] == [f"01-{world.long.id}", f"02-{world.short.id}"]
    return out


@pytest.fixture
def case_copy(case_export: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "case"
    shutil.copytree(case_export, dest)
    return dest


def _request(change: Callable[[dict], None]) -> Callable[[Path], None]:
    return lambda p: _edit_json(p / "request.json", change)


def _first(p: Path) -> str:
    return sorted(d.name for d in p.iterdir() if d.is_dir())[0]


REQ = (C.E_REQUEST_MISMATCH, "request.json")
CASE_TAMPERS: dict[str, tuple[Callable[[Path], None], Callable[[Path], Expect]]] = {
    "purpose": (_request(lambda r: r.__setitem__("purpose", "行政诉讼")), lambda _: {REQ}),
    "approver": (_request(lambda r: r.__setitem__("approved_by", "inspector")),
                 lambda _: {REQ}),
    "skipped": (_request(lambda r: r["skipped"].append("a link that was never skipped")),
                lambda _: {REQ}),
    "added-field": (_request(lambda r: r.__setitem__("note", "added")), lambda _: {REQ}),
    "removed-field": (_request(lambda r: r.pop("recipient")), lambda _: {REQ}),
    "package-range": (_request(lambda r: r["packages"][0].__setitem__("range_us", [0, 1])),
                      lambda _: {REQ}),
    "package-segments": (_request(lambda r: r["packages"][0]["segments"].append("x.mp4")),
                         lambda _: {REQ}),
    "package-export-id": (_request(lambda r: r["packages"][1].__setitem__("export_id", "x")),
                          lambda _: {REQ}),
    "package-link": (_request(lambda r: r["packages"][1].__setitem__("link_id", 999)),
                     lambda _: {REQ}),
    "package-unlisted": (_request(lambda r: r["packages"].pop()),
                         lambda p: {(C.E_EXTRA_FILE, sorted(
                             d.name for d in p.iterdir() if d.is_dir())[1] + "/")}),
    "package-removed": (lambda p: shutil.rmtree(p / _first(p)),
                        lambda p: {(C.E_MISSING_FILE, _removed(p) + "/")}),
    "extra-file": (lambda p: (p / "notes.txt").write_text("x"),
                   lambda _: {(C.E_EXTRA_FILE, "notes.txt")}),
    "clip-inside-a-package": (  # request.json no longer agrees with it either
        lambda p: _clip(_set_request("approved_by"))(p / _first(p)),
        lambda p: {(C.E_BAG_DIGEST_MISMATCH, f"{_first(p)}/data/clip.json"), REQ,
                   (E_SIGNATURE_INVALID, f"{_first(p)}/clip.json")}),
    "both-sides-agree": (  # clip.json and request.json changed alike: the bag still sees it
        lambda p: (_clip(lambda c: c["request"].__setitem__("purpose", "行政诉讼"))(
            p / _first(p)), _request(lambda r: r.__setitem__("purpose", "行政诉讼"))(p)),
        lambda p: {(C.E_BAG_DIGEST_MISMATCH, f"{_first(p)}/data/clip.json"), REQ,
                   (E_SIGNATURE_INVALID, f"{_first(p)}/clip.json")}),
    # A whole package dropped with its line in request.json: each remaining package's
    # signed clip.json still names it among the request's items.
    "package-dropped-with-its-line": (
        lambda p: _drop_package(p, edit_items=False),
        lambda p: {(C.E_MISSING_FILE, _dropped(p) + "/")}),
    "package-dropped-items-rewritten": (
        lambda p: _drop_package(p, edit_items=True),
        lambda p: {(C.E_MISSING_FILE, _dropped(p) + "/"), REQ}),
}


def _drop_package(p: Path, *, edit_items: bool) -> None:
    """Remove the last package, its line in request.json and (maybe) its item."""
    request = json.loads((p / "request.json").read_bytes())
    gone = request["packages"].pop()["dir"]
    if edit_items:
        request["items"] = [i for i in request["items"] if i["dir"] != gone]
    (p / "request.json").write_text(json.dumps(request, ensure_ascii=False, indent=2,
                                               sort_keys=True) + "\n", encoding="utf-8")
    shutil.rmtree(p / gone)
    (p.parent / "dropped.txt").write_text(gone, encoding="utf-8")


def _dropped(p: Path) -> str:
    return (p.parent / "dropped.txt").read_text(encoding="utf-8")


def _removed(p: Path) -> str:
    listed = [d["dir"] for d in json.loads((p / "request.json").read_bytes())["packages"]]
    return next(n for n in listed if not (p / n).exists())


@pytest.mark.parametrize("case", sorted(CASE_TAMPERS))
def test_each_case_export_tamper_is_named(world: World, case_copy: Path, pem: Path,
                                          case: str) -> None:
    assert _cli_failures(case_copy, pem) == set()
    tamper, expected = CASE_TAMPERS[case]
    tamper(case_copy)
    assert _cli_failures(case_copy, pem) == expected(case_copy)


def test_every_request_field_is_vouched_for_by_the_packages(case_export: Path) -> None:
    request = json.loads((case_export / "request.json").read_bytes())
    for item in request["packages"]:
        clip = json.loads((case_export / item["dir"] / "data" / "clip.json").read_bytes())
        assert {k: v for k, v in clip["request"].items() if k != "link_id"} == {
            k: v for k, v in request.items() if k != "packages"}
        assert item["link_id"] == clip["request"]["link_id"] is not None


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
