"""Fixity: re-hash the real store from disk; every missing, altered or unexpected object is
found and named; runs and findings are audited; sampling is seeded and covers the store."""

from __future__ import annotations

import hashlib
import json
import os
import random
from datetime import timedelta
from pathlib import Path

import blake3
import pytest
from audit_support import T0, make_log
from evidock_testing import store_bytes, write_agency_config
from service_support import serving
from sqlmodel import Session, select

from archive.audit.log import AuditLog
from archive.audit.verify import verify_log
from archive.catalog import Blob
from archive.fixity import (
    CHUNK,
    E_FIXITY_ALTERED,
    E_FIXITY_MISSING,
    E_FIXITY_UNEXPECTED,
    Fixity,
    FixityCheck,
    FixityPlan,
)
from archive.store import ContentStore
from integrity.errors import FixityError
from integrity.findings import Finding


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> object:
        self.now += timedelta(seconds=1)
        return self.now


def _blob(store: ContentStore, log: AuditLog, data: bytes, *, sha256: str | None = None,
          ) -> str:
    b3, sha = store_bytes(store, data)
    with log.catalog.transaction() as s:
        s.add(Blob(blake3=b3, sha256=sha256 or sha, size=len(data), stored_at=T0))
    return b3


@pytest.fixture
def env(tmp_path: Path) -> tuple[Fixity, list[str], Path]:
    home = tmp_path / "home"
    log = make_log(home)
    store = ContentStore(root=home / "store")
    rng = random.Random(7)
    blobs = [_blob(store, log, rng.randbytes(rng.randrange(1, 300_000))) for _ in range(20)]
    fixity = Fixity(catalog=log.catalog, store=store, audit=log, clock=Clock())
    return fixity, blobs, home


def _codes(findings: tuple[Finding, ...]) -> set[tuple[str, str | None]]:
    return {(f.code, f.subject) for f in findings}


def test_clean_store_passes_and_every_check_is_recorded(env: tuple[Fixity, list[str], Path],
                                                       ) -> None:
    fixity, blobs, _ = env
    (fixity.store.root / ".quarantine").mkdir()
    (fixity.store.root / ".quarantine" / "junk").write_bytes(b"kept, not ours to judge")
    report = fixity.run(FixityPlan("all", seed=1), actor="user:auditor")
    assert report.exit_code == 0 and report.checked == 20 and not report.findings
    with Session(fixity.catalog.engine) as s:
        checks = list(s.exec(select(FixityCheck)))
    assert sorted(c.blake3 for c in checks) == sorted(blobs)  # type: ignore[type-var]
    assert all(c.ok and c.digests == "blake3" and c.run_id == report.run_id for c in checks)
    last = fixity.audit.event(fixity.audit.size() - 1)
    assert last is not None and last.action == "fixity.run"
    assert last.details["checked"] == 20 and last.details["seed"] == 1


def test_flipped_byte_deleted_blob_and_stray_files_are_named(
        env: tuple[Fixity, list[str], Path]) -> None:
    fixity, blobs, _ = env
    store = fixity.store
    flipped = store.path_for(blobs[3])
    os.chmod(flipped, 0o644)
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0x01
    flipped.write_bytes(bytes(data))
    store.path_for(blobs[7]).unlink()
    stray = blake3.blake3(b"planted").hexdigest()
    store.path_for(stray).parent.mkdir(parents=True, exist_ok=True)
    store.path_for(stray).write_bytes(b"planted")
    (store.root / "notes.txt").write_bytes(b"?")
    (store.root / ".staging" / "abc").mkdir()  # a writer's staging dir: ignored
    report = fixity.run(FixityPlan("all", seed=1), actor="user:auditor")
    rel = str(store.path_for(stray).relative_to(store.root))
    assert _codes(report.findings) == {
        (E_FIXITY_ALTERED, blobs[3]), (E_FIXITY_MISSING, blobs[7]),
        (E_FIXITY_UNEXPECTED, rel), (E_FIXITY_UNEXPECTED, "notes.txt")}
    assert report.exit_code == 1 and report.checked == 20
    events = [fixity.audit.event(i) for i in range(fixity.audit.size())]
    found = [e for e in events if e and e.action == "fixity.finding"]
    assert sorted(e.details["code"] for e in found) == sorted(f.code for f in report.findings)
    assert events[-1].details["codes"] == sorted(  # type: ignore[union-attr]
        {E_FIXITY_ALTERED, E_FIXITY_MISSING, E_FIXITY_UNEXPECTED})
    assert verify_log(fixity.catalog.engine, keyring=None).ok


def test_symlink_and_size_change_are_altered(env: tuple[Fixity, list[str], Path]) -> None:
    fixity, blobs, tmp = env
    victim = fixity.store.path_for(blobs[0])
    victim.unlink()
    outside = tmp / "outside"
    outside.write_bytes(b"x")
    victim.symlink_to(outside)
    grown = fixity.store.path_for(blobs[1])
    os.chmod(grown, 0o644)
    with open(grown, "ab") as fh:
        fh.write(b"!")
    report = fixity.run(FixityPlan("all"), actor="u")
    assert _codes(report.findings) == {(E_FIXITY_ALTERED, blobs[0]),
                                       (E_FIXITY_ALTERED, blobs[1])}


