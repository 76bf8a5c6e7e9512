"""The operator's side of a station: who may touch its files directly, and who owns them.

The station service alone opens the catalog, the store and the keys for users. The few
commands that still work on those files in-process (`init`, `admin migrate`, `keys
init|rotate`, the dock daemon, the scheduler) are the operator's: root, or the service
account (``[service] account``). Anyone else is told so before anything is touched
(:func:`require_operator`); what actually stops them are the modes `evidock init` sets
(:func:`secure_station`): the home 0750 and the keys 0700, owned by the service account,
the catalog 0600.
"""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from config import Settings
from integrity.errors import ConfigError, InvalidRequest, NotOperator
from integrity.keys import profile_of

if TYPE_CHECKING:
    from archive.catalog.migrations import Migrated

HOME_MODE, PRIVATE_DIR_MODE, CATALOG_MODE, CONFIG_MODE = 0o750, 0o700, 0o600, 0o640


@dataclass(frozen=True, slots=True)
class Owner:
    name: str
    uid: int
    gid: int


def current_account() -> str:
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid:{uid}"


def service_account(config: Path | None) -> str | None:
    """``[service] account`` as configured; None when the config is unreadable to this
    account (the service account can always read its own config, so it is not this one)."""
    from config import load_settings

    try:
        return load_settings(config_file=config).service.account
    except ConfigError as exc:
        if isinstance(exc.__cause__, PermissionError):
            return None
        raise


def require_operator(config: Path | None, *, command: str) -> None:
    """Pass for root and the service account; raise NotOperator (exit 3) for others."""
    if os.geteuid() == 0:
        return
    me, account = current_account(), service_account(config)
    if me == account:
        return
    named = repr(account) if account else "of the station ([service] account)"
    raise NotOperator(f"`evidock {command}` works on the station's files directly: run it as "
                      f"root or as the service account {named}, not as {me!r}; users go "
                      "through the station service", command=command, account=me,
                      service_account=account)


def service_owner(name: str) -> Owner:
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        raise ConfigError(f"service.account: no OS account {name!r}; create it (useradd "
                          "--system) or name another with --account", key="service.account",
                          account=name) from None
    return Owner(name=name, uid=pw.pw_uid, gid=pw.pw_gid)


