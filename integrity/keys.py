"""Station keys: generation, (de)serialisation, signing and a rotation keyring.

Two signature algorithms, one per crypto profile: ``ed25519`` (profile ``default``) and
``sm2`` (profile ``gm``: SM2 with SM3 and the standard signer ID, see integrity/sm2.py).
Both give 64-byte signatures. The key id names the algorithm:
``"<alg>:" + hex(BLAKE3(raw public key)[:16])`` (raw = 32 bytes for Ed25519, the 65-byte
point 04‖X‖Y for SM2), so every signed thing that carries a key id says which suite
signed it, and a signature block whose ``alg`` disagrees with its key id is refused.
128 bits is far more
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

from integrity import sm2
from integrity.errors import KeyError_, SignatureInvalid

ALG = "ed25519"
SM2 = "sm2"
ALGS = (ALG, SM2)
#: Crypto profile chosen at ``evidock init`` → the signature algorithm of its keys.
PROFILES = {"default": ALG, "gm": SM2}
KEY_ID_PREFIX = "ed25519:"
KEY_ID_RE = re.compile(r"^(ed25519|sm2):[0-9a-f]{32}$")
SIGNATURE_SIZE = 64
_RAW = serialization.Encoding.Raw
_RAW_SIZE = {ALG: 32, SM2: sm2.PUBLIC_SIZE}


def key_id_for(raw_public: bytes, alg: str = ALG) -> str:
    return f"{alg}:" + blake3.blake3(raw_public).digest()[:16].hex()


def alg_of(key_id: object) -> str | None:
    """The algorithm a well-formed key id names, else None."""
    if not isinstance(key_id, str) or not KEY_ID_RE.fullmatch(key_id):
        return None
    return key_id.split(":", 1)[0]


def profile_of(alg: str) -> str:
    return next(name for name, a in PROFILES.items() if a == alg)


def signature_alg_ok(alg: object, key_id: object) -> bool:
    """A signature block's ``alg`` is one we know and the one its key id names."""
    return isinstance(alg, str) and alg in ALGS and alg_of(key_id) == alg


