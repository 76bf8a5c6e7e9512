"""Do an MP4's top-level boxes (ISO/IEC 14496-12 §4.2) tile the file to its last byte?

ffprobe reads an MP4 cut short behind its index (moov in front) without complaint, and
counting the packets it can read catches every missing sample but not one cut inside
the last sample. Every top-level box declares its length, so a cut anywhere shows as a
box that runs past the end of the file: a few reads of 16 bytes, whatever the file size.
Only framing is read here; what the boxes hold is ffprobe's business.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

_MAX_BOXES = 1 << 20  # 12 h of 1 s fragments is ~86,400 boxes; a bound, not a limit of use
_HEADER = struct.Struct(">I4s")
_LARGE = struct.Struct(">Q")


def _name(kind: bytes) -> str:
    return kind.decode("latin-1").encode("ascii", "backslashreplace").decode("ascii")


def box_gap(path: Path) -> str | None:
    """Why the top-level boxes do not tile ``path`` exactly, or None if they do.

    Trailing zero bytes are padding (cameras preallocate files), not a cut: a box header
    of size 0 means "to the end of the file" anyway.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        return _walk(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def _walk(fd: int, size: int) -> str | None:
    pos = 0
    for _ in range(_MAX_BOXES):
        if pos == size:
            return None
        head = os.pread(fd, 16, pos)
        if len(head) < _HEADER.size:
            return _stray(fd, pos, size)
        length, kind = _HEADER.unpack_from(head)
        if length == 0:  # the last box: to the end of the file
            return None
        if length == 1:
            if len(head) < 16:
                return _stray(fd, pos, size)
            length, least = _LARGE.unpack_from(head, 8)[0], 16
        else:
            least = 8
        if length < least:
            return f"box '{_name(kind)}' at offset {pos} declares an impossible {length} bytes"
        if pos + length > size:
            return (f"box '{_name(kind)}' at offset {pos} declares {length} bytes, the file "
                    f"ends {size - pos} bytes into it (cut short)")
        pos += length
    return None  # more boxes than any camera writes: judged by the packet count alone


def _stray(fd: int, pos: int, size: int) -> str | None:
    tail = os.pread(fd, size - pos, pos)
    if not tail.strip(b"\0"):
        return None
    return f"{size - pos} bytes after the last whole box at offset {pos}: a box header cut short"
