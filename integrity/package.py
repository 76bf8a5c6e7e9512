"""Clip packages: the layout, and the offline verifier.

A clip package is a BagIt 1.0 bag (RFC 8493)::

    bagit.txt  bag-info.txt  manifest-sha256.txt  manifest-sha512.txt  tagmanifest-*.txt
    data/README.txt            how to verify (zh/en)
    data/clip.json             what was exported: recording, original digests, range, segments
    data/manifest.json         the station-signed rendition manifest (canonical bytes)
    data/proofs.json           an RFC 6962 inclusion proof per exported segment
    data/keys/keyring.json     the station's public keys
    data/segments/segNNNNN.*   the segments, byte-identical to the archive's

The verifier reads only the paths under the directory handed to it and reports every
finding, cheapest first: presence, layout, sizes, digests, proofs, signature, key,
original digests, order and continuity.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import blake3

from integrity import manifest as mf
from integrity import merkle
from integrity.codes import Code
from integrity.errors import EvidockError, ManifestInvalid
from integrity.findings import E_DIGEST_MISMATCH, E_KEY_UNKNOWN, E_PROOF_INVALID, Finding
from integrity.keys import Keyring, PublicKey

BAGIT_TXT = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
FIXED_DATA = ("README.txt", "clip.json", "manifest.json", "proofs.json", "keys/keyring.json")
BAG_ALGOS = ("sha256", "sha512")
CLIP_FORMAT = "evidock-clip/1"

E_PACKAGE_MISSING = Code.E_PACKAGE_MISSING
E_PACKAGE_INVALID = Code.E_PACKAGE_INVALID
E_MISSING_FILE = Code.E_MISSING_FILE
E_EXTRA_FILE = Code.E_EXTRA_FILE
E_SIZE_MISMATCH = Code.E_SIZE_MISMATCH
E_SEGMENT_UNKNOWN = Code.E_SEGMENT_UNKNOWN
E_SEGMENT_ORDER = Code.E_SEGMENT_ORDER
E_SEGMENT_GAP = Code.E_SEGMENT_GAP
E_ORIGINAL_MISMATCH = Code.E_ORIGINAL_MISMATCH
E_KEY_MISMATCH = Code.E_KEY_MISMATCH
W_KEY_UNTRUSTED = Code.W_KEY_UNTRUSTED


def blake3_file(path: Path) -> str:
    """BLAKE3 of a file via mmap with all cores (the fastest path blake3 offers)."""
    if path.stat().st_size == 0:
        return str(blake3.blake3().hexdigest())
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    hasher.update_mmap(path)
    return str(hasher.hexdigest())


def _read_json(path: Path, findings: list[Finding]) -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        findings.append(Finding(E_PACKAGE_MISSING, "required file is missing", str(path.name)))
    except ValueError as exc:
        findings.append(Finding(E_PACKAGE_INVALID, f"not valid JSON: {exc}", str(path.name)))
    return None


class _Check:
    """One verification run over one package directory."""

    def __init__(self, root: Path, trusted: Mapping[str, PublicKey] | None) -> None:
        self.root = root
        self.data = root / "data"
        self.trusted = trusted
        self.findings: list[Finding] = []

    def add(self, code: Code, message: str, subject: str | None = None, **details: Any) -> None:
        self.findings.append(Finding(code, message, subject, details))

    def run(self) -> list[Finding]:
        if not (self.root / "bagit.txt").is_file() or not self.data.is_dir():
            self.add(E_PACKAGE_MISSING, "not a clip package (no bagit.txt or data/)",
                     str(self.root))
            return self.findings
        clip = _read_json(self.data / "clip.json", self.findings)
        proofs = _read_json(self.data / "proofs.json", self.findings)
        signed = self._load_manifest()
        listed = self._listed_segments(clip)
        self._check_files(listed)
        if signed is not None:
            entries = self._match_entries(signed.manifest, listed)
            self._check_sizes_and_digests(entries)
            self._check_proofs(signed.manifest, entries, proofs)
            self._check_signature(signed)
            self._check_original(signed.manifest, clip)
            self._check_order(entries)
        return self.findings

    def _load_manifest(self) -> mf.SignedManifest | None:
        try:
            return mf.load_signed((self.data / "manifest.json").read_bytes())
        except FileNotFoundError:
            self.add(E_PACKAGE_MISSING, "required file is missing", "manifest.json")
        except EvidockError as exc:
            self.findings.append(Finding.from_error(exc, "manifest.json"))
        return None

    def _listed_segments(self, clip: Any) -> list[str]:
        names = clip.get("segments") if isinstance(clip, dict) else None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            if clip is not None:
                self.add(E_PACKAGE_INVALID, "clip.json has no 'segments' list", "clip.json")
            return []
        for name in names:
            if "/" in name or name.startswith("."):
                self.add(E_PACKAGE_INVALID, "segment name is not a plain file name", name)
        return [n for n in names if "/" not in n and not n.startswith(".")]

    def _check_files(self, listed: list[str]) -> None:
        expected = set(FIXED_DATA) | {f"segments/{n}" for n in listed}
        present = {str(p.relative_to(self.data)) for p in self.data.rglob("*")
                   if p.is_file() or p.is_symlink()}
        for name in sorted(expected - present):
            self.add(E_MISSING_FILE, "file listed by the package is missing", name)
        for name in sorted(present - expected):
            self.add(E_EXTRA_FILE, "file not part of the package", name)
        for name in sorted(present):
            if (self.data / name).is_symlink():
                self.add(E_PACKAGE_INVALID, "symbolic links are not allowed", name)
        bagged = self._bag_manifest_names()
        for name in sorted(present - bagged):
            self.add(E_EXTRA_FILE, "file not listed in the BagIt manifest", name)

    def _bag_manifest_names(self) -> set[str]:
        names: set[str] = set()
        for algo in BAG_ALGOS:
            path = self.root / f"manifest-{algo}.txt"
            if not path.is_file():
                self.add(E_PACKAGE_MISSING, "BagIt payload manifest is missing", path.name)
                continue
            for line in path.read_text(encoding="utf-8").splitlines():
                _, _, name = line.partition(" ")
                names.add(name.strip().removeprefix("data/"))
        return names

    def _match_entries(self, manifest: mf.Manifest, listed: list[str],
                       ) -> list[mf.SegmentEntry]:
        by_name = {e.name: e for e in manifest.entries()}
        found = []
        for name in listed:
            entry = by_name.get(name)
            if entry is None:
                self.add(E_SEGMENT_UNKNOWN, "segment is not in the signed manifest", name)
            else:
                found.append(entry)
        return found

    def _check_sizes_and_digests(self, entries: list[mf.SegmentEntry]) -> None:
        sized = []
        for e in entries:
            path = self.data / "segments" / e.name
            if not path.is_file():
                continue
            size = path.stat().st_size
            if size != e.size:
                self.add(E_SIZE_MISMATCH, f"size {size} != {e.size} in the manifest", e.name,
                         expected=e.size, actual=size)
            else:
                sized.append((e, path))
        for e, path in sized:
            actual = blake3_file(path)
            if actual != e.blake3:
                self.add(E_DIGEST_MISMATCH, "BLAKE3 differs from the signed manifest", e.name,
                         expected=e.blake3, actual=actual)

    def _check_proofs(self, manifest: mf.Manifest, entries: list[mf.SegmentEntry],
                      proofs: Any) -> None:
        table = proofs.get("proofs") if isinstance(proofs, dict) else None
        if not isinstance(table, dict):
            if proofs is not None:
                self.add(E_PACKAGE_INVALID, "proofs.json has no 'proofs' object", "proofs.json")
            return
        root = bytes.fromhex(manifest.merkle_root)
        for e in entries:
            try:
                proof = merkle.InclusionProof.from_dict(table[e.name])
                if proof.leaf_index != e.index:
                    raise ValueError(f"proof is for leaf {proof.leaf_index}, not {e.index}")
                merkle.verify_inclusion(merkle.leaf_hash(e.digest), proof, root)
            except (KeyError, ValueError, TypeError, EvidockError) as exc:
                self.add(E_PROOF_INVALID, f"inclusion proof does not hold: {exc}", e.name)

    def _keys(self) -> Mapping[str, PublicKey]:
        if self.trusted is not None:
            return self.trusted
        try:
            raw = json.loads((self.data / "keys" / "keyring.json").read_bytes())
            return Keyring.from_dict(raw).by_id()
        except (OSError, ValueError, EvidockError) as exc:
            self.add(E_PACKAGE_INVALID, f"keyring unusable: {exc}", "keys/keyring.json")
            return {}

    def _check_signature(self, signed: mf.SignedManifest) -> None:
        found = mf.verify_signed_manifest(signed, self._keys(), "manifest.json")
        if self.trusted is not None:
            found = [Finding(E_KEY_MISMATCH, "manifest was not signed by the given key",
                             f.subject, f.details) if f.code == E_KEY_UNKNOWN else f
                     for f in found]
        elif not found:
            self.add(W_KEY_UNTRUSTED, "signature holds against the key shipped in the package;"
                     " pass --key with the station's published key to trust it",
                     "keys/keyring.json", key_id=signed.key_id)
        self.findings.extend(found)

    def _check_original(self, manifest: mf.Manifest, clip: Any) -> None:
        claimed = clip.get("original") if isinstance(clip, dict) else None
        signed = [o.to_dict() for o in manifest.originals]
        if not isinstance(claimed, dict) or claimed not in signed:
            self.add(E_ORIGINAL_MISMATCH, "clip.json's original is not the one the manifest"
                     " signs", "clip.json", claimed=claimed, signed=signed)

    def _check_order(self, entries: list[mf.SegmentEntry]) -> None:
        media = [e for e in entries if e.end_us > e.start_us]
        for prev, cur in zip(media, media[1:], strict=False):
            if cur.index <= prev.index:
                self.add(E_SEGMENT_ORDER, f"segment {cur.index} listed after {prev.index}",
                         cur.name)
            elif cur.index != prev.index + 1 or cur.start_us != prev.end_us:
                self.add(E_SEGMENT_GAP, f"segments {prev.index}..{cur.index} are not"
                         " contiguous", cur.name)


def verify_package(root: Path, *, trusted: Mapping[str, PublicKey] | None = None,
                   ) -> list[Finding]:
    """Every finding for the clip package at ``root`` (empty: it holds)."""
    return _Check(root, trusted).run()


def is_failure(finding: Finding) -> bool:
    return not finding.code.startswith("W_")


def bag_manifest_lines(digests: Mapping[str, str]) -> bytes:
    """A BagIt manifest body: '<digest> <path>' lines, sorted by path."""
    return "".join(f"{d} {p}\n" for p, d in sorted(digests.items())).encode("utf-8")


def relpath(root: Path, path: Path) -> str:
    return os.path.relpath(path, root).replace(os.sep, "/")


__all__ = ["ManifestInvalid", "verify_package"]
