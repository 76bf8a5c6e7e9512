"""A case export: one clip package per linked range (``NN-<recording>/``) and a
``request.json`` listing them.

request.json lies outside every bag, so no digest covers it; instead each of its claims
must be one the packages make under their digests: its request fields are each
package's ``clip.json`` ``request`` (less the package's own ``link_id``), and each listed
package's directory, export id, recording, range, link and segments are that package's.
A claim they do not back is ``E_REQUEST_MISMATCH``; a package listed but absent, or
present but not listed, is a missing or extra file; every package is verified whole.
Each clip.json (signed by the station) records the request's items, one per package
directory: a package removed together with its line in request.json is still missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography import x509

from integrity import casebag, safejson
from integrity.clipcheck import MAX_DOCUMENT, PackageCheck, looks_like_package
from integrity.codes import Code
from integrity.findings import Finding
from integrity.keys import PublicKey
from integrity.safefs import Inventory, Kind, PackageDir, Refused, display

REQUEST = "request.json"


def is_case_export(top: Inventory) -> bool:
    return top.file(REQUEST) is not None and not looks_like_package(top)


def _within(folder: str, finding: Finding) -> Finding:
    subject = f"{folder}/{finding.subject}" if finding.subject else folder
    return Finding(finding.code, finding.message, subject, finding.details)


def _differing(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The keys one side lacks or the two sides give different values."""
    return sorted(k for k in a.keys() | b.keys() if k not in a or k not in b or a[k] != b[k])


def _shown(side: dict[str, Any], key: str) -> Any:
    return safejson.brief(side[key]) if key in side else "(absent)"


