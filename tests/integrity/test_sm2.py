"""SM2/SM3 (profile ``gm``) proven against the standards' own examples and OpenSSL.

* SM3: GB/T 32905-2016 Appendix A, examples 1 and 2 — through ``sm2.sm3`` and through a
  ``gm`` package's manifest-sm3.txt (records.bagwriter, hashlib's "sm3").
* SM2: the signature example on the *recommended* curve sm2p256v1 with the standard
  signer ID 1234567812345678, message "message digest" — GM/T 0003.5-2012 Appendix A.2
  (= GB/T 32918.5-2017 Appendix A); the same numbers are in OpenSSL's
  test/sm2_internal_test.c and GmSSL's tests. Its intermediate values ZA and e are
  recomputed here from the curve parameters, so the pre-hash itself is checked, not only
  GmSSL's verify.
* OpenSSL 3 CLI both ways (`openssl pkey`, `openssl pkeyutl -rawin -digest sm3
  -pkeyopt distid:1234567812345678`): our keys and signatures read by OpenSSL, OpenSSL's
  by us, and a signature under another signer ID refused.

GmSSL prints a diagnostic line on stderr when a verification fails: expected noise.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import blake3
import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from integrity import keys, sm2
from integrity.codes import Code
from integrity.errors import KeyError_, ManifestInvalid
from integrity.manifest import (
    Manifest,
    OriginalRef,
    Rendition,
    SegmentEntry,
    build_manifest,
    dump_signed,
    load_signed,
    sign_manifest,
    verify_signed_bytes,
    verify_signed_manifest,
)
from records.bagwriter import write_bag

# GB/T 32905-2016 Appendix A.
SM3_ABC = "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
SM3_ABCD16 = "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"

# GM/T 0003.5-2012 Appendix A.2 / GB/T 32918.5-2017 Appendix A (curve sm2p256v1).
CURVE_A = "FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC"
CURVE_B = "28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93"
CURVE_GX = "32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7"
CURVE_GY = "BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0"
VEC_D = bytes.fromhex("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8")
VEC_X = "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
VEC_Y = "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
VEC_PUBLIC = bytes.fromhex("04" + VEC_X + VEC_Y)
VEC_MESSAGE = b"message digest"
VEC_ZA = "B2E14C5C79C6DF5B85F4FE7ED8DB7A262B9DA7E07CCB0EA9F4747B8CCDA8A4F3"
VEC_E = "F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640"
VEC_R = "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3"
VEC_S = "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA"
VEC_SIG = bytes.fromhex(VEC_R + VEC_S)

DISTID = "distid:1234567812345678"
N = sm2.N


def flip(data: bytes, index: int, bit: int = 0) -> bytes:
    return data[:index] + bytes([data[index] ^ (1 << bit)]) + data[index + 1:]


# --------------------------------------------------------------------------- SM3


@pytest.mark.parametrize(("message", "expected"), [
    (b"abc", SM3_ABC), (b"abcd" * 16, SM3_ABCD16)])
def test_sm3_standard_vectors(message: bytes, expected: str) -> None:
    assert sm2.sm3(message).hex() == expected


def test_sm3_vectors_through_a_gm_package_manifest(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "abc.txt").write_bytes(b"abc")
    (tmp_path / "data" / "abcd16.txt").write_bytes(b"abcd" * 16)
    write_bag(tmp_path, bag_id="EXP-SM3", day=date(2026, 1, 2),
              keypair=keys.KeyPair.generate(keys.SM2))
    lines = (tmp_path / "manifest-sm3.txt").read_text(encoding="utf-8").splitlines()
    assert dict(line.split(" ", 1)[::-1] for line in lines) == {
        "data/abc.txt": SM3_ABC, "data/abcd16.txt": SM3_ABCD16}
    assert "Evidock-Crypto-Profile: gm\n" in (tmp_path / "bag-info.txt").read_text()


# --------------------------------------------------------------------------- published SM2 vector


def test_vector_za_and_e_from_the_curve_parameters() -> None:
    # ZA = SM3(ENTL ‖ ID ‖ a ‖ b ‖ Gx ‖ Gy ‖ xA ‖ yA), ENTL = bit length of ID (128).
    za = sm2.sm3(b"\x00\x80" + sm2.SIGNER_ID + bytes.fromhex(
        CURVE_A + CURVE_B + CURVE_GX + CURVE_GY + VEC_X + VEC_Y))
    assert za.hex().upper() == VEC_ZA
    assert sm2.sm3(za + VEC_MESSAGE).hex().upper() == VEC_E


def test_published_signature_verifies_and_one_bit_breaks_it() -> None:
    public = keys.PublicKey(VEC_PUBLIC, keys.SM2)
    keys.verify(public, VEC_MESSAGE, VEC_SIG)  # raises if invalid
    assert sm2.from_der(sm2.to_der(VEC_SIG)) == VEC_SIG
    for index in (0, 31, 32, 63):
        assert not keys.is_valid(public, VEC_MESSAGE, flip(VEC_SIG, index))
    assert not keys.is_valid(public, flip(VEC_MESSAGE, 0), VEC_SIG)


def test_published_key_pair_loads_and_signs_verifiably() -> None:
    pair = keys.KeyPair(VEC_D, keys.PublicKey(VEC_PUBLIC, keys.SM2))
    again = keys.KeyPair.from_pem(pair.to_pem())
    assert again.seed == VEC_D and again.public.raw == VEC_PUBLIC
    first, second = keys.sign(pair, VEC_MESSAGE), keys.sign(pair, VEC_MESSAGE)
    assert first != second  # a fresh k each time: randomised, both valid
    assert keys.is_valid(pair.public, VEC_MESSAGE, first)
    assert keys.is_valid(pair.public, VEC_MESSAGE, second)
    wrong = keys.KeyPair.generate(keys.SM2)
    with pytest.raises(KeyError_):
        keys.KeyPair(VEC_D, wrong.public)  # d does not belong to another point


# --------------------------------------------------------------------------- OpenSSL CLI


@pytest.fixture(scope="module")
def openssl() -> str:
    """The openssl binary; a workstation without it skips, CI=true fails."""
    found = shutil.which("openssl")
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("openssl is needed for the SM2 cross-check (CI=true: must run)")
        pytest.skip("openssl not installed")
    return found


def run(argv: list[str], *, ok: bool = True) -> subprocess.CompletedProcess[bytes]:
    done = subprocess.run(argv, capture_output=True, timeout=30, check=False)
    if ok:
        assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done


def ossl_verify(openssl: str, pub: Path, msg: Path, sig: Path) -> bool:
    done = run([openssl, "pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pkeyopt", DISTID,
                "-pubin", "-inkey", str(pub), "-in", str(msg), "-sigfile", str(sig)], ok=False)
    return done.returncode == 0 and b"Signature Verified Successfully" in done.stdout


def ossl_sign(openssl: str, key: Path, msg: Path, out: Path, distid: str = DISTID) -> bytes:
    run([openssl, "pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-pkeyopt", distid,
         "-inkey", str(key), "-in", str(msg), "-out", str(out)])
    return out.read_bytes()


def test_openssl_reads_our_key_and_verifies_our_signature(openssl: str, tmp_path: Path) -> None:
    pair = keys.KeyPair.generate(keys.SM2)
    (key := tmp_path / "ours.pem").write_bytes(pair.to_pem())
    # OpenSSL rewrites the same key byte for byte, and derives our public PEM from d.
    assert run([openssl, "pkey", "-in", str(key)]).stdout == pair.to_pem()
    assert run([openssl, "pkey", "-in", str(key), "-pubout"]).stdout == pair.public.to_pem()
    (pub := tmp_path / "pub.pem").write_bytes(pair.public.to_pem())
    (msg := tmp_path / "msg").write_bytes("执法记录仪 DSJ-0001 segment 0007".encode())
    (sig := tmp_path / "sig.der").write_bytes(sm2.to_der(keys.sign(pair, msg.read_bytes())))
    assert ossl_verify(openssl, pub, msg, sig)
    msg.write_bytes(msg.read_bytes() + b"!")
    assert not ossl_verify(openssl, pub, msg, sig)


def test_openssl_verifies_the_published_vector_under_our_pem(
        openssl: str, tmp_path: Path) -> None:
    (pub := tmp_path / "pub.pem").write_bytes(keys.PublicKey(VEC_PUBLIC, keys.SM2).to_pem())
    (msg := tmp_path / "msg").write_bytes(VEC_MESSAGE)
    (sig := tmp_path / "sig.der").write_bytes(sm2.to_der(VEC_SIG))
    assert ossl_verify(openssl, pub, msg, sig)
    sig.write_bytes(sm2.to_der(flip(VEC_SIG, 40)))
    assert not ossl_verify(openssl, pub, msg, sig)


def test_we_read_openssls_key_and_verify_its_signature(openssl: str, tmp_path: Path) -> None:
    key, pub = tmp_path / "k.pem", tmp_path / "p.pem"
    run([openssl, "genpkey", "-algorithm", "SM2", "-out", str(key)])
    run([openssl, "pkey", "-in", str(key), "-pubout", "-out", str(pub)])
    pair = keys.KeyPair.from_pem(key.read_bytes())
    public = keys.PublicKey.from_pem(pub.read_bytes())
    assert pair.alg == public.alg == keys.SM2
    assert public.key_id == pair.key_id and public.key_id.startswith("sm2:")
    assert pair.to_pem() == key.read_bytes()
    (msg := tmp_path / "msg").write_bytes(b"rendition manifest bytes")
    signature = sm2.from_der(ossl_sign(openssl, key, msg, tmp_path / "s.der"))
    assert keys.is_valid(public, msg.read_bytes(), signature)
    assert not keys.is_valid(public, b"another message", signature)
    # ... and our signature with OpenSSL's key verifies under OpenSSL.
    (ours := tmp_path / "ours.der").write_bytes(sm2.to_der(keys.sign(pair, msg.read_bytes())))
    assert ossl_verify(openssl, pub, msg, ours)


@pytest.mark.parametrize("distid", ["distid:ALICE123@YAHOO.COM", "distid:1234567812345679"])
def test_a_signature_under_another_signer_id_does_not_verify(
        openssl: str, tmp_path: Path, distid: str) -> None:
    key, pub = tmp_path / "k.pem", tmp_path / "p.pem"
    run([openssl, "genpkey", "-algorithm", "SM2", "-out", str(key)])
    run([openssl, "pkey", "-in", str(key), "-pubout", "-out", str(pub)])
    (msg := tmp_path / "msg").write_bytes(b"tree head 42")
    other = sm2.from_der(ossl_sign(openssl, key, msg, tmp_path / "s.der", distid))
    assert not keys.is_valid(keys.PublicKey.from_pem(pub.read_bytes()), msg.read_bytes(), other)


# --------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize("raw", [
    b"", VEC_PUBLIC[:64], VEC_PUBLIC + b"\x00", VEC_PUBLIC[1:],   # wrong lengths
    b"\x02" + VEC_PUBLIC[1:],                                     # not uncompressed
    flip(VEC_PUBLIC, 64),                                         # y off the curve
    b"\x04" + b"\x00" * 64,                                       # (0, 0)
    b"\x04" + b"\xff" * 64,                                       # coordinates ≥ p
], ids=["empty", "short", "long", "no-prefix", "compressed-tag", "off-curve", "zero",
        "over-p"])
def test_malformed_public_keys_are_refused(raw: bytes) -> None:
    with pytest.raises(KeyError_):
        keys.PublicKey(raw, keys.SM2)
    with pytest.raises(KeyError_):
        keys.PublicKey.from_hex(raw.hex(), keys.SM2)


@pytest.mark.parametrize("d", [0, N - 1, N, 2**256 - 1], ids=["0", "n-1", "n", "max"])
def test_private_scalars_out_of_range_are_refused(d: int) -> None:
    private = d.to_bytes(32, "big")
    with pytest.raises(KeyError_):
        keys.KeyPair(private, keys.PublicKey(VEC_PUBLIC, keys.SM2))
    # The same scalar inside an otherwise well-formed PKCS#8 PEM.
    good = keys.KeyPair(VEC_D, keys.PublicKey(VEC_PUBLIC, keys.SM2)).to_pem()
    der = sm2.unpem("PRIVATE KEY", good).replace(VEC_D, private)
    with pytest.raises(KeyError_):
        keys.KeyPair.from_pem(sm2.pem("PRIVATE KEY", der))


def test_wrong_length_private_keys_are_refused() -> None:
    for private in (b"", VEC_D[:31], VEC_D + b"\x00"):
        with pytest.raises(KeyError_):
            keys.KeyPair(private, keys.PublicKey(VEC_PUBLIC, keys.SM2))


R, S = int(VEC_R, 16), int(VEC_S, 16)


@pytest.mark.parametrize(("r", "s"), [
    (0, S), (R, 0), (N, S), (R, N), (N + 1, S), (R, 2**256 - 1), (R, S + N)],
    ids=["r=0", "s=0", "r=n", "s=n", "r=n+1", "s=max", "s+n"])
def test_signature_values_out_of_range_are_refused(r: int, s: int) -> None:
    public = keys.PublicKey(VEC_PUBLIC, keys.SM2)
    if s < 2**256:
        raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        assert not keys.is_valid(public, VEC_MESSAGE, raw)
        assert not sm2.verify(VEC_PUBLIC, VEC_MESSAGE, raw)
    with pytest.raises(KeyError_):
        sm2.from_der(encode_dss_signature(r, s))


def test_der_signatures_with_garbage_or_truncation_are_refused() -> None:
    der = sm2.to_der(VEC_SIG)
    for bad in (der + b"\x00", der + der, der[:-1], b"", b"\x30\x00", der[2:]):
        with pytest.raises(KeyError_):
            sm2.from_der(bad)
    for bad_sig in (b"", VEC_SIG[:63], VEC_SIG + b"\x00", der):
        assert not keys.is_valid(keys.PublicKey(VEC_PUBLIC, keys.SM2), VEC_MESSAGE, bad_sig)


def test_passphrase_protected_sm2_pem_is_a_key_error(openssl: str, tmp_path: Path) -> None:
    pair = keys.KeyPair.generate(keys.SM2)
    with pytest.raises(KeyError_):
        pair.to_pem(b"secret")
    enc = tmp_path / "enc.pem"
    run([openssl, "genpkey", "-algorithm", "SM2", "-aes256", "-pass", "pass:secret",
         "-out", str(enc)])
    for passphrase in (None, b"secret", b"wrong"):
        with pytest.raises(KeyError_):
            keys.KeyPair.from_pem(enc.read_bytes(), passphrase)


@pytest.mark.parametrize("text", [
    b"", b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
    b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"])
def test_garbage_pem_is_a_key_error(text: bytes) -> None:
    with pytest.raises(KeyError_):
        keys.KeyPair.from_pem(text)
    with pytest.raises(KeyError_):
        keys.PublicKey.from_pem(text)


# --------------------------------------------------------------------------- keyrings, blocks


def mixed_keyring() -> tuple[keys.Keyring, keys.PublicKey, keys.PublicKey]:
    ed = keys.KeyPair.generate(keys.ALG).public
    gm = keys.KeyPair.generate(keys.SM2).public
    return keys.rotate(keys.new_keyring(ed), gm), ed, gm


def test_keyring_with_both_suites_round_trips() -> None:
    ring, ed, gm = mixed_keyring()
    again = keys.Keyring.from_dict(ring.to_dict())
    assert again == ring and again.current == gm.key_id and again.profile == "gm"
    assert [k.alg for k in again.keys] == ["ed25519", "sm2"]
    assert again.get(ed.key_id) == ed and again.get(gm.key_id) == gm


@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize("relabel_id", [False, True])
def test_keyring_entry_with_relabelled_alg_is_refused(which: int, relabel_id: bool) -> None:
    ring, _, _ = mixed_keyring()
    data = ring.to_dict()
    entry = data["keys"][which]
    swapped = "sm2" if entry["alg"] == "ed25519" else "ed25519"
    entry["alg"] = swapped
    if relabel_id:  # a forger who also recomputes the id for the claimed suite
        entry["key_id"] = keys.key_id_for(bytes.fromhex(entry["public"]), swapped)
    with pytest.raises(KeyError_):
        keys.Keyring.from_dict(data)


def test_signature_block_alg_must_match_its_key_id() -> None:
    gm_id = keys.KeyPair.generate(keys.SM2).key_id
    ed_id = keys.KeyPair.generate(keys.ALG).key_id
    assert keys.signature_alg_ok("sm2", gm_id) and keys.signature_alg_ok("ed25519", ed_id)
    for alg, key_id in (("ed25519", gm_id), ("sm2", ed_id), ("SM2", gm_id), (None, gm_id),
                        ("sm2", "sm2:" + "0" * 31), ("sm2", gm_id.upper())):
        assert not keys.signature_alg_ok(alg, key_id)


# --------------------------------------------------------------------------- rendition manifest


def sample_manifest() -> Manifest:
    body = "录像_20260102_083000.MP4".encode()
    segment = b"segment 0"
    return build_manifest(
        station_id="朝阳分局-取证站-01", device_serial="DSJ-2026-000001",
        officer_id="警号 010203", created_at=datetime(2026, 1, 2, 8, 30, tzinfo=UTC),
        originals=(OriginalRef(recording_id="rec-1", name="录像_20260102_083000.MP4",
                               size=len(body), blake3=blake3.blake3(body).hexdigest(),
                               sha256=hashlib.sha256(body).hexdigest()),),
        rendition=Rendition(kind="remux", container="fmp4", tool="ffmpeg",
                            argv=("ffmpeg", "-i", "in.MP4"), init_segment=None),
        segments=(SegmentEntry(0, 0, 6_000_000, len(segment),
                               blake3.blake3(segment).hexdigest(), "seg_000.m4s"),))


def test_rendition_manifest_signed_with_sm2_verifies_and_alg_swap_fails() -> None:
    pair = keys.KeyPair.generate(keys.SM2)
    known = {pair.key_id: pair.public}
    data = dump_signed(sign_manifest(sample_manifest(), pair))
    assert b'"alg":"sm2"' in data
    loaded = load_signed(data)
    assert loaded.key_id == pair.key_id
    assert verify_signed_manifest(loaded, known) == []
    assert verify_signed_bytes(data, known) == []
    swapped = data.replace(b'"alg":"sm2"', b'"alg":"ed25519"')
    with pytest.raises(ManifestInvalid):
        load_signed(swapped)
    findings = verify_signed_bytes(swapped, known)
    assert [(f.code, f.message.split(':')[0]) for f in findings] == [
        (Code.E_MANIFEST_INVALID, "signature.alg")]
    tampered = data.replace("警号 010203".encode(), "警号 010204".encode())
    assert Code.E_SIGNATURE_INVALID in {f.code for f in verify_signed_bytes(tampered, known)}


def test_sm2_manifest_signature_verifies_under_openssl(openssl: str, tmp_path: Path) -> None:
    pair = keys.KeyPair.generate(keys.SM2)
    manifest = sample_manifest()
    signed = sign_manifest(manifest, pair)
    (msg := tmp_path / "manifest.canonical").write_bytes(
        signed.manifest.to_canonical_bytes())
    (pub := tmp_path / "pub.pem").write_bytes(pair.public.to_pem())
    (sig := tmp_path / "sig.der").write_bytes(
        sm2.to_der(bytes.fromhex(signed.signature_hex)))
    assert ossl_verify(openssl, pub, msg, sig)
