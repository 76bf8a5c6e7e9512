"""Witnessing of audit logs between stations and the center (``[center]``, ``[witness]``).

A station with ``[center] url`` pushes its signed tree heads to the center, which checks
each against the last it witnessed (a consistency proof) and countersigns it. A service
with ``[[witness.stations]]`` is a witness: it accepts heads only from the stations listed
there, checked with the public keyring each entry names. Both are rules, so they live in
the service's own, root-owned config; the keyring files are checked like it.

Imported by config/settings.py, so it defines its own frozen base (see config/scheduler.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

_STATION_ID = r"^[A-Za-z0-9._-]{1,64}$"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _under(home: Path, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else home / path


class CenterSettings(_Frozen):
    """Where this station's heads are witnessed. No url: witnessing is off."""

    #: The center's service, ``https://host:port`` (plain http only to a loopback address).
    url: str = ""
    #: The center's public keyring (``evidock keys export-public --keyring`` there): its
    #: countersignatures are checked with it before they are kept.
    keyring: str = ""
    #: CA bundle the center's TLS certificate must chain to (empty: the system's).
    ca_file: str = ""
    #: This station's client certificate and key for mutual TLS (the center maps the
    #: certificate's subject to a user with the ``station`` role).
    client_cert: str = ""
    client_key: str = ""
    timeout_s: float = Field(15.0, gt=0, le=300)
    #: Who approves this station's deletions: its own people ("station"), or only the
    #: center's ("center": local approvals are refused, E_CENTER_DECIDES). Holds the
    #: center places are carried out either way (retention/center_sync.py).
    retention: Literal["station", "center"] = "station"

    @model_validator(mode="after")
    def _usable(self) -> CenterSettings:
        if not self.url:
            if self.retention == "center":
                raise ValueError('center.retention = "center" needs center.url')
            return self
        if not self.url.startswith(("https://", "http://127.", "http://[::1]",
                                    "http://localhost")):
            raise ValueError(f"center.url: {self.url!r} must be https:// (plain http only "
                             "to a loopback address)")
        if not self.keyring:
            raise ValueError("center.keyring: the center's public keyring is needed to "
                             "check its countersignatures")
        if bool(self.client_cert) != bool(self.client_key):
            raise ValueError("center.client_cert and center.client_key go together")
        return self

    def paths(self, home: Path) -> dict[str, Path]:
        """The files this section names, resolved against the station home."""
        named = {"keyring": self.keyring, "ca_file": self.ca_file,
                 "client_cert": self.client_cert, "client_key": self.client_key}
        return {k: _under(home, v) for k, v in named.items() if v}


class WitnessedStation(_Frozen):
    id: str = Field(pattern=_STATION_ID)
    #: The station's public keyring (``evidock keys export-public --keyring`` at the station).
    keyring: str = Field(min_length=1)
    #: The object-key prefix the station uploads its blobs under (its ``[upload]
    #: key_prefix``), in the bucket of this service's ``[upload]``.
    key_prefix: str = Field("", pattern=r"^[A-Za-z0-9._/-]*$")
    #: The evidock user (role ``station``) that is this station here: only it may hand
    #: in the station's events (they are not signed one by one). Default: the id.
    user: str = Field("", pattern=r"^$|^[A-Za-z0-9._@-]{1,64}$")

    @property
    def user_name(self) -> str:
        return self.user or self.id


class WitnessSettings(_Frozen):
    """The stations whose logs this service witnesses (empty: it witnesses none)."""

    stations: tuple[WitnessedStation, ...] = ()
    #: A station whose last countersigned head is older than this (or that never
    #: pushed) is reported stale by `evidock witness status` (exit 1): the scheduler
    #: pushes hourly, so a day means a station cut off, stopped or hiding something.
    stale_after_hours: float = Field(26.0, gt=0, le=24 * 365)

    @model_validator(mode="after")
    def _unique(self) -> WitnessSettings:
        ids = [s.id for s in self.stations]
        if len(set(ids)) != len(ids):
            raise ValueError("witness.stations: ids must be unique")
        return self

    def station(self, station_id: str) -> WitnessedStation | None:
        return next((s for s in self.stations if s.id == station_id), None)

    def keyring_path(self, home: Path, station_id: str) -> Path | None:
        entry = self.station(station_id)
        return None if entry is None else _under(home, entry.keyring)

    def paths(self, home: Path) -> list[Path]:
        return [_under(home, s.keyring) for s in self.stations]


__all__ = ["CenterSettings", "WitnessSettings", "WitnessedStation"]
