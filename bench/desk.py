"""Web desk bench: page answer times over a large catalog, through a real `evidock serve`.

    .venv/bin/python -m bench.desk [--recordings 100000] [--cases 10000] [--requests 50]
                                   [--budget 15] [--audit-events 500] [--page NAME=PATH ...]
                                   [--keep] [--no-write]

Makes a station home (`evidock init`, temporary), fills its catalog with
``--recordings`` recordings and ``--cases`` cases by bulk SQL into the real tables
(``bench/desk_data.py``: 2 units, 20 officers, 8 cameras, ~2 links per case, labels,
closings, holds, export requests and their decisions, pending deletions, audit events,
every authority row bound to its audit event), then offloads and renders two short clips
for real (their blobs are in the store: the recording's page, its stored verification
and its thumbnail are measured on one of them), sets passwords, and starts `evidock
serve` on 127.0.0.1 (port 0; ready on NOTIFY_SOCKET). Logs in through the desk's own
form with httpx, as a clerk of one unit cleared for nothing (``clerk2``) and as a user
with every role, unit and clearance (``chief``), and times each page of :data:`PAGES`:
warm-up, then ``--requests`` sequential requests on one keep-alive connection (fewer
when they take over ``--budget`` seconds) → p50, p95, max. Baseline in the same run:
`GET /api/v1/health` (HTTP + FastAPI, no session, no audit). Writes the "Web desk"
section of docs/BENCHMARKS.md unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import math
import os
import pwd
import re
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

import httpx

from bench.common import REPO, machine_info, markdown_table, write_section
from bench.desk_data import Built, build

if TYPE_CHECKING:
    from evidock.wiring import Services

TARGET_MS = 200.0
#: The pages timed: (name, path). Placeholders filled in from the catalog: ``{officer}``
#: (a police number), ``{case}`` (an open unlabelled 城西中队 case's number, URL-quoted),
#: ``{recording}`` (a synthetic recording of that case), ``{real}`` (a recording offloaded
#: for real, linked to that case), ``{export}`` (an export request of a 城西中队 case).
#: Add a page here (or with --page NAME=PATH) and it is measured; one that answers
#: non-200 is reported so (missing, or refused to that user).
PAGES: tuple[tuple[str, str], ...] = (
    ("home", "/desk/"),
    ("footage", "/desk/footage"),
    ("footage, one officer", "/desk/footage?officer={officer}"),
    ("footage, one unit", "/desk/footage?unit=%E5%9F%8E%E8%A5%BF%E4%B8%AD%E9%98%9F"),
    ("footage, one case", "/desk/footage?case={case}"),
    ("footage, page 100", "/desk/footage?page=100"),
    ("recording", "/desk/footage/{recording}"),
    ("recording (offloaded for real)", "/desk/footage/{real}"),
    ("thumbnail (a footage page shows 50)", "/desk/footage/{real}/thumb.jpg"),
    ("recording: stored verification", "/desk/footage/{real}/verify"),
    ("recording: access history", "/desk/footage/{real}/history"),
    ("cases", "/desk/cases"),
    ("cases, page 50", "/desk/cases?page=50"),
    ("cases, text search", "/desk/cases?q=%E7%AC%AC0004"),
    ("cases, closed", "/desk/cases?status=closed"),
    ("case", "/desk/cases/{case}"),
    ("exports", "/desk/exports"),
    ("export request", "/desk/exports/{export}"),
    ("statistics", "/desk/statistics"),
    ("statistics by officer", "/desk/statistics?by=officer"),
    ("statistics by unit", "/desk/statistics?by=unit"),
    ("statistics by stage", "/desk/statistics?by=stage"),
    ("statistics by month", "/desk/statistics?by=month"),
    ("audit", "/desk/audit"),
    ("audit, refusals", "/desk/audit?refusals=1"),
    ("retention", "/desk/retention"),
    ("station", "/desk/station"),
    ("station: bays (polled)", "/desk/station/bays"),
)
BASELINE = ("baseline: `GET /api/v1/health`", "/api/v1/health")
#: A baseline slower than this (a 34-byte JSON answer) means the service's second write of
#: a response waits for the client's delayed ACK (Nagle; see STALL).
STALL_MS = 30.0
STALL = """Reading: the baseline takes ~40 ms for a 34-byte answer, and so does every page on
top of its own work: the service writes a response's headers and body in two sends, its
accepted TCP sockets have Nagle's algorithm on, so the body waits for the client's
delayed ACK (~40 ms on Linux). Browsers meet it on every page and htmx refresh.
`evidock/service/server.py` `_bind` makes the listening socket with
`socket.create_server` (protocol 0), and asyncio sets TCP_NODELAY only on sockets whose
protocol is IPPROTO_TCP. TCP_NODELAY on the listening socket (Linux passes it on to the
accepted ones) removes the wait: measured here, the baseline 44 ms → 1 ms."""
#: Who is measured: a clerk of one unit cleared for nothing, and one who may do and see
#: everything (every role, every unit, every clearance).
USERS = {"clerk2": "clerk2-bench-pass", "chief": "chief-bench-pass"}
USERS_TOML = """
[[access.users]]
name = "clerk"
display = "张文书"
roles = ["clerk"]
clearances = ["个人隐私"]
[[access.users]]
name = "clerk2"
display = "城西文书"
roles = ["clerk"]
units = ["城西中队"]
[[access.users]]
name = "inspector"
roles = ["inspector"]
clearances = ["个人隐私", "商业秘密"]
[[access.users]]
name = "legal"
roles = ["legal_reviewer"]
clearances = ["个人隐私", "商业秘密"]
[[access.users]]
name = "supervisor"
roles = ["supervisor"]
clearances = ["个人隐私", "商业秘密", "国家秘密"]
[[access.users]]
name = "chief"
display = "局长"
roles = ["clerk", "inspector", "legal_reviewer", "supervisor", "admin", "officer"]
clearances = ["个人隐私", "商业秘密", "国家秘密"]
"""
READY_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Timing:
    name: str
    path: str
    user: str
    statuses: Counter[int]
    times_ms: list[float]

    @property
    def ok(self) -> bool:
        return set(self.statuses) == {200}

    def pct(self, q: float) -> float:
        """Nearest-rank percentile (p95 of 50 requests: the 48th fastest)."""
        ordered = sorted(self.times_ms)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# --- the station ------------------------------------------------------------------------


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDOCK_")}
    return {**env, "EVIDOCK_HOME": str(home), "PYTHONPATH": str(REPO)}


def _evidock(home: Path, *args: str, stdin: str | None = None) -> None:
    subprocess.run([sys.executable, "-m", "evidock", *args], env=_env(home), check=True,
                   capture_output=True, input=stdin, text=True, timeout=300)


def make_home(home: Path, recordings: int, cases: int, audit_events: int,
              ) -> tuple[Built, str]:
    """The station (see the module docstring); returns the catalog's facts and the id of
    a recording offloaded for real."""
    _evidock(home, "init", "--account", pwd.getpwuid(os.geteuid()).pw_name)
    with (home / "evidock.toml").open("a", encoding="utf-8") as fh:
        fh.write(USERS_TOML)
    from config import load_settings
    from evidock.wiring import Services

    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}))
    try:
        built = build(svc.catalog, recordings, cases, audit_events,
                      end=datetime.now(UTC) - timedelta(days=2))
        real = _offload_for_real(svc, home.parent / "camera")
        svc.cases().link(svc.gate().by_name("clerk"), built.case_number, real,
                         stage="现场检查", reason="现场取证")
    finally:
        svc.close()
    for user, password in USERS.items():
        _evidock(home, "admin", "passwd", user, "--stdin", stdin=password + "\n")
    return built, real


def _offload_for_real(svc: Services, camera: Path) -> str:
    """Two short clips from a camera tree, offloaded and rendered as a dock does."""
    from fixtures.camera import build_camera
    from fixtures.media import ClipSpec
    from ingest.outcome import OffloadRequest

    build_camera(camera, serial="ZFY0001", officer="100013",
                 start=datetime.now(UTC) - timedelta(hours=6),
                 clips=(ClipSpec(duration_s=12.0, height=240), ClipSpec(duration_s=4.0,
                                                                       height=240)),
                 photo=False, audio=False, log=False)
    report = svc.offloader().run(OffloadRequest(source=camera, device_serial="ZFY0001",
                                                officer_id="100013"))
    assert report.outcome == "completed", report.outcome
    renderer = svc.renderer()
    for rec in renderer.pending():
        renderer.render(rec)
    ids = [f.recording_id for f in report.files if f.recording_id]
    assert ids, "the real offload made no recording"
    return str(ids[0])


@contextmanager
def serving(home: Path) -> Iterator[str]:
    """`evidock serve` on the station socket and 127.0.0.1:0 until the block ends;
    yields its http:// URL (from the STATUS sent with READY=1)."""
    notify = home.parent / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify))
    env = {**_env(home), "NOTIFY_SOCKET": str(notify),
           "EVIDOCK_SERVICE__LISTEN": '"127.0.0.1:0"'}
    log = (home.parent / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "evidock", "serve", "--socket",
                             str(home.parent / "evidock.sock")], env=env, cwd="/",
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        status = _wait_ready(listener, proc, home.parent / "serve.log")
        found = re.search(r"http://\S+", status)
        if found is None:
            raise RuntimeError(f"evidock serve named no TCP address: {status!r}")
        yield found.group(0)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=60)
        listener.close()
        log.close()


