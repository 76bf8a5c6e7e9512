"""Getting RFC 3161 tokens for what the station signed, from the configured TSAs.

Items are queued by the code that signs (rendition manifests in ingest/process.py, audit
tree heads in archive/audit/log.py) in the same transaction, so nothing signed is
forgotten (archive/timestamp_rows.py). :meth:`Stamper.run` sends the oldest waiting
items to the TSAs in order, checks each token with :func:`integrity.timestamp.verify_token`
(imprint, chain to a configured root, timeStamping EKU, our nonce) before storing it, and
leaves an item queued on any failure: a station on a LAN without a TSA keeps working,
and the next run retries. A TSA that cannot be reached is not asked again in the same
run, so a dead TSA costs one timeout per run, not one per item.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from sqlalchemy import String, and_, cast, func, insert, select
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from archive.audit.format import head_of
from archive.audit.log import TreeHead
from archive.catalog.models import Blob, Rendition
from archive.catalog.repo import Catalog
from archive.catalog.types import table_of
from archive.timestamp_rows import (
    MANIFEST,
    TREE_HEAD,
    StampItem,
    StampToken,
    enqueue,
    pending_count,
)
from config.timestamps import TimestampSettings
from integrity.canonical import canonical_bytes
from integrity.codes import Code
from integrity.errors import CatalogError, ConfigError
from integrity.timestamp import QUERY_TYPE, TokenCheck, request_for, verify_token

_I = table_of(StampItem)
_K = table_of(StampToken)


def load_roots(paths: Sequence[Path]) -> tuple[x509.Certificate, ...]:
    """The TSA roots from PEM files (each may hold several certificates)."""
    roots: list[x509.Certificate] = []
    for path in paths:
        try:
            roots.extend(x509.load_pem_x509_certificates(path.read_bytes()))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"timestamps.tsa_roots: cannot read {path}: {exc}",
                              key="timestamps.tsa_roots", path=str(path)) from exc
    return tuple(roots)


@dataclass(frozen=True, kw_only=True)
class Attempt:
    """One TSA asked for one item, and why its answer was not taken."""

    url: str
    code: str
    message: str
    #: no answer at all (not asked again this run), as opposed to a refused answer
    unreachable: bool = False

    def to_dict(self) -> dict[str, str]:
        return {"url": self.url, "code": self.code, "message": self.message}


@dataclass(frozen=True, kw_only=True)
class ItemOutcome:
    item_id: int
    kind: str
    subject: str
    state: str  # stamped | queued
    claimed_at: datetime
    check: TokenCheck | None = None
    tsa_url: str | None = None
    attempts: tuple[Attempt, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        base: dict[str, Any] = {"item": self.item_id, "kind": self.kind,
                                "subject": self.subject, "state": self.state,
                                "attempts": [a.to_dict() for a in self.attempts]}
        if self.check is not None:
            base |= {"tsa_url": self.tsa_url, **self.check.against(self.claimed_at)}
        return base


@dataclass(frozen=True, kw_only=True)
class StampReport:
    items: tuple[ItemOutcome, ...]
    pending: int
    tsas: tuple[str, ...] = field(default=())

    def count(self, state: str) -> int:
        return sum(1 for i in self.items if i.state == state)

    def codes(self) -> list[str]:
        return sorted({a.code for i in self.items if i.state == "queued"
                       for a in i.attempts})


#: A timestamp response is a few KiB; a TSA sending more is not read further.
MAX_REPLY_BYTES = 1 << 20


class Stamper:
    """Drains the timestamp queue over HTTP (httpx); each request has a fresh 63-bit
    random nonce, which the token must echo."""

    def __init__(self, *, catalog: Catalog, settings: TimestampSettings,
                 roots: tuple[x509.Certificate, ...], clock: Callable[[], datetime]) -> None:
        self.catalog, self.settings, self.roots, self.clock = catalog, settings, roots, clock
        self._client: httpx.Client | None = None

    def pending(self) -> int:
        with self.catalog.engine.connect() as conn:
            return pending_count(conn)

    def run(self, *, limit: int | None = None) -> StampReport:
        """Ask for a token for up to ``limit`` waiting items, oldest first."""
        urls = self.settings.tsa_urls
        rows = self._waiting(limit or self.settings.per_run) if urls else []
        dead: set[str] = set()
        try:
            outcomes = [self._stamp(row, urls, dead) for row in rows]
        finally:
            if self._client is not None:
                self._client.close()
                self._client = None
        return StampReport(items=tuple(outcomes), pending=self.pending(), tsas=urls)

    def _waiting(self, limit: int) -> list[Row[Any]]:
        joined = _I.outerjoin(_K, _K.c.item_id == _I.c.id)
        query = (select(_I).select_from(joined).where(_K.c.id.is_(None))
                 .order_by(_I.c.id).limit(limit))
        with self.catalog.engine.connect() as conn:
            return list(conn.execute(query).all())

    def _stamp(self, row: Row[Any], urls: Sequence[str], dead: set[str]) -> ItemOutcome:
        base = {"item_id": row.id, "kind": row.kind, "subject": row.subject,
                "claimed_at": row.claimed_at}
        digest, attempts = bytes.fromhex(row.sha256), []
        for url in urls:
            if url in dead:
                attempts.append(Attempt(url=url, code=Code.E_TIMESTAMP_UNAVAILABLE,
                                        message="unreachable earlier in this run"))
                continue
            got = self._ask(url, digest, f"{row.kind}:{row.subject}")
            if isinstance(got, Attempt):
                attempts.append(got)
                if got.unreachable:
                    dead.add(url)
                continue
            token, check = got
            self._store(row.id, url, token, check)
            return ItemOutcome(**base, state="stamped", check=check, tsa_url=url,
                               attempts=tuple(attempts))
        return ItemOutcome(**base, state="queued", attempts=tuple(attempts))

    def _ask(self, url: str, digest: bytes, subject: str,
             ) -> Attempt | tuple[bytes, TokenCheck]:
        nonce = secrets.randbits(63) | 1
        try:
            token = self._post(url, request_for(digest, nonce=nonce))
        except httpx.TransportError as exc:
            return Attempt(url=url, code=Code.E_TIMESTAMP_UNAVAILABLE, unreachable=True,
                           message=f"unreachable: {type(exc).__name__}: {exc}"[:300])
        except httpx.HTTPStatusError as exc:
            return Attempt(url=url, code=Code.E_TIMESTAMP_UNAVAILABLE,
                           message=f"HTTP {exc.response.status_code}")
        check = verify_token(token, digest=digest, roots=self.roots, nonce=nonce,
                             subject=subject)
        if not check.ok or check.attested_at is None:
            first = check.findings[0] if check.findings else None
            return Attempt(url=url, code=first.code if first else Code.E_TIMESTAMP_INVALID,
                           message="; ".join(str(f) for f in check.findings)[:500])
        return token, check

    def _post(self, url: str, query: bytes) -> bytes:
        # One client per run: making one (its TLS context) costs more than a request.
        if self._client is None:
            self._client = httpx.Client(timeout=self.settings.timeout_s,
                                        follow_redirects=False)
        with self._client.stream("POST", url, content=query,
                                 headers={"Content-Type": QUERY_TYPE}) as resp:
            resp.raise_for_status()
            body = bytearray()
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) > MAX_REPLY_BYTES:
                    break  # not a token; verify_token names it
            return bytes(body[:MAX_REPLY_BYTES + 1])

    def _store(self, item_id: int, url: str, token: bytes, check: TokenCheck) -> None:
        row = {"item_id": item_id, "tsa_url": url, "token": token,
               "attested_at": check.attested_at, "tsa_name": check.tsa_name,
               "serial": check.serial, "received_at": self.clock()}
        try:
            with self.catalog.transaction() as s:
                s.connection().execute(insert(_K), row)
        except CatalogError as exc:
            # Another run stored one first (item_id is unique): that token stands.
            if not isinstance(exc.__cause__, IntegrityError):
                raise


def enqueue_missing(catalog: Catalog, *, now: datetime) -> int:
    """Queue every signed manifest and tree head that has no item yet (signed before
    stations queued them, e.g. on a catalog migrated from before revision 0009); the
    claimed time of such a manifest is its rendition row's. Returns how many."""
    R, B, H = table_of(Rendition), table_of(Blob), table_of(TreeHead)
    manifests = (select(R.c.manifest_blake3, B.c.sha256, func.min(R.c.created_at))
                 .join(B, B.c.blake3 == R.c.manifest_blake3)
                 .outerjoin(_I, and_(_I.c.kind == MANIFEST,
                                     _I.c.subject == R.c.manifest_blake3))
                 .where(_I.c.id.is_(None)).group_by(R.c.manifest_blake3, B.c.sha256))
    heads = (select(H).outerjoin(_I, and_(_I.c.kind == TREE_HEAD,
                                          _I.c.subject == cast(H.c.id, String)))
             .where(_I.c.id.is_(None)))
    with catalog.transaction() as s:
        conn = s.connection()
        found = [(MANIFEST, b3, sha, at) for b3, sha, at in conn.execute(manifests)]
        found += [(TREE_HEAD, str(row.id),
                   hashlib.sha256(canonical_bytes(head_of(row).to_dict())).hexdigest(),
                   row.time) for row in conn.execute(heads)]
        for kind, subject, sha, claimed in found:
            enqueue(conn, kind=kind, subject=subject, sha256=sha, claimed_at=claimed,
                    at=now)
    return len(found)


@dataclass(frozen=True, kw_only=True)
class StoredToken:
    """A stored token with what it stamps: for exports, and for checking it offline."""

    kind: str
    subject: str
    sha256: str
    claimed_at: datetime
    token: bytes
    tsa_url: str


def token_for(catalog: Catalog, *, kind: str, subject: str) -> StoredToken | None:
    """The token stored for one signed thing (None: none yet). An exporter puts
    ``token`` beside the signed file; :func:`integrity.timestamp.verify_token` with the
    file's SHA-256 and the TSA roots checks it offline."""
    query = (select(_I.c.kind, _I.c.subject, _I.c.sha256, _I.c.claimed_at, _K.c.token,
                    _K.c.tsa_url).select_from(_I.join(_K, _K.c.item_id == _I.c.id))
             .where(_I.c.kind == kind, _I.c.subject == subject))
    with catalog.engine.connect() as conn:
        row = conn.execute(query).first()
    return None if row is None else StoredToken(
        kind=row.kind, subject=row.subject, sha256=row.sha256, claimed_at=row.claimed_at,
        token=row.token, tsa_url=row.tsa_url)
