"""A case export's ``case/`` bag: the case's own record, signed, and the one index.

::

    case/bagit.txt  bag-info.txt  manifest-*.txt  tagmanifest-*.txt
    case/data/case.json        the case, each link (stage, range, reason, who, when), the
                               stages' times, the documents (as stored, with digests), the
                               request and approval record, and the packages written
    case/data/case.sig.json    the station's signature on case.json's exact bytes
    case/data/documents/NN-*   the documents, byte-identical to the archive's
    case/data/keys/keyring.json
    case/data/index.html       every item of the export for a person (offline, no script)

The packages' own signed clip.json (their request record) names ``case/`` (``"case_record"``),
so removing it is missed. :class:`CaseRecordCheck` checks every file against the bag,
the signature, each document against case.json, case.json's packages against the
package directories, and that the index lists every document and package file with its
digest; each problem is a finding.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from integrity import bag, gmbag, keys, safejson
from integrity.canonical import canonical_bytes
from integrity.codes import Code
from integrity.findings import Finding
from integrity.keys import Keyring, PublicKey
from integrity.safefs import Inventory, Kind, PackageDir, Refused, display

NAME = "case"
CONTEXT = b"evidock case statement v1\n"
FORMAT = "evidock-case/1"
FIXED = ("data/case.json", "data/case.sig.json", "data/keys/keyring.json", "data/index.html")
MAX_DOCUMENT = 32 << 20


def sign(doc_bytes: bytes, keypair: keys.KeyPair) -> bytes:
    signature = keys.sign(keypair, CONTEXT + doc_bytes)
    return canonical_bytes({"alg": keypair.alg, "key_id": keypair.key_id,
                            "sig": signature.hex(), "signs": "case.json"})


def document_path(doc: Any) -> str | None:
    name = doc.get("file") if isinstance(doc, dict) else None
    if not isinstance(name, str):
        return None
    head, _, tail = name.partition("/")
    ok = head == "documents" and tail and "/" not in tail and not tail.startswith(".") \
        and "\0" not in tail
    return f"data/{name}" if ok else None


class CaseRecordCheck:
    """The ``case/`` bag of a case export; ``packages``: dir -> that package's clip.json."""

    def __init__(self, pkg: PackageDir, trusted: Mapping[str, PublicKey] | None,
                 packages: Mapping[str, Any], *, named: frozenset[str | None] = frozenset(),
                 ) -> None:
        self.pkg, self.trusted, self.packages = pkg, trusted, packages
        self.named = named  # subjects the case export named already (a missing package)
        self.inv: Inventory = pkg.walk()
        self.findings: list[Finding] = list(self.inv.findings)
        self.texts: dict[str, bytes] = {}

    def add(self, code: Code, message: str, subject: str, **details: Any) -> None:
        self.findings.append(Finding(code, message, f"{NAME}/{subject}", details))

    def run(self) -> list[Finding]:
        self.texts, found = self.pkg.read_present(
            self.inv, dict.fromkeys((*bag.BAG_FILES, *FIXED, *gmbag.FILES), MAX_DOCUMENT))
        self.findings += found
        manifests = self._manifests()
        doc = self._json("data/case.json")
        documents = [d for d in doc.get("documents", [])] if isinstance(doc, dict) else []
        paths = {p: d for d in documents if (p := document_path(d)) is not None}
        expected = {*bag.BAG_FILES, *FIXED, *paths, *gmbag.expected(gmbag.tags_of(self.texts))}
        blocked = {e.path for e in self.inv.entries.values()
                   if e.kind in (Kind.LINK, Kind.SPECIAL)}
        self.findings.extend(_within(f) for f in bag.file_set_findings(
            self.inv, manifests, expected=expected, refused=blocked))
        measured = self._digests(manifests, expected, set(paths))
        self._signature(doc)
        self.findings += [_within(f) for f in gmbag.findings(
            gmbag.tags_of(self.texts), self.texts,
            self.trusted if self.trusted is not None else self._keyring(),
            gmbag.signer(self.texts.get("data/case.sig.json")),
            trusted=self.trusted is not None)]
        self._documents(paths, measured)
        self._packages(doc)
        self._index(manifests, paths)
        return self.findings

    def _json(self, path: str) -> Any:
        raw = self.texts.get(path)
        if raw is None:
            return None
        try:
            return safejson.loads(raw, f"{NAME}/{path}")
        except Refused as refused:
            self.findings.append(refused.finding)
            return None

    def _manifests(self) -> list[bag.BagManifest]:
        manifests, found = bag.structure(self.texts, self.inv)
        self.findings.extend(_within(f) for f in found)
        return manifests

    def _digests(self, manifests: list[bag.BagManifest], expected: set[str],
                 documents: set[str]) -> dict[str, Mapping[str, str]]:
        jobs, actual = [], {}
        for file in self.inv.files():
            algos = tuple(m.algo for m in bag.covering(file.path, manifests)
                          if file.path in m.digests)
            if file.path in self.texts:
                actual[file.path] = bag.digest_bytes(self.texts[file.path], algos)
            elif file.path in expected:
                jobs.append(bag.HashJob(entry=file, algos=algos,
                                        blake3=file.path in documents))
        measured: dict[str, Mapping[str, str]] = {}
        for path, result in {**actual, **bag.hash_files(self.pkg, jobs)}.items():
            if isinstance(result, Finding):
                self.findings.append(_within(result))
                continue
            measured[path] = result
            self.findings.extend(_within(f) for f in bag.digest_findings(path, result,
                                                                         manifests))
        return measured

    def _signature(self, doc: Any) -> None:
        raw, sig = self.texts.get("data/case.json"), self._json("data/case.sig.json")
        if raw is None:
            return  # missing: said already
        if not isinstance(sig, dict) or sig.get("signs") != "case.json" \
                or not isinstance(sig.get("sig"), str) \
                or not keys.signature_alg_ok(sig.get("alg"), sig.get("key_id")):
            self.add(Code.E_CLIP_UNSIGNED, "no station signature on case.json", "case.json")
            return
        known = self.trusted if self.trusted is not None else self._keyring()
        public = known.get(str(sig.get("key_id")))
        try:
            valid = public is not None and keys.is_valid(public, CONTEXT + raw,
                                                         bytes.fromhex(sig["sig"]))
        except ValueError:
            valid = False
        if public is None:
            code = Code.E_KEY_MISMATCH if self.trusted is not None else Code.E_KEY_UNKNOWN
            self.add(code, "case.json was not signed by a known station key", "case.json")
        elif not valid or not isinstance(doc, dict) or doc.get("format") != FORMAT:
            self.add(Code.E_SIGNATURE_INVALID, "the station's signature on case.json does "
                     "not verify: the case record is not what the station exported",
                     "case.json")

    def _keyring(self) -> Mapping[str, PublicKey]:
        raw = self._json("data/keys/keyring.json")
        try:
            return Keyring.from_dict(raw).by_id() if raw is not None else {}
        except (ValueError, TypeError, AttributeError, KeyError):
            return {}

    def _documents(self, paths: Mapping[str, Any], measured: Mapping[str, Any]) -> None:
        for path, doc in sorted(paths.items()):
            got, entry = measured.get(path), self.inv.file(path)
            if got is None or entry is None:
                continue  # missing or unread: said already
            if entry.size != doc.get("size") or got.get("blake3") != doc.get("blake3") \
                    or got.get("sha256", doc.get("sha256")) != doc.get("sha256"):
                self.add(Code.E_DIGEST_MISMATCH, "the document is not the one case.json "
                         "lists (size or digest)", path.removeprefix("data/"),
                         expected=safejson.brief(doc.get("blake3")), actual=got.get("blake3"))

    def _packages(self, doc: Any) -> None:
        listed = doc.get("packages") if isinstance(doc, dict) else None
        if not isinstance(listed, list):
            return
        claimed = {p.get("dir"): p.get("export_id") for p in listed if isinstance(p, dict)}
        present = {d: c.get("export_id") for d, c in self.packages.items()
                   if isinstance(c, dict)}
        for name in sorted(str(d) for d in claimed.keys() - present.keys()):
            if f"{name}/" not in self.named:  # else the case export said it is missing
                self.findings.append(Finding(Code.E_MISSING_FILE, "package the signed case "
                                             "record lists is missing", display(name) + "/"))
        if any(claimed.get(d, d) != present[d] for d in present):
            self.add(Code.E_REQUEST_MISMATCH, "case.json's packages are not the packages of "
                     "this export", "case.json", claimed=safejson.brief(claimed),
                     present=safejson.brief(present))

    def _index(self, manifests: list[bag.BagManifest], documents: Mapping[str, Any]) -> None:
        page = self.texts.get("data/index.html")
        if page is None:
            return
        text = page.decode("utf-8", "replace")
        for path, doc in sorted(documents.items()):
            if str(doc.get("sha256")) not in text:
                self.add(Code.E_INDEX_MISMATCH, "index.html does not list this document "
                         "with its SHA-256", path.removeprefix("data/"))
        for name, clip in sorted(self.packages.items()):
            export_id = clip.get("export_id") if isinstance(clip, dict) else None
            if not isinstance(export_id, str) or export_id not in text:
                self.add(Code.E_INDEX_MISMATCH, "index.html does not list this package",
                         "data/index.html", package=display(name))


def _within(finding: Finding) -> Finding:
    subject = f"{NAME}/{finding.subject}" if finding.subject else NAME
    return Finding(finding.code, finding.message, subject, finding.details)


__all__ = ["CONTEXT", "FORMAT", "NAME", "CaseRecordCheck", "document_path", "sign"]
