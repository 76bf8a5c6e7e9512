"""The audit bundle of an export, checked offline: no catalog, only the station key.

``data/audit-bundle.json`` in every package holds the audit events about its item (its
recording, the request, the case) as the log has them, each with an RFC 6962 inclusion
proof against one signed tree head, and the station's signed index of the bundle (the
sequence number and leaf hash of every entry, the head it is proven against). An event
the requester may not see is there as a hidden leaf: its hash, no content, so the proofs
and the index still hold. Checked (every problem a finding, nothing raised):

- the head's signature (``E_KEY_UNKNOWN`` / ``E_KEY_MISMATCH``, ``E_SIGNATURE_INVALID``)
  and the index's, and that the index names this head (``E_AUDIT_ROOT_MISMATCH``); in a
  center's package (records/centralbundle.py) the head is still the station's, the
  index the center's (:class:`IndexKeys`: checked against the center's key);
- each event hashes to its leaf (``E_AUDIT_EVENT_CHANGED``) and its proof leads to the
  head's root (``E_PROOF_INVALID``);
- the entries are exactly those the index lists, in order (``E_BUNDLE_INCOMPLETE``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from integrity import merkle, safejson
from integrity.canonical import canonical_bytes
from integrity.codes import Code
from integrity.errors import EvidockError
from integrity.findings import Finding
from integrity.keys import Keyring, PublicKey, is_valid
from integrity.safefs import Refused, read_named_file

NAME = "audit-bundle.json"
FORMAT = "evidock-audit-bundle/1"
_HEAD_FIELDS = ("size", "root", "time", "station_id", "key_id")


def index_bytes(*, about: Sequence[str], head: Mapping[str, Any],
                leaves: Sequence[Sequence[object]]) -> bytes:
    """What the station signs as the bundle's index."""
    return canonical_bytes({"format": FORMAT, "about": list(about),
                            "head": {"size": head.get("size"), "root": head.get("root")},
                            "leaves": [list(x) for x in leaves]})


def head_bytes(head: Mapping[str, Any]) -> bytes:
    """A signed tree head's signed bytes (archive.audit.format.SignedHead)."""
    return canonical_bytes({k: head.get(k) for k in _HEAD_FIELDS})


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def event_leaf(event: Mapping[str, Any]) -> str:
    """The audit log's leaf hash of an event body (JCS, RFC 6962 leaf prefix)."""
    return merkle.leaf_hash(canonical_bytes(dict(event))).hex()


@dataclass(frozen=True)
class IndexKeys:
    """Who signed the index of a center's package: the center (its keys, and whether
    they were given); the head is still the station's."""

    keys: Mapping[str, PublicKey]
    trusted: bool