def hand_over(top: Path, owner: Owner, *, keep: Iterable[Path] = ()) -> int:
    """Give everything under ``top`` to ``owner``, except the ``keep`` paths (the
    administrator's config: root's). Never follows a link nor enters another file
    system (a camera mounted in a bay is not even chowned). Returns how many changed."""
    kept = {os.path.abspath(p) for p in keep}
    if not os.path.lexists(top) or os.path.abspath(top) in kept:
        return 0
    top_st = os.lstat(top)
    changed = _give(str(top), top_st, owner)
    if not stat.S_ISDIR(top_st.st_mode):
        return changed
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        for name in list(dirnames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if path in kept or st.st_dev != top_st.st_dev:
                dirnames.remove(name)  # not entered
                continue
            changed += _give(path, st, owner)
        for name in filenames:
            path = os.path.join(dirpath, name)
            if path not in kept:
                changed += _give(path, os.lstat(path), owner)
    return changed


def _give(path: str, st: os.stat_result, owner: Owner) -> int:
    if (st.st_uid, st.st_gid) == (owner.uid, owner.gid):
        return 0
    os.lchown(path, owner.uid, owner.gid)
    return 1


def station_paths(settings: Settings) -> list[Path]:
    """Where the station keeps what only the service may read (home first)."""
    from archive.catalog.db import sqlite_path
    from docks.settings import run_dir

    paths = [settings.home, settings.store_dir, settings.keys_dir, settings.logs_dir,
             run_dir(settings)]
    catalog = sqlite_path(settings.catalog_url)
    if catalog is not None:
        paths += [catalog, *(catalog.with_name(catalog.name + s) for s in ("-wal", "-shm"))]
    return list(dict.fromkeys(p.absolute() for p in paths))


def secure_station(settings: Settings, owner: Owner | None, *,
                   config_files: Iterable[Path]) -> None:
    """The modes (and, as root, the owner) a station's files must have: the service
    account alone reads the catalog, the blobs (0444, in a 0750 tree) and the keys."""
    from archive.catalog.db import sqlite_path

    configs = [p.absolute() for p in config_files]
    catalog = sqlite_path(settings.catalog_url)
    paths = station_paths(settings)
    if owner is not None:
        for top in _outermost(paths):
            hand_over(top, owner, keep=configs)  # run/mnt too: the dock is the service's
    for path in paths:
        if not path.exists():
            continue
        if path.is_dir():
            private = path in (settings.keys_dir.absolute(), settings.logs_dir.absolute())
            path.chmod(PRIVATE_DIR_MODE if private else HOME_MODE)
        elif catalog is not None and path.name.startswith(catalog.name):
            path.chmod(CATALOG_MODE)
    if owner is not None:
        for config in configs:  # stays root's (the rules are the administrator's)
            if config.is_file() and config.stat().st_uid == 0:
                os.chown(config, 0, owner.gid)
                config.chmod(CONFIG_MODE)


def _outermost(paths: list[Path]) -> list[Path]:
    """The paths not inside another of them (each tree is walked once)."""
    return [p for p in paths if not any(p != q and p.is_relative_to(q) for q in paths)]


def init_station(config: Path | None, *, account: str | None,
                 profile: str | None = None) -> dict[str, object]:
    """`evidock init`: home, config, catalog at head, store, station key; as root, all
    of it handed to the service account. Safe to run again."""
    from config import load_settings, write_default_config
    from config.loader import config_files

    settings = load_settings(config_file=config)
    owner = service_owner(account or settings.service.account) if os.geteuid() == 0 \
        else None
    if owner is None and account not in (None, current_account()):
        raise InvalidRequest("--account needs root: only root can give the station's "
                             "files to another account", account=account)
    old_umask = os.umask(0o027)  # nothing made here is ever readable by others
    try:
        settings.home.mkdir(parents=True, exist_ok=True, mode=HOME_MODE)
        wrote = write_default_config(settings.home / "evidock.toml")
        settings = load_settings(config_file=config)  # with the config just written
        schema = migrate_catalog(settings)
        key_id, profile = _make_station(settings, profile)
        secure_station(settings, owner, config_files=config_files(config_file=config))
    finally:
        os.umask(old_umask)
    return {"home": str(settings.home), "config_written": wrote,
            "catalog": settings.catalog_url, "schema": schema.to_revision,
            "store": str(settings.store_dir), "key_id": key_id, "profile": profile,
            "account": owner.name if owner else current_account()}


def migrate_catalog(settings: Settings) -> Migrated:
    """Apply the migrations (`evidock init`, `evidock admin migrate`). Changing the schema
    of a catalog that already held one is an audited event; creating a new one is not
    (nothing to attest yet: the log is empty)."""
    from archive.catalog import Catalog
    from evidock.wiring import Services
    from records.permissions import os_account

    done = Catalog.migrate(settings.catalog_url)
    if (done.from_revision is not None and done.applied) or done.adopted:
        svc = Services.from_config(settings)
        try:
            svc.audit().record(actor=f"os:{os_account()}", action="catalog.migrate", subjects=[],
                               details=done.to_json(), at=svc.clock())
        finally:
            svc.close()
    return done


def _make_station(settings: Settings, profile: str | None) -> tuple[str, str]:
    """Store, key and log directories, and the station key (made once, here)."""
    from evidock.wiring import Services

    svc = Services.from_config(settings)
    try:
        svc.store.ensure()
        for d in (settings.keys_dir, settings.logs_dir):
            d.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
        key, _ = svc.keys.init(profile=profile)
    finally:
        svc.close()
    return key.key_id, profile_of(key.alg)


def follow_home(settings: Settings, path: Path) -> None:
    """As root, give ``path`` (a tree) to the owner of the station's home, so what an
    operator made as root (a new or rotated key) stays readable by the service."""
    if os.geteuid() != 0 or not settings.home.is_dir():
        return
    st = settings.home.stat()
    hand_over(path, Owner(name="", uid=st.st_uid, gid=st.st_gid))


__all__ = ["Owner", "current_account", "follow_home", "hand_over", "init_station",
           "migrate_catalog", "require_operator", "secure_station", "service_account",
           "service_owner", "station_paths"]
