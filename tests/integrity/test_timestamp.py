"""integrity/timestamp.py against a real TSA (``openssl ts -reply``, tests/tsa_support.py):
the request it builds, and each way a token can be wrong as a named finding."""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from integrity.codes import Code
from integrity.timestamp import request_for, sha256, verify_token
from tests.pki_support import Issued
from tests.tsa_support import TestTsa, TsaAuthority, require_openssl, resigned

SIGNED = b'{"manifest":{"station_id":"S1"},"signature":{"sig":"00"}}'
NONCE = 0x1234_5678_9ABC_DEF1
_HEXDUMP = re.compile(r"^\s+[0-9a-f]{4} - ((?:[0-9a-f]{2}[ -]){15}[0-9a-f]{2})", re.M)


@dataclass(frozen=True)
class Pki:
    tsa: TestTsa
    root: x509.Certificate
    other_root: x509.Certificate
    ca: TsaAuthority
    signer: Issued


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    where = tmp_path_factory.mktemp("tsa")
    ca, other = TsaAuthority(where, "agency-root"), TsaAuthority(where, "other-root")
    signer = ca.issue_tsa("tsa1")
    yield Pki(tsa=TestTsa(where, signer, name="good"), root=_load(ca.root.cert),
              other_root=_load(other.root.cert), ca=ca, signer=signer)


def _codes(check: object) -> list[str]:
    return sorted(str(f.code) for f in check.findings)  # type: ignore[attr-defined]


def test_request_is_what_openssl_reads(tmp_path: Path) -> None:
    digest = sha256(SIGNED)
    query = tmp_path / "q.tsq"
    query.write_bytes(request_for(digest, nonce=NONCE))
    text = subprocess.run([require_openssl(), "ts", "-query", "-in", str(query), "-text"],
                          check=True, capture_output=True, text=True).stdout
    dumped = "".join(m.group(1) for m in _HEXDUMP.finditer(text))
    assert dumped.replace(" ", "").replace("-", "") == digest.hex()
    assert "Hash Algorithm: sha256" in text
    assert f"Nonce: 0x{NONCE:X}" in text or f"Nonce: 0x{NONCE:x}" in text
    assert "Certificate required: yes" in text


def test_request_refuses_what_is_not_a_sha256_digest() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        request_for(b"\x00" * 20, nonce=1)
    with pytest.raises(ValueError, match="nonce"):
        request_for(b"\x00" * 32, nonce=0)


def test_a_good_token_reports_attested_time_tsa_and_serial(pki: Pki) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    token = pki.tsa.reply(request_for(sha256(SIGNED), nonce=NONCE))
    check = verify_token(token, digest=sha256(SIGNED), roots=(pki.root,), nonce=NONCE)
    assert check.ok, check.findings
    assert check.attested_at is not None and check.attested_at.tzinfo is not None
    assert before - timedelta(seconds=2) <= check.attested_at <= datetime.now(UTC)
    assert check.tsa_name == "CN=tsa1,O=Test Agency"
    assert int(check.serial) >= 1 and check.nonce == NONCE
    claimed = check.attested_at - timedelta(hours=3)  # a station clock 3 h slow
    side = check.against(claimed)
    assert side["difference_us"] == 3 * 3600 * 10**6
    assert side["claimed_at"] == claimed.isoformat()
    assert side["attested_at"] == check.attested_at.isoformat()


def test_tampered_signed_bytes_are_an_imprint_finding(pki: Pki) -> None:
    token = pki.tsa.reply(request_for(sha256(SIGNED), nonce=NONCE))
    tampered = SIGNED.replace(b"S1", b"S2")
    check = verify_token(token, digest=sha256(tampered), roots=(pki.root,), nonce=NONCE)
    assert _codes(check) == [Code.E_TIMESTAMP_IMPRINT]
    assert check.findings[0].details["expected"] == hashlib.sha256(tampered).hexdigest()
    assert check.findings[0].details["found"] == hashlib.sha256(SIGNED).hexdigest()


def test_a_token_for_another_digest_is_an_imprint_finding(pki: Pki) -> None:
    other = pki.tsa.reply(request_for(sha256(b"another manifest"), nonce=NONCE))
    check = verify_token(other, digest=sha256(SIGNED), roots=(pki.root,))
    assert _codes(check) == [Code.E_TIMESTAMP_IMPRINT]


