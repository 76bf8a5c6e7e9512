"""A head whose proof holds but which is not the root of the events the center mirrors.

The judge alone accepts a head whose consistency proof joins the witnessed root to its
own (records/witnessdesk.py). When the center also holds the events, the head must be
their root: a station that pushed events and then signs a head over other ones (its log
rewritten between the mirrored size and the head, with a proof over the rewritten
leaves) is caught. Real logs (SQLite, real keys), the real Feed, the desk through the
gate.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from audit_support import T0, fill, make_log
from evidock_testing import migrated
from sqlmodel import Session, select

from archive.audit.format import GENESIS
from archive.audit.log import AuditLog
from archive.audit.rows import EventSpec, build_row
from archive.catalog import Catalog
from archive.keystore import StationKeys
from archive.witness.book import WitnessConflict
from archive.witness.feed import Feed
from archive.witness.mirror import Incoming, NamedBlob, parse_event
from config.access import AccessSettings
from config.witness import CenterSettings, WitnessedStation, WitnessSettings
from integrity.errors import LogFork
from records.centraldesk import CentralDesk
from records.permissions import Gate
from records.witnessdesk import WitnessDesk

STATION = "station-01"
ACCESS = AccessSettings.model_validate({"users": [
    {"name": STATION, "roles": ["station"], "os_users": ["evt-station"]}]})


def _head(log: AuditLog, n: int) -> dict[str, object]:
    assert log.signer is not None
    root = bytes.fromhex(log.consistency(0, n)["new_root"])
    return log.signer.sign(size=n, root=root, at=T0 + timedelta(seconds=n)).to_dict()


def test_a_head_over_other_events_than_the_mirrored_ones_is_a_fork(tmp_path: Path) -> None:
    honest = make_log(tmp_path / "honest")
    fill(honest, 12)
    shutil.copytree(tmp_path / "honest", tmp_path / "forked")
    fill(honest, 8, start=12)
    forked = make_log(tmp_path / "forked", signer=False)
    forked.signer = honest.signer  # the same station key: the station itself rewrote
    fill(forked, 8, start=100)
    assert honest.signer is not None
    ring = tmp_path / "station-keyring.json"
    shutil.copy(honest.signer.keys.keyring_path, ring)

    center_log = AuditLog(catalog=Catalog.open(migrated(
        f"sqlite:///{tmp_path / 'center.sqlite3'}")))
    keys = StationKeys(directory=tmp_path / "center-keys")
    keys.init()
    desk = WitnessDesk(gate=Gate(access=ACCESS, audit=center_log, clock=lambda: T0),
                       audit=center_log, keys=keys, station_id="center",
                       witness=WitnessSettings(stations=(WitnessedStation(
                           id=STATION, keyring=str(ring)),)),
                       center=CenterSettings(), home=tmp_path, clock=lambda: T0)
    actor = desk.gate.identify(account="evt-station")
    desk.submit(actor, STATION, _head(honest, 10), None)  # witnessed at 10
    Feed(audit=center_log).receive(STATION, [parse_event(d) for d in honest.export(0, 20)],
                                   check_blob=lambda b: None, actor="user:station-01",
                                   at=T0)  # the honest 20 are mirrored
    proof = forked.consistency(10, 20)["proof"]  # over the rewritten leaves: it holds
    with pytest.raises(LogFork) as caught:
        desk.submit(actor, STATION, _head(forked, 20), proof)
    assert caught.value.details["kind"] == "fork"
    with Session(center_log.catalog.engine) as s:
        [conflict] = s.exec(select(WitnessConflict)).all()
    assert conflict.reason == "the signed head is not the root of the events the station " \
        "pushed"
    # The honest head over the same size is countersigned: the mirror is its root.
    assert desk.submit(actor, STATION, _head(honest, 20),
                       honest.consistency(10, 20)["proof"])["verdict"] == "extends"


def _events(specs: list[tuple[str, list[str], dict[str, object]]]) -> list[Incoming]:
    """Events chained as a station writes them, from (action, subjects, details)."""
    out, prev = [], GENESIS
    for seq, (action, subjects, details) in enumerate(specs):
        spec = EventSpec("station:x", action, subjects, details, T0)
        row = build_row(seq, prev, spec)
        out.append(Incoming(seq, spec, prev, row.leaf))
        prev = row.leaf
    return out


def test_a_case_number_lists_the_recordings_linked_at_that_cases_own_station(
        tmp_path: Path) -> None:
    """Two stations hold a recording of the same id; only one links it to its case: the
    search by that case's number lists that station's recording alone."""
    log = AuditLog(catalog=Catalog.open(migrated(f"sqlite:///{tmp_path / 'c.sqlite3'}")))
    offload = ("ingest.file", ["s1", "same", "ab" * 32],
               {"path": "a.mp4", "status": "ingested", "blake3": "ab" * 32, "size": 1})
    case = ("case.create", ["case:c1"], {"number": "N1", "type": "t", "unit": "u",
                                         "sensitivity": "none"})
    link = ("case.link", ["case:c1", "recording:same"], {"number": "N1", "link": 1})
    feed = Feed(audit=log)
    feed.receive("x", _events([offload, case, link]), check_blob=lambda b: None,
                 actor="user:x", at=T0)
    feed.receive("y", _events([offload]), check_blob=lambda b: None, actor="user:y", at=T0)
    access = AccessSettings.model_validate({"users": [
        {"name": "boss", "roles": ["supervisor"], "os_users": ["evt-boss"]}]})
    gate = Gate(access=access, audit=log, clock=lambda: T0)
    desk = CentralDesk(gate=gate, catalog=log.catalog, clock=lambda: T0)
    boss = gate.identify(account="evt-boss")
    found = desk.recordings(boss, case_number="N1")["recordings"]
    assert [(r["station_id"], r["recording_id"]) for r in found] == [("x", "same")]
    assert len(desk.recordings(boss)["recordings"]) == 2


def test_blobs_are_checked_together_and_the_run_stops_at_the_first_missing_in_order(
        tmp_path: Path) -> None:
    log = AuditLog(catalog=Catalog.open(migrated(f"sqlite:///{tmp_path / 'c.sqlite3'}")))
    names = [f"{i:02x}" * 32 for i in range(6)]
    events = _events([("ingest.file", ["s1", f"r{i}", b3],
                       {"path": f"{i}.mp4", "status": "ingested", "blake3": b3, "size": i})
                      for i, b3 in enumerate(names)])
    asked: list[str] = []

    def store(blob: NamedBlob) -> str | None:  # the object store: two not there yet
        asked.append(blob.blake3)
        return "not in the object store yet" if blob.blake3 in (names[4], names[2]) else None

    done = Feed(audit=log).receive("x", events, check_blob=store, actor="user:x", at=T0)
    assert (done.kept, done.next_seq, done.waiting["seq"]) == (2, 2, 2)  # type: ignore[index]
    assert sorted(asked) == sorted(names)  # all checked at once, each once
    bad = replace(events[5], leaf="00" * 32)  # a later event that does not hash
    again = Feed(audit=log).receive("x", [*events[2:5], bad], check_blob=store,
                                    actor="user:x", at=T0)
    assert (again.kept, again.waiting["seq"]) == (0, 2)  # type: ignore[index]


def test_recordings_are_read_a_page_at_a_time_until_enough_are_visible(
        tmp_path: Path) -> None:
    """The first page holds only recordings a user may not see (linked to a 个人隐私
    case): the search reads on and shows the visible ones after them."""
    log = AuditLog(catalog=Catalog.open(migrated(f"sqlite:///{tmp_path / 'c.sqlite3'}")))
    hidden, shown = [f"a{i:02}" for i in range(60)], [f"b{i:02}" for i in range(10)]
    specs: list[tuple[str, list[str], dict[str, object]]] = [
        ("ingest.file", ["s1", rid, f"{n:064x}"], {"path": f"{rid}.mp4", "status": "ingested",
                                                     "blake3": f"{n:064x}", "size": 1})
        for n, rid in enumerate(hidden + shown)]
    specs.append(("case.create", ["case:c1"], {"number": "N1", "type": "t", "unit": "u",
                                               "sensitivity": "个人隐私"}))
    specs += [("case.link", ["case:c1", f"recording:{rid}"], {"number": "N1", "link": i})
              for i, rid in enumerate(hidden)]
    Feed(audit=log).receive("x", _events(specs), check_blob=lambda b: None,
                            actor="user:x", at=T0)
    access = AccessSettings.model_validate({"users": [
        {"name": "plain", "roles": ["clerk"], "os_users": ["evt-plain"]}]})
    gate = Gate(access=access, audit=log, clock=lambda: T0)
    desk = CentralDesk(gate=gate, catalog=log.catalog, clock=lambda: T0)
    found = desk.recordings(gate.identify(account="evt-plain"), limit=5)["recordings"]
    assert [r["recording_id"] for r in found] == shown[:5]
