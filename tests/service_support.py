"""A real `evidock serve` for tests, and the CLI run as real OS accounts against it.

Nothing here fakes who is asking: each agency user of :data:`AGENCY_TOML` is a real OS
account (``evt-<name>``, created once as root), the CLI runs as that account, and the
service learns who it is from the kernel (SO_PEERCRED on its socket). The service is
started as a child process and is ready when it says so on a NOTIFY_SOCKET the test
binds (systemd's protocol): no polling, no sleeps.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import pwd
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from evidock_testing import AGENCY_USERS, REPO

#: The account a station's service runs as in tests (production: "evidock").
SERVICE_ACCOUNT = "evt-service"
#: Every OS account the tests use: one per agency user, plus the service's, one that
#: maps to nobody, and "chief" (both sides of the two-person rule, mapped only by
#: tests/records/test_approvals.py).
ACCOUNTS = (SERVICE_ACCOUNT, "evt-nobody", "evt-chief", *(f"evt-{u}" for u in AGENCY_USERS))
READY_TIMEOUT_S = 60.0


def account(user: str) -> str:
    """The OS account of an agency user (as mapped in AGENCY_TOML)."""
    return user if user.startswith("evt-") else f"evt-{user}"


def ensure_accounts() -> None:
    """Create the test accounts (system accounts, no home, no login shell) if missing."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("the service tests need root to create OS accounts (CI runs as root)")
        pytest.skip("the service tests need root to create OS accounts")
    for name in ACCOUNTS:
        try:
            pwd.getpwnam(name)
        except KeyError:
            made = subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                                   "/usr/sbin/nologin", name], capture_output=True, text=True)
            # 9: made meanwhile by another test process (two runs at once share them)
            assert made.returncode in (0, 9), made.stderr
    _others_can_run_evidock()


@functools.cache
def _others_can_run_evidock() -> None:
    """One clear failure, instead of many confusing ones, when the checkout or its venv
    is not readable by other accounts (people run the CLI as themselves)."""
    pw = pwd.getpwnam("evt-nobody")
    run = subprocess.run([sys.executable, "-c", "import evidock.client"], capture_output=True,
                         text=True, timeout=120, cwd="/", user=pw.pw_uid, group=pw.pw_gid,
                         extra_groups=[], env={"PYTHONPATH": str(REPO), "HOME": "/nonexistent"})
    if run.returncode != 0:
        pytest.fail(f"other accounts cannot run {sys.executable} from {REPO}: make the "
                    f"checkout's path readable (chmod o+rx) — {run.stderr.strip()[-300:]}")


def open_dir(prefix: str) -> Path:
    """A new directory every account can traverse (pytest's own tmp is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def audit_rows(where: Path | str, action: str) -> list[Any]:
    """Every ``action`` AuditEvent row in the catalog of the home ``where`` (SQLite), or
    at the catalog URL ``where`` (a center on PostgreSQL), in sequence order."""
    from evidock_testing import events_of

    from archive.catalog import Catalog

    url = where if isinstance(where, str) else f"sqlite:///{where / 'catalog.sqlite3'}"
    catalog = Catalog.open(url)
    try:
        return events_of(catalog, action)
    finally:
        catalog.close()


def audit_events(home: Path, action: str) -> list[tuple[str, dict[str, object]]]:
    """(actor, details) of every audit event ``action`` in the catalog of ``home``."""
    from archive.audit.log import AuditLog
    from archive.catalog import Catalog

    catalog = Catalog.open(f"sqlite:///{home / 'catalog.sqlite3'}")
    try:
        log = AuditLog(catalog=catalog)
        events = [log.event(i) for i in range(log.size())]
    finally:
        catalog.close()
    return [(e.actor, e.details) for e in events if e is not None and e.action == action]


@contextmanager
def open_copy(src: Path, prefix: str = "evidock-cam-") -> Iterator[Path]:
    """A copy of ``src`` (a camera) that every test account can read, in a root-owned
    0755 directory (so nobody but root can swap it), removed afterwards."""
    parent = open_dir(prefix)
    try:
        dest = parent / src.name
        shutil.copytree(src, dest, symlinks=True)
        yield dest
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@dataclass
class RunningService:
    home: Path
    socket: Path
    proc: subprocess.Popen[bytes]
    env: dict[str, str] = field(default_factory=dict)
    #: "http(s)://HOST:PORT" when it also listens on TCP ([service] listen), from the
    #: STATUS it sends with READY=1 (so port 0 works: the kernel's choice is reported).
    url: str = ""

    def cli(self, *args: str, user: str = "clerk", env: Mapping[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """`evidock ARGS` run as the user's OS account against this service."""
        return run_as(account(user), [sys.executable, "-m", "evidock", *args],
                      env={"EVIDOCK_SOCKET": str(self.socket), **(env or {})},
                      timeout=timeout)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=60)


