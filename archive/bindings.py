"""Rows that carry authority, bound to the audit events that vouch for them.

An export decision, a case link, a hold or its release, a recording mark, a retention
step: each is written in one transaction with its audit event, whose details carry
``row`` = {table, id, digest} (the digest of the row's fields, canonical JSON), and a
``binding`` row naming that event. Someone with write access to the database can insert
a row; they cannot put an event into the signed, hash-chained log before its last
signed head. So a row is believed only if its binding names an event that carries its
digest (:func:`vouched`), and ``audit verify`` reports every row without its event, every
event without its row and every digest that differs (:func:`check_all`).

Tables are reached by name through the shared metadata, so archive does not import the
record models (records and retention are above it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import blake3
from sqlalchemy import Table, Text, type_coerce
from sqlalchemy import select as core_select
from sqlmodel import Session, SQLModel, col, select

from archive.audit.format import iso
from archive.audit.log import AuditEvent, AuditLog
from archive.audit.rows import Appended
from archive.bindings_model import Binding
from archive.catalog.types import table_of
from integrity.canonical import canonical_bytes
from integrity.codes import Code
from integrity.findings import Finding

_Row = TypeVar("_Row", bound=SQLModel)
#: The tables whose rows carry authority, in the order they are checked.
BOUND = ("exportdecision", "caselink", "caseevent", "hold", "holdrelease", "recordingmark",
         "retentionaction", "casereview", "redaction", "redactionstep",
         # at a center: holds it placed and released, decisions on stations' deletions
         "centerhold", "centerholdrelease", "centerdecision",
         # at a center: decisions on its exports of stations' footage
         "centralexportdecision")


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def fields_of(row: SQLModel | Mapping[str, Any], table: Table) -> dict[str, Any]:
    get = row.get if isinstance(row, Mapping) else lambda k: getattr(row, k)
    return {c.name: _plain(get(c.name)) for c in table.columns}


def digest_of(table: Table, row: SQLModel | Mapping[str, Any]) -> str:
    """The row's digest: BLAKE3 of the canonical JSON of its table's name and fields."""
    data = canonical_bytes({"table": table.name, "row": fields_of(row, table)})
    return blake3.blake3(data).hexdigest()


def bind(s: Session, audit: AuditLog, row: SQLModel, *, actor: str, action: str,
         subjects: Sequence[str], details: Mapping[str, Any], at: datetime) -> Appended:
    """Add ``row``, its audit event (carrying the row's digest) and the binding naming
    that event, in the caller's write transaction."""
    table = table_of(type(row))
    s.add(row)
    s.flush()  # the row's id
    rid, digest = str(getattr(row, "id")), digest_of(table, row)  # noqa: B009
    appended = audit.append(s, actor=actor, action=action, subjects=subjects,
                            details={**details, "row": {"table": table.name, "id": rid,
                                                        "digest": digest}}, at=at)
    s.add(Binding(table_name=table.name, row_id=rid, audit_seq=appended.seq,
                  digest=digest, at=at))
    return appended


@dataclass(frozen=True)
class Problem:
    """Why a row is not vouched for: ``code`` and what differs."""

    code: Code
    message: str
    details: dict[str, Any]


def _logged(s: Session, seq: int) -> object:
    t = table_of(AuditEvent)
    raw = s.connection().execute(core_select(type_coerce(t.c.details, Text))
                                 .where(t.c.seq == seq)).scalar()
    try:
        details = json.loads(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None
    return details.get("row") if isinstance(details, dict) else None


def _logged_many(s: Session, seqs: Iterable[int]) -> dict[int, object]:
    """:func:`_logged` of many events in one query per 500 (a page vouches hundreds)."""
    t = table_of(AuditEvent)
    wanted, out = sorted(set(seqs)), {}
    for at in range(0, len(wanted), 500):
        for seq, raw in s.connection().execute(
                core_select(t.c.seq, type_coerce(t.c.details, Text))
                .where(t.c.seq.in_(wanted[at:at + 500]))):
            try:
                details = json.loads(raw) if raw is not None else None
            except (TypeError, ValueError):
                details = None
            out[int(seq)] = details.get("row") if isinstance(details, dict) else None
    return out


def problem(s: Session, table: Table, row: SQLModel | Mapping[str, Any],
            binding: Binding | None, *, logged_rows: Mapping[int, object] | None = None,
            ) -> Problem | None:
    """None if ``row`` is vouched for by its event; else what is wrong. ``logged_rows``:
    the events' ``row`` details already read (:func:`_logged_many`)."""
    rid = str(fields_of(row, table)["id"])
    if binding is None:
        return Problem(Code.E_CATALOG_UNSIGNED, f"no audit event vouches for this "
                       f"{table.name} row: inserted into the catalog directly?", {})
    logged = (logged_rows.get(binding.audit_seq) if logged_rows is not None
              else _logged(s, binding.audit_seq))
    digest = digest_of(table, row)
    if not isinstance(logged, dict) or logged.get("table") != table.name \
            or logged.get("id") != rid:
        return Problem(Code.E_CATALOG_UNSIGNED, f"the audit event the {table.name} row's "
                       "binding names does not name the row", {"audit_seq":
                                                                binding.audit_seq})
    if logged.get("digest") != digest or binding.digest != digest:
        return Problem(Code.E_CATALOG_MISMATCH, f"the {table.name} row differs from what "
                       "its audit event recorded", {"audit_seq": binding.audit_seq,
                                                     "field": "digest", "catalog": digest,
                                                     "logged": logged.get("digest")})
    return None


def vouched(s: Session, rows: Iterable[_Row]) -> list[_Row]:
    """The rows (of one table) whose audit event vouches for them."""
    rows = list(rows)
    if not rows:
        return []
    table = table_of(type(rows[0]))
    ids = [str(getattr(r, "id")) for r in rows]  # noqa: B009
    found = {b.row_id: b for b in s.exec(select(Binding).where(
        Binding.table_name == table.name, col(Binding.row_id).in_(ids)))}
    logged = _logged_many(s, (b.audit_seq for b in found.values()))
    return [r for r, i in zip(rows, ids, strict=True)
            if problem(s, table, r, found.get(i), logged_rows=logged) is None]


def vouched_if(s: Session, rows: Iterable[_Row], needs: Callable[[_Row], bool]) -> list[_Row]:
    """The rows, less those for which ``needs(row)`` asks a vouching event and none
    vouches. Retention asks it of every row that would let footage go sooner (an unlink,
    a mark removed, a category, a case closed, a hold released): a row written into the
    catalog behind evidock's back can keep footage longer, never shorter."""
    rows = list(rows)
    asked = [r for r in rows if needs(r)]
    good = {id(r) for r in vouched(s, asked)}
    return [r for r in rows if not needs(r) or id(r) in good]


def _tables() -> Iterator[Table]:
    for name in BOUND:
        table = SQLModel.metadata.tables.get(name)
        if table is not None:
            yield table


def check_all(s: Session) -> tuple[list[Finding], int]:
    """Every bound table's rows against their events, and every binding event against
    its row: (findings, rows checked)."""
    findings: list[Finding] = []
    seen: dict[str, set[str]] = {}
    count = 0
    bindings = {(b.table_name, b.row_id): b for b in s.exec(select(Binding))}
    for table in _tables():
        ids = seen.setdefault(table.name, set())
        for row in s.connection().execute(table.select()).mappings():
            count += 1
            rid = str(row["id"])
            ids.add(rid)
            got = problem(s, table, dict(row), bindings.get((table.name, rid)))
            if got is not None:
                findings.append(Finding(got.code, got.message, f"{table.name}:{rid}",
                                        got.details))
    findings += _orphans(s, seen, bindings)
    return findings, count


def _orphans(s: Session, seen: Mapping[str, set[str]],
             bindings: Mapping[tuple[str, str], Binding]) -> list[Finding]:
    """Events (and bindings) naming a bound row the catalog does not have."""
    out: list[Finding] = []
    t = table_of(AuditEvent)
    details = type_coerce(t.c.details, Text)
    for seq, raw in s.connection().execute(core_select(t.c.seq, details).where(
            details.like('%"row":{"digest":%')).order_by(t.c.seq)):
        row = _row_of(raw)
        if row is not None and row[0] in seen and row[1] not in seen[row[0]]:
            out.append(Finding(Code.E_CATALOG_ROW_MISSING, f"audit event {seq} "
                               f"vouches for {row[0]} row {row[1]}, which the catalog "
                               "does not have: it was deleted", f"{row[0]}:{row[1]}",
                               {"audit_seq": int(seq)}))
    out += [Finding(Code.E_CATALOG_ROW_MISSING, f"a binding names {t_} row {r}, which the "
                    "catalog does not have: it was deleted", f"{t_}:{r}",
                    {"audit_seq": bindings[(t_, r)].audit_seq})
            for t_, r in sorted(bindings) if t_ in seen and r not in seen[t_]
            and not any(f.subject == f"{t_}:{r}" for f in out)]
    return out


def _row_of(raw: object) -> tuple[str, str] | None:
    try:
        row = json.loads(str(raw)).get("row")
    except (TypeError, ValueError, AttributeError):
        return None
    if isinstance(row, dict) and isinstance(row.get("table"), str):
        return row["table"], str(row.get("id"))
    return None


__all__ = ["BOUND", "Problem", "bind", "check_all", "digest_of", "fields_of", "problem",
           "vouched", "vouched_if"]
