"""Opening a file a person names (a document to attach), as that file and nothing else."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from integrity.errors import InvalidRequest, NotFound


def open_regular(path: Path) -> int:
    """An fd on ``path`` itself: never through a symlink, never a FIFO or device."""
    try:
        # O_NONBLOCK: opening a FIFO must not hang; it is refused below anyway.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(f"no file {path}", path=str(path)) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InvalidRequest(f"{path} is a symbolic link; attach the file itself",
                                 path=str(path)) from None
        raise InvalidRequest(f"cannot open {path}: {exc.strerror}", path=str(path)) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InvalidRequest(f"{path} is not a regular file", path=str(path))
    return fd
