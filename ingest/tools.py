"""Running external tools (ffmpeg, ffprobe): argv lists with timeouts, never a shell."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from integrity.errors import MediaError, ToolMissing


@dataclass(frozen=True)
class ToolResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    def stderr_line(self) -> str:
        """The most telling stderr line (the last non-empty one), for one-line reasons."""
        lines = [ln.strip() for ln in self.stderr.decode("utf-8", "replace").splitlines()]
        lines = [ln for ln in lines if ln]
        return lines[-1] if lines else f"exit status {self.returncode}"


def run_tool(argv: Sequence[str], *, timeout: float) -> ToolResult:
    """Run ``argv``; a timeout kills the process and raises MediaError."""
    argv = tuple(argv)
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=timeout, check=False,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise ToolMissing(f"{argv[0]} is not installed (apt-get install ffmpeg)",
                          tool=argv[0]) from exc
    except subprocess.TimeoutExpired as exc:
        raise MediaError(f"{argv[0]} took longer than {timeout:.0f}s", argv=list(argv),
                         timeout=timeout) from exc
    return ToolResult(argv, proc.returncode, proc.stdout, proc.stderr)


#: How long a daemon waits, before it says it is ready, for :func:`warm_up` (a tool that
#: hangs is reported where it is used, not here).
WARM_UP_S = 10


@cache
def tool_version(tool: str) -> str:
    """e.g. 'ffmpeg 5.1.6-0+deb12u1' — recorded with every rendition."""
    if shutil.which(tool) is None:
        raise ToolMissing(f"{tool} is not installed (apt-get install ffmpeg)", tool=tool)
    first = run_tool([tool, "-version"], timeout=30).stdout.decode("utf-8", "replace")
    parts = first.split()
    return f"{parts[0]} {parts[2]}" if len(parts) > 2 else first.strip()


def warm_up(tools: Sequence[str] = ("ffprobe", "ffmpeg")) -> threading.Thread:
    """Run each tool once (``-version``) on a background thread, now.

    Debian's ffprobe loads ~250 MB of shared libraries: the first offload after a boot
    or a dropped page cache waited ~1.1 s for them inside its media check (measured,
    issue 14); the service and the dock daemon call this as they start and wait for it
    (up to WARM_UP_S) before they say they are ready, so that no offload pays it nor
    reads the libraries from the disk it is copying to. A missing or broken tool is not
    an error here: the offload reports it where it is used.
    """
    def run() -> None:
        for tool in tools:
            try:
                tool_version(tool)
            except (MediaError, ToolMissing, OSError):
                continue

    thread = threading.Thread(target=run, name="warm-tools", daemon=True)
    thread.start()
    return thread
