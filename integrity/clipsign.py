"""The station's signature on what a clip package claims: its ``clip.json``.

The rendition manifest signs every segment of a whole recording; it cannot say which of
them an export took, over which range, for which request and whose approval. So the
exporter also signs the exact bytes of ``clip.json`` (recording, range, camera start,
the segments with their digests, the request and approval record) with the station key,
and puts the signature beside it in ``data/clip.sig.json``. The signed message starts
with :data:`CONTEXT`, so this signature can never stand for a manifest or a tree head
signed by the same key, nor one of those for it. The verifier checks it before it
believes any claim of ``clip.json``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from integrity import keys
from integrity.canonical import canonical_bytes
from integrity.codes import Code
from integrity.findings import Finding

CONTEXT = b"evidock clip statement v1\n"
SIG_FILE = "clip.sig.json"  # in data/, beside clip.json
_SIG_HEX = re.compile(r"[0-9a-f]{128}")


def message(clip_bytes: bytes) -> bytes:
    return CONTEXT + clip_bytes


def sign_clip(clip_bytes: bytes, keypair: keys.KeyPair) -> bytes:
    """The bytes of ``clip.sig.json`` for these exact ``clip.json`` bytes."""
    signature = keys.sign(keypair, message(clip_bytes))
    return canonical_bytes({"alg": keypair.alg, "key_id": keypair.key_id,
                            "sig": signature.hex(), "signs": "clip.json"})


def _block(doc: Any) -> tuple[str, str] | None:
    if not isinstance(doc, dict) or set(doc) != {"alg", "key_id", "sig", "signs"}:
        return None
    key_id, sig = doc["key_id"], doc["sig"]
    if not keys.signature_alg_ok(doc["alg"], key_id) or doc["signs"] != "clip.json" \
            or not isinstance(key_id, str) or not keys.KEY_ID_RE.fullmatch(key_id) \
            or not isinstance(sig, str) or not _SIG_HEX.fullmatch(sig):
        return None
    return key_id, sig


def clip_signature_findings(clip_bytes: bytes, sig_doc: Any,
                            known: Mapping[str, keys.PublicKey], *,
                            trusted: bool, who: str | None = None) -> list[Finding]:
    """Why the station's signature on ``clip_bytes`` does not hold (empty: it holds).

    ``sig_doc`` is the parsed ``clip.sig.json``; ``known`` the keys to trust (the one
    given with ``--key`` when ``trusted``, else the package's own keyring); ``who``
    names them in a finding (a center's package: the center's keys)."""
    block = _block(sig_doc)
    if block is None:
        return [Finding(Code.E_PACKAGE_INVALID, "clip.sig.json is not a station signature "
                        "{alg, key_id, sig, signs}", SIG_FILE)]
    key_id, sig = block
    public = known.get(key_id)
    if public is None or public.key_id != key_id:
        code = Code.E_KEY_MISMATCH if trusted else Code.E_KEY_UNKNOWN
        why = who or ("the given key" if trusted else "a key of the package's keyring")
        return [Finding(code, f"clip.json was not signed by {why}", "clip.json",
                        {"key_id": key_id})]
    if not keys.is_valid(public, message(clip_bytes), bytes.fromhex(sig)):
        return [Finding(Code.E_SIGNATURE_INVALID, "the station's signature on clip.json does "
                        "not verify: what it claims (range, segments, request, approval) "
                        "is not what the station exported", "clip.json", {"key_id": key_id})]
    return []


__all__ = ["CONTEXT", "SIG_FILE", "clip_signature_findings", "message", "sign_clip"]
