"""Clip packages: the layout, and the offline verifier.

A clip package is a BagIt 1.0 bag (RFC 8493)::

    bagit.txt  bag-info.txt  manifest-sha256.txt  manifest-sha512.txt  tagmanifest-*.txt
    data/README.txt            how to verify (zh/en)
    data/clip.json             what was exported: recording, original digests, range,
                               segments with their digests, the approved request
    data/clip.sig.json         the station's signature on clip.json's exact bytes
    data/manifest.json         the station-signed rendition manifest (canonical bytes)
    data/proofs.json           an RFC 6962 inclusion proof per exported segment
    data/keys/keyring.json     the station's public keys
    data/segments/segNNNNN.*   the segments, byte-identical to the archive's

A case export is a directory of such packages (``NN-<recording>/``) and a
``request.json`` that lists them. :func:`verify_package` takes either. It reads nothing
but regular files inside the directory handed to it (:mod:`integrity.safefs`), checks
every file against a digest (:mod:`integrity.bag`) and every claim against the signed
manifest (:mod:`integrity.clipcheck`), and reports every finding, cheapest first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import blake3
from cryptography import x509

from integrity import bag, caseexport, clipcheck, redactcheck
from integrity.codes import Code
from integrity.errors import KeyError_, ManifestInvalid
from integrity.findings import Finding
from integrity.keys import PublicKey
from integrity.safefs import PackageDir, Refused, read_named_file

BAGIT_TXT = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
FIXED_DATA = clipcheck.FIXED_DATA
BAG_ALGOS = bag.BAG_ALGOS
CLIP_FORMAT = "evidock-clip/2"  # /2: clip.json is signed (data/clip.sig.json)
MAX_KEY_FILE = 64 << 10  # a PEM public key is a few hundred bytes
#: In a package the center made: the center's public keys (clip.json "exporter" names
#: it); keys/keyring.json stays the station's, whose key signs the manifest.
EXPORTER_KEYRING = clipcheck.EXPORTER_KEYRING

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
    """BLAKE3 of a file of our own store via mmap with all cores (the fastest path blake3
    offers). Never for a package: those are read through :mod:`integrity.safefs`."""
    if path.stat().st_size == 0:
        return str(blake3.blake3().hexdigest())
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    hasher.update_mmap(path)
    return str(hasher.hexdigest())


def verify_package(root: Path, *, trusted: Mapping[str, PublicKey] | None = None,
                   tsa_roots: tuple[x509.Certificate, ...] | None = None,
                   attested: list[dict[str, Any]] | None = None,
                   center: Mapping[str, PublicKey] | None = None) -> list[Finding]:
    """Every finding for the clip package (or case export) at ``root`` (empty: it holds).

    ``trusted``: the station's published keys; without them the package's own keyring
    is used and ``W_KEY_UNTRUSTED`` says so. ``tsa_roots``: the TSA roots the timestamp
    tokens must chain to (None: ``W_TIMESTAMP_UNTRUSTED``); ``attested`` receives each
    token's attested time beside the claimed one. ``center``: the keys of the center
    that made the package (``--center-key``; its statements must carry one of them, the
    manifest still the station's). Never raises for bad or hostile input.
    """
    try:
        pkg = PackageDir.open(root)
    except Refused as refused:
        return [refused.finding]
    with pkg:
        try:
            top = pkg.walk(levels=0)
            if caseexport.is_case_export(top):
                check: caseexport.CaseExportCheck | clipcheck.PackageCheck = \
                    caseexport.CaseExportCheck(pkg, top, trusted, tsa_roots=tsa_roots)
            else:
                whole = pkg.walk()
                if redactcheck.is_redacted(whole):  # 信息公开: a redacted derivative
                    return redactcheck.RedactedCheck(pkg, whole, trusted).run()
                check = clipcheck.PackageCheck(pkg, whole, trusted, tsa_roots=tsa_roots,
                                               center=center)
            found = check.run()
            if attested is not None:
                attested.extend(check.attested)
            return found
        except OSError as exc:  # the system failed us (out of descriptors, I/O): say so
            return [Finding(Code.E_PACKAGE_UNREADABLE, f"verification stopped: {exc}",
                            str(root), {"errno": exc.errno})]


def trusted_key(path: Path) -> tuple[dict[str, PublicKey] | None, list[Finding]]:
    """The station key a person gave (``--key``), by key id. A link, a FIFO or device or
    an oversized file is refused unread: (None, [E_KEY_REFUSED]), and the package's own
    keyring is used. A missing or unreadable file or bad PEM raises ``E_KEY``."""
    try:
        pem = read_named_file(path, MAX_KEY_FILE, code=Code.E_KEY_REFUSED)
    except Refused as refused:
        return None, [refused.finding]
    except OSError as exc:
        raise KeyError_(f"cannot read {path}: {exc.strerror}", path=str(path)) from exc
    public = PublicKey.from_pem(pem)
    return {public.key_id: public}, []


def is_failure(finding: Finding) -> bool:
    return not finding.code.startswith("W_")


def bag_manifest_lines(digests: Mapping[str, str]) -> bytes:
    """A BagIt manifest body: '<digest> <path>' lines, sorted by path."""
    return "".join(f"{d} {p}\n" for p, d in sorted(digests.items())).encode("utf-8")


def relpath(root: Path, path: Path) -> str:
    return os.path.relpath(path, root).replace(os.sep, "/")


__all__ = ["ManifestInvalid", "verify_package"]