def _wait_ready(listener: socket.socket, proc: subprocess.Popen[bytes], log: Path) -> str:
    with selectors.DefaultSelector() as sel:
        sel.register(listener, selectors.EVENT_READ)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("evidock serve exited before it was ready:\n"
                                   + log.read_text(errors="replace")[-2000:])
            if sel.select(timeout=0.5):
                message = listener.recv(4096).decode("utf-8", "replace")
                if "READY=1" in message.split("\n"):
                    return message
    proc.kill()
    raise RuntimeError("evidock serve did not become ready in time")


# --- the measurement --------------------------------------------------------------------


def log_in(base: str, user: str, password: str) -> httpx.Client:
    """A client holding ``user``'s session cookie, logged in through the desk's form."""
    client = httpx.Client(base_url=base, timeout=60, follow_redirects=False)
    form = client.get("/desk/login")
    found = re.search(r'name="login_token" value="([^"]+)"', form.text)
    if form.status_code != 200 or found is None:
        raise RuntimeError(f"no login form at /desk/login ({form.status_code})")
    done = client.post("/desk/login", data={"user": user, "password": password,
                                            "login_token": found.group(1),
                                            "next": "/desk/"})
    if done.status_code != 303:
        raise RuntimeError(f"login as {user} failed: {done.status_code}")
    return client


