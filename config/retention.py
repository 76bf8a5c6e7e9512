"""Retention settings (config section ``[retention]``), validated against the legal floor.

Imported by config/settings.py, so it defines its own frozen base instead of importing
``_Frozen`` from there (that would be an import cycle).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# The law keeps footage at least 6 months. No 6 calendar months are longer than 184 days
# (the longest is July-December: 31+31+30+31+30+31), so a day count at or above 184 can
# never delete early, whatever month the footage was recorded in.
LEGAL_FLOOR_DAYS = 184

#: Longest configurable period (about 100 years); beyond that use "permanent". Keeps date
#: arithmetic far from datetime's year-9999 limit.
MAX_DAYS = 36_600

Period = int | Literal["permanent"]

DEFAULT_CASE_TYPES: dict[str, Period] = {
    "行政处罚": 3650,
    "行政强制": 3650,
    "行政检查": 1095,
    "行政许可": 1095,
    "行政征收征用": 3650,
}

DEFAULT_PERMANENT_MARKS: tuple[str, ...] = ("作为证据使用", "妨碍执法", "重大突发事件", "重大案件")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_name(field: str, name: str) -> None:
    if not name.strip() or name != name.strip():
        raise ValueError(f"retention.{field}: name {name!r} is empty or has surrounding spaces")


def _check_periods(field: str, periods: dict[str, Period], minimum: int) -> None:
    for name, period in periods.items():
        _check_name(field, name)
        if period == "permanent":
            continue
        if isinstance(period, bool) or not minimum <= period <= MAX_DAYS:
            raise ValueError(
                f"retention.{field}[{name!r}] = {period!r}: must be 'permanent' or between "
                f"legal_minimum_days ({minimum}) and {MAX_DAYS} days"
            )


class RetentionSettings(_Frozen):
    """How long recordings are kept. Every day count is at least ``legal_minimum_days``."""

    legal_minimum_days: int = LEGAL_FLOOR_DAYS
    base_days: int = LEGAL_FLOOR_DAYS
    categories: dict[str, Period] = Field(default_factory=dict)
    case_types: dict[str, Period] = Field(default_factory=lambda: dict(DEFAULT_CASE_TYPES))
    permanent_marks: tuple[str, ...] = DEFAULT_PERMANENT_MARKS
    grace_days: int = Field(default=7, ge=0, le=365)
    require_second_approval: bool = True

    @field_validator("legal_minimum_days")
    @classmethod
    def _not_below_floor(cls, value: int) -> int:
        if not LEGAL_FLOOR_DAYS <= value <= MAX_DAYS:
            raise ValueError(
                f"retention.legal_minimum_days = {value}: the legal floor is "
                f"{LEGAL_FLOOR_DAYS} days (6 months); must be between {LEGAL_FLOOR_DAYS} "
                f"and {MAX_DAYS}"
            )
        return value

    @field_validator("permanent_marks")
    @classmethod
    def _marks_named(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for mark in value:
            _check_name("permanent_marks", mark)
        return value

    @model_validator(mode="after")
    def _periods_above_minimum(self) -> RetentionSettings:
        minimum = self.legal_minimum_days
        if not minimum <= self.base_days <= MAX_DAYS:
            raise ValueError(
                f"retention.base_days = {self.base_days}: must be between "
                f"legal_minimum_days ({minimum}) and {MAX_DAYS}"
            )
        _check_periods("categories", self.categories, minimum)
        _check_periods("case_types", self.case_types, minimum)
        return self
