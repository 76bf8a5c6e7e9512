"""The catalog's repository: the only place offload code talks to the database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from archive.catalog import migrations
from archive.catalog.db import make_engine, sqlite_path, writer
from archive.catalog.migrations import Migrated
from archive.catalog.models import (
    Blob,
    Device,
    DockSession,
    Officer,
    Recording,
    RecordingProbe,
    Rendition,
    Segment,
    SessionFile,
    Wipe,
)
from integrity.errors import CatalogError, NotFound

#: Called inside a write transaction to add more rows to it (the audit event of the
#: action being recorded), so that both commit together or not at all.
Also = Callable[[Session], object] | None


class Catalog:
    def __init__(self, *, engine: Engine) -> None:
        self.engine = engine
        self._writer = writer(engine)

    @classmethod
    def open(cls, url: str) -> Catalog:
        """The catalog at ``url``; refused (SchemaOutdated) unless its schema is at this
        evidock's revision. Creates nothing: see :meth:`create`."""
        path = sqlite_path(url)
        if path is not None and not path.exists():  # do not leave an empty file behind
            raise migrations.uninitialised(migrations.shown(url))
        engine = make_engine(url)
        try:
            migrations.require_head(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine=engine)

    @classmethod
    def create(cls, url: str) -> Catalog:
        """The catalog at ``url`` after bringing its schema to head (new or existing)."""
        engine = make_engine(url)
        try:
            migrations.upgrade(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine=engine)

    @staticmethod
    def migrate(url: str) -> Migrated:
        """Bring the schema at ``url`` to head; what was done."""
        engine = make_engine(url)
        try:
            return migrations.upgrade(engine)
        finally:
            engine.dispose()

    @staticmethod
    def revision(url: str) -> tuple[str | None, str]:
        """(the catalog's schema revision, this evidock's head); None: no schema."""
        path = sqlite_path(url)
        if path is not None and not path.exists():
            return None, migrations.head()
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                return migrations.current(conn), migrations.head()
        except SQLAlchemyError as exc:
            raise CatalogError(f"cannot read catalog {migrations.shown(url)}: {exc}") from exc
        finally:
            engine.dispose()

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One atomic unit: everything added inside commits together or not at all."""
        try:
            with Session(self._writer, expire_on_commit=False) as session, session.begin():
                yield session
        except SQLAlchemyError as exc:
            raise CatalogError(f"catalog write failed: {exc.__class__.__name__}: {exc}") from exc

    def open_session(self, dock: DockSession, *, now: datetime,
                     camera_model: str | None, also: Also = None) -> None:
        with self.transaction() as s:
            if s.get(Device, dock.device_serial) is None:
                s.add(Device(serial=dock.device_serial, camera_model=camera_model,
                             first_seen=now))
            if dock.officer_id and s.get(Officer, dock.officer_id) is None:
                s.add(Officer(police_number=dock.officer_id, first_seen=now))
            s.add(dock)
            if also is not None:
                also(s)

    def close_session(self, session_id: str, *, outcome: str, ended_at: datetime,
                      error_code: str | None = None, also: Also = None) -> None:
        with self.transaction() as s:
            dock = s.get(DockSession, session_id)
            if dock is None:
                raise CatalogError(f"no dock session {session_id}", session=session_id)
            dock.outcome, dock.ended_at, dock.error_code = outcome, ended_at, error_code
            s.add(dock)
            if also is not None:
                also(s)

    def find_recording(self, device: str, relpath: bytes, b3: str) -> Recording | None:
        with Session(self.engine) as s:
            return s.exec(select(Recording).where(
                Recording.device_serial == device, Recording.original_path == relpath,
                Recording.blake3 == b3)).first()

    def recording(self, recording_id: str) -> Recording:
        with Session(self.engine) as s:
            rec = s.get(Recording, recording_id)
        if rec is None:
            raise NotFound(f"no recording {recording_id}", recording=recording_id)
        return rec

    def rendered(self, recording_id: str,
                 ) -> tuple[Recording, Rendition | None, list[Segment]]:
        """A recording, its successful rendition (None if it has none) and that
        rendition's segments in order, read in one session."""
        with Session(self.engine) as s:
            rec = s.get(Recording, recording_id)
            if rec is None:
                raise NotFound(f"no recording {recording_id}", recording=recording_id)
            rendition = s.exec(select(Rendition).where(
                Rendition.recording_id == recording_id, Rendition.status == "ok")).first()
            segs = [] if rendition is None else list(s.exec(
                select(Segment).where(Segment.rendition_id == rendition.id)
                .order_by(col(Segment.index))))
        return rec, rendition, segs

    def blob(self, b3: str) -> Blob | None:
        with Session(self.engine) as s:
            return s.get(Blob, b3)

    def recording_probe(self, recording_id: str) -> RecordingProbe | None:
        with Session(self.engine) as s:
            return s.get(RecordingProbe, recording_id)

    def record_outcome(self, outcome: SessionFile, *, blob: Blob | None = None,
                       recording: Recording | None = None, probe: RecordingProbe | None = None,
                       also: Also = None) -> None:
        """Blob (if new), recording (with its probe) and the file's outcome, in one
        transaction."""
        with self.transaction() as s:
            if blob is not None and s.get(Blob, blob.blake3) is None:
                s.add(blob)
            if recording is not None:
                s.add(recording)
                if probe is not None:
                    s.flush()  # the probe's foreign key needs the recording's row first
                    s.add(probe)
            s.add(outcome)
            if also is not None:
                also(s)

    def record_wipe(self, wipe: Wipe, *, also: Also = None) -> None:
        with self.transaction() as s:
            s.add(wipe)
            if also is not None:
                also(s)

    def session(self, session_id: str) -> DockSession | None:
        with Session(self.engine) as s:
            return s.get(DockSession, session_id)

    def session_files(self, session_id: str) -> list[SessionFile]:
        with Session(self.engine) as s:
            return list(s.exec(select(SessionFile).where(SessionFile.session_id == session_id)
                               .order_by(SessionFile.id)))  # type: ignore[arg-type]

    def recordings(self, *, device: str | None = None) -> list[Recording]:
        with Session(self.engine) as s:
            query = select(Recording)
            if device is not None:
                query = query.where(Recording.device_serial == device)
            return list(s.exec(query.order_by(Recording.ingested_at)))  # type: ignore[arg-type]

    def wipes(self, *, session_id: str | None = None) -> list[Wipe]:
        with Session(self.engine) as s:
            query = select(Wipe)
            if session_id is not None:
                query = query.where(Wipe.session_id == session_id)
            return list(s.exec(query))
