"""What a clip package claims, checked against its signed manifest: pure, no files.

Split from :mod:`integrity.clipcheck` (which reads the package and calls these with what
it parsed): the segments' inclusion proofs, the original clip.json names, the segments'
order and continuity, the selection over ``range_us``, and that the package is an item
of the request it records. Each returns its findings; nothing raises for bad evidence.
"""

from __future__ import annotations

from typing import Any, TypeGuard

from integrity import manifest as mf
from integrity import merkle, safejson
from integrity.codes import Code
from integrity.errors import EvidockError
from integrity.findings import Finding


def proof_findings(manifest: mf.Manifest, entries: list[mf.SegmentEntry],
                   proofs: Any) -> list[Finding]:
    """Each listed segment's inclusion proof (proofs.json) leads to the manifest's root."""
    table = proofs.get("proofs") if isinstance(proofs, dict) else None
    if not isinstance(table, dict):
        return [] if proofs is None else [Finding(
            Code.E_PACKAGE_INVALID, "proofs.json has no 'proofs' object", "proofs.json")]
    found, root = [], bytes.fromhex(manifest.merkle_root)
    for e in entries:
        try:
            proof = merkle.InclusionProof.from_dict(table[e.name])
            if proof.leaf_index != e.index:
                raise ValueError(f"proof is for leaf {proof.leaf_index}, not {e.index}")
            merkle.verify_inclusion(merkle.leaf_hash(e.digest), proof, root)
        except (KeyError, ValueError, TypeError, EvidockError) as exc:
            found.append(Finding(Code.E_PROOF_INVALID,
                                 f"inclusion proof does not hold: {exc}", e.name))
    return found


def original_findings(manifest: mf.Manifest, clip: Any) -> list[Finding]:
    """clip.json's original is one the manifest signs."""
    if clip is None:
        return []  # missing or unreadable: said already
    claimed = clip.get("original") if isinstance(clip, dict) else None
    signed = [o.to_dict() for o in manifest.originals]
    if isinstance(claimed, dict) and claimed in signed:
        return []
    return [Finding(Code.E_ORIGINAL_MISMATCH, "clip.json's original is not the one the "
                    "manifest signs", "clip.json",
                    {"claimed": safejson.brief(claimed), "signed": signed})]


def order_findings(entries: list[mf.SegmentEntry]) -> list[Finding]:
    """The media segments are in order and contiguous."""
    media, found = [e for e in entries if e.end_us > e.start_us], []
    for prev, cur in zip(media, media[1:], strict=False):
        if cur.index <= prev.index:
            found.append(Finding(Code.E_SEGMENT_ORDER, f"segment {cur.index} listed after "
                                 f"{prev.index}", cur.name))
        elif cur.index != prev.index + 1 or cur.start_us != prev.end_us:
            found.append(Finding(Code.E_SEGMENT_GAP, f"segments {prev.index}..{cur.index} "
                                 "are not contiguous", cur.name))
    return found


def selection_findings(manifest: mf.Manifest, clip: Any,
                       listed: list[str] | None) -> list[Finding]:
    """clip.json's segments are exactly those of the signed manifest over its range,
    with the manifest's digests (a signed clip.json can only say so; this also catches
    an exporter that got it wrong)."""
    if listed is None or not isinstance(clip, dict):
        return []  # no usable clip.json or segment list: said already
    span = clip.get("range_us")
    if not _is_range(span):
        return [Finding(Code.E_PACKAGE_INVALID, "clip.json has no range_us [start, end)",
                        "clip.json", {"range_us": safejson.brief(span)})]
    lo, hi = span
    covering = [e for e in manifest.entries() if e.end_us > lo and e.start_us < hi]
    names = [] if clip.get("exact") is True else [e.name for e in covering]
    found = []
    if names != listed:
        found.append(Finding(Code.E_SELECTION_MISMATCH, "clip.json's segments are not "
                             "those the signed manifest has over its range", "clip.json",
                             {"claimed": safejson.brief(listed), "covering": names,
                              "range_us": span}))
    expected = {"merkle_root": manifest.merkle_root,
                "segments": [e.to_dict() for e in covering]}
    if clip.get("selection") != expected:
        found.append(Finding(Code.E_SELECTION_MISMATCH, "clip.json's selection (segment "
                             "digests, Merkle root) is not the signed manifest's",
                             "clip.json", {"claimed": safejson.brief(clip.get("selection"))}))
    return found


def request_item_findings(clip: Any) -> list[Finding]:
    """The package's recording and range are one item of the request it records."""
    request = clip.get("request") if isinstance(clip, dict) else None
    if not isinstance(request, dict) or "items" not in request:
        return []  # no request (a direct export), or one recorded before items were
    items = request["items"]
    own = {"recording_id": clip.get("recording_id"), "range_us": clip.get("range_us"),
           "link_id": request.get("link_id")}
    if isinstance(items, list) and any(
            isinstance(i, dict) and {k: i.get(k) for k in own} == own for i in items):
        return []
    return [Finding(Code.E_REQUEST_MISMATCH, "the package's recording and range are not an "
                    "item of the request it records", "clip.json", {"package": own})]


def _is_range(value: Any) -> TypeGuard[list[int]]:
    return (isinstance(value, list) and len(value) == 2
            and all(type(v) is int for v in value) and value[0] < value[1])


__all__ = ["order_findings", "original_findings", "proof_findings",
           "request_item_findings", "selection_findings"]