def time_page(client: httpx.Client, name: str, path: str, user: str, *, n: int,
              budget_s: float) -> Timing:
    """``n`` timed requests after the warm-up, fewer (at least 3) when they take more
    than ``budget_s`` in all: a page of seconds is slow with fewer samples too."""
    for _ in range(warmup(n)):
        start = time.perf_counter()
        _get(client, path)
        if time.perf_counter() - start > budget_s / 10:
            break  # a slow page: one warm-up request is enough
    statuses: Counter[int] = Counter()
    times: list[float] = []
    until = time.monotonic() + budget_s
    while len(times) < n and (len(times) < 3 or time.monotonic() < until):
        start = time.perf_counter()
        statuses[_get(client, path)] += 1
        times.append((time.perf_counter() - start) * 1000)
    return Timing(name, path, user, statuses, times)


def warmup(n: int) -> int:
    """Untimed requests before the timed ones (fewer for a quick run)."""
    return max(1, min(3, n // 5))


def _get(client: httpx.Client, path: str) -> int:
    """The status of ``GET path`` once its whole body is read (as a browser waits for
    it); 0 when the connection broke (a page that crashed: see serve.log)."""
    try:
        return client.get(path).status_code  # not streamed: the body is read here
    except httpx.TransportError:
        return 0


def measure(base: str, pages: Sequence[tuple[str, str]], n: int, budget_s: float,
            ) -> list[Timing]:
    out = []
    with httpx.Client(base_url=base, timeout=60) as anon:
        out.append(time_page(anon, BASELINE[0], BASELINE[1], "-", n=n,
                             budget_s=budget_s))
    for user, password in USERS.items():
        client = log_in(base, user, password)
        try:
            for name, path in pages:
                out.append(time_page(client, name, path, user, n=n, budget_s=budget_s))
                print(f"  {user:7} {name:32} {_status(out[-1]):>8} "
                      f"p95 {out[-1].pct(0.95):7.1f} ms", flush=True)
        finally:
            client.close()
    return out


def fill(pages: Sequence[tuple[str, str]], built: Built, recording: str,
         ) -> list[tuple[str, str]]:
    facts = {"officer": built.officer, "recording": built.recording, "real": recording,
             "case": quote(built.case_number, safe=""), "export": built.export_id}
    return [(name, path.format(**facts)) for name, path in pages]


def errors_logged(log: Path) -> list[str]:
    """The distinct exceptions the service logged (a page that answered 500)."""
    found = re.findall(r"^([A-Za-z_][\w.]*(?:Error|Exception): .{0,160})$",
                       log.read_text(encoding="utf-8", errors="replace"), re.MULTILINE)
    return list(dict.fromkeys(found))[:8]


# --- the report -------------------------------------------------------------------------


def _status(t: Timing) -> str:
    return ", ".join(f"{code or 'reset'}" + (f"×{k}" if len(t.statuses) > 1 else "")
                     for code, k in sorted(t.statuses.items()))


def _verdict(t: Timing) -> str:
    if not t.ok:
        return "— (not 200)"
    return "met" if t.pct(0.95) < TARGET_MS else "**missed**"


def report(timings: list[Timing], built: Built, args: argparse.Namespace) -> str:
    base = timings[0].pct(0.95)
    rows = [[t.name, f"`{unquote(t.path)}`", t.user, _status(t), len(t.times_ms),
             f"{t.pct(0.5):.1f}", f"{t.pct(0.95):.1f}", f"{max(t.times_ms):.1f}",
             f"{t.pct(0.95) / base:.0f}×" if base else "-", _verdict(t)] for t in timings]
    table = markdown_table(("page", "URL", "user", "HTTP", "n", "p50 ms", "p95 ms", "max ms",
                            "p95 ÷ baseline", "p95 < 200 ms"), rows)
    info = machine_info()
    return (f"`python -m bench.desk --recordings {args.recordings} --cases {args.cases} "
            f"--requests {args.requests}` — {info['date']}, sqlite, {info['machine']}, "
            f"Python {info['python']}, {info['load']}. Catalog built in "
            f"{built.seconds:.0f} s: {built.recordings:,} recordings (+2 offloaded for "
            f"real), {built.cases:,} cases, {built.links:,} links, {built.exports:,} export "
            f"requests, {built.holds} holds, {built.audit_events:,} audit events. Each "
            f"page: {warmup(args.requests)} warm-up requests, then {args.requests} "
            f"sequential ones (fewer, at least 3, if they take over {args.budget:g} s: "
            f"column n) on one keep-alive connection from this process (client and "
            f"service share the CPUs); the time is to the last byte of the body. Users: "
            f"`clerk2` (clerk of 城西中队, no clearance) and `chief` (every role, unit and "
            f"clearance). Every page request is also an audited read (group-committed), "
            f"as in use.\n\n"
            f"{table}\n\n{target_line(timings)}\n" + _stall(timings))


def _stall(timings: list[Timing]) -> str:
    return f"\n{STALL}\n" if timings[0].pct(0.5) > STALL_MS else ""


def target_line(timings: list[Timing]) -> str:
    """p95 < 200 ms: met/missed per page (and user), and what did not answer 200."""
    pages = [t for t in timings[1:] if t.ok]
    met = [f"{t.name} ({t.user})" for t in pages if t.pct(0.95) < TARGET_MS]
    missed = [f"{t.name} ({t.user}, {t.pct(0.95):.0f} ms)" for t in pages
              if t.pct(0.95) >= TARGET_MS]
    other = [f"{t.name} ({t.user}: {_status(t)})" for t in timings[1:] if not t.ok]
    return (f"**p95 < 200 ms**: met by {len(met)} of {len(pages)} page × user measurements "
            f"that answered 200" + (f"; **missed** by {'; '.join(missed)}" if missed else "")
            + ". " + (f"Not 200 (refused to that user, missing, or failing): "
                      f"{'; '.join(other)}." if other else ""))


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recordings", type=int, default=100_000)
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--audit-events", type=int, default=500)
    ap.add_argument("--budget", type=float, default=15.0, metavar="S",
                    help="seconds of timed requests per page at most (at least 3 are made)")
    ap.add_argument("--page", action="append", default=[], metavar="NAME=PATH",
                    help="time this page too (placeholders as in PAGES)")
    ap.add_argument("--keep", action="store_true", help="keep the station home")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    pages = [*PAGES, *(tuple(p.split("=", 1)) for p in args.page)]
    scratch = Path(tempfile.mkdtemp(prefix="evidock-bench-desk-"))
    try:
        print(f"building the catalog in {scratch} ...", flush=True)
        built, recording = make_home(scratch / "home", args.recordings, args.cases,
                                     args.audit_events)
        print(f"  built in {built.seconds:.0f} s; serving ...", flush=True)
        with serving(scratch / "home") as base:
            timings = measure(base, fill(pages, built, recording), args.requests,
                              args.budget)
        crashes = errors_logged(scratch / "serve.log")
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    text = report(timings, built, args)
    if crashes:
        text += ("\nErrors in the service's log during the run: "
                 + "; ".join(f"`{c}`" for c in crashes) + ".\n")
    print(text)
    if not args.no_write:
        write_section("Web desk", text)


if __name__ == "__main__":
    main()
