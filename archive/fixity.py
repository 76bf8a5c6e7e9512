"""Fixity: re-hash stored blobs against the catalog; find what the store should not hold.

Every ``Blob`` row (camera originals, and the rendition segments and signed manifests,
which are blobs of the same store) can be checked. Each object is read from the disk,
not the page cache (``posix_fadvise(DONTNEED)`` first), and compared by size and BLAKE3
(its name), plus SHA-256 when asked. A few blobs are read at once (``workers``): a cold
read then keeps several requests in flight, as b3sum's multithreaded mmap does.
Findings have stable codes: ``E_FIXITY_MISSING``, ``E_FIXITY_ALTERED`` (size, digest,
or not a regular file any more), ``E_FIXITY_UNREADABLE`` (I/O or permission error),
``E_FIXITY_UNEXPECTED`` (something under ``store/<2>/<2>/`` no Blob row names, or any
other stray entry in the store). A blob a retention ``Tombstone`` names (and nothing live
names again) is expected absent: absent is ``I_FIXITY_TOMBSTONED``, still present is
``E_FIXITY_TOMBSTONED_PRESENT`` (the removal did not happen or was undone).

Each check is an append-only ``FixityCheck`` row (when each object was last proven);
each finding and each run is an audit event. Sampling prefers objects never proven,
then those proven longest ago, ties broken by a seeded shuffle, so repeated runs cover
the whole store and any run can be reproduced from its seed.

Extra per-blob checks plug in through ``checks`` (e.g. a manifest-signature check from
the rendition code): each gets the blob and its path after its digests matched.
"""

from __future__ import annotations

import errno
import os
import random
import re
import stat
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import blake3
from sqlalchemy import Column, and_, func, select
from sqlmodel import Field, Session, SQLModel

from archive.audit.log import AuditLog
from archive.catalog import Blob, Catalog
from archive.catalog.types import APPEND_ONLY, UTCDateTime, table_of
from archive.store import ContentStore
from archive.tombstones import live_references, tombstoned_blobs
from integrity.codes import Code
from integrity.digest import Digests, hash_stream
from integrity.errors import FixityError
from integrity.findings import Finding

E_FIXITY_MISSING = Code.E_FIXITY_MISSING
E_FIXITY_ALTERED = Code.E_FIXITY_ALTERED
E_FIXITY_UNREADABLE = Code.E_FIXITY_UNREADABLE
E_FIXITY_UNEXPECTED = Code.E_FIXITY_UNEXPECTED
E_FIXITY_TOMBSTONED_PRESENT = Code.E_FIXITY_TOMBSTONED_PRESENT
I_FIXITY_OK = Code.I_FIXITY_OK
I_FIXITY_TOMBSTONED = Code.I_FIXITY_TOMBSTONED
#: "blobs": only the blobs named (a re-check after a repair), no store-wide checks.
MODES = ("all", "sample", "since", "blobs")
IGNORED = frozenset({".staging", ".quarantine", ".staging.lock"})
CHUNK = 4 << 20
WORKERS = min(4, (os.cpu_count() or 1) + 1)
_HEX2 = re.compile(r"^[0-9a-f]{2}$")
_BATCH = 256
_NEVER = datetime.min.replace(tzinfo=UTC)


class FixityCheck(SQLModel, table=True):
    """One object checked once. Append-only: the history of when each was proven."""

    __table_args__ = APPEND_ONLY
    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True)
    blake3: str | None = Field(default=None, index=True)
    path: str
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    ok: bool
    code: str
    digests: str  # blake3 | blake3+sha256 | none


@dataclass(frozen=True)
class BlobRef:
    blake3: str
    sha256: str
    size: int
    stored_at: datetime
    last_proven: datetime | None
    tombstoned: bool = False  # removed by retention: expected absent


