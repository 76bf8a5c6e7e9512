"""A redacted (信息公开) package checked offline: integrity/redactcheck.py.

The package is written by the real writer (records/redactpackage.py) from blobs in a
real content store with a real station key (both suites); the redacted file is opaque
bytes here (the pixels are tests/records/test_redact_render.py's). Each tampering a
forger could try after re-bagging is a named finding, and nothing stops at the first.
"""

from __future__ import annotations

import io
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from station_homes import rebag

from archive.keystore import StationKeys
from archive.store import ContentStore
from integrity import redaction as rd
from integrity.digest import copy_and_hash
from integrity.package import verify_package
from records.models import Export
from records.redactpackage import ApprovedRedaction, stage_redacted

AT = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
CLIP = b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 40  # opaque: never decoded here


def _plan() -> rd.Plan:
    return rd.Plan("rec-1", 10_000_000, 40_000_000, 1280, 720, "blur",
                   tracks=(rd.Track("face-1", "auto", ((10_000_000, rd.Box(10, 10, 40, 40)),
                                                       (11_000_000, rd.Box(20, 10, 40, 40)))),),
                   boxes=(rd.Fixed("plate-1", rd.Box(600, 500, 200, 60), 12_000_000,
                                   15_000_000),),
                   audio=(rd.AudioRange("mute", 20_000_000, 22_000_000),))


def _put(store: ContentStore, data: bytes) -> str:
    return store.put(io.BytesIO(data)).blake3


def _package(tmp: Path, profile: str) -> tuple[Path, StationKeys]:
    store, keys = ContentStore(root=tmp / "store"), StationKeys(directory=tmp / "keys")
    key, _ = keys.init(profile=profile)
    out = copy_and_hash(io.BytesIO(CLIP), None)
    doc = rd.statement(plan=_plan(), redaction_id="red-1",
                       sources=[{"name": "seg-000001.mp4", "index": 1, "blake3": "ab" * 32,
                                 "start_us": 10_000_000, "end_us": 20_000_000}],
                       merkle_root="cd" * 32,
                       output={"file": "redacted.mp4", "size": len(CLIP),
                               "blake3": out.blake3, "sha256": out.sha256},
                       render={"tool": "ffmpeg test"}, requested_by="clerk",
                       created_at="2026-12-04T09:00:00Z")
    approved = ApprovedRedaction(
        id="red-1", recording_id="rec-1", rendition_id="rend-1", start_us=10_000_000,
        end_us=40_000_000, output_blake3=_put(store, CLIP), statement_blake3=_put(store, doc),
        signature_blake3=_put(store, rd.sign(doc, key)), approved_by="legal",
        approved_at=AT)
    export = Export(id="exp-1", recording_id="rec-1", rendition_id="rend-1",
                    start_us=10_000_000, end_us=40_000_000, segments=[], destination="x",
                    actor="inspector", purpose="信息公开", created_at=AT)
    at = tmp / "pkg"
    stage_redacted(store=store, keys=keys, approved=approved, export=export, at=at,
                   provenance={"purpose": "信息公开", "approved_by": "supervisor"},
                   station_id="station-1")
    return at, keys


@pytest.fixture(scope="module", params=["default", "gm"])
def made(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, StationKeys]:
    return _package(tmp_path_factory.mktemp(f"redacted-{request.param}"), request.param)


def _codes(root: Path, keys: StationKeys | None = None) -> set[str]:
    trusted = None if keys is None else keys.keyring().by_id()
    return {str(f.code) for f in verify_package(root, trusted=trusted)}


def _copy(made: tuple[Path, StationKeys], tmp_path: Path) -> Path:
    shutil.copytree(made[0], tmp_path / "pkg")
    return tmp_path / "pkg"


def test_the_package_holds_only_the_derivative_and_verifies(
        made: tuple[Path, StationKeys]) -> None:
    root, keys = made
    data = sorted(p.relative_to(root / "data").as_posix()
                  for p in (root / "data").rglob("*") if p.is_file())
    assert data == ["README.txt", "keys/keyring.json", "redacted.mp4", "redaction.json",
                    "redaction.sig.json", "release.json", "release.sig.json"]
    assert _codes(root, keys) == set()
    assert _codes(root) == {"W_KEY_UNTRUSTED"}  # the shipped keyring only
    doc = json.loads((root / "data" / "redaction.json").read_bytes())
    assert doc["label"] == rd.LABEL and doc["plan"]["boxes"][0]["id"] == "plate-1"
    gm = keys.keyring().profile == "gm"
    assert (root / "manifest-sm3.txt").exists() == gm


