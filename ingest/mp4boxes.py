"""Do an MP4's top-level boxes (ISO/IEC 14496-12 §4.2) tile the file to its last byte?

ffprobe reads an MP4 cut short behind its index (moov in front) without complaint. But
every top-level box declares its length, so a cut anywhere (behind the index, at a packet
boundary, inside the last packet, inside a fragment) shows as a box that runs past the
end of the file: a few reads of 16 bytes, whatever the file size, where a demux reads
every packet. Only a box of length 0 ("to the end of the file") hides a cut: the walk
says so (``sized=False``) and the caller reads the packets instead. Only framing is read
here; what the boxes hold is ffprobe's business.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

_MAX_BOXES = 1 << 20  # 12 h of 1 s fragments is ~86,400 boxes; a bound, not a limit of use
_HEADER = struct.Struct(">I4s")
_LARGE = struct.Struct(">Q")


def _is_type(kind: bytes) -> bool:
    """A four-character code as box types are (printable ASCII, or © as in udta)."""
    return all(0x20 <= b < 0x7F or b == 0xA9 for b in kind)


def _name(kind: bytes) -> str:
    return kind.decode("latin-1").encode("ascii", "backslashreplace").decode("ascii")


@dataclass(frozen=True)
class Framing:
    """What the walk found: why the boxes do not tile the file (None: they do), and
    whether every box declared its length, so that a cut would have shown as a gap."""

    gap: str | None
    sized: bool


def walk_boxes(path: Path) -> Framing:
    """Walk ``path``'s top-level boxes without following a link.

    Trailing zero bytes are padding (cameras preallocate files), and bytes after the last
    box that do not start like a box (no four-character type) are data a camera appended:
    neither is a cut.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        return _walk(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def _walk(fd: int, size: int) -> Framing:
    pos = 0
    for _ in range(_MAX_BOXES):
        if pos == size:
            return Framing(None, sized=True)
        head = os.pread(fd, 16, pos)
        if len(head) < _HEADER.size:
            return Framing(_stray(fd, pos, size), sized=True)
        length, kind = _HEADER.unpack_from(head)
        if pos and not _is_type(kind):  # not a box: data a camera appended, not a cut
            return Framing(None, sized=True)
        if length == 0:  # the last box: to the end of the file, so no cut can show
            return Framing(None, sized=False)
        if length == 1:
            if len(head) < 16:
                return Framing(_stray(fd, pos, size), sized=True)
            length, least = _LARGE.unpack_from(head, 8)[0], 16
        else:
            least = 8
        if length < least:
            return Framing(f"box '{_name(kind)}' at offset {pos} declares an impossible "
                           f"{length} bytes", sized=True)
        if pos + length > size:
            return Framing(f"box '{_name(kind)}' at offset {pos} declares {length} bytes, "
                           f"the file ends {size - pos} bytes into it (cut short)", sized=True)
        pos += length
    return Framing(None, sized=False)  # more boxes than any camera writes: not judged here


def _stray(fd: int, pos: int, size: int) -> str | None:
    tail = os.pread(fd, size - pos, pos)
    if not tail.strip(b"\0"):
        return None
    return f"{size - pos} bytes after the last whole box at offset {pos}: a box header cut short"
