"""A station's audit log, pushed to the center and mirrored there, through the one gate.

Center: a station's account (``witness.submit``) asks where its mirror ends and hands
in the next events (:class:`archive.witness.feed.Feed` checks and keeps them; blobs they
name are looked up in the object store of this service's ``[upload]``, under the
station's ``key_prefix``). Station: :meth:`FeedDesk.push` sends every event the center
does not hold yet, in order and in batches, until the log is mirrored or the center
waits for a blob not uploaded yet; it runs again from wherever the center stands.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from archive.audit.log import AuditLog
from archive.replica.objectstore import ObjectStore
from archive.witness.center import CenterClient
from archive.witness.feed import Feed
from archive.witness.mirror import BlobCheck, NamedBlob, parse_event
from archive.witness.objectcheck import ObjectCheck
from config.settings import UploadSettings
from config.witness import CenterSettings, WitnessSettings
from integrity.errors import AuditError, ConfigError, LogFork, WitnessRefused
from records.permissions import Actor, Gate, P

#: Events per request (each a few hundred bytes; the center bounds a batch at 1000).
BATCH = 500


def _no_store(_blob: NamedBlob) -> str:
    return "this center has no object storage configured ([upload])"


def station_objects(upload: UploadSettings, witness: WitnessSettings,
                    station_id: str) -> ObjectStore | None:
    """The object store a witnessed station uploads to, as this center reaches it (its
    ``[upload]`` bucket, the station's key prefix); None without either."""
    entry = witness.station(station_id)
    if not upload.enabled or entry is None:
        return None
    return ObjectStore.from_settings(upload.model_copy(
        update={"key_prefix": entry.key_prefix or upload.key_prefix}))


class FeedDesk:
    def __init__(self, *, gate: Gate, audit: AuditLog, station_id: str,
                 witness: WitnessSettings, center: CenterSettings, upload: UploadSettings,
                 home: Path, clock: Callable[[], datetime],
                 reached: Callable[[str], None] = lambda _point: None) -> None:
        self.gate, self.audit, self.clock = gate, audit, clock
        self.feed = Feed(audit=audit, reached=reached)
        self.station_id = station_id
        self.witness, self.center, self.upload, self.home = witness, center, upload, home

    # ------------------------------------------------------------------ the center

    def _witnessed(self, actor: Actor, station_id: str) -> None:
        """Only the station's own account: its events are not signed one by one, so
        another station's account could otherwise write into its mirror."""
        self.gate.require(actor, P.WITNESS_SUBMIT, subjects=[f"station:{station_id}"])
        entry = self.witness.station(station_id)
        why = ("not a station this service witnesses" if entry is None else
               None if actor.name == entry.user_name else
               f"its events are taken only from its own account {entry.user_name!r}")
        if why is not None:
            event = self.audit.record(actor=actor.audit_name, action="witness.refused",
                                      subjects=[f"station:{station_id}"],
                                      details={"why": why}, at=self.clock())
            raise WitnessRefused(f"station {station_id!r}: {why}", station_id=station_id,
                                 audit_seq=event.seq)

    def position(self, actor: Actor, station_id: str) -> dict[str, Any]:
        self._witnessed(actor, station_id)
        return {"station_id": station_id, "next_seq": self.feed.mirror.next_seq(station_id)}

    def _check_blob(self, station_id: str) -> BlobCheck:
        objects = station_objects(self.upload, self.witness, station_id)
        return _no_store if objects is None else ObjectCheck(objects=objects)

    def receive(self, actor: Actor, station_id: str,
                docs: list[dict[str, Any]]) -> dict[str, Any]:
        """Check and keep a batch of the station's events (in order; resumable)."""
        self._witnessed(actor, station_id)
        try:
            events = [parse_event(d) for d in docs]
        except AuditError as exc:
            raise WitnessRefused(f"station {station_id!r}: {exc.message}",
                                 station_id=station_id) from exc
        done = self.feed.receive(station_id, events, check_blob=self._check_blob(station_id),
                                 actor=actor.audit_name, at=self.clock())
        return {"station_id": station_id, "kept": done.kept, "skipped": done.skipped,
                "next_seq": done.next_seq, "waiting": done.waiting}

    # ------------------------------------------------------------------ the station

    def push(self, actor: Actor) -> dict[str, Any]:
        """Send the center every event it does not hold yet; how far it got."""
        self.gate.require(actor, P.WITNESS_PUSH, subjects=["audit-log"])
        if not self.center.url:
            raise ConfigError("no center is configured: set [center] url and keyring",
                              key="center.url")
        client = CenterClient(settings=self.center, home=self.home)
        start = pos = client.position(self.station_id)
        size, kept, waiting = self.audit.size(), 0, None
        while pos < size and waiting is None:
            answer = self._send(actor, client, pos)
            kept += int(answer["kept"])
            waiting = answer.get("waiting")
            if int(answer["next_seq"]) <= pos and waiting is None:
                break  # no progress: the center said why in its answer, if anything
            pos = int(answer["next_seq"])
        return {"from": start, "next_seq": pos, "size": size, "kept": kept,
                "waiting": waiting}

    def _send(self, actor: Actor, client: CenterClient, pos: int) -> dict[str, Any]:
        try:
            return client.send(self.station_id, self.audit.export(pos, BATCH))
        except LogFork as exc:  # the center says this log is not the one it mirrored
            self.audit.record(actor=actor.audit_name, action="witness.fork_reported",
                              subjects=["audit-log"], details={"from": pos,
                                                               "center": exc.details},
                              at=self.clock())
            raise
