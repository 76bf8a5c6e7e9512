"""RFC 6962 Merkle tree: CT test vectors, exhaustive small trees, tampering, scale."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrity.errors import ProofInvalid
from integrity.merkle import (
    BLAKE3,
    SHA256,
    ConsistencyProof,
    HashAlgo,
    InclusionProof,
    MerkleAccumulator,
    MerkleTree,
    _consistency_roots,
    check_consistency,
    check_inclusion,
    consistency_proof,
    empty_root,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    root_from_hashes,
    root_from_inclusion,
    verify_consistency,
    verify_inclusion,
)

# Vectors from the certificate-transparency / transparency-dev merkle test suites (SHA-256).
LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    bytes.fromhex(h)
    for h in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]
SHA256_EMPTY = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")

# (leaf index [0-based], tree size, path)
INCLUSION_VECTORS = [
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (0, 1, []),
]
# (old size, new size, path)
CONSISTENCY_VECTORS = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]

VECTOR_HASHES = [leaf_hash(d, SHA256) for d in LEAVES]


# --------------------------------------------------------------------------- reference


def ref_mth(d: Sequence[bytes], h: HashAlgo) -> bytes:
    """RFC 6962 §2.1 MTH, written recursively exactly as the RFC states it."""
    n = len(d)
    if n == 0:
        return h.digest(b"")
    if n == 1:
        return leaf_hash(d[0], h)
    k = 1 << ((n - 1).bit_length() - 1)
    return node_hash(ref_mth(d[:k], h), ref_mth(d[k:], h), h)


def ref_path(m: int, d: Sequence[bytes], h: HashAlgo) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*ref_path(m, d[:k], h), ref_mth(d[k:], h)]
    return [*ref_path(m - k, d[k:], h), ref_mth(d[:k], h)]


def ref_subproof(m: int, d: Sequence[bytes], b: bool, h: HashAlgo) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d, h)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*ref_subproof(m, d[:k], b, h), ref_mth(d[k:], h)]
    return [*ref_subproof(m - k, d[k:], False, h), ref_mth(d[:k], h)]


def data(n: int) -> list[bytes]:
    return [i.to_bytes(4, "big") * (i % 3 + 1) for i in range(n)]


def flip(b: bytes, bit: int) -> bytes:
    out = bytearray(b)
    out[bit // 8 % len(out)] ^= 1 << (bit % 8)
    return bytes(out)


# --------------------------------------------------------------------------- vectors


def test_primitives_match_rfc6962_definitions() -> None:
    assert leaf_hash(b"x", SHA256) == hashlib.sha256(b"\x00x").digest()
    assert node_hash(b"a", b"b", SHA256) == hashlib.sha256(b"\x01ab").digest()
    assert empty_root(SHA256) == SHA256_EMPTY
    assert root([], SHA256) == SHA256_EMPTY
    assert root([], BLAKE3) == blake3.blake3(b"").digest()
    assert leaf_hash(b"x") == blake3.blake3(b"\x00x").digest()  # BLAKE3 is the default


@pytest.mark.parametrize("size", range(1, 9))
def test_ct_roots(size: int) -> None:
    assert root(LEAVES[:size], SHA256) == ROOTS[size - 1]
    assert root_from_hashes(VECTOR_HASHES[:size], SHA256) == ROOTS[size - 1]
    assert MerkleTree(VECTOR_HASHES, SHA256).root(size) == ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION_VECTORS)
def test_ct_inclusion_vectors(index: int, size: int, path: list[str]) -> None:
    proof = MerkleTree(VECTOR_HASHES[:size], SHA256).inclusion_proof(index)
    assert [p.hex() for p in proof.path] == path
    assert proof == InclusionProof(index, size, tuple(map(bytes.fromhex, path)), "sha256")
    verify_inclusion(VECTOR_HASHES[index], proof, ROOTS[size - 1])
    for probe in corrupt_inclusion(proof):
        assert not check_inclusion(VECTOR_HASHES[index], probe, ROOTS[size - 1]), probe
    assert not check_inclusion(b"WrongLeaf", proof, ROOTS[size - 1])
    assert not check_inclusion(VECTOR_HASHES[index], proof, SHA256_EMPTY)
    assert not check_inclusion(VECTOR_HASHES[index], proof, SOME_HASH)


def corrupt_inclusion(proof: InclusionProof) -> list[InclusionProof]:
    """The probes of transparency-dev's verify_test.go corruptInclusionProof."""
    i, n, path, a = proof.leaf_index, proof.tree_size, proof.path, proof.algo
    probes = [
        InclusionProof(i - 1, n, path, a),
        InclusionProof(i + 1, n, path, a),
        InclusionProof(i ^ 2, n, path, a),
        InclusionProof(i, n * 2, path, a),
        InclusionProof(i, n // 2, path, a),
        InclusionProof(i, n, (*path, b""), a),
        InclusionProof(i, n, (*path, ROOTS[-1]), a),
        InclusionProof(i, n, (b"", *path), a),
        InclusionProof(i, n, (ROOTS[-1], *path), a),
    ]
    for k in range(len(path)):
        probes.append(InclusionProof(i, n, (*path[:k], flip(path[k], 3), *path[k + 1 :]), a))
    if path:
        probes.append(InclusionProof(i, n, path[:-1], a))
    if len(path) > 1:
        probes.append(InclusionProof(i, n, (path[0], SOME_HASH, *path[1:]), a))
    return probes


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY_VECTORS)
def test_ct_consistency_vectors(old: int, new: int, path: list[str]) -> None:
    proof = MerkleTree(VECTOR_HASHES[:new], SHA256).consistency_proof(old)
    assert [p.hex() for p in proof.path] == path
    r1, r2 = ROOTS[old - 1], ROOTS[new - 1]
    verify_consistency(proof, r1, r2)
    if not path:
        return
    for probe, p1, p2 in corrupt_consistency(proof, r1, r2):
        assert not check_consistency(probe, p1, p2), probe


