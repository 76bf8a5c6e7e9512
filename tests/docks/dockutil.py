"""Helpers for the dock tests: a real daemon process, its JSON event lines, pause hooks.

The daemon (``python -m evidock.cmd_dock run``) writes one JSON object per line on
stderr; a reader thread queues them and tests wait for the one they need with a
deadline (a blocking queue get, never a sleep).
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import blake3
from evidock_testing import migrated_home

from archive.catalog import Catalog
from archive.store import ContentStore
from config import load_settings

REPO = Path(__file__).resolve().parents[2]


def write_dock_toml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


class Hooks:
    """FIFO pause points (ingest/hooks.py) shared with a daemon process."""

    def __init__(self, directory: Path, points: str) -> None:
        self.dir, self.points = directory, points
        directory.mkdir()
        os.mkfifo(directory / "out")
        os.mkfifo(directory / "in")
        # O_RDWR: never blocks and never sees EOF, so waiting is a select with a timeout.
        self._out = os.open(directory / "out", os.O_RDWR | os.O_NONBLOCK)
        # Held open for writing too, so the daemon's open() of "in" never blocks: under
        # libumockdev-preload a blocking open() holds the preload's lock, which would
        # stall every other thread's path calls (an artefact of the preload, not ours).
        self._in = os.open(directory / "in", os.O_RDWR)

    def env(self) -> dict[str, str]:
        return {"EVIDOCK_TEST_HOOKS": str(self.dir), "EVIDOCK_TEST_HOOK_POINTS": self.points}

    def wait_paused(self, timeout: float = 60) -> str:
        ready, _, _ = select.select([self._out], [], [], timeout)
        assert ready, f"no hook point reached within {timeout}s"
        return os.read(self._out, 100).decode().strip()

    def reply(self, word: str) -> None:
        os.write(self._in, (word + "\n").encode())

    def close(self) -> None:
        os.close(self._out)
        os.close(self._in)


class Daemon:
    def __init__(self, *, home: Path, dock_toml: Path, env: Mapping[str, str] | None = None,
                 prefix: Sequence[str] = (), migrate: bool = True) -> None:
        """``prefix``: argv run before python (e.g. setpriv, to run it as an account);
        ``migrate=False``: the home is ready (made by `evidock init`, say)."""
        # systemd starts the daemon after `evidock init`
        self.home = migrated_home(home) if migrate else home
        base = {k: v for k, v in os.environ.items() if not k.startswith("EVIDOCK_")}
        base.update(EVIDOCK_HOME=str(home), EVIDOCK_DOCK_CONFIG=str(dock_toml),
                    PYTHONUNBUFFERED="1", EVIDOCK_INGEST__CHUNK_SIZE="65536")
        base.update(env or {})
        self.events: list[dict[str, Any]] = []
        self._q: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "evidock.cmd_dock", "run"], cwd=REPO, env=base,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").strip()
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                item = {"event": "raw", "line": line}
            self._q.put(item if isinstance(item, dict) else {"event": "raw", "line": line})
        self._q.put(None)

    def wait_for(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 60,
                 ) -> dict[str, Any]:
        for seen in self.events:
            if pred(seen) and not seen.get("_taken"):
                seen["_taken"] = True
                return seen
        deadline = _now() + timeout
        while True:
            left = deadline - _now()
            try:
                item = self._q.get(timeout=max(left, 0.001))
            except queue.Empty:
                os.kill(self.proc.pid, signal.SIGUSR1)  # thread stacks into the output
                raise AssertionError(f"timed out; events so far: {self.events}") from None
            if item is None:
                raise AssertionError(f"daemon exited rc={self.proc.wait()}; events: "
                                     f"{self.events}")
            self.events.append(item)
            if pred(item):
                item["_taken"] = True
                return item

    def wait_event(self, name: str, timeout: float = 60, **match: Any) -> dict[str, Any]:
        return self.wait_for(lambda e: e.get("event") == name and all(
            e.get(k) == v for k, v in match.items()), timeout)

    def ready(self) -> Daemon:
        self.wait_event("ready", timeout=60)
        return self

    def terminate(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.finish(timeout)

    def finish(self, timeout: float = 60) -> int:
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()  # never leave a daemon (and its mounts) behind a failed test
            raise
        self._reader.join(timeout)
        while (item := self._q.get_nowait() if not self._q.empty() else None) is not None:
            self.events.append(item)
        return rc

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == name]


def _now() -> float:
    import time
    return time.monotonic()


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


class Archive:
    """The catalog and store of an EVIDOCK_HOME, for assertions."""

    def __init__(self, home: Path) -> None:
        settings = load_settings(environ={"EVIDOCK_HOME": str(home)})
        self.catalog = Catalog.open(settings.catalog_url)
        self.store = ContentStore(root=settings.store_dir)

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.catalog.close()

    def catalogued(self, serial: str | None = None) -> dict[str, str]:
        return {r.original_display: r.sha256 for r in self.catalog.recordings(device=serial)}

    def check_store(self) -> None:
        """Every catalogued recording's blob is in the store and hashes to its name."""
        for rec in self.catalog.recordings():
            blob = self.store.path_for(rec.blake3)
            assert blob.is_file(), f"catalog names a missing blob: {rec.original_display}"
            assert blake3.blake3(blob.read_bytes()).hexdigest() == rec.blake3

    def wiped(self) -> set[str]:
        return {os.fsdecode(w.relpath) for w in self.catalog.wipes()}

    def sessions(self) -> list[Any]:
        from sqlmodel import Session, select

        from archive.catalog import DockSession
        with Session(self.catalog.engine) as s:
            return list(s.exec(select(DockSession).order_by(
                DockSession.started_at)))  # type: ignore[arg-type]


def check_nothing_lost(home: Path, camera: Path, original: dict[str, str]) -> None:
    """No camera file is gone unless its exact copy is catalogued and its wipe recorded."""
    present = digests(camera) if camera.exists() else {}
    with Archive(home) as a:
        a.check_store()
        catalogued, wiped = a.catalogued(), a.wiped()
    for rel, sha in original.items():
        if rel not in present:
            assert catalogued.get(rel) == sha, f"{rel} wiped before its copy was recorded"
            assert rel in wiped, f"{rel} gone without a wipe record"
        else:
            assert present[rel] == sha, f"{rel} changed on the camera"
