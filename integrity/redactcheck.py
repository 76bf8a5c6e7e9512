"""A redacted package (信息公开): one redacted derivative, its provenance and its release.

Layout (BagIt, like a clip package; the gm layer when the station is of that profile)::

    data/redacted.mp4          the redacted derivative (never the original)
    data/redaction.json        what was hidden, from which signed segments, by what tool
    data/redaction.sig.json    the station's signature on it (integrity/redaction.py)
    data/release.json          this export: request, purpose, recipient, approvals
    data/release.sig.json      the station's signature on it
    data/keys/keyring.json     the station's keys
    data/README.txt

A recipient learns from it what was released and how it was made, and can check every
claim offline, but receives no byte of the original: the sources are named by digest
only. :class:`RedactedCheck` reports every finding, like the clip package check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from integrity import bag, gmbag, keys, redaction, safejson
from integrity.canonical import canonical_bytes
from integrity.codes import Code
from integrity.errors import EvidockError
from integrity.findings import Finding
from integrity.keys import Keyring, PublicKey
from integrity.safefs import Inventory, Kind, PackageDir, Refused

CONTEXT = b"evidock release statement v1\n"
FORMAT = "evidock-release/1"
FILE, RELEASE, RELEASE_SIG = "redacted.mp4", "release.json", "release.sig.json"
DATA = ("README.txt", FILE, redaction.DOC, redaction.SIG, RELEASE, RELEASE_SIG,
        "keys/keyring.json")
MAX_DOCUMENT = 32 << 20


def is_redacted(inventory: Inventory) -> bool:
    return inventory.file(f"data/{redaction.DOC}") is not None


def sign_release(release_bytes: bytes, keypair: keys.KeyPair) -> bytes:
    signature = keys.sign(keypair, CONTEXT + release_bytes)
    return canonical_bytes({"alg": keypair.alg, "key_id": keypair.key_id,
                            "sig": signature.hex(), "signs": RELEASE})


class RedactedCheck:
    def __init__(self, pkg: PackageDir, inventory: Inventory,
                 trusted: Mapping[str, PublicKey] | None) -> None:
        self.pkg, self.inv, self.trusted = pkg, inventory, trusted
        self.findings: list[Finding] = list(inventory.findings)
        self.texts: dict[str, bytes] = {}

    def add(self, code: Code, message: str, subject: str, **details: Any) -> None:
        self.findings.append(Finding(code, message, subject, details))

    def run(self) -> list[Finding]:
        small = (*bag.BAG_FILES, *bag.MANIFEST_NAMES, *gmbag.FILES,
                 *(f"data/{n}" for n in DATA if n != FILE))
        self.texts, found = self.pkg.read_present(self.inv, dict.fromkeys(small, MAX_DOCUMENT))
        self.findings += found
        manifests = self._manifests()
        tags = gmbag.tags_of(self.texts)
        expected = {*bag.BAG_FILES, *(f"data/{n}" for n in DATA), *gmbag.expected(tags)}
        blocked = {e.path for e in self.inv.entries.values()
                   if e.kind in (Kind.LINK, Kind.SPECIAL)}
        self.findings += bag.file_set_findings(self.inv, manifests, expected=expected,
                                               refused=blocked)
        measured = self._digests(manifests, expected)
        known = self._keys()
        self._statement(known, measured)
        self._release(known)
        self.findings += gmbag.findings(tags, self.texts, known,
                                        gmbag.signer(self.texts.get(f"data/{RELEASE_SIG}")),
                                        trusted=self.trusted is not None)
        return self.findings

    def _manifests(self) -> list[bag.BagManifest]:
        manifests, found = bag.structure(self.texts, self.inv)
        self.findings += found
        return manifests

    def _digests(self, manifests: list[bag.BagManifest],
                 expected: set[str]) -> Mapping[str, str] | None:
        """Every expected file's bag digests checked; the redacted file's BLAKE3 too."""
        jobs = []
        for entry in self.inv.files():
            algos = tuple(m.algo for m in bag.covering(entry.path, manifests)
                          if entry.path in m.digests)
            if entry.path in expected and (algos or entry.path == f"data/{FILE}"):
                jobs.append(bag.HashJob(entry=entry, algos=tuple({*algos, "sha256"}),
                                        blake3=entry.path == f"data/{FILE}"))
        measured: Mapping[str, str] | None = None
        for path, result in bag.hash_files(self.pkg, jobs).items():
            if isinstance(result, Finding):
                self.findings.append(result)
                continue
            self.findings += bag.digest_findings(path, result, manifests)
            if path == f"data/{FILE}":
                measured = result
        return measured

    def _keys(self) -> Mapping[str, PublicKey]:
        if self.trusted is not None:
            return self.trusted
        try:
            raw = self.texts.get("data/keys/keyring.json")
            ring = Keyring.from_dict(safejson.loads(raw, "keys/keyring.json")) if raw else None
        except (Refused, ValueError, TypeError, AttributeError, EvidockError) as exc:
            self.add(Code.E_PACKAGE_INVALID, f"keyring unusable: {exc}", "keys/keyring.json")
            return {}
        if ring is not None:
            self.add(Code.W_KEY_UNTRUSTED, "signatures hold against the key shipped in the "
                     "package at best; pass --key with the station's published key to "
                     "trust it", "keys/keyring.json")
        return ring.by_id() if ring is not None else {}

    def _statement(self, known: Mapping[str, PublicKey],
                   measured: Mapping[str, str] | None) -> None:
        raw = self.texts.get(f"data/{redaction.DOC}")
        sig = self._json(f"data/{redaction.SIG}")
        if raw is None:
            return  # missing: the file set said so
        entry = self.inv.file(f"data/{FILE}")
        seen = None if measured is None or entry is None else {
            "file": FILE, "size": entry.size, "blake3": measured.get("blake3"),
            "sha256": measured.get("sha256")}
        self.findings += redaction.findings(raw, sig, known, trusted=self.trusted is not None,
                                            measured=seen)

    def _release(self, known: Mapping[str, PublicKey]) -> None:
        raw, sig = self.texts.get(f"data/{RELEASE}"), self._json(f"data/{RELEASE_SIG}")
        if raw is None:
            return
        if not isinstance(sig, dict) or sig.get("signs") != RELEASE \
                or not keys.signature_alg_ok(sig.get("alg"), sig.get("key_id")) \
                or not isinstance(sig.get("sig"), str):
            self.add(Code.E_CLIP_UNSIGNED, "no station signature on release.json: who "
                     "asked, for what and who approved are vouched for by nobody", RELEASE)
            return
        public = known.get(str(sig["key_id"]))
        try:
            valid = public is not None and keys.is_valid(public, CONTEXT + raw,
                                                         bytes.fromhex(sig["sig"]))
        except ValueError:
            valid = False
        if public is None:
            code = Code.E_KEY_MISMATCH if self.trusted is not None else Code.E_KEY_UNKNOWN
            self.add(code, "release.json was not signed by a known station key", RELEASE)
        elif not valid:
            self.add(Code.E_SIGNATURE_INVALID, "the station's signature on release.json "
                     "does not verify", RELEASE)
        self._release_matches(self._json(f"data/{RELEASE}"))

    def _release_matches(self, release: Any) -> None:
        doc = self._json(f"data/{redaction.DOC}")
        if not isinstance(release, dict) or release.get("format") != FORMAT:
            self.add(Code.E_REDACTION_INVALID, "release.json is not an evidock release",
                     RELEASE)
            return
        if isinstance(doc, dict) and any(release.get(k) != doc.get(k) for k in
                                         ("redaction_id", "recording_id", "range_us")):
            self.add(Code.E_REDACTION_INVALID, "release.json releases another redaction "
                     "than redaction.json describes", RELEASE,
                     released=safejson.brief(release.get("redaction_id")),
                     described=safejson.brief(doc.get("redaction_id")))

    def _json(self, path: str) -> Any:
        raw = self.texts.get(path)
        if raw is None:
            return None
        try:
            return safejson.loads(raw, path.removeprefix("data/"))
        except Refused as refused:
            if refused.finding not in self.findings:
                self.findings.append(refused.finding)
            return None
