"""Logging in over the network, against a real `evidock serve` listening on loopback TCP:
argon2 passwords set by `evidock admin passwd`, signed session cookies, CSRF tokens,
failed logins rate-limited and audited, HTTPS and mutual TLS with a test CA made here
(real certificates, real handshakes), and a plain-HTTP listen on a public address
refused at start-up. Each test talks from its own loopback source address (127.0.0.N),
so one test's lockout never touches another's."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from evidock_testing import AGENCY_TOML, REPO, migrated_home, offloaded_home
from pki_support import CertAuthority, Issued, trusting
from service_support import RunningService, audit_rows, open_dir, run_as, serving
from sqlmodel import Session, col, select

from archive.audit.log import AuditEvent
from archive.catalog import Catalog, Recording
from archive.catalog.models import Rendition
from evidock.service.throttle import LoginThrottle
from fixtures.camera import CameraTree

PASSWORDS = {"clerk": "clerk-pass-0001", "legal": "legal-pass-0002",
             "officer": "officer-pass-0003", "supervisor2": "super2-pass-0004"}
ATTEMPTS = 3
SERVICE = f"""
[service]
login_attempts_per_minute = {ATTEMPTS}
"""
API = "/api/v1"


# --------------------------------------------------------------------------- helpers


def set_password(home: Path, user: str, password: str, *, account: str | None = None,
                 ) -> subprocess.CompletedProcess[str]:
    """`evidock admin passwd USER --stdin --json` (as root unless ``account``)."""
    argv = [sys.executable, "-m", "evidock", "admin", "passwd", user, "--stdin", "--json"]
    env = {"EVIDOCK_HOME": str(home), "PYTHONPATH": str(REPO), "PATH": os.environ["PATH"]}
    if account is not None:  # refused before it reads anything
        return run_as(account, argv, env=env)
    return subprocess.run(argv, input=password + "\n", capture_output=True, text=True,
                          env=env, timeout=120)


def events(home: Path, action: str) -> list[AuditEvent]:
    return audit_rows(home, action)


def all_event_text(home: Path) -> str:
    catalog = Catalog.open(f"sqlite:///{home / 'catalog.sqlite3'}")
    try:
        with Session(catalog.engine) as s:
            rows = s.exec(select(AuditEvent)).all()
    finally:
        catalog.close()
    return json.dumps([[e.actor, e.action, e.subjects, e.details] for e in rows],
                      ensure_ascii=False)


def browser(url: str, source: str, *, verify: ssl.SSLContext | bool = False) -> httpx.Client:
    """A client from loopback source address ``source``, keeping cookies as a browser."""
    transport = httpx.HTTPTransport(local_address=source, verify=verify)
    return httpx.Client(base_url=url + API, transport=transport, timeout=60)


def error(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


def login(client: httpx.Client, user: str, password: str | None = None) -> httpx.Response:
    return client.post("/login", json={"user": user,
                                       "password": password or PASSWORDS[user]})


# --------------------------------------------------------------------------- one station


@dataclass
class Station:
    svc: RunningService
    home: Path
    video: str

    def client(self, source: str) -> httpx.Client:
        return browser(self.svc.url, source)


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory,
            camera_template: CameraTree) -> Iterator[Station]:
    home = tmp_path_factory.mktemp("sessions") / "home"
    offloaded_home(home, camera_template.root, extra_toml=SERVICE)
    for user, password in PASSWORDS.items():
        done = set_password(home, user, password)
        assert done.returncode == 0, done.stderr
    catalog = Catalog.open(f"sqlite:///{home / 'catalog.sqlite3'}")
    try:
        with Session(catalog.engine) as s:
            video = s.exec(select(Recording.id).join(
                Rendition, col(Rendition.recording_id) == col(Recording.id)).where(
                Recording.kind == "video", Rendition.status == "ok")).first()
    finally:
        catalog.close()
    assert video is not None
    with serving(home, listen="127.0.0.1:0") as svc:
        assert svc.url.startswith("http://127.0.0.1:"), svc.url
        yield Station(svc, home, video)


def test_login_whoami_session_and_logout(station: Station) -> None:
    with station.client("127.0.0.2") as web:
        anonymous = web.get("/whoami")
        assert anonymous.status_code == 401 and error(anonymous) == "E_UNKNOWN_USER"
        answer = login(web, "clerk")
        assert answer.status_code == 200, answer.text
        cookie = answer.headers["set-cookie"]
        assert "evidock_session=" in cookie and "HttpOnly" in cookie
        assert "SameSite=strict" in cookie and "Secure" not in cookie, "plain HTTP here"
        token = answer.json()["csrf_token"]
        assert web.get("/whoami").json()["user"] == "clerk"
        session = web.get("/session").json()
        assert (session["user"], session["via"], session["csrf_token"]) == \
            ("clerk", "password", token)
        forged = dict(web.cookies)
        forged["evidock_session"] = forged["evidock_session"][:-2] + "xx"
        with station.client("127.0.0.2") as other:
            other.cookies.update(forged)
            assert other.get("/whoami").status_code == 401, "a tampered cookie is refused"
        out = web.post("/logout", headers={"X-CSRF-Token": token})
        assert out.status_code == 200 and out.json() == {"user": "clerk", "logged_out": True}
        web.cookies.update({"evidock_session": dict(answer.cookies)["evidock_session"]})
        assert web.get("/whoami").status_code == 401, "the session ended with the logout"
    logins = [e for e in events(station.home, "access.login") if e.actor == "user:clerk"]
    assert logins and logins[-1].details["address"] == "127.0.0.2"
    assert logins[-1].details["via"] == "password"
    assert [e.details["session"] for e in events(station.home, "access.logout")] == \
        [logins[-1].details["session"]]
    assert PASSWORDS["clerk"] not in all_event_text(station.home)


def test_wrong_password_refused_and_the_next_attempts_rate_limited(station: Station) -> None:
    with station.client("127.0.0.3") as web:
        web.headers["X-Forwarded-For"] = "10.9.9.9"  # believed by no one: no proxy here
        for _ in range(ATTEMPTS):
            wrong = login(web, "supervisor2", "not-the-password")
            assert wrong.status_code == 401 and error(wrong) == "E_LOGIN_FAILED"
            assert web.get("/whoami").status_code == 401
        # The limit is reached: even the right password is refused now, unchecked.
        locked = login(web, "supervisor2")
        assert locked.status_code == 429 and error(locked) == "E_LOGIN_THROTTLED"
        assert 0 < locked.json()["error"]["details"]["retry_after_s"] <= 60
        again = login(web, "supervisor2")
        assert again.status_code == 429
        # The address is locked too: another account from it is refused as well.
        assert login(web, "officer").status_code == 429
    with station.client("127.0.0.4") as elsewhere:
        # From another address the locked account stays locked, others may log in.
        assert login(elsewhere, "supervisor2").status_code == 429
        assert login(elsewhere, "officer").status_code == 200
        assert login(elsewhere, "nobody-at-all", "whatever-1234").status_code == 401
    failed = [e.details for e in events(station.home, "access.login_failed")
              if e.details["user"] in ("supervisor2", "nobody-at-all")]
    reasons = [(d["user"], d["reason"], d["address"]) for d in failed]
    assert reasons == [("supervisor2", "bad_password", "127.0.0.3")] * ATTEMPTS + [
        ("supervisor2", "locked", "127.0.0.3"), ("nobody-at-all", "unknown_user", "127.0.0.4")], \
        "every failure and each lockout is audited once (repeats within it are counted)"
    assert failed[ATTEMPTS]["code"] == "E_LOGIN_THROTTLED"
    assert "not-the-password" not in all_event_text(station.home)
    assert PASSWORDS["supervisor2"] not in all_event_text(station.home)


def test_csrf_token_required_and_a_clerk_cannot_approve(station: Station) -> None:
    body = {"purpose": "行政复议", "recipient": "复议机关", "recording": station.video}
    with station.client("127.0.0.5") as web:
        token = login(web, "clerk").json()["csrf_token"]
        bare = web.post("/exports", json=body)
        assert bare.status_code == 403 and error(bare) == "E_CSRF"
        wrong = web.post("/exports", json=body, headers={"X-CSRF-Token": token[::-1]})
        assert wrong.status_code == 403 and error(wrong) == "E_CSRF"
        assert web.get("/exports").status_code == 200, "reads need no token"
        made = web.post("/exports", json=body, headers={"X-CSRF-Token": token})
        assert made.status_code == 200, made.text
        rid = made.json()["id"]
        approve = web.post(f"/exports/{rid}/approve", json={},
                           headers={"X-CSRF-Token": token})
        assert approve.status_code == 403 and error(approve) == "E_FORBIDDEN"
        assert "export.approve" in approve.json()["error"]["message"]
    refused = [e for e in events(station.home, "access.refused") if e.actor == "user:clerk"]
    assert [e.details["code"] for e in refused] == ["E_CSRF", "E_CSRF", "E_FORBIDDEN"]
    assert refused[0].details["path"] == f"{API}/exports"
    assert refused[-1].details["permission"] == "export.approve"
    assert [e.actor for e in events(station.home, "export.request")] == ["user:clerk"]


def test_login_takes_json_only(station: Station) -> None:
    with station.client("127.0.0.6") as web:
        # What a cross-site HTML form can send: refused before any password is checked.
        form = web.post("/login", content=json.dumps({"user": "legal",
                                                      "password": PASSWORDS["legal"]}),
                        headers={"Content-Type": "text/plain"})
        assert form.status_code == 422 and error(form) == "E_INVALID"
        assert "evidock_session" not in web.cookies
        urlencoded = web.post("/login", data={"user": "legal",
                                              "password": PASSWORDS["legal"]})
        assert urlencoded.status_code == 422 and "evidock_session" not in web.cookies


def test_a_new_password_ends_the_sessions_of_the_old(station: Station) -> None:
    with station.client("127.0.0.7") as web:
        assert login(web, "legal").status_code == 200
        assert web.get("/whoami").json()["user"] == "legal"
        changed = set_password(station.home, "legal", "legal-pass-0002-new")
        assert changed.returncode == 0, changed.stderr
        assert web.get("/whoami").status_code == 401
        assert login(web, "legal", "legal-pass-0002-new").status_code == 200
        assert web.get("/whoami").json()["user"] == "legal"
        off = subprocess.run([sys.executable, "-m", "evidock", "admin", "passwd", "legal",
                              "--disable", "--json"], capture_output=True, text=True,
                             env={**os.environ, "EVIDOCK_HOME": str(station.home)},
                             timeout=120)
        assert off.returncode == 0 and json.loads(off.stdout)["login"] is False, off.stderr
        assert web.get("/whoami").status_code == 401
        refused = login(web, "legal", "legal-pass-0002-new")
        assert refused.status_code == 401 and error(refused) == "E_LOGIN_FAILED"
    last = events(station.home, "access.login_failed")[-1].details
    assert (last["user"], last["reason"]) == ("legal", "no_password")


def test_the_socket_needs_no_login_and_no_token(station: Station) -> None:
    # The kernel names the caller on the socket: no cookie, and a POST needs no token.
    probe = (
        "import httpx, json\n"
        f"c = httpx.Client(transport=httpx.HTTPTransport(uds={str(station.svc.socket)!r}),"
        " base_url='http://evidock/api/v1')\n"
        "print(json.dumps([c.get('/session').json(), c.post('/logout').json()]))\n")
    run = run_as("evt-clerk", [sys.executable, "-c", probe])
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == [{"user": "clerk", "via": "socket"},
                                      {"user": "clerk", "logged_out": False}]


class Ticking:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_window_take_back_and_one_report_per_lockout() -> None:
    clock = Ticking()
    limit = LoginThrottle(limit=2, window_s=60, clock=clock)
    keys = ("user:a", "addr:x")
    assert limit.attempt(keys).allowed
    limit.succeeded(keys)  # a right password does not count
    assert limit.attempt(keys).allowed and limit.attempt(keys).allowed
    clock.now += 10
    first = limit.attempt(keys)
    assert (first.allowed, first.report, first.wait_s) == (False, True, 50)
    clock.now += 1
    assert [limit.attempt(keys).report for _ in range(3)] == [False] * 3
    assert limit.attempt(("user:b", "addr:x")).report is False, "the address's lockout"
    assert limit.attempt(("user:b", "addr:y")).allowed, "another account elsewhere"
    clock.now += 49  # the first counted attempt leaves the window
    back = limit.attempt(keys)
    assert back.allowed and back.unreported == 4, "the quiet refusals go with the next event"
    assert limit.attempt(keys).allowed
    relocked = limit.attempt(keys)
    assert relocked.report and not relocked.allowed, "a new lockout is reported again"


# --------------------------------------------------------------------------- admin passwd


def test_admin_passwd_is_the_operators_and_audited_without_the_password(
        request: pytest.FixtureRequest) -> None:
    # A home others may look into (the config readable), so that the refusal comes from
    # who runs the command, not from a file the account cannot open.
    top = open_dir("evidock-passwd-")
    home = top / "home"
    request.addfinalizer(lambda: shutil.rmtree(top, ignore_errors=True))
    home.mkdir(mode=0o755)
    (home / "evidock.toml").write_text(AGENCY_TOML, encoding="utf-8")
    migrated_home(home)
    clerk = set_password(home, "clerk", "clerk-pass-0001", account="evt-clerk")
    assert clerk.returncode == 3 and json.loads(clerk.stdout)["error"]["code"] == \
        "E_NOT_OPERATOR"
    short = set_password(home, "clerk", "short")
    assert short.returncode == 1 and json.loads(short.stdout)["error"]["code"] == "E_INVALID"
    stranger = set_password(home, "stranger", "long-enough-password")
    assert stranger.returncode == 1
    assert json.loads(stranger.stdout)["error"]["code"] == "E_NOT_FOUND"
    done = set_password(home, "clerk", "clerk-pass-0001")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"user": "clerk", "login": True, "credential": 1}
    [event] = events(home, "access.passwd")
    assert (event.actor, event.subjects) == ("os:root", ["user:clerk"])
    assert event.details["login"] is True and event.details["credential"] == 1
    text = all_event_text(home)
    assert "clerk-pass-0001" not in text and "$argon2" not in text
    catalog = Catalog.open(f"sqlite:///{home / 'catalog.sqlite3'}")
    try:
        with catalog.engine.connect() as conn:
            stored = conn.exec_driver_sql("SELECT hash FROM credential").scalar_one()
    finally:
        catalog.close()
    assert stored.startswith("$argon2id$") and "clerk-pass-0001" not in stored


# --------------------------------------------------------------------------- TLS


@dataclass
class TlsStation:
    svc: RunningService
    home: Path
    ca: CertAuthority
    certs: dict[str, Issued]

    def client(self, cert: str | None = None) -> httpx.Client:
        chosen = self.certs[cert] if cert else None
        return browser(self.svc.url, "127.0.0.1", verify=trusting(self.ca, chosen))


@pytest.fixture(scope="module")
def tls_station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsStation]:
    root = tmp_path_factory.mktemp("tls")
    (root / "pki").mkdir()
    ca, rogue = CertAuthority(root / "pki", "agency-ca"), CertAuthority(root / "pki", "rogue")
    server = ca.issue("station", server=True)
    certs = {"inspector": ca.issue("inspector"), "stranger": ca.issue("stranger"),
             "forged": rogue.issue("inspector")}
    home = root / "home"
    home.mkdir()
    mapped = AGENCY_TOML.replace(
        'os_users = ["evt-inspector"]\n',
        'os_users = ["evt-inspector"]\ncert_subjects = ["CN=inspector,O=Test Agency"]\n')
    (home / "evidock.toml").write_text(mapped + f"""
