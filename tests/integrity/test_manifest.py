"""Signed rendition manifest: canonical bytes, validation, signing, every-finding verify."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import blake3
import pytest

from integrity import merkle
from integrity.canonical import canonical_bytes, parse_canonical
from integrity.errors import ManifestInvalid
from integrity.findings import Finding
from integrity.keys import KeyPair, new_keyring, rotate, sign
from integrity.manifest import (
    Manifest,
    OriginalRef,
    Rendition,
    SegmentEntry,
    SignedManifest,
    build_manifest,
    dump_signed,
    format_utc,
    load_signed,
    sign_manifest,
    verify_signed_bytes,
    verify_signed_manifest,
)

KEY = KeyPair.from_seed(bytes(range(32)))
OTHER = KeyPair.from_seed(bytes(range(1, 33)))
KEYS = {KEY.key_id: KEY.public}


def seg(index: int, start_us: int, end_us: int, name: str) -> SegmentEntry:
    body = f"segment {name}".encode()
    return SegmentEntry(index, start_us, end_us, len(body), blake3.blake3(body).hexdigest(), name)


def sample(init: bool = True, officer: str | None = "警号 010203") -> Manifest:
    original = "录像_20240501_083000.MP4".encode()
    first = 1 if init else 0
    return build_manifest(
        station_id="朝阳分局-取证站-01",
        device_serial="DSJ-2024-000123",
        officer_id=officer,
        created_at=datetime(2024, 5, 1, 16, 30, 5, 250000, tzinfo=timezone(timedelta(hours=8))),
        originals=(
            OriginalRef(
                recording_id="rec-0001",
                name="录像_20240501_083000.MP4",
                size=len(original),
                blake3=blake3.blake3(original).hexdigest(),
                sha256=hashlib.sha256(original).hexdigest(),
            ),
        ),
        rendition=Rendition(
            kind="remux",
            container="fmp4",
            tool="ffmpeg 5.1.6",
            argv=("ffmpeg", "-i", "录像.MP4", "-c", "copy", "-f", "hls", "out.m3u8"),
            init_segment=seg(0, 0, 0, "init.mp4") if init else None,
        ),
        segments=(
            seg(first, 0, 6_000_000, "seg_000.m4s"),
            seg(first + 1, 6_000_000, 12_000_000, "seg_001.m4s"),
            seg(first + 2, 12_000_000, 14_533_333, "seg_002.m4s"),
        ),
    )


def codes(findings: list[Finding]) -> list[str]:
    return [f.code for f in findings]


# --------------------------------------------------------------------------- canonical


def test_canonical_bytes_policy() -> None:
    assert canonical_bytes({"b": 1, "a": [True, None, "执法"]}) == (
        '{"a":[true,null,"执法"],"b":1}'.encode()
    )
    for bad, where in (
        ({"t": 1.5}, "$.t"),
        ({"t": 1.0}, "$.t"),  # even integral floats: they do not round-trip as ints
        ({"n": [2**53]}, "$.n[0]"),
        ({1: "x"}, "$"),
        ({"s": {1, 2}}, "$.s"),
    ):
        with pytest.raises(ManifestInvalid) as info:
            canonical_bytes(bad)
        assert info.value.details["field"] == where


def test_parse_canonical_rejects_non_canonical_bytes() -> None:
    assert parse_canonical(b'{"a":1,"b":"\xe6\x89\xa7"}') == {"a": 1, "b": "执"}
    for bad in (
        b'{"b":1,"a":1}',  # key order
        b'{"a": 1}',  # whitespace
        b'{"a":1}\n',  # trailing newline
        b'{"a":"\\u6267"}',  # escaped where JCS writes UTF-8
        b'{"a":1.5}',  # float
        b'{"a":1,"a":2}',  # duplicate key
        b"[1]",  # not an object
        b"\xff",  # not UTF-8
        b'{"a":NaN}',
    ):
        with pytest.raises(ManifestInvalid):
            parse_canonical(bad)


# --------------------------------------------------------------------------- manifest


def test_build_computes_rfc6962_root_with_init_segment_as_leaf_0() -> None:
    m = sample()
    entries = m.entries()
    assert entries[0].name == "init.mp4" and [e.index for e in entries] == [0, 1, 2, 3]
    leaves = [bytes.fromhex(e.blake3) for e in entries]
    assert m.merkle_root == merkle.root(leaves, merkle.BLAKE3).hex()
    proof = m.inclusion_proof(0)  # the init segment is provable like any other leaf
    merkle.verify_inclusion(
        merkle.leaf_hash(leaves[0]), proof, bytes.fromhex(m.merkle_root), merkle.BLAKE3
    )
    no_init = sample(init=False)
    assert [e.index for e in no_init.entries()] == [0, 1, 2]


def test_created_at_is_normalised_to_utc() -> None:
    assert sample().created_at == "2024-05-01T08:30:05.250000Z"
    assert format_utc(datetime(2024, 5, 1, 8, 30, tzinfo=UTC)) == "2024-05-01T08:30:00Z"
    with pytest.raises(ManifestInvalid):
        format_utc(datetime(2024, 5, 1, 8, 30))  # naive: refuse to guess a zone


def test_round_trip_and_determinism() -> None:
    m = sample()
    data = m.to_canonical_bytes()
    assert data == sample().to_canonical_bytes()  # same input, identical bytes
    assert Manifest.from_canonical_bytes(data) == m
    assert Manifest.from_dict(json.loads(data)) == m
    assert Manifest.from_dict(sample(init=False).to_dict()) == sample(init=False)
    assert Manifest.from_dict(sample(officer=None).to_dict()).officer_id is None
    assert json.loads(data)["officer_id"] == "警号 010203"
    assert "录像_20240501_083000.MP4".encode() in data  # UTF-8, not \\u escapes


def test_signed_file_round_trip_with_chinese_text() -> None:
    signed = sign_manifest(sample(), KEY)
    data = dump_signed(signed)
    assert sign_manifest(sample(), KEY) == signed and dump_signed(signed) == data
    loaded = load_signed(data)
    assert loaded == signed
    assert loaded.manifest.station_id == "朝阳分局-取证站-01"
    assert verify_signed_manifest(loaded, KEYS) == []
    assert verify_signed_bytes(data, KEYS) == []
    doc = json.loads(data)
    assert set(doc) == {"manifest", "signature"}
    assert doc["signature"]["alg"] == "ed25519" and doc["signature"]["key_id"] == KEY.key_id
    # The signature covers exactly the canonical bytes of the "manifest" object.
    assert signed.signature_hex == sign(KEY, canonical_bytes(doc["manifest"])).hex()


def _tamper_paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every scalar leaf of the manifest object, as a key path."""
    if isinstance(doc, dict):
        return [p for k, v in doc.items() for p in _tamper_paths(v, (*prefix, k))]
    if isinstance(doc, list):
        return [p for i, v in enumerate(doc) for p in _tamper_paths(v, (*prefix, i))]
    return [prefix]


