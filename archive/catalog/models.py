"""Catalog tables (SQLModel). Evidence rows are written once and never updated."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from archive.catalog.types import APPEND_ONLY, CLOSE_ONCE, JSONText, utc_field


class Device(SQLModel, table=True):
    __table_args__ = APPEND_ONLY
    serial: str = Field(primary_key=True)
    camera_model: str | None = None
    first_seen: datetime = utc_field()


class Officer(SQLModel, table=True):
    __table_args__ = APPEND_ONLY
    police_number: str = Field(primary_key=True)
    name: str | None = None
    unit: str | None = None
    first_seen: datetime = utc_field()


class DockSession(SQLModel, table=True):
    """One offload of one camera. ``outcome`` is filled in when it ends.

    Guarded (migration 0003): never deleted; the one UPDATE allowed is the close, which
    sets ``ended_at``/``outcome``/``error_code`` of an open session and nothing else.
    """

    __table_args__ = CLOSE_ONCE
    id: str = Field(primary_key=True)
    station_id: str
    device_serial: str = Field(foreign_key="device.serial", index=True)
    officer_id: str | None = None
    camera_model: str
    source: str
    bay: str | None = None
    wipe_requested: bool = False
    started_at: datetime = utc_field()
    ended_at: datetime | None = utc_field(nullable=True)
    outcome: str | None = None  # completed | findings | interrupted | failed
    error_code: str | None = None
    clock_drift_s: float | None = None
    battery_percent: int | None = None  # read at dock (migration 0011); None: not reported


class Blob(SQLModel, table=True):
    """Bytes held in the content-addressed store, named by BLAKE3."""

    __table_args__ = APPEND_ONLY
    blake3: str = Field(primary_key=True, min_length=64, max_length=64)
    sha256: str = Field(min_length=64, max_length=64)
    size: int
    stored_at: datetime = utc_field()


class Recording(SQLModel, table=True):
    """A file as the camera held it. Several recordings may share one blob."""

    __table_args__ = (
        UniqueConstraint("device_serial", "original_path", "blake3", name="uq_recording_origin"),
        APPEND_ONLY,
    )
    id: str = Field(primary_key=True)
    session_id: str = Field(foreign_key="docksession.id", index=True)
    device_serial: str = Field(foreign_key="device.serial", index=True)
    officer_id: str | None = Field(default=None, index=True)
    original_path: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    original_display: str
    kind: str  # video | photo | audio | log | other
    size: int
    blake3: str = Field(foreign_key="blob.blake3", index=True)
    sha256: str
    camera_start: datetime | None = utc_field(nullable=True)
    source_mtime_ns: int
    ingested_at: datetime = utc_field()
    status: str  # ingested | flagged
    flags: list[str] = Field(default_factory=list, sa_column=Column(JSONText(), nullable=False))
    reason: str = ""


class RecordingProbe(SQLModel, table=True):
    """What ffprobe printed for a recording's bytes as they were ingested (migration 0022).

    Its rendition plans from this instead of starting ffprobe again (issue 14): the
    bytes are the ones its BLAKE3 names, so the answer is the same while ``tool`` (the
    ffprobe that gave it) is the station's ffprobe; another version probes again. Only a
    plain probe (the renderer's own call) is kept; a recording without a row is probed.
    """

    __table_args__ = APPEND_ONLY
    recording_id: str = Field(primary_key=True, foreign_key="recording.id")
    tool: str
    probe: str  # ffprobe's JSON (-show_format -show_streams), as printed


class SessionFile(SQLModel, table=True):
    """The outcome of every file an offload looked at, whatever became of it."""

    __table_args__ = (Index("ix_sessionfile_session", "session_id"), APPEND_ONLY)
    id: int | None = Field(default=None, primary_key=True)
    session_id: str = Field(foreign_key="docksession.id")
    relpath: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    display: str
    status: str  # ingested | duplicate | flagged | skipped | failed
    code: str
    reason: str
    size: int | None = None
    blake3: str | None = None
    sha256: str | None = None
    recording_id: str | None = None
    at: datetime = utc_field()


class Wipe(SQLModel, table=True):
    """A file deleted from a camera after its copy was proven."""

    __table_args__ = APPEND_ONLY
    id: int | None = Field(default=None, primary_key=True)
    recording_id: str = Field(foreign_key="recording.id", index=True)
    session_id: str = Field(foreign_key="docksession.id")
    relpath: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    blake3: str
    wiped_at: datetime = utc_field()


class Rendition(SQLModel, table=True):
    """One attempt to make the archival rendition of a recording (never edited).

    A failed attempt is a row with status "failed"; a later success is a new row. The
    signed manifest and every segment are blobs in the content store.
    """

    __table_args__ = APPEND_ONLY
    id: str = Field(primary_key=True)
    recording_id: str = Field(foreign_key="recording.id", index=True)
    status: str  # ok | failed | none (no rendition for this kind, e.g. photos)
    code: str
    reason: str = ""
    kind: str | None = None  # remux | transcode | audio
    container: str | None = None
    tool: str | None = None
    argv: list[str] = Field(default_factory=list, sa_column=Column(JSONText(), nullable=False))
    source_blake3: str
    merkle_root: str | None = None
    manifest_blake3: str | None = Field(default=None, foreign_key="blob.blake3")
    key_id: str | None = None
    media: dict[str, Any] = Field(default_factory=dict,
                                  sa_column=Column(JSONText(), nullable=False))
    created_at: datetime = utc_field()


class Segment(SQLModel, table=True):
    """One segment of a rendition; index 0 is the init segment when there is one."""

    __table_args__ = APPEND_ONLY
    rendition_id: str = Field(foreign_key="rendition.id", primary_key=True)
    index: int = Field(primary_key=True)
    name: str
    start_us: int
    end_us: int
    size: int
    blake3: str = Field(foreign_key="blob.blake3", index=True)


class Derivative(SQLModel, table=True):
    """A labelled, best-effort derivative (e.g. frames salvaged from a truncated file).

    Never a replacement: the original stays the master and keeps its flags.
    """

    __table_args__ = APPEND_ONLY
    id: str = Field(primary_key=True)
    recording_id: str = Field(foreign_key="recording.id", index=True)
    label: str  # e.g. "salvage: frames before the damage; NOT the original"
    status: str  # ok | failed
    code: str
    reason: str = ""
    tool: str | None = None
    argv: list[str] = Field(default_factory=list, sa_column=Column(JSONText(), nullable=False))
    blake3: str | None = Field(default=None, foreign_key="blob.blake3")
    size: int | None = None
    duration_s: float | None = None
    created_at: datetime = utc_field()



class Tombstone(SQLModel, table=True):
    """What is left when retention removes a recording's content: never silent.

    The recording, blob and segment rows stay (they are append-only); this row says the
    bytes named in ``blobs`` were removed, under which rule, approved by whom. ``remote``
    lists the remote (WORM) copies the deletion covers, ``{"key", "version_id"}`` each:
    each is deleted once its lock has run out (the upload events say when).
    """

    __table_args__ = APPEND_ONLY
    id: int | None = Field(default=None, primary_key=True)
    recording_id: str = Field(foreign_key="recording.id", index=True)
    blobs: list[str] = Field(default_factory=list, sa_column=Column(JSONText(), nullable=False))
    remote: list[dict[str, Any]] = Field(default_factory=list,
                                         sa_column=Column(JSONText(), nullable=False))
    digests: dict[str, Any] = Field(default_factory=dict,
                                    sa_column=Column(JSONText(), nullable=False))
    rule: str
    reason: str
    approvers: list[str] = Field(default_factory=list,
                                 sa_column=Column(JSONText(), nullable=False))
    actor: str
    at: datetime = utc_field()


class Seal(SQLModel, table=True):
    """A signed record (integrity/records.py) kept in the store as blob ``blake3``: what
    the station asserted ``subject`` (a recording or a dock session id) was. Its
    ``audit_seq`` event names the same blob, so the log vouches for the seal too."""

    __table_args__ = (Index("ix_seal_subject", "kind", "subject"), APPEND_ONLY)
    blake3: str = Field(primary_key=True, foreign_key="blob.blake3")
    kind: str  # recording | session
    subject: str
    stage: str  # ingest (a recording) | before_wipe | end (a session)
    audit_seq: int
    at: datetime = utc_field()
