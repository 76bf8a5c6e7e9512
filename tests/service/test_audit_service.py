"""The audit log and fixity through the station service: audit.view is required, every
read is itself an audit event of the identified user, and an answered request's event
survives a SIGKILL of the service."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from evidock_testing import REPO, write_agency_config
from service_support import account, serving

from archive.audit.log import AuditEvent, AuditLog
from archive.audit.verify import verify_log
from archive.catalog import Catalog
from config import load_settings
from docks.sdnotify import Notifier
from evidock.service import server
from evidock.wiring import Services


def _events(home: Path) -> list[AuditEvent]:
    catalog = Catalog.open(f"sqlite:///{home / 'catalog.sqlite3'}")
    try:
        log = AuditLog(catalog=catalog)
        found = [log.event(i) for i in range(log.size())]
    finally:
        catalog.close()
    assert all(e is not None for e in found), "gap in the log"
    return [e for e in found if e is not None]


def test_audit_reads_need_audit_view_and_are_audited(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_agency_config(home)
    with serving(home) as svc:
        for argv in (["audit", "head"], ["audit", "proof", "0"],
                     ["audit", "consistency", "0"], ["audit", "events", "--json"],
                     ["audit", "verify", "--json"], ["fixity", "--json"]):
            run = svc.cli(*argv, user="clerk")
            assert run.returncode == 3, (argv, run.stdout, run.stderr)
            assert json.loads(run.stdout)["error"]["code"] == "E_FORBIDDEN", argv
        # The identified user is recorded, whatever the client's environment says.
        proof = svc.cli("audit", "proof", "0", user="supervisor",
                        env={"EVIDOCK_ACTOR": "user:nobody"})
        assert proof.returncode == 0, proof.stderr
        assert json.loads(proof.stdout)["event"]["action"] == "access.refused"
    events = _events(home)
    refused = [e for e in events if e.action == "access.refused"]
    assert [e.actor for e in refused] == ["user:clerk"] * 6
    assert all(e.details["permission"] == "audit.view" for e in refused)
    read = [e for e in events if e.action == "read.audit.proof"]
    assert [(e.actor, e.subjects) for e in read] == [("user:supervisor", ["audit:0"])]


def test_event_list_filters_and_pages_in_the_database(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_agency_config(home)
    with serving(home) as svc:
        for target in ("rec-1", "rec-2", "rec-3", "case:邵城管罚〔2019〕第001号"):
            assert svc.cli("delete", target, user="clerk").returncode == 3
        assert svc.cli("edit", "rec-2", user="officer").returncode == 3

        def page(*args: str) -> dict:
            run = svc.cli("audit", "events", "--json", *args, user="admin")
            assert run.returncode == 0, run.stderr
            return json.loads(run.stdout)

        first = page("--action", "evidence.*", "--limit", "2")
        assert [e["subjects"] for e in first["events"]] == [["rec-1"], ["rec-2"]]
        rest = page("--action", "evidence.*", "--limit", "2", "--after",
                    str(first["next_after"]))
        last = page("--action", "evidence.*", "--limit", "2", "--after",
                    str(rest["next_after"]))
        assert [e["subjects"][0] for e in rest["events"] + last["events"]] == [
            "rec-3", "case:邵城管罚〔2019〕第001号", "rec-2"]
        assert last["next_after"] is None
        assert [e["actor"] for e in page("--subject", "rec-2")["events"]] == [
            "user:clerk", "user:officer"]
        assert [e["action"] for e in page("--actor", "user:officer")["events"]] == [
            "evidence.edit"]
        assert page("--subject", "case:邵城管罚〔2019〕第001号")["events"][0]["action"] == \
            "evidence.delete"
        at = first["events"][1]["at"]
        assert [e["subjects"] for e in page("--action", "evidence.delete", "--until", at)[
            "events"]] == [["rec-1"]]
        assert [e["subjects"][0] for e in page("--action", "evidence.delete", "--since",
                                                at)["events"]] == [
            "rec-2", "rec-3", "case:邵城管罚〔2019〕第001号"]
        naive = svc.cli("audit", "events", "--since", "2001-01-01T00:00:00", "--json",
                        user="admin")
        assert naive.returncode == 1
        assert json.loads(naive.stdout)["error"]["code"] == "E_INVALID"
        human = svc.cli("audit", "events", "--action", "evidence.edit", user="admin")
        assert human.returncode == 0 and "user:officer  evidence.edit  rec-2" in human.stdout
    reads = [e for e in _events(home) if e.action == "read.audit.events"]
    assert all(e.actor == "user:admin" for e in reads) and len(reads) == 9
    assert reads[0].details["action"] == "evidence.*" and reads[0].details["returned"] == 2


def test_the_service_group_commits_audit_events(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """`evidock serve` records events of their own through the group committer and
    drains it when it stops (the listeners themselves are not started here)."""
    home = tmp_path / "home"
    write_agency_config(home)
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}))
    monkeypatch.setattr(asyncio, "run", lambda main: main.close())
    server.serve(svc, socket=tmp_path / "s.sock", notifier=Notifier(env={}))
    committer = svc.committer
    assert committer is not None and committer.running
    svc.gate().read(svc.gate().by_name("admin"), "audit.head", ["audit-log"])
    assert committer.batches == 1
    svc.close()
    assert not committer.running
    assert [e.action for e in _events(home)] == ["read.audit.head"]


_HAMMER = textwrap.dedent("""
    import json, sys, threading
    import httpx
    sock, threads = sys.argv[1], int(sys.argv[2])
    lock = threading.Lock()

    def hammer(t):
        client = httpx.Client(transport=httpx.HTTPTransport(uds=sock),
                              base_url="http://evidock/api/v1", timeout=60)
        i = 0
        while True:
            target = f"probe-{t}-{i}"
            try:
                r = client.post("/audit/refusals", json={"verb": "delete",
                                                         "target": target})
            except httpx.HTTPError:
                return  # the service is gone: this request was not answered
            seq = r.json()["error"]["details"]["audit_seq"]
            with lock:
                print(target, seq, flush=True)
            i += 1

    ts = [threading.Thread(target=hammer, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
""")


def test_sigkill_loses_no_answered_event(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_agency_config(home)
    answered: dict[str, int] = {}
    with serving(home) as svc:
        pw = pwd.getpwnam(account("clerk"))
        hammer = subprocess.Popen(
            [sys.executable, "-c", _HAMMER, str(svc.socket), "16"], stdout=subprocess.PIPE,
            text=True, user=pw.pw_uid, group=pw.pw_gid, extra_groups=[], cwd="/",
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent",
                 "PYTHONPATH": str(REPO)})
        assert hammer.stdout is not None
        for line in hammer.stdout:  # answers while 16 requests at a time are in flight
            target, seq = line.split()
            answered[target] = int(seq)
            if len(answered) >= 400:
                break
        svc.kill()  # SIGKILL: no shutdown, no drain
        rest, _ = hammer.communicate(timeout=120)
        for line in rest.splitlines():
            target, seq = line.split()
            answered[target] = int(seq)
    assert hammer.returncode == 0 and len(answered) >= 400
    events = _events(home)
    for target, seq in answered.items():  # every answered request's event, as answered
        event = events[seq]
        assert (event.action, event.actor, event.subjects) == (
            "evidence.delete", "user:clerk", [target]), (target, seq)
    probes = [e.subjects[0] for e in events if e.action == "evidence.delete"]
    assert len(probes) == len(set(probes)), "no event twice"
    with serving(home) as again:  # the service starts again on the same log
        run = again.cli("audit", "verify", "--json", user="admin")
    assert run.returncode == 0, run.stdout
    report = json.loads(run.stdout)
    assert report["ok"] and report["events"] == len(events)
    catalog = Catalog.open(f"sqlite:///{home / 'catalog.sqlite3'}")
    try:
        assert verify_log(catalog.engine, keyring=None).ok
    finally:
        catalog.close()