def _tampered(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        if len(value) == 64 and all(c in "0123456789abcdef" for c in value):
            return ("0" if value[0] != "0" else "1") + value[1:]
        return value + "篡改"
    return "篡改"  # None


def test_tamper_of_any_field_is_found() -> None:
    data = dump_signed(sign_manifest(sample(), KEY))
    doc = json.loads(data)
    paths = _tamper_paths(doc["manifest"])
    assert len(paths) > 40
    for path in paths:
        copy = json.loads(data)
        node = copy["manifest"]
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = _tampered(node[path[-1]])
        findings = verify_signed_bytes(canonical_bytes(copy), KEYS)
        assert "E_SIGNATURE_INVALID" in codes(findings), path


def test_every_finding_is_reported_not_just_the_first() -> None:
    m = sample()
    bad_seg = replace(m.segments[1], blake3="f" * 64)  # content swapped after sealing
    forged = replace(m, segments=(m.segments[0], bad_seg, m.segments[2]))
    signed = SignedManifest(forged, KEY.key_id, sign_manifest(m, KEY).signature_hex)
    assert codes(verify_signed_manifest(signed, KEYS)) == [
        "E_SIGNATURE_INVALID",
        "E_MERKLE_ROOT_MISMATCH",
    ]
    # Unknown key *and* wrong root *and* an unknown field in one file.
    doc = json.loads(dump_signed(SignedManifest(forged, OTHER.key_id, "00" * 64)))
    doc["manifest"]["extra"] = 1
    findings = verify_signed_bytes(json.dumps(doc, indent=2).encode(), KEYS, subject="m.json")
    assert codes(findings) == ["E_MANIFEST_INVALID", "E_KEY_UNKNOWN", "E_MANIFEST_INVALID"]
    assert all(f.subject == "m.json" for f in findings)
    assert findings[2].details["field"] == "manifest.extra"


def test_wrong_key() -> None:
    signed = sign_manifest(sample(), OTHER)
    assert codes(verify_signed_manifest(signed, KEYS)) == ["E_KEY_UNKNOWN"]
    # Right id, wrong key material (a mis-filed key): the signature fails.
    impostor = SignedManifest(signed.manifest, KEY.key_id, signed.signature_hex)
    assert codes(verify_signed_manifest(impostor, KEYS)) == ["E_SIGNATURE_INVALID"]
    # A key filed under another key's id is not trusted for that id.
    assert codes(verify_signed_manifest(signed, {OTHER.key_id: KEY.public})) == ["E_KEY_UNKNOWN"]
    garbage = SignedManifest(signed.manifest, KEY.key_id, "zz")
    assert codes(verify_signed_manifest(garbage, KEYS)) == ["E_SIGNATURE_INVALID"]


def test_rotated_keyring_still_verifies_old_manifests() -> None:
    ring = rotate(new_keyring(KEY.public), OTHER.public)
    assert verify_signed_manifest(sign_manifest(sample(), KEY), ring) == []
    assert verify_signed_manifest(sign_manifest(sample(), OTHER), ring) == []


def test_load_signed_is_strict() -> None:
    data = dump_signed(sign_manifest(sample(), KEY))
    pretty = json.dumps(json.loads(data), indent=1, ensure_ascii=False).encode()
    with pytest.raises(ManifestInvalid, match="canonical"):
        load_signed(pretty)
    with pytest.raises(ManifestInvalid):
        load_signed(data + b"\n")
    # Non-canonical bytes still get their signature checked, and say so.
    assert codes(verify_signed_bytes(pretty, KEYS)) == ["E_MANIFEST_INVALID"]
    doc = json.loads(data)
    for key, value, field in (
        ("alg", "rsa", "signature.alg"),
        ("key_id", "k1", "signature.key_id"),
        ("sig", "AB" * 64, "signature.sig"),
    ):
        bad = json.loads(data)
        bad["signature"][key] = value
        with pytest.raises(ManifestInvalid) as info:
            load_signed(canonical_bytes(bad))
        assert info.value.details["field"] == field
    with pytest.raises(ManifestInvalid):
        load_signed(canonical_bytes({**doc, "note": "x"}))


def _invalid_field(mutate: Any) -> str:
    doc = sample().to_dict()
    mutate(doc)
    with pytest.raises(ManifestInvalid) as info:
        Manifest.from_dict(doc)
    field = info.value.details["field"]
    assert field in str(info.value)  # the one-line message names it too
    return str(field)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(version=2), "version"),
        (lambda d: d.update(station_id=""), "station_id"),
        (lambda d: d.update(device_serial=7), "device_serial"),
        (lambda d: d.update(officer_id=""), "officer_id"),
        (lambda d: d.update(created_at="2024-05-01 08:30:00"), "created_at"),
        (lambda d: d.update(created_at="2024-05-01T08:30:00+00:00"), "created_at"),
        (lambda d: d.update(created_at="2024-05-01T08:30:00.000000Z"), "created_at"),
        (lambda d: d.update(created_at="2024-02-30T08:30:00Z"), "created_at"),
        (lambda d: d.update(hash_algo="sha256"), "hash_algo"),
        (lambda d: d.update(merkle_root="AB" * 32), "merkle_root"),
        (lambda d: d.update(originals=[]), "originals"),
        (lambda d: d.update(segments={}), "segments"),
        (lambda d: d["originals"][0].update(size=-1), "originals[0].size"),
        (lambda d: d["originals"][0].update(sha256="00"), "originals[0].sha256"),
        (lambda d: d["originals"][0].pop("name"), "originals[0].name"),
        (lambda d: d["segments"][1].update(index=5), "segments[1].index"),
        (lambda d: d["segments"][1].update(start_us=5_999_999), "segments[1].start_us"),
        (lambda d: d["segments"][2].update(end_us=12_000_000), "segments[2].end_us"),
        (lambda d: d["segments"][0].update(blake3="g" * 64), "segments[0].blake3"),
        (lambda d: d["segments"][0].update(size=True), "segments[0].size"),
        (lambda d: d["segments"][0].update(start_us=1.5), "segments[0].start_us"),
        (lambda d: d["segments"][2].update(name="seg_000.m4s"), "segments"),
        (lambda d: d["rendition"].update(kind="copy"), "rendition.kind"),
        (lambda d: d["rendition"].update(argv="ffmpeg -i x"), "rendition.argv"),
        (lambda d: d["rendition"].update(argv=["ffmpeg", 1]), "rendition.argv[1]"),
        (
            lambda d: d["rendition"]["init_segment"].update(blake3="x"),
            "rendition.init_segment.blake3",
        ),
        (lambda d: d["rendition"]["init_segment"].update(index=1), "rendition.init_segment"),
        (lambda d: d.update(extra=1), "extra"),
        (lambda d: d.pop("merkle_root"), "merkle_root"),
    ],
)
def test_manifest_invalid_names_the_field(mutate: Any, field: str) -> None:
    assert _invalid_field(mutate) == field


def test_first_segment_index_follows_init_presence() -> None:
    doc = sample().to_dict()
    doc["rendition"]["init_segment"] = None  # segments still numbered from 1
    with pytest.raises(ManifestInvalid) as info:
        Manifest.from_dict(doc)
    assert info.value.details["field"] == "segments[0].index"
