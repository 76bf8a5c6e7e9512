"""A clip package made by someone hostile cannot hang, crash or mislead the verifier.

A real package (real ffmpeg, offload, rendition, export) is copied and booby-trapped:
FIFOs, devices, links in and as the package, a million-deep JSON, a 1 GiB sparse file,
non-UTF-8 text, names that climb out, more files than allowed. Each must come back from
the real CLI (`python -m evidock verify PKG --json`, a plain subprocess: no station) as
a named finding with exit 1 and nothing on stderr. The subprocess timeout is the guard
against a hang: nothing here sleeps.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from evidock_testing import REPO, StepClock, open_services, verify_offline
from sqlmodel import Session

from archive.catalog import Recording
from config import load_settings
from fixtures.camera import media_relpath
from fixtures.media import ClipSpec, encode_clip
from ingest.outcome import OffloadRequest
from integrity import safefs, safejson
from integrity.codes import Code
from integrity.package import verify_package
from integrity.safefs import Refused
from records.package import Exporter

C = Code
SEGS = ("seg00000.mp4", "seg00001.mp4")
OXUM = (C.E_BAG_OXUM, "bag-info.txt")
SIG = (C.E_SIGNATURE_INVALID, "clip.json")  # clip.json's bytes are not the signed ones
UNSIGNED = (C.E_CLIP_UNSIGNED, "clip.json")
SIG_FILE = "data/clip.sig.json"
Expect = set[tuple[str, str | None]]


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A 12 s recording exported whole (two segments), and the station's public key."""
    root = tmp_path_factory.mktemp("hostile")
    start = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    rel = media_relpath("A", serial="ZFY0001", officer="123456", start=start, seq=1,
                        kind="video")
    (root / "camera" / rel).parent.mkdir(parents=True)
    encode_clip(root / "camera" / rel, ClipSpec(duration_s=12.0, height=120),
                creation_time=start)
    svc = open_services(load_settings(environ={"EVIDOCK_HOME": str(root / "home")}),
                        clock=StepClock())
    try:
        report = svc.offloader().run(OffloadRequest(source=root / "camera",
                                                    device_serial="ZFY0001"))
        with Session(svc.catalog.engine) as s:
            rec = s.get(Recording, report.files[0].recording_id)
        assert rec is not None
        svc.renderer().render(rec)
        res = Exporter(store=svc.store, catalog=svc.catalog, keys=svc.keys, clock=svc.clock,
                       station_id=svc.settings.station.id).export(
            rec.id, start="0", end="12", out=root / "pkg", actor="t")
        assert res.segments == SEGS
        (root / "station.pem").write_bytes(svc.keys.keyring().current_key.to_pem())
    finally:
        svc.close()
    yield root / "pkg", root / "station.pem"


@pytest.fixture
def package(station: tuple[Path, Path], tmp_path: Path) -> Path:
    dest = tmp_path / "pkg"
    shutil.copytree(station[0], dest)
    return dest


@pytest.fixture
def pem(station: tuple[Path, Path]) -> Path:
    return station[1]


def failures(target: Path, *args: str, timeout: float = 60) -> Expect:
    """The failing (code, subject) pairs of the real CLI; exit 1 when there are any."""
    code, out, _ = verify_offline(target, *args, timeout=timeout)
    found = {(f["code"], f["subject"]) for f in out["findings"]
             if not f["code"].startswith("W_")}
    assert code == (1 if found else 0) and out["ok"] is (not found), out
    return found


def test_the_untouched_package_holds(package: Path, pem: Path) -> None:
    assert failures(package, "--key", str(pem)) == set()


# --------------------------------------------------------------------------- never opened


def _fifo(p: Path, name: str) -> None:
    (p / name).unlink()
    os.mkfifo(p / name)


