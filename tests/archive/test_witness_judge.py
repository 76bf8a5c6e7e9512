"""The witness's judge (archive/witness/judge.py) on real logs, heads and proofs.

Two real audit logs share a key and their first events, then diverge; every head of
either is judged against every earlier head of the other, and each verdict checked. The
countersignature format is checked offline too.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from audit_support import T0, fill, make_log

from archive.audit.format import SignedHead
from archive.audit.log import AuditLog
from archive.keystore import StationKeys
from archive.witness.cosign import Cosigned, Cosigner
from archive.witness.judge import Kind, judge
from integrity.merkle import ConsistencyProof

STATION = "station-01"


def _head(log: AuditLog, n: int, at_s: int) -> SignedHead:
    return log.signer.sign(size=n, root=bytes.fromhex(log.consistency(0, n)["new_root"]),
                           at=T0 + timedelta(seconds=at_s))  # type: ignore[union-attr]


def _proof(log: AuditLog, old: int, new: int) -> ConsistencyProof:
    return ConsistencyProof.from_dict(log.consistency(old, new)["proof"])


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> tuple[AuditLog, AuditLog]:
    """``honest`` has 40 events; ``forked`` the same first 13, then others."""
    root = tmp_path_factory.mktemp("judge")
    honest = make_log(root / "honest")
    fill(honest, 13)
    shutil.copytree(root / "honest", root / "forked")
    fill(honest, 27, start=13)
    forked = make_log(root / "forked", signer=False)
    forked.signer = honest.signer  # the same station key signs both
    fill(forked, 27, start=100)
    return honest, forked


def _judge(log: AuditLog, last: SignedHead | None, new: SignedHead,
           proof: ConsistencyProof | None) -> Kind:
    assert log.signer is not None
    return judge(station_id=STATION, last=last, new=new, proof=proof,
                 keyring=log.signer.keyring()).kind


def test_honest_growth_is_accepted(logs: tuple[AuditLog, AuditLog]) -> None:
    honest, _ = logs
    first = _head(honest, 5, 1)
    assert _judge(honest, None, first, None) is Kind.FIRST
    for n in (6, 8, 13, 16, 17, 40):
        new = _head(honest, n, n)
        assert _judge(honest, first, new, _proof(honest, 5, n)) is Kind.EXTENDS, n
    assert _judge(honest, first, _head(honest, 5, 9), None) is Kind.SAME


def test_every_head_of_a_fork_is_caught(logs: tuple[AuditLog, AuditLog]) -> None:
    honest, forked = logs
    for old in (1, 7, 12, 13, 14, 20, 39):
        witnessed = _head(honest, old, 1)
        for new in range(max(old, 14), 41):  # the forked log from its first own event
            head = _head(forked, new, 100 + new)
            proof = _proof(forked, old, new) if new > old else None
            kind = _judge(honest, witnessed, head, proof)
            # Up to 13 events the two logs agree: a proof from there is a true one.
            want = Kind.EXTENDS if old <= 13 else Kind.FORK
            assert kind is want, (old, new, kind)


def test_same_size_other_root_smaller_and_stale_heads(logs: tuple[AuditLog, AuditLog],
                                                      ) -> None:
    honest, forked = logs
    witnessed = _head(honest, 30, 50)
    assert _judge(honest, witnessed, _head(forked, 30, 60), None) is Kind.FORK
    assert _judge(honest, witnessed, _head(honest, 20, 60), None) is Kind.TRUNCATED
    assert _judge(honest, witnessed, _head(honest, 20, 40), None) is Kind.STALE


def test_malformed_requests_are_refused_not_blamed(logs: tuple[AuditLog, AuditLog]) -> None:
    honest, _ = logs
    witnessed, new = _head(honest, 12, 1), _head(honest, 30, 2)
    good = _proof(honest, 12, 30)
    assert _judge(honest, witnessed, new, None) is Kind.BAD_PROOF
    assert _judge(honest, witnessed, new, _proof(honest, 11, 30)) is Kind.BAD_PROOF
    short = ConsistencyProof(12, 30, good.path[:-1])
    assert _judge(honest, witnessed, new, short) is Kind.BAD_PROOF
    flipped = ConsistencyProof(12, 30, (bytes(32), *good.path[1:]))
    assert _judge(honest, witnessed, new, flipped) is Kind.FORK  # well-formed, wrong
    forged = SignedHead(31, new.root, new.time, STATION, new.key_id, new.signature)
    assert _judge(honest, witnessed, forged, good) is Kind.BAD_SIGNATURE
    other = SignedHead(30, new.root, new.time, "station-02", new.key_id, new.signature)
    assert _judge(honest, witnessed, other, good) is Kind.WRONG_STATION


def test_a_countersignature_checks_offline_and_binds_everything(tmp_path: Path,
                                                                logs: tuple[AuditLog, AuditLog],
                                                                ) -> None:
    honest, _ = logs
    keys = StationKeys(directory=tmp_path / "center")
    keys.init()
    cosigned = Cosigner(keys=keys, witness_id="center").cosign(_head(honest, 9, 3),
                                                                at=T0 + timedelta(hours=1))
    ring = keys.keyring()
    again = Cosigned.from_dict(cosigned.to_dict())
    assert again == cosigned and again.check(ring, "c") == []
    later = Cosigned(cosigned.head, "center", T0 + timedelta(hours=2), cosigned.key_id,
                     cosigned.signature)
    assert [f.code for f in later.check(ring, "c")] == ["E_SIGNATURE_INVALID"]
    other_head = Cosigned(_head(honest, 10, 3), "center", cosigned.witnessed_at,
                          cosigned.key_id, cosigned.signature)
    assert [f.code for f in other_head.check(ring, "c")] == ["E_SIGNATURE_INVALID"]
    assert [f.code for f in cosigned.check(honest.signer.keyring(), "c")] == [  # type: ignore[union-attr]
        "E_KEY_UNKNOWN"]
