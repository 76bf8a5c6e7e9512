"""An attacker with write access to the catalog file drops the append-only triggers and
edits, deletes, inserts, reorders or truncates audit rows. `audit verify` must name each
tampering with its stable code, and report all of them in one run."""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from audit_support import T0, attacker, fill, make_log
from evidock_testing import write_agency_config
from service_support import open_dir, serving

from archive.audit.log import AuditLog, SignedHead, encode, event_body, leaf_hex
from archive.audit.verify import AuditReport, load_heads, verify_log
from integrity.keys import KeyPair, sign

N = 40


@pytest.fixture
def world(tmp_path: Path) -> tuple[AuditLog, Path, Path]:
    """A 40-event log, a signed head stored in the catalog and saved to a file."""
    home = tmp_path / "home"
    log = make_log(home)
    fill(log, N)
    head = log.sign_head(at=T0)
    saved = tmp_path / "head.json"
    saved.write_text(json.dumps(head.to_dict()))
    return log, home / "catalog.sqlite3", saved


def _verify(log: AuditLog, saved: Path | None = None) -> AuditReport:
    heads = load_heads([saved.read_bytes()]) if saved else []
    return verify_log(log.catalog.engine, keyring=log.signer.keyring(),  # type: ignore[union-attr]
                      saved=heads)


def _codes(report: AuditReport) -> list[tuple[str, str | None]]:
    return [(f.code, f.subject) for f in report.findings]


def _leaf_of(row: tuple) -> str:
    at, actor, action, subjects, details, prev = row
    when = datetime.fromisoformat(at).replace(tzinfo=UTC)
    return leaf_hex(encode(event_body(at=when, actor=actor, action=action,
                                      subjects=json.loads(subjects),
                                      details=json.loads(details), prev=prev)))


_FIELDS = "at, actor, action, subjects, details, prev_hash"


def test_untouched_log_verifies(world: tuple[AuditLog, Path, Path]) -> None:
    log, _, saved = world
    assert _verify(log, saved).ok


def test_edited_event(world: tuple[AuditLog, Path, Path]) -> None:
    log, db, saved = world
    with attacker(db) as conn:
        conn.execute("UPDATE auditevent SET details = ? WHERE seq = 10",
                     (json.dumps({"n": 10, "note": "nothing to see"}),))
    assert _codes(_verify(log, saved)) == [
        ("E_AUDIT_EVENT_CHANGED", "seq:10"),
        ("E_AUDIT_ROOT_MISMATCH", "head:1"), ("E_AUDIT_ROOT_MISMATCH", "saved:0")]


def test_deleted_event(world: tuple[AuditLog, Path, Path]) -> None:
    log, db, saved = world
    with attacker(db) as conn:
        conn.execute("DELETE FROM auditevent WHERE seq IN (10, 11)")
    report = _verify(log, saved)
    assert _codes(report) == [
        ("E_AUDIT_GAP", "seq:10"),
        ("E_AUDIT_ROOT_MISMATCH", "head:1"), ("E_AUDIT_ROOT_MISMATCH", "saved:0")]
    assert report.findings[0].details == {"first_missing": 10, "last_missing": 11}


def test_inserted_event_chained_to_its_predecessor(world: tuple[AuditLog, Path, Path]) -> None:
    log, db, saved = world
    with attacker(db) as conn:
        prev = conn.execute("SELECT leaf_hash FROM auditevent WHERE seq = 19").fetchone()[0]
        # Make room at 20 (two steps: the primary key is checked row by row).
        conn.execute("UPDATE auditevent SET seq = -(seq + 1) WHERE seq >= 20")
        conn.execute("UPDATE auditevent SET seq = -seq WHERE seq < 0")
        forged = ("2026-11-23 08:00:19.500000", "user:alice", "view", '["rec-x"]',
                  '{"n":-1}', prev)
        conn.execute(f"INSERT INTO auditevent (seq, {_FIELDS}, leaf_hash) "
                     "VALUES (20, ?, ?, ?, ?, ?, ?, ?)", (*forged, _leaf_of(forged)))
    assert _codes(_verify(log, saved)) == [
        ("E_AUDIT_CHAIN_BROKEN", "seq:20"),
        ("E_AUDIT_ROOT_MISMATCH", "head:1"), ("E_AUDIT_ROOT_MISMATCH", "saved:0")]


def test_inserted_event_with_made_up_link(world: tuple[AuditLog, Path, Path]) -> None:
    log, db, _ = world
    with attacker(db) as conn:
        forged = ("2026-11-23 09:00:00.000000", "user:alice", "view", "[]", "{}", "ab" * 32)
        conn.execute(f"INSERT INTO auditevent (seq, {_FIELDS}, leaf_hash) "
                     "VALUES (40, ?, ?, ?, ?, ?, ?, ?)", (*forged, _leaf_of(forged)))
    assert _codes(_verify(log)) == [("E_AUDIT_CHAIN_BROKEN", "seq:40")]


