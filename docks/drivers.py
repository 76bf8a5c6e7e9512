"""Camera drivers: identify the camera, optionally unlock it, read and set its clock,
read its battery.

A driver is made per docked camera. The generic mass-storage driver knows only what
udev says (the USB serial); vendor-command drivers (``docks.zfy``) talk to the camera's
control endpoint: identity (serial, police number, name, unit), the mass-storage
password, the clock, the remaining battery.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from integrity.errors import EvidockError


@dataclass(frozen=True)
class CameraIdentity:
    serial: str
    officer: str | None = None
    officer_name: str | None = None
    unit_id: str | None = None
    unit_name: str | None = None


class Driver(Protocol):
    name: str

    def unlock(self) -> None:
        """Switch the camera to mass storage (no-op where it already is)."""

    def identify(self) -> CameraIdentity: ...

    def read_clock(self) -> datetime | None:
        """The camera's clock (aware), or None if this driver cannot read it."""

    def sync_clock(self, now: datetime) -> None:
        """Set the camera's clock (no-op where unsupported)."""

    def read_battery(self) -> int | None:
        """Remaining battery in percent (0-100), or None if the camera does not report it."""

    def close(self) -> None: ...


class MassStorageDriver:
    """The default: a plain USB disk. Identity from udev; no clock access."""

    name = "mass-storage"

    def __init__(self, *, serial: str) -> None:
        self._serial = serial

    def unlock(self) -> None:
        return None

    def identify(self) -> CameraIdentity:
        return CameraIdentity(serial=self._serial)

    def read_clock(self) -> datetime | None:
        return None

    def sync_clock(self, now: datetime) -> None:
        return None

    def read_battery(self) -> int | None:
        return None

    def close(self) -> None:
        return None


DriverFactory = Callable[..., Driver]


def clock_drift_s(driver: Driver, now: datetime) -> float | None:
    """Camera clock minus station clock, in seconds (positive: the camera is ahead)."""
    camera = driver.read_clock()
    return None if camera is None else round((camera - now).total_seconds(), 3)


@dataclass(frozen=True)
class DockReadings:
    """What the camera told the station about itself when it docked."""

    clock_drift_s: float | None = None
    battery_percent: int | None = None  # None: not reported


def battery_percent(driver: Driver) -> int | None:
    """The camera's remaining battery, or None: not reported. Never raises.

    The battery is a fact about the equipment, not the evidence: a camera without the
    command, a garbled or out-of-range reply, or one pulled mid-call must not cost the
    offload, so every failure here reads as "not reported".
    """
    try:
        value = driver.read_battery()
    except (EvidockError, OSError):
        return None
    if value is None or isinstance(value, bool) or not 0 <= value <= 100:
        return None
    return value