def corrupt_consistency(
    proof: ConsistencyProof, r1: bytes, r2: bytes
) -> list[tuple[ConsistencyProof, bytes, bytes]]:
    """The probes of transparency-dev's verify_test.go corruptConsistencyProof."""
    m, n, path, a = proof.old_size, proof.new_size, proof.path, proof.algo
    same = ConsistencyProof(m, n, path, a)
    probes = [
        (ConsistencyProof(m - 1, n, path, a), r1, r2),
        (ConsistencyProof(m + 1, n, path, a), r1, r2),
        (ConsistencyProof(m ^ 2, n, path, a), r1, r2),
        (ConsistencyProof(m, n * 2, path, a), r1, r2),
        (ConsistencyProof(m, n // 2, path, a), r1, r2),
        (same, b"WrongRoot", r2),
        (same, r1, b"WrongRoot"),
        (same, r2, r1),
        (ConsistencyProof(m, n, (), a), r1, r2),
        (ConsistencyProof(m, n, (*path, b""), a), r1, r2),
        (ConsistencyProof(m, n, (*path, r1), a), r1, r2),
        (ConsistencyProof(m, n, (*path, r2), a), r1, r2),
        (ConsistencyProof(m, n, (b"", *path), a), r1, r2),
        (ConsistencyProof(m, n, (r1, *path), a), r1, r2),
        (ConsistencyProof(m, n, (r2, *path), a), r1, r2),
        (ConsistencyProof(m, n, (path[0], *path), a), r1, r2),
        (ConsistencyProof(m, n, path[:-1], a), r1, r2),
    ]
    for k in range(len(path)):
        bad = (*path[:k], flip(path[k], 4), *path[k + 1 :])
        probes.append((ConsistencyProof(m, n, bad, a), r1, r2))
    return probes


def test_trivial_consistency_cases() -> None:
    r = ROOTS[0]
    verify_consistency(ConsistencyProof(0, 0, (), "sha256"), SHA256_EMPTY, SHA256_EMPTY)
    verify_consistency(ConsistencyProof(0, 5, (), "sha256"), SHA256_EMPTY, ROOTS[4])
    verify_consistency(ConsistencyProof(1, 1, (), "sha256"), r, r)
    bad = [
        (ConsistencyProof(1, 1, (), "sha256"), r, ROOTS[1]),  # same size, different roots
        (ConsistencyProof(1, 0, (), "sha256"), r, r),  # time travel
        (ConsistencyProof(2, 1, (), "sha256"), r, r),
        (ConsistencyProof(1, 2, (), "sha256"), r, ROOTS[1]),  # empty proof
        (ConsistencyProof(1, 1, (SHA256_EMPTY,), "sha256"), r, r),  # needless node
        (ConsistencyProof(0, 1, (SHA256_EMPTY,), "sha256"), SHA256_EMPTY, r),
        (ConsistencyProof(0, 1, (), "sha256"), SOME_HASH, r),  # empty tree has one root
    ]
    for proof, r1, r2 in bad:
        assert not check_consistency(proof, r1, r2), proof


def test_inclusion_edge_cases() -> None:
    single = leaf_hash(b"data", SHA256)
    verify_inclusion(single, InclusionProof(0, 1, (), "sha256"), single)
    for index, size in ((0, 0), (1, 0), (2, 1), (-1, 1)):
        proof = InclusionProof(index, size, (), "sha256")
        assert not check_inclusion(SOME_HASH, proof, SHA256_EMPTY)
    assert not check_inclusion(b"", InclusionProof(0, 1, (), "sha256"), b"")


def test_failure_details_name_index_size_and_roots() -> None:
    proof = MerkleTree(VECTOR_HASHES, SHA256).inclusion_proof(5)
    with pytest.raises(ProofInvalid) as info:
        verify_inclusion(VECTOR_HASHES[4], proof, ROOTS[7])
    details = info.value.details
    assert details["leaf_index"] == 5 and details["tree_size"] == 8
    assert details["expected_root"] == ROOTS[7].hex()
    assert details["computed_root"] == root_from_inclusion(VECTOR_HASHES[4], proof).hex()
    cproof = MerkleTree(VECTOR_HASHES, SHA256).consistency_proof(3)
    with pytest.raises(ProofInvalid) as info:
        verify_consistency(cproof, ROOTS[3], ROOTS[7])
    assert info.value.details["old_size"] == 3 and info.value.details["new_size"] == 8
    assert info.value.code == "E_PROOF_INVALID"


def test_algorithm_is_bound_to_the_proof() -> None:
    hashes = [leaf_hash(d) for d in data(5)]
    proof = inclusion_proof(hashes, 3)
    assert proof.algo == "blake3"
    verify_inclusion(hashes[3], proof, root_from_hashes(hashes))
    with pytest.raises(ProofInvalid):
        verify_inclusion(hashes[3], proof, root_from_hashes(hashes), SHA256)
    renamed = InclusionProof(proof.leaf_index, proof.tree_size, proof.path, "sha256")
    assert not check_inclusion(hashes[3], renamed, root_from_hashes(hashes))
    assert not check_inclusion(hashes[3], InclusionProof(3, 5, proof.path, "md5"), SOME_HASH)


def test_proof_dict_round_trip_and_validation() -> None:
    tree = MerkleTree([leaf_hash(d) for d in data(11)])
    ip, cp = tree.inclusion_proof(7), tree.consistency_proof(6)
    assert InclusionProof.from_dict(ip.to_dict()) == ip
    assert ConsistencyProof.from_dict(cp.to_dict()) == cp
    assert all(isinstance(h, str) for h in ip.to_dict()["path"])
    bad_dicts = [
        {**ip.to_dict(), "leaf_index": -1},
        {**ip.to_dict(), "leaf_index": True},
        {**ip.to_dict(), "path": ["zz"]},
        {**ip.to_dict(), "path": "00"},
        {k: v for k, v in ip.to_dict().items() if k != "algo"},
    ]
    for bad in bad_dicts:
        with pytest.raises(ProofInvalid):
            InclusionProof.from_dict(bad)


def test_generation_rejects_impossible_requests() -> None:
    tree = MerkleTree([leaf_hash(d) for d in data(4)])
    for call in (
        lambda: tree.inclusion_proof(4),
        lambda: tree.inclusion_proof(-1),
        lambda: tree.inclusion_proof(0, 5),
        lambda: tree.consistency_proof(5),
        lambda: tree.consistency_proof(3, 2),
        lambda: MerkleTree([b"short"]),
        lambda: root_from_hashes([b"short"]),
    ):
        with pytest.raises(ProofInvalid):
            call()


# --------------------------------------------------------------------------- exhaustive


@pytest.mark.parametrize("algo", [SHA256, BLAKE3], ids=lambda a: a.name)
def test_every_proof_up_to_40_leaves_matches_rfc_and_verifies(algo: HashAlgo) -> None:
    leaves = data(40)
    hashes = [leaf_hash(d, algo) for d in leaves]
    tree = MerkleTree(hashes, algo)
    roots = [ref_mth(leaves[:n], algo) for n in range(41)]
    for n in range(41):
        assert tree.root(n) == roots[n] == root(leaves[:n], algo)
        for m in range(n):
            proof = tree.inclusion_proof(m, n)
            assert list(proof.path) == ref_path(m, leaves[:n], algo)
            verify_inclusion(hashes[m], proof, roots[n])
        for m in range(n + 1):
            cproof = tree.consistency_proof(m, n)
            expected = ref_subproof(m, leaves[:n], True, algo) if 0 < m < n else []
            assert list(cproof.path) == expected
            verify_consistency(cproof, roots[m], roots[n])


TREE40 = [leaf_hash(d) for d in data(40)]
BIG = MerkleTree(TREE40)
ALT = tuple(blake3.blake3(bytes([i])).digest() for i in range(16))


def same_inclusion_shape(m: int, n: int, m2: int, n2: int, length: int) -> bool:
    """Would the verifier combine any path identically for (m, n) and (m2, n2)?

    RFC 6962 roots do not commit to the tree size, so a claimed size with the same
    left/right layout is indistinguishable; it is not a forgery (the leaf, path and root
    are the genuine ones). Tested by running both layouts over unrelated hashes.
    """
    try:
        a = root_from_inclusion(ALT[-1], InclusionProof(m, n, ALT[:length]))
        b = root_from_inclusion(ALT[-1], InclusionProof(m2, n2, ALT[:length]))
    except ProofInvalid:
        return False
    return a == b


def same_consistency_shape(m: int, n: int, m2: int, n2: int, length: int) -> bool:
    if not (0 < m2 < n2):
        return False
    try:
        a = _consistency_roots(ConsistencyProof(m, n, ALT[:length]), ALT[-1], BLAKE3)
        b = _consistency_roots(ConsistencyProof(m2, n2, ALT[:length]), ALT[-1], BLAKE3)
    except ProofInvalid:
        return False
    return a == b


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_tampered_inclusion_proofs_fail(draw: st.DataObject) -> None:
    n = draw.draw(st.integers(1, 40))
    m = draw.draw(st.integers(0, n - 1))
    proof, good_root, leaf = BIG.inclusion_proof(m, n), BIG.root(n), TREE40[m]
    assert check_inclusion(leaf, proof, good_root)
    bit = draw.draw(st.integers(0, 255))
    choice = draw.draw(st.sampled_from(["path", "leaf", "root", "index", "size"]))
    if choice == "path" and proof.path:
        k = draw.draw(st.integers(0, len(proof.path) - 1))
        path = (*proof.path[:k], flip(proof.path[k], bit), *proof.path[k + 1 :])
        assert not check_inclusion(leaf, InclusionProof(m, n, path), good_root)
    elif choice == "leaf":
        assert not check_inclusion(flip(leaf, bit), proof, good_root)
    elif choice == "root":
        assert not check_inclusion(leaf, proof, flip(good_root, bit))
    elif choice in ("index", "size"):
        m2 = draw.draw(st.integers(-2, n + 2)) if choice == "index" else m
        n2 = draw.draw(st.integers(0, 80)) if choice == "size" else n
        if (m2, n2) == (m, n) or same_inclusion_shape(m, n, m2, n2, len(proof.path)):
            return
        assert not check_inclusion(leaf, InclusionProof(m2, n2, proof.path), good_root)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_tampered_consistency_proofs_fail(draw: st.DataObject) -> None:
    n = draw.draw(st.integers(2, 40))
    m = draw.draw(st.integers(1, n - 1))
    proof, r1, r2 = BIG.consistency_proof(m, n), BIG.root(m), BIG.root(n)
    assert check_consistency(proof, r1, r2)
    bit = draw.draw(st.integers(0, 255))
    choice = draw.draw(st.sampled_from(["path", "old", "new", "swap", "old_size", "new_size"]))
    if choice == "path":
        k = draw.draw(st.integers(0, len(proof.path) - 1))
        path = (*proof.path[:k], flip(proof.path[k], bit), *proof.path[k + 1 :])
        assert not check_consistency(ConsistencyProof(m, n, path), r1, r2)
    elif choice == "old":
        assert not check_consistency(proof, flip(r1, bit), r2)
    elif choice == "new":
        assert not check_consistency(proof, r1, flip(r2, bit))
    elif choice == "swap":
        assert not check_consistency(proof, r2, r1)
    else:
        m2 = draw.draw(st.integers(0, n + 2)) if choice == "old_size" else m
        n2 = draw.draw(st.integers(0, 80)) if choice == "new_size" else n
        if (m2, n2) == (m, n) or same_consistency_shape(m, n, m2, n2, len(proof.path)):
            return
        assert not check_consistency(ConsistencyProof(m2, n2, proof.path), r1, r2)


def test_wrong_size_accepted_exactly_when_layout_is_identical() -> None:
    """Pin down the escape hatch above, for every m < n <= 24 and claimed size <= 48.

    A claimed size passes iff the verifier walks the very same left/right layout; callers
    must therefore sign tree_size together with the root (manifests do, via the segment
    count; the audit log must put both in its signed head).
    """
    for n in range(1, 25):
        good = BIG.root(n)
        for m in range(n):
            proof = BIG.inclusion_proof(m, n)
            for n2 in range(1, 49):
                accepted = check_inclusion(TREE40[m], InclusionProof(m, n2, proof.path), good)
                assert accepted == same_inclusion_shape(m, n, m, n2, len(proof.path))


# --------------------------------------------------------------------------- accumulator


def test_accumulator_matches_root_for_every_size_up_to_200() -> None:
    hashes = [leaf_hash(d) for d in data(200)]
    acc = MerkleAccumulator()
    assert acc.root() == empty_root()
    for n, h in enumerate(hashes, 1):
        acc = acc.append(h)
        assert acc.size == n and len(acc.frontier) == n.bit_count()
        assert acc.root() == root_from_hashes(hashes[:n])
    assert MerkleAccumulator().extend(hashes).root() == acc.root()
    assert MerkleAccumulator().extend(hashes[:77]).extend(hashes[77:]) == acc


def test_accumulator_persists_and_rejects_bad_state() -> None:
    acc = MerkleAccumulator(algo=SHA256)
    for d in LEAVES:
        acc = acc.append_data(d)
    assert acc.root() == ROOTS[7]
    assert MerkleAccumulator.from_dict(acc.to_dict()) == acc
    assert acc.to_dict()["algo"] == "sha256"
    with pytest.raises(ProofInvalid):
        MerkleAccumulator(3, (SOME_HASH,))  # 3 leaves need two frontier nodes
    with pytest.raises(ProofInvalid):
        MerkleAccumulator(1, (b"short",))
    with pytest.raises(ProofInvalid):
        MerkleAccumulator.from_dict({**acc.to_dict(), "algo": "md5"})
    with pytest.raises(ProofInvalid):
        acc.append(b"short")


# --------------------------------------------------------------------------- scale


def test_scale_100k_leaf_hashes() -> None:
    """Iterative, linear code: 1e5 leaves must neither recurse deeply nor go quadratic."""
    hashes = [leaf_hash(i.to_bytes(8, "big")) for i in range(100_000)]
    expected = root_from_hashes(hashes)
    tree = MerkleTree(hashes)
    assert tree.root() == expected
    assert MerkleAccumulator().extend(hashes).root() == expected
    proof = tree.inclusion_proof(77_777)
    assert len(proof.path) == 17
    verify_inclusion(hashes[77_777], proof, expected)
    old = tree.consistency_proof(65_537)
    verify_consistency(old, tree.root(65_537), expected)
    assert inclusion_proof(hashes[:1000], 999).path == tree.inclusion_proof(999, 1000).path
    assert consistency_proof(hashes[:1000], 10).path == tree.consistency_proof(10, 1000).path