class CaseExportCheck:
    def __init__(self, pkg: PackageDir, top: Inventory,
                 trusted: Mapping[str, PublicKey] | None, *,
                 tsa_roots: tuple[x509.Certificate, ...] | None = None) -> None:
        self.pkg, self.top, self.trusted = pkg, top, trusted
        self.tsa_roots = tsa_roots
        self.attested: list[dict[str, Any]] = []  # each package's tokens (timestampcheck)
        self.findings: list[Finding] = list(top.findings)
        self.clips: dict[str, Any] = {}

    def add(self, code: Code, message: str, subject: str, **details: Any) -> None:
        self.findings.append(Finding(code, message, subject, details))

    def run(self) -> list[Finding]:
        request = self._request()
        listed = self._listed(request)
        present = sorted(e.path for e in self.top.entries.values()
                         if e.kind is Kind.DIR and e.path != casebag.NAME)
        for name in sorted(set(listed) - set(present)):
            self.add(Code.E_MISSING_FILE, "package listed by request.json is missing",
                     display(name) + "/")
        for entry in self.top.files():
            if entry.path != REQUEST:
                self.add(Code.E_EXTRA_FILE, "file not part of the case export",
                         display(entry.path))
        for name in present:
            if name not in listed:
                self.add(Code.E_EXTRA_FILE, "package not listed by request.json",
                         display(name) + "/")
            self._package(name)
        if isinstance(request, dict):
            self._request_fields(request)
            for name, claims in listed.items():
                self._package_fields(name, claims)
        self._signed_items(present, listed)
        self._case_record()
        return self.findings

    def _case_record(self) -> None:
        """The case/ bag: verified whole when present; missing when the packages' signed
        request records name it."""
        entry = self.top.entries.get(casebag.NAME)
        named = any(isinstance(c.get("request"), dict)
                    and c["request"].get("case_record") == casebag.NAME
                    for c in self.clips.values())
        if entry is None or entry.kind is not Kind.DIR:
            if named:
                self.add(Code.E_MISSING_FILE, "the case record (documents, links, index) "
                         "the approved request's packages name is missing",
                         casebag.NAME + "/")
            return
        try:
            with self.pkg.subdirectory(entry) as sub:
                self.findings.extend(casebag.CaseRecordCheck(
                    sub, self.trusted, self.clips,
                    named=frozenset(f.subject for f in self.findings)).run())
        except Refused as refused:
            self.findings.append(refused.finding)

    def _request(self) -> Any:
        entry = self.top.file(REQUEST)
        assert entry is not None  # is_case_export
        try:
            request = safejson.loads(self.pkg.read(entry, MAX_DOCUMENT), REQUEST)
        except Refused as refused:
            self.findings.append(refused.finding)
            return None
        if not isinstance(request, dict) or not isinstance(request.get("packages"), list):
            self.add(Code.E_PACKAGE_INVALID, "request.json has no 'packages' list", REQUEST)
            return None
        return request

    def _listed(self, request: Any) -> dict[str, dict[str, Any]]:
        listed: dict[str, dict[str, Any]] = {}
        for item in request["packages"] if isinstance(request, dict) else []:
            name = item.get("dir") if isinstance(item, dict) else None
            if not isinstance(name, str) or not name or "/" in name or "\0" in name \
                    or name in (".", ".."):
                self.add(Code.E_PACKAGE_PATH_UNSAFE, "request.json lists a package that is "
                         "not a plain directory name: never opened", REQUEST,
                         dir=display(str(name)))
            elif name in listed:
                self.add(Code.E_PACKAGE_INVALID, f"request.json lists {display(name)} twice",
                         REQUEST)
            else:
                listed[name] = item
        return listed

    def _package(self, name: str) -> None:
        try:
            with self.pkg.subdirectory(self.top.entries[name]) as sub:
                check = PackageCheck(sub, sub.walk(), self.trusted, tsa_roots=self.tsa_roots)
                self.findings.extend(_within(display(name), f) for f in check.run())
                self.attested += [{**a, "package": display(name)} for a in check.attested]
        except Refused as refused:
            self.findings.append(refused.finding)
            return
        if isinstance(check.clip, dict):
            self.clips[name] = check.clip

    def _request_fields(self, request: dict[str, Any]) -> None:
        claimed = {k: v for k, v in request.items() if k != "packages"}
        for name, clip in sorted(self.clips.items()):
            vouched = clip.get("request")
            vouched = {k: v for k, v in vouched.items() if k != "link_id"} \
                if isinstance(vouched, dict) else {}
            for key in _differing(claimed, vouched):
                self.add(Code.E_REQUEST_MISMATCH, f"request.json's {display(key)!r} is not "
                         f"what {display(name)}/data/clip.json records", REQUEST,
                         package=name, field=safejson.brief(key),
                         claimed=_shown(claimed, key), packaged=_shown(vouched, key))

    def _package_fields(self, name: str, claims: dict[str, Any]) -> None:
        clip = self.clips.get(name)
        if clip is None:
            return  # missing or unreadable: said already
        vouched = clip.get("request")
        packaged = {"dir": name, "export_id": clip.get("export_id"),
                    "recording_id": clip.get("recording_id"),
                    "range_us": clip.get("range_us"), "segments": clip.get("segments"),
                    "link_id": vouched.get("link_id") if isinstance(vouched, dict) else None}
        for key in _differing(claims, packaged):
            self.add(Code.E_REQUEST_MISMATCH, f"request.json says {display(name)}'s "
                     f"{display(key)!r} differs from its clip.json", REQUEST, package=name,
                     field=safejson.brief(key), claimed=_shown(claims, key),
                     packaged=_shown(packaged, key))

    def _signed_items(self, present: list[str], listed: dict[str, dict[str, Any]]) -> None:
        """The packages are exactly the items of the approved request, as every package's
        signed clip.json records them: a package dropped together with its line in
        request.json is still missed. (Clips that disagree on the items disagree with
        request.json too: that is said above.)"""
        items = next((c["request"]["items"] for _, c in sorted(self.clips.items())
                      if isinstance(c.get("request"), dict)
                      and isinstance(c["request"].get("items"), list)), None)
        if items is None:
            return
        named = {i["dir"]: i for i in items if isinstance(i, dict)
                 and isinstance(i.get("dir"), str) and "/" not in i["dir"]}
        for name in sorted(set(named) - set(present) - set(listed)):
            self.add(Code.E_MISSING_FILE, "package of the approved request (its signed "
                     "items) is missing", display(name) + "/")
        for name in present:
            if name in listed and name not in named:
                self.add(Code.E_EXTRA_FILE, "package is no item of the approved request",
                         display(name) + "/")
        for name, item in sorted(named.items()):
            clip = self.clips.get(name)
            if clip is None:
                continue  # missing or unreadable: said already
            vouched = clip.get("request")
            own = {"recording_id": clip.get("recording_id"), "range_us": clip.get("range_us"),
                   "link_id": vouched.get("link_id") if isinstance(vouched, dict) else None}
            if {k: item.get(k) for k in own} != own:
                self.add(Code.E_REQUEST_MISMATCH, f"{display(name)} is not the item the "
                         "approved request names for it", display(name) + "/",
                         item=safejson.brief(item), package=safejson.brief(own))