class BundleCheck:
    def __init__(self, doc: Any, keys: Mapping[str, PublicKey], *, trusted: bool,
                 subject: str = NAME, index_keys: IndexKeys | None = None) -> None:
        self.doc, self.keys, self.trusted, self.subject = doc, keys, trusted, subject
        self.index = index_keys or IndexKeys(keys, trusted)
        self.findings: list[Finding] = []

    def add(self, code: Code, message: str, where: str = "", **details: Any) -> None:
        self.findings.append(Finding(code, message, f"{self.subject}{where}", details))

    def run(self) -> list[Finding]:
        doc = self.doc
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            self.add(Code.E_BUNDLE_INVALID, f"not an audit bundle (format {FORMAT})")
            return self.findings
        head, index = doc.get("head"), doc.get("index")
        if not isinstance(head, dict) or not isinstance(index, dict) \
                or not isinstance(doc.get("events"), list):
            self.add(Code.E_BUNDLE_INVALID, "the bundle has no head, index or event list")
            return self.findings
        self._signature("#head", head.get("key_id"), head.get("signature"),
                        lambda: head_bytes(head))
        leaves = index.get("leaves")
        self._signature("#index", index.get("key_id"), index.get("signature"),
                        lambda: index_bytes(about=doc.get("about") or [],
                                            head=_mapping(index.get("head")),
                                            leaves=leaves if isinstance(leaves, list) else []),
                        self.index)
        self._head_named(head, index)
        found = [self._entry(i, e, head) for i, e in enumerate(doc["events"])]
        self._complete([x for x in found if x is not None], leaves)
        return self.findings

    def _signature(self, where: str, key_id: object, signature: object,
                   signed: Any, by: IndexKeys | None = None) -> None:
        by = by or IndexKeys(self.keys, self.trusted)
        key = by.keys.get(key_id) if isinstance(key_id, str) else None
        if key is None:
            code = Code.E_KEY_MISMATCH if by.trusted else Code.E_KEY_UNKNOWN
            self.add(code, "signed by a key that is not the given key"
                     if by.trusted else "signed by a key not in the keyring", where,
                     key_id=key_id)
            return
        try:
            good = is_valid(key, signed(), bytes.fromhex(str(signature)))
        except (ValueError, EvidockError):
            good = False
        if not good:
            self.add(Code.E_SIGNATURE_INVALID, "the signature does not verify", where,
                     key_id=key_id)

    def _head_named(self, head: Mapping[str, Any], index: Mapping[str, Any]) -> None:
        named = index.get("head")
        if not isinstance(named, dict) or (named.get("size"), named.get("root")) != (
                head.get("size"), head.get("root")):
            self.add(Code.E_AUDIT_ROOT_MISMATCH, "the tree head is not the one the "
                     "station's index names", "#head", head_size=head.get("size"),
                     named=named)

    def _entry(self, i: int, entry: Any, head: Mapping[str, Any]) -> tuple[int, str] | None:
        where = f"#events[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("seq"), int) \
                or not isinstance(entry.get("leaf_hash"), str):
            self.add(Code.E_BUNDLE_INVALID, "an entry without its sequence number or leaf "
                     "hash", where)
            return None
        seq, leaf = entry["seq"], entry["leaf_hash"]
        if not entry.get("hidden"):
            try:
                computed = event_leaf(entry["event"])
            except (KeyError, TypeError, ValueError, EvidockError) as exc:
                self.add(Code.E_BUNDLE_INVALID, f"event {seq} is not an event: {exc}", where)
                return seq, leaf
            if computed != leaf:
                self.add(Code.E_AUDIT_EVENT_CHANGED, f"event {seq} does not hash to its "
                         "leaf: it was changed", where, seq=seq, leaf_hash=leaf,
                         computed=computed)
                leaf = computed
        self._proof(where, seq, leaf, entry.get("proof"), head)
        return seq, entry["leaf_hash"]

    def _proof(self, where: str, seq: int, leaf: str, raw: object,
               head: Mapping[str, Any]) -> None:
        try:
            proof = merkle.InclusionProof.from_dict(raw if isinstance(raw, dict) else {})
            if (proof.leaf_index, proof.tree_size) != (seq, head.get("size")):
                raise ValueError(f"proof is for leaf {proof.leaf_index} of "
                                 f"{proof.tree_size}, not {seq} of {head.get('size')}")
            merkle.verify_inclusion(bytes.fromhex(leaf), proof,
                                    bytes.fromhex(str(head.get("root"))))
        except (ValueError, TypeError, EvidockError) as exc:
            self.add(Code.E_PROOF_INVALID, f"event {seq} is not proven in the signed head: "
                     f"{exc}", where, seq=seq)

    def _complete(self, found: list[tuple[int, str]], leaves: object) -> None:
        listed = [(x[0], x[1]) for x in leaves if isinstance(x, list) and len(x) == 2] \
            if isinstance(leaves, list) else []
        if found == listed:
            return
        have, want = set(found), set(listed)
        for seq, leaf in sorted(want - have):
            self.add(Code.E_BUNDLE_INCOMPLETE, f"event {seq}, listed by the station's "
                     "index, is not in the bundle: it was removed", "#events",
                     seq=seq, leaf_hash=leaf)
        for seq, leaf in sorted(have - want):
            self.add(Code.E_BUNDLE_INCOMPLETE, f"event {seq} is in the bundle but not in "
                     "the station's index: it was added", "#events", seq=seq,
                     leaf_hash=leaf)
        if have == want:
            self.add(Code.E_BUNDLE_INCOMPLETE, "the bundle's events are not in the order "
                     "the station's index lists them", "#events")


