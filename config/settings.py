"""Typed, validated settings. Parsed once at the edge; downstream code trusts them."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StationSettings(_Frozen):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    camera_timezone: str = "Asia/Shanghai"

    @field_validator("camera_timezone")
    @classmethod
    def _zone_exists(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.camera_timezone)


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
    chunk_size: int = Field(1 << 20, ge=4096, le=64 << 20)
    default_camera_model: str = "generic-dcim"
    evict_before_verify: bool = True
    probe_timeout_s: float = Field(120, gt=0)
    extensions: ExtensionSettings = ExtensionSettings()


class RenditionSettings(_Frozen):
    segment_seconds: float = Field(10, gt=0, le=3600)
    accept_video: tuple[str, ...] = ("h264", "hevc")
    accept_audio: tuple[str, ...] = ("aac", "opus", "mp3", "pcm_s16le")
    transcode_preset: str = Field("veryfast", pattern=r"^[a-z]+$")
    transcode_crf: int = Field(23, ge=0, le=51)
    audio_bitrate: str = Field("128k", pattern=r"^\d+k$")
    timeout_s: float = Field(21600, gt=0)


class CameraModel(_Frozen):
    name: str = Field(min_length=1)
    description: str = ""
    patterns: tuple[str, ...] = Field(min_length=1)
    start_format: str
    log_patterns: tuple[str, ...] = ()

    @field_validator("patterns", "log_patterns")
    @classmethod
    def _compiles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad regular expression {pattern!r}: {exc}") from exc
        return value

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
    camera_models: tuple[CameraModel, ...] = ()

    @model_validator(mode="after")
    def _default_model_exists(self) -> Settings:
        names = [m.name for m in self.camera_models]
        if len(set(names)) != len(names):
            raise ValueError("camera_models: names must be unique")
        if self.ingest.default_camera_model not in names:
            raise ValueError(
                f"ingest.default_camera_model: {self.ingest.default_camera_model!r} "
                f"is not one of camera_models {names}"
            )
        return self

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