def test_reordered_events(world: tuple[AuditLog, Path, Path]) -> None:
    log, db, saved = world
    with attacker(db) as conn:
        a = conn.execute(f"SELECT {_FIELDS}, leaf_hash FROM auditevent WHERE seq=10").fetchone()
        b = conn.execute(f"SELECT {_FIELDS}, leaf_hash FROM auditevent WHERE seq=11").fetchone()
        sets = "at=?, actor=?, action=?, subjects=?, details=?, prev_hash=?, leaf_hash=?"
        conn.execute(f"UPDATE auditevent SET {sets} WHERE seq = 10", b)
        conn.execute(f"UPDATE auditevent SET {sets} WHERE seq = 11", a)
    report = _verify(log, saved)
    assert _codes(report) == [
        ("E_AUDIT_ORDER", "seq:10"), ("E_AUDIT_ORDER", "seq:11"), ("E_AUDIT_ORDER", "seq:12"),
        ("E_AUDIT_ROOT_MISMATCH", "head:1"), ("E_AUDIT_ROOT_MISMATCH", "saved:0")]
    assert "E_AUDIT_EVENT_CHANGED" not in {f.code for f in report.findings}


def test_truncated_tail_is_caught_only_by_a_saved_head(world: tuple[AuditLog, Path, Path],
                                                       ) -> None:
    log, db, saved = world
    with attacker(db) as conn:
        conn.execute("DELETE FROM auditevent WHERE seq >= 35")
        conn.execute("DELETE FROM treehead")  # and the heads that would give it away
    assert _verify(log).ok, "what remains is self-consistent"
    report = _verify(log, saved)
    assert _codes(report) == [("E_AUDIT_TRUNCATED", "saved:0")]
    assert report.findings[0].details == {"head_size": 40, "log_size": 35}


def test_consistent_rewrite_is_caught_by_the_signed_root(world: tuple[AuditLog, Path, Path],
                                                         ) -> None:
    """The attacker edits an event and re-hashes the whole chain after it."""
    log, db, saved = world
    with attacker(db) as conn:
        conn.execute("UPDATE auditevent SET actor = 'user:nobody' WHERE seq = 10")
        prev = conn.execute("SELECT leaf_hash FROM auditevent WHERE seq = 9").fetchone()[0]
        for seq in range(10, N):
            row = conn.execute(f"SELECT {_FIELDS} FROM auditevent WHERE seq = ?",
                               (seq,)).fetchone()
            leaf = _leaf_of((*row[:5], prev))
            conn.execute("UPDATE auditevent SET prev_hash = ?, leaf_hash = ? WHERE seq = ?",
                         (prev, leaf, seq))
            prev = leaf
    assert _codes(_verify(log, saved)) == [
        ("E_AUDIT_ROOT_MISMATCH", "head:1"), ("E_AUDIT_ROOT_MISMATCH", "saved:0")]


def test_forged_heads(world: tuple[AuditLog, Path, Path], tmp_path: Path) -> None:
    log, db, saved = world
    with attacker(db) as conn:
        conn.execute("UPDATE treehead SET size = 39")  # claim fewer events were signed
    stranger = KeyPair.generate()
    unsigned = SignedHead(N, "00" * 32, T0, "station-01", stranger.key_id, "")
    foreign = SignedHead(N, "00" * 32, T0, "station-01", stranger.key_id,
                         sign(stranger, unsigned.signed_bytes()).hex())
    other = tmp_path / "foreign.json"
    other.write_text(json.dumps(foreign.to_dict()))
    heads = load_heads([saved.read_bytes(), other.read_bytes()])
    report = verify_log(log.catalog.engine, keyring=log.signer.keyring(),  # type: ignore[union-attr]
                        saved=heads)
    assert _codes(report) == [
        ("E_SIGNATURE_INVALID", "head:1"), ("E_KEY_UNKNOWN", "saved:1"),
        ("E_AUDIT_ROOT_MISMATCH", "head:1"), ("E_AUDIT_ROOT_MISMATCH", "saved:1")]


def test_everything_at_once_through_the_cli(world: tuple[AuditLog, Path, Path]) -> None:
    log, db, saved = world
    write_agency_config(db.parent)  # the station's users; the catalog is the attacked one
    doctored = json.loads(saved.read_text())
    doctored["signature"] = "00" * 64
    theirs = open_dir("evidock-head-") / "head.json"  # the auditor's copy, read by the CLI
    theirs.write_text(json.dumps(doctored))
    theirs.chmod(0o644)
    with attacker(db) as conn:
        conn.execute("UPDATE auditevent SET action = 'search' WHERE seq = 3")
        conn.execute("DELETE FROM auditevent WHERE seq = 20")
        conn.execute("DELETE FROM auditevent WHERE seq >= 30")
    with serving(db.parent) as svc:
        run = svc.cli("audit", "verify", "--against", str(theirs), "--json", user="admin")
        human = svc.cli("audit", "verify", user="supervisor")
    shutil.rmtree(theirs.parent)
    assert run.returncode == 1, run.stdout
    codes = [f["code"] for f in json.loads(run.stdout)["findings"]]
    # Cheapest first: signatures, then truncation, then the pass over the events.
    assert codes == ["E_SIGNATURE_INVALID", "E_AUDIT_TRUNCATED", "E_AUDIT_TRUNCATED",
                     "E_AUDIT_EVENT_CHANGED", "E_AUDIT_GAP"]
    assert human.returncode == 1 and "E_AUDIT_GAP [seq:20]" in human.stdout
    assert "FINDINGS:" in human.stdout


def test_garbage_in_a_row_is_a_finding_not_a_crash(world: tuple[AuditLog, Path, Path]) -> None:
    log, db, _ = world
    with attacker(db) as conn:
        conn.execute("UPDATE auditevent SET details = 'not json', at = 'yesterday' "
                     "WHERE seq = 5")
    assert _codes(_verify(log))[:1] == [("E_AUDIT_EVENT_CHANGED", "seq:5")]
    assert sqlite3.sqlite_version  # the attack ran on the real file
