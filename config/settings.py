"""Typed, validated settings. Parsed once at the edge; downstream code trusts them."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from config.access import AccessSettings, CaseSettings, CoverageSettings, ExportSettings
from config.dock import DockSettings, check_regex
from config.equipment import EquipmentSettings
from config.queue import JobQueueSettings
from config.retention import RetentionSettings
from config.scheduler import SchedulerSettings
from config.service import ServiceSettings
from config.timestamps import TimestampSettings
from config.witness import CenterSettings, WitnessSettings


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StationSettings(_Frozen):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    #: The zone cameras' clocks (and so their file names) are set in.
    camera_timezone: str = "Asia/Shanghai"
    #: The station's zone: every time people read (tables, lines, JSON offsets). Empty:
    #: the cameras' zone, as before this setting existed.
    timezone: str = ""

    @field_validator("camera_timezone", "timezone")
    @classmethod
    def _zone_exists(cls, value: str, info: ValidationInfo) -> str:
        if value == "" and info.field_name == "timezone":
            return value
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def zone(self) -> ZoneInfo:
        """The cameras' zone (camera-local times without a zone are read in it)."""
        return ZoneInfo(self.camera_timezone)

    @property
    def local_zone_name(self) -> str:
        """The station's zone by name (``timezone``, else ``camera_timezone``)."""
        return self.timezone or self.camera_timezone

    @property
    def local_zone(self) -> ZoneInfo:
        """The station's zone: people see every time in it, with its offset."""
        return ZoneInfo(self.local_zone_name)


class PathSettings(_Frozen):
    catalog_url: str = ""
    store: str = ""
    keys: str = ""
    logs: str = ""


class ExtensionSettings(_Frozen):
    video: tuple[str, ...] = ()
    photo: tuple[str, ...] = ()
    audio: tuple[str, ...] = ()
    log: tuple[str, ...] = ()

    def kind_of(self, name: bytes) -> str:
        """File kind by extension, case-insensitive; "other" when unknown."""
        _, dot, ext = name.rpartition(b".")
        if not dot:
            return "other"
        text = ext.decode("ascii", "replace").lower()
        for kind in ("video", "photo", "audio", "log"):
            if text in getattr(self, kind):
                return kind
        return "other"


class IngestSettings(_Frozen):
    max_depth: int = Field(16, ge=1, le=64)
    #: Whole pages: each write then ends on a page, so the re-read's page-cache drop
    #: (DONTNEED) never meets a folio that reaches past its range (archive/reread.py).
    chunk_size: int = Field(1 << 20, ge=4096, le=64 << 20, multiple_of=4096)
    default_camera_model: str = "generic-dcim"
    evict_before_verify: bool = True
    #: The copy of a camera file is re-read from the disk this far behind the copy, while
    #: it goes on (archive/reread.py); 0: only after the copy. Needs evict_before_verify.
    #: 8 MiB: what is left to re-read after the camera's last byte (bench.camera, 8 bays
    #: at 35 MB/s: 1.0 s from last byte to done with 32 MiB, 0.6 s with 8 or 4 MiB; 4 MiB
    #: was slower on one disk, 8 MiB as fast as 32).
    reread_window: int = Field(8 << 20, ge=0, le=1 << 40)
    #: The camera is asked for this much beyond each chunk read (POSIX_FADV_WILLNEED),
    #: so its reads stay queued while a chunk is hashed and written; 0: the kernel's own.
    read_ahead: int = Field(4 << 20, ge=0, le=256 << 20)
    #: Copies into the store go through the page cache (written behind the reads, their
    #: writeback started every 8 MiB); true: from the chunk buffers straight to the disk
    #: (O_DIRECT) where its filesystem allows, filling no page cache. Either way each
    #: copy is fsynced and re-read from the disk. Buffered: 14 % faster for a camera tree
    #: on the store's own disk, the same for 8 cameras at 35 MB/s at the same CPU (with
    #: real memory, bench.offload/bench.camera, issue 14; ARCHITECTURE "copy and cache").
    direct_writes: bool = False
    probe_timeout_s: float = Field(120, gt=0)
    #: Camera files up to this size are read again and compared with the stored copy
    #: right before they are wiped (larger ones: device, inode, size, mtime and ctime).
    rehash_before_wipe_bytes: int = Field(64 << 20, ge=0)
    extensions: ExtensionSettings = ExtensionSettings()


class RenditionSettings(_Frozen):
    segment_seconds: float = Field(10, gt=0, le=3600)
    accept_video: tuple[str, ...] = ("h264", "hevc")
    accept_audio: tuple[str, ...] = ("aac", "opus", "mp3", "pcm_s16le")
    transcode_preset: str = Field("veryfast", pattern=r"^[a-z]+$")
    transcode_crf: int = Field(23, ge=0, le=51)
    audio_bitrate: str = Field("128k", pattern=r"^\d+k$")
    timeout_s: float = Field(21600, gt=0)


