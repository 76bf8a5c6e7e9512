"""Issue 20: a center witnesses the audit logs of two stations (RFC 6962 gossip).

Three real `evidock serve` processes on 127.0.0.1: a center (HTTPS, mutual TLS; each
station's certificate is a user with the ``station`` role) and stations A and B, each
with ``[center]`` pointing at it. The stations' admins push through the real CLI as
their own OS accounts. What is checked: heads are countersigned and the station keeps a
countersignature that verifies offline with the center's public keyring; a log rewritten
behind a station's back (events edited with every hash recomputed, its tree heads
removed), or cut short, is reported by the center as a fork, kept as a conflict with the
evidence and audited at both ends; a head with a bad signature or for a station the
center does not witness is refused and nothing is witnessed; while the center is down
the push fails cleanly and the next one catches up.
"""

from __future__ import annotations

import json
import os
import pwd
import select as fdselect
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from center_support import center_toml, free_port, push, station_toml
from evidock_testing import AGENCY_TOML, REPO, listening_fifo, migrated_home, ok_json
from pki_support import CertAuthority, Issued, trusting
from service_support import RunningService, account, audit_rows, serving
from sqlmodel import Session, select

from archive.audit.log import GENESIS, AuditEvent, AuditLog, HeadSigner
from archive.audit.rows import EventSpec, build_row
from archive.catalog import Catalog
from archive.keystore import StationKeys
from archive.witness.cosign import Cosigned
from archive.witness.mirror import Mirror
from config import load_settings
from evidock.jobs import JobResult, execute
from evidock.wiring import Services
from integrity.keys import Keyring
from integrity.merkle import empty_root

API = "/api/v1"




@dataclass
class Agency:
    root: Path
    ca: CertAuthority
    certs: dict[str, Issued]
    server: Issued

    def url(self, port: int) -> str:
        return f"https://127.0.0.1:{port}"

    def station_home(self, name: str, *, port: int) -> Path:
        """A station that pushes to the center on ``port``; its public keyring is left
        where a center can trust it (``witness/<name>.json``)."""
        home = self.root / name
        home.mkdir()
        keys = StationKeys(directory=home / "keys")
        keys.init()
        shutil.copy(keys.keyring_path, self.root / "witness" / f"{name}.json")
        (home / "evidock.toml").write_text(AGENCY_TOML + station_toml(
            name, port=port, center_keyring=self.root / "witness" / "center.json",
            ca=self.ca.root.cert, cert=self.certs[name]), encoding="utf-8")
        return migrated_home(home)

    def center_home(self, name: str, *, port: int, witnessed: tuple[str, ...]) -> Path:
        """A center on ``port`` witnessing ``witnessed``; every station's certificate is
        a user with the ``station`` role there. Its keyring is ``witness/center.json``
        (one key for every center of the test: each stations' config names that file)."""
        home = self.root / name
        keys = StationKeys(directory=home / "keys")
        if not (self.root / "witness" / "center.json").exists():
            keys.init()
            shutil.copy(keys.keyring_path, self.root / "witness" / "center.json")
        else:
            shutil.copytree(self.root / "center-keys", home / "keys")
        shutil.copytree(home / "keys", self.root / "center-keys", dirs_exist_ok=True)
        (home / "evidock.toml").write_text(AGENCY_TOML + center_toml(
            port=port, server=self.server, ca=self.ca.root.cert, users=self.certs,
            stations=[(n, self.root / "witness" / f"{n}.json", "") for n in witnessed]),
            encoding="utf-8")
        return migrated_home(home)

    def client(self, port: int, cert: str) -> httpx.Client:
        return httpx.Client(base_url=self.url(port) + API, timeout=30,
                            verify=trusting(self.ca, self.certs[cert]),
                            headers={"X-Evidock-Client": "test"})


#: The module's center witnesses these; station-c has a station's account there but is
#: not witnessed; station-d pushes to a center of its own (the outage test).
WITNESSED = ("station-a", "station-b", "station-t")


@pytest.fixture(scope="module")
def agency(tmp_path_factory: pytest.TempPathFactory) -> Agency:
    root = tmp_path_factory.mktemp("witness")
    (root / "pki").mkdir()
    (root / "witness").mkdir()
    ca = CertAuthority(root / "pki", "agency-ca")
    names = (*WITNESSED, "station-c", "station-d", "station-k")
    return Agency(root, ca, {n: ca.issue(n) for n in names}, ca.issue("center", server=True))


@dataclass
class Center:
    svc: RunningService
    home: Path
    port: int