@dataclass(frozen=True)
class FixityPlan:
    """What to check. ``seed`` orders the sample; ``sha256`` also checks SHA-256."""

    mode: str = "all"
    seed: int = 0
    sample: int | None = None
    since: datetime | None = None
    sha256: bool = False
    blobs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise FixityError(f"unknown fixity mode {self.mode!r}", mode=self.mode)
        if (self.mode == "blobs") != bool(self.blobs):
            raise FixityError("blobs are named in (and only in) mode blobs")
        if self.mode == "sample" and (self.sample is None or self.sample < 0):
            raise FixityError("--sample needs a non-negative count", sample=self.sample)
        if self.mode == "since" and (self.since is None or self.since.tzinfo is None):
            raise FixityError("--since needs an aware time (with a zone)")

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "seed": self.seed, "sample": self.sample,
                "since": self.since.isoformat() if self.since else None,
                "digests": "blake3+sha256" if self.sha256 else "blake3",
                **({"blobs": list(self.blobs)} if self.blobs else {})}


@dataclass(frozen=True)
class FixityReport:
    run_id: str
    plan: FixityPlan
    checked: int
    bytes_read: int
    findings: tuple[Finding, ...]
    started: datetime
    ended: datetime

    @property
    def exit_code(self) -> int:
        return 1 if self.findings else 0

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, **self.plan.to_dict(), "checked": self.checked,
                "bytes": self.bytes_read, "ok": not self.findings,
                "seconds": (self.ended - self.started).total_seconds(),
                "findings": [f.to_dict() for f in self.findings]}


#: An extra check on a blob whose digests matched: returns findings (empty when fine).
BlobCheck = Callable[[BlobRef, Path], Sequence[Finding]]


@dataclass(frozen=True)
class _Result:
    ref: BlobRef | None
    path: str
    code: str
    finding: Finding | None
    nbytes: int = 0
    digests: str = "none"  # what was compared: blake3 | blake3+sha256 | none


def blake3_fd(fd: int, buf: bytearray) -> Digests:
    """BLAKE3 of an open file read through ``buf`` (SHA-256 left empty)."""
    view = memoryview(buf)
    h = blake3.blake3()
    size = 0
    while n := os.readv(fd, [buf]):
        h.update(view[:n])
        size += n
    return Digests(size=size, blake3=str(h.hexdigest()), sha256="")


def _ordered_map(fn: Callable[[BlobRef], _Result], items: Sequence[BlobRef],
                 workers: int) -> Iterator[_Result]:
    """``map(fn, items)`` on ``workers`` threads, in order, at most 2×workers ahead."""
    if workers <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="fixity") as pool:
        window: deque[Future[_Result]] = deque()
        for item in items:
            window.append(pool.submit(fn, item))
            if len(window) >= 2 * workers:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()


class _FdReader:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def readinto(self, buf: memoryview) -> int:
        return os.readv(self.fd, [buf])


