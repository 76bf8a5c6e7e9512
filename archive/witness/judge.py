"""Does a station's new signed head extend the log its witness saw? (RFC 6962 gossip)

Pure: the last head the witness countersigned for the station, the new head, the
consistency proof the station sent, and the station's public keyring in; a verdict with
its reason out. Cheapest checks first: the station named, the signature, the sizes, then
the proof. Two kinds of verdict are evidence against the station and are kept by the
witness: ``fork`` (two signed logs that cannot both be true: the same size with another
root, or a proof that does not join the new root to the witnessed one) and
``truncated`` (a later signed head over fewer events). The others refuse the head
without blaming the station (it may be a replay of an old head or a damaged request).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from archive.audit.format import SignedHead
from archive.audit.proofs import consistency_ranges
from integrity.errors import ProofInvalid
from integrity.keys import Keyring
from integrity.merkle import BLAKE3, ConsistencyProof, verify_consistency


class Kind(StrEnum):
    FIRST = "first"  # nothing witnessed before: trust on first use
    EXTENDS = "extends"  # a proof joins the new root to the witnessed one
    SAME = "same"  # the size and root already witnessed
    STALE = "stale"  # an older head than the last witnessed (a replay): not countersigned
    WRONG_STATION = "wrong_station"
    BAD_SIGNATURE = "bad_signature"
    BAD_PROOF = "bad_proof"  # malformed, or for other sizes than the two heads'
    FORK = "fork"
    TRUNCATED = "truncated"


ACCEPTED = frozenset({Kind.FIRST, Kind.EXTENDS, Kind.SAME})
#: Verdicts that are evidence against the station's log: kept, audited, reported.
CONFLICTS = frozenset({Kind.FORK, Kind.TRUNCATED})


@dataclass(frozen=True)
class Verdict:
    kind: Kind
    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.kind in ACCEPTED

    @property
    def conflict(self) -> bool:
        return self.kind in CONFLICTS


def judge(*, station_id: str, last: SignedHead | None, new: SignedHead,
          proof: ConsistencyProof | None, keyring: Keyring) -> Verdict:
    """The verdict on ``new`` given the last countersigned head ``last`` (None: none)."""
    if new.station_id != station_id:
        return Verdict(Kind.WRONG_STATION, f"the head is signed for station "
                       f"{new.station_id!r}, not {station_id!r}",
                       {"head_station": new.station_id})
    bad = new.check(keyring, f"station:{station_id}")
    if bad:
        return Verdict(Kind.BAD_SIGNATURE, bad[0].message, {"key_id": new.key_id})
    if last is None:
        return Verdict(Kind.FIRST, "the first head witnessed for this station")
    sizes = {"witnessed_size": last.size, "size": new.size}
    if new.size == last.size:
        if new.root == last.root:
            return Verdict(Kind.SAME, "the log has not grown since it was witnessed", sizes)
        return Verdict(Kind.FORK, "two signed heads of the same size with different roots",
                       {**sizes, "witnessed_root": last.root, "root": new.root})
    if new.size < last.size:
        if new.time <= last.time:
            return Verdict(Kind.STALE, "an older head than the last witnessed", sizes)
        return Verdict(Kind.TRUNCATED, "the station signed a smaller log after a larger "
                       "one was witnessed: events were removed", sizes)
    return _extends(last, new, proof, sizes)


def _extends(last: SignedHead, new: SignedHead, proof: ConsistencyProof | None,
             sizes: dict[str, int]) -> Verdict:
    if proof is None or (proof.old_size, proof.new_size) != (last.size, new.size):
        got = None if proof is None else [proof.old_size, proof.new_size]
        return Verdict(Kind.BAD_PROOF, "a consistency proof from the witnessed size to the "
                       "new size is needed", {**sizes, "proof_sizes": got})
    # The proof's shape is fixed by the two sizes; only a well-formed proof that still
    # does not join the roots is a fork (a malformed one blames the request).
    wanted = len(consistency_ranges(last.size, new.size))
    if proof.algo != BLAKE3.name or len(proof.path) != wanted or \
            any(len(node) != BLAKE3.size for node in proof.path):
        return Verdict(Kind.BAD_PROOF, f"a {BLAKE3.name} proof of {wanted} nodes is needed "
                       "for these sizes", {**sizes, "nodes": len(proof.path)})
    try:
        verify_consistency(proof, bytes.fromhex(last.root), bytes.fromhex(new.root))
    except (ProofInvalid, ValueError) as exc:
        return Verdict(Kind.FORK, f"the new head does not extend the witnessed log: {exc}",
                       {**sizes, "witnessed_root": last.root, "root": new.root})
    return Verdict(Kind.EXTENDS, "the log grew; the proof joins the roots", sizes)