def _zero_device(p: Path, name: str) -> None:
    (p / name).unlink()
    os.mknod(p / name, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # what /dev/zero is


def _link(p: Path, name: str, to: str) -> None:
    (p / name).unlink()
    (p / name).symlink_to(to)


def _outside_copy(p: Path, name: str) -> None:
    """A link to an identical copy outside the package: the bytes would even match."""
    outside = p.parent / "outside.bin"
    shutil.copy(p / name, outside)
    _link(p, name, str(outside))


def _on(change: Callable[..., None], *args: str) -> Callable[[Path], None]:
    return lambda p: change(p, *args)


NEVER_OPENED: dict[str, tuple[Callable[[Path], None], Expect]] = {
    # A FIFO where clip.json belongs: opening it to read would block for ever.
    "fifo-clip": (_on(_fifo, "data/clip.json"),
                  {(C.E_PACKAGE_SPECIAL, "data/clip.json"), OXUM}),
    "fifo-segment": (_on(_fifo, f"data/segments/{SEGS[1]}"),
                     {(C.E_PACKAGE_SPECIAL, f"data/segments/{SEGS[1]}"), OXUM}),
    "fifo-bagit": (_on(_fifo, "bagit.txt"), {(C.E_PACKAGE_SPECIAL, "bagit.txt")}),
    "device-segment": (_on(_zero_device, f"data/segments/{SEGS[0]}"),
                       {(C.E_PACKAGE_SPECIAL, f"data/segments/{SEGS[0]}"), OXUM}),
    "device-manifest": (_on(_zero_device, "manifest-sha256.txt"),
                        {(C.E_PACKAGE_SPECIAL, "manifest-sha256.txt")}),
    "link-to-dev-zero": (_on(_link, "data/clip.json", "/dev/zero"),
                         {(C.E_PACKAGE_LINK, "data/clip.json"), OXUM}),
    "link-to-etc": (_on(_link, "data/README.txt", "/etc/passwd"),
                    {(C.E_PACKAGE_LINK, "data/README.txt"), OXUM}),
    "link-to-a-perfect-copy": (_on(_outside_copy, f"data/segments/{SEGS[0]}"),
                               {(C.E_PACKAGE_LINK, f"data/segments/{SEGS[0]}"), OXUM}),
    "link-as-tag-manifest": (_on(_link, "tagmanifest-sha512.txt", "/dev/zero"),
                             {(C.E_PACKAGE_LINK, "tagmanifest-sha512.txt")}),
    # The signature on clip.json: never opened either, and the claims are then unsigned.
    "fifo-clip-signature": (_on(_fifo, SIG_FILE),
                            {(C.E_PACKAGE_SPECIAL, SIG_FILE), OXUM, UNSIGNED}),
    "link-as-clip-signature": (_on(_link, SIG_FILE, "/dev/zero"),
                               {(C.E_PACKAGE_LINK, SIG_FILE), OXUM, UNSIGNED}),
}


@pytest.mark.parametrize("case", sorted(NEVER_OPENED))
def test_links_fifos_and_devices_are_named_and_never_opened(package: Path, pem: Path,
                                                            case: str) -> None:
    if case.startswith("device") and os.geteuid() != 0:
        pytest.skip("mknod needs root (CI runs as root); the link to /dev/zero still runs")
    change, expected = NEVER_OPENED[case]
    change(package)
    assert failures(package, "--key", str(pem), timeout=30) == expected


def test_a_fifo_swapped_in_after_the_listing_cannot_block(package: Path) -> None:
    """The race the listing cannot see: opened O_NONBLOCK, then refused by fstat."""
    with safefs.PackageDir.open(package) as pkg:
        inventory = pkg.walk()
        entry = inventory.file("data/clip.json")
        assert entry is not None
        _fifo(package, "data/clip.json")
        with pytest.raises(Refused) as refused:
            pkg.read(entry, 1 << 20)
    assert refused.value.finding.code == C.E_PACKAGE_UNREADABLE


def test_a_package_directory_that_is_a_link_is_refused(package: Path, pem: Path,
                                                       tmp_path: Path) -> None:
    link = tmp_path / "link-to-pkg"
    link.symlink_to(package)
    assert failures(link, "--key", str(pem)) == {(C.E_PACKAGE_LINK, str(link))}
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    assert failures(dangling, "--key", str(pem)) == {(C.E_PACKAGE_LINK, str(dangling))}


@pytest.mark.parametrize("kind", ["link", "fifo", "directory"])
def test_a_key_file_that_is_no_regular_file_is_refused_unread(package: Path, pem: Path,
                                                              tmp_path: Path,
                                                              kind: str) -> None:
    key = tmp_path / "station.pem"
    if kind == "link":
        key.symlink_to(pem)  # even to the right key: a link is not followed
    elif kind == "fifo":
        os.mkfifo(key)
    else:
        key.mkdir()
    code, out, _ = verify_offline(package, "--key", str(key), timeout=30)
    assert code == 1 and out["ok"] is False
    assert [(f["code"], f["subject"]) for f in out["findings"]] == [
        ("E_KEY_REFUSED", str(key)),
        ("W_KEY_UNTRUSTED", "keys/keyring.json"),  # checked against its own keyring only
        ("W_TIMESTAMP_PENDING", "timestamps.json#manifest.json")]  # the station has no TSA


# --------------------------------------------------------------------------- bounded reads


def _deep_json(p: Path) -> None:
    (p / "data" / "clip.json").write_bytes(b"[" * 100_000 + b"]" * 100_000)


def _sparse(p: Path, name: str) -> None:
    with open(p / name, "r+b") as fh:
        fh.truncate(1 << 30)  # 1 GiB, almost none of it on disk


def _not_utf8(p: Path, name: str) -> None:
    data = (p / name).read_bytes()
    (p / name).write_bytes(data[:10] + b"\xff\xfe" + data[12:])


def _long_line(p: Path) -> None:
    with open(p / "manifest-sha256.txt", "a", encoding="utf-8") as fh:
        fh.write("0" * 64 + " data/" + "x" * 20_000 + "\n")


def _utf16_json(p: Path) -> None:
    """Valid JSON in UTF-16: json.loads(bytes) would quietly accept it."""
    text = (p / "data" / "proofs.json").read_text(encoding="utf-8")
    (p / "data" / "proofs.json").write_bytes(text.encode("utf-16"))


def _duplicate_key(p: Path) -> None:
    clip = p / "data" / "clip.json"
    text = clip.read_text(encoding="utf-8")
    clip.write_text(text.replace('{\n', '{\n  "recording_id": "someone else",\n', 1),
                    encoding="utf-8")


BOUNDED: dict[str, tuple[Callable[[Path], None], Expect]] = {
    "json-100000-deep": (_deep_json, {(C.E_PACKAGE_LIMIT, "data/clip.json"), OXUM, SIG,
                                      (C.E_BAG_DIGEST_MISMATCH, "data/clip.json")}),
    "json-100000-deep-signature": (
        lambda p: (p / SIG_FILE).write_bytes(b"{" + b'"a":{' * 100_000 + b"}" * 100_001),
        {(C.E_PACKAGE_LIMIT, SIG_FILE), OXUM, (C.E_BAG_DIGEST_MISMATCH, SIG_FILE)}),
    "sparse-1GiB-clip-signature": (_on(_sparse, SIG_FILE),
                                   {(C.E_PACKAGE_LIMIT, SIG_FILE), OXUM, UNSIGNED}),
    # A 17 GiB sparse "segment": its size is not the signed one, so it is never read.
    "sparse-17GiB-segment": (lambda p: os.truncate(p / "data" / "segments" / SEGS[1], 17 << 30),
                             {(C.E_SIZE_MISMATCH, SEGS[1]), OXUM}),
    "sparse-1GiB-clip": (_on(_sparse, "data/clip.json"),
                         {(C.E_PACKAGE_LIMIT, "data/clip.json"), OXUM}),
    "sparse-1GiB-bag-info": (_on(_sparse, "bag-info.txt"),
                             {(C.E_PACKAGE_LIMIT, "bag-info.txt")}),
    "sparse-1GiB-manifest": (_on(_sparse, "manifest-sha512.txt"),
                             {(C.E_PACKAGE_LIMIT, "manifest-sha512.txt")}),
    "non-utf8-manifest": (_on(_not_utf8, "manifest-sha256.txt"),
                          {(C.E_PACKAGE_ENCODING, "manifest-sha256.txt"),
                           (C.E_BAG_DIGEST_MISMATCH, "manifest-sha256.txt")}),
    "non-utf8-tag-manifest": (_on(_not_utf8, "tagmanifest-sha256.txt"),
                              {(C.E_PACKAGE_ENCODING, "tagmanifest-sha256.txt")}),
    "non-utf8-bag-info": (_on(_not_utf8, "bag-info.txt"),
                          {(C.E_PACKAGE_ENCODING, "bag-info.txt"),
                           (C.E_BAG_DIGEST_MISMATCH, "bag-info.txt")}),
    "non-utf8-clip": (_on(_not_utf8, "data/clip.json"),
                      {(C.E_PACKAGE_ENCODING, "data/clip.json"), SIG,
                       (C.E_BAG_DIGEST_MISMATCH, "data/clip.json")}),
    "utf16-json": (_utf16_json, {(C.E_PACKAGE_ENCODING, "data/proofs.json"), OXUM,
                                 (C.E_BAG_DIGEST_MISMATCH, "data/proofs.json")}),
    "duplicate-json-key": (_duplicate_key, {(C.E_PACKAGE_INVALID, "data/clip.json"), OXUM, SIG,
                                            (C.E_BAG_DIGEST_MISMATCH, "data/clip.json")}),
    "manifest-line-too-long": (_long_line, {(C.E_PACKAGE_LIMIT, "manifest-sha256.txt"),
                                            (C.E_BAG_DIGEST_MISMATCH, "manifest-sha256.txt")}),
}


@pytest.mark.parametrize("case", sorted(BOUNDED))
def test_oversized_deep_and_undecodable_input_is_named_unread(package: Path, pem: Path,
                                                              case: str) -> None:
    change, expected = BOUNDED[case]
    change(package)
    started = time.monotonic()
    assert failures(package, "--key", str(pem), timeout=30) == expected
    assert time.monotonic() - started < 20  # bounded: a GiB is never read


def test_more_entries_than_allowed_stop_the_listing(package: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(safefs, "MAX_ENTRIES", 40)
    for n in range(50):
        (package / "data" / f"extra{n:02d}.txt").write_bytes(b"x")
    found = verify_package(package)
    limits = [f for f in found if f.code == C.E_PACKAGE_LIMIT]
    assert [(f.subject, f.details) for f in limits] == [("data", {"limit": 40})]


def test_directories_nested_too_deep_are_not_entered(package: Path, pem: Path) -> None:
    deep = package / "data" / "/".join(f"d{n}" for n in range(12))
    deep.mkdir(parents=True)
    (deep / "hidden.txt").write_bytes(b"never listed")
    assert failures(package, "--key", str(pem)) == {
        (C.E_PACKAGE_LIMIT, "data/" + "/".join(f"d{n}" for n in range(8))),
        (C.E_EXTRA_FILE, "data/d0/")}


# --------------------------------------------------------------------------- names


def _manifest_entry(p: Path, manifest: str, path: str) -> None:
    algo = manifest.removeprefix("tag").removeprefix("manifest-").removesuffix(".txt")
    digest = hashlib.new(algo, b"").hexdigest()
    with open(p / manifest, "a", encoding="utf-8") as fh:
        fh.write(f"{digest} {path}\n")


def _segment_name(p: Path, name: str) -> None:
    clip = p / "data" / "clip.json"
    doc = json.loads(clip.read_bytes())
    doc["segments"][0] = name
    clip.write_text(json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True) + "\n",
                    encoding="utf-8")


def _odd_name(p: Path) -> None:
    (p / "data" / os.fsdecode(b"odd\xff\nname.txt")).write_bytes(b"x")


CLIMBING = "data/../../../../etc/passwd"
NAMES: dict[str, tuple[Callable[[Path], None], Expect]] = {
    "dotdot-in-manifest": (_on(_manifest_entry, "manifest-sha256.txt", CLIMBING),
                           {(C.E_PACKAGE_PATH_UNSAFE, "manifest-sha256.txt"),
                            (C.E_BAG_DIGEST_MISMATCH, "manifest-sha256.txt")}),
    "absolute-in-manifest": (_on(_manifest_entry, "manifest-sha512.txt", "/etc/passwd"),
                             {(C.E_PACKAGE_PATH_UNSAFE, "manifest-sha512.txt"),
                              (C.E_BAG_DIGEST_MISMATCH, "manifest-sha512.txt")}),
    "dotdot-in-tag-manifest": (_on(_manifest_entry, "tagmanifest-sha256.txt", "../x"),
                               {(C.E_PACKAGE_PATH_UNSAFE, "tagmanifest-sha256.txt")}),
    "escaped-newline-in-manifest": (
        _on(_manifest_entry, "manifest-sha256.txt", "data/%0A../../x"),
        {(C.E_PACKAGE_PATH_UNSAFE, "manifest-sha256.txt"),
         (C.E_BAG_DIGEST_MISMATCH, "manifest-sha256.txt")}),
    "dotdot-segment-name": (_on(_segment_name, "../../../etc/passwd"),
                            {(C.E_PACKAGE_PATH_UNSAFE, "../../../etc/passwd"), SIG,
                             (C.E_SELECTION_MISMATCH, "clip.json"),
                             (C.E_EXTRA_FILE, f"data/segments/{SEGS[0]}"), OXUM,
                             (C.E_BAG_DIGEST_MISMATCH, "data/clip.json")}),
    "undecodable-file-name": (_odd_name, {(C.E_EXTRA_FILE, "data/odd\\xff\\x0aname.txt"),
                                          OXUM}),
}


@pytest.mark.parametrize("case", sorted(NAMES))
def test_names_that_climb_out_are_named_and_never_opened(package: Path, pem: Path,
                                                         case: str) -> None:
    change, expected = NAMES[case]
    change(package)
    assert failures(package, "--key", str(pem)) == expected


def test_people_see_one_escaped_line_per_finding(package: Path, pem: Path) -> None:
    _odd_name(package)
    _fifo(package, "data/clip.json")
    _, out, _ = verify_offline(package, "--key", str(pem))
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDOCK_")}
    run = subprocess.run([sys.executable, "-m", "evidock", "verify", str(package), "--key",
                          str(pem)], capture_output=True, text=True, encoding="utf-8",
                         timeout=60, env={**env, "PYTHONPATH": str(REPO)}, cwd=REPO)
    assert run.returncode == 1 and run.stderr == ""
    lines = run.stdout.splitlines()
    assert len(lines) == len(out["findings"]) + 1 and lines[-1] == "FAILED: 3 finding(s)"
    assert "E_EXTRA_FILE [data/odd\\xff\\x0aname.txt]: file not part of the package " \
        "(covered by no manifest)" in lines
    assert "E_PACKAGE_SPECIAL [data/clip.json]: not a regular file (FIFO, socket or " \
        "device): never opened" in lines


# --------------------------------------------------------------------------- pieces


@pytest.mark.parametrize(("text", "depth"), [
    ('"[[[["', 0), ("[]", 1), ('{"a": [1, {"b": "]]]"}], "c\\"[": 2}', 3), ("]]]", 0),
    ('"unterminated [[[', 0), ("[" * 40, 40),
])
def test_json_depth_ignores_brackets_inside_strings(text: str, depth: int) -> None:
    assert safejson.json_depth(text) == depth


def test_json_depth_is_linear_on_hostile_text() -> None:
    for text in ('"x\\"' * 1_000_000, "[" * 1_000_000, '""' * 1_000_000):
        started = time.monotonic()
        safejson.json_depth(text)
        assert time.monotonic() - started < 5


@pytest.mark.parametrize(("raw", "code"), [
    (b'{"a": 1, "a": 2}', C.E_PACKAGE_INVALID),
    (b"[NaN]", C.E_PACKAGE_INVALID),
    (b"\xef\xbb\xbf{}", C.E_PACKAGE_INVALID),  # a BOM is not JSON
    ("[1]".encode("utf-32"), C.E_PACKAGE_ENCODING),
    (b"[" * 33 + b"]" * 33, C.E_PACKAGE_LIMIT),
])
def test_untrusted_json_is_refused_with_its_reason(raw: bytes, code: Code) -> None:
    with pytest.raises(Refused) as refused:
        safejson.loads(raw, "x.json")
    assert refused.value.finding.code == code


# --------------------------------------------------------------------------- case exports


@pytest.fixture
def case_export(package: Path, tmp_path: Path) -> Path:
    """A case export around the package: ``01-<recording>/`` and the request.json that
    lists it (the package records no request, so request.json claims none)."""
    clip = json.loads((package / "data" / "clip.json").read_bytes())
    name = f"01-{clip['recording_id']}"
    root = tmp_path / "case"
    root.mkdir()
    package.rename(root / name)
    listed = {"dir": name, "export_id": clip["export_id"], "link_id": None,
              "recording_id": clip["recording_id"], "range_us": clip["range_us"],
              "segments": clip["segments"]}
    (root / "request.json").write_text(json.dumps({"packages": [listed]}), encoding="utf-8")
    return root


def _package_as_link(root: Path) -> str:
    """The package moved outside, a link to it in its place."""
    [inner] = [p for p in root.iterdir() if p.is_dir()]
    outside = root.parent / "outside-package"
    inner.rename(outside)
    inner.symlink_to(outside)
    return inner.name


CASE_HOSTILE: dict[str, tuple[Callable[[Path], object], Callable[[Path, object], Expect]]] = {
    "request-json-fifo": (lambda r: _fifo(r, "request.json"),
                          lambda r, _: {(C.E_PACKAGE_SPECIAL, "request.json"),
                                        (C.E_PACKAGE_MISSING, str(r))}),
    "request-json-link": (lambda r: _link(r, "request.json", "/dev/zero"),
                          lambda r, _: {(C.E_PACKAGE_LINK, "request.json"),
                                        (C.E_PACKAGE_MISSING, str(r))}),
    # request.json unread: the package it would list is then listed by nothing.
    "request-json-deep": (lambda r: (r / "request.json").write_bytes(b"[" * 100_000),
                          lambda r, _: {(C.E_PACKAGE_LIMIT, "request.json"),
                                        (C.E_EXTRA_FILE, f"{_only_dir(r)}/")}),
    "request-json-sparse-1GiB": (lambda r: _sparse(r, "request.json"),
                                 lambda r, _: {(C.E_PACKAGE_LIMIT, "request.json"),
                                               (C.E_EXTRA_FILE, f"{_only_dir(r)}/")}),
    "package-dir-is-a-link": (_package_as_link,
                              lambda r, name: {(C.E_PACKAGE_LINK, str(name)),
                                               (C.E_MISSING_FILE, f"{name}/")}),
}


def _only_dir(root: Path) -> str:
    [inner] = [p.name for p in root.iterdir() if p.is_dir()]
    return inner


@pytest.mark.parametrize("case", sorted(CASE_HOSTILE))
def test_a_hostile_case_export_is_named_never_followed(case_export: Path, pem: Path,
                                                       case: str) -> None:
    assert failures(case_export, "--key", str(pem)) == set()
    change, expected = CASE_HOSTILE[case]
    made = change(case_export)
    started = time.monotonic()
    assert failures(case_export, "--key", str(pem), timeout=30) == expected(case_export, made)
    assert time.monotonic() - started < 20
