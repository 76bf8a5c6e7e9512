"""SM2 signatures (GB/T 32918.2) with SM3 (GB/T 32905) for the ``gm`` crypto profile.

The arithmetic is GmSSL 3's (``gmssl-pyx``): ``cryptography`` has SM3 but no SM2. What
this module adds is the exact wire shape evidock uses, so that OpenSSL and other 国密
tools agree with it:

* the signer ID is the standard default ``1234567812345678`` (ZA = SM3(ENTL‖ID‖a‖b‖G‖P)
  is hashed in front of the message, as GB/T 32918.2 §6.1 and OpenSSL's
  ``-pkeyopt distid:1234567812345678`` do);
* a signature is stored as ``r‖s``, 32 bytes each (64 bytes, the same size as Ed25519,
  so every "128 hex digits" field holds either); :func:`to_der` gives the ASN.1
  ``SEQUENCE {r, s}`` OpenSSL reads;
* a public key is the 65-byte uncompressed point ``04‖X‖Y``; keys on disk are PEM
  PKCS#8 / SubjectPublicKeyInfo with id-ecPublicKey on the SM2 curve
  (OID 1.2.156.10197.1.301), byte-for-byte what ``openssl genpkey -algorithm SM2`` writes.

SM2 signing is randomised (a fresh k per signature): two signatures of one message differ
and both verify. No clock; the one side effect is :func:`_gmssl_quiet`'s spool file.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator

import gmssl_pyx
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from integrity.errors import KeyError_

SIGNER_ID = b"1234567812345678"
SIGNATURE_SIZE = 64
PUBLIC_SIZE = 65
PRIVATE_SIZE = 32
#: The SM2 group order n (GB/T 32918.5); a private key d lies in [1, n-2].
N = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123", 16)

# DER templates. Only these exact shapes are read: OpenSSL 3 writes them for SM2 keys,
# and a fixed template cannot be tricked into parsing an unexpected structure.
_CURVE = bytes.fromhex("301306072a8648ce3d020106082a811ccf5501822d")
_SPKI_PREFIX = bytes.fromhex("3059") + _CURVE + bytes.fromhex("034200")
_PKCS8_PREFIX = (bytes.fromhex("308187020100") + _CURVE
                 + bytes.fromhex("046d306b0201010420"))
_PKCS8_MIDDLE = bytes.fromhex("a144034200")
_PEM = re.compile(rb"-----BEGIN ([A-Z ]+)-----\s+([A-Za-z0-9+/=\s]+?)-----END \1-----")
_STDERR = threading.RLock()  # one thread redirects fd 2 at a time (nesting is fine)


def sm3(data: bytes) -> bytes:
    """SM3 digest (GB/T 32905) via OpenSSL's hashlib."""
    return hashlib.new("sm3", data).digest()


def generate() -> tuple[bytes, bytes]:
    """A fresh key pair ``(d, 04‖X‖Y)`` from GmSSL's CSPRNG."""
    public, private = gmssl_pyx.sm2_key_generate()
    return bytes(private), b"\x04" + bytes(public)


def check_public(public: bytes) -> None:
    if not isinstance(public, bytes) or len(public) != PUBLIC_SIZE or public[0] != 4:
        raise KeyError_("an SM2 public key is 65 bytes, 04‖X‖Y")
    try:
        with _gmssl_quiet():
            gmssl_pyx.normalize_sm2_public_key(public[1:])
    except gmssl_pyx.InvalidValueError:
        raise KeyError_("not a point on the SM2 curve") from None


def check_private(private: bytes) -> None:
    if not isinstance(private, bytes) or len(private) != PRIVATE_SIZE:
        raise KeyError_("an SM2 private key is 32 bytes")
    if not 1 <= int.from_bytes(private, "big") <= N - 2:
        raise KeyError_("SM2 private key out of range [1, n-2]")


def sign(private: bytes, public: bytes, message: bytes) -> bytes:
    """``r‖s`` over SM3(ZA‖message) with the default signer ID."""
    try:
        der = gmssl_pyx.sm2_sign(private, public[1:], message, signer_id=SIGNER_ID)
    except (gmssl_pyx.GmsslInnerError, gmssl_pyx.InvalidValueError) as exc:
        raise KeyError_(f"SM2 signing failed: {exc}") from None
    return from_der(bytes(der))


