"""Settings of the docking-station daemon: the ``[dock]`` table."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


def check_regex(pattern: str) -> str:
    """The pattern itself if it compiles; a ValueError naming it otherwise."""
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"bad regular expression {pattern!r}: {exc}") from exc
    return pattern


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


WipePolicy = Literal["never", "local", "remote"]
SourceKind = Literal["udev", "folder"]
DRIVERS = ("mass-storage", "zfy-serial")


class CameraEntry(_Frozen):
    """One registered camera type: USB ids (+ serial pattern) → model, driver."""

    name: str = Field(min_length=1)
    vendor_id: str = Field(pattern=r"^[0-9a-f]{4}$")
    model_id: str = Field("", pattern=r"^([0-9a-f]{4})?$")  # empty: any product of the vendor
    serial_pattern: str = ".+"  # fullmatch against ID_SERIAL_SHORT
    camera_model: str = Field(min_length=1)  # a [[camera_models]] name: file-name patterns
    driver: str = "mass-storage"
    password: str = ""  # vendor-command drivers: the 6-character mass-storage password
    sync_clock: bool = False

    @field_validator("serial_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        return check_regex(value)

    @field_validator("driver")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if value not in DRIVERS:
            raise ValueError(f"unknown driver {value!r}; known: {list(DRIVERS)}")
        return value

    @model_validator(mode="after")
    def _password_fits(self) -> CameraEntry:
        if self.driver == "zfy-serial" and len(self.password.encode("gbk")) != 6:
            raise ValueError(f"camera {self.name}: zfy-serial needs a 6-byte password")
        return self


class BayEntry(_Frozen):
    number: int = Field(ge=1, le=999)
    id_path: str = ""  # udev ID_PATH of the USB port (fnmatch pattern)
    folder: str = ""  # watched folder: a camera is a directory appearing inside it
    camera_model: str = ""  # watched folders: model for name parsing (default: ingest's)
    control_port: str = ""  # vendor-command drivers: the bay's control tty, if fixed


class DockSettings(_Frozen):
    sources: tuple[SourceKind, ...] = ("udev",)
    max_parallel: int = Field(2, ge=1, le=64)
    wipe: WipePolicy = "local"
    overdue_window_h: float = Field(24, gt=0)
    run_dir: str = ""  # status file and mount points; empty: $EVIDOCK_HOME/run
    mount_timeout_s: float = Field(30, gt=0)
    filesystems: tuple[str, ...] = ("vfat", "exfat", "ext4")
    settle_s: float = Field(0.5, ge=0, le=600)
    status_interval_s: float = Field(0.5, gt=0)
    process_after_offload: bool = True
    camera_hints: tuple[str, ...] = ("ZFY", "DSJ", "执法", "记录仪")
    cameras: tuple[CameraEntry, ...] = ()
    bays: tuple[BayEntry, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> DockSettings:
        numbers = [b.number for b in self.bays]
        if len(set(numbers)) != len(numbers):
            raise ValueError("bays: numbers must be unique")
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError("cameras: names must be unique")
        return self
