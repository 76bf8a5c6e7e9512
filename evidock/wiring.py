"""Builds every collaborator from Settings, once, in one place."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from archive.audit.group import GroupCommitter
from archive.audit.log import AuditLog, HeadSigner
from archive.catalog import Catalog
from archive.keystore import StationKeys
from archive.replica.objectstore import ObjectStore
from archive.replica.queue import RetryPolicy, UploadQueue
from archive.store import ContentStore
from archive.timestamps import Stamper, load_roots
from archive.witness.book import WitnessBook
from archive.witness.center import CenterClient
from config import Settings
from ingest.hooks import FifoHooks
from ingest.media import Prober
from ingest.offload import Offloader
from ingest.process import Renderer
from integrity.errors import ConfigError
from integrity.keys import Keyring
from records.c2pa_sign import C2paSigner
from records.cases import CaseDesk
from records.centralbundle import CenterBundler, Needed
from records.centraldesk import CentralDesk
from records.centralexports import CentralExportDesk, CentralExporter
from records.centralfixity import RemoteFixity
from records.centralplay import CentralPlayer
from records.dossier import Dossier
from records.exportarea import ExportArea
from records.exports import ExportDesk
from records.feeddesk import FeedDesk, station_objects
from records.package import Exporter
from records.permissions import Actor, Gate, os_account
from records.redactions import RedactionDesk
from records.witnessdesk import WitnessDesk
from retention.center_deletions import CenterDeletions
from retention.center_desk import CenterHolds
from retention.center_sync import CenterSync
from retention.executor import RetentionExecutor
from retention.holds import HoldDesk

if TYPE_CHECKING:
    from evidock.jobqueue.app import JobQueue
    from evidock.jobqueue.renditions import QueuedRenditions


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    settings: Settings
    catalog: Catalog
    store: ContentStore
    prober: Prober
    keys: StationKeys
    clock: Callable[[], datetime]
    #: The station service's batcher for audit events of their own (None: in-process).
    committer: GroupCommitter | None = None
    #: Where renditions go with ``[jobs] queue = "postgres"`` (None: made in-process).
    job_queue: JobQueue | None = None

    @classmethod
    def from_config(cls, settings: Settings, *, clock: Callable[[], datetime] = utc_now,
                    ) -> Services:
        """Everything wired; refused (SchemaOutdated) unless the catalog's schema is at
        this evidock's revision: `evidock init` / `evidock admin migrate` make it so."""
        svc = cls(
            settings=settings,
            catalog=Catalog.open(settings.catalog_url),
            store=ContentStore(root=settings.store_dir,
                               direct_writes=settings.ingest.direct_writes),
            prober=Prober(timeout_s=settings.ingest.probe_timeout_s),
            keys=StationKeys(directory=settings.keys_dir),
            clock=clock,
        )
        if settings.jobs.queued:  # procrastinate is loaded only where a queue is configured
            from evidock.jobqueue.app import JobQueue

            svc.job_queue = JobQueue(settings=settings, engine=svc.catalog.engine)
        return svc

    def offloader(self) -> Offloader:
        return Offloader(settings=self.settings, store=self.store, catalog=self.catalog,
                         prober=self.prober, clock=self.clock, audit=self.audit(),
                         hooks=FifoHooks.from_env(os.environ))

    def audit(self) -> AuditLog:
        return AuditLog(catalog=self.catalog,
                        signer=HeadSigner(keys=self.keys, station_id=self.settings.station.id),
                        committer=self.committer)

    def start_group_commit(self) -> None:
        """From now on, events recorded in transactions of their own (reads, refusals)
        are committed in groups by one writer thread (the station service)."""
        if self.committer is None:
            self.committer = GroupCommitter(log=AuditLog(catalog=self.catalog))

    def renderer(self) -> Renderer:
        return Renderer(settings=self.settings, store=self.store, catalog=self.catalog,
                        prober=self.prober, keys=self.keys, clock=self.clock,
                        audit=self.audit())

    def renditions(self) -> Renderer | QueuedRenditions:
        """Where renditions are made: here, or queued for `evidock worker` ([jobs])."""
        if self.job_queue is None:
            return self.renderer()
        from evidock.jobqueue.renditions import QueuedRenditions

        return QueuedRenditions(renderer=self.renderer(), queue=self.job_queue)

    def upload_queue(self) -> UploadQueue:
        up = self.settings.upload
        if not up.enabled:
            raise ConfigError("object storage is not configured: set [upload] enabled = true "
                              "and bucket", key="upload.enabled")
        policy = RetryPolicy(base_s=up.retry_base_s, cap_s=up.retry_cap_s,
                             checksum_attempts=up.checksum_attempts, lease_s=up.lease_s)
        return UploadQueue(catalog=self.catalog, store=self.store,
                           objects=ObjectStore.from_settings(up), policy=policy)

    def stamper(self) -> Stamper:
        ts = self.settings.timestamps
        return Stamper(catalog=self.catalog, settings=ts, clock=self.clock,
                       roots=load_roots(ts.root_paths(self.settings.home)))

    def gate(self) -> Gate:
        return Gate(access=self.settings.access, audit=self.audit(), clock=self.clock)

    def holds(self) -> HoldDesk:
        return HoldDesk(catalog=self.catalog, gate=self.gate(), audit=self.audit(),
                        clock=self.clock)

    def retention(self) -> RetentionExecutor:
        # With object storage configured, a deletion also removes the remote copies whose
        # lock has run out (ObjectStore.delete_expired); without it (objects=None) they
        # are listed in the tombstone and deleted by a later run once it is configured.
        up = self.settings.upload
        objects = ObjectStore.from_settings(up) if up.enabled else None
        return RetentionExecutor(catalog=self.catalog, store=self.store, audit=self.audit(),
                                 gate=self.gate(), rules=self.settings.retention,
                                 clock=self.clock, objects=objects,
                                 center_decides=self.settings.center.retention == "center")

    def center_holds(self) -> CenterHolds:
        """At a center: holds placed on the witnessed stations' records."""
        return CenterHolds(catalog=self.catalog, gate=self.gate(), audit=self.audit(),
                           witness=self.settings.witness, clock=self.clock)

    def center_deletions(self) -> CenterDeletions:
        """At a center: the stations' reported deletions, decided here."""
        return CenterDeletions(catalog=self.catalog, gate=self.gate(), audit=self.audit(),
                               witness=self.settings.witness, clock=self.clock)

    def center_sync(self) -> CenterSync:
        """At a station: carry out the center's holds and decisions."""
        st = self.settings
        return CenterSync(catalog=self.catalog, gate=self.gate(), audit=self.audit(),
                          station_id=st.station.id, center=st.center, clock=self.clock,
                          client=lambda: CenterClient(settings=st.center, home=st.home))

    def cases(self) -> CaseDesk:
        return CaseDesk(catalog=self.catalog, store=self.store, gate=self.gate(),
                        audit=self.audit(), settings=self.settings.cases, clock=self.clock,
                        permanent_marks=self.settings.retention.permanent_marks)

    def exports(self) -> ExportDesk:
        exporter = Exporter(store=self.store, catalog=self.catalog, keys=self.keys,
                            clock=self.clock, station_id=self.settings.station.id,
                            zone=self.settings.station.local_zone)
        if self.settings.exports.c2pa:  # content credentials on each clip
            exporter.c2pa = C2paSigner(settings=self.settings.exports,
                                       home=self.settings.home, catalog=self.catalog)
        if self.settings.timestamps.tsa_urls:  # the bundle's fresh head: a token now
            exporter.stamp_now = lambda: self.stamper().run()
        return ExportDesk(catalog=self.catalog, gate=self.gate(), audit=self.audit(),
                          exporter=exporter, settings=self.settings.exports, clock=self.clock,
                          reached=FifoHooks.from_env(os.environ).reached,
                          redactions=lambda rid: self.redactions().approved(rid))

    def export_area(self) -> ExportArea:
        """Where the service (and a worker's ``export`` job) writes packages."""
        return ExportArea(root=self.settings.home / "exports")

    def center_export_area(self) -> ExportArea:
        """At a center: where the service (and a ``center_export`` job) writes packages,
        apart from the station area (whose sweep knows only station requests)."""
        return ExportArea(root=self.settings.home / "center-exports")

    def redactions(self) -> RedactionDesk:
        return RedactionDesk(catalog=self.catalog, store=self.store, keys=self.keys,
                             gate=self.gate(), audit=self.audit(), clock=self.clock)

    def witness(self) -> WitnessDesk:
        st = self.settings
        return WitnessDesk(gate=self.gate(), audit=self.audit(), keys=self.keys,
                           station_id=st.station.id, witness=st.witness, center=st.center,
                           home=st.home, clock=self.clock)

    def feed(self) -> FeedDesk:
        st = self.settings
        return FeedDesk(gate=self.gate(), audit=self.audit(), station_id=st.station.id,
                        witness=st.witness, center=st.center, upload=st.upload,
                        home=st.home, clock=self.clock,
                        reached=FifoHooks.from_env(os.environ).reached)

    def central(self) -> CentralDesk:
        return CentralDesk(gate=self.gate(), catalog=self.catalog, clock=self.clock)

    def station_objects(self, station: str) -> ObjectStore:
        """At a center: the object store a witnessed station uploads to."""
        st = self.settings
        objects = station_objects(st.upload, st.witness, station)
        if objects is None:
            raise ConfigError(f"no object storage for station {station!r} here: "
                              "[upload] and [[witness.stations]] are needed",
                              key="upload.enabled")
        return objects

    def remote_fixity(self) -> RemoteFixity:
        return RemoteFixity(gate=self.gate(), audit=self.audit(),
                            witness=self.settings.witness,
                            objects_for=self.station_objects, clock=self.clock)

    def central_player(self) -> CentralPlayer:
        st = self.settings

        def keyring_for(station: str) -> Keyring:
            path = st.witness.keyring_path(st.home, station)
            if path is None:
                raise ConfigError(f"station {station!r} is not witnessed here",
                                  key="witness.stations")
            return StationKeys.read_keyring(path)

        return CentralPlayer(gate=self.gate(), catalog=self.catalog, store=self.store,
                             objects_for=self.station_objects, keyring_for=keyring_for,
                             clock=self.clock)

    def central_exports(self) -> CentralExportDesk:
        """At a center: exports of stations' footage, read back and proven; the
        center's own key signs what each package claims."""
        player = self.central_player()

        def exporter_for(station: str) -> CentralExporter:
            def bundler_for(needed: Needed) -> CenterBundler:
                book = WitnessBook(catalog=self.catalog, audit=self.audit())
                return CenterBundler(catalog=self.catalog, book=book, keys=self.keys,
                                     station=station, needed=needed,
                                     by_name=self.gate().by_name)

            return CentralExporter(player=player, station=station, bundler_for=bundler_for,
                                   keyring=player.keyring_for(station), store=self.store,
                                   catalog=self.catalog, keys=self.keys, clock=self.clock,
                                   station_id=self.settings.station.id,
                                   zone=self.settings.station.local_zone)

        return CentralExportDesk(catalog=self.catalog, gate=self.gate(), audit=self.audit(),
                                 player=player, exporter_for=exporter_for,
                                 settings=self.settings.exports, clock=self.clock,
                                 reached=FifoHooks.from_env(os.environ).reached)

    def dossier(self) -> Dossier:
        return Dossier(catalog=self.catalog, gate=self.gate(), clock=self.clock)

    def actor(self) -> Actor:
        """The evidock user of this process's own account (the service account for the
        dock daemon and the scheduler; refused and audited when unmapped)."""
        return self.gate().identify(account=os_account())

    def close(self) -> None:
        if self.committer is not None:
            self.committer.close()  # commits what is queued before the catalog closes
        if self.job_queue is not None:
            self.job_queue.close()
        self.catalog.close()