@pytest.fixture(scope="module")
def center(agency: Agency) -> Iterator[Center]:
    port = free_port()
    for name in WITNESSED:
        agency.station_home(name, port=port)
    home = agency.center_home("center", port=port, witnessed=WITNESSED)
    with serving(home) as svc:
        assert svc.url == agency.url(port), svc.url
        yield Center(svc, home, port)



def _log_size(home: Path) -> int:
    catalog = Catalog.open(f"sqlite:///{home / 'catalog.sqlite3'}")
    try:
        return AuditLog(catalog=catalog).size()
    finally:
        catalog.close()


def _center_keyring(agency: Agency) -> Keyring:
    return StationKeys.read_keyring(agency.root / "witness" / "center.json")


def test_heads_are_countersigned_and_the_station_keeps_the_proof(
        agency: Agency, center: Center) -> None:
    home = agency.root / "station-a"
    with serving(home) as station:
        ok_json(station.cli("audit", "head", user="admin"))  # a few events to witness
        # What the center's config names is what `keys export-public --keyring` prints.
        exported = center.svc.cli("keys", "export-public", "--keyring", user="admin")
        assert json.loads(exported.stdout) == json.loads(
            (agency.root / "witness" / "center.json").read_text())
        first = push(station)
        c1 = Cosigned.from_dict(first["cosigned"])
        assert first["witnessed_size"] == 0 and c1.witness_id == "center"
        assert c1.head.station_id == "station-a" and c1.head.size >= 1
        assert c1.check(_center_keyring(agency), "center") == []  # offline, public key
        ok_json(station.cli("audit", "events", "--json", user="admin"))  # the log grows
        second = push(station)
        c2 = Cosigned.from_dict(second["cosigned"])
        assert second["witnessed_size"] == c1.head.size < c2.head.size
        kept = ok_json(station.cli("witness", "received", "--json", user="admin"))
        assert [c["head"]["size"] for c in kept["cosigned"]] == [c2.head.size, c1.head.size]
        assert ok_json(station.cli("witness", "push", "--json", user="clerk"), 3)[
            "error"]["code"] == "E_FORBIDDEN"  # a clerk may not
    received = audit_rows(home, "witness.received")
    assert [r.details["size"] for r in received] == [c1.head.size, c2.head.size]
    cosigned = audit_rows(center.home, "witness.cosigned")
    assert [(r.actor, r.details["size"], r.details["verdict"]) for r in cosigned
            if r.subjects == ["station:station-a"]] == [
        ("user:station-a", c1.head.size, "first"), ("user:station-a", c2.head.size, "extends")]


def _rewrite(home: Path, seq: int) -> None:
    """What someone with write access to the catalog file could do: edit event ``seq``,
    recompute its leaf hash and every later one so the chain holds, and remove the signed
    tree heads that would give it away (the guard triggers dropped first)."""
    catalog = Catalog.open(f"sqlite:///{home / 'catalog.sqlite3'}")
    with Session(catalog.engine) as s:
        events = list(s.exec(select(AuditEvent).order_by(AuditEvent.seq)))
    catalog.close()
    prev = events[seq - 1].leaf_hash if seq else GENESIS
    updates = []
    for e in events[seq:]:
        details = {**e.details, "rewritten": True} if e.seq == seq else e.details
        row = build_row(e.seq, prev, EventSpec(e.actor, e.action, e.subjects, details, e.at))
        updates.append((json.dumps(details, sort_keys=True, ensure_ascii=False,
                                   separators=(",", ":")), prev, row.leaf, e.seq))
        prev = row.leaf
    conn = sqlite3.connect(home / "catalog.sqlite3", isolation_level=None)
    try:
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger' "
                                    "AND tbl_name IN ('auditevent', 'treehead')").fetchall():
            conn.execute(f"DROP TRIGGER {name}")
        conn.executemany("UPDATE auditevent SET details = ?, prev_hash = ?, leaf_hash = ? "
                         "WHERE seq = ?", updates)
        conn.execute("DELETE FROM treehead")
    finally:
        conn.close()