class Fixity:
    def __init__(self, *, catalog: Catalog, store: ContentStore, audit: AuditLog,
                 clock: Callable[[], datetime], checks: Sequence[BlobCheck] = (),
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
                 workers: int = WORKERS) -> None:
        self.catalog, self.store, self.audit = catalog, store, audit
        self.clock, self.checks, self.new_id = clock, tuple(checks), new_id
        # Several blobs are read at once: a cold read then has more than one request in
        # flight, which is what keeps up with b3sum's multithreaded mmap.
        self.workers = workers
        self._local = threading.local()

    # ------------------------------------------------------------------ selection

    def select(self, plan: FixityPlan) -> list[BlobRef]:
        """The blobs this plan checks, in the order they will be read."""
        refs = self._refs(plan.since if plan.mode == "since" else None, plan.blobs)
        if plan.mode != "sample":
            return refs
        rng = random.Random(plan.seed)
        keyed = [(r.last_proven is not None, r.last_proven or _NEVER, rng.random(), r)
                 for r in refs]  # refs come sorted by blake3: the draw is reproducible
        keyed.sort(key=lambda k: k[:3])
        chosen = [k[3] for k in keyed[: plan.sample]]
        return sorted(chosen, key=lambda r: r.blake3)  # read in store order

    def _refs(self, since: datetime | None, only: Sequence[str] = ()) -> list[BlobRef]:
        fc = table_of(FixityCheck)
        b = table_of(Blob)
        query = (select(b.c.blake3, b.c.sha256, b.c.size, b.c.stored_at, func.max(fc.c.at))
                 .select_from(b.outerjoin(fc, and_(fc.c.blake3 == b.c.blake3, fc.c.ok)))
                 .group_by(b.c.blake3, b.c.sha256, b.c.size, b.c.stored_at)
                 .order_by(b.c.blake3))
        if since is not None:
            query = query.where(b.c.stored_at >= since)
        if only:
            query = query.where(b.c.blake3.in_(only))
        with self.catalog.engine.connect() as conn:
            rows = conn.execute(query).all()
        gone = self._tombstoned()
        return [BlobRef(r[0], r[1], r[2], r[3], _aware(r[4]), r[0] in gone) for r in rows]

    def _tombstoned(self) -> set[str]:
        """Blobs removed by retention that nothing live names again (re-ingest)."""
        with Session(self.catalog.engine) as s:
            named = tombstoned_blobs(s)
            return named - live_references(s, named) if named else set()

    # ------------------------------------------------------------------ checking

    def check_blob(self, ref: BlobRef, *, sha256: bool) -> _Result:
        path = self.store.path_for(ref.blake3)
        rel = str(path.relative_to(self.store.root))
        if ref.tombstoned:
            return self._check_absent(ref, path, rel)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            return self._bad(ref, rel, E_FIXITY_MISSING, "blob missing from the store")
        except OSError as exc:
            code = E_FIXITY_ALTERED if exc.errno == errno.ELOOP else E_FIXITY_UNREADABLE
            return self._bad(ref, rel, code, f"cannot open: {exc.strerror}")
        try:
            return self._check_fd(ref, rel, fd, sha256=sha256)
        except OSError as exc:
            return self._bad(ref, rel, E_FIXITY_UNREADABLE, f"read error: {exc.strerror}")
        finally:
            os.close(fd)

    def _check_absent(self, ref: BlobRef, path: Path, rel: str) -> _Result:
        if not os.path.lexists(path):
            return _Result(ref, rel, I_FIXITY_TOMBSTONED, None)
        return self._bad(ref, rel, E_FIXITY_TOMBSTONED_PRESENT, "blob removed by retention "
                         "(tombstone) is still in the store")

    def _check_fd(self, ref: BlobRef, rel: str, fd: int, *, sha256: bool) -> _Result:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return self._bad(ref, rel, E_FIXITY_ALTERED, "not a regular file any more")
        if st.st_size != ref.size:
            return self._bad(ref, rel, E_FIXITY_ALTERED, "size differs from the catalog",
                             expected=ref.size, actual=st.st_size)
        # The read below must come from the device, not from pages cached earlier;
        # SEQUENTIAL doubles the kernel's readahead, which keeps up with BLAKE3.
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        got = hash_stream(_FdReader(fd), chunk_size=CHUNK) if sha256 else \
            blake3_fd(fd, self._buffer())
        digests = "blake3+sha256" if sha256 else "blake3"
        if got.size != ref.size or got.blake3 != ref.blake3 or (
                sha256 and got.sha256 != ref.sha256):
            return self._bad(ref, rel, E_FIXITY_ALTERED, "stored bytes differ from their "
                             "digest", expected=ref.blake3, actual=got.blake3,
                             expected_sha256=ref.sha256 if sha256 else None,
                             actual_sha256=got.sha256 or None, size=got.size)
        path = self.store.root / rel
        for check in self.checks:
            for finding in check(ref, path):
                return _Result(ref, rel, finding.code, finding, got.size, digests)
        return _Result(ref, rel, I_FIXITY_OK, None, got.size, digests)

    def _buffer(self) -> bytearray:
        buf: bytearray | None = getattr(self._local, "buf", None)
        if buf is None:
            buf = self._local.buf = bytearray(CHUNK)
        return buf

    @staticmethod
    def _bad(ref: BlobRef | None, rel: str, code: Code, message: str, **details: Any,
             ) -> _Result:
        subject = ref.blake3 if ref is not None else rel
        return _Result(ref, rel, code, Finding(code, message, subject,
                                               {"path": rel, **details}))

    # ------------------------------------------------------------------ unexpected

    def unexpected(self) -> Iterator[_Result]:
        """Entries in the store that no Blob row accounts for (staging etc. ignored)."""
        root = self.store.root
        if not root.is_dir():
            return
        for top in sorted(os.scandir(root), key=lambda e: e.name):
            if top.name in IGNORED:
                continue
            if not (_HEX2.match(top.name) and top.is_dir(follow_symlinks=False)):
                yield self._stray(top.name)
                continue
            known = self._names_with_prefix(top.name)
            for mid in sorted(os.scandir(top.path), key=lambda e: e.name):
                rel = f"{top.name}/{mid.name}"
                if not (_HEX2.match(mid.name) and mid.is_dir(follow_symlinks=False)):
                    yield self._stray(rel)
                    continue
                for leaf in sorted(os.scandir(mid.path), key=lambda e: e.name):
                    # A known name that is not a regular file is the blob check's
                    # finding (E_FIXITY_ALTERED), not a stray.
                    if not (leaf.name in known and leaf.name.startswith(top.name + mid.name)):
                        yield self._stray(f"{rel}/{leaf.name}")

    def _names_with_prefix(self, prefix: str) -> set[str]:
        b = table_of(Blob)
        upper = format(int(prefix, 16) + 1, "02x") if prefix != "ff" else "g"
        with self.catalog.engine.connect() as conn:
            return set(conn.execute(select(b.c.blake3).where(
                b.c.blake3 >= prefix, b.c.blake3 < upper)).scalars())

    def _stray(self, rel: str) -> _Result:
        return self._bad(None, rel, E_FIXITY_UNEXPECTED,
                         "object in the store that the catalog does not name")

    # ------------------------------------------------------------------ a run

    def run(self, plan: FixityPlan, *, actor: str) -> FixityReport:
        run_id, started = self.new_id(), self.clock()
        findings: list[Finding] = []
        batch: list[_Result] = []
        checked = nbytes = 0
        for result in self._results(plan):
            checked += result.ref is not None
            nbytes += result.nbytes
            batch.append(result)
            if result.finding is not None:
                findings.append(result.finding)
            if len(batch) >= _BATCH or result.finding is not None:
                self._commit(run_id, batch, actor)
                batch = []
        ended = self.clock()
        report = FixityReport(run_id, plan, checked, nbytes, tuple(findings), started, ended)
        self._commit(run_id, batch, actor, report=report)
        return report

    def _results(self, plan: FixityPlan) -> Iterator[_Result]:
        yield from _ordered_map(lambda ref: self.check_blob(ref, sha256=plan.sha256),
                                self.select(plan), self.workers)
        if plan.mode == "blobs":
            return
        yield from self.unexpected()
        if plan.mode == "all":
            yield from self.catalog_against_records()

    def catalog_against_records(self) -> Iterator[_Result]:
        """Every recording and session row against its signed record and the log, and
        every signed record whose row the catalog lost (archive/sealcheck.py)."""
        from archive.sealcheck import SealCheck

        signer = self.audit.signer
        keyring = signer.keyring() if signer is not None and signer.available() else None
        check = SealCheck(catalog=self.catalog, store=self.store, keyring=keyring)
        for finding in check.everything().findings:
            yield _Result(None, finding.subject or "catalog", finding.code, finding)

    def _commit(self, run_id: str, batch: list[_Result], actor: str,
                report: FixityReport | None = None) -> None:
        """Check rows, finding events and (at the end) the run event: one transaction."""
        with self.catalog.transaction() as s:
            for r in batch:
                at = self.clock()
                s.add(FixityCheck(run_id=run_id, blake3=r.ref.blake3 if r.ref else None,
                                  path=r.path, at=at, ok=r.finding is None, code=r.code,
                                  digests=r.digests))
                if r.finding is not None:
                    self.audit.append(s, actor=actor, action="fixity.finding",
                                      subjects=[run_id, r.finding.subject or r.path],
                                      details=r.finding.to_dict(), at=at)
            if report is not None:
                summary = {**report.plan.to_dict(), "checked": report.checked,
                           "bytes": report.bytes_read, "findings": len(report.findings),
                           "codes": sorted({f.code for f in report.findings}),
                           "ms": (report.ended - report.started) // timedelta(milliseconds=1)}
                self.audit.append(s, actor=actor, action="fixity.run", subjects=[run_id],
                                  details=summary, at=report.ended)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite max() may hand back the stored text
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
