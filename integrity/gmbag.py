"""The 国密 layer of a package: SM3 BagIt manifests signed with SM2 (profile ``gm``).

A station of the ``gm`` profile signs everything with SM2 (integrity/keys.py); its
exports also carry SM3 digests of every file, so a recipient holding only national-
standard tools can check them::

    bag-info.txt            Evidock-Crypto-Profile: gm
    manifest-sm3.txt        SM3 of every payload file (beside SHA-256 and SHA-512)
    manifest-sm3.sig.json   SM2 signature over manifest-sm3.txt's exact bytes
    tagmanifest-sm3.txt     SM3 of the tag files (bag-info, manifests, that signature)

Why there, and not SM3 of every byte at ingest: SM3 runs at ~410 MB/s here, 0.31×
SHA-256 and ~1/15 of BLAKE3 (docs/BENCHMARKS.md "国密 profile"), and the standard asks
for SM3 where a signature is made and checked, not for the content address of a blob. The station's
SM2 signatures on manifests, records and tree heads already hash with SM3 (ZA‖M).

A package declares its profile; a ``gm`` package without its SM3 layer, or one whose
statement (clip.json / case.json) was signed with a key of the other suite, is a
finding, so stripping the layer or swapping the suite cannot pass unnoticed. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from integrity import bag, keys, safejson
from integrity.canonical import canonical_bytes
from integrity.codes import Code
from integrity.findings import Finding
from integrity.safefs import Refused

PROFILE_TAG = "Evidock-Crypto-Profile"
SM3_MANIFEST = "manifest-sm3.txt"
SM3_TAGMANIFEST = "tagmanifest-sm3.txt"
SIG = "manifest-sm3.sig.json"
FILES = (SM3_MANIFEST, SM3_TAGMANIFEST, SIG)
MAX_SIG = 4096
CONTEXT = b"evidock sm3 manifest v1\n"


def profile_line(alg: str) -> str:
    """bag-info.txt's line naming the suite that signed the package."""
    return f"{PROFILE_TAG}: {keys.profile_of(alg)}\n"


def sign(manifest_bytes: bytes, keypair: keys.KeyPair) -> bytes:
    signature = keys.sign(keypair, CONTEXT + manifest_bytes)
    return canonical_bytes({"alg": keypair.alg, "key_id": keypair.key_id,
                            "sig": signature.hex(), "signs": SM3_MANIFEST})


def tags_of(texts: Mapping[str, bytes]) -> dict[str, str]:
    """bag-info.txt's tags (its malformations are the bag checks' findings)."""
    raw = texts.get("bag-info.txt")
    return bag.parse_tags("bag-info.txt", raw)[0] if raw is not None else {}


def signer(raw_sig: bytes | None) -> object:
    """The key id a statement's signature file names (None: none readable; its own
    check says why)."""
    try:
        doc = safejson.loads(raw_sig, SIG) if raw_sig is not None else None
    except Refused:
        return None
    return doc.get("key_id") if isinstance(doc, dict) else None


def declared(tags: Mapping[str, str]) -> str:
    """The profile bag-info.txt declares (packages from before profiles: ``default``)."""
    return tags.get(PROFILE_TAG, "default")


def expected(tags: Mapping[str, str]) -> set[str]:
    """The files a package of the declared profile must hold beyond the BagIt ones."""
    return set(FILES) if declared(tags) == "gm" else set()


def findings(tags: Mapping[str, str], texts: Mapping[str, bytes],
             known: Mapping[str, keys.PublicKey], statement_key_id: object,
             *, trusted: bool) -> list[Finding]:
    """The profile against the statement's key, and the SM2 signature on the SM3 layer.
    (A missing layer file is the file set's finding; its digests, the bag's.)"""
    profile = declared(tags)
    if profile not in keys.PROFILES:
        return [Finding(Code.E_CRYPTO_PROFILE, f"unknown crypto profile {profile[:40]!r}",
                        "bag-info.txt", {"profile": profile[:40]})]
    out: list[Finding] = []
    signer = keys.alg_of(statement_key_id)
    if signer is not None and signer != keys.PROFILES[profile]:
        out.append(Finding(Code.E_CRYPTO_PROFILE, f"the package says profile {profile} but "
                           f"its statement is signed with {signer}", "bag-info.txt",
                           {"profile": profile, "key_id": str(statement_key_id)}))
    if profile == "gm" and SM3_MANIFEST in texts and SIG in texts:
        out += _signature(texts[SM3_MANIFEST], texts[SIG], known, trusted=trusted)
    return out


def _signature(manifest: bytes, raw_sig: bytes, known: Mapping[str, keys.PublicKey],
               *, trusted: bool) -> list[Finding]:
    try:
        doc: Any = safejson.loads(raw_sig, SIG)
    except Refused as refused:
        return [refused.finding]
    if not isinstance(doc, dict) or set(doc) != {"alg", "key_id", "sig", "signs"} \
            or doc["signs"] != SM3_MANIFEST or doc["alg"] != keys.SM2 \
            or not keys.signature_alg_ok(doc["alg"], doc["key_id"]) \
            or not isinstance(doc["sig"], str):
        return [Finding(Code.E_CRYPTO_PROFILE, "manifest-sm3.sig.json is not an SM2 "
                        "signature {alg: sm2, key_id, sig, signs: manifest-sm3.txt}", SIG)]
    public = known.get(doc["key_id"])
    if public is None:
        code = Code.E_KEY_MISMATCH if trusted else Code.E_KEY_UNKNOWN
        return [Finding(code, "manifest-sm3.txt was not signed by a known station key", SIG,
                        {"key_id": safejson.brief(doc["key_id"])})]
    try:
        signature = bytes.fromhex(doc["sig"])
    except ValueError:
        signature = b""
    if not keys.is_valid(public, CONTEXT + manifest, signature):
        return [Finding(Code.E_SIGNATURE_INVALID, "the SM2 signature on manifest-sm3.txt "
                        "does not verify: the SM3 digests are not the station's", SIG,
                        {"key_id": doc["key_id"]})]
    return []
