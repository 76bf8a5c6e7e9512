"""CLI: parties (当事人) of a case, `evidock case party …`, and finding cases by party.

Thin clients of the station service. An ID number (or name) given as ``-`` is read from
the first line of stdin, so it need not sit in the shell's history or the process list.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, ReasonOpt, Reply, command
from evidock.output import show_time, zoned
from integrity.errors import InvalidRequest

Json = dict[str, Any]
NumberArg = Annotated[str, typer.Argument(help="Case number as written (or case id).")]
PartyArg = Annotated[int, typer.Argument(help="Party row id (from `case party list`).")]
NameOpt = Annotated[str, typer.Option("--name", help="Name as on the document ('-': stdin).")]
IdTypeOpt = Annotated[str, typer.Option(
    "--id-type", help="居民身份证, 护照, 统一社会信用代码 or 其他.")]
IdNumberOpt = Annotated[str, typer.Option("--id-number", help="The number ('-': stdin).")]
RoleOpt = Annotated[str, typer.Option(
    "--role", help="当事人, 证人, 代理人, 法定代表人, 见证人 or 其他.")]

party_app = typer.Typer(no_args_is_help=True,
                        help="Parties (当事人) of a case: add, correct, remove, list.")


def _call(config: Path | None, method: str, path: str, **kw: Any) -> Json:
    from evidock.client import station  # httpx: not needed to build `--help`

    with station(config) as st:
        answer: Json = st.post(path, kw["body"]) if method == "POST" else st.get(path, **kw)
        return zoned(answer, st.zone_name)


def _secret(value: str | None) -> str | None:
    """``-``: the first line of stdin (kept out of argv and shell history)."""
    if value != "-":
        return value
    line = sys.stdin.readline().strip()
    if not line:
        raise InvalidRequest("expected the value on stdin, got an empty line")
    return line


def _party_body(name: str, id_type: str, id_number: str, role: str) -> Json:
    return {"name": _secret(name), "id_type": id_type, "id_number": _secret(id_number),
            "role": role}


@party_app.command("add")
@command
def add(number: NumberArg, name: NameOpt, id_type: IdTypeOpt, id_number: IdNumberOpt,
        role: RoleOpt, reason: Annotated[str, typer.Option("--reason")] = "",
        config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Add a party to a case. Needs party.edit and the right to see the case."""
    got = _call(config, "POST", "/cases/parties",
                body={"case": number, **_party_body(name, id_type, id_number, role),
                      "reason": reason})
    return Reply(got, human=lambda: _print_parties(f"added to {number}", [got]))


@party_app.command("correct")
@command
def correct(number: NumberArg, party: PartyArg, name: NameOpt, id_type: IdTypeOpt,
            id_number: IdNumberOpt, role: RoleOpt, reason: ReasonOpt,
            config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Correct a party: a new row replaces it; the old one stays, marked corrected."""
    got = _call(config, "POST", "/cases/parties/correct",
                body={"case": number, "party": party,
                      **_party_body(name, id_type, id_number, role), "reason": reason})
    return Reply(got, human=lambda: _print_parties(f"corrected on {number}", [got]))


@party_app.command("remove")
@command
def remove(number: NumberArg, party: PartyArg, reason: ReasonOpt,
           config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Remove a party from a case, with a reason (the record keeps it, ended)."""
    got = _call(config, "POST", "/cases/parties/remove",
                body={"case": number, "party": party, "reason": reason})
    return Reply(got, human=lambda: _print_parties(f"removed from {number}", [got]))


@party_app.command("list")
@command
def list_parties(number: NumberArg,
                 history: Annotated[bool, typer.Option(
                     "--history", help="With removed and corrected rows.")] = False,
                 config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """The parties of a case (needs party.view and the right to see the case)."""
    got = _call(config, "GET", "/cases/parties", case=number, history=history or None)
    return Reply(got, human=lambda: _print_parties(f"parties of {number}", got["parties"]))


def find_by_party(config: Path | None, *, id_number: str | None,
                  name: str | None) -> Reply:
    """`case find --party-id/--party-name`: the cases you may see with such a party."""
    got = _call(config, "POST", "/cases/parties/find",
                body={"id_number": _secret(id_number), "name": _secret(name)})
    return Reply(got, human=lambda: _print_found(got["cases"]))


def _print_parties(title: str, rows: list[Json]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "name", "ID type", "ID number", "role", "added", "by", "state",
                  title=title)
    for p in rows:
        end = p["ended"]
        state = "current" if end is None else (
            f"{end['how']} by {end['by']} {show_time(end['at'])}: {end['reason']}")
        table.add_row(str(p["id"]), p["name"], p["id_type"], p["id_number"], p["role"],
                      show_time(p["at"]), p["added_by"], state)
    Console().print(table)


def _print_found(cases: list[Json]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(cases)} case(s) you may see")
    table.add_column("case", no_wrap=True)
    for name in ("type", "unit", "status", "party", "role"):
        table.add_column(name)
    for m in cases:
        c = m["case"]
        for p in m["parties"]:
            table.add_row(c["number"], c["type"], c["unit"], c["status"],
                          f"{p['name']} ({p['id_type']})", p["role"])
    Console().print(table)


__all__ = ["find_by_party", "party_app"]
