"""Where footage comes from, behind one interface: a Source reports cameras docking and
leaving; the daemon decides what to do with them.

- ``UdevSource``: USB mass storage (and USB serial control lines) from a pyudev netlink
  monitor. Devices present at start are reported too (coldplug), so a daemon restarted
  after a crash resumes the cameras still docked.
- ``docks.folders.FolderSource``: a watched folder per bay (auto-mounted cameras or
  network shares).
- later: a network drop.

Stopping never waits on a sleep: the udev thread blocks in a selector on the monitor's
socket and a self-pipe, and ``stop()`` writes one byte to the pipe.
"""

from __future__ import annotations

import logging
import os
import selectors
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from docks.registry import is_usb_control, is_usb_volume

log = logging.getLogger("evidock.dock")


@dataclass(frozen=True)
class Docked:
    key: str  # udev sys path or the camera folder
    kind: str  # "block" | "tty" | "folder"
    props: Mapping[str, str]


@dataclass(frozen=True)
class Undocked:
    key: str
    kind: str
    props: Mapping[str, str]


SourceEvent = Docked | Undocked
Sink = Callable[[SourceEvent], None]


class Source(Protocol):
    name: str

    def start(self, sink: Sink) -> None: ...

    def stop(self) -> None: ...


def _relevant(props: Mapping[str, str]) -> str | None:
    if is_usb_volume(props):
        return "block"
    if is_usb_control(props):
        return "tty"
    return None


class UdevSource:
    name = "udev"

    def __init__(self, *, subsystems: tuple[str, ...] = ("block", "tty")) -> None:
        self.subsystems = subsystems
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = -1, -1
        self._monitor: Any = None

    def start(self, sink: Sink) -> None:
        import pyudev

        context = pyudev.Context()
        self._monitor = pyudev.Monitor.from_netlink(context, source="udev")
        for subsystem in self.subsystems:
            self._monitor.filter_by(subsystem)
        self._monitor.start()  # listening before the coldplug scan: no event falls between
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._thread = threading.Thread(target=self._loop, args=(sink,), name="udev",
                                        daemon=True)
        for subsystem in self.subsystems:
            for device in context.list_devices(subsystem=subsystem):
                self._deliver(sink, "add", device)
        self._thread.start()

    def _deliver(self, sink: Sink, action: str, device: Any) -> None:
        props = {str(k): str(v) for k, v in device.properties.items()}
        props.setdefault("SUBSYSTEM", device.subsystem or "")
        kind = _relevant(props)
        if action == "remove":
            sink(Undocked(device.sys_path, kind or props["SUBSYSTEM"], props))
        elif action in ("add", "change") and kind is not None:
            sink(Docked(device.sys_path, kind, props))
        elif action == "add" and props.get("ID_BUS") == "usb":
            log.info("ignored USB %s device %s: no filesystem", props["SUBSYSTEM"],
                     device.sys_path)

    def _loop(self, sink: Sink) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self._monitor.fileno(), selectors.EVENT_READ, "udev")
            sel.register(self._wake_r, selectors.EVENT_READ, "stop")
            while True:
                ready = {key.data for key, _ in sel.select()}
                if "stop" in ready:
                    return
                while (device := self._monitor.poll(timeout=0)) is not None:
                    try:
                        self._deliver(sink, device.action or "", device)
                    except Exception:  # one bad event must not end the monitor
                        log.exception("udev event for %s failed", device.sys_path)

    def stop(self) -> None:
        if self._thread is None:
            return
        os.write(self._wake_w, b"x")
        self._thread.join()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        self._thread = None
