"""RFC 6962 inclusion and consistency proofs over a stream of leaf hashes.

:class:`integrity.merkle.MerkleTree` holds every leaf; a log of millions of events does
not need to. The nodes a proof carries are the roots of O(log n) disjoint leaf ranges
that the RFC's PATH / PROOF recursions name, so one pass over the leaves in order, with an
accumulator per range (O(log n) memory each), yields the proof, the same bytes
``MerkleTree`` gives (tests check both against each other and against the verifiers).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sqlalchemy import text
from sqlalchemy.engine import Connection

from integrity.errors import ProofInvalid
from integrity.merkle import ConsistencyProof, InclusionProof, MerkleAccumulator

Range = tuple[int, int]
_CHUNK = 4096


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The leaf ranges whose roots make PATH(index, D[0:size]), leaf to root."""
    if not 0 <= index < size:
        raise ProofInvalid("leaf index outside the tree", leaf_index=index, tree_size=size)
    top_down: list[Range] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            top_down.append((start + k, end))
            end = start + k
        else:
            top_down.append((start, start + k))
            start += k
    return top_down[::-1]


def consistency_ranges(old_size: int, size: int) -> list[Range]:
    """The leaf ranges whose roots make PROOF(old_size, D[0:size]), bottom first."""
    if not 0 <= old_size <= size:
        raise ProofInvalid("old size outside the tree", old_size=old_size, new_size=size)
    top_down: list[Range] = []
    start, end, whole = 0, size, True
    while 0 < old_size < end:
        k = _split(end - start)
        if old_size <= start + k:
            top_down.append((start + k, end))
            end = start + k
        else:
            top_down.append((start, start + k))
            start, whole = start + k, False
    if not whole:
        top_down.append((start, end))
    return top_down[::-1]


class _Feeder:
    """Roots of several disjoint ranges and of a few prefixes, from one ordered pass."""

    def __init__(self, ranges: list[Range], prefixes: Iterable[int]) -> None:
        self.ranges = sorted(set(ranges))
        self.roots: dict[Range, bytes] = {}
        self.prefix_roots: dict[int, bytes] = {}
        self._prefixes = set(prefixes)
        self._all, self._all_pending = MerkleAccumulator(), list[bytes]()
        self._cur = 0
        self._acc, self._pending = MerkleAccumulator(), list[bytes]()
        self.pos = 0
        if 0 in self._prefixes:
            self.prefix_roots[0] = self._all.root()

    def feed(self, leaf: bytes) -> None:
        self._all_pending.append(leaf)
        if self._cur < len(self.ranges) and self.ranges[self._cur][0] <= self.pos:
            self._pending.append(leaf)
            if len(self._pending) >= _CHUNK:
                self._acc, self._pending = self._acc.extend(self._pending), []
        self.pos += 1
        if self._cur < len(self.ranges) and self.pos == self.ranges[self._cur][1]:
            self.roots[self.ranges[self._cur]] = self._acc.extend(self._pending).root()
            self._cur += 1
            self._acc, self._pending = MerkleAccumulator(), []
        if len(self._all_pending) >= _CHUNK or self.pos in self._prefixes:
            self._all, self._all_pending = self._all.extend(self._all_pending), []
            if self.pos in self._prefixes:
                self.prefix_roots[self.pos] = self._all.root()


def _run(leaves: Iterable[bytes], size: int, ranges: list[Range],
         prefixes: Iterable[int]) -> _Feeder:
    feeder = _Feeder(ranges, prefixes)
    for leaf in leaves:
        if feeder.pos >= size:
            break
        feeder.feed(leaf)
    if feeder.pos != size:
        raise ProofInvalid("fewer leaves than the tree size", leaves=feeder.pos, size=size)
    return feeder


def prove_inclusion(leaves: Iterable[bytes], index: int, size: int,
                    ) -> tuple[InclusionProof, bytes]:
    """Inclusion proof of leaf ``index`` in the first ``size`` leaves, and their root."""
    ranges = inclusion_ranges(index, size)
    feeder = _run(leaves, size, ranges, [size])
    path = tuple(feeder.roots[r] for r in ranges)
    return InclusionProof(index, size, path), feeder.prefix_roots[size]


def prove_consistency(leaves: Iterable[bytes], old_size: int, size: int,
                      ) -> tuple[ConsistencyProof, bytes, bytes]:
    """Consistency proof from ``old_size`` to ``size``, with both roots."""
    ranges = consistency_ranges(old_size, size)
    feeder = _run(leaves, size, ranges, [old_size, size])
    path = tuple(feeder.roots[r] for r in ranges)
    return (ConsistencyProof(old_size, size, path), feeder.prefix_roots[old_size],
            feeder.prefix_roots[size])


def prove_many(leaves: Iterable[bytes], indices: Iterable[int], size: int,
               ) -> tuple[dict[int, InclusionProof], bytes]:
    """Inclusion proofs of several leaves in the first ``size`` leaves, from one pass.

    The ranges of one proof are disjoint, so a leaf feeds at most one range per proof;
    ranges shared between proofs are summed once."""
    wanted = {i: inclusion_ranges(i, size) for i in set(indices)}
    pending = sorted({r for ranges in wanted.values() for r in ranges})
    active: dict[Range, MerkleAccumulator] = {}
    roots: dict[Range, bytes] = {}
    whole, pos, nxt = MerkleAccumulator(), 0, 0
    for leaf in leaves:
        if pos >= size:
            break
        while nxt < len(pending) and pending[nxt][0] == pos:
            active[pending[nxt]] = MerkleAccumulator()
            nxt += 1
        whole = whole.extend([leaf])
        for r in list(active):
            active[r] = active[r].extend([leaf])
            if r[1] == pos + 1:
                roots[r] = active.pop(r).root()
        pos += 1
    if pos != size:
        raise ProofInvalid("fewer leaves than the tree size", leaves=pos, size=size)
    return ({i: InclusionProof(i, size, tuple(roots[r] for r in ranges))
             for i, ranges in wanted.items()}, whole.root())


def stored_leaves(conn: Connection, size: int) -> Iterator[bytes]:
    """The log's stored leaf hashes [0, size), streamed (a gap raises)."""
    rows = conn.execution_options(stream_results=True, max_row_buffer=10_000).execute(
        text("SELECT seq, leaf_hash FROM auditevent WHERE seq < :n ORDER BY seq"), {"n": size})
    for expected, (seq, leaf) in enumerate(rows):
        if int(seq) != expected:
            raise ProofInvalid("the audit log has gaps", missing=expected)
        yield bytes.fromhex(leaf)
