"""Failed logins per account and per client address, in a sliding minute.

Every attempt counts when it starts (so parallel guesses cannot slip past the limit
together) and is taken back when it succeeds. With ``limit`` counted attempts in the
last ``window_s`` under any of its keys, an attempt is refused without checking the
password. The first refusal of a lockout is reported (audited); later ones in the same
lockout are only counted and the count goes with the next report, so a flood of guesses
cannot flood the audit log, whose appends every ingest waits for.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: Above this many keys, forget those with nothing in the window (bounded memory).
_PRUNE_AT = 10_000


@dataclass(frozen=True, slots=True)
class Verdict:
    #: 0: go ahead (the attempt is counted); else seconds until one is allowed
    wait_s: float
    #: the first refusal of this lockout: audit it
    report: bool = False
    #: refusals not audited since the last report of these keys
    unreported: int = 0

    @property
    def allowed(self) -> bool:
        return self.wait_s <= 0


class LoginThrottle:
    def __init__(self, *, limit: int, window_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self._hits: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}
        self._quiet: dict[str, int] = {}
        self._lock = threading.Lock()

    def attempt(self, keys: Sequence[str]) -> Verdict:
        """Count one attempt under every key, or refuse it."""
        with self._lock:
            now = self.clock()
            self._prune(now)
            waits = {k: self._wait(k, now) for k in keys}
            wait = max(waits.values())
            if wait <= 0:
                for k in keys:
                    self._hits.setdefault(k, deque()).append(now)
                return Verdict(wait_s=0.0, unreported=self._take_quiet(keys))
            locked = [k for k, w in waits.items() if w > 0]
            if any(self._locked_until.get(k, 0.0) <= now for k in locked):
                for k in locked:  # a new lockout of one of them: report it once
                    self._locked_until[k] = now + waits[k]
                return Verdict(wait_s=wait, report=True, unreported=self._take_quiet(keys))
            for k in keys:
                self._quiet[k] = self._quiet.get(k, 0) + 1
            return Verdict(wait_s=wait)

    def succeeded(self, keys: Sequence[str]) -> None:
        """Take back the attempt :meth:`attempt` counted: a right password is no failure."""
        with self._lock:
            for k in keys:
                hits = self._hits.get(k)
                if hits:
                    hits.pop()

    def _wait(self, key: str, now: float) -> float:
        hits = self._hits.get(key)
        if hits is None:
            return 0.0
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        if not hits:
            del self._hits[key]
            return 0.0
        if len(hits) < self.limit:
            return 0.0
        return hits[len(hits) - self.limit] + self.window_s - now

    def _take_quiet(self, keys: Sequence[str]) -> int:
        return max(self._quiet.pop(k, 0) for k in keys)

    def _prune(self, now: float) -> None:
        if len(self._hits) + len(self._locked_until) <= _PRUNE_AT:
            return
        for k in [k for k, h in self._hits.items() if not h or h[-1] <= now - self.window_s]:
            del self._hits[k]
        for k in [k for k, t in self._locked_until.items() if t <= now]:
            del self._locked_until[k]
        for k in [k for k in self._quiet if k not in self._locked_until]:
            del self._quiet[k]


__all__ = ["LoginThrottle", "Verdict"]
