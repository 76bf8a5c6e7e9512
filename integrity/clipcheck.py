"""One clip package checked: every file, every digest, every claim, cheapest first.

The order: the listing (links, FIFOs, devices, depth and count bounds), the small files
read once with bounds (tag files, manifests, JSON documents: their bag digests are taken
from the very bytes that are parsed), the bag's declaration, Payload-Oxum and
manifests, the file set (missing, extra, covered by no digest), segment sizes, then one
read of every other file for its SHA-256, SHA-512 and (segments) BLAKE3, then proofs,
signature, key, original digests, order and continuity (the claims checked against
the signed manifest are pure functions in :mod:`integrity.clipclaims`). Every problem is
a finding and the run goes on; nothing here raises for bad evidence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography import x509

from integrity import bag, bundle, clipsign, contents, derivative, gmbag, safejson
from integrity import clipclaims as claims
from integrity import exportercheck as signers
from integrity import manifest as mf
from integrity import timestampcheck as stamps
from integrity.codes import Code
from integrity.errors import EvidockError
from integrity.findings import Finding
from integrity.keys import Keyring, PublicKey
from integrity.safefs import Inventory, Kind, PackageDir, Refused, display

FIXED_DATA = ("README.txt", "clip.json", clipsign.SIG_FILE, "manifest.json", "proofs.json",
              "keys/keyring.json")
#: Written since packages carry the exact-range derivative (clip.json "derivative").
DERIVED_DATA = ("index.html", derivative.DOC, derivative.SIG)
DIRS = ("data", "data/keys", "data/segments", f"data/{derivative.DIR}")
MAX_DOCUMENT = 32 << 20  # JSON documents and README.txt
EXPORTER_KEYRING = signers.EXPORTER_KEYRING  # a center's package: the center's keys
_LIMITS = {**{n: bag.MAX_TAG_FILE for n in ("bagit.txt", "bag-info.txt")},
           **{n: bag.MAX_MANIFEST for n in bag.MANIFEST_NAMES}, gmbag.SIG: gmbag.MAX_SIG,
           **{f"data/{n}": MAX_DOCUMENT for n in (*FIXED_DATA, *DERIVED_DATA, bundle.NAME,
                                                    stamps.NAME, EXPORTER_KEYRING)}}


def looks_like_package(inventory: Inventory) -> bool:
    return inventory.file("bagit.txt") is not None or "data" in inventory.entries


class PackageCheck:
    """One verification run over one opened package directory."""

    def __init__(self, pkg: PackageDir, inventory: Inventory,
                 trusted: Mapping[str, PublicKey] | None, *,
                 tsa_roots: tuple[x509.Certificate, ...] | None = None,
                 center: Mapping[str, PublicKey] | None = None) -> None:
        self.pkg, self.inv, self.trusted = pkg, inventory, trusted
        self.center = center  # --center-key: a center's package's statements
        self.statement: signers.StatementKeys | None = None
        self.tsa_roots = tsa_roots  # None: none given (a token's signer is then a warning)
        #: timestamps.json's tokens: attested time beside the claimed one (for the report)
        self.attested: tuple[dict[str, Any], ...] = ()
        self.findings: list[Finding] = list(inventory.findings)
        self.texts: dict[str, bytes] = {}
        self.unread: set[str] = set()  # refused on reading: never hashed either
        self.expected: set[str] = set()  # the files the package should hold
        self.misfit: set[str] = set()  # segments of the wrong size: not hashed
        self.clip: Any = None
        self.keyring: Mapping[str, PublicKey] | None = None
        self.derived: Any = None  # derivative.json, parsed (None: no derivative)
        self.derived_path: str | None = None  # the derivative clip's path in the bag
        self.derived_digests: Mapping[str, str] | None = None
        self.originals: dict[str, dict[str, Any]] = {}  # clip.json's, by path in the bag
        self.measured: dict[str, Mapping[str, str]] = {}  # originals' digests as read

    def add(self, code: Code, message: str, subject: str | None = None, **details: Any) -> None:
        self.findings.append(Finding(code, message, subject, details))

    def run(self) -> list[Finding]:
        if not looks_like_package(self.inv):
            self.add(Code.E_PACKAGE_MISSING, "not a clip package (no bagit.txt or data/)",
                     str(self.pkg.root))
            return self.findings
        self._read_small_files()
        manifests = self._bag_structure()
        self.clip = self._json("data/clip.json")
        proofs = self._json("data/proofs.json")
        signed = self._load_manifest()
        listed = self._listed_segments(self.clip)
        self._load_derivative()
        self._check_files(listed, manifests)
        entries = self._match_entries(signed.manifest, listed or []) if signed else []
        sized = self._check_sizes(entries)
        self._check_digests(manifests, sized)
        if signed is not None:
            self.findings += claims.proof_findings(signed.manifest, entries, proofs)
            self._check_signature(signed)
            self.findings += claims.original_findings(signed.manifest, self.clip)
            self.findings += claims.order_findings(entries)
            self.findings += claims.selection_findings(signed.manifest, self.clip, listed)
        self._check_clip_signature()
        self._check_profile()
        self.findings += claims.request_item_findings(self.clip)
        self._check_derivative(signed)
        self._check_contents(manifests)
        said = self._said()  # a center's package: the center signed the index only
        self.findings += bundle.in_package(
            self.texts.get(f"data/{bundle.NAME}"), self._keys(),
            trusted=self.trusted is not None,
            index_keys=bundle.IndexKeys(said.known, said.trusted) if said.center else None)
        self._check_timestamps()
        return self.findings

    # ------------------------------------------------------------------ reading

    def _read_small_files(self) -> None:
        self.texts, found = self.pkg.read_present(self.inv, _LIMITS)
        self.unread |= {p for p in _LIMITS if self.inv.file(p) and p not in self.texts}
        self.findings += found

    def _json(self, path: str) -> Any:
        raw = self.texts.get(path)
        if raw is None:
            return None  # missing (the file set says so) or refused (already said)
        try:
            return safejson.loads(raw, path)
        except Refused as refused:
            self.findings.append(refused.finding)
            return None

    def _bag_structure(self) -> list[bag.BagManifest]:
        manifests, found = bag.structure(self.texts, self.inv)
        self.findings += found
        return manifests

    def _load_manifest(self) -> mf.SignedManifest | None:
        raw = self.texts.get("data/manifest.json")
        if raw is None:
            return None
        try:
            safejson.check_text(raw, "data/manifest.json")
            return mf.load_signed(raw)
        except Refused as refused:
            self.findings.append(refused.finding)
        except EvidockError as exc:
            self.findings.append(Finding.from_error(exc, "manifest.json"))
        return None

    # ------------------------------------------------------------------ the file set

    def _listed_segments(self, clip: Any) -> list[str] | None:
        names = clip.get("segments") if isinstance(clip, dict) else None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            if clip is not None:
                self.add(Code.E_PACKAGE_INVALID, "clip.json has no 'segments' list",
                         "clip.json")
            return None
        for name in names:
            if "/" in name or name.startswith(".") or "\0" in name or not name:
                self.add(Code.E_PACKAGE_PATH_UNSAFE, "segment name in clip.json is not a "
                         "plain file name: never opened", display(name))
        return [n for n in names if n and "/" not in n and not n.startswith(".")
                and "\0" not in n]

    def _check_files(self, listed: list[str] | None,
                     manifests: list[bag.BagManifest]) -> None:
        fixed = [n for n in FIXED_DATA if not contents.is_original_only(self.clip)
                 or n not in ("manifest.json", "proofs.json")]
        expected = {*bag.BAG_FILES, *(f"data/{n}" for n in fixed), *self.originals,
                    *gmbag.expected(gmbag.tags_of(self.texts))}
        if contents.is_original_only(self.clip):
            expected.add("data/index.html")
        if isinstance(self.clip, dict) and "derivative" in self.clip:
            expected |= {f"data/{n}" for n in DERIVED_DATA}
            expected |= {self.derived_path} if self.derived_path else set()
        if isinstance(self.clip, dict) and self.clip.get("audit_bundle") == bundle.NAME:
            expected.add(f"data/{bundle.NAME}")  # signed in clip.json: its events
        if isinstance(self.clip, dict) and self.clip.get("timestamps") == stamps.NAME:
            expected.add(f"data/{stamps.NAME}")  # signed in clip.json: its tokens
        if signers.declared(self.clip) is not None:
            expected.add(f"data/{EXPORTER_KEYRING}")  # signed in clip.json: the center's
        if listed is not None:
            expected |= {f"data/segments/{n}" for n in listed}
        else:  # clip.json unusable (already a finding): judge segments by the bag alone
            expected |= {p for m in manifests if not m.tag for p in m.digests
                         if p.startswith(("data/segments/", f"data/{derivative.DIR}/",
                                          f"data/{contents.ORIGINALS}/"))
                         or p in ("data/index.html", f"data/{stamps.NAME}")}
        refused = {e.path for e in self.inv.entries.values() if e.kind in (Kind.LINK,
                                                                          Kind.SPECIAL)}
        self.findings.extend(bag.file_set_findings(self.inv, manifests, expected=expected,
                                                   refused=refused))
        self._check_directories()
        self.expected = expected

    def _check_directories(self) -> None:
        """The topmost directory that is no part of the package, unless a file below it
        was named already."""
        files = [e.path for e in self.inv.files()]
        for entry in self.inv.entries.values():
            parent = entry.path.rpartition("/")[0]
            if entry.kind is Kind.DIR and entry.path not in DIRS and parent in ("", *DIRS) \
                    and not any(p.startswith(entry.path + "/") for p in files):
                self.add(Code.E_EXTRA_FILE, "directory not part of the package",
                         display(entry.path) + "/")

    def _match_entries(self, manifest: mf.Manifest, listed: list[str],
                       ) -> list[mf.SegmentEntry]:
        by_name = {e.name: e for e in manifest.entries()}
        found = []
        for name in listed:
            entry = by_name.get(name)
            if entry is None:
                self.add(Code.E_SEGMENT_UNKNOWN, "segment is not in the signed manifest",
                         display(name))
            else:
                found.append(entry)
        return found

    def _check_sizes(self, entries: list[mf.SegmentEntry]) -> dict[str, mf.SegmentEntry]:
        """The segments whose size is the signed one, by path (only they are hashed)."""
        sized = {}
        for e in entries:
            file = self.inv.file(f"data/segments/{e.name}")
            if file is None:
                continue
            if file.size != e.size:
                self.misfit.add(file.path)
                self.add(Code.E_SIZE_MISMATCH, f"size {file.size} != {e.size} in the "
                         "manifest", e.name, expected=e.size, actual=file.size)
            else:
                sized[file.path] = e
        return sized

    # ------------------------------------------------------------------ digests

    def _check_digests(self, manifests: list[bag.BagManifest],
                       sized: Mapping[str, mf.SegmentEntry]) -> None:
        jobs: list[bag.HashJob] = []
        actual: dict[str, dict[str, str] | Finding] = {}
        for file in self.inv.files():
            algos = tuple(m.algo for m in bag.covering(file.path, manifests)
                          if file.path in m.digests)
            if file.path in self.texts:
                actual[file.path] = bag.digest_bytes(self.texts[file.path], algos)
            elif file.path in sized or (algos and file.path in self.expected
                                        and file.path not in self.unread | self.misfit):
                jobs.append(bag.HashJob(entry=file, algos=algos, blake3=file.path in sized
                                        or file.path == self.derived_path
                                        or file.path in self.originals))
        actual.update(bag.hash_files(self.pkg, jobs))
        for path in sorted(actual):
            result = actual[path]
            if isinstance(result, Finding):
                self.findings.append(result)
                continue
            if path == self.derived_path:
                self.derived_digests = result
            if path in self.originals:
                self.measured[path] = result
            segment = sized.get(path)
            if segment is not None and result["blake3"] != segment.blake3:
                self.add(Code.E_DIGEST_MISMATCH, "BLAKE3 differs from the signed manifest",
                         segment.name, expected=segment.blake3, actual=result["blake3"])
                continue  # the signed digest names it; the bag's would say it again
            self.findings.extend(bag.digest_findings(path, result, manifests))

    # ------------------------------------------------------------------ signed claims

    def _keys(self) -> Mapping[str, PublicKey]:
        if self.trusted is not None:
            return self.trusted
        if self.keyring is None:  # read once: both signatures use it
            self.keyring = self._package_keyring()
        return self.keyring

    def _package_keyring(self, name: str = "keys/keyring.json") -> Mapping[str, PublicKey]:
        raw = self._json(f"data/{name}")
        if raw is None:
            return {}  # missing or unreadable: said already; the signature's key is unknown
        try:
            return Keyring.from_dict(raw).by_id()
        except (ValueError, TypeError, AttributeError, EvidockError) as exc:
            self.add(Code.E_PACKAGE_INVALID, f"keyring unusable: {exc}", name)
            return {}

    def _said(self) -> signers.StatementKeys:
        """The keys of the package's own statements (clip.json, derivative, gm layer):
        the station's, or the exporting center's (integrity.exportercheck)."""
        if self.statement is None:
            self.statement = signers.statement_keys(
                self.clip, station=self._keys(), station_trusted=self.trusted is not None,
                center=self.center,
                own_keyring=lambda: self._package_keyring(EXPORTER_KEYRING))
            self.findings += self.statement.findings
        return self.statement

    def _check_signature(self, signed: mf.SignedManifest) -> None:
        found = mf.verify_signed_manifest(signed, self._keys(), "manifest.json")
        if self.trusted is not None:
            found = [Finding(Code.E_KEY_MISMATCH, "manifest was not signed by the given key",
                             f.subject, f.details) if f.code == Code.E_KEY_UNKNOWN else f
                     for f in found]
        elif not found:
            self.add(Code.W_KEY_UNTRUSTED, "signature holds against the key shipped in the "
                     "package; pass --key with the station's published key to trust it",
                     "keys/keyring.json", key_id=signed.key_id)
        self.findings.extend(found)

    # ------------------------------------------------------------------ what the export claims

    def _check_clip_signature(self) -> None:
        """The station's signature on clip.json's exact bytes (integrity.clipsign)."""
        raw = self.texts.get("data/clip.json")
        if raw is None:
            return  # missing or unreadable: said already
        sig_path = f"data/{clipsign.SIG_FILE}"
        if sig_path not in self.texts:
            self.add(Code.E_CLIP_UNSIGNED, "no station signature on clip.json: its range, "
                     "segments, request and approval are vouched for by nobody", "clip.json")
            return
        doc = self._json(sig_path)
        said = self._said()
        if doc is not None:
            found = clipsign.clip_signature_findings(raw, doc, said.known,
                                                     trusted=said.trusted, who=said.who)
            self.findings += found or signers.untrusted(said, self.clip)

    def _check_profile(self) -> None:
        """The gm layer (integrity/gmbag.py) against the key that signed clip.json."""
        said = self._said()
        self.findings += gmbag.findings(
            gmbag.tags_of(self.texts), self.texts, said.known,
            gmbag.signer(self.texts.get(f"data/{clipsign.SIG_FILE}")), trusted=said.trusted)

    # ------------------------------------------------------------------ the derivative

    def _load_derivative(self) -> None:
        self.originals, found = contents.original_entries(self.clip)
        self.findings.extend(found)
        if not isinstance(self.clip, dict) or "derivative" not in self.clip:
            return  # a package made before derivatives: its clip.json (signed) says so
        self.derived = self._json(f"data/{derivative.DOC}")
        name = self.derived.get("file") if isinstance(self.derived, dict) else None
        if isinstance(name, str) and derivative.plain_file(name):
            self.derived_path = f"data/{name}"
        elif self.derived is not None:
            self.add(Code.E_PACKAGE_PATH_UNSAFE, "derivative.json names no plain file in "
                     "data/derivative/: never opened", derivative.DOC, file=display(str(name)))

    def _check_derivative(self, signed: mf.SignedManifest | None) -> None:
        if not isinstance(self.clip, dict) or "derivative" not in self.clip:
            return
        raw = self.texts.get(f"data/{derivative.DOC}")
        if raw is None or self.derived is None:
            return  # missing or unreadable: said already
        sig_path = f"data/{derivative.SIG}"
        entry = self.inv.file(self.derived_path) if self.derived_path else None
        self.findings.extend(derivative.package_findings(
            raw, self.derived, None if sig_path not in self.texts else self._json(sig_path),
            self._said().known, trusted=self._said().trusted, clip=self.clip,
            manifest=None if signed is None else signed.manifest,
            measured=self.derived_digests, size=None if entry is None else entry.size,
            named={f.subject for f in self.findings}))

    def _check_contents(self, manifests: list[bag.BagManifest]) -> None:
        """The originals are clip.json's; index.html lists every evidence file."""
        sizes = {p: e.size for p in self.originals if (e := self.inv.file(p)) is not None}
        self.findings.extend(contents.original_findings(
            self.originals, clip=self.clip, measured=self.measured, sizes=sizes))
        page = self.texts.get("data/index.html")
        sums = next((m.digests for m in manifests if not m.tag and m.algo == "sha256"), None)
        if page is not None and sums is not None:  # else older, or missing: said already
            self.findings.extend(contents.index_findings(
                page, sums, {f.subject for f in self.findings}))

    def _check_timestamps(self) -> None:
        """The RFC 3161 tokens over the manifest and the bundle's head (clip.json, signed,
        names the file in every package made since they travel)."""
        if not isinstance(self.clip, dict) or self.clip.get("timestamps") != stamps.NAME:
            return  # a package made before tokens travelled: its clip.json says so
        raw = self.texts.get(f"data/{stamps.NAME}")
        if raw is None:
            return  # missing or unreadable: said already
        signed = stamps.signed_in(self.texts.get("data/manifest.json"),
                                  self.texts.get(f"data/{bundle.NAME}"))
        doc = self._json(f"data/{stamps.NAME}")
        if doc is None:
            return  # not JSON: said already
        result = stamps.check(doc, signed, roots=self.tsa_roots)
        self.findings += result.findings
        self.attested = result.attested

