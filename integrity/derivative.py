"""The exact-range derivative clip of a package and its signed provenance.

A package of an approved range holds, beside (or, for an ``exact`` request, instead of)
the covering segments, ``data/derivative/clip.<ext>``: the range re-encoded from those
segments. It is a *derivative, not the original*. ``data/derivative/derivative.json``
says what it is and how it was made (the source segments with their signed digests and
the manifest's Merkle root, the range, the trim offsets, tool, version and argv, and the
clip's own size and digests); the station signs its exact bytes into
``derivative.sig.json`` with a context of its own, so this signature can stand for no
manifest, clip statement or tree head. :func:`findings` checks all of it offline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from integrity import keys, safejson
from integrity import manifest as mf
from integrity.canonical import canonical_bytes
from integrity.codes import Code
from integrity.findings import Finding

CONTEXT = b"evidock derivative statement v1\n"
FORMAT = "evidock-derivative/1"
DIR = "derivative"  # in data/
DOC = "derivative/derivative.json"
SIG = "derivative/derivative.sig.json"
LABEL = "derivative, not the original / 衍生件（剪辑），非原始文件"
_SOURCE_KEYS = ("name", "index", "blake3", "start_us", "end_us")


def sign(doc_bytes: bytes, keypair: keys.KeyPair) -> bytes:
    signature = keys.sign(keypair, CONTEXT + doc_bytes)
    return canonical_bytes({"alg": keypair.alg, "key_id": keypair.key_id,
                            "sig": signature.hex(), "signs": "derivative.json"})


def plain_file(name: str) -> bool:
    """A derivative's file name as derivative.json may give it: derivative/<plain name>."""
    head, _, tail = name.partition("/")
    return head == DIR and bool(tail) and "/" not in tail and not tail.startswith(".") \
        and "\0" not in tail


def sources_of(manifest: mf.Manifest, start_us: int, end_us: int) -> list[dict[str, Any]]:
    """The signed manifest's segments over [start, end), as derivative.json lists them."""
    return [{"name": e.name, "index": e.index, "blake3": e.blake3, "start_us": e.start_us,
             "end_us": e.end_us}
            for e in manifest.entries() if e.end_us > start_us and e.start_us < end_us]


def signature_findings(doc_bytes: bytes, sig_doc: Any, known: Mapping[str, keys.PublicKey],
                       *, trusted: bool) -> list[Finding]:
    if not isinstance(sig_doc, dict) or set(sig_doc) != {"alg", "key_id", "sig", "signs"} \
            or sig_doc["signs"] != "derivative.json" \
            or not keys.signature_alg_ok(sig_doc["alg"], sig_doc["key_id"]) \
            or not isinstance(sig_doc["sig"], str) or len(sig_doc["sig"]) != 128:
        return [Finding(Code.E_DERIVATIVE_UNSIGNED, "derivative.sig.json is not a station "
                        "signature {alg, key_id, sig, signs: derivative.json}", SIG)]
    public = known.get(str(sig_doc["key_id"]))
    if public is None:
        code = Code.E_KEY_MISMATCH if trusted else Code.E_KEY_UNKNOWN
        return [Finding(code, "derivative.json was not signed by a known station key", DOC,
                        {"key_id": safejson.brief(sig_doc["key_id"])})]
    try:
        sig = bytes.fromhex(sig_doc["sig"])
    except ValueError:
        sig = b""
    if not sig or not keys.is_valid(public, CONTEXT + doc_bytes, sig):
        return [Finding(Code.E_SIGNATURE_INVALID, "the station's signature on "
                        "derivative.json does not verify: its provenance is not what the "
                        "station made", DOC)]
    return []


def claim_findings(doc: Any, *, clip: Any, manifest: mf.Manifest | None,
                   measured: Mapping[str, str] | None, size: int | None) -> list[Finding]:
    """derivative.json against the clip file (``measured`` digests, ``size``; None: the
    file is absent or unread, said elsewhere), clip.json and the signed manifest."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return [_bad("derivative.json is not an evidock derivative statement",
                     format=safejson.brief(doc.get("format") if isinstance(doc, dict)
                                           else doc))]
    found = []
    if measured is not None and (size != doc.get("size") or any(
            measured[k] != doc.get(k) for k in ("blake3", "sha256") if k in measured)):
        found.append(_bad("the derivative clip is not the one derivative.json describes",
                          subject=str(doc.get("file")), size=size,
                          blake3=measured.get("blake3"), claimed=doc.get("blake3")))
    if isinstance(clip, dict):
        for key in ("recording_id", "export_id", "range_us"):
            if doc.get(key) != clip.get(key):
                found.append(_bad(f"derivative.json's {key} is not clip.json's",
                                  field=key, claimed=safejson.brief(doc.get(key)),
                                  clip=safejson.brief(clip.get(key))))
    span = doc.get("range_us")
    if manifest is not None and isinstance(span, list) and len(span) == 2 \
            and all(type(v) is int for v in span):
        expected = sources_of(manifest, span[0], span[1])
        sources = doc.get("sources")
        if sources != expected or doc.get("merkle_root") != manifest.merkle_root:
            found.append(_bad("the derivative's source segments (names, digests, times) "
                              "are not those the signed manifest has over its range",
                              claimed=safejson.brief(sources),
                              expected=[s["name"] for s in expected]))
    return found


def package_findings(raw: bytes, doc: Any, sig_doc: Any, known: Mapping[str, keys.PublicKey],
                     *, trusted: bool, clip: Any, manifest: mf.Manifest | None,
                     measured: Mapping[str, str] | None, size: int | None,
                     named: set[str | None]) -> list[Finding]:
    """A package's derivative whole: the statement's signature (``sig_doc`` None: the
    signature file is absent), then its claims. A clip.json or manifest.json already
    named (changed) is not compared again: that finding says it."""
    if sig_doc is None:
        found = [Finding(Code.E_DERIVATIVE_UNSIGNED, "no station signature on "
                         "derivative.json", DOC)]
    else:
        found = signature_findings(raw, sig_doc, known, trusted=trusted)
    return found + claim_findings(
        doc, clip=None if "clip.json" in named else clip,
        manifest=None if "manifest.json" in named else manifest,
        measured=measured, size=size)


def _bad(message: str, subject: str = "derivative.json", **details: Any) -> Finding:
    return Finding(Code.E_DERIVATIVE_MISMATCH, message, subject, details)


__all__ = ["CONTEXT", "DIR", "DOC", "FORMAT", "LABEL", "SIG", "claim_findings",
           "signature_findings", "sign", "sources_of"]
