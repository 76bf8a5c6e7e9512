"""Login passwords of evidock users, as argon2 hashes in the catalog.

Not in the config: that is root's file of rules, readable by the service's group, and a
password is set by an operator without editing rules. Not readable by users: only the
service account opens the catalog. Append-only like every record: setting a password (or
disabling login) is a new row, the newest row of a user is the one in force, and every
change is an audit event in the same transaction (without the hash). Hashing itself is
the service's (:mod:`evidock.service.passwords`); this module stores strings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Field, Session, SQLModel, col, select

from archive.audit.log import AuditLog
from archive.catalog import Catalog
from archive.catalog.types import APPEND_ONLY, utc_field


class Credential(SQLModel, table=True):
    """One password setting of a user; ``hash`` empty: password login disabled."""

    __table_args__ = APPEND_ONLY
    id: int | None = Field(default=None, primary_key=True)
    user_name: str = Field(index=True)
    hash: str
    actor: str
    at: datetime = utc_field()


@dataclass(frozen=True, slots=True)
class Current:
    """The credential in force for a user: its row id names it in session cookies, so a
    password change ends the sessions opened with the old one."""

    id: int
    hash: str


class CredentialBook:
    def __init__(self, *, catalog: Catalog, audit: AuditLog,
                 clock: Callable[[], datetime]) -> None:
        self.catalog, self.audit, self.clock = catalog, audit, clock

    def set(self, user: str, hash_: str, *, actor: str,
            details: dict[str, str] | None = None) -> int:
        """Record ``hash_`` (empty: disable) as ``user``'s password; returns the row id."""
        at = self.clock()
        with self.catalog.transaction() as s:
            row = Credential(user_name=user, hash=hash_, actor=actor, at=at)
            s.add(row)
            s.flush()
            assert row.id is not None
            self.audit.append(s, actor=actor, action="access.passwd",
                              subjects=[f"user:{user}"],
                              details={"credential": row.id, "login": bool(hash_),
                                       **(details or {})}, at=at)
            return row.id

    def current(self, user: str) -> Current | None:
        """The password in force (None: never set, or disabled)."""
        with Session(self.catalog.engine) as s:
            row = _newest(s, user)
        if row is None or row.id is None or not row.hash:
            return None
        return Current(id=row.id, hash=row.hash)

    def current_id(self, user: str) -> int | None:
        found = self.current(user)
        return None if found is None else found.id


def _newest(s: Session, user: str) -> Credential | None:
    return s.exec(select(Credential).where(Credential.user_name == user)
                  .order_by(col(Credential.id).desc()).limit(1)).first()


__all__ = ["Credential", "CredentialBook", "Current"]
