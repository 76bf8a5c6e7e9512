"""An offload held at FIFO hook points inside a real `evidock serve` (the crash and
settling tests): the service, the clerk's ingest against it, and the points reached."""

from __future__ import annotations

import json
import os
import pwd
import select
import subprocess
import sys
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path

from evidock_testing import REPO
from service_support import serving


def popen_as(user: str, argv: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[str]:
    """As service_support.run_as, but started in the background."""
    pw = pwd.getpwnam(user)
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
            "HOME": "/nonexistent", "PYTHONPATH": str(REPO)}
    return subprocess.Popen(list(argv), env={**base, **env}, cwd="/", text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])


class Held:
    """`evidock serve` with FIFO hook points (ingest/hooks.py), and a clerk's `evidock
    ingest CAMERA *args` running against it."""

    def __init__(self, stack: ExitStack, tmp: Path, camera: Path, home: Path, points: str,
                 *, wipe: bool, args: Sequence[str], env: dict[str, str] | None = None,
                 ) -> None:
        self.dir = tmp / "hooks"
        self.dir.mkdir()
        os.mkfifo(self.dir / "out")
        os.mkfifo(self.dir / "in")
        self._out = os.open(self.dir / "out", os.O_RDWR | os.O_NONBLOCK)
        stack.callback(os.close, self._out)
        self._said: list[str] = []
        self.service = stack.enter_context(serving(home, env={
            "EVIDOCK_TEST_HOOKS": str(self.dir), "EVIDOCK_TEST_HOOK_POINTS": points,
            **(env or {})}))
        argv = [sys.executable, "-m", "evidock", "ingest", str(camera), *args]
        self.client = popen_as("evt-clerk", argv + (["--wipe-after-verify"] if wipe else []),
                               {"EVIDOCK_SOCKET": str(self.service.socket)})
        stack.callback(self._abandon)  # runs before the service is stopped

    def _abandon(self) -> None:
        if self.client.poll() is None:  # a failed test left the service held: kill it
            self.service.kill()
            self.client.communicate(timeout=60)

    def wait(self) -> str:
        """The next hook point a thread of the offload is held at."""
        while not self._said:
            if not select.select([self._out], [], [], 120)[0]:
                self.service.kill()
                out, err = self.client.communicate(timeout=60)
                raise AssertionError(f"no hook reached: rc={self.client.returncode} "
                                     f"{out[-2000:]!r} {err[-2000:]!r}")
            self._said += os.read(self._out, 4096).decode().split()
        return self._said.pop(0)

    def reply(self, word: str) -> None:
        with open(self.dir / "in", "w", encoding="utf-8") as fh:
            fh.write(word + "\n")

    def kill(self) -> dict:
        """SIGKILL the service; the waiting client learns it is gone (exit 2)."""
        self.service.kill()
        out, _ = self.client.communicate(timeout=60)
        assert self.client.returncode == 2, out
        return json.loads(out)

    def result(self) -> tuple[int, dict]:
        out, err = self.client.communicate(timeout=120)
        assert out, err
        return self.client.returncode, json.loads(out)