class UploadSettings(_Frozen):
    """WORM object storage (S3-compatible, Object Lock COMPLIANCE) holding a copy of every blob."""

    enabled: bool = False
    endpoint_url: str = ""
    region: str = "us-east-1"
    bucket: str = Field("", pattern=r"^$|^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    key_prefix: str = Field("", pattern=r"^[A-Za-z0-9._/-]*$")
    access_key_id: str = ""
    secret_access_key: str = ""
    addressing_style: Literal["path", "virtual", "auto"] = "path"
    part_size: int = Field(16 << 20, ge=5 << 20, le=5 << 30)
    multipart_threshold: int = Field(32 << 20, ge=5 << 20, le=5 << 30)
    max_concurrency: int = Field(4, ge=1, le=32)
    connect_timeout_s: float = Field(10, gt=0)
    read_timeout_s: float = Field(120, gt=0)
    retention_days: int = Field(184, ge=1, le=36500)
    retry_base_s: float = Field(30, gt=0)
    retry_cap_s: float = Field(21600, gt=0)
    checksum_attempts: int = Field(3, ge=1, le=20)
    lease_s: float = Field(3600, gt=0)
    batch: int = Field(10, ge=1, le=1000)

    @model_validator(mode="after")
    def _bucket_when_enabled(self) -> UploadSettings:
        if self.enabled and not self.bucket:
            raise ValueError("upload.bucket must be set when upload.enabled is true")
        return self


class CameraModel(_Frozen):
    name: str = Field(min_length=1)
    description: str = ""
    patterns: tuple[str, ...] = Field(min_length=1)
    start_format: str
    log_patterns: tuple[str, ...] = ()

    @field_validator("patterns", "log_patterns")
    @classmethod
    def _compiles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_regex(pattern) for pattern in value)

    @field_validator("patterns")
    @classmethod
    def _captures_start(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            if "start" not in re.compile(pattern).groupindex:
                raise ValueError(f"pattern {pattern!r} must capture (?P<start>...)")
        return value

    @field_validator("start_format")
    @classmethod
    def _format_round_trips(cls, value: str) -> str:
        sample = datetime(2024, 3, 5, 7, 8, 9)
        try:
            if datetime.strptime(sample.strftime(value), value) != sample:
                raise ValueError("does not identify a time to the second")
        except ValueError as exc:
            raise ValueError(f"start_format {value!r}: {exc}") from exc
        return value


class Settings(_Frozen):
    """Everything evidock reads from configuration, with ``home`` resolved."""

    home: Path
    station: StationSettings
    paths: PathSettings = PathSettings()
    ingest: IngestSettings = IngestSettings()
    rendition: RenditionSettings = RenditionSettings()
    dock: DockSettings = DockSettings()
    upload: UploadSettings = UploadSettings()
    access: AccessSettings = AccessSettings()
    cases: CaseSettings
    exports: ExportSettings
    coverage: CoverageSettings = CoverageSettings()
    equipment: EquipmentSettings = EquipmentSettings()
    retention: RetentionSettings = RetentionSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    jobs: JobQueueSettings = JobQueueSettings()
    service: ServiceSettings = ServiceSettings()
    timestamps: TimestampSettings = TimestampSettings()
    center: CenterSettings = CenterSettings()
    witness: WitnessSettings = WitnessSettings()
    camera_models: tuple[CameraModel, ...] = ()

    @model_validator(mode="after")
    def _default_model_exists(self) -> Settings:
        names = [m.name for m in self.camera_models]
        if len(set(names)) != len(names):
            raise ValueError("camera_models: names must be unique")
        for where, wanted in [("dock.cameras", c.camera_model) for c in self.dock.cameras] + \
                [("dock.bays", b.camera_model) for b in self.dock.bays if b.camera_model]:
            if wanted not in names:
                raise ValueError(f"{where}: camera model {wanted!r} is not one of {names}")
        self._case_vocabulary()
        if self.ingest.default_camera_model not in names:
            raise ValueError(
                f"ingest.default_camera_model: {self.ingest.default_camera_model!r} "
                f"is not one of camera_models {names}"
            )
        return self

    @model_validator(mode="after")
    def _queue_in_postgres(self) -> Settings:
        # The queue lives in the catalog's own database: SQLite has no LISTEN/NOTIFY, no
        # row locks across machines, and its renditions run in-process anyway.
        if self.jobs.queued and not self.catalog_url.startswith("postgresql"):
            raise ValueError('jobs.queue = "postgres" needs the catalog on PostgreSQL '
                             "(paths.catalog_url = \"postgresql+psycopg://...\"); on the "
                             'SQLite default leave it "inline"')
        return self

    def _case_vocabulary(self) -> None:
        """Coverage rules and users may only name stages, types and units the agency has."""
        for req in self.coverage.requirements:
            if req.stage not in self.cases.stages:
                raise ValueError(f"coverage.requirements: stage {req.stage!r} is not one of "
                                 f"cases.stages")
            for t in req.case_types:
                if t not in self.cases.types:
                    raise ValueError(f"coverage.requirements: case type {t!r} is not one of "
                                     f"cases.types")
        if self.cases.units:
            for user in self.access.users:
                for unit in user.units:
                    if unit not in self.cases.units:
                        raise ValueError(f"access.users: {user.name}: unit {unit!r} is not "
                                         f"one of cases.units")

    def camera_model(self, name: str | None) -> CameraModel:
        wanted = name or self.ingest.default_camera_model
        for model in self.camera_models:
            if model.name == wanted:
                return model
        raise KeyError(wanted)

    def _under_home(self, configured: str, default: str) -> Path:
        return Path(configured) if configured else self.home / default

    @property
    def store_dir(self) -> Path:
        return self._under_home(self.paths.store, "store")

    @property
    def keys_dir(self) -> Path:
        return self._under_home(self.paths.keys, "keys")

    @property
    def logs_dir(self) -> Path:
        return self._under_home(self.paths.logs, "logs")

    @property
    def catalog_url(self) -> str:
        return self.paths.catalog_url or f"sqlite:///{self.home / 'catalog.sqlite3'}"