def test_large_blob_read_in_chunks(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    store = ContentStore(root=tmp_path / "store")
    data = random.Random(1).randbytes(CHUNK * 2 + 12345)  # three reads
    b3 = _blob(store, log, data)
    exact = _blob(store, log, data[:CHUNK])  # exactly one buffer: the end is a 0 read
    fixity = Fixity(catalog=log.catalog, store=store, audit=log, clock=Clock())
    clean = fixity.run(FixityPlan("all", sha256=True), actor="u")
    assert clean.exit_code == 0 and clean.bytes_read == len(data) + CHUNK
    assert fixity.run(FixityPlan("all"), actor="u").bytes_read == len(data) + CHUNK
    path = store.path_for(b3)
    os.chmod(path, 0o644)
    with open(path, "r+b") as fh:
        fh.seek(len(data) - 3)
        fh.write(b"\x00\x00\x00" if data[-3:] != b"\x00\x00\x00" else b"\x01\x01\x01")
    report = fixity.run(FixityPlan("all"), actor="u")
    assert _codes(report.findings) == {(E_FIXITY_ALTERED, b3)}
    assert exact in {r.blake3 for r in fixity.select(FixityPlan("all"))}


def test_sha256_mode_checks_the_second_digest(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    store = ContentStore(root=tmp_path / "store")
    b3 = _blob(store, log, b"evidence", sha256="0" * 64)  # catalogued with a wrong SHA-256
    fixity = Fixity(catalog=log.catalog, store=store, audit=log, clock=Clock())
    assert fixity.run(FixityPlan("all"), actor="u").exit_code == 0
    report = fixity.run(FixityPlan("all", sha256=True), actor="u")
    assert _codes(report.findings) == {(E_FIXITY_ALTERED, b3)}
    assert report.findings[0].details["actual_sha256"] == hashlib.sha256(b"evidence").hexdigest()


def test_sampling_is_reproducible_and_covers_everything(env: tuple[Fixity, list[str], Path],
                                                        ) -> None:
    fixity, blobs, _ = env
    first = [r.blake3 for r in fixity.select(FixityPlan("sample", seed=42, sample=6))]
    assert first == [r.blake3 for r in fixity.select(FixityPlan("sample", seed=42, sample=6))]
    assert first != [r.blake3 for r in fixity.select(FixityPlan("sample", seed=43, sample=6))]
    proven: list[str] = []
    for seed in range(4):  # 4 runs of 6 cover all 20: never-proven objects come first
        report = fixity.run(FixityPlan("sample", seed=seed, sample=6), actor="timer")
        with Session(fixity.catalog.engine) as s:
            proven += [c.blake3 for c in s.exec(select(FixityCheck).where(  # type: ignore[misc]
                FixityCheck.run_id == report.run_id, FixityCheck.blake3 != None))]  # noqa: E711
    assert sorted(set(proven)) == sorted(blobs) and len(proven) == 24
    oldest = {r.blake3 for r in fixity.select(FixityPlan("sample", seed=9, sample=6))}
    assert oldest <= set(proven[:6] + proven[6:12]), "then the longest-ago proven"


def test_since_selects_recent_blobs_and_hooks_add_checks(env: tuple[Fixity, list[str], Path],
                                                         ) -> None:
    fixity, blobs, _ = env
    late = _blob(fixity.store, fixity.audit, b"later")
    with pytest.raises(FixityError):
        FixityPlan("since", since=T0.replace(tzinfo=None))
    assert [r.blake3 for r in fixity.select(FixityPlan("since", since=T0))] == sorted(
        [*blobs, late])
    assert fixity.select(FixityPlan("since", since=T0 + timedelta(days=1))) == []
    seen: list[str] = []

    def manifest_check(ref: object, path: Path) -> list[Finding]:
        seen.append(path.name)
        return [Finding("E_SIGNATURE_INVALID", "bad manifest", path.name)] \
            if path.name == late else []

    hooked = Fixity(catalog=fixity.catalog, store=fixity.store, audit=fixity.audit,
                    clock=Clock(), checks=[manifest_check])
    report = hooked.run(FixityPlan("all"), actor="u")
    assert len(seen) == 21 and _codes(report.findings) == {("E_SIGNATURE_INVALID", late)}


def test_fixity_command(env: tuple[Fixity, list[str], Path]) -> None:
    fixity, blobs, home = env
    write_agency_config(home)
    fixity.store.path_for(blobs[2]).unlink()
    with serving(home) as svc:
        run = svc.cli("fixity", "--sample", "30", "--seed", "5", "--json", user="admin",
                      env={"EVIDOCK_ACTOR": "user:mallory"})
        human = svc.cli("fixity", user="supervisor")
        both = svc.cli("fixity", "--all", "--sample", "3", user="admin")
        clerk = svc.cli("fixity", "--json", user="clerk")
    assert run.returncode == 1, run.stdout
    out = json.loads(run.stdout)
    assert out["seed"] == 5 and out["checked"] == 20
    assert [f["code"] for f in out["findings"]] == [E_FIXITY_MISSING]
    assert human.returncode == 1 and "(seed " in human.stdout
    assert f"{E_FIXITY_MISSING} [{blobs[2]}]" in human.stdout
    assert both.returncode == 2 and "E_FIXITY" in both.stderr
    assert clerk.returncode == 3
    assert json.loads(clerk.stdout)["error"]["code"] == "E_FORBIDDEN"
    runs = [e for e in (fixity.audit.event(i) for i in range(fixity.audit.size()))
            if e is not None and e.action == "fixity.run"]
    # Run by the identified users (the client's environment names nobody).
    assert [(e.actor, e.details["seed"]) for e in runs][0] == ("user:admin", 5)
    assert [e.actor for e in runs] == ["user:admin", "user:supervisor"]