def test_a_flipped_byte_in_the_clip_is_named_twice(made: tuple[Path, StationKeys],
                                                   tmp_path: Path) -> None:
    root = _copy(made, tmp_path)
    clip = root / "data" / "redacted.mp4"
    raw = bytearray(clip.read_bytes())
    raw[100] ^= 1
    clip.write_bytes(bytes(raw))
    # the bag's digest and the signed statement's both
    assert _codes(root, made[1]) == {"E_BAG_DIGEST_MISMATCH", "E_REDACTION_INVALID"}


def test_a_rebagged_clip_still_differs_from_the_signed_statement(
        made: tuple[Path, StationKeys], tmp_path: Path) -> None:
    root = _copy(made, tmp_path)
    (root / "data" / "redacted.mp4").write_bytes(CLIP + b"unredacted frames")
    rebag(root, StationKeys(directory=made[0].parent / "keys").load())
    assert _codes(root, made[1]) == {"E_REDACTION_INVALID"}


def test_an_edited_plan_or_release_breaks_the_signatures(made: tuple[Path, StationKeys],
                                                         tmp_path: Path) -> None:
    root = _copy(made, tmp_path)
    doc_path, rel_path = root / "data" / "redaction.json", root / "data" / "release.json"
    doc = json.loads(doc_path.read_bytes())
    doc["plan"]["boxes"] = []  # "nothing was hidden there"
    doc_path.write_bytes(json.dumps(doc).encode())
    rel = json.loads(rel_path.read_bytes())
    rel["redaction_id"] = "red-2"
    rel_path.write_bytes(json.dumps(rel).encode())
    rebag(root, StationKeys(directory=made[0].parent / "keys").load())
    found = verify_package(root, trusted=made[1].keyring().by_id())
    assert {(str(f.code), f.subject) for f in found} >= {
        ("E_SIGNATURE_INVALID", "redaction.json"), ("E_SIGNATURE_INVALID", "release.json"),
        ("E_REDACTION_INVALID", "release.json")}


def test_a_missing_signature_and_a_foreign_key_are_named(made: tuple[Path, StationKeys],
                                                         tmp_path: Path) -> None:
    root = _copy(made, tmp_path)
    (root / "data" / "redaction.sig.json").unlink()
    rebag(root, StationKeys(directory=made[0].parent / "keys").load())
    assert {"E_MISSING_FILE", "E_REDACTION_UNSIGNED"} <= _codes(root, made[1])
    other = StationKeys(directory=tmp_path / "other")
    other.init()
    assert "E_KEY_MISMATCH" in _codes(made[0], other)


_PLACES = [("plan",), ("plan", "tracks"), ("plan", "tracks", 0, "samples"),
           ("plan", "tracks", 0, "samples", 0), ("plan", "boxes", 0, "box"),
           ("plan", "frame"), ("plan", "range_us"), ("plan", "audio", 0, "kind"),
           ("plan", "style"), ("output",), ("output", "size"), ("format",)]


@pytest.mark.parametrize("value", [None, [], [[]], "x", 10**30, {"a": [1]}])
def test_a_hostile_statement_is_findings_never_a_crash(made: tuple[Path, StationKeys],
                                                       tmp_path: Path, value: object) -> None:
    """Every place of redaction.json given a value of the wrong shape (re-signed is not
    possible without the key; re-bagged is): findings, never an exception."""
    key = StationKeys(directory=made[0].parent / "keys").load()
    original = json.loads((made[0] / "data" / "redaction.json").read_bytes())
    for n, place in enumerate(_PLACES):
        doc = json.loads(json.dumps(original))
        at = doc
        for step in place[:-1]:
            at = at[step]
        at[place[-1]] = value
        root = tmp_path / f"case{n}"
        shutil.copytree(made[0], root)
        (root / "data" / "redaction.json").write_text(json.dumps(doc), encoding="utf-8")
        rebag(root, key)
        codes = _codes(root, made[1])
        assert "E_SIGNATURE_INVALID" in codes, (place, value, codes)
