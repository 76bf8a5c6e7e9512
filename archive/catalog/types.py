"""Column types the catalog needs on both SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Integer, Table, Text, event
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

#: ``__table_args__`` of a table whose rows are never updated or deleted: the schema
#: migrations put refusing triggers on every table so marked (and a test checks it).
APPEND_ONLY: dict[str, Any] = {"info": {"append_only": True}}
#: ``__table_args__`` of a table whose rows are never deleted and updated only once, to
#: close them (``docksession``: see migration 0003's trigger).
CLOSE_ONCE: dict[str, Any] = {"info": {"close_once": True}}


@event.listens_for(Column, "after_parent_attach")
def _widen_integers(column: Column[Any], table: Any) -> None:
    # SQLModel maps ``int`` to INTEGER, 32-bit on PostgreSQL (and psycopg casts binds to
    # it): file sizes over 2 GiB and nanosecond mtimes would not fit. Every integer of a
    # catalog table that is not a primary key is BIGINT, as the migrations create it;
    # done as each column is declared, so no table is missed whatever the import order.
    if (isinstance(table, Table) and table.metadata is SQLModel.metadata
            and type(column.type) is Integer and not column.primary_key):
        column.type = BigInteger()


def table_of(model: type[SQLModel]) -> Table:
    """The Core :class:`~sqlalchemy.Table` of a table model, for Core queries."""
    # SQLModel's metaclass sets __table__ on table models but its class type declares none.
    table = model.__table__  # type: ignore[attr-defined]  # undeclared by sqlmodel
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not a table model")
    return table


def utc_field(nullable: bool = False) -> Any:
    """A model field holding an aware UTC datetime (see :class:`UTCDateTime`)."""
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable))


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the catalog; pass aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class JSONText(TypeDecorator[Any]):
    """JSON stored as canonical-ish text (sorted keys) so rows hash reproducibly."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)
