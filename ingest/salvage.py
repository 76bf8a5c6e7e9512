"""Best-effort salvage of a damaged recording, as a separately labelled derivative.

Only for a truncated MP4 whose index (moov) survived: the packets that lie wholly inside
the file are stream-copied into a new file that stops before the damage. A file whose
moov was lost needs reference-based reconstruction (e.g. untrunc with a healthy clip
from the same camera; GPL, not packaged in Debian), which is reported, not attempted.
The original is never touched and stays the evidential master.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from archive.catalog import Blob, Catalog, Recording
from archive.catalog.models import Derivative
from archive.store import ContentStore
from ingest.media import Prober
from ingest.tools import run_tool, tool_version
from integrity.codes import Code

LABEL = "salvage: packets before the damage, stream-copied; NOT the original"


def last_whole_packet_time(csv_text: str, file_size: int) -> float | None:
    """Latest video pts among packets that end strictly inside the file."""
    best: float | None = None
    for line in csv_text.splitlines():
        parts = line.split(",")
        if len(parts) != 5 or parts[0] != "packet":
            continue
        try:
            pts, pos, size = float(parts[2]), int(parts[3]), int(parts[4])
        except ValueError:
            continue
        if pos + size < file_size:
            best = pts if best is None else max(best, pts)
    return best


class Recoverer:
    def __init__(self, *, store: ContentStore, catalog: Catalog, prober: Prober,
                 clock: Callable[[], datetime], timeout_s: float = 3600,
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex) -> None:
        self.store, self.catalog, self.prober = store, catalog, prober
        self.clock, self.timeout_s, self.new_id = clock, timeout_s, new_id

    def recover(self, rec: Recording) -> Derivative:
        src = self.store.path_for(rec.blake3)
        info, res = self.prober.probe(src)
        if info is None or not info.video:
            return self._row(rec, "failed", Code.E_RECOVERY_UNAVAILABLE,
                             f"index lost ({res.stderr_line()}): needs reference-based "
                             "reconstruction (untrunc + a healthy clip of this camera)")
        packets = run_tool(["ffprobe", "-v", "error", "-select_streams", "v:0",
                            "-show_entries", "packet=stream_index,pts_time,pos,size",
                            "-of", "csv", str(src)], timeout=self.timeout_s)
        cut = last_whole_packet_time(packets.stdout.decode("ascii", "replace"), rec.size)
        if not cut:
            return self._row(rec, "failed", Code.E_RECOVERY_EMPTY, "no whole video packet")
        with self.store.stage() as stager:
            out = stager.directory / "salvage.mp4"
            argv = ["ffmpeg", "-nostdin", "-v", "error", "-err_detect", "ignore_err", "-i",
                    str(src), "-map", "0:v:0", "-map", "0:a?", "-t", f"{cut:.6f}", "-c", "copy",
                    "-f", "mp4", str(out)]
            made = run_tool(argv, timeout=self.timeout_s)
            check = self.prober.check(out, kind="video", ext="mp4") if made.returncode == 0 \
                else None
            if check is None or check.flags:
                why = made.stderr_line() if check is None else check.reason
                return self._row(rec, "failed", Code.E_RECOVERY_FAILED, why)
            # fsynced, hashed, re-read from the disk and linked where ffmpeg wrote it
            digests = stager.put_file(out)
        placeholder = [a if a not in (str(src), str(out)) else
                       ("{input}" if a == str(src) else "{output}") for a in argv]
        blob = Blob(blake3=digests.blake3, sha256=digests.sha256, size=digests.size,
                    stored_at=self.clock())
        return self._row(rec, "ok", Code.R_SALVAGED, f"salvaged the first {cut:.3f} s",
                         blob=blob, argv=placeholder, duration_s=cut)

    def _row(self, rec: Recording, status: str, code: str, reason: str, *,
             blob: Blob | None = None, argv: list[str] | None = None,
             duration_s: float | None = None) -> Derivative:
        row = Derivative(id=self.new_id(), recording_id=rec.id, label=LABEL, status=status,
                         code=code, reason=reason, tool=tool_version("ffmpeg") if argv else None,
                         argv=argv or [], blake3=blob.blake3 if blob else None,
                         size=blob.size if blob else None, duration_s=duration_s,
                         created_at=self.clock())
        with self.catalog.transaction() as s:
            if blob is not None and s.get(Blob, blob.blake3) is None:
                s.add(blob)
            s.add(row)
        return row
