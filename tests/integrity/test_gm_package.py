"""A refused SM2 signature or a hostile public key is a finding and nothing else: GmSSL
writes a C-level diagnostic to fd 2 for each one it refuses, which integrity/sm2.py spools
and drops (keeping anything else written meanwhile), so `evidock verify` shows a
recipient only its findings. Packages and their tampering: tests/service/
test_gm_profile.py and test_gm_tamper.py (real service, real accounts)."""

from __future__ import annotations

import os

import pytest
from test_sm2 import VEC_MESSAGE, VEC_PUBLIC, VEC_SIG, flip

from integrity import keys, sm2
from integrity.errors import KeyError_


def _quiet(capfd: pytest.CaptureFixture[str]) -> None:
    out, err = capfd.readouterr()
    assert (out, err) == ("", ""), err


def test_refused_signatures_print_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    public = keys.PublicKey(VEC_PUBLIC, keys.SM2)
    refused = [flip(VEC_SIG, i) for i in (0, 31, 32, 63)]
    assert not any(keys.is_valid(public, VEC_MESSAGE, sig) for sig in refused)
    assert not keys.is_valid(public, flip(VEC_MESSAGE, 0), VEC_SIG)
    other = keys.KeyPair.generate(keys.SM2).public
    assert not keys.is_valid(other, VEC_MESSAGE, VEC_SIG)  # another station's key
    _quiet(capfd)


def test_a_point_off_the_curve_is_refused_quietly(capfd: pytest.CaptureFixture[str]) -> None:
    off = VEC_PUBLIC[:-1] + bytes([VEC_PUBLIC[-1] ^ 1])
    with pytest.raises(KeyError_, match="not a point on the SM2 curve"):
        keys.PublicKey(off, keys.SM2)
    assert not sm2.verify(off, VEC_MESSAGE, VEC_SIG)
    _quiet(capfd)


def test_what_others_write_meanwhile_is_kept(capfd: pytest.CaptureFixture[str]) -> None:
    with sm2._gmssl_quiet():
        os.write(2, b"another thread's log line\n")
        assert not sm2.verify(VEC_PUBLIC, VEC_MESSAGE + b"!", VEC_SIG)  # GmSSL prints
    out, err = capfd.readouterr()
    assert (out, err) == ("", "another thread's log line\n")
