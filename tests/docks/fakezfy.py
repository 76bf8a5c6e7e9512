"""A fake vendor-command camera (docks.zfy framing) on the master side of a real pty.

Fake only at the hardware boundary: the driver under test opens the pty's slave path
exactly as it would open /dev/ttyACM0.
"""

from __future__ import annotations

import os
import threading
import time
import tty
from datetime import datetime, timedelta
from pathlib import Path

from docks.zfy import (
    BAD_PASSWORD,
    GET_ID_CODE,
    GET_TIME,
    GET_ZFY_INFO,
    LOCKED,
    OK,
    READ_BATTERY,
    SET_MSDC,
    SYNC_TIME,
    TIME_FORMAT,
    decode_frame,
    encode_frame,
    pack_info,
)


class FakeCamera:
    """A camera's vendor endpoint on the master side of a real pty."""

    def __init__(self, *, password: bytes, clock: datetime, name: str = "张三",
                 serial: str = "ZFY0001", battery: int | bytes | None = 37,
                 ticking: bool = False) -> None:
        """``battery``: the percent it reports, raw reply bytes (a garbled reply), or
        None for firmware without the command (it answers "unknown command").
        ``ticking``: the clock runs from ``clock`` as a real one does (else it stays put,
        for exact answers); a test that measures drift against the station's clock needs
        it, or a slow machine shows the seconds it took as drift."""
        self.master, self._slave = os.openpty()  # the slave stays open: else reads get EIO
        tty.setraw(self._slave)
        self.port = Path(os.ttyname(self._slave))
        self.password, self.clock, self.name, self.serial = password, clock, name, serial
        self._since = time.monotonic() if ticking else None
        self.unlocked, self.synced = False, None
        self.battery = bytes([battery]) if isinstance(battery, int) else battery
        self.silent: set[int] = set()  # commands it never answers (a hung camera)
        self.pulled_at: set[int] = set()  # commands during which it is unplugged
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def now(self) -> datetime:
        if self._since is None:
            return self.clock
        return self.clock + timedelta(seconds=time.monotonic() - self._since)

    def _answer(self, cmd: int, payload: bytes) -> bytes:
        if cmd == GET_ID_CODE:
            return bytes([OK]) + self.serial.encode()
        if cmd == SET_MSDC:
            self.unlocked = payload == self.password
            return bytes([OK if self.unlocked else BAD_PASSWORD])
        if not self.unlocked:
            return bytes([LOCKED])
        if cmd == GET_ZFY_INFO:
            return bytes([OK]) + pack_info(self.serial, "123456", self.name, "110105000000",
                                           "朝阳分局")
        if cmd == GET_TIME:
            return bytes([OK]) + self.now().strftime(TIME_FORMAT).encode()
        if cmd == SYNC_TIME:
            self.synced = payload.decode()
            return bytes([OK])
        if cmd == READ_BATTERY and self.battery is not None:
            return bytes([OK]) + self.battery
        return bytes([3])

    def _serve(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                return  # the driver side closed
            buf += chunk
            while True:
                frame, buf = decode_frame(buf)
                if frame is None:
                    break
                if frame.cmd in self.pulled_at:
                    os.close(self.master)  # the line is gone: the driver reads EIO
                    return
                if frame.cmd in self.silent:
                    continue
                reply = self._answer(frame.cmd, frame.payload)
                os.write(self.master, encode_frame(frame.cmd | 0x80, reply))
