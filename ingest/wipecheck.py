"""Wiping a camera's file, and the last look at it first: is it still what was stored?

The copy was proven against the file as it was while copying (device, inode, size,
mtime and ctime before and after). Between that proof and the unlink the file could be
rewritten in place, same size, with its mtime put back: the ctime still moves on a
POSIX filesystem, but FAT keeps no ctime and a clock can be set back, so a file small
enough (``ingest.rehash_before_wipe_bytes``) is read again and its BLAKE3 compared.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from sqlmodel import Session

from archive.audit.log import AuditLog
from archive.catalog import Catalog, Wipe
from archive.seals import Sealer
from archive.store import ContentStore
from config.settings import IngestSettings
from ingest.hooks import Hooks
from ingest.outcome import FileOutcome
from ingest.source import Entry, FileIdentity, SourceTree
from integrity.codes import Code
from integrity.digest import Digests, hash_stream
from integrity.errors import DigestMismatch, EvidockError, SizeMismatch

#: The offload's audit-event factory: (action, subjects, details, at) → appender.
EventFactory = Callable[[str, list[str | None], dict[str, object], datetime],
                        Callable[[Session], object]]


class _Reader:
    def __init__(self, fd: int) -> None:
        self._fd = fd

    def readinto(self, buf: memoryview) -> int:
        return os.readv(self._fd, [buf])


def camera_doubt(tree: SourceTree, entry: Entry, *, identity: FileIdentity,
                 stored: Digests, rehash_limit: int, chunk_size: int) -> str | None:
    """Why the camera's file may no longer be the stored bytes (None: it is them)."""
    if stored.size <= rehash_limit:
        try:
            fd = tree.open_file(entry)
        except OSError as exc:
            return f"the camera file cannot be read again: {exc.strerror}"
        try:
            now = hash_stream(_Reader(fd), sha256=False, chunk_size=chunk_size)
        except OSError as exc:
            return f"the camera file cannot be read again: {exc.strerror}"
        finally:
            os.close(fd)
        if (now.size, now.blake3) != (stored.size, stored.blake3):
            return "the camera file's bytes differ from the stored copy"
    if tree.identity_now(entry) != identity:
        return "the camera file changed since it was verified"
    return None


class Wiper:
    """Deletes a camera's file for the offload (ingest/offload.py), but only once the
    stored blob is proven on the disk and the camera's file is still what was stored."""

    def __init__(self, *, ingest: IngestSettings, store: ContentStore, catalog: Catalog,
                 sealer: Sealer, audit: AuditLog, actor: str, clock: Callable[[], datetime],
                 hooks: Hooks, event: EventFactory) -> None:
        self.ingest, self.store, self.catalog, self.sealer = ingest, store, catalog, sealer
        self.audit, self.actor, self.clock, self.hooks = audit, actor, clock, hooks
        self.event = event

    def wipe(self, *, tree: SourceTree, session_id: str, entry: Entry, identity: FileIdentity,
             stored: Digests, outcome: FileOutcome) -> FileOutcome:
        b3 = stored.blake3
        try:
            stored.check_against(self.store.reread(b3, evict=self.ingest.evict_before_verify),
                                 subject=b3)
        except (DigestMismatch, SizeMismatch, OSError) as exc:
            why = exc.message if isinstance(exc, EvidockError) else exc.strerror
            return replace(outcome, reason=f"{outcome.reason}; not wiped: {why}")
        doubt = camera_doubt(tree, entry, identity=identity, stored=stored,
                             rehash_limit=self.ingest.rehash_before_wipe_bytes,
                             chunk_size=self.ingest.chunk_size)
        if doubt is not None:
            return self._withheld(session_id, entry, outcome, doubt)
        assert outcome.recording_id is not None
        # Recorded before the unlink: no wipe can ever happen without its row and event;
        # the session's signed record and audit head are in the store before the first.
        self.sealer.before_wipe(session_id)
        at = self.clock()
        self.catalog.record_wipe(
            Wipe(recording_id=outcome.recording_id, session_id=session_id,
                 relpath=entry.relpath, blake3=b3, wiped_at=at),
            also=self.event("ingest.wipe", [session_id, outcome.recording_id, b3],
                            {"path": entry.display, "blake3": b3, "size": stored.size}, at))
        try:
            tree.unlink(entry, identity)
        except OSError as exc:
            return replace(outcome, reason=f"{outcome.reason}; wipe failed: {exc.strerror}")
        self.hooks.reached("after_wipe")
        return replace(outcome, wiped=True)

    def _withheld(self, session_id: str, entry: Entry, outcome: FileOutcome, why: str,
                  ) -> FileOutcome:
        """Not wiped, and the reason is an audit event (the file's row is already in)."""
        self.audit.record(
            actor=self.actor, action="ingest.wipe.withheld",
            subjects=[s for s in (session_id, outcome.recording_id, outcome.blake3) if s],
            details={"path": entry.display, "blake3": outcome.blake3,
                     "code": Code.E_SOURCE_CHANGED, "reason": why}, at=self.clock())
        return replace(outcome, reason=f"{outcome.reason}; not wiped: {why}")
