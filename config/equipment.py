"""``[equipment]``: the agency's equipment rules for body-worn cameras."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EquipmentSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Cameras per officer each unit must hold at least (配备比例); officers of a unit
    #: are the ``[[access.users]]`` with the officer role and that unit.
    min_ratio: float = Field(1.0, ge=0)
    #: A camera not docked for this many days is reported idle (`equipment report`).
    idle_days: int = Field(7, gt=0, le=3650)


__all__ = ["EquipmentSettings"]
