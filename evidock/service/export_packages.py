"""What the station's and the center's export routes share: the export area's lifecycle
before each run and download, a run here or queued for a worker, and the streamed tar.

The desks (:class:`records.exports.ExportDesk`, :class:`records.centralexports.
CentralExportDesk`) keep every rule; this only moves packages in and out of the area
each one writes into, the same way for both.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from fastapi.responses import StreamingResponse

from evidock.service import tarstream
from evidock.wiring import Services
from integrity.errors import DiskFull, NotFound, StoreError
from records.exportarea import ExportArea, PackageFile, Removed
from records.exportbook import Package
from records.exportrun import finish
from records.permissions import Actor


class PackageDesk(Protocol):
    """What of an export desk the routes use to run and fetch packages."""

    def tidy(self, area: ExportArea) -> list[Removed]: ...

    def check_run(self, actor: Actor, request_id: str) -> object: ...

    def run(self, actor: Actor, request_id: str, *, out: Path,
            exclusive: bool = False) -> list[Package]: ...


def area_error(where: ExportArea, exc: OSError) -> StoreError:
    """An OSError of the export area as the error to report (not HTTP 500)."""
    cls = DiskFull if exc.errno == errno.ENOSPC else StoreError
    return cls(f"cannot write the export area {where.root}: {exc.strerror}",
               path=str(exc.filename or where.root))


def tidy(desk: PackageDesk, where: ExportArea) -> ExportArea:
    """The area, its lifecycle applied first (records.exportarea)."""
    try:
        desk.tidy(where)
    except OSError as exc:
        raise area_error(where, exc) from exc
    return where


def package_json(package: Package, top: Path) -> dict[str, object]:
    """A package with its directory relative to the request's (``.``: the request's
    directory is the package)."""
    return {**package.to_json(), "dir": package.path.relative_to(top).as_posix()}


def files_json(files: list[PackageFile]) -> list[dict[str, object]]:
    return [f.to_json() for f in files]


def run(svc: Services, desk: PackageDesk, where: ExportArea, *, job: str,
        request_id: str, actor: Actor) -> dict[str, object]:
    """Write the packages of an approved request (once) into ``where``, holding the
    request's run lock (a run that died is resumed, records.exportrun); with a job
    queue, check the run here and hand it to a worker (``job``): nothing to fetch yet."""
    if svc.job_queue is not None:
        desk.check_run(actor, request_id)
        queued = svc.job_queue.defer(job, {"request_id": request_id, "actor": actor.name})
        return {"request_id": request_id, "packages": [], "files": [], **queued.to_json()}
    tidy(desk, where)
    try:
        with where.running(request_id) as top:
            packages = desk.run(actor, request_id, out=top, exclusive=True)
    except OSError as exc:  # the desk has undone its part; say what failed
        raise area_error(where, exc) from exc
    return {"request_id": request_id,
            "packages": [package_json(p, top) for p in packages],
            "files": files_json(where.files(request_id))}


def kept(desk: PackageDesk, where: ExportArea, request_id: str) -> ExportArea:
    """The area with the request's package in place (published, if a run died after
    recording it)."""
    tidy(desk, where)
    with where.running(request_id) as top:
        finish(top)
    return where


@contextmanager
def held(desk: PackageDesk, where: ExportArea, request_id: str, *,
         keeper: str) -> Iterator[Path]:
    """The request's package directory, held under its run lock, for verifying it:
    the area's lifecycle first and a dead run published, as before a download."""
    desk.tidy(where)
    with where.running(request_id) as top:
        finish(top)
        if not top.is_dir():
            raise NotFound(f"the {keeper} keeps no package of export request "
                           f"{request_id} (kept until its approval ends, then removed)",
                           request=request_id)
        yield top


def tar(where: ExportArea, request_id: str) -> StreamingResponse:
    """The request's packages as an uncompressed tar (streamed)."""
    plan = tarstream.plan(where.path(request_id), where.files(request_id))
    return StreamingResponse(tarstream.chunks(plan), media_type="application/x-tar",
                             headers={"Content-Length": str(plan.size),
                                      "Content-Disposition":
                                          f'attachment; filename="{request_id}.tar"'})


__all__ = ["PackageDesk", "area_error", "files_json", "held", "kept", "package_json",
           "run", "tar", "tidy"]