def verify(public: bytes, message: bytes, signature: bytes) -> bool:
    if len(signature) != SIGNATURE_SIZE or len(public) != PUBLIC_SIZE:
        return False
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    if not (0 < r < N and 0 < s < N):
        return False  # GB/T 32918.2 §7.1 B1/B2, checked before GmSSL sees it
    try:
        with _gmssl_quiet():
            return bool(gmssl_pyx.sm2_verify(public[1:], message, to_der(signature),
                                             signer_id=SIGNER_ID))
    except (gmssl_pyx.GmsslInnerError, gmssl_pyx.InvalidValueError):
        return False  # GmSSL refused the input outright: not a valid signature either


@contextlib.contextmanager
def _gmssl_quiet() -> Iterator[None]:
    """GmSSL's C code prints a diagnostic line to fd 2 for every signature or point it
    refuses; `evidock verify` would show a recipient those beside its own findings.
    For the call, fd 2 goes to a temporary file; afterwards whatever else was written
    there meanwhile (another thread's log line) is written on, GmSSL's lines dropped."""
    with _STDERR, tempfile.TemporaryFile() as spool:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(spool.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            spool.seek(0)
            kept = b"".join(line for line in spool.read().splitlines(keepends=True)
                            if b"/GmSSL/src/" not in line)
            if kept:
                os.write(2, kept)


def to_der(signature: bytes) -> bytes:
    """``r‖s`` → DER ``SEQUENCE {INTEGER r, INTEGER s}``."""
    if len(signature) != SIGNATURE_SIZE:
        raise KeyError_("an SM2 signature is 64 bytes r‖s")
    return encode_dss_signature(int.from_bytes(signature[:32], "big"),
                                int.from_bytes(signature[32:], "big"))


def from_der(der: bytes) -> bytes:
    try:
        r, s = decode_dss_signature(der)
    except ValueError:
        raise KeyError_("not a DER SM2 signature") from None
    if not (0 < r < N and 0 < s < N):
        raise KeyError_("SM2 signature value out of range")
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def public_to_der(public: bytes) -> bytes:
    check_public(public)
    return _SPKI_PREFIX + public


def public_from_der(der: bytes) -> bytes:
    if len(der) != len(_SPKI_PREFIX) + PUBLIC_SIZE or not der.startswith(_SPKI_PREFIX):
        raise KeyError_("not an SM2 SubjectPublicKeyInfo (id-ecPublicKey, curve SM2)")
    public = der[len(_SPKI_PREFIX):]
    check_public(public)
    return public


def private_to_der(private: bytes, public: bytes) -> bytes:
    """PKCS#8 ``PrivateKeyInfo`` holding SEC1 ``ECPrivateKey`` with its public key."""
    check_private(private)
    check_public(public)
    return _PKCS8_PREFIX + private + _PKCS8_MIDDLE + public


def private_from_der(der: bytes) -> tuple[bytes, bytes]:
    size = len(_PKCS8_PREFIX) + PRIVATE_SIZE + len(_PKCS8_MIDDLE) + PUBLIC_SIZE
    split = len(_PKCS8_PREFIX) + PRIVATE_SIZE
    if len(der) != size or not der.startswith(_PKCS8_PREFIX) \
            or der[split:split + len(_PKCS8_MIDDLE)] != _PKCS8_MIDDLE:
        raise KeyError_("not an SM2 PKCS#8 private key with its public key "
                       "(as `openssl genpkey -algorithm SM2` writes)")
    private, public = der[len(_PKCS8_PREFIX):split], der[split + len(_PKCS8_MIDDLE):]
    check_private(private)
    check_public(public)
    return private, public


def pem(label: str, der: bytes) -> bytes:
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return b"\n".join([f"-----BEGIN {label}-----".encode(), *lines,
                       f"-----END {label}-----".encode(), b""])


def unpem(label: str, data: bytes) -> bytes:
    match = _PEM.search(data)
    if match is None or match.group(1).decode() != label:
        raise KeyError_(f"no {label} PEM block")
    try:
        return base64.b64decode(b"".join(match.group(2).split()), validate=True)
    except ValueError:
        raise KeyError_(f"{label} PEM block is not base64") from None
