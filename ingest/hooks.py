"""Test-only pause points, so crash tests can SIGKILL a real process at a known moment.

Inactive unless EVIDOCK_TEST_HOOKS names a directory holding two FIFOs, ``out`` and
``in``. At a named point (listed in EVIDOCK_TEST_HOOK_POINTS as ``point`` or
``point:N`` for the N-th time it is reached) the process writes ``point`` to ``out`` and
blocks until a line arrives on ``in``: ``go`` continues, ``eio`` raises an I/O error
there (a camera read failure, injected at the hardware boundary). Each line releases one
paused thread (an offload pauses in two: its copy and its settling thread).
"""

from __future__ import annotations

import errno
from collections import Counter
from collections.abc import Mapping
from pathlib import Path


class Hooks:
    """No-op pause points; the base used in production."""

    def reached(self, point: str) -> None:
        return None


class FifoHooks(Hooks):
    def __init__(self, *, directory: Path, points: Mapping[str, int]) -> None:
        self._dir = directory
        self._points = dict(points)
        self._seen: Counter[str] = Counter()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Hooks:
        directory = env.get("EVIDOCK_TEST_HOOKS")
        if not directory:
            return Hooks()
        points: dict[str, int] = {}
        for item in filter(None, env.get("EVIDOCK_TEST_HOOK_POINTS", "").split(",")):
            name, _, nth = item.partition(":")
            points[name] = int(nth or 1)
        return cls(directory=Path(directory), points=points)

    def reached(self, point: str) -> None:
        self._seen[point] += 1
        if self._points.get(point) != self._seen[point]:
            return
        with open(self._dir / "out", "w", encoding="utf-8") as out:
            out.write(point + "\n")
        reply = ""
        while not reply:  # EOF: another paused thread took the writer's line; wait again
            with open(self._dir / "in", encoding="utf-8") as inp:
                reply = inp.readline()
        if reply.strip() == "eio":
            raise OSError(errno.EIO, f"injected I/O error at {point}")
