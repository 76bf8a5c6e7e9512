"""Parties at desk level: ID checks, one spelling per number, the fold of corrections
and removals, the station's party secret, and finding on SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Iterator
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path

import pytest
from evidock_testing import StepClock, open_services, write_agency_config
from sqlmodel import Session, select

from config import load_settings
from evidock.wiring import Services
from integrity.errors import Conflict, Forbidden, InvalidRequest
from records.parties import (
    CaseParty,
    PartyDesk,
    PartyKeys,
    check_party,
    load_party_secret,
    normalise_id,
)

sys.path.insert(0, str(Path(__file__).parents[1] / "archive"))  # pg_support lives there

from pg_support import pg_cluster  # noqa: E402

ID_A = "11010519491231002X"
ID_B = "440524188001010014"


@pytest.mark.parametrize(("id_type", "number", "ok"), [
    ("居民身份证", ID_A, True), ("居民身份证", ID_B, True),
    ("居民身份证", "110105194912310021", False),  # check character
    ("居民身份证", "11010519491231002", False),  # 17 characters
    ("统一社会信用代码", "91350100M000100Y43", True),
    ("统一社会信用代码", "91350100M000100Y44", False),
    ("统一社会信用代码", "91350100I000100Y43", False),  # I is not in the alphabet
    ("护照", "E12345678", True), ("护照", "E1", False),
    ("其他", "军官证 123", True), ("其他", "", False),
])
def test_id_numbers_are_checked(id_type: str, number: str, ok: bool) -> None:
    if ok:
        check_party(name="张三", id_type=id_type, id_number=number, role="当事人")
    else:
        with pytest.raises(InvalidRequest) as err:
            check_party(name="张三", id_type=id_type, id_number=number, role="当事人")
        assert not number or number not in str(err.value)


def test_one_spelling_per_number_and_one_hash() -> None:
    keys = PartyKeys(secret=b"k" * 32)
    assert normalise_id(" １１０１０５-19491231002x ") == ID_A  # full-width, dash, case
    assert keys.id_key("11010519491231002x") == keys.id_key(ID_A)
    assert keys.id_key(ID_A) != PartyKeys(secret=b"j" * 32).id_key(ID_A)
    assert ID_A not in keys.id_key(ID_A)


def _secret(path: str, out: multiprocessing.Queue[bytes]) -> None:
    out.put(load_party_secret(Path(path)))


def test_the_party_secret_is_made_once_even_by_racing_processes(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    out: multiprocessing.Queue[bytes] = ctx.Queue()
    procs = [ctx.Process(target=_secret, args=(str(tmp_path / "keys"), out)) for _ in range(4)]
    for p in procs:
        p.start()
    got = {out.get(timeout=30) for _ in procs}
    for p in procs:
        p.join(timeout=30)
    secret_file = tmp_path / "keys" / "party-hmac.key"
    assert got == {secret_file.read_bytes()} and len(got.pop()) == 32
    assert secret_file.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in (tmp_path / "keys").iterdir()] == ["party-hmac.key"]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def station(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    home = tmp_path_factory.mktemp(f"parties-{request.param}") / "home"
    write_agency_config(home)
    environ = {"EVIDOCK_HOME": str(home)}
    with pg_cluster() if request.param == "postgresql" else nullcontext() as make:
        if make is not None:
            environ["EVIDOCK_PATHS__CATALOG_URL"] = make()
        svc = open_services(load_settings(environ=environ),
                            clock=StepClock(datetime(2026, 12, 1, tzinfo=UTC)))
        try:
            yield svc
        finally:
            svc.close()


def _desk(svc: Services) -> PartyDesk:
    return PartyDesk(catalog=svc.catalog, gate=svc.gate(), audit=svc.audit(),
                     keys=PartyKeys(secret=b"s" * 32), clock=svc.clock)


def test_find_by_name_ignores_case_and_follows_corrections(station: Services) -> None:
    gate, desk = station.gate(), _desk(station)
    clerk, clerk2 = gate.by_name("clerk"), gate.by_name("clerk2")
    cases = station.cases()
    west = cases.create(clerk, number="邵城管检〔2019〕第401号", case_type="行政检查",
                        unit="城西中队")
    east = cases.create(clerk, number="邵城管检〔2019〕第402号", case_type="行政检查",
                        unit="城东中队")
    smith = desk.add(clerk, west.number, name="John SMITH", id_type="护照",
                     id_number="E12345678", role="证人")
    desk.add(clerk, east.number, name="Jane Smith", id_type="护照", id_number="E87654321",
             role="当事人")
    found = desk.find(clerk, name="smith")
    assert [(m.case.number, [p.name for p in m.parties]) for m in found] == [
        (west.number, ["John SMITH"]), (east.number, ["Jane Smith"])]
    # clerk2 is of 城西中队: the other unit's case is outside the search
    assert [m.case.number for m in desk.find(clerk2, name="smith")] == [west.number]
    fixed = desk.correct(clerk, west.number, smith.id, name="John Smyth", id_type="护照",
                         id_number="E12345678", role="证人", reason="拼写")
    assert [m.case.number for m in desk.find(clerk, name="smith")] == [east.number]
    assert [m.case.number for m in desk.find(clerk, id_number="e12345678")] == [west.number]
    desk.remove(clerk, west.number, fixed.id, reason="误录")
    assert desk.find(clerk, id_number="E12345678") == []
    with pytest.raises(Conflict):
        desk.remove(clerk, west.number, fixed.id, reason="again")
    with pytest.raises(InvalidRequest):
        desk.find(clerk, id_number="E1", name="x")  # one of them
    with pytest.raises(Forbidden):
        desk.add(clerk2, east.number, name="x", id_type="护照", id_number="E11111111",
                 role="证人")
    with Session(station.catalog.engine) as s:  # nothing is ever changed: four rows
        rows = s.exec(select(CaseParty)).all()
    assert [r.action for r in rows] == ["add", "add", "add", "remove"]


def test_the_cli_reads_a_number_given_as_dash_from_stdin(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from evidock.cmd_party import _secret

    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{ID_A}\n"))
    assert _secret("-") == ID_A and _secret("E1") == "E1" and _secret(None) is None
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
    with pytest.raises(InvalidRequest):
        _secret("-")
