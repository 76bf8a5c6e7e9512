"""The station service end to end: audited requests per second over its Unix socket.

    python -m bench.service [--threads 40] [--seconds 5] [--no-doc]

Starts a real `evidock serve` on a fresh home (the benchmark's own account mapped to a
clerk), then N client threads, each with its own connection, send requests for a fixed
time: first `GET /health` (no identity, no audit: the baseline of HTTP + FastAPI on this
machine), then `GET /cases` (the caller identified from the socket, the permission gate,
one `read.case.list` audit event each, group-committed). Reports requests/s of each, the
audited one as a ratio of the baseline, the audit events the log actually gained, and the
service's peak RSS. Writes the "Station service" section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import httpx

from bench.common import REPO, machine_info, markdown_table, write_section

USERS = """
[[access.users]]
name = "bench"
os_users = ["{account}"]
roles = ["clerk"]
"""


def _start(home: Path, sock: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "EVIDOCK_HOME": str(home), "PYTHONPATH": str(REPO)}
    account = pwd.getpwuid(os.geteuid()).pw_name  # the service runs as this process's
    subprocess.run([sys.executable, "-m", "evidock", "init", "--account", account], env=env,
                   check=True, capture_output=True, timeout=120)
    config = home / "evidock.toml"
    with config.open("a", encoding="utf-8") as fh:
        fh.write(USERS.format(account=account))
    notify = sock.parent / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify))
    listener.settimeout(60)
    proc = subprocess.Popen([sys.executable, "-m", "evidock", "serve", "--socket", str(sock)],
                            env={**env, "NOTIFY_SOCKET": str(notify)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while b"READY=1" not in listener.recv(4096):
            pass
    finally:
        listener.close()
    return proc


def _hammer(sock: Path, path: str, threads: int, seconds: float) -> tuple[int, int]:
    """(answered, failed) requests in ``seconds`` from ``threads`` connections."""
    counts = [[0, 0] for _ in range(threads)]
    start = threading.Barrier(threads + 1)
    stop = threading.Event()

    def work(slot: list[int]) -> None:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)),
                          base_url="http://evidock/api/v1", timeout=30) as client:
            start.wait()
            while not stop.is_set():
                ok = client.get(path).status_code == 200
                slot[0 if ok else 1] += 1

    workers = [threading.Thread(target=work, args=(c,)) for c in counts]
    for w in workers:
        w.start()
    start.wait()
    stop.wait(seconds)  # the measurement window: bounded in time
    stop.set()
    for w in workers:
        w.join()
    return sum(c[0] for c in counts), sum(c[1] for c in counts)


def _audit_size(home: Path) -> int:
    from archive.audit.log import AuditLog
    from archive.catalog import Catalog

    catalog = Catalog.open(f"sqlite:///{home / 'catalog.sqlite3'}")
    try:
        return AuditLog(catalog=catalog).size()
    finally:
        catalog.close()


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(threads: int, seconds: float) -> str:
    scratch = Path(tempfile.mkdtemp(prefix="evidock-bench-service-"))
    home, sock = scratch / "home", scratch / "evidock.sock"
    proc = _start(home, sock)
    try:
        base_ok, base_bad = _hammer(sock, "/health", threads, seconds)
        before = _audit_size(home)
        ok, bad = _hammer(sock, "/cases", threads, seconds)
        gained = _audit_size(home) - before
        rss = _peak_rss_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(scratch, ignore_errors=True)
    base_rate, rate = base_ok / seconds, ok / seconds
    rows = [["`GET /health` (baseline: HTTP + FastAPI, no identity, no audit)",
             f"{base_rate:,.0f}", "1.00×", base_bad],
            ["`GET /cases` (peer identified, gate, one audit event each)",
             f"{rate:,.0f}", f"{rate / base_rate:.2f}×" if base_rate else "-", bad]]
    table = markdown_table(["requests", "per s", "÷ baseline", "failed"], rows)
    info = machine_info()
    return (f"`python -m bench.service --threads {threads} --seconds {seconds:g}` — "
            f"{info['date']}, {info['machine']}, Python {info['python']}, {info['load']}. "
            f"{threads} client threads, one Unix-socket connection each, in this process "
            f"(so clients and service share the 2 cores).\n\n{table}\n\n"
            f"Audit events the log gained during the audited phase: {gained:,} for {ok:,} "
            f"answered requests ({gained / seconds:,.0f} events/s end to end). Service peak "
            f"RSS {rss:.0f} MiB.\n")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--no-doc", action="store_true")
    args = ap.parse_args(argv)
    text = measure(args.threads, args.seconds)
    print(text)
    if not args.no_doc:
        write_section("Station service", text)


if __name__ == "__main__":
    main()