def test_a_log_rewritten_behind_the_stations_back_is_reported_as_a_fork(
        agency: Agency, center: Center) -> None:
    home = agency.root / "station-b"
    with serving(home) as station:
        ok_json(station.cli("audit", "head", user="admin"))
        witnessed = Cosigned.from_dict(push(station)["cosigned"])
        _rewrite(home, 0)
        # The station's own check: every event still hashes and chains (the rewrite
        # recomputed them) and its own heads are gone, but the countersigned head it
        # kept no longer matches the log.
        verified = ok_json(station.cli("audit", "verify", "--json", user="admin"), 1)
        assert {(f["code"], f["subject"].split("@")[0]) for f in verified["findings"]} == {
            ("E_AUDIT_ROOT_MISMATCH", f"witnessed:{witnessed.head.size}")}
        refused = push(station, 1)["error"]
        assert refused["code"] == "E_LOG_FORK", refused
        assert refused["details"]["kind"] == "fork"
    conflicts = ok_json(center.svc.cli("witness", "conflicts", "--station", "station-b",
                                       "--json", user="admin"), 1)["conflicts"]
    assert len(conflicts) == 1
    found = conflicts[0]
    assert found["kind"] == "fork" and found["id"] == refused["details"]["conflict"]
    # The evidence kept: the station's next event chains to a predecessor other than the
    # one the center mirrored (and whose root it countersigned).
    n = witnessed.head.size
    assert found["head"]["seq"] == n and found["witnessed"]["seq"] == n - 1
    assert found["head"]["prev_hash"] != found["witnessed"]["leaf_hash"]
    assert "rewritten" in found["reason"]
    forks = [r for r in audit_rows(center.home, "witness.fork")
             if r.subjects == ["station:station-b"]]
    assert [r.details["conflict"] for r in forks] == [found["id"]]
    reported = audit_rows(home, "witness.fork_reported")
    assert reported and reported[-1].details["center"]["conflict"] == found["id"]
    # Nothing more is countersigned for B: the last witnessed head is still the honest one.
    with agency.client(center.port, "station-b") as b:
        latest = b.get("/witness/stations/station-b/latest").json()["cosigned"]
    assert latest["head"] == witnessed.head.to_dict()


def test_a_log_cut_short_is_reported_as_truncated(agency: Agency,
                                                  center: Center) -> None:
    home = agency.root / "station-t"
    with serving(home) as station:
        ok_json(station.cli("audit", "head", user="admin"))
        ok_json(station.cli("audit", "events", "--json", user="admin"))
        last = Cosigned.from_dict(push(station)["cosigned"])
        conn = sqlite3.connect(home / "catalog.sqlite3", isolation_level=None)
        try:
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'"
                                        " AND tbl_name IN ('auditevent', 'treehead')"):
                conn.execute(f"DROP TRIGGER {name}")
            conn.execute("DELETE FROM auditevent WHERE seq >= ?", (last.head.size - 2,))
            conn.execute("DELETE FROM treehead")
        finally:
            conn.close()
        refused = push(station, 1)["error"]
    assert refused["code"] == "E_LOG_FORK" and refused["details"]["kind"] == "truncated"
    kinds = [c["kind"] for c in ok_json(center.svc.cli(
        "witness", "conflicts", "--station", "station-t", "--json", user="admin"), 1)[
        "conflicts"]]
    assert kinds == ["truncated"]


def test_bad_heads_and_strangers_are_refused_and_nothing_is_witnessed(
        agency: Agency, center: Center) -> None:
    keys = StationKeys(directory=agency.root / "station-a" / "keys")
    head = HeadSigner(keys=keys, station_id="station-a").sign(
        size=0, root=empty_root(), at=datetime.now(UTC))
    forged = {**head.to_dict(), "size": 1}  # the signature no longer covers it
    with agency.client(center.port, "station-a") as a:
        before = a.get("/witness/stations/station-a/latest").json()["cosigned"]
        bad = a.post("/witness/stations/station-a/heads", json={"head": forged})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "E_WITNESS_REFUSED"
        other = a.post("/witness/stations/station-x/heads", json={"head": head.to_dict()})
        assert other.json()["error"]["code"] == "E_WITNESS_REFUSED"
        assert a.get("/witness/conflicts").json()["error"]["code"] == "E_FORBIDDEN"
        assert a.get("/witness/stations/station-a/latest").json()["cosigned"] == before
    with agency.client(center.port, "station-c") as c:  # a station's account, but not A's keys
        wrong = c.post("/witness/stations/station-a/heads",
                       json={"head": {**head.to_dict(), "station_id": "station-c"}})
        assert wrong.json()["error"]["code"] == "E_WITNESS_REFUSED"
        # Nor may it write into A's mirror (events are not signed one by one).
        assert c.get("/feed/stations/station-a/position").json()["error"]["code"] == \
            "E_WITNESS_REFUSED"
        injected = c.post("/feed/stations/station-a/events", json={"events": []})
        assert injected.status_code == 422, injected.text
    with agency.client(center.port, "station-a") as a:
        assert a.get("/feed/stations/station-a/position").status_code == 200
    refused = [r.details["why"] for r in audit_rows(center.home, "witness.refused")]
    assert any("signature" in why for why in refused)
    assert any("not a station this service witnesses" in why for why in refused)
    assert any("only from its own account 'station-a'" in why for why in refused)


