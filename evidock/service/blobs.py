"""Bytes across the trust boundary: stored blobs out (with HTTP Range), client bytes in.

Both directions stream in pieces of at most :data:`CHUNK` bytes, so memory does not grow
with the file: a download is read from the store as the client takes it (uvicorn waits
for the socket to drain before asking for more), an upload is handed to the store's
one way in (:meth:`archive.staging.Stager.copy`) as the client sends it.
"""

from __future__ import annotations

import mimetypes
import os
import stat
from collections.abc import AsyncIterator, Callable, Iterator
from typing import BinaryIO
from urllib.parse import quote

import anyio.from_thread
import blake3
from fastapi.responses import JSONResponse, Response, StreamingResponse

from evidock.service.errors import error_body
from integrity.errors import DigestMismatch, FixityError, RangeNotSatisfiable, SizeMismatch
from records.viewing import Span, StoredBytes

CHUNK = 1 << 20


def byte_range(header: str | None, size: int) -> tuple[int, int]:
    """[first, last) to send for a Range header (RFC 9110 §14).

    One ``bytes=`` range is served; no header, several ranges or a header that is not
    a valid range are answered with the whole blob, as the RFC allows.
    """
    whole = (0, size)
    if header is None:
        return whole
    unit, _, spec = header.partition("=")
    a, dash, b = spec.strip().partition("-")
    if unit.strip().lower() != "bytes" or not dash or not (a or b) \
            or not all(x.isascii() and x.isdigit() for x in (a, b) if x):
        return whole  # several ranges, another unit or not a range: ignored
    if not a:  # a suffix: the last b bytes
        if int(b) == 0 or size == 0:
            raise _unsatisfiable(size, header)
        return max(0, size - int(b)), size
    first = int(a)
    if b and int(b) < first:
        return whole  # not a valid range: ignored
    if first >= size:
        raise _unsatisfiable(size, header)
    return first, size if not b else min(int(b) + 1, size)


def _unsatisfiable(size: int, header: str) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(f"range {header!r} is outside the {size} bytes",
                               range=header, size=size)


def serve(pick: Callable[[Span], tuple[StoredBytes, int, int]],
          range_header: str | None) -> Response:
    """The answer to a GET of a stored blob: ``pick(span)`` decides (permissions, which
    blob, the audit event) and returns the blob with the range to send."""
    try:
        blob, first, last = pick(lambda size: byte_range(range_header, size))
    except RangeNotSatisfiable as exc:  # nothing read, so nothing audited
        return JSONResponse(error_body(exc), status_code=416,
                            headers={"Content-Range": f"bytes */{exc.details['size']}"})
    fh = open_blob(blob)
    media = mimetypes.guess_type(blob.name)[0] or "application/octet-stream"
    return StreamingResponse(send(fh, blob, first, last), media_type=media,
                             status_code=200 if (first, last) == (0, blob.size) else 206,
                             headers=range_headers(blob, first, last))


def range_headers(blob: StoredBytes, first: int, last: int) -> dict[str, str]:
    """Headers of a (partial) answer; the digest lets a client check a whole read."""
    headers = {"Accept-Ranges": "bytes", "Content-Length": str(last - first),
               "ETag": f'"{blob.blake3}"', "X-Evidock-Blake3": blob.blake3,
               "Content-Disposition": f"inline; filename*=UTF-8''{quote(blob.name)}"}
    if blob.sha256:
        headers["X-Evidock-Sha256"] = blob.sha256
    if (first, last) != (0, blob.size):
        headers["Content-Range"] = f"bytes {first}-{last - 1}/{blob.size}"
    return headers


def open_blob(blob: StoredBytes) -> BinaryIO:
    """The stored file itself (never through a link), if it has the catalog's size."""
    try:
        fd = os.open(blob.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise FixityError(f"blob {blob.blake3} cannot be read from the store "
                          f"({exc.strerror}); run `evidock fixity`", blake3=blob.blake3) from None
    fh = open(fd, "rb", buffering=0)  # noqa: SIM115 - closed by send() (or on collection)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size != blob.size:
        fh.close()
        raise SizeMismatch(f"blob {blob.blake3} holds {st.st_size} bytes, the catalog "
                           f"says {blob.size}; run `evidock fixity`", subject=blob.blake3,
                           expected=blob.size, actual=st.st_size)
    return fh


def send(fh: BinaryIO, blob: StoredBytes, first: int, last: int) -> Iterator[bytes]:
    """The bytes [first, last) in pieces. A whole blob is hashed on the way: if it is
    not the one the catalog names, the answer is cut short (the client sees a broken
    transfer, never a complete wrong file). A range alone cannot be proven; its size is,
    and the ETag (the BLAKE3) lets a client check the ranges it puts together."""
    digest = blake3.blake3() if (first, last) == (0, blob.size) else None
    try:
        at = first
        while at < last:
            piece = os.pread(fh.fileno(), min(CHUNK, last - at), at)
            if not piece:
                raise SizeMismatch(f"blob {blob.blake3} ended at byte {at}",
                                   subject=blob.blake3, expected=blob.size, actual=at)
            at += len(piece)
            if digest is not None:
                digest.update(piece)
                if at == last:  # the last piece waits for the verdict
                    _check(digest.hexdigest(), blob)
            yield piece
    finally:
        fh.close()


def _check(got: str, blob: StoredBytes) -> None:
    if got != blob.blake3:
        raise DigestMismatch(f"blob {blob.blake3} does not hold its bytes; the transfer "
                             "was cut; run `evidock fixity`", subject=blob.blake3,
                             expected=blob.blake3, actual=got)


class BodyReader:
    """A request body as a blocking ``readinto`` source for a worker thread.

    The body arrives on the event loop; each read asks the loop for the next piece
    (``anyio.from_thread``), so only the piece in hand is held.
    """

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")
        self._done = False

    def readinto(self, buffer: memoryview, /) -> int:
        n = 0
        while n < len(buffer) and not self._done:
            if not self._pending:
                piece = anyio.from_thread.run(self._next)
                self._pending = memoryview(piece)
                self._done = not piece
                continue
            k = min(len(buffer) - n, len(self._pending))
            buffer[n:n + k] = self._pending[:k]
            self._pending, n = self._pending[k:], n + k
        return n

    async def _next(self) -> bytes:
        """The next non-empty piece, or b"" at the end."""
        while (piece := await anext(self._chunks, None)) is not None:
            if piece:
                return piece
        return b""


__all__ = ["CHUNK", "BodyReader", "byte_range", "open_blob",
           "range_headers", "send"]
