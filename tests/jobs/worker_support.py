"""`evidock worker` processes for the tests: started with the station's environment, their
JSON event lines (stderr) read on a thread into a queue, so a test waits for an event
with a deadline (a blocking get, never a sleep)."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from desk_support import offload_and_render
from evidock_testing import REPO, station_on

from evidock.wiring import Services, utc_now

EVENT_TIMEOUT_S = 120.0

#: Short heartbeats so a dead worker is noticed in about three seconds (six missed
#: heartbeats: a live but busy worker is not taken for dead on a loaded machine).
JOBS_TOML = """
[jobs]
queue = "postgres"
heartbeat_s = 0.5
stalled_after_s = 3
stalled_check_s = 0.5
poll_s = 2
"""


@contextmanager
def queued_station(camera: Path, home: Path, *,
                   extra: str = JOBS_TOML) -> Iterator[tuple[Services, dict[str, str]]]:
    """A station on PostgreSQL with the queue (and ``extra``) configured, ``camera``
    (a copy, offloaded) rendered in-process, on the real clock (the workers' own); its
    services and the environment a worker needs to reach it."""
    with station_on("postgresql", home, extra=extra, start=datetime.now(UTC)) as svc:
        svc.clock = utc_now
        svc.keys.init()
        offload_and_render(svc, camera)
        yield svc, {"EVIDOCK_HOME": str(home),
                    "EVIDOCK_PATHS__CATALOG_URL": svc.settings.catalog_url}


class Worker:
    def __init__(self, name: str, env: Mapping[str, str]) -> None:
        self.name = name
        self.lines: list[str] = []
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        full = {**os.environ, **env, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
        full.pop("NOTIFY_SOCKET", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "evidock", "worker", "--name", name],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=full, cwd=REPO, text=True, encoding="utf-8", start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):  # a log line, not an event
                    self._events.put(json.loads(line))
        self._events.put(None)  # EOF: the process is gone

    def wait_event(self, what: str, timeout: float = EVENT_TIMEOUT_S,
                   **match: Any) -> dict[str, Any]:
        """The next event ``what`` whose fields include ``match``; fails at the deadline
        or when the worker exits first (with its output)."""
        while True:
            try:
                event = self._events.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"worker {self.name}: no {what} {match} within "
                                     f"{timeout}s:\n{''.join(self.lines)[-4000:]}") from None
            if event is None:
                raise AssertionError(f"worker {self.name} exited before {what} {match}:\n"
                                     f"{''.join(self.lines)[-4000:]}")
            if event.get("event") == what and all(event.get(k) == v for k, v in match.items()):
                return event

    def ready(self) -> Worker:
        self.wait_event("ready")
        return self

    def terminate(self, timeout: float = 120) -> int:
        """SIGTERM: the worker finishes its running jobs and unregisters."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL of the worker alone (its children live on, as after a crash)."""
        self.proc.kill()
        self.proc.wait(timeout=60)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=60)
        self._reader.join(timeout=60)
