"""The audit log: transactional appends, chain, signed heads, proofs, concurrency, ingest."""

from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import blake3
import pytest
from audit_support import T0, fill, make_log, run_together
from evidock_testing import write_agency_config
from hypothesis import given, settings
from hypothesis import strategies as st
from service_support import open_dir, serving
from sqlalchemy.dialects import sqlite
from sqlmodel import Session, select

from archive.audit.log import (
    GENESIS,
    AuditEvent,
    AuditLog,
    EventSpec,
    HeadSigner,
    encode,
    encode_fast,
    event_body,
    leaf_hex,
)
from archive.audit.proofs import prove_consistency, prove_inclusion
from archive.audit.rows import build_row
from archive.audit.verify import check_proof, verify_log
from archive.catalog import Catalog, Device, SessionFile, Wipe
from archive.catalog.types import JSONText
from integrity.errors import AuditError, CatalogError
from integrity.merkle import ConsistencyProof, MerkleTree, verify_consistency

REPO = Path(__file__).resolve().parents[2]


def test_events_chain_and_verify(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    fill(log, 25)
    with Session(log.catalog.engine) as s:
        rows = list(s.exec(select(AuditEvent).order_by(AuditEvent.seq)))  # type: ignore[arg-type]
    assert [r.seq for r in rows] == list(range(25))
    assert rows[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.leaf_hash for a, b in zip(rows, rows[1:], strict=False))
    assert rows[5].details["note"] == "现场执法" and rows[5].at == T0 + timedelta(seconds=5)
    assert verify_log(log.catalog.engine, keyring=log.signer.keyring()).ok  # type: ignore[union-attr]


def test_event_commits_with_its_action_or_not_at_all(tmp_path: Path) -> None:
    log = make_log(tmp_path, signer=False)
    with pytest.raises(CatalogError), log.catalog.transaction() as s:
        s.add(Device(serial="ZFY0009", first_seen=T0))
        log.append(s, actor="u", action="device.add", subjects=["ZFY0009"], details={}, at=T0)
        s.add(Device(serial="ZFY0009", first_seen=T0))  # duplicate key: the commit fails
        s.flush()
    assert log.size() == 0
    with log.catalog.transaction() as s:
        s.add(Device(serial="ZFY0009", first_seen=T0))
        event = log.append(s, actor="u", action="device.add", subjects=["ZFY0009"],
                           details={}, at=T0)
    assert event.seq == 0 and log.size() == 1


def test_append_needs_a_write_transaction_and_valid_values(tmp_path: Path) -> None:
    log = make_log(tmp_path, signer=False)
    with Session(log.catalog.engine) as s, pytest.raises(AuditError, match="write transaction"):
        log.append(s, actor="u", action="x", subjects=[], details={}, at=T0)
    for bad in ({"details": {"f": 1.5}}, {"details": {"big": 2**60}},
                {"at": T0.replace(tzinfo=None)}, {"subjects": "rec-1"}):
        kwargs = {"actor": "u", "action": "x", "subjects": [], "details": {}, "at": T0, **bad}
        with pytest.raises(AuditError), log.catalog.transaction() as s:
            log.append(s, **kwargs)  # type: ignore[arg-type]
    assert log.size() == 0


# ASCII (with control characters: the fast path) or any text (the exact path).
_text = st.text(st.characters(max_codepoint=127), max_size=8) | st.text(max_size=8)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.floats() | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(details=st.dictionaries(_text, _json, max_size=5), actor=_text)
def test_fast_encoding_is_byte_identical_to_jcs(details: dict, actor: str) -> None:
    body = {"v": 1, "at": "2026-11-23T08:00:00.000000Z", "actor": actor, "action": "a",
            "subjects": ["x"], "details": details, "prev": GENESIS}
    try:
        exact = encode(body)
    except AuditError:  # floats, unsafe integers, lone surrogates: refused by both
        with pytest.raises(AuditError):
            encode_fast(body)
        return
    assert encode_fast(body) == exact


@settings(max_examples=300, deadline=None)
@given(details=st.dictionaries(_text, _json, max_size=5), actor=_text, action=_text,
       subjects=st.lists(_text, max_size=3))
def test_stored_rows_hash_and_store_exactly_as_jcs(details: dict, actor: str, action: str,
                                                   subjects: list[str]) -> None:
    """The row builder's leaf (concatenated from the column texts for plain ASCII events)
    is the JCS leaf, and its column texts are what the JSON columns store."""
    at = T0 + timedelta(microseconds=7)
    spec = EventSpec(actor, action, subjects, details, at)
    body = event_body(at=at, actor=actor, action=action, subjects=subjects, details=details,
                      prev=GENESIS)
    try:
        exact = leaf_hex(encode(body))
    except AuditError:
        with pytest.raises(AuditError):
            build_row(0, GENESIS, spec)
        return
    row = build_row(0, GENESIS, spec)
    assert row.leaf == exact
    if row.texts is not None:
        column = JSONText()
        assert row.texts == (column.process_bind_param(subjects, sqlite.dialect()),
                             column.process_bind_param(details, sqlite.dialect()))


def test_signed_heads_inclusion_and_consistency_proofs(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    ring = log.signer.keyring()  # type: ignore[union-attr]
    heads = []
    for n in (1, 6, 13, 32, 50):
        fill(log, n - log.size(), start=log.size())
        heads.append(log.sign_head(at=T0 + timedelta(hours=n)))
    assert [h.size for _, h in log.heads()] == [1, 6, 13, 32, 50]
    assert all(not h.check(ring, "h") for h in heads)
    for seq in range(50):
        doc = json.loads(json.dumps(log.prove(seq)))
        assert doc["head"] == heads[-1].to_dict()
        assert len(doc["proof"]["path"]) <= math.ceil(math.log2(50))
        assert check_proof(doc, ring) == []
    doc = log.prove(7)
    doc["event"]["details"]["n"] = 8  # a doctored event no longer proves
    assert [f.code for f in check_proof(doc, ring)] == ["E_PROOF_INVALID"]
    for old in heads:
        for new in heads:
            if old.size <= new.size:
                c = log.consistency(old.size, new.size)
                verify_consistency(ConsistencyProof.from_dict(c["proof"]),
                                   bytes.fromhex(old.root), bytes.fromhex(new.root))
    assert log.checkpoint(at=T0 + timedelta(days=1)) is None, "nothing new to sign"
    fill(log, 1, start=50)
    assert log.checkpoint(at=T0 + timedelta(days=1), every=timedelta(days=2)) is None
    assert log.checkpoint(at=T0 + timedelta(days=1)).size == 51  # type: ignore[union-attr]


@settings(max_examples=150, deadline=None)
@given(size=st.integers(1, 300), data=st.data())
def test_streamed_proofs_equal_the_in_memory_tree(size: int, data: st.DataObject) -> None:
    leaves = [blake3.blake3(i.to_bytes(4, "big")).digest() for i in range(size)]
    tree = MerkleTree(leaves)
    index = data.draw(st.integers(0, size - 1))
    old = data.draw(st.integers(0, size))
    proof, root = prove_inclusion(iter(leaves + [b"x" * 32]), index, size)
    assert (proof, root) == (tree.inclusion_proof(index), tree.root())
    assert prove_consistency(iter(leaves), old, size) == (
        tree.consistency_proof(old), tree.root(old), tree.root())


def test_head_is_not_signed_over_a_doctored_frontier(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    fill(log, 9)
    log.sign_head(at=T0)
    fill(log, 2, start=9)
    db = tmp_path / "catalog.sqlite3"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DROP TRIGGER no_update_treehead")
    conn.execute("UPDATE treehead SET frontier = ? ", (json.dumps(["00" * 32] * 2),))
    conn.close()
    with pytest.raises(AuditError, match="does not check out"):
        log.sign_head(at=T0)


def test_refused_verbs_are_audited_through_the_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_agency_config(home)
    forged = {"EVIDOCK_ACTOR": "user:mallory", "EVIDOCK_USER": "admin"}
    with serving(home) as svc:
        res = svc.cli("delete", "recording", "abc123", "--force", user="clerk", env=forged)
        assert res.returncode == 3
        assert "E_REFUSED" in res.stderr and "never deletes or edits" in res.stderr
        res = svc.cli("edit", "abc123", "--json", user="officer")
        assert res.returncode == 3 and json.loads(res.stdout)["error"]["code"] == "E_REFUSED"
        seq = json.loads(res.stdout)["error"]["details"]["audit_seq"]
        nobody = svc.cli("rm", "abc123", user="evt-nobody")
        assert nobody.returncode == 3 and "E_UNKNOWN_USER" in nobody.stderr
    log = AuditLog(catalog=Catalog.open(f"sqlite:///{home / 'catalog.sqlite3'}"))
    try:
        events = [log.event(i) for i in range(log.size())]
    finally:
        log.catalog.close()
    # Recorded under the user the kernel identified, not whom the environment names.
    assert [(e.actor, e.action, e.subjects, e.details["code"]) for e in events if e] == [
        ("user:clerk", "evidence.delete", ["recording abc123 --force"], "E_REFUSED"),
        ("user:officer", "evidence.edit", ["abc123"], "E_REFUSED"),
        ("os:evt-nobody", "access.refused", [], "E_UNKNOWN_USER")]
    assert events[seq] is not None and events[seq].action == "evidence.edit"


def test_an_unchanged_log_keeps_its_head(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    fill(log, 5)
    head = log.current_head(at=T0)
    assert head.size == 5 and log.current_head(at=T0 + timedelta(hours=1)) == head
    fill(log, 1, start=5)
    assert log.current_head(at=T0 + timedelta(hours=2)).size == 6
    assert len(log.heads()) == 2


def test_head_proof_verify_commands(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_agency_config(home)
    log = make_log(home)
    fill(log, 12)
    ring = log.signer.keyring()  # type: ignore[union-attr]
    with serving(home) as svc:
        head = svc.cli("audit", "head", user="admin")
        assert head.returncode == 0, head.stderr
        saved = open_dir("evidock-head-") / "head.json"  # the client's: the CLI reads it
        saved.write_text(head.stdout)
        saved.chmod(0o644)
        first = json.loads(head.stdout)
        # The head covers the log including the read that asked for it.
        assert first["size"] == 13 and log.event(12).action == "read.audit.head"  # type: ignore[union-attr]
        again = json.loads(svc.cli("audit", "head", user="admin").stdout)
        assert again["size"] == 14, "each read is an event: the log grew by one"
        cons = svc.cli("audit", "consistency", "13", "14", user="supervisor")
        assert cons.returncode == 0, cons.stderr
        verify_consistency(ConsistencyProof.from_dict(json.loads(cons.stdout)["proof"]),
                           bytes.fromhex(first["root"]), bytes.fromhex(again["root"]))
        proof = svc.cli("audit", "proof", "3", user="admin")
        assert proof.returncode == 0 and check_proof(json.loads(proof.stdout), ring) == []
        ver = svc.cli("audit", "verify", "--against", str(saved), "--json", user="admin",
                      env={"EVIDOCK_ACTOR": "user:mallory"})
        assert ver.returncode == 0, ver.stdout
        out = json.loads(ver.stdout)
        assert out["ok"] and out["events"] == 16 and out["heads"] == 3
        missing = svc.cli("audit", "proof", "999", user="admin")
        # A number the log does not have is a missing event, not a damaged log.
        assert missing.returncode == 1 and "E_NOT_FOUND" in missing.stdout
        unreadable = svc.cli("audit", "verify", "--against", str(tmp_path / "absent.json"),
                             user="admin")
        assert unreadable.returncode == 2 and "cannot read saved head" in unreadable.stderr
    shutil.rmtree(saved.parent)
    verified = log.event(out["audit_seq"])
    assert verified is not None and verified.action == "audit.verify"
    assert verified.actor == "user:admin" and verified.details["saved"] == 1
    assert [log.event(i).action for i in range(12, 17)] == [  # type: ignore[union-attr]
        "read.audit.head", "read.audit.head", "read.audit.consistency",
        "read.audit.proof", "audit.verify"]


_APPENDER = textwrap.dedent("""
    import sys
    from datetime import UTC, datetime
    from archive.audit.log import AuditLog
    from archive.catalog import Catalog, Device
    log = AuditLog(catalog=Catalog.open(sys.argv[1]))
    name, n = sys.argv[2], int(sys.argv[3])
    print("ready", flush=True)
    sys.stdin.readline()
    for i in range(n):
        with log.catalog.transaction() as s:
            s.add(Device(serial=f"{name}{i:05d}", first_seen=datetime.now(UTC)))
            log.append(s, actor=name, action="device.add", subjects=[f"{name}{i:05d}"],
                       details={"i": i}, at=datetime.now(UTC))
    print("done", flush=True)
""")


def test_two_processes_append_gap_free(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    make_log(tmp_path, signer=False).catalog.close()
    procs = [subprocess.Popen([sys.executable, "-c", _APPENDER, url, name, "60"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              cwd=REPO) for name in ("A", "B")]
    assert run_together(procs, timeout=120) == ["done", "done"]
    log = make_log(tmp_path, signer=False)
    report = verify_log(log.catalog.engine, keyring=None)
    assert report.ok and report.events == 120
    actors = [log.event(i).actor for i in range(120)]  # type: ignore[union-attr]
    assert actors.count("A") == actors.count("B") == 60


_INGESTER = textwrap.dedent("""
    import os, sys
    from config import load_settings
    from evidock.wiring import Services, utc_now
    from archive.audit.log import AuditLog, HeadSigner
    from ingest.offload import Offloader
    from ingest.outcome import OffloadRequest
    svc = Services.from_config(load_settings())
    audit = AuditLog(catalog=svc.catalog, signer=HeadSigner(keys=svc.keys,
                                                            station_id="station-01"))
    off = Offloader(settings=svc.settings, store=svc.store, catalog=svc.catalog,
                    prober=svc.prober, clock=utc_now, audit=audit)
    print("ready", flush=True)
    sys.stdin.readline()
    report = off.run(OffloadRequest(source=sys.argv[1], device_serial=sys.argv[2],
                                    bay=sys.argv[3], wipe_after_verify=sys.argv[3] == "1"))
    print(report.outcome, flush=True)
""")


def test_two_bays_ingest_concurrently_into_one_catalog(tmp_path: Path, camera: Path) -> None:
    home = tmp_path / "home"
    make_log(home).catalog.close()  # station key, so each offload signs a head at its end
    second = tmp_path / "camera2"
    second.mkdir()
    for path in camera.rglob("*"):
        if path.is_file() and not path.is_symlink():
            dest = second / path.relative_to(camera)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(path.read_bytes() + (b"bay2" if path.suffix == ".LOG" else b""))
    env = dict(os.environ, EVIDOCK_HOME=str(home))
    procs = [subprocess.Popen([sys.executable, "-c", _INGESTER, str(cam), dev, bay],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              cwd=REPO, env=env)
             for cam, dev, bay in ((camera, "ZFY0001", "1"), (second, "ZFY0002", "2"))]
    for out in run_together(procs, timeout=300):
        assert out in ("completed", "findings"), out
    log = make_log(home)
    report = verify_log(log.catalog.engine, keyring=log.signer.keyring())  # type: ignore[union-attr]
    assert report.ok, report.findings
    # Heads: each session's sealed end (and the wiping bay's first wipe), each checkpoint.
    assert len(log.heads()) >= 3 and max(h.size for _, h in log.heads()) == report.events
    events = [e for e in (log.event(i) for i in range(report.events)) if e]
    assert {e.actor for e in events} == {"station:station-01"}
    with Session(log.catalog.engine) as s:
        rows = list(s.exec(select(SessionFile).order_by(SessionFile.id)))  # type: ignore[arg-type]
        wipes = list(s.exec(select(Wipe)))
    # Each row has its event, with the same facts and time, in the same order.
    assert [(e.subjects[0], e.details["path"], e.details["status"], e.details["code"],
             e.details["blake3"], e.at) for e in events if e.action == "ingest.file"] == [
        (r.session_id, r.display, r.status, r.code, r.blake3, r.at) for r in rows]
    assert len(rows) > 0
    wiped = [e for e in events if e.action == "ingest.wipe"]
    assert len(wiped) == len(wipes) > 0  # bay 1 wipes after verify
    for start in (e for e in events if e.action == "dock.session.start"):
        end = next(e for e in events if e.action == "dock.session.end"
                   and e.subjects[0] == start.subjects[0])
        assert end.details["outcome"] in ("completed", "findings") and end.seq > start.seq
    assert sum(e.action == "dock.session.start" for e in events) == 2


def test_audit_tables_refuse_update_and_delete(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    fill(log, 3)
    log.sign_head(at=T0)
    conn = sqlite3.connect(tmp_path / "catalog.sqlite3")
    conn.execute("INSERT INTO fixitycheck (run_id, path, at, ok, code, digests) "
                 "VALUES ('r', 'p', '2026-01-01 00:00:00.000000', 1, 'I_FIXITY_OK', 'blake3')")
    conn.commit()
    for table, column in (("auditevent", "actor"), ("treehead", "root"),
                          ("fixitycheck", "code")):
        for sql in (f"UPDATE {table} SET {column} = 'x'", f"DELETE FROM {table}"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(sql)
    conn.close()
    assert log.size() == 3


def test_signer_without_a_key_skips_checkpoints(tmp_path: Path) -> None:
    log = make_log(tmp_path, signer=False)
    fill(log, 2)
    assert isinstance(log.signer, HeadSigner) and log.checkpoint(at=T0) is None
    with pytest.raises(Exception, match="no station key|no keyring"):
        log.sign_head(at=T0)