[service]
listen = "127.0.0.1:0"
tls_cert = "{server.cert}"
tls_key = "{server.key}"
tls_client_ca = "{ca.root.cert}"
""", encoding="utf-8")
    migrated_home(home)
    assert set_password(home, "clerk", PASSWORDS["clerk"]).returncode == 0
    with serving(home) as svc:
        assert svc.url.startswith("https://127.0.0.1:"), svc.url
        yield TlsStation(svc, home, ca, certs)


def test_https_login_sets_a_secure_cookie(tls_station: TlsStation) -> None:
    with tls_station.client() as web:
        answer = login(web, "clerk")
        assert answer.status_code == 200, answer.text
        assert "Secure" in answer.headers["set-cookie"]
        assert web.get("/whoami").json()["user"] == "clerk"
    with pytest.raises(httpx.TransportError):  # no TLS, no answer
        httpx.get(tls_station.svc.url.replace("https", "http") + API + "/health", timeout=30)


def test_a_client_certificate_is_its_user(tls_station: TlsStation) -> None:
    with tls_station.client("inspector") as mtls:
        assert mtls.get("/session").json() == {"user": "inspector", "via": "certificate",
                                               "subject": "CN=inspector,O=Test Agency"}
        bare = mtls.post("/logout")  # a cross-site form could send this: refused
        assert bare.status_code == 403 and error(bare) == "E_CSRF"
        ok = mtls.post("/logout", headers={"X-Evidock-Client": "script"})
        assert ok.status_code == 200 and ok.json() == {"user": "inspector",
                                                       "logged_out": False}
    with tls_station.client("stranger") as unknown:
        refused = unknown.get("/whoami")
        assert refused.status_code == 401 and error(refused) == "E_UNKNOWN_USER"
    with tls_station.client("forged") as fake, pytest.raises(httpx.TransportError):
        fake.get("/whoami")  # the handshake fails: the rogue CA is not the agency's
    refusals = [(e.actor, e.details["code"]) for e in events(tls_station.home,
                                                             "access.refused")]
    assert refusals == [("user:inspector", "E_CSRF"),
                        ("cert:CN=stranger,O=Test Agency", "E_UNKNOWN_USER")]


def test_plain_http_on_a_public_address_is_refused_at_start_up(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "evidock.toml").write_text(AGENCY_TOML + '[service]\nlisten = "0.0.0.0:0"\n',
                                       encoding="utf-8")
    migrated_home(home)
    env = {**os.environ, "EVIDOCK_HOME": str(home), "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-m", "evidock", "serve", "--socket",
                          str(tmp_path / "s.sock")], env=env, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 2, run.stderr
    assert "E_CONFIG" in run.stderr and "service.allow_plain_http" in run.stderr
    assert not (tmp_path / "s.sock").exists(), "nothing listened"
    with serving(home, env={"EVIDOCK_SERVICE__ALLOW_PLAIN_HTTP": "true"}) as svc:
        assert svc.url.startswith("http://0.0.0.0:"), svc.url
        health = httpx.get(svc.url.replace("0.0.0.0", "127.0.0.1") + API + "/health",
                           timeout=30)
        assert health.status_code == 200 and health.json()["ok"] is True
