"""Parties (当事人) on a case: who they are, by which document, in which role.

The ``caseparty`` rows are append-only: a party is added by an ``add`` row; a removal
or a correction is a new row naming the one it ends (``ends``), with a reason. The
name and ID number are stored in clear, shown only to whoever may see the case; every
audit event carries them only as keyed hashes (HMAC-SHA256 with the station's party
secret, kept with the keys), so a search can be audited without disclosing whom it
was for.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Index, func
from sqlmodel import Field, Session, SQLModel, col, select

from archive.audit.log import AuditLog
from archive.catalog import Catalog
from archive.catalog.types import APPEND_ONLY, utc_field
from integrity.errors import CatalogError, Conflict, InvalidRequest, NotFound
from records.casebook import Casebook, CaseView
from records.permissions import Actor, Gate, P

ID_TYPES = ("居民身份证", "护照", "统一社会信用代码", "其他")
ROLES = ("当事人", "证人", "代理人", "法定代表人", "见证人", "其他")


class CaseParty(SQLModel, table=True):
    """One party added to a case (``action`` "add"; a correction is an add row naming
    the row it replaces in ``corrects``), or removed (``action`` "remove": ``ends``)."""

    __table_args__ = (Index("ix_caseparty_id_key", "id_key"), APPEND_ONLY)
    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(foreign_key="casefile.id", index=True)
    action: str  # add | remove
    ends: int | None = None  # remove: the add row it removes
    corrects: int | None = None  # add: the add row this one replaces (a correction)
    name: str = ""
    id_type: str = ""
    id_number: str = ""
    role: str = ""
    id_key: str = ""  # HMAC-SHA256 of the normalised ID number (hex), for exact search
    actor: str
    reason: str = ""
    at: datetime = utc_field()




# ---------------------------------------------------------------------- identity numbers

_RESIDENT_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def normalise_id(number: str) -> str:
    """Full-width to ASCII, no spaces or dashes, upper case: one spelling per number."""
    return re.sub(r"[\s\-]", "", unicodedata.normalize("NFKC", number)).upper()


def normalise_name(name: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", name).split())


def _resident_ok(n: str) -> bool:
    """GB 11643: 17 digits and an ISO 7064 MOD 11-2 check character."""
    if not re.fullmatch(r"\d{17}[\dX]", n):
        return False
    total = sum(int(d) * w for d, w in zip(n[:17], _RESIDENT_WEIGHTS, strict=True))
    return "10X98765432"[total % 11] == n[17]


def _uscc_ok(n: str) -> bool:
    """GB 32100: 17 characters of its alphabet and a MOD 31 check character."""
    if len(n) != 18 or any(c not in _USCC_ALPHABET for c in n):
        return False
    total = sum(_USCC_ALPHABET.index(c) * w for c, w in zip(n[:17], _USCC_WEIGHTS,
                                                             strict=True))
    return _USCC_ALPHABET[(31 - total % 31) % 31] == n[17]


def _passport_ok(n: str) -> bool:
    return re.fullmatch(r"[A-Z0-9]{5,20}", n) is not None


def _other_ok(n: str) -> bool:
    return 0 < len(n) <= 64


def check_party(*, name: str, id_type: str, id_number: str, role: str) -> None:
    """Refuse a malformed party; the message never repeats the name or the number."""
    if not name or len(name) > 200:
        raise InvalidRequest("a party needs a name (at most 200 characters)")
    if id_type not in ID_TYPES:
        raise InvalidRequest(f"unknown ID type {id_type!r}; one of {list(ID_TYPES)}",
                             id_type=id_type)
    if role not in ROLES:
        raise InvalidRequest(f"unknown party role {role!r}; one of {list(ROLES)}", role=role)
    checks: dict[str, Callable[[str], bool]] = {
        "居民身份证": _resident_ok, "统一社会信用代码": _uscc_ok, "护照": _passport_ok}
    if not checks.get(id_type, _other_ok)(id_number):
        raise InvalidRequest(f"the {id_type} number is not a valid one (format or check "
                             "character); it is not repeated here", id_type=id_type)


# ---------------------------------------------------------------------- keyed hashes

SECRET_NAME = "party-hmac.key"


def load_party_secret(keys_dir: Path) -> bytes:
    """The station's party secret (32 random bytes, 0600, beside the station key),
    made on first use. Made by linking a finished file into place, so two processes
    starting at once agree on one secret and none is ever overwritten."""
    path = keys_dir / SECRET_NAME
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = keys_dir / f".{SECRET_NAME}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, os.urandom(32))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process was first: its secret is the one
    finally:
        os.unlink(tmp)
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    secret = path.read_bytes()
    if len(secret) != 32:
        raise InvalidRequest(f"{path} is not a 32-byte party secret", path=str(path))
    return secret


@dataclass(frozen=True, slots=True)
class PartyKeys:
    """Keyed hashes (HMAC-SHA256) of ID numbers and names: what audit events carry."""

    secret: bytes

    def _mac(self, kind: str, text: str) -> str:
        return hmac.new(self.secret, f"{kind}\0{text}".encode(), hashlib.sha256).hexdigest()

    def id_key(self, number: str) -> str:
        return self._mac("id", normalise_id(number))

    def name_key(self, name: str) -> str:
        return self._mac("name", normalise_name(name).casefold())


# ---------------------------------------------------------------------- folding


@dataclass(frozen=True, slots=True)
class Ending:
    how: str  # removed | corrected
    row: int  # the remove row, or the add row of the correction
    actor: str
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class PartyView:
    id: int
    case_id: str
    name: str
    id_type: str
    id_number: str
    role: str
    corrects: int | None
    actor: str
    reason: str
    at: datetime
    ended: Ending | None

    @property
    def active(self) -> bool:
        return self.ended is None

    def to_json(self) -> dict[str, object]:
        ended = None if self.ended is None else {
            "how": self.ended.how, "row": self.ended.row, "by": self.ended.actor,
            "reason": self.ended.reason, "at": self.ended.at.isoformat()}
        return {"id": self.id, "case_id": self.case_id, "name": self.name,
                "id_type": self.id_type, "id_number": self.id_number, "role": self.role,
                "corrects": self.corrects, "added_by": self.actor, "reason": self.reason,
                "at": self.at.isoformat(), "active": self.active, "ended": ended}


def fold_parties(rows: Iterable[CaseParty]) -> list[PartyView]:
    """Every party added (in id order) with what ended it, if anything did."""
    ordered = sorted(rows, key=lambda r: r.id or 0)
    ends: dict[int, Ending] = {}
    for r in ordered:
        if r.action == "remove" and r.ends is not None:
            ends[r.ends] = Ending("removed", r.id or 0, r.actor, r.reason, r.at)
        elif r.action == "add" and r.corrects is not None:
            ends[r.corrects] = Ending("corrected", r.id or 0, r.actor, r.reason, r.at)
    return [PartyView(id=r.id or 0, case_id=r.case_id, name=r.name, id_type=r.id_type,
                      id_number=r.id_number, role=r.role, corrects=r.corrects,
                      actor=r.actor, reason=r.reason, at=r.at, ended=ends.get(r.id or 0))
            for r in ordered if r.action == "add"]


# ---------------------------------------------------------------------- the desk


@dataclass(frozen=True, slots=True)
class PartyMatch:
    """A case one may see and its parties that matched a search."""

    case: CaseView
    parties: tuple[PartyView, ...]

    def to_json(self) -> dict[str, object]:
        return {"case": self.case.to_json(), "parties": [p.to_json() for p in self.parties]}


class PartyDesk:
    """Adds, corrects, removes, lists and finds parties; every one audited, the name and
    ID number only as keyed hashes."""

    def __init__(self, *, catalog: Catalog, gate: Gate, audit: AuditLog, keys: PartyKeys,
                 clock: Callable[[], datetime]) -> None:
        self.catalog, self.gate, self.audit, self.keys = catalog, gate, audit, keys
        self.clock = clock
        self.book = Casebook(catalog=catalog)

    def _case(self, actor: Actor, key: str, permission: P) -> CaseView:
        case = self.book.case(key)
        self.gate.require(actor, permission, subjects=[f"case:{case.id}"], unit=case.unit,
                          sensitivity=case.sensitivity)
        return case

    def _rows(self, s: Session, case_ids: Iterable[str]) -> list[CaseParty]:
        return list(s.exec(select(CaseParty).where(col(CaseParty.case_id).in_(
            list(case_ids)))).all())

    def add(self, actor: Actor, key: str, *, name: str, id_type: str, id_number: str,
            role: str, reason: str = "") -> PartyView:
        case = self._case(actor, key, P.PARTY_EDIT)
        return self._write(actor, case, self._party(case, name=name, id_type=id_type,
                                                    id_number=id_number, role=role,
                                                    reason=reason), "case.party.add")

    def correct(self, actor: Actor, key: str, party_id: int, *, name: str, id_type: str,
                id_number: str, role: str, reason: str) -> PartyView:
        """A new row for the party as it should have been, ending the one it replaces."""
        case = self._case(actor, key, P.PARTY_EDIT)
        row = self._party(case, name=name, id_type=id_type, id_number=id_number, role=role,
                          reason=_reason(reason))
        row.corrects = party_id
        return self._write(actor, case, row, "case.party.correct")

    def remove(self, actor: Actor, key: str, party_id: int, *, reason: str) -> PartyView:
        case = self._case(actor, key, P.PARTY_EDIT)
        row = CaseParty(case_id=case.id, action="remove", ends=party_id, actor=actor.name,
                        reason=_reason(reason), at=self.clock())
        return self._write(actor, case, row, "case.party.remove")

    def _party(self, case: CaseView, *, name: str, id_type: str, id_number: str, role: str,
               reason: str) -> CaseParty:
        name, number = normalise_name(name), normalise_id(id_number)
        check_party(name=name, id_type=id_type, id_number=number, role=role)
        return CaseParty(case_id=case.id, action="add", name=name, id_type=id_type,
                         id_number=number, role=role, id_key=self.keys.id_key(number),
                         actor="", reason=reason.strip(), at=self.clock())

    def _write(self, actor: Actor, case: CaseView, row: CaseParty, action: str) -> PartyView:
        row.actor, now = actor.name, row.at
        ended = row.ends if row.action == "remove" else row.corrects
        details: dict[str, object] = {"number": case.number, "ends": ended,
                                      "reason": row.reason}
        if row.action == "add":  # keyed hashes only: the clear stays in the case record
            details.update(id_type=row.id_type, role=row.role, id_key=row.id_key,
                           name_key=self.keys.name_key(row.name))
        try:
            with self.catalog.transaction() as s:
                if ended is not None:
                    _require_active(self._rows(s, [case.id]), ended, case)
                s.add(row)
                s.flush()
                details["party"] = row.id
                self.audit.append(s, actor=actor.audit_name, action=action,
                                  subjects=[f"case:{case.id}", f"party:{row.id}"],
                                  details=details, at=now)
                views = fold_parties(self._rows(s, [case.id]))
        except CatalogError:
            # the database's message quotes the row's values: the name and ID number
            raise CatalogError(f"catalog write of a party of case {case.number} failed "
                               "(the database's message names the party: withheld)",
                               case=case.number) from None
        shown = row.ends if row.action == "remove" else row.id
        return next(v for v in views if v.id == shown)

    def parties(self, actor: Actor, key: str, *, history: bool = False) -> list[PartyView]:
        """The parties of a case (with ended ones and what ended them: ``history``)."""
        case = self._case(actor, key, P.PARTY_VIEW)
        with Session(self.catalog.engine) as s:
            views = fold_parties(self._rows(s, [case.id]))
        views = views if history else [v for v in views if v.active]
        self.gate.read(actor, "case.parties", [f"case:{case.id}"],
                       {"number": case.number, "parties": len(views), "history": history})
        return views

    def find(self, actor: Actor, *, id_number: str | None = None,
             name: str | None = None) -> list[PartyMatch]:
        """Cases one may see with a current party of this ID number (exact, by keyed
        hash) or whose name contains ``name``. Cases hidden from the actor are neither
        shown nor counted in the answer (that alone would disclose); the audit event
        counts them."""
        if (id_number is None) == (name is None):
            raise InvalidRequest("find parties by an ID number or by a name, one of them")
        self.gate.require(actor, P.PARTY_VIEW, subjects=[])
        by, key, matched = self._candidates(actor, id_number=id_number, name=name)
        visible = [m for m in matched if actor.sees(unit=m.case.unit,
                                                    sensitivity=m.case.sensitivity)]
        self.gate.read(actor, "party.find", [f"case:{m.case.id}" for m in visible],
                       {"by": by, "key": key, "found": len(visible),
                        "hidden": len(matched) - len(visible)})
        return visible

    def _candidates(self, actor: Actor, *, id_number: str | None, name: str | None,
                    ) -> tuple[str, str, list[PartyMatch]]:
        cases = {c.id: c for c in self.book.cases()}
        if id_number is not None:
            number = normalise_id(id_number)
            key = self.keys.id_key(number)
            where = (col(CaseParty.id_key) == key) & (col(CaseParty.action) == "add")
            hit: Callable[[PartyView], bool] = lambda p: p.id_number == number  # noqa: E731
            by = "id"
        else:
            fragment = normalise_name(name or "").lower()
            if not fragment:
                raise InvalidRequest("a name to find must not be empty")
            key, by = self.keys.name_key(fragment), "name"
            seen = [i for i, c in cases.items()
                    if actor.sees(unit=c.unit, sensitivity=c.sensitivity)]
            where = (col(CaseParty.case_id).in_(seen)
                     & func.lower(col(CaseParty.name)).contains(fragment, autoescape=True))
            hit = lambda p: fragment in p.name.lower()  # noqa: E731
        with Session(self.catalog.engine) as s:
            ids = set(s.exec(select(CaseParty.case_id).where(where)).all())
            views = fold_parties(self._rows(s, ids))
        found: dict[str, list[PartyView]] = {}
        for v in views:
            if v.active and hit(v):
                found.setdefault(v.case_id, []).append(v)
        ordered = sorted(found, key=lambda i: (cases[i].created_at, i))
        return by, key, [PartyMatch(case=cases[i], parties=tuple(found[i])) for i in ordered]


def _reason(reason: str) -> str:
    if not reason.strip():
        raise InvalidRequest("a reason is required")
    return reason.strip()


def _require_active(rows: list[CaseParty], party_id: int, case: CaseView) -> None:
    views = {v.id: v for v in fold_parties(rows)}
    if party_id not in views:
        raise NotFound(f"case {case.number} has no party {party_id}", case=case.number,
                       party=party_id)
    ended = views[party_id].ended
    if ended is not None:
        raise Conflict(f"party {party_id} of case {case.number} was already {ended.how} "
                       f"(row {ended.row})", case=case.number, party=party_id)


__all__ = ["ID_TYPES", "ROLES", "CaseParty", "PartyDesk", "PartyKeys", "PartyMatch",
           "PartyView", "check_party", "fold_parties", "load_party_secret", "normalise_id"]
