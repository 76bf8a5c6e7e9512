"""A vendor-command driver for 执法记录仪 that unlock mass storage with a password.

The public-security SDK exposes ``GetIDCode``, ``SetMSDC(pwd)``, ``GetZFYInfo``,
``SyncDevTime``, ``ReadDeviceBatteryDumpEnergy``; vendors carry them over a USB serial
(CDC-ACM) or HID endpoint in their own framing. This module speaks one documented
framing of those calls over any byte stream (a tty here); a different vendor framing is
a different driver.

Frame (both directions)::

    0x5A 0xA5 | cmd (1) | length N (2, big-endian) | payload (N) | sum (1)

``sum`` is the low byte of the sum of the cmd, length and payload bytes. A reply carries
``cmd | 0x80`` and a payload whose first byte is a status (0 ok, 1 bad password, 2 locked:
log in first, 3 unknown command) followed by the data.

| cmd | call | request payload | reply data |
|---|---|---|---|
| 0x01 | GetIDCode | — | product serial, 7 ASCII bytes |
| 0x02 | SetMSDC | password, 6 bytes (GBK) | — (the camera then re-enumerates as a disk) |
| 0x03 | GetZFYInfo | — | ZFY_INFO (below) |
| 0x04 | GetDevTime | — | camera local time, 14 ASCII ``YYYYmmddHHMMSS`` |
| 0x05 | SyncDevTime | local time, 14 ASCII | — |
| 0x06 | ReadDeviceBatteryDumpEnergy | — | remaining battery, 1 byte, percent 0-100 |

ZFY_INFO: product serial 7, police number 6, name 32, unit id 12, unit name 32 bytes;
GBK text, NUL-padded. GetZFYInfo, the clock and the battery calls answer only after a
successful SetMSDC (status 2 before). A battery reply that is not one byte of 0-100 is a
DriverError; the dock reads it as "not reported" (docks.drivers.battery_percent).
"""

from __future__ import annotations

import os
import select
import struct
import termios
import tty
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path

from docks.drivers import CameraIdentity
from integrity.codes import Code
from integrity.errors import EvidockError

MAGIC = b"\x5a\xa5"
GET_ID_CODE, SET_MSDC, GET_ZFY_INFO, GET_TIME, SYNC_TIME = 0x01, 0x02, 0x03, 0x04, 0x05
READ_BATTERY = 0x06
OK, BAD_PASSWORD, LOCKED, UNKNOWN = 0, 1, 2, 3
INFO_FIELDS = (("serial", 7), ("officer", 6), ("name", 32), ("unit_id", 12), ("unit_name", 32))
INFO_SIZE = sum(n for _, n in INFO_FIELDS)
TIME_FORMAT = "%Y%m%d%H%M%S"
MAX_PAYLOAD = 4096


class DriverError(EvidockError):
    code = Code.E_DRIVER


def checksum(body: bytes) -> int:
    return sum(body) & 0xFF


def encode_frame(cmd: int, payload: bytes = b"") -> bytes:
    body = struct.pack(">BH", cmd, len(payload)) + payload
    return MAGIC + body + bytes([checksum(body)])


@dataclass(frozen=True)
class Frame:
    cmd: int
    payload: bytes


def decode_frame(data: bytes) -> tuple[Frame | None, bytes]:
    """One frame from the front of ``data`` (None if incomplete) and the rest."""
    start = data.find(MAGIC)
    if start < 0:
        return None, data[-1:]  # keep a possible half magic
    data = data[start:]
    if len(data) < 5:
        return None, data
    cmd, length = struct.unpack(">BH", data[2:5])
    if length > MAX_PAYLOAD:
        raise DriverError(f"frame length {length} exceeds {MAX_PAYLOAD}", length=length)
    end = 5 + length + 1
    if len(data) < end:
        return None, data
    if checksum(data[2:end - 1]) != data[end - 1]:
        raise DriverError("frame checksum mismatch", cmd=cmd)
    return Frame(cmd, data[5:end - 1]), data[end:]


