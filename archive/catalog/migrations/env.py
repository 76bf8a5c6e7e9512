"""Alembic environment of the catalog, run by :func:`archive.catalog.migrations.upgrade`.

There is no alembic.ini: the caller passes an open connection (already inside its write
transaction) in ``config.attributes``, so every revision of one upgrade commits together
or not at all, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from sqlalchemy.types import TypeDecorator

from integrity.errors import CatalogError


def _render_item(kind: str, obj: Any, _ctx: Any) -> str | Literal[False]:
    # Revisions are frozen DDL: a column of our own type (UTCDateTime, JSONText,
    # sqlmodel's AutoString) is written as the plain SQLAlchemy type it stores as.
    if kind == "type" and isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl_instance!r}"
    return False


def _run() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is None:
        raise CatalogError("run catalog migrations through `evidock admin migrate`")
    exclude = config.attributes.get("exclude", frozenset())

    def include_name(name: str | None, type_: str, _parents: Any) -> bool:
        return not (type_ == "table" and name in exclude)

    context.configure(connection=connection,
                      target_metadata=config.attributes.get("target_metadata"),
                      include_name=include_name, render_item=_render_item,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


_run()
