"""Ed25519 station keys: RFC 8032 vector, serialisation, key ids, keyring rotation."""

from __future__ import annotations

import json

import blake3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from integrity.errors import KeyError_, SignatureInvalid
from integrity.keys import (
    KEY_ID_RE,
    KeyPair,
    Keyring,
    PublicKey,
    is_valid,
    new_keyring,
    rotate,
    sign,
    verify,
)

# RFC 8032 §7.1, TEST 1 (empty message).
RFC_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC_PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
RFC_SIG = (
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065"
    "224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


def test_rfc8032_vector() -> None:
    key = KeyPair.from_seed(RFC_SEED)
    assert key.public.to_hex() == RFC_PUBLIC
    assert sign(key, b"").hex() == RFC_SIG
    verify(key.public, b"", bytes.fromhex(RFC_SIG))


def test_key_id_is_prefixed_truncated_blake3_of_raw_public_key() -> None:
    key = KeyPair.from_seed(RFC_SEED)
    raw = bytes.fromhex(RFC_PUBLIC)
    assert key.key_id == "ed25519:" + blake3.blake3(raw).digest()[:16].hex()
    assert KEY_ID_RE.fullmatch(key.key_id)
    assert KeyPair.generate().key_id != KeyPair.generate().key_id


def test_sign_verify_and_failures_carry_key_id() -> None:
    key = KeyPair.generate()
    sig = sign(key, "执法记录仪".encode())
    assert len(sig) == 64 and sign(key, "执法记录仪".encode()) == sig  # deterministic
    verify(key.public, "执法记录仪".encode(), sig)
    assert is_valid(key.public, "执法记录仪".encode(), sig)
    for message, signature in (
        (b"other", sig),
        ("执法记录仪".encode(), bytes([sig[0] ^ 1]) + sig[1:]),
        ("执法记录仪".encode(), sig[:63]),
    ):
        with pytest.raises(SignatureInvalid) as info:
            verify(key.public, message, signature)
        assert info.value.details["key_id"] == key.key_id
        assert not is_valid(key.public, message, signature)
    with pytest.raises(SignatureInvalid):
        verify(KeyPair.generate().public, "执法记录仪".encode(), sig)


def test_private_pem_round_trip_plain_and_encrypted() -> None:
    key = KeyPair.generate()
    plain = key.to_pem()
    assert plain.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert KeyPair.from_pem(plain) == key
    locked = key.to_pem(passphrase=b"correct horse")
    assert locked.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert KeyPair.from_pem(locked, b"correct horse") == key
    with pytest.raises(KeyError_):
        KeyPair.from_pem(locked, b"wrong")
    with pytest.raises(KeyError_):
        KeyPair.from_pem(locked)
    with pytest.raises(KeyError_):
        KeyPair.from_pem(b"not a pem")


def test_public_key_forms_round_trip() -> None:
    pub = KeyPair.generate().public
    pem = pub.to_pem()
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    assert PublicKey.from_pem(pem) == pub
    assert PublicKey.from_hex(pub.to_hex()) == pub
    assert pub.key_id in repr(pub)


def test_p256_and_malformed_keys_rejected() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_private = ec_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    ec_public = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(KeyError_, match="neither Ed25519 nor SM2"):
        KeyPair.from_pem(ec_private)
    with pytest.raises(KeyError_, match="neither Ed25519 nor SM2"):
        PublicKey.from_pem(ec_public)
    for bad in ("zz", "00" * 31, "00" * 33):
        with pytest.raises(KeyError_):
            PublicKey.from_hex(bad)
    with pytest.raises(KeyError_):
        KeyPair.from_seed(b"short")
    with pytest.raises(KeyError_, match="does not belong"):
        KeyPair(RFC_SEED, KeyPair.generate().public)


def test_private_key_never_in_repr() -> None:
    key = KeyPair.from_seed(RFC_SEED)
    assert RFC_SEED.hex() not in repr(key) and repr(RFC_SEED) not in repr(key)


def test_keyring_rotation_keeps_old_keys() -> None:
    a, b, c = (KeyPair.generate().public for _ in range(3))
    ring = new_keyring(a)
    assert ring.current == a.key_id and ring.current_key == a
    ring2 = rotate(ring, b)
    ring3 = rotate(ring2, c)
    assert ring3.current == c.key_id
    assert [k.key_id for k in ring3.keys] == [a.key_id, b.key_id, c.key_id]
    assert ring3.get(a.key_id) == a and ring3.get("ed25519:" + "0" * 32) is None
    assert ring == new_keyring(a)  # rotation is pure: the old value is unchanged
    assert rotate(ring3, c) == ring3  # re-rotating to the current key is a no-op
    with pytest.raises(KeyError_, match="retired"):
        rotate(ring3, a)


def test_keyring_dict_round_trip_is_json() -> None:
    a, b = KeyPair.generate().public, KeyPair.generate().public
    ring = rotate(new_keyring(a), b)
    data = json.loads(json.dumps(ring.to_dict()))
    assert Keyring.from_dict(data) == ring


def test_keyring_from_dict_rejects_tampering() -> None:
    a, b = KeyPair.generate().public, KeyPair.generate().public
    good = rotate(new_keyring(a), b).to_dict()
    relabelled = json.loads(json.dumps(good))
    relabelled["keys"][0]["key_id"] = b.key_id
    bad_inputs = [
        relabelled,
        {**good, "version": 2},
        {**good, "current": "ed25519:" + "0" * 32},
        {**good, "keys": [*good["keys"], good["keys"][0]]},
        {**good, "keys": [{**good["keys"][0], "alg": "rsa"}]},
        {**good, "keys": "nope"},
        [],
    ]
    for bad in bad_inputs:
        with pytest.raises(KeyError_):
            Keyring.from_dict(bad)
