"""CLI: station administration (`evidock admin migrate [--check]`).

Every other command refuses a catalog whose schema is not at this evidock's revision
(E_SCHEMA_OUTDATED). After installing a new evidock, an operator (root or the service
account: E_NOT_OPERATOR for anyone else) runs `evidock admin migrate` once, before the
service, the dock daemon and the scheduler start again; `--check` only compares, for
scripts and monitoring.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, Reply, command

if TYPE_CHECKING:
    from archive.catalog.migrations import Migrated

admin_app = typer.Typer(no_args_is_help=True,
                        help="Station administration: the catalog's schema.")

CheckOpt = Annotated[bool, typer.Option(
    "--check", help="Change nothing: exit 1 unless the catalog is at this evidock's "
                    "schema revision.")]


@admin_app.command("migrate")
@command
def migrate(check: CheckOpt = False, config: ConfigOpt = None,
            as_json: JsonOpt = False) -> Reply:
    """Bring the catalog's schema to this evidock's revision, all or nothing. Root or the
    service account only (it opens the catalog itself)."""
    from archive.catalog.db import sqlite_path
    from archive.catalog.migrations import shown, uninitialised
    from config import load_settings
    from evidock.operators import migrate_catalog, require_operator

    require_operator(config, command="admin migrate")
    settings = load_settings(config_file=config)
    if check:
        return _check(settings.catalog_url)
    path = sqlite_path(settings.catalog_url)
    if path is not None and not path.exists():  # a mistyped EVIDOCK_HOME makes no catalog
        raise uninitialised(shown(settings.catalog_url))
    done = migrate_catalog(settings)
    return Reply(done.to_json(), human=lambda: typer.echo(_line(done)))


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


PasswdUser = Annotated[str, typer.Argument(help="The evidock user (a name in access.users).")]
StdinOpt = Annotated[bool, typer.Option(
    "--stdin", help="Read the password from the first line of standard input (scripts); "
                    "without it, it is asked for twice on the terminal, not echoed.")]
DisableOpt = Annotated[bool, typer.Option(
    "--disable", help="Turn USER's password login off (their web sessions end).")]


@admin_app.command("passwd")
@command
def passwd(user: PasswdUser, stdin: StdinOpt = False, disable: DisableOpt = False,
           config: ConfigOpt = None, as_json: JsonOpt = False) -> dict[str, object]:
    """Set USER's password for logging in over the network (web desk): stored as an argon2
    hash in the catalog, the change audited (access.passwd, without the password or its
    hash); their open sessions end. Root or the service account only; best run as the
    service account (sudo -u evidock) so new catalog files stay its own."""
    import os

    from config import load_settings
    from evidock.operators import current_account, require_operator
    from evidock.service.passwords import check_strength, hash_password
    from evidock.wiring import Services
    from integrity.errors import InvalidRequest, NotFound
    from records.credentials import CredentialBook

    require_operator(config, command="admin passwd")
    if stdin and disable:
        raise InvalidRequest("--stdin sets a password, --disable removes it: not both",
                             field="disable")
    settings = load_settings(config_file=config)
    if not any(u.name == user for u in settings.access.users):
        raise NotFound(f"no evidock user {user!r} in [[access.users]]", user=user)
    password = "" if disable else _read_password(user, stdin=stdin)
    if not disable:
        check_strength(user, password)
    hashed = hash_password(password) if password else ""
    sudo = {"sudo_user": os.environ["SUDO_USER"]} if os.environ.get("SUDO_USER") else {}
    svc = Services.from_config(settings)
    try:
        book = CredentialBook(catalog=svc.catalog, audit=svc.audit(), clock=svc.clock)
        row = book.set(user, hashed, actor=f"os:{current_account()}", details=sudo)
    finally:
        svc.close()
    return {"user": user, "login": not disable, "credential": row}


def _read_password(user: str, *, stdin: bool) -> str:
    import getpass
    import sys

    from integrity.errors import InvalidRequest

    if stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise InvalidRequest("no terminal to ask for the password on: give it on standard "
                             "input with --stdin", field="password")
    first = getpass.getpass(f"New password for {user}: ")
    if getpass.getpass("Again: ") != first:
        raise InvalidRequest("the two passwords differ; nothing changed", field="password")
    return first


__all__ = ["admin_app"]
