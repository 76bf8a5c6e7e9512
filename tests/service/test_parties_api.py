"""Parties (当事人) through the real service, as the real OS accounts of the agency.

A clerk records parties on an open case and on a 个人隐私 case of 城西中队; clerk2 (城西中队,
no clearance) sees the open case's parties and finds it by ID number, but never the
private case's: not listed, not found, not counted. Nowhere in the audit log (every
column of every row) is an ID number or a name in clear.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from evidock_testing import write_agency_config
from service_support import RunningService, serving
from sqlalchemy import text

from archive.catalog import Catalog
from archive.catalog.models import Device, DockSession
from records.parties import SECRET_NAME
from records.parties_shown import mask_id

OPEN = "邵城管检〔2019〕第301号"  # 城西中队, no label
PRIVATE = "邵城管检〔2019〕第302号"  # 城西中队, 个人隐私
SHARED_ID = "11010519491231002X"  # valid GB 11643 number: a party of both cases
PRIVATE_ID = "440524188001010014"  # only on the private case
USCC = "91350100M000100Y43"  # a company (统一社会信用代码)
DOCKED = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # 09:00 in the station's zone
NAMES = ("张三丰", "李四光", "某某商贸有限公司", "张三")


@dataclass
class Station:
    svc: RunningService
    home: Path

    def run(self, *args: str, user: str, code: int = 0) -> Any:
        run = self.svc.cli(*args, "--json", user=user)
        assert run.returncode == code, (args, user, run.stdout, run.stderr)
        return json.loads(run.stdout or run.stderr)

    def dump_audit(self) -> str:
        """Every column of every audit row, as text."""
        catalog = Catalog.open(f"sqlite:///{self.home / 'catalog.sqlite3'}")
        try:
            with catalog.engine.connect() as conn:
                rows = conn.execute(text("SELECT * FROM auditevent")).all()
        finally:
            catalog.close()
        return "\n".join(repr(tuple(r)) for r in rows)


def _camera(home: Path) -> None:
    """A camera docked once at 2026-12-01 (as an offload leaves it), no footage."""
    catalog = Catalog.open(f"sqlite:///{home / 'catalog.sqlite3'}")
    try:
        with catalog.transaction() as s:
            s.add(Device(serial="ZFY0009", camera_model="m", first_seen=DOCKED))
            s.flush()
            s.add(DockSession(id="s1", station_id="st", device_serial="ZFY0009",
                              camera_model="m", source="/dev/x", bay="3",
                              started_at=DOCKED, ended_at=DOCKED, outcome="completed",
                              clock_drift_s=-12.0))
    finally:
        catalog.close()


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Station]:
    home = tmp_path_factory.mktemp("parties-api") / "home"
    write_agency_config(home)
    _camera(home)
    with serving(home) as running:
        st = Station(running, home)
        for number, label in ((OPEN, "none"), (PRIVATE, "个人隐私")):
            st.run("case", "create", number, "--type", "行政检查", "--unit", "城西中队",
                   "--sensitivity", label, user="clerk")
        st.run("case", "party", "add", OPEN, "--name", "张三丰", "--id-type", "居民身份证",
               "--id-number", SHARED_ID, "--role", "当事人", user="clerk")
        st.run("case", "party", "add", OPEN, "--name", "某某商贸有限公司", "--id-type",
               "统一社会信用代码", "--id-number", USCC, "--role", "当事人", user="clerk")
        st.run("case", "party", "add", PRIVATE, "--name", "张三丰", "--id-type", "居民身份证",
               "--id-number", SHARED_ID.lower(), "--role", "证人", user="clerk")
        st.run("case", "party", "add", PRIVATE, "--name", "李四光", "--id-type", "居民身份证",
               "--id-number", PRIVATE_ID, "--role", "当事人", user="clerk")
        yield st


def test_a_cleared_clerk_lists_and_finds_both_cases(station: Station) -> None:
    listed = station.run("case", "party", "list", PRIVATE, user="clerk")["parties"]
    assert [(p["name"], p["id_number"], p["role"]) for p in listed] == [
        ("张三丰", SHARED_ID, "证人"), ("李四光", PRIVATE_ID, "当事人")]  # x → X: one spelling
    found = station.run("case", "find", "--party-id", SHARED_ID, user="clerk")["cases"]
    assert sorted(m["case"]["number"] for m in found) == sorted([OPEN, PRIVATE])


def test_an_uncleared_user_never_sees_the_private_cases_parties(station: Station) -> None:
    refused = station.run("case", "party", "list", PRIVATE, user="clerk2", code=3)
    assert refused["error"]["code"] == "E_FORBIDDEN"
    assert PRIVATE_ID not in json.dumps(refused, ensure_ascii=False)
    listed = station.run("case", "party", "list", OPEN, user="clerk2")["parties"]
    assert {p["name"] for p in listed} == {"张三丰", "某某商贸有限公司"}
    # by ID: the open case only, and nothing says another case matched
    found = station.run("case", "find", "--party-id", SHARED_ID, user="clerk2")
    assert [m["case"]["number"] for m in found["cases"]] == [OPEN]
    assert "hidden" not in json.dumps(found) and PRIVATE not in json.dumps(found)
    assert station.run("case", "find", "--party-id", PRIVATE_ID, user="clerk2") == \
        {"cases": []}
    # by name: a substring, only within cases one sees
    assert station.run("case", "find", "--party-name", "李四", user="clerk2") == {"cases": []}
    by_name = station.run("case", "find", "--party-name", "张三", user="clerk2")["cases"]
    assert [(m["case"]["number"], [p["name"] for p in m["parties"]]) for m in by_name] == \
        [(OPEN, ["张三丰"])]


def test_roles_without_party_view_are_refused_and_audited(station: Station) -> None:
    for user in ("officer", "admin"):
        got = station.run("case", "party", "list", OPEN, user=user, code=3)
        assert got["error"]["code"] == "E_FORBIDDEN" and "party.view" in got["error"]["message"]
        got = station.run("case", "find", "--party-id", SHARED_ID, user=user, code=3)
        assert got["error"]["code"] == "E_FORBIDDEN"
    refused = station.run("case", "party", "add", OPEN, "--name", "王五", "--id-type", "护照",
                          "--id-number", "E12345678", "--role", "证人", user="inspector",
                          code=3)
    assert "party.edit" in refused["error"]["message"]


def test_an_invalid_number_is_refused_without_repeating_it(station: Station) -> None:
    bad = SHARED_ID[:-1] + "1"  # wrong check character
    got = station.run("case", "party", "add", OPEN, "--name", "赵六", "--id-type", "居民身份证",
                      "--id-number", bad, "--role", "证人", user="clerk", code=1)
    assert got["error"]["code"] == "E_INVALID" and bad not in json.dumps(got)
    assert "赵六" not in json.dumps(got, ensure_ascii=False)


def test_correct_and_remove_are_new_rows_with_reasons(station: Station) -> None:
    number = "邵城管检〔2019〕第303号"
    station.run("case", "create", number, "--type", "行政检查", "--unit", "城东中队",
                user="clerk")
    first = station.run("case", "party", "add", number, "--name", "张三", "--id-type", "护照",
                        "--id-number", "e1234567", "--role", "代理人", user="clerk")
    fixed = station.run("case", "party", "correct", number, str(first["id"]), "--name", "张三",
                        "--id-type", "护照", "--id-number", "E7654321", "--role", "代理人",
                        "--reason", "护照号抄错", user="clerk")
    assert fixed["corrects"] == first["id"] and fixed["active"]
    again = station.run("case", "party", "correct", number, str(first["id"]), "--name", "x",
                        "--id-type", "护照", "--id-number", "E7654321", "--role", "代理人",
                        "--reason", "twice", user="clerk", code=1)
    assert again["error"]["code"] == "E_CONFLICT"
    gone = station.run("case", "party", "remove", number, str(fixed["id"]), "--reason",
                       "误录", user="clerk")
    assert gone["ended"]["how"] == "removed" and gone["ended"]["reason"] == "误录"
    assert station.run("case", "party", "list", number, user="clerk")["parties"] == []
    history = station.run("case", "party", "list", number, "--history", user="clerk")
    assert [(p["id_number"], p["ended"]["how"]) for p in history["parties"]] == [
        ("E1234567", "corrected"), ("E7654321", "removed")]


def test_the_audit_log_never_holds_a_name_or_number_in_clear(station: Station) -> None:
    # runs last in this module: every add, correction, find and refusal above is logged
    station.run("case", "find", "--party-id", SHARED_ID, user="clerk2")
    dump = station.dump_audit()
    for secret in (SHARED_ID, PRIVATE_ID, USCC, "E1234567", "E7654321", "e1234567",
                   SHARED_ID[:-1] + "1"):
        assert secret not in dump, secret
    escaped = dump.encode("unicode_escape").decode()  # JSON may escape non-ASCII
    for name in (*NAMES, "王五", "赵六"):
        assert name not in dump and name.encode("unicode_escape").decode() not in escaped
    # the find is audited with the keyed hash, which the station's secret reproduces
    secret = (station.home / "keys" / SECRET_NAME).read_bytes()
    key = hmac.new(secret, f"id\0{SHARED_ID}".encode(), hashlib.sha256).hexdigest()
    assert f"'key': '{key}'" in dump or f'"key":"{key}"' in dump
    assert '"hidden":1' in dump  # clerk2's find: the private case counted, in the log only


@pytest.mark.parametrize(("number", "masked"), [
    (SHARED_ID, "110105********002X"), (USCC, "913501********0Y43"),
    ("E12345678", "E******78"), ("AB12", "****"), ("", "")])
def test_mask_id(number: str, masked: str) -> None:
    assert mask_id(number) == masked and len(masked) == len(number)


def test_case_show_lists_parties_masked_only_to_party_view(station: Station) -> None:
    # clerk2: party.view, and may see the open case
    shown = station.run("case", "show", OPEN, user="clerk2")
    assert [(p["name"], p["id_type"], p["id_number_masked"], p["role"])
            for p in shown["parties"]] == [
        ("张三丰", "居民身份证", "110105********002X", "当事人"),
        ("某某商贸有限公司", "统一社会信用代码", "913501********0Y43", "当事人")]
    assert SHARED_ID not in json.dumps(shown) and USCC not in json.dumps(shown)
    human = station.svc.cli("case", "show", OPEN, user="clerk2")
    assert human.returncode == 0, human.stderr
    assert "110105********002X" in human.stdout and "张三丰" in human.stdout
    assert SHARED_ID not in human.stdout
    # the officer sees the case but lacks party.view: no parties, not even an empty list
    bare = station.run("case", "show", OPEN, user="officer")
    assert bare["case"]["number"] == OPEN and "parties" not in bare
    text_run = station.svc.cli("case", "show", OPEN, user="officer")
    assert text_run.returncode == 0, text_run.stderr
    for secret in ("张三丰", "某某商贸", "110105", "parties"):
        assert secret not in text_run.stdout and secret not in json.dumps(bare), secret
    # a case beyond clerk2's clearance: the whole dossier refused, parties with it
    refused = station.run("case", "show", PRIVATE, user="clerk2", code=3)
    assert "李四光" not in json.dumps(refused, ensure_ascii=False)
    # cleared for 个人隐私: the private case's parties, masked the same way
    cleared = station.run("case", "show", PRIVATE, user="clerk")
    assert [(p["name"], p["id_number_masked"]) for p in cleared["parties"]] == [
        ("张三丰", "110105********002X"), ("李四光", "440524********0014")]


def test_people_read_the_party_table(station: Station) -> None:
    run = station.svc.cli("case", "party", "list", OPEN, user="clerk2")
    assert run.returncode == 0, run.stderr
    assert "张三丰" in run.stdout and SHARED_ID in run.stdout and "current" in run.stdout


def test_equipment_through_the_cli(station: Station) -> None:
    got = station.run("equipment", "assign", "ZFY0009", "--officer", "123456", "--from",
                      "2026-12-02", "--reason", "领用", user="admin")
    assert [(a["officer"], a["from"]) for a in got["assignments"]] == [
        ("123456", "2026-12-02T00:00:00+08:00")]  # a date is the station's midnight
    refused = station.run("equipment", "assign", "ZFY0009", "--unassign", "--from",
                          "2026-12-03", user="clerk", code=3)
    assert "equipment.assign" in refused["error"]["message"]
    report = station.run("equipment", "report", "--idle-days", "1", user="supervisor")
    (cam,) = report["cameras"]
    assert (cam["officer"], cam["last_dock"], cam["last_bay"], cam["clock_drift_s"]) == (
        "123456", "2026-12-01T09:00:00+08:00", "3", -12.0)
    assert cam["idle"] is True and report["idle"] == ["ZFY0009"]  # docked days ago
    # Its sessions carry no battery reading (as a mass-storage camera's): said in words,
    # never a null reading. A reported one, from a real dock through this service, is in
    # tests/docks/test_dock_udev.py (the vendor camera test).
    assert cam["battery"] == {"reported": False, "text": "not reported by the camera"}
    later = station.run("equipment", "report", "--idle-days", "3650", user="supervisor")
    assert later["idle"] == [] and later["idle_days"] == 3650
    csv_run = station.svc.cli("equipment", "report", "--csv", user="supervisor")
    assert csv_run.returncode == 0, csv_run.stderr
    lines = csv_run.stdout.splitlines()
    assert lines[0].startswith("kind,serial,") and lines[1].startswith("camera,ZFY0009,")
    assert lines[0].split(",")[-2:] == ["battery", "idle"]
    assert lines[1].split(",")[-2:] == ["not reported by the camera", "False"]
    table = station.svc.cli("equipment", "report", user="admin")
    assert table.returncode == 0 and "ZFY0009" in table.stdout, table.stderr
    assert "battery: the newest reading at a dock" in " ".join(table.stdout.split())
    assert station.run("equipment", "report", user="clerk", code=3)["error"]["code"] == \
        "E_FORBIDDEN"
