"""Ed25519 station keys: generation, (de)serialisation, signing and a rotation keyring.

Key id: ``"ed25519:" + hex(BLAKE3(raw 32-byte public key)[:16])``. 128 bits is far more
than enough to *name* a key among a station's few keys, and stays short enough to read
aloud; security never rests on it, because verification always uses the full public key
looked up by id (a key whose recomputed id differs from its label is refused).

Pure: nothing here writes files. Callers persist PEM bytes and keyring dicts themselves
(private keys with mode 0600).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import blake3
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from integrity.errors import KeyError_, SignatureInvalid

ALG = "ed25519"
KEY_ID_PREFIX = "ed25519:"
KEY_ID_RE = re.compile(r"^ed25519:[0-9a-f]{32}$")
SIGNATURE_SIZE = 64
_RAW = serialization.Encoding.Raw


def key_id_for(raw_public: bytes) -> str:
    return KEY_ID_PREFIX + blake3.blake3(raw_public).digest()[:16].hex()


@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key held as its 32 raw bytes."""

    raw: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.raw, bytes) or len(self.raw) != 32:
            raise KeyError_("an Ed25519 public key is 32 bytes")
        try:
            self._key()
        except ValueError as exc:
            raise KeyError_(f"not an Ed25519 public key: {exc}") from None

    def __repr__(self) -> str:
        return f"PublicKey({self.key_id})"

    @property
    def key_id(self) -> str:
        return key_id_for(self.raw)

    def to_hex(self) -> str:
        return self.raw.hex()

    def to_pem(self) -> bytes:
        """PEM SubjectPublicKeyInfo."""
        return self._key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def _key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.raw)

    @classmethod
    def from_hex(cls, text: str) -> PublicKey:
        try:
            raw = bytes.fromhex(text)
        except (TypeError, ValueError):
            raise KeyError_("public key is not hex") from None
        return cls(raw)

    @classmethod
    def from_pem(cls, data: bytes) -> PublicKey:
        try:
            key = serialization.load_pem_public_key(data)
        except (TypeError, ValueError, UnsupportedAlgorithm) as exc:
            raise KeyError_(f"unreadable public key PEM: {exc}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise KeyError_("public key is not Ed25519", kind=type(key).__name__)
        return cls(key.public_bytes(_RAW, serialization.PublicFormat.Raw))


@dataclass(frozen=True)
class KeyPair:
    """A station signing key. ``seed`` is the 32-byte RFC 8032 private key (never printed)."""

    seed: bytes = field(repr=False)
    public: PublicKey

    def __post_init__(self) -> None:
        if not isinstance(self.seed, bytes) or len(self.seed) != 32:
            raise KeyError_("an Ed25519 private key is 32 bytes")
        if _public_raw(self.seed) != self.public.raw:
            raise KeyError_("public key does not belong to this private key")

    @property
    def key_id(self) -> str:
        return self.public.key_id

    @classmethod
    def generate(cls) -> KeyPair:
        """A fresh key from the OS CSPRNG (via cryptography)."""
        return cls.from_seed(_seed_of(Ed25519PrivateKey.generate()))

    @classmethod
    def from_seed(cls, seed: bytes) -> KeyPair:
        if not isinstance(seed, bytes) or len(seed) != 32:
            raise KeyError_("an Ed25519 private key is 32 bytes")
        return cls(seed, PublicKey(_public_raw(seed)))

    def to_pem(self, passphrase: bytes | None = None) -> bytes:
        """PEM PKCS#8; encrypted with the best available scheme when a passphrase is given."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase)
            if passphrase
            else serialization.NoEncryption()
        )
        return _private(self.seed).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    @classmethod
    def from_pem(cls, data: bytes, passphrase: bytes | None = None) -> KeyPair:
        try:
            key = serialization.load_pem_private_key(data, password=passphrase or None)
        except (TypeError, ValueError, UnsupportedAlgorithm) as exc:
            # Wrong/missing passphrase and garbage both land here; say which we can.
            raise KeyError_(f"unreadable private key PEM: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyError_("private key is not Ed25519", kind=type(key).__name__)
        return cls.from_seed(_seed_of(key))


def _private(seed: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(seed)


def _public_raw(seed: bytes) -> bytes:
    return _private(seed).public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)


def _seed_of(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(_RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption())


def sign(keypair: KeyPair, message: bytes) -> bytes:
    """64-byte Ed25519 signature (deterministic: same key and message, same bytes)."""
    return _private(keypair.seed).sign(message)


def verify(public: PublicKey, message: bytes, signature: bytes) -> None:
    """Raise SignatureInvalid (with the key id) unless ``signature`` is valid."""
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_SIZE:
        raise SignatureInvalid("signature is not 64 bytes", key_id=public.key_id)
    try:
        public._key().verify(signature, message)
    except InvalidSignature:
        raise SignatureInvalid("signature does not verify", key_id=public.key_id) from None


def is_valid(public: PublicKey, message: bytes, signature: bytes) -> bool:
    try:
        verify(public, message, signature)
    except SignatureInvalid:
        return False
    return True


# --------------------------------------------------------------------------- keyring


@dataclass(frozen=True)
class Keyring:
    """The station's current signing key id plus every public key it ever signed with.

    Old keys stay after rotation so evidence signed before the rotation still verifies.
    ``keys`` keeps rotation order (oldest first).
    """

    current: str
    keys: tuple[PublicKey, ...]

    def __post_init__(self) -> None:
        ids = [k.key_id for k in self.keys]
        if len(set(ids)) != len(ids):
            raise KeyError_("keyring holds a key twice")
        if self.current not in ids:
            raise KeyError_("current key is not in the keyring", key_id=self.current)

    def by_id(self) -> dict[str, PublicKey]:
        return {k.key_id: k for k in self.keys}

    def get(self, key_id: str) -> PublicKey | None:
        return self.by_id().get(key_id)

    @property
    def current_key(self) -> PublicKey:
        return self.by_id()[self.current]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "current": self.current,
            "keys": [{"alg": ALG, "key_id": k.key_id, "public": k.to_hex()} for k in self.keys],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Keyring:
        if not isinstance(data, Mapping) or data.get("version") != 1:
            raise KeyError_("keyring is not a version 1 keyring object")
        entries = data.get("keys")
        current = data.get("current")
        if not isinstance(entries, list) or not isinstance(current, str):
            raise KeyError_("keyring needs 'current' (str) and 'keys' (list)")
        return cls(current, tuple(_key_entry(e, i) for i, e in enumerate(entries)))


def _key_entry(entry: object, index: int) -> PublicKey:
    if not isinstance(entry, Mapping) or entry.get("alg") != ALG:
        raise KeyError_("keyring entry is not an ed25519 key", index=index)
    public, label = entry.get("public"), entry.get("key_id")
    if not isinstance(public, str) or not isinstance(label, str):
        raise KeyError_("keyring entry needs 'public' and 'key_id' strings", index=index)
    key = PublicKey.from_hex(public)
    if key.key_id != label:
        # A relabelled key would let one key pose as another: refuse the whole keyring.
        raise KeyError_("keyring entry key_id does not match its key", index=index, key_id=label)
    return key


def new_keyring(public: PublicKey) -> Keyring:
    return Keyring(public.key_id, (public,))


def rotate(keyring: Keyring, new_public: PublicKey) -> Keyring:
    """Make ``new_public`` current, keeping every older key for verification."""
    if new_public.key_id in keyring.by_id():
        if new_public.key_id == keyring.current:
            return keyring
        raise KeyError_("cannot rotate back to a retired key", key_id=new_public.key_id)
    return Keyring(new_public.key_id, (*keyring.keys, new_public))
