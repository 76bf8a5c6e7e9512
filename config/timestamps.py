"""Trusted-timestamp settings (config section ``[timestamps]``): which RFC 3161
time-stamping authorities to ask, and which roots their tokens must chain to.

Imported by config/settings.py, so it defines its own frozen base (see config/scheduler.py).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimestampSettings(_Frozen):
    """No URL: stamping is off and nothing is queued-for-nothing reported as an error;
    items still queue, so tokens can be fetched once a TSA is configured."""

    #: Asked in order; the first valid token wins (a LAN station may list none).
    tsa_urls: tuple[str, ...] = ()
    #: PEM files of the TSA roots a token must chain to (relative: to the station home).
    tsa_roots: tuple[str, ...] = ()
    #: Per request, connect + answer.
    timeout_s: float = Field(10.0, gt=0, le=300)
    #: Items sent per run of the ``timestamps`` job (oldest first).
    per_run: int = Field(200, ge=1, le=100_000)

    @model_validator(mode="after")
    def _usable(self) -> TimestampSettings:
        for url in self.tsa_urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"timestamps.tsa_urls: {url!r} is not an http(s) URL")
        if self.tsa_urls and not self.tsa_roots:
            raise ValueError("timestamps.tsa_roots: a TSA needs at least one root to "
                             "check its tokens against")
        return self

    def root_paths(self, home: Path) -> tuple[Path, ...]:
        return tuple(p if p.is_absolute() else home / p for p in map(Path, self.tsa_roots))