def test_the_push_fails_cleanly_while_the_center_is_down_and_catches_up(
        agency: Agency, center: Center) -> None:
    port = free_port()
    home = agency.station_home("station-d", port=port)
    with serving(home) as station:
        ok_json(station.cli("audit", "head", user="admin"))
        down = push(station, 2)["error"]
        assert down["code"] == "E_CENTER_UNAVAILABLE", down
        assert audit_rows(home, "witness.received") == []
        size = _log_size(home)  # the failed push added nothing
        with serving(agency.center_home("center-d", port=port,
                                        witnessed=("station-d",))) as center_d:
            never = ok_json(center_d.cli("witness", "status", "--json", user="admin"), 1)
            caught_up = Cosigned.from_dict(push(station)["cosigned"])
            again = push(station)
            job = _scheduled_push(home)  # the scheduler's job does the same
            now = ok_json(center_d.cli("witness", "status", "--json", user="admin"))
    assert [(s["station_id"], s["size"], s["stale"]) for s in never["stations"]] == [
        ("station-d", None, True)]  # witnessed never: stale, exit 1
    [st] = now["stations"]
    assert (st["size"], st["mirrored"], st["stale"], st["conflicts"]) == (
        job.counts["size"], job.counts["events_next"], False, 0)
    assert caught_up.head.size == size and again["witnessed_size"] == size
    assert job.outcome == "ok" and job.counts["witnessed_size"] == \
        again["cosigned"]["head"]["size"] < job.counts["size"]
    rows = [r.details["size"] for r in audit_rows(center_d.home, "witness.cosigned")]
    assert rows == [caught_up.head.size, again["cosigned"]["head"]["size"],
                    job.counts["size"]]  # each once


def _scheduled_push(home: Path) -> JobResult:
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}))
    try:
        return execute("witness", svc)
    finally:
        svc.close()


def _mirrored(home: Path, station: str) -> tuple[int, int, int]:
    """(next seq, rows, distinct seqs) of ``station`` in the mirror of the center at home."""
    catalog = Catalog.open(f"sqlite:///{home / 'catalog.sqlite3'}")
    try:
        with catalog.engine.connect() as conn:
            rows, distinct = conn.exec_driver_sql(
                "SELECT count(*), count(DISTINCT seq) FROM stationevent WHERE station_id = ?",
                (station,)).one()
        return Mirror(catalog=catalog).next_seq(station), int(rows), int(distinct)
    finally:
        catalog.close()


def test_a_center_killed_while_keeping_a_batch_keeps_none_of_it_and_the_next_push_all(
        agency: Agency, tmp_path: Path) -> None:
    """SIGKILL of the center inside the write transaction that keeps a batch (hook
    ``feed_inserting``): nothing of the batch survives, the station keeps nothing, and
    the push after the restart brings every event exactly once."""
    port = free_port()
    home = agency.station_home("station-k", port=port)
    center_home = agency.center_home("center-k", port=port, witnessed=("station-k",))
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    os.mkfifo(hooks / "in")
    with listening_fifo(hooks / "out") as paused, serving(home) as station:
        ok_json(station.cli("audit", "head", user="admin"))
        with serving(center_home, env={"EVIDOCK_TEST_HOOKS": str(hooks),
                                       "EVIDOCK_TEST_HOOK_POINTS": "feed_inserting"},
                     ) as center:
            client = _cli_in_background(station, "witness", "push", "--json")
            ready, _, _ = fdselect.select([paused], [], [], 120)
            assert ready, "the center never reached feed_inserting"
            assert os.read(paused, 100).decode().strip() == "feed_inserting"
            center.kill()
            out, _ = client.communicate(timeout=60)
        assert client.returncode == 2 and json.loads(out)["error"]["code"] == \
                "E_CENTER_UNAVAILABLE", out
        assert _mirrored(center_home, "station-k") == (0, 0, 0)  # none of the batch
        assert audit_rows(home, "witness.received") == []
        with serving(center_home):
            done = push(station)
    size = done["events"]["next_seq"]
    assert size == done["events"]["size"] == done["cosigned"]["head"]["size"]
    assert _mirrored(center_home, "station-k") == (size, size, size)


def _cli_in_background(station: RunningService, *args: str) -> subprocess.Popen[str]:
    """`evidock ARGS` as the station's admin, not waited for."""
    pw = pwd.getpwnam(account("admin"))
    return subprocess.Popen(
        [sys.executable, "-m", "evidock", *args],
        env={"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "HOME": "/nonexistent",
             "PYTHONPATH": str(REPO), "EVIDOCK_SOCKET": str(station.socket)},
        cwd="/", text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