def pack_info(serial: str, officer: str, name: str, unit_id: str, unit_name: str) -> bytes:
    values = (serial, officer, name, unit_id, unit_name)
    out = b""
    for (field, size), value in zip(INFO_FIELDS, values, strict=True):
        raw = value.encode("gbk")
        if len(raw) > size:
            raise ValueError(f"{field} longer than {size} bytes in GBK")
        out += raw.ljust(size, b"\0")
    return out


def unpack_info(data: bytes) -> dict[str, str]:
    if len(data) != INFO_SIZE:
        raise DriverError(f"ZFY_INFO is {len(data)} bytes, expected {INFO_SIZE}")
    out, pos = {}, 0
    for field, size in INFO_FIELDS:
        out[field] = data[pos:pos + size].split(b"\0", 1)[0].decode("gbk", "replace").strip()
        pos += size
    return out


class ZfyDriver:
    """Talks to one camera over an open byte stream (fd), with a timeout per reply."""

    name = "zfy-serial"

    def __init__(self, *, fd: int, password: str, zone: tzinfo, timeout_s: float) -> None:
        self._fd, self._zone, self._timeout = fd, zone, timeout_s
        self._password = password.encode("gbk")
        self._buf = b""
        self._unlocked = False

    @classmethod
    def open(cls, port: Path, *, password: str, zone: tzinfo, timeout_s: float) -> ZfyDriver:
        try:
            fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as exc:
            raise DriverError(f"cannot open control port {port}: {exc.strerror}",
                              port=str(port)) from exc
        if os.isatty(fd):
            tty.setraw(fd, termios.TCSANOW)
        return cls(fd=fd, password=password, zone=zone, timeout_s=timeout_s)

    def close(self) -> None:
        os.close(self._fd)

    def call(self, cmd: int, payload: bytes = b"") -> bytes:
        """Send one command; return the reply's data, or raise on a bad status."""
        os.write(self._fd, encode_frame(cmd, payload))
        frame = self._read_frame()
        if frame.cmd != cmd | 0x80 or not frame.payload:
            raise DriverError(f"unexpected reply 0x{frame.cmd:02x} to 0x{cmd:02x}", cmd=cmd)
        status, data = frame.payload[0], frame.payload[1:]
        if status != OK:
            what = {BAD_PASSWORD: "wrong password", LOCKED: "camera locked (log in first)",
                    UNKNOWN: "unknown command"}.get(status, f"status {status}")
            raise DriverError(f"camera refused 0x{cmd:02x}: {what}", cmd=cmd, status=status)
        return data

    def _read_frame(self) -> Frame:
        while True:
            frame, self._buf = decode_frame(self._buf)
            if frame is not None:
                return frame
            ready, _, _ = select.select([self._fd], [], [], self._timeout)
            if not ready:
                raise DriverError(f"camera did not answer within {self._timeout:g}s")
            chunk = os.read(self._fd, 4096)
            if not chunk:
                raise DriverError("camera control port closed")
            self._buf += chunk

    def unlock(self) -> None:
        self.call(SET_MSDC, self._password)
        self._unlocked = True

    def identify(self) -> CameraIdentity:
        code = self.call(GET_ID_CODE).decode("ascii", "replace").strip("\0 ")
        if not self._unlocked:
            return CameraIdentity(serial=code)
        info = unpack_info(self.call(GET_ZFY_INFO))
        if info["serial"] and info["serial"] != code:
            raise DriverError(f"camera says serial {info['serial']} but ID code {code}")
        return CameraIdentity(serial=code, officer=info["officer"] or None,
                              officer_name=info["name"] or None,
                              unit_id=info["unit_id"] or None,
                              unit_name=info["unit_name"] or None)

    def read_clock(self) -> datetime | None:
        text = self.call(GET_TIME).decode("ascii", "replace")
        try:
            return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=self._zone)
        except ValueError as exc:
            raise DriverError(f"camera clock unreadable: {text!r}") from exc

    def sync_clock(self, now: datetime) -> None:
        self.call(SYNC_TIME, now.astimezone(self._zone).strftime(TIME_FORMAT).encode("ascii"))

    def read_battery(self) -> int | None:
        data = self.call(READ_BATTERY)
        if len(data) != 1 or data[0] > 100:
            raise DriverError(f"camera battery reply unreadable: {data.hex()!r}",
                              reply=data.hex())
        return data[0]
