"""Every catalog table, registered in one place.

The migrations in ``archive/catalog/migrations`` are the schema a catalog actually has;
this is the schema the models expect. They are compared (autogenerate, and the schema
test) through :func:`metadata`, never by importing whatever happens to define a table.
A new table module goes into :data:`TABLE_MODULES` and gets a migration.

Making a migration (a developer's step, not a station's)::

    .venv/bin/python -m evidock.schema revision "add an index on recording.kind"

writes ``archive/catalog/migrations/versions/<rev>_<slug>.py`` from the difference
between the models and a catalog at head; read it, freeze it (plain ``op`` calls, no
model imports), add triggers for any new append-only table, and set ``HEAD`` in
``archive/catalog/migrations/__init__.py`` (tests/archive/test_migrations.py checks all
of it).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from types import ModuleType

from sqlalchemy import MetaData
from sqlmodel import SQLModel

import archive.audit.log
import archive.bindings_model
import archive.catalog.models
import archive.fixity
import archive.footage_model
import archive.replica.queue
import archive.timestamp_rows
import archive.witness.book
import archive.witness.index
import archive.witness.mirror
import records.applicability
import records.centralexport_models
import records.credentials
import records.equipment
import records.exportoptions
import records.footage_thumbs
import records.models
import records.parties
import records.redaction_model
import records.reviews
import records.statistics_facts
import retention.central_models
import retention.models
from archive.catalog import migrations
from archive.catalog.db import make_engine
from integrity.errors import CatalogError

#: The modules whose SQLModel classes are catalog tables, in dependency order.
TABLE_MODULES: tuple[ModuleType, ...] = (
    archive.catalog.models,
    archive.audit.log,
    archive.bindings_model,
    archive.footage_model,
    archive.fixity,
    archive.replica.queue,
    archive.timestamp_rows,
    archive.witness.book,
    archive.witness.mirror,
    archive.witness.index,
    records.models,
    records.reviews,
    records.applicability,
    records.credentials,
    records.exportoptions,
    records.parties,
    records.equipment,
    records.redaction_model,
    records.footage_thumbs,
    records.statistics_facts,
    retention.models,
    retention.central_models,
    records.centralexport_models,
)

def metadata() -> MetaData:
    """Every catalog table (the models' own metadata, integers already 64-bit: see
    archive/catalog/types.py). Refuses a table whose model lives outside
    :data:`TABLE_MODULES` (one that is registered only by some import's side effect)."""
    names = {m.__name__ for m in TABLE_MODULES}
    stray = sorted(f"{m.class_.__module__}.{m.class_.__name__}"
                   for m in SQLModel._sa_registry.mappers
                   if m.class_.__module__ not in names)
    if stray:
        raise CatalogError(f"tables outside evidock.schema.TABLE_MODULES: {stray}",
                           tables=stray)
    return SQLModel.metadata


def append_only(meta: MetaData) -> tuple[str, ...]:
    """The tables marked append-only (``info={"append_only": True}``)."""
    return tuple(t.name for t in meta.sorted_tables if t.info.get("append_only"))


def _revision(message: str) -> int:
    """Autogenerate a revision against a scratch SQLite catalog at head."""
    from alembic import command

    with tempfile.TemporaryDirectory(prefix="evidock-rev-") as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'catalog.sqlite3'}")
        try:
            migrations.upgrade(engine)
            with engine.begin() as conn:
                cfg = migrations.config(conn, target_metadata=metadata())
                script = command.revision(cfg, message=message, autogenerate=True,
                                          rev_id=f"{len(migrations.chain()) + 1:04d}")
        finally:
            engine.dispose()
    made = [s for s in (script if isinstance(script, list) else [script]) if s]
    for s in made:
        print(f"{s.path}\nnow freeze it, and set HEAD = {s.revision!r} in "
              "archive/catalog/migrations/__init__.py")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "revision":
        sys.exit("usage: python -m evidock.schema revision MESSAGE")
    sys.exit(_revision(sys.argv[2]))
