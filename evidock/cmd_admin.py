"""CLI: station administration (`evidock admin migrate [--check]`).

Every other command refuses a catalog whose schema is not at this evidock's revision
(E_SCHEMA_OUTDATED). After installing a new evidock, an operator runs `evidock admin
migrate` once, before the dock daemon and the scheduler start again; `--check` only
compares, for scripts and monitoring.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, Reply, actor_name, command

if TYPE_CHECKING:
    from archive.catalog.migrations import Migrated
    from config import Settings

admin_app = typer.Typer(no_args_is_help=True,
                        help="Station administration: the catalog's schema.")

CheckOpt = Annotated[bool, typer.Option(
    "--check", help="Change nothing: exit 1 unless the catalog is at this evidock's "
                    "schema revision.")]


@admin_app.command("migrate")
@command
def migrate(check: CheckOpt = False, config: ConfigOpt = None,
            as_json: JsonOpt = False) -> Reply:
    """Bring the catalog's schema to this evidock's revision, all or nothing."""
    from archive.catalog.db import sqlite_path
    from archive.catalog.migrations import shown, uninitialised
    from config import load_settings

    settings = load_settings(config_file=config)
    if check:
        return _check(settings.catalog_url)
    path = sqlite_path(settings.catalog_url)
    if path is not None and not path.exists():  # a mistyped EVIDOCK_HOME makes no catalog
        raise uninitialised(shown(settings.catalog_url))
    done = migrate_catalog(settings)
    return Reply(done.to_json(), human=lambda: typer.echo(_line(done)))


def migrate_catalog(settings: Settings) -> Migrated:
    """Apply the migrations (used by `evidock init` too). Changing the schema of a catalog
    that already held one is an audited event; creating a new one is not (nothing to
    attest yet: the log is empty)."""
    from archive.catalog import Catalog
    from evidock.wiring import Services

    done = Catalog.migrate(settings.catalog_url)
    if (done.from_revision is not None and done.applied) or done.adopted:
        svc = Services.from_config(settings)
        try:
            svc.audit().record(actor=actor_name(), action="catalog.migrate", subjects=[],
                               details=done.to_json(), at=svc.clock())
        finally:
            svc.close()
    return done


def _line(done: Migrated) -> str:
    before = done.from_revision or ("made before migrations" if done.adopted else "no schema")
    if not done.changed:
        return f"catalog {done.catalog}: at {done.to_revision}, nothing to do"
    return f"catalog {done.catalog}: {before} → {done.to_revision}"


def _check(url: str) -> Reply:
    from archive.catalog import Catalog
    from archive.catalog.migrations import shown

    revision, head = Catalog.revision(url)
    current = revision == head
    data = {"catalog": shown(url), "revision": revision, "head": head, "current": current}
    verdict = "up to date" if current else "out of date: run `evidock admin migrate`"
    return Reply(data, exit_code=0 if current else 1, human=lambda: typer.echo(
        f"catalog {data['catalog']}: at {revision or 'no schema'}, head {head}: {verdict}"))


__all__ = ["admin_app", "migrate_catalog"]
