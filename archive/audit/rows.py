"""Audit events as stored rows: validated, hashed, chained and INSERTed in one statement.

The leaf data of an event is the JCS encoding of its body (:mod:`.format`). For the
common event (ASCII text, plain JSON values) it is built by concatenating the compact,
key-sorted dumps of ``subjects`` and ``details`` with the other fields in JCS key order,
and the same two dumps are the stored column text, so each is made once; anything else
takes the exact encoder. Both give the same bytes (property-tested), and
:func:`archive.audit.verify.verify_log` re-derives every leaf from the stored text.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.engine import Connection

from archive.audit.format import encode, event_body, is_plain, iso, leaf_hex
from integrity.errors import AuditError
from integrity.merkle import leaf_hash

__all__ = ["Appended", "EventSpec", "Row", "build_row", "chain", "insert_rows"]


@dataclass(frozen=True)
class EventSpec:
    """An event to append, before it has a place in the log."""

    actor: str
    action: str
    subjects: Sequence[str]
    details: Mapping[str, Any]
    at: datetime


@dataclass(frozen=True)
class Appended:
    """What an append added."""

    seq: int
    leaf_hash: str
    prev_hash: str
    action: str
    at: datetime


@dataclass(frozen=True)
class Row:
    seq: int
    event: EventSpec
    subjects: list[str]
    details: dict[str, Any]
    texts: tuple[str, str] | None  # the stored JSON of subjects and details, if made
    prev: str
    leaf: str

    def appended(self) -> Appended:
        return Appended(self.seq, self.leaf, self.prev, self.event.action, self.event.at)


_dump = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                         check_circular=False).encode
_quote: Callable[[str], str] = json.encoder.encode_basestring  # a str, as _dump writes it


def _fast(event: EventSpec, subjects: list[str], details: dict[str, Any], prev: str,
          ) -> tuple[str, tuple[str, str]] | None:
    """(leaf hash, column texts) by concatenation, for plain ASCII events; else None."""
    if type(event.actor) is not str or type(event.action) is not str or not is_plain(details):
        return None
    texts = (_dump(subjects), _dump(details))  # exactly what the JSONText column stores
    data = (f'{{"action":{_quote(event.action)},"actor":{_quote(event.actor)},'
            f'"at":"{iso(event.at)}","details":{texts[1]},"prev":"{prev}",'
            f'"subjects":{texts[0]},"v":1}}')
    if not data.isascii():
        return None
    return leaf_hash(data.encode("ascii")).hex(), texts


def build_row(seq: int, prev: str, event: EventSpec) -> Row:
    """The row of ``event`` at ``seq`` after ``prev``; AuditError if it is not valid."""
    try:
        return _build(seq, prev, event)
    except (TypeError, ValueError, AttributeError) as exc:  # e.g. details not a mapping
        raise AuditError(f"audit event is not valid: {exc}", action=str(event.action),
                         ) from exc


def _build(seq: int, prev: str, event: EventSpec) -> Row:
    subjects = event.subjects
    if isinstance(subjects, str) or not all(isinstance(x, str) for x in subjects):
        raise AuditError("audit subjects must be a list of strings", action=event.action)
    if event.at.tzinfo is None:
        raise AuditError("naive datetime given to the audit log; pass aware UTC")
    subjects, details = list(subjects), dict(event.details)
    fast = _fast(event, subjects, details, prev)
    if fast is not None:
        return Row(seq, event, subjects, details, fast[1], prev, fast[0])
    body = event_body(at=event.at, actor=event.actor, action=event.action,
                      subjects=subjects, details=details, prev=prev)
    return Row(seq, event, subjects, details, None, prev, leaf_hex(encode(body)))


def chain(conn: Connection, table: Table, events: Sequence[EventSpec], seq: int, prev: str,
          ) -> list[Appended | AuditError]:
    """Append ``events`` to ``table`` from ``seq`` after ``prev`` in ``conn``'s write
    transaction (the caller holds the append lock) with one INSERT. An event that is not
    valid gets its AuditError in its place and no number; a failed INSERT raises."""
    out: list[Appended | AuditError] = []
    rows: list[Row] = []
    for event in events:
        try:
            row = build_row(seq, prev, event)
        except AuditError as exc:
            out.append(exc)
            continue
        rows.append(row)
        out.append(row.appended())
        seq, prev = seq + 1, row.leaf
    if rows:
        insert_rows(conn, table, rows)
    return out


_COLUMNS = ("seq", "at", "actor", "action", "subjects", "details", "prev_hash", "leaf_hash")
_PLACEHOLDER = {"qmark": "?", "format": "%s", "pyformat": "%s"}
_FAST: dict[tuple[str, str], tuple[str, Any, Any]] = {}


def insert_rows(conn: Connection, table: Table, rows: Sequence[Row]) -> None:
    """INSERT ``rows`` (one statement). On sqlite3 and psycopg straight through the DB-API
    cursor of the same connection (same transaction), with the JSON made once and the
    time through its column's bind processor: SQLAlchemy's per-statement overhead is
    most of an append otherwise."""
    dialect = conn.dialect
    mark = _PLACEHOLDER.get(dialect.paramstyle) if dialect.driver in ("pysqlite",
                                                                     "psycopg") else None
    if mark is None:
        conn.execute(insert(table), [_values(r) for r in rows])
        return
    key = (dialect.name, table.name)
    if key not in _FAST:
        sql = (f"INSERT INTO {table.name} ({', '.join(_COLUMNS)}) "
               f"VALUES ({', '.join([mark] * len(_COLUMNS))})")
        _FAST[key] = (sql, table.c.at.type.bind_processor(dialect),
                      table.c.details.type.bind_processor(dialect))
    sql, at_of, json_of = _FAST[key]
    params = [(r.seq, at_of(r.event.at), r.event.actor, r.event.action,
               *(r.texts or (json_of(r.subjects), json_of(r.details))), r.prev, r.leaf)
              for r in rows]
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None  # None only once the connection is closed or invalidated
    cursor = dbapi.cursor()
    try:
        if len(params) == 1:
            cursor.execute(sql, params[0])
        else:
            cursor.executemany(sql, params)
    except dialect.loaded_dbapi.Error as exc:
        seqs = f"{rows[0].seq}" + (f"..{rows[-1].seq}" if len(rows) > 1 else "")
        raise AuditError(f"cannot append audit event {seqs}: {exc}", seq=rows[0].seq,
                         events=len(rows)) from exc
    finally:
        cursor.close()


def _values(r: Row) -> dict[str, Any]:
    return {"seq": r.seq, "at": r.event.at, "actor": r.event.actor,
            "action": r.event.action, "subjects": r.subjects, "details": r.details,
            "prev_hash": r.prev, "leaf_hash": r.leaf}
