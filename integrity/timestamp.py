"""Trusted timestamps (RFC 3161): the request for a digest, and the offline verifier.

A station's signature proves *what* it signed; a token from a time-stamping authority
proves *when*: the TSA signs (time, SHA-256 of our signed bytes, nonce). Pure: no network
and no clock — the caller sends the request, draws the nonce and gives the TSA roots.

:func:`verify_token` never raises for a bad token: every problem is a named finding,
and the checks are independent, so a token for another digest from an untrusted TSA
shows both. The chain, signature and EKU checks are rfc3161-client's (the chain is
checked at the token's own time: a TSA certificate need only have been valid then).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from rfc3161_client import (
    PKIStatus,
    TimeStampResponse,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

from integrity.codes import Code
from integrity.findings import Finding

#: id-sha256 (RFC 5754); the only imprint algorithm evidock asks for and accepts.
SHA256_OID = "2.16.840.1.101.3.4.2.1"
_SHA256_OID_DER = bytes.fromhex("0609608648016503040201")
#: What a station sends and what it accepts (RFC 3161 §3.4, over HTTP).
QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"


def der(tag: int, body: bytes) -> bytes:
    """One DER TLV (definite length)."""
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def _der_int(value: int) -> bytes:
    return der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def request_for(digest: bytes, *, nonce: int) -> bytes:
    """The DER ``TimeStampReq`` for a SHA-256 ``digest``: version 1, the nonce, certReq
    true (the token then carries the TSA's certificate, so it verifies offline given
    only the root). Built from the digest: the queue keeps digests, not the bytes."""
    if len(digest) != 32:
        raise ValueError("a SHA-256 digest is 32 bytes")
    if nonce <= 0 or nonce.bit_length() > 64:
        raise ValueError("the nonce is a positive integer of at most 64 bits")
    algorithm = der(0x30, _SHA256_OID_DER + b"\x05\x00")
    imprint = der(0x30, algorithm + der(0x04, digest))
    return der(0x30, _der_int(1) + imprint + _der_int(nonce) + b"\x01\x01\xff")


@dataclass(frozen=True, kw_only=True)
class TokenCheck:
    """What a token attests and what is wrong with it (empty ``findings``: it holds)."""

    attested_at: datetime | None
    tsa_name: str
    serial: str
    nonce: int | None
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not self.findings

    def against(self, claimed_at: datetime) -> dict[str, object]:
        """The attested time beside the station's claimed one: ``difference_us`` is
        attested − claimed in integer microseconds (canonical JSON has no floats;
        positive: stamped after the station says it signed)."""
        diff: timedelta | None = (self.attested_at - claimed_at
                                  if self.attested_at is not None else None)
        return {"claimed_at": claimed_at.isoformat(),
                "attested_at": self.attested_at.isoformat() if self.attested_at else None,
                "difference_us": diff // timedelta(microseconds=1) if diff is not None
                else None, "tsa": self.tsa_name, "serial": self.serial}


def verify_token(token: bytes, *, digest: bytes, roots: tuple[x509.Certificate, ...],
                 nonce: int | None = None, subject: str = "timestamp") -> TokenCheck:
    """Check a DER ``TimeStampResp`` for ``digest`` (SHA-256 of the signed bytes) against
    the TSA ``roots``: granted, imprint, chain + signature + critical timeStamping EKU,
    and the nonce when one is expected."""
    try:
        resp = decode_timestamp_response(token)
        info = resp.tst_info
        attested, serial, got_nonce = info.gen_time, str(info.serial_number), info.nonce
    except Exception as exc:  # noqa: BLE001  # any parse failure is one finding
        return TokenCheck(attested_at=None, tsa_name="", serial="", nonce=None,
                          findings=(Finding(Code.E_TIMESTAMP_INVALID,
                                            f"not a timestamp response: {exc}", subject),))
    findings = [*_status(resp, subject), *_imprint(resp, digest, subject),
                *_chain(resp, roots, subject)]
    if nonce is not None and got_nonce != nonce:
        findings.append(Finding(Code.E_TIMESTAMP_NONCE, "the token answers another request",
                                subject, {"expected": str(nonce), "found": str(got_nonce)}))
    return TokenCheck(attested_at=attested, tsa_name=_tsa_name(resp), serial=serial,
                      nonce=got_nonce, findings=tuple(findings))


def _status(resp: TimeStampResponse, subject: str) -> list[Finding]:
    # GRANTED_WITH_MODS too is refused: the TSA changed what was asked.
    if resp.status == PKIStatus.GRANTED:
        return []
    return [Finding(Code.E_TIMESTAMP_INVALID, "the TSA did not grant the timestamp as "
                    "asked", subject, {"status": int(resp.status)})]


def _imprint(resp: TimeStampResponse, digest: bytes, subject: str) -> list[Finding]:
    imprint = resp.tst_info.message_imprint
    algorithm = imprint.hash_algorithm.dotted_string
    if algorithm == SHA256_OID and imprint.message == digest:
        return []
    return [Finding(Code.E_TIMESTAMP_IMPRINT, "the token attests another digest than the "
                    "signed bytes'", subject,
                    {"expected": digest.hex(), "found": imprint.message.hex(),
                     "algorithm": algorithm})]


def _chain(resp: TimeStampResponse, roots: tuple[x509.Certificate, ...],
           subject: str) -> list[Finding]:
    if not roots:
        return [Finding(Code.E_TIMESTAMP_UNTRUSTED, "no TSA root given to check against",
                        subject)]
    verifier = VerifierBuilder(roots=list(roots)).build()
    try:
        # The token's own imprint: the imprint is checked (and named) by _imprint.
        verifier.verify(resp, resp.tst_info.message_imprint.message)
    except VerificationError as exc:
        if resp.status != PKIStatus.GRANTED:  # refused before any chain check; named
            return []                         # by _status
        reason = str(exc)
        if "signature failure" in reason:  # signed by the TSA's key, then changed
            return [Finding(Code.E_TIMESTAMP_INVALID, "the token's signature does not "
                            "verify", subject, {"reason": reason})]
        return [Finding(Code.E_TIMESTAMP_UNTRUSTED, "the token's signer does not chain to "
                        "a given TSA root with the timeStamping EKU", subject,
                        {"reason": reason,
                         "roots": [r.subject.rfc4514_string() for r in roots]})]
    except Exception as exc:  # noqa: BLE001  # a malformed signature is a finding
        return [Finding(Code.E_TIMESTAMP_INVALID, f"the token's signature is unreadable: "
                        f"{exc}", subject)]
    return []


def _tsa_name(resp: TimeStampResponse) -> str:
    """The TSA's name in the token, else its signing certificate's subject."""
    value = _optional_name(resp)
    if isinstance(value, x509.Name):
        return value.rfc4514_string()
    if value is not None:
        return str(value)
    for der in resp.signed_data.certificates:
        cert = x509.load_der_x509_certificate(der)
        return cert.subject.rfc4514_string()
    return ""


def _optional_name(resp: TimeStampResponse) -> object:
    try:
        return getattr(resp.tst_info.name, "value", None)
    except Exception:  # noqa: BLE001  # the name is optional (RFC 3161 §2.4.2)
        return None


def sha256(data: bytes) -> bytes:
    """The digest a token stamps: SHA-256 of the signed bytes."""
    return hashlib.sha256(data).digest()
