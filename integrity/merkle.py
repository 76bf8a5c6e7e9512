"""RFC 6962 Merkle trees with a pluggable hash (BLAKE3 by default).

* ``leaf_hash(d) = H(0x00 || d)``, ``node_hash(l, r) = H(0x01 || l || r)``; the 0x00/0x01
  prefixes keep a leaf from ever being passed off as an inner node.
* A tree of n > 1 leaves splits at the largest power of two k < n; the empty root is H(b"").
* Functions named ``*_from_hashes`` and :class:`MerkleTree` take *leaf hashes* (already
  ``leaf_hash``-ed), so a log that stores leaf hashes can root and prove without the data.
* For evidock segments the *leaf data* is the segment's raw 32-byte BLAKE3 digest, so a
  segment's leaf hash is ``H(0x00 || blake3(segment bytes))``.

Proofs are RFC 6962 §2.1.1 (PATH) and §2.1.2 (PROOF); verification follows RFC 9162
§2.1.3.2 and §2.1.4.2 and uses only sizes, hashes and roots.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

import blake3

from integrity.errors import ProofInvalid

_LEAF = b"\x00"
_NODE = b"\x01"


@dataclass(frozen=True)
class HashAlgo:
    """A named hash function with a fixed output size."""

    name: str
    digest: Callable[[bytes], bytes] = field(repr=False, compare=False)
    size: int = 32


def _blake3(data: bytes) -> bytes:
    return blake3.blake3(data).digest()


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


BLAKE3 = HashAlgo("blake3", _blake3, 32)
SHA256 = HashAlgo("sha256", _sha256, 32)
ALGOS: Mapping[str, HashAlgo] = MappingProxyType({a.name: a for a in (BLAKE3, SHA256)})


def algo_by_name(name: str) -> HashAlgo:
    try:
        return ALGOS[name]
    except KeyError:
        raise ProofInvalid("unknown hash algorithm", algo=name) from None


def leaf_hash(data: bytes, algo: HashAlgo = BLAKE3) -> bytes:
    return algo.digest(_LEAF + data)


def node_hash(left: bytes, right: bytes, algo: HashAlgo = BLAKE3) -> bytes:
    return algo.digest(_NODE + left + right)


def empty_root(algo: HashAlgo = BLAKE3) -> bytes:
    return algo.digest(b"")


def _split(n: int) -> int:
    """Largest power of two strictly less than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_hash(value: bytes, algo: HashAlgo, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != algo.size:
        raise ProofInvalid(f"{what} is not a {algo.size}-byte {algo.name} hash", what=what)


def _fold_right(parts: Sequence[bytes], algo: HashAlgo) -> bytes:
    """Root of adjacent perfect subtrees given left to right (largest first)."""
    if not parts:
        return algo.digest(b"")
    digest = algo.digest
    acc = parts[-1]
    for part in reversed(parts[:-1]):
        acc = digest(_NODE + part + acc)
    return acc


def root(leaves: Sequence[bytes], algo: HashAlgo = BLAKE3) -> bytes:
    """Merkle Tree Hash of the leaf *data* ``leaves`` (segments: their 32-byte digests)."""
    digest = algo.digest
    return root_from_hashes([digest(_LEAF + d) for d in leaves], algo)


def root_from_hashes(leaf_hashes: Iterable[bytes], algo: HashAlgo = BLAKE3) -> bytes:
    """Merkle Tree Hash from leaf hashes: one pass, O(n) hashes, O(log n) memory."""
    stack: list[bytes] = []
    _push(stack, 0, leaf_hashes, algo)
    return _fold_right(stack, algo)


def _push(stack: list[bytes], count: int, leaf_hashes: Iterable[bytes], algo: HashAlgo) -> int:
    """Append leaves to a frontier ``stack`` covering ``count`` leaves; return the new count."""
    digest, size = algo.digest, algo.size
    for leaf in leaf_hashes:
        if len(leaf) != size:
            raise ProofInvalid("leaf hash has the wrong size", index=count, size=len(leaf))
        # Each trailing 1 bit of count is a finished perfect subtree to merge with.
        node, bits = leaf, count
        while bits & 1:
            node = digest(_NODE + stack.pop() + node)
            bits >>= 1
        stack.append(node)
        count += 1
    return count


# --------------------------------------------------------------------------- accumulator


@dataclass(frozen=True)
class MerkleAccumulator:
    """Append-only root keeper: the roots of the perfect subtrees covering [0, size).

    ``frontier[i]`` is the root of the i-th perfect subtree, largest (leftmost) first, one
    per set bit of ``size``. Appending is amortised O(1) hashes; ``root()`` is O(log n).
    Immutable: ``append`` returns a new accumulator, so a log can persist each state.
    """

    size: int = 0
    frontier: tuple[bytes, ...] = ()
    algo: HashAlgo = BLAKE3

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise ProofInvalid("accumulator size must be a non-negative int", size=self.size)
        if len(self.frontier) != self.size.bit_count():
            raise ProofInvalid(
                "frontier length must equal the number of set bits of size",
                size=self.size,
                frontier=len(self.frontier),
            )
        for node in self.frontier:
            _check_hash(node, self.algo, "frontier node")

    def append(self, leaf_hash_: bytes) -> MerkleAccumulator:
        return self.extend((leaf_hash_,))

    def append_data(self, data: bytes) -> MerkleAccumulator:
        return self.extend((leaf_hash(data, self.algo),))

    def extend(self, leaf_hashes: Iterable[bytes]) -> MerkleAccumulator:
        stack = list(self.frontier)
        count = _push(stack, self.size, leaf_hashes, self.algo)
        return MerkleAccumulator(count, tuple(stack), self.algo)

    def root(self) -> bytes:
        return _fold_right(self.frontier, self.algo)

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MerkleAccumulator:
        algo = algo_by_name(_get(data, "algo", str))
        frontier = tuple(_unhex(h, "frontier") for h in _get(data, "frontier", list))
        return cls(_get(data, "size", int), frontier, algo)


# --------------------------------------------------------------------------- proofs


@dataclass(frozen=True)
class InclusionProof:
    """RFC 6962 audit path for leaf ``leaf_index`` in the tree of ``tree_size`` leaves."""

    leaf_index: int
    tree_size: int
    path: tuple[bytes, ...]
    algo: str = BLAKE3.name

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InclusionProof:
        return cls(
            _get(data, "leaf_index", int),
            _get(data, "tree_size", int),
            tuple(_unhex(h, "path") for h in _get(data, "path", list)),
            _get(data, "algo", str),
        )


@dataclass(frozen=True)
class ConsistencyProof:
    """RFC 6962 proof that the tree of ``old_size`` leaves is a prefix of ``new_size``."""

    old_size: int
    new_size: int
    path: tuple[bytes, ...]
    algo: str = BLAKE3.name

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConsistencyProof:
        return cls(
            _get(data, "old_size", int),
            _get(data, "new_size", int),
            tuple(_unhex(h, "path") for h in _get(data, "path", list)),
            _get(data, "algo", str),
        )


def _to_dict(value: Any) -> dict[str, Any]:
    """Fields as JSON: hash tuples as lists of hex, algorithms by name."""
    out: dict[str, Any] = {}
    for f in fields(value):
        item = getattr(value, f.name)
        if isinstance(item, tuple):
            item = [h.hex() for h in item]
        out[f.name] = item.name if isinstance(item, HashAlgo) else item
    return out


def _get(data: Mapping[str, Any], key: str, kind: type) -> Any:
    value = data.get(key) if isinstance(data, Mapping) else None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProofInvalid(f"field {key!r} missing or not {kind.__name__}", field=key)
    if isinstance(value, int) and value < 0:
        raise ProofInvalid(f"field {key!r} must be non-negative", field=key, value=value)
    return value


def _unhex(value: object, key: str) -> bytes:
    if not isinstance(value, str):
        raise ProofInvalid(f"{key} entries must be hex strings", field=key)
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise ProofInvalid(f"{key} entry is not hex", field=key, value=value) from None


class MerkleTree:
    """Leaf hashes plus memoised perfect-subtree hashes, for proofs at any size <= n.

    Building costs O(n) hashes once; each proof then costs O(log^2 n) lookups and at most
    a few dozen hashes. Only subtrees of >= 2**_CACHED_FROM leaves are kept (memory about
    n/8 hashes); smaller ones are rehashed from the leaves on demand.
    """

    _CACHED_FROM = 4

    def __init__(self, leaf_hashes: Sequence[bytes], algo: HashAlgo = BLAKE3) -> None:
        self.algo = algo
        self._leaves: tuple[bytes, ...] = tuple(leaf_hashes)
        for i, node in enumerate(self._leaves):
            if not isinstance(node, bytes) or len(node) != algo.size:
                raise ProofInvalid("leaf hash has the wrong size", index=i)
        self._levels = self._build_levels()

    @property
    def size(self) -> int:
        return len(self._leaves)

    def _build_levels(self) -> list[list[bytes]]:
        digest = self.algo.digest
        level: Sequence[bytes] = self._leaves
        levels: list[list[bytes]] = []
        for height in range(1, max(self._CACHED_FROM, len(self._leaves).bit_length()) + 1):
            # Pairwise over complete pairs only: an odd last node has no perfect parent.
            level = [digest(_NODE + a + b) for a, b in zip(level[0::2], level[1::2], strict=False)]
            if height >= self._CACHED_FROM:
                levels.append(level)
        return levels

    def _perfect(self, height: int, index: int) -> bytes:
        """Root of the aligned perfect subtree of 2**height leaves starting at index<<height."""
        if height == 0:
            return self._leaves[index]
        if height >= self._CACHED_FROM:
            return self._levels[height - self._CACHED_FROM][index]
        start = index << height
        return root_from_hashes(self._leaves[start : start + (1 << height)], self.algo)

    def _range(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for the ranges RFC 6962 recursion produces (start aligned)."""
        parts: list[bytes] = []
        pos = start
        for height in range((end - start).bit_length() - 1, -1, -1):
            if (end - start) >> height & 1:
                parts.append(self._perfect(height, pos >> height))
                pos += 1 << height
        return _fold_right(parts, self.algo)

    def _size(self, tree_size: int | None) -> int:
        size = self.size if tree_size is None else tree_size
        if not 0 <= size <= self.size:
            raise ProofInvalid("tree size beyond the leaves held", size=size, leaves=self.size)
        return size

    def root(self, tree_size: int | None = None) -> bytes:
        return self._range(0, self._size(tree_size))

    def inclusion_proof(self, index: int, tree_size: int | None = None) -> InclusionProof:
        """RFC 6962 PATH(index, D[0:tree_size]), leaf-to-root order."""
        size = self._size(tree_size)
        if not 0 <= index < size:
            raise ProofInvalid("leaf index outside the tree", leaf_index=index, tree_size=size)
        top_down: list[bytes] = []
        start, end = 0, size
        while end - start > 1:
            k = _split(end - start)
            if index < start + k:
                top_down.append(self._range(start + k, end))
                end = start + k
            else:
                top_down.append(self._range(start, start + k))
                start += k
        return InclusionProof(index, size, tuple(reversed(top_down)), self.algo.name)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> ConsistencyProof:
        """RFC 6962 PROOF(old_size, D[0:new_size]); empty when old_size is 0 or new_size."""
        size = self._size(new_size)
        if not 0 <= old_size <= size:
            raise ProofInvalid("old size outside the tree", old_size=old_size, new_size=size)
        top_down: list[bytes] = []
        start, end, whole = 0, size, True
        while 0 < old_size < end:
            k = _split(end - start)
            if old_size <= start + k:
                top_down.append(self._range(start + k, end))
                end = start + k
            else:
                top_down.append(self._range(start, start + k))
                start, whole = start + k, False
        if not whole:
            # SUBPROOF(m, D[m], false): the old subtree root itself is needed.
            top_down.append(self._range(start, end))
        return ConsistencyProof(old_size, size, tuple(reversed(top_down)), self.algo.name)


def inclusion_proof(
    leaf_hashes: Sequence[bytes], index: int, algo: HashAlgo = BLAKE3
) -> InclusionProof:
    """Proof for ``leaf_hashes[index]`` in the tree of all ``leaf_hashes`` (O(n) build)."""
    return MerkleTree(leaf_hashes, algo).inclusion_proof(index)


def consistency_proof(
    leaf_hashes: Sequence[bytes], old_size: int, algo: HashAlgo = BLAKE3
) -> ConsistencyProof:
    """Proof that the first ``old_size`` leaves' tree is a prefix of the whole tree."""
    return MerkleTree(leaf_hashes, algo).consistency_proof(old_size)


# --------------------------------------------------------------------------- verification


def _resolve(name: str, algo: HashAlgo | None) -> HashAlgo:
    if algo is None:
        return algo_by_name(name)
    if algo.name != name:
        raise ProofInvalid("proof made with another hash algorithm", proof=name, given=algo.name)
    return algo


def root_from_inclusion(
    leaf_hash_: bytes, proof: InclusionProof, algo: HashAlgo | None = None
) -> bytes:
    """The root ``proof`` leads to from ``leaf_hash_`` (RFC 9162 §2.1.3.2, steps 1-5)."""
    h = _resolve(proof.algo, algo)
    index, size = proof.leaf_index, proof.tree_size
    details = {"leaf_index": index, "tree_size": size}
    if not 0 <= index < size:
        raise ProofInvalid("leaf index outside the tree", **details)
    _check_hash(leaf_hash_, h, "leaf hash")
    fn, sn, r = index, size - 1, leaf_hash_
    for p in proof.path:
        _check_hash(p, h, "proof node")
        if sn == 0:
            raise ProofInvalid("inclusion proof is too long", **details)
        if fn & 1 or fn == sn:
            r = h.digest(_NODE + p + r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = h.digest(_NODE + r + p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofInvalid("inclusion proof is too short", **details)
    return r


def verify_inclusion(
    leaf_hash_: bytes, proof: InclusionProof, expected_root: bytes, algo: HashAlgo | None = None
) -> None:
    """Raise ProofInvalid unless ``proof`` puts ``leaf_hash_`` under ``expected_root``."""
    computed = root_from_inclusion(leaf_hash_, proof, algo)
    where = {"leaf_index": proof.leaf_index, "tree_size": proof.tree_size}
    _same_root("inclusion proof does not lead to the expected root", where, expected_root, computed)


def check_inclusion(
    leaf_hash_: bytes, proof: InclusionProof, expected_root: bytes, algo: HashAlgo | None = None
) -> bool:
    try:
        verify_inclusion(leaf_hash_, proof, expected_root, algo)
    except ProofInvalid:
        return False
    return True


def _consistency_roots(
    proof: ConsistencyProof, first_hash: bytes, h: HashAlgo
) -> tuple[bytes, bytes]:
    """RFC 9162 §2.1.4.2 steps 2-7 for 0 < old_size < new_size: returns (fr, sr)."""
    first, second = proof.old_size, proof.new_size
    path = list(proof.path)
    if first & (first - 1) == 0:  # exact power of two: the old root is a proof node
        path.insert(0, first_hash)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofInvalid("consistency proof is too long", old_size=first, new_size=second)
        if fn & 1 or fn == sn:
            fr = h.digest(_NODE + c + fr)
            sr = h.digest(_NODE + c + sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = h.digest(_NODE + sr + c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofInvalid("consistency proof is too short", old_size=first, new_size=second)
    return fr, sr


def verify_consistency(
    proof: ConsistencyProof, old_root: bytes, new_root: bytes, algo: HashAlgo | None = None
) -> None:
    """Raise ProofInvalid unless ``proof`` shows ``old_root`` is a prefix of ``new_root``."""
    h = _resolve(proof.algo, algo)
    first, second = proof.old_size, proof.new_size
    sizes = {"old_size": first, "new_size": second}
    _check_hash(old_root, h, "old root")
    _check_hash(new_root, h, "new root")
    for p in proof.path:
        _check_hash(p, h, "proof node")
    if not 0 <= first <= second:
        raise ProofInvalid("old size must not exceed new size", **sizes)
    if first in (0, second):
        # Trivial cases carry no proof; the old root must be the empty or the same root.
        if proof.path:
            raise ProofInvalid("proof must be empty for these sizes", **sizes)
        want = h.digest(b"") if first == 0 else new_root
        _same_root("old root does not match", sizes, want, old_root)
        return
    if not proof.path:
        raise ProofInvalid("consistency proof is empty", **sizes)
    fr, sr = _consistency_roots(proof, old_root, h)
    _same_root("consistency proof does not lead to the old root", sizes, old_root, fr)
    _same_root("consistency proof does not lead to the new root", sizes, new_root, sr)


def _same_root(message: str, sizes: Mapping[str, int], expected: bytes, computed: bytes) -> None:
    if computed != expected:
        raise ProofInvalid(
            message, **sizes, expected_root=expected.hex(), computed_root=computed.hex()
        )


def check_consistency(
    proof: ConsistencyProof, old_root: bytes, new_root: bytes, algo: HashAlgo | None = None
) -> bool:
    try:
        verify_consistency(proof, old_root, new_root, algo)
    except ProofInvalid:
        return False
    return True