def test_a_wrong_tsa_root_is_an_untrusted_finding(pki: Pki) -> None:
    token = pki.tsa.reply(request_for(sha256(SIGNED), nonce=NONCE))
    check = verify_token(token, digest=sha256(SIGNED), roots=(pki.other_root,))
    assert _codes(check) == [Code.E_TIMESTAMP_UNTRUSTED]
    assert check.findings[0].details["roots"] == ["CN=other-root,O=Test Agency"]
    assert _codes(verify_token(token, digest=sha256(SIGNED), roots=())) == \
        [Code.E_TIMESTAMP_UNTRUSTED]


@pytest.mark.parametrize("leaf", [
    {"eku_critical": False},
    {"purpose": ExtendedKeyUsageOID.CODE_SIGNING},
], ids=["eku-not-critical", "no-timestamping-eku"])
def test_a_signer_without_critical_timestamping_eku_is_untrusted(
        pki: Pki, tmp_path: Path, leaf: dict[str, Any]) -> None:
    honest = pki.tsa.reply(request_for(sha256(SIGNED), nonce=NONCE))
    control = resigned(honest, pki.signer, tmp_path)  # the same path, the right leaf
    assert verify_token(control, digest=sha256(SIGNED), roots=(pki.root,),
                        nonce=NONCE).ok
    forged = resigned(honest, pki.ca.issue_tsa(f"weak-{len(leaf)}", **leaf), tmp_path)
    check = verify_token(forged, digest=sha256(SIGNED), roots=(pki.root,), nonce=NONCE)
    assert _codes(check) == [Code.E_TIMESTAMP_UNTRUSTED]
    assert "purpose" in check.findings[0].details["reason"]


def test_another_nonce_is_a_replay_finding(pki: Pki) -> None:
    token = pki.tsa.reply(request_for(sha256(SIGNED), nonce=NONCE))
    check = verify_token(token, digest=sha256(SIGNED), roots=(pki.root,), nonce=NONCE + 2)
    assert _codes(check) == [Code.E_TIMESTAMP_NONCE]


def test_every_problem_is_reported_not_only_the_first(pki: Pki) -> None:
    other = pki.tsa.reply(request_for(sha256(b"another manifest"), nonce=NONCE))
    check = verify_token(other, digest=sha256(SIGNED), roots=(pki.other_root,),
                         nonce=NONCE + 2)
    assert _codes(check) == sorted([Code.E_TIMESTAMP_IMPRINT, Code.E_TIMESTAMP_UNTRUSTED,
                                    Code.E_TIMESTAMP_NONCE])


def test_a_changed_signature_is_an_invalid_finding(pki: Pki) -> None:
    token = bytearray(pki.tsa.reply(request_for(sha256(SIGNED), nonce=NONCE)))
    token[-10] ^= 0x01  # inside the ECDSA signature, the last field of the token
    check = verify_token(bytes(token), digest=sha256(SIGNED), roots=(pki.root,))
    assert _codes(check) == [Code.E_TIMESTAMP_INVALID]


@pytest.mark.parametrize("junk", [b"", b"not a token", b"\x30\x03\x02\x01"])
def test_garbage_is_a_finding_never_an_exception(pki: Pki, junk: bytes) -> None:
    check = verify_token(junk, digest=sha256(SIGNED), roots=(pki.root,))
    assert _codes(check) == [Code.E_TIMESTAMP_INVALID]
    assert check.attested_at is None


def test_truncated_token_is_a_finding(pki: Pki) -> None:
    token = pki.tsa.reply(request_for(sha256(SIGNED), nonce=NONCE))
    check = verify_token(token[:-7], digest=sha256(SIGNED), roots=(pki.root,))
    assert _codes(check) == [Code.E_TIMESTAMP_INVALID]


def test_a_refused_request_is_an_invalid_finding(pki: Pki, tmp_path: Path) -> None:
    # SHA-1 is not among the TSA's digests: it answers "rejection" (badAlg), no token.
    query = tmp_path / "sha1.tsq"
    subprocess.run([require_openssl(), "ts", "-query", "-sha1", "-digest", "00" * 20,
                    "-out", str(query)], check=True, capture_output=True)
    answer = pki.tsa.reply(query.read_bytes())
    check = verify_token(answer, digest=sha256(SIGNED), roots=(pki.root,))
    assert Code.E_TIMESTAMP_INVALID in _codes(check)
    assert check.ok is False
