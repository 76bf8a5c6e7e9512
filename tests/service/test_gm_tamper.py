"""Tampering with packages of a 国密 (gm) station, each a named finding from the offline
verifier (`evidock verify PKG --key station.pem`, no station around it), and every
finding reported, never only the first. The packages are real: made through the real
service by the real accounts (tests/gm_support.py); each test edits its own copy."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from evidock_testing import verify_offline, without_pending
from gm_support import Made, retag

from integrity import gmbag
from integrity.sm2 import to_der

LAYER = sorted(gmbag.FILES)
GM_LINE = "Evidock-Crypto-Profile: gm\n"
DEFAULT_LINE = "Evidock-Crypto-Profile: default\n"


@pytest.fixture(scope="module")
def stations(gm_made: Made, default_made: Made) -> dict[str, Made]:
    """A gm station and a default one, each with one case export (the session's, from
    tests/gm_support.py: every test here edits its own copy of a package)."""
    return {"gm": gm_made, "default": default_made}


def _copy(made: Made, tmp_path: Path) -> Path:
    dest = tmp_path / made.package.name
    shutil.copytree(made.package, dest)
    return dest


def _findings(package: Path, made: Made) -> list[dict[str, Any]]:
    code, out, _ = verify_offline(package, "--key", str(made.pem))
    found = without_pending(out["findings"])
    assert (code, out["ok"]) == ((1, False) if found else (0, True)), out
    return found


def _named(found: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((f["code"], f["subject"]) for f in found)


def _relabel(package: Path, old: str, new: str) -> None:
    info = package / "bag-info.txt"
    text = info.read_text(encoding="utf-8")
    assert old in text
    info.write_text(text.replace(old, new), encoding="utf-8")


def test_the_untouched_packages_verify(stations: dict[str, Made]) -> None:
    for made in stations.values():
        assert _findings(made.package, made) == []


def test_the_sm3_signature_verifies_under_openssl(stations: dict[str, Made],
                                                  tmp_path: Path) -> None:
    """A recipient with only national-standard tools: OpenSSL checks the SM2 signature
    over the SM3 manifest with the published PEM and the standard signer ID."""
    import json

    pkg, made = stations["gm"].package, stations["gm"]
    sig = json.loads((pkg / gmbag.SIG).read_bytes())
    (tmp_path / "msg").write_bytes(gmbag.CONTEXT + (pkg / gmbag.SM3_MANIFEST).read_bytes())
    (tmp_path / "sig.der").write_bytes(to_der(bytes.fromhex(sig["sig"])))
    openssl = shutil.which("openssl") or pytest.skip("openssl not installed")
    done = subprocess.run([openssl, "pkeyutl", "-verify", "-rawin", "-digest", "sm3",
                           "-pkeyopt", "distid:1234567812345678", "-pubin", "-inkey",
                           str(made.pem), "-in", str(tmp_path / "msg"), "-sigfile",
                           str(tmp_path / "sig.der")], capture_output=True, timeout=30)
    assert done.returncode == 0 and b"Signature Verified Successfully" in done.stdout
    # and every SM3 line is the SM3 of its file, as `openssl dgst -sm3` would say
    for line in (pkg / gmbag.SM3_MANIFEST).read_text().splitlines():
        digest, _, rel = line.partition(" ")
        assert hashlib.new("sm3", (pkg / rel).read_bytes()).hexdigest() == digest, rel


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_flipped_payload_byte_is_named_by_every_manifest(stations: dict[str, Made],
                                                           tmp_path: Path) -> None:
    """index.html is covered by the bag alone: SHA-256, SHA-512 and SM3 all differ."""
    made = stations["gm"]
    pkg = _copy(made, tmp_path)
    _flip(pkg / "data" / "index.html")
    [bag] = _findings(pkg, made)
    assert (bag["code"], bag["subject"]) == ("E_BAG_DIGEST_MISMATCH", "data/index.html")
    assert set(bag["details"]["manifests"]) == {
        "manifest-sha256.txt", "manifest-sha512.txt", "manifest-sm3.txt"}


def test_every_flipped_file_is_reported(stations: dict[str, Made], tmp_path: Path) -> None:
    """A segment (named by its signed BLAKE3, which the bag would only repeat) and the
    index page: both findings, not the first."""
    made = stations["gm"]
    pkg = _copy(made, tmp_path)
    segment = sorted((pkg / "data" / "segments").iterdir())[0]
    _flip(segment)
    _flip(pkg / "data" / "index.html")
    assert _named(_findings(pkg, made)) == [("E_BAG_DIGEST_MISMATCH", "data/index.html"),
                                            ("E_DIGEST_MISMATCH", segment.name)]


def test_an_edited_sm3_manifest_breaks_its_sm2_signature(stations: dict[str, Made],
                                                         tmp_path: Path) -> None:
    """Lines reordered (every digest still true) and the tag manifests recomputed: only
    the SM2 signature over the exact bytes can tell, and does."""
    made = stations["gm"]
    pkg = _copy(made, tmp_path)
    manifest = pkg / gmbag.SM3_MANIFEST
    lines = manifest.read_text().splitlines(keepends=True)
    assert len(lines) > 1
    manifest.write_text("".join(reversed(lines)))
    retag(pkg)
    assert _named(_findings(pkg, made)) == [("E_SIGNATURE_INVALID", gmbag.SIG)]


def test_a_stripped_gm_layer_is_a_profile_finding(stations: dict[str, Made],
                                                  tmp_path: Path) -> None:
    """The SM3 files removed, bag-info.txt relabelled default, the tag manifests
    recomputed: the statement is still signed with SM2, so the label is a lie."""
    made = stations["gm"]
    pkg = _copy(made, tmp_path)
    for name in LAYER:
        (pkg / name).unlink()
    _relabel(pkg, GM_LINE, DEFAULT_LINE)
    retag(pkg)
    found = _findings(pkg, made)
    assert _named(found) == [("E_CRYPTO_PROFILE", "bag-info.txt")]
    assert found[0]["details"]["profile"] == "default"
    assert found[0]["details"]["key_id"] == made.init["key_id"]


def test_the_layer_removed_under_a_gm_label_is_missing_files(stations: dict[str, Made],
                                                             tmp_path: Path) -> None:
    made = stations["gm"]
    pkg = _copy(made, tmp_path)
    for name in LAYER:
        (pkg / name).unlink()
    retag(pkg)
    assert _named(_findings(pkg, made)) == [("E_MISSING_FILE", n) for n in LAYER]


def test_a_default_package_relabelled_gm(stations: dict[str, Made], tmp_path: Path) -> None:
    made = stations["default"]
    pkg = _copy(made, tmp_path)
    _relabel(pkg, DEFAULT_LINE, GM_LINE)
    retag(pkg)
    found = _findings(pkg, made)
    assert _named(found) == sorted([("E_CRYPTO_PROFILE", "bag-info.txt"),
                                    *(("E_MISSING_FILE", n) for n in LAYER)])


def test_a_stripped_case_record_is_a_profile_finding(stations: dict[str, Made],
                                                     tmp_path: Path) -> None:
    """The same strip on the case record of a case export (verified whole)."""
    made = stations["gm"]
    out = tmp_path / "out"
    shutil.copytree(made.out, out)
    case = out / "case"
    for name in LAYER:
        (case / name).unlink()
    _relabel(case, GM_LINE, DEFAULT_LINE)
    retag(case)
    found = _findings(out, made)
    assert [f["code"] for f in found] == ["E_CRYPTO_PROFILE"], found
    assert found[0]["subject"].endswith("bag-info.txt") and "case" in found[0]["subject"]
