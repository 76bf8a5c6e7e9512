"""Settings for people and case records: ``[access]``, ``[cases]``, ``[exports]``,
``[coverage]``. Parsed once here; the permission logic lives in retention/permissions.py."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from config.dock import check_regex


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ROLES = ("officer", "clerk", "inspector", "legal_reviewer", "supervisor", "admin", "station")
Role = Literal["officer", "clerk", "inspector", "legal_reviewer", "supervisor", "admin",
               "station"]
#: Sensitivity labels, least to most restricted. "none" needs no clearance.
SENSITIVITIES = ("none", "个人隐私", "商业秘密", "国家秘密")
Sensitivity = Literal["none", "个人隐私", "商业秘密", "国家秘密"]
_USER_NAME = r"^[A-Za-z0-9._@-]{1,64}$"


class UserEntry(_Frozen):
    """One evidock user: who they are, which OS accounts are them, what they may do."""

    name: str = Field(pattern=_USER_NAME)
    display: str = ""
    os_users: tuple[str, ...] = ()
    roles: tuple[Role, ...] = Field(min_length=1)
    units: tuple[str, ...] = ()  # empty: every unit
    clearances: tuple[Sensitivity, ...] = ()  # labels beyond "none" this user may see
    police_number: str | None = None
    #: Client-certificate subjects (mutual TLS, ``[service] tls_client_ca``) that are this
    #: user, as RFC 4514 strings: ``openssl x509 -noout -subject -nameopt RFC2253``.
    cert_subjects: tuple[str, ...] = ()


class AccessSettings(_Frozen):
    users: tuple[UserEntry, ...] = ()
    # Role → permissions, replacing the built-in map of a role when given.
    roles: dict[Role, tuple[str, ...]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique(self) -> AccessSettings:
        names = [u.name for u in self.users]
        if len(set(names)) != len(names):
            raise ValueError("access.users: names must be unique")
        accounts = [a for u in self.users for a in u.os_users]
        if len(set(accounts)) != len(accounts):
            raise ValueError("access.users: an OS account may map to only one user")
        subjects = [c for u in self.users for c in u.cert_subjects]
        if len(set(subjects)) != len(subjects):
            raise ValueError("access.users: a certificate subject may map to only one user")
        return self


class CaseSettings(_Frozen):
    """How the agency writes case numbers, and its case types, stages and units."""

    # A case number must fully match one of these (Unicode, e.g. 邵城管罚〔2019〕第001号).
    number_patterns: tuple[str, ...] = Field(min_length=1)
    types: tuple[str, ...] = Field(min_length=1)
    stages: tuple[str, ...] = Field(min_length=1)
    units: tuple[str, ...] = ()  # empty: any unit name

    @field_validator("number_patterns")
    @classmethod
    def _compiles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_regex(p) for p in value)

    def number_ok(self, number: str) -> bool:
        return any(re.fullmatch(p, number) for p in self.number_patterns)


class ExportSettings(_Frozen):
    """未经批准不得擅自对外提供: exports leave only on an approved request."""

    purposes: tuple[str, ...] = Field(min_length=1)
    #: Purposes that make footage public (技术处理后公开): such a request may take only
    #: an approved redacted derivative (records/redactions.py), never the footage.
    public_purposes: tuple[str, ...] = ("信息公开",)
    approval_valid_h: float = Field(72, gt=0, le=24 * 365)
    #: Content credentials (C2PA) on each export's exact-range clip (records/c2pa_sign.py),
    #: beside the station's signature: a PEM chain (leaf with an EKU, then its CAs) and
    #: the leaf's PEM key (0600), relative paths from the station home.
    c2pa: bool = False
    c2pa_cert: str | None = None
    c2pa_key: str | None = None

    @model_validator(mode="after")
    def _c2pa_files(self) -> ExportSettings:
        if self.c2pa and not (self.c2pa_cert and self.c2pa_key):
            raise ValueError("exports.c2pa: needs c2pa_cert (PEM chain) and c2pa_key")
        return self

    def c2pa_paths(self, home: Path) -> tuple[Path, Path] | None:
        """(chain, key) when C2PA is on, else None."""
        if not self.c2pa or not self.c2pa_cert or not self.c2pa_key:
            return None
        cert, key = Path(self.c2pa_cert), Path(self.c2pa_key)
        return (cert if cert.is_absolute() else home / cert,
                key if key.is_absolute() else home / key)


#: 记录方式: what kind of footage covers a stage. "any": 根据实际情况 (video, audio or photo).
RecordingMode = Literal["video", "audio", "photo", "any"]


class CoverageRequirement(_Frozen):
    """Which stages of which case types must have audio-video recording, and how."""

    stage: str = Field(min_length=1)
    case_types: tuple[str, ...] = ()  # empty: every case type
    full_process: bool = False  # 全过程音像记录: the whole stage, without gaps
    # None: "video" for a full-process stage (only video can fill its time), else "any".
    mode: RecordingMode | None = None

    @property
    def recording_mode(self) -> RecordingMode:
        if self.mode is not None:
            return self.mode
        return "video" if self.full_process else "any"

    @model_validator(mode="after")
    def _fills_time(self) -> CoverageRequirement:
        if self.full_process and self.mode == "photo":
            raise ValueError(f"coverage.requirements {self.stage}: a photo cannot record a "
                             "full process; use mode video or audio")
        return self


class CoverageSettings(_Frozen):
    requirements: tuple[CoverageRequirement, ...] = ()
    # Footage offloaded later than this after it was recorded counts as late.
    offload_deadline_h: float = Field(24, gt=0)
    # Holes shorter than this inside a full-process stage are not reported as gaps.
    gap_tolerance_s: float = Field(5, ge=0)


__all__ = ["ROLES", "SENSITIVITIES", "AccessSettings", "CaseSettings", "CoverageRequirement",
           "CoverageSettings", "ExportSettings", "RecordingMode", "Role", "Sensitivity",
           "UserEntry"]