def run_as(os_account: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
           timeout: float = 300, cwd: Path | None = None,
           ) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as ``os_account`` (real uid and gid, no supplementary groups)."""
    pw = pwd.getpwnam(os_account)
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
            "HOME": "/nonexistent", "COLUMNS": "200", "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": str(REPO), "CI": os.environ.get("CI", "")}
    return subprocess.run(list(argv), capture_output=True, text=True, encoding="utf-8",
                          timeout=timeout, env={**base, **(env or {})},
                          cwd=str(cwd or "/"), user=pw.pw_uid, group=pw.pw_gid,
                          extra_groups=[])

#: Runs as the user's account: the requests in $EVT_REQUESTS, answers as JSON lines.
_CLIENT = r"""
import base64, json, os, sys, httpx
out = []
with httpx.Client(transport=httpx.HTTPTransport(uds=os.environ["EVIDOCK_SOCKET"]),
                  base_url="http://evidock/api/v1", timeout=60) as http:
    for r in json.loads(os.environ["EVT_REQUESTS"]):
        body = open(r["body_file"], "rb") if r.get("body_file") else None
        resp = http.request(r["method"], r["path"], params=r.get("params"),
                            headers=r.get("headers"), content=body)
        out.append({"status": resp.status_code, "headers": dict(resp.headers),
                    "body": base64.b64encode(resp.content).decode()})
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def code(self) -> str:
        return str(self.json()["error"]["code"])


def api_as(user: str, socket_path: Path, *requests: dict[str, Any]) -> list[Answer]:
    """The station API asked as the user's own OS account (over its socket, so the
    service knows who asks from the kernel): one answer per request, bodies as bytes."""
    run = run_as(account(user), [sys.executable, "-c", _CLIENT], env={
        "EVIDOCK_SOCKET": str(socket_path), "EVT_REQUESTS": json.dumps(list(requests))})
    assert run.returncode == 0, run.stderr
    return [Answer(a["status"], a["headers"], base64.b64decode(a["body"]))
            for a in json.loads(run.stdout)]



@contextmanager
def serving(home: Path, *, config: Path | None = None, run_as_account: str | None = None,
            env: Mapping[str, str] | None = None,
            listen: str | None = None) -> Iterator[RunningService]:
    """`evidock serve` over ``home`` until the block ends (then SIGTERM).

    By default the service runs as this (root) process, which suits tests of the API
    and the CLI; ``run_as_account`` runs it as that account (the home must be its own),
    as systemd does in production. ``listen`` ("127.0.0.1:0") is ``[service] listen``.
    """
    ensure_accounts()
    sockdir = open_dir("evidock-sock-")
    sock = sockdir / "evidock.sock"
    notify = sockdir / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify))
    notify.chmod(0o666)
    listener.settimeout(READY_TIMEOUT_S)
    child_env = {**os.environ, "EVIDOCK_HOME": str(home), "NOTIFY_SOCKET": str(notify),
                 "PYTHONPATH": str(REPO), **(env or {})}
    if config is not None:
        child_env["EVIDOCK_CONFIG"] = str(config)
    if listen is not None:
        child_env["EVIDOCK_SERVICE__LISTEN"] = f'"{listen}"'
    argv = [sys.executable, "-m", "evidock", "serve", "--socket", str(sock)]
    kwargs: dict[str, object] = {}
    if run_as_account is not None:
        pw = pwd.getpwnam(run_as_account)
        kwargs = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        os.chown(sockdir, pw.pw_uid, pw.pw_gid)  # it binds its socket there
        child_env["HOME"] = "/nonexistent"
    proc = subprocess.Popen(argv, env=child_env, cwd="/", stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, **kwargs)  # type: ignore[call-overload]
    service = RunningService(home=home, socket=sock, proc=proc, env=child_env)
    try:
        status = _wait_ready(listener, proc)
        found = re.search(r"https?://\S+", status)
        service.url = found.group(0) if found else ""
        yield service
    finally:
        try:
            service.stop()
        except subprocess.TimeoutExpired:
            service.kill()
        listener.close()
        shutil.rmtree(sockdir, ignore_errors=True)


@pytest.fixture(scope="session")
def agency_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """`evidock serve` over a station with the agency's config and nothing in it, started
    once, for tests that only ask it who someone is or have a request refused: all they
    leave behind is audit events, which a test looks for by what they say (never by how
    many there are, nor by their order)."""
    from evidock_testing import write_agency_config  # noqa: PLC0415

    home = tmp_path_factory.mktemp("agency") / "home"
    write_agency_config(home)
    with serving(home) as svc:
        yield svc


def _wait_ready(listener: socket.socket, proc: subprocess.Popen[bytes]) -> str:
    """Until the service sends READY=1 (returns that message); fail at once if it exits
    first."""
    assert proc.stdout is not None
    said = b""  # what it printed before READY (it logs only warnings and errors)
    with selectors.DefaultSelector() as sel:
        sel.register(listener, selectors.EVENT_READ)
        sel.register(proc.stdout, selectors.EVENT_READ)
        while True:
            ready = sel.select(timeout=READY_TIMEOUT_S)
            if not ready:
                proc.kill()
                raise AssertionError("evidock serve did not become ready in time")
            for key, _ in ready:
                if key.fileobj is listener:
                    message = listener.recv(4096).decode("utf-8", "replace")
                    if "READY=1" in message.split("\n"):
                        return message
                else:
                    out = proc.stdout.read1(65536)
                    said += out
                    if not out:  # end of output: it exited
                        proc.wait(timeout=30)
                        raise AssertionError("evidock serve exited before it was ready:\n"
                                             + said.decode("utf-8", "replace"))