def check_bundle(doc: Any, keys: Mapping[str, PublicKey], *, trusted: bool,
                 subject: str = NAME, index_keys: IndexKeys | None = None) -> list[Finding]:
    """Every finding about the parsed bundle ``doc`` against ``keys`` (``trusted``: the
    station's published key was given, not the keyring shipped in the package);
    ``index_keys``: a center's package's index signer (else the station's)."""
    return BundleCheck(doc, keys, trusted=trusted, subject=subject,
                       index_keys=index_keys).run()




def in_package(raw: bytes | None, keys: Mapping[str, PublicKey], *,
               trusted: bool, index_keys: IndexKeys | None = None) -> list[Finding]:
    """The findings about a package's ``data/audit-bundle.json`` (its bytes, as read once
    for the bag's digests; None: absent, which the file set judges)."""
    if raw is None:
        return []
    try:
        doc = safejson.loads(raw, f"data/{NAME}")
    except Refused as refused:
        return [refused.finding]
    return check_bundle(doc, keys, trusted=trusted, subject=f"data/{NAME}",
                        index_keys=index_keys)



MAX_BUNDLE = 256 << 20


def verify_path(path: Path, *, trusted: Mapping[str, PublicKey] | None,
                center: Mapping[str, PublicKey] | None = None) -> list[Finding]:
    """`evidock audit verify-bundle`: a package directory (its data/audit-bundle.json
    against ``trusted`` or else its own data/keys/keyring.json), a case export (each of
    its packages) or a bundle file (``trusted`` needed). ``center``: a center package's
    index signer (never taken from the package: without it that index is a finding).
    Never raises for bad input."""
    index = None if center is None else IndexKeys(center, True)
    if path.is_dir() and not path.is_symlink():
        if not (path / "data" / NAME).exists():
            found = [verify_path(d, trusted=trusted, center=center)
                     for d in sorted(path.iterdir())
                     if d.is_dir() and not d.is_symlink() and (d / "data" / NAME).exists()]
            if not found:
                return [Finding(Code.E_MISSING_FILE, "no audit bundle here "
                                "(data/audit-bundle.json)", str(path))]
            return [f for fs in found for f in fs]
        keys, findings = _keys(path, trusted)
        return findings + _file(path / "data" / NAME, keys, trusted is not None, index)
    if trusted is None:
        return [Finding(Code.E_KEY_UNKNOWN, "a bundle file alone needs the station's key "
                        "(--key)", str(path))]
    return _file(path, trusted, True, index)


def _keys(root: Path, trusted: Mapping[str, PublicKey] | None,
          ) -> tuple[Mapping[str, PublicKey], list[Finding]]:
    if trusted is not None:
        return trusted, []
    ring = root / "data" / "keys" / "keyring.json"
    try:
        keys = Keyring.from_dict(safejson.loads(
            read_named_file(ring, MAX_BUNDLE, code=Code.E_PACKAGE_PATH_UNSAFE), str(ring)))
    except Refused as refused:
        return {}, [refused.finding]
    except (OSError, TypeError, EvidockError) as exc:
        return {}, [Finding(Code.E_PACKAGE_INVALID, f"keyring unusable: {exc}", str(ring))]
    return keys.by_id(), [Finding(Code.W_KEY_UNTRUSTED, "checked against the key shipped in "
                                  "the package; pass --key with the station's published "
                                  "key to trust it", str(ring))]


def _file(path: Path, keys: Mapping[str, PublicKey], trusted: bool,
          index: IndexKeys | None = None) -> list[Finding]:
    try:
        raw = read_named_file(path, MAX_BUNDLE, code=Code.E_PACKAGE_PATH_UNSAFE)
    except Refused as refused:
        return [refused.finding]
    except OSError as exc:
        return [Finding(Code.E_MISSING_FILE, f"cannot read the bundle: {exc.strerror}",
                        str(path))]
    try:
        doc = safejson.loads(raw, str(path))
    except Refused as refused:
        return [refused.finding]
    return check_bundle(doc, keys, trusted=trusted, subject=str(path), index_keys=index)

__all__ = ["FORMAT", "NAME", "BundleCheck", "IndexKeys", "check_bundle", "event_leaf", "head_bytes",
           "in_package", "index_bytes",
           "verify_path"]