@dataclass(frozen=True)
class PublicKey:
    """A public key held as its raw bytes (Ed25519: 32; SM2: the 65-byte point)."""

    raw: bytes
    alg: str = ALG

    def __post_init__(self) -> None:
        if self.alg not in ALGS:
            raise KeyError_("unknown signature algorithm", alg=self.alg)
        if not isinstance(self.raw, bytes) or len(self.raw) != _RAW_SIZE[self.alg]:
            raise KeyError_(f"an {self.alg} public key is {_RAW_SIZE[self.alg]} bytes")
        if self.alg == SM2:
            sm2.check_public(self.raw)
            return
        try:
            self._key()
        except ValueError as exc:
            raise KeyError_(f"not an Ed25519 public key: {exc}") from None

    def __repr__(self) -> str:
        return f"PublicKey({self.key_id})"

    @property
    def key_id(self) -> str:
        return key_id_for(self.raw, self.alg)

    def to_hex(self) -> str:
        return self.raw.hex()

    def to_pem(self) -> bytes:
        """PEM SubjectPublicKeyInfo."""
        if self.alg == SM2:
            return sm2.pem("PUBLIC KEY", sm2.public_to_der(self.raw))
        return self._key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def _key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.raw)

    @classmethod
    def from_hex(cls, text: str, alg: str = ALG) -> PublicKey:
        try:
            raw = bytes.fromhex(text)
        except (TypeError, ValueError):
            raise KeyError_("public key is not hex") from None
        return cls(raw, alg)

    @classmethod
    def from_pem(cls, data: bytes) -> PublicKey:
        try:
            return cls(sm2.public_from_der(sm2.unpem("PUBLIC KEY", data)), SM2)
        except KeyError_:
            pass  # not SM2: let cryptography read it (and name what it is)
        try:
            key = serialization.load_pem_public_key(data)
        except (TypeError, ValueError, UnsupportedAlgorithm) as exc:
            raise KeyError_(f"unreadable public key PEM: {exc}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise KeyError_("public key is neither Ed25519 nor SM2", kind=type(key).__name__)
        return cls(key.public_bytes(_RAW, serialization.PublicFormat.Raw))


@dataclass(frozen=True)
class KeyPair:
    """A station signing key. ``seed`` is the 32-byte private key (never printed):
    the RFC 8032 seed for Ed25519, the scalar d for SM2."""

    seed: bytes = field(repr=False)
    public: PublicKey

    def __post_init__(self) -> None:
        if not isinstance(self.seed, bytes) or len(self.seed) != 32:
            raise KeyError_(f"an {self.public.alg} private key is 32 bytes")
        if self.public.alg == SM2:
            _check_sm2_pair(self.seed, self.public.raw)
        elif _public_raw(self.seed) != self.public.raw:
            raise KeyError_("public key does not belong to this private key")

    @property
    def key_id(self) -> str:
        return self.public.key_id

    @property
    def alg(self) -> str:
        return self.public.alg

    @classmethod
    def generate(cls, alg: str = ALG) -> KeyPair:
        """A fresh key from the OS CSPRNG (cryptography; GmSSL's for SM2)."""
        if alg == SM2:
            private, public = sm2.generate()
            return cls(private, PublicKey(public, SM2))
        if alg != ALG:
            raise KeyError_("unknown signature algorithm", alg=alg)
        return cls.from_seed(_seed_of(Ed25519PrivateKey.generate()))

    @classmethod
    def from_seed(cls, seed: bytes) -> KeyPair:
        """An Ed25519 key from its seed (an SM2 key needs its public point too)."""
        if not isinstance(seed, bytes) or len(seed) != 32:
            raise KeyError_("an Ed25519 private key is 32 bytes")
        return cls(seed, PublicKey(_public_raw(seed)))

    def to_pem(self, passphrase: bytes | None = None) -> bytes:
        """PEM PKCS#8; encrypted with the best available scheme when a passphrase is given."""
        if self.alg == SM2:
            if passphrase:
                raise KeyError_("SM2 keys are stored unencrypted (mode 0600), like the "
                                "station key always is")
            return sm2.pem("PRIVATE KEY", sm2.private_to_der(self.seed, self.public.raw))
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
            private, public = sm2.private_from_der(sm2.unpem("PRIVATE KEY", data))
        except KeyError_:
            pass  # not an SM2 key in our shape: let cryptography read it
        else:
            return cls(private, PublicKey(public, SM2))
        try:
            key = serialization.load_pem_private_key(data, password=passphrase or None)
        except (TypeError, ValueError, UnsupportedAlgorithm) as exc:
            # Wrong/missing passphrase and garbage both land here; say which we can.
            sm2_note = (" (an SM2 key is read only unencrypted, as `openssl genpkey "
                        "-algorithm SM2` writes it)" if "1.2.156.10197" in str(exc) else "")
            raise KeyError_(f"unreadable private key PEM: {exc}{sm2_note}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyError_("private key is neither Ed25519 nor SM2", kind=type(key).__name__)
        return cls.from_seed(_seed_of(key))


def _check_sm2_pair(private: bytes, public: bytes) -> None:
    # GmSSL derives no public point from d: a signature that verifies proves the pair.
    sm2.check_private(private)
    probe = b"evidock key pair check"
    if not sm2.verify(public, probe, sm2.sign(private, public, probe)):
        raise KeyError_("public key does not belong to this private key")


def _private(seed: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(seed)


def _public_raw(seed: bytes) -> bytes:
    return _private(seed).public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)


def _seed_of(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(_RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption())


def sign(keypair: KeyPair, message: bytes) -> bytes:
    """64-byte signature: Ed25519 (deterministic) or SM2 r‖s (randomised)."""
    if keypair.alg == SM2:
        return sm2.sign(keypair.seed, keypair.public.raw, message)
    return _private(keypair.seed).sign(message)


def verify(public: PublicKey, message: bytes, signature: bytes) -> None:
    """Raise SignatureInvalid (with the key id) unless ``signature`` is valid."""
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_SIZE:
        raise SignatureInvalid("signature is not 64 bytes", key_id=public.key_id)
    if public.alg == SM2:
        if not sm2.verify(public.raw, message, signature):
            raise SignatureInvalid("signature does not verify", key_id=public.key_id)
        return
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
            "keys": [{"alg": k.alg, "key_id": k.key_id, "public": k.to_hex()}
                     for k in self.keys],
        }

    @property
    def profile(self) -> str:
        """The crypto profile of the key that signs now (``default`` or ``gm``)."""
        return profile_of(self.current_key.alg)

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
    alg = entry.get("alg") if isinstance(entry, Mapping) else None
    if not isinstance(entry, Mapping) or alg not in ALGS:
        raise KeyError_("keyring entry is not an ed25519 or sm2 key", index=index)
    public, label = entry.get("public"), entry.get("key_id")
    if not isinstance(public, str) or not isinstance(label, str):
        raise KeyError_("keyring entry needs 'public' and 'key_id' strings", index=index)
    key = PublicKey.from_hex(public, str(alg))
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
