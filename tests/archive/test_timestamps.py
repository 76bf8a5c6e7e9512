"""The station side of trusted timestamps, with a real TSA on 127.0.0.1 (``openssl ts``
behind http.server, tests/tsa_support.py) and a real offloaded, rendered station.

Every signed rendition manifest and audit tree head is queued when it is signed; the
``timestamps`` job (driven directly: no sleeps) asks the TSAs, verifies each token before
storing it and leaves the item queued on any failure.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy import text
from sqlmodel import select

from archive.catalog.models import Rendition
from archive.catalog.repo import Catalog
from archive.timestamp_rows import MANIFEST, TREE_HEAD, enqueue
from archive.timestamps import Stamper, enqueue_missing, token_for
from config import load_settings
from config.timestamps import TimestampSettings
from evidock import jobs
from evidock.wiring import Services
from integrity.canonical import canonical_bytes
from integrity.codes import Code
from integrity.errors import ConfigError
from integrity.timestamp import sha256, verify_token
from tests.archive.pg_support import pg_cluster
from tests.evidock_testing import StepClock, offloaded_home, ok_json
from tests.service_support import serving
from tests.tsa_support import TestTsa, TsaAuthority, serving_tsa, unused_port


@dataclass(frozen=True)
class Pki:
    tsa: TestTsa
    root_pem: Path
    root: x509.Certificate
    stranger: TestTsa  # a TSA whose root the station does not trust


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    where = tmp_path_factory.mktemp("tsa-station")
    ca, other = TsaAuthority(where, "agency-root"), TsaAuthority(where, "other-root")
    return Pki(tsa=TestTsa(where, ca.issue_tsa("tsa1"), name="good"), root_pem=ca.root.cert,
               root=x509.load_pem_x509_certificate(ca.root.cert.read_bytes()),
               stranger=TestTsa(where, other.issue_tsa("tsa-x"), name="stranger"))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, camera_template: object) -> Path:
    home = tmp_path_factory.mktemp("stamp-template") / "home"
    return offloaded_home(home, camera_template.root)  # type: ignore[attr-defined]


def _station(template: Path, where: Path, pki: Pki, urls: list[str]) -> Path:
    home = where / "home"
    shutil.copytree(template, home)
    shutil.copy(pki.root_pem, home / "tsa-root.pem")
    quoted = ", ".join(f'"{u}"' for u in urls)
    with (home / "evidock.toml").open("a", encoding="utf-8") as f:
        f.write(f'\n[timestamps]\ntsa_urls = [{quoted}]\ntsa_roots = ["tsa-root.pem"]\n'
                "timeout_s = 5\n")
    return home


@pytest.fixture
def opened() -> Iterator[list[Services]]:
    made: list[Services] = []
    yield made
    for svc in made:
        svc.close()


def _services(home: Path, opened: list[Services]) -> Services:
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}),
                               clock=StepClock())
    opened.append(svc)
    return svc


def _manifests(svc: Services) -> list[str]:
    with svc.catalog.transaction() as s:
        rows = s.exec(select(Rendition).where(Rendition.status == "ok")).all()
    return sorted(r.manifest_blake3 for r in rows if r.manifest_blake3)


def _head_row(svc: Services) -> int:
    with svc.catalog.engine.connect() as conn:
        return int(conn.execute(text("SELECT max(id) FROM treehead")).scalar_one())


def _heads(svc: Services) -> int:
    with svc.catalog.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM treehead")).scalar_one())


def test_manifests_and_a_head_get_verified_tokens(template: Path, tmp_path: Path,
                                                  pki: Pki, opened: list[Services]) -> None:
    with serving_tsa(pki.tsa) as url:
        svc = _services(_station(template, tmp_path, pki, [url]), opened)
        head = svc.audit().sign_head(at=svc.clock())
        manifests = _manifests(svc)
        assert manifests, "the offloaded station has rendered manifests"
        signed = len(manifests) + _heads(svc)  # heads: the offload's and this one
        assert svc.stamper().pending() == signed
        result = jobs.execute("timestamps", svc)
    assert result.outcome == "ok", result.counts
    assert result.counts["stamped"] == signed and result.counts["pending"] == 0
    event = svc.audit().event(result.audit_seq or -1)
    assert event is not None and event.action == "scheduler.timestamps"
    assert event.details["stamped"] == signed
    for b3 in manifests:
        stored = token_for(svc.catalog, kind=MANIFEST, subject=b3)
        assert stored is not None and stored.tsa_url == url
        signed = svc.store.path_for(b3).read_bytes()  # the signed manifest file
        check = verify_token(stored.token, digest=sha256(signed), roots=(pki.root,))
        assert check.ok, check.findings
        # The station's clock (a test clock in November) beside the TSA's.
        side = check.against(stored.claimed_at)
        assert check.attested_at is not None
        diff = check.attested_at - stored.claimed_at
        assert side["difference_us"] == diff // timedelta(microseconds=1)
        assert diff > timedelta(days=1)  # the station's clock is days behind
    stored = token_for(svc.catalog, kind=TREE_HEAD, subject=str(_head_row(svc)))
    assert stored is not None and stored.claimed_at == head.time
    assert verify_token(stored.token, digest=sha256(canonical_bytes(head.to_dict())),
                        roots=(pki.root,)).ok


def test_a_tampered_manifest_does_not_match_its_token(template: Path, tmp_path: Path,
                                                      pki: Pki, opened: list[Services]) -> None:
    with serving_tsa(pki.tsa) as url:
        svc = _services(_station(template, tmp_path, pki, [url]), opened)
        assert jobs.execute("timestamps", svc).outcome == "ok"
    b3 = _manifests(svc)[0]
    stored = token_for(svc.catalog, kind=MANIFEST, subject=b3)
    assert stored is not None
    signed = svc.store.path_for(b3).read_bytes()
    tampered = signed.replace(b'"officer_id":"123456"', b'"officer_id":"654321"')
    assert tampered != signed
    check = verify_token(stored.token, digest=sha256(tampered), roots=(pki.root,))
    assert [f.code for f in check.findings] == [Code.E_TIMESTAMP_IMPRINT]


def test_tsa_down_keeps_items_queued_then_drains_when_up(
        template: Path, tmp_path: Path, pki: Pki, opened: list[Services]) -> None:
    dead, later = unused_port(), unused_port()
    urls = [f"http://127.0.0.1:{dead}/tsa", f"http://127.0.0.1:{later}/tsa"]
    svc = _services(_station(template, tmp_path, pki, urls), opened)
    waiting = svc.stamper().pending()
    down = jobs.execute("timestamps", svc)
    assert down.outcome == "findings" and down.counts["stamped"] == 0
    assert down.counts["codes"] == [Code.E_TIMESTAMP_UNAVAILABLE]
    # The station keeps working without a TSA: a new head is signed and queued too.
    svc.audit().sign_head(at=svc.clock())
    assert svc.stamper().pending() == waiting + 1
    with serving_tsa(pki.tsa, port=later):
        report = svc.stamper().run()
    assert report.count("stamped") == waiting + 1 and report.pending == 0
    first, *rest = report.items
    assert {i.tsa_url for i in report.items} == {urls[1]}
    assert first.attempts[0].unreachable  # the dead TSA: asked once this run, then skipped
    assert all(i.attempts[0].message == "unreachable earlier in this run" for i in rest)
    assert len(pki.tsa.requests) >= waiting + 1


@pytest.mark.parametrize("answer", ["other_digest", "stranger", "replay", "garbage",
                                    "huge"])
def test_a_bad_token_is_never_stored(template: Path, tmp_path: Path, pki: Pki,
                                     opened: list[Services], answer: str) -> None:
    from integrity.timestamp import request_for

    elsewhere = pki.tsa.reply(request_for(sha256(b"another thing"), nonce=7))
    first: list[bytes] = []

    def replay(query: bytes) -> bytes:  # the first answer, again for every request
        first.append(first[0] if first else pki.tsa.reply(query))
        return first[-1]

    pki.tsa.answer = {"other_digest": lambda q: elsewhere, "stranger": pki.stranger.reply,
                      "replay": replay, "garbage": lambda q: b"\x30\x00",
                      "huge": lambda q: b"\x30" * (3 << 20)}[answer]  # not read past 1 MiB
    try:
        with serving_tsa(pki.tsa) as url:
            svc = _services(_station(template, tmp_path, pki, [url]), opened)
            waiting = svc.stamper().pending()
            result = jobs.execute("timestamps", svc)
    finally:
        pki.tsa.answer = pki.tsa.reply
    expected = {"other_digest": Code.E_TIMESTAMP_IMPRINT,
                "stranger": Code.E_TIMESTAMP_UNTRUSTED,
                "replay": Code.E_TIMESTAMP_IMPRINT,  # and the nonce: another request's
                "garbage": Code.E_TIMESTAMP_INVALID, "huge": Code.E_TIMESTAMP_INVALID}[answer]
    assert result.outcome == "findings"
    assert expected in result.counts["codes"]
    stored = 1 if answer == "replay" else 0  # the replay's first answer was honest
    assert result.counts["stamped"] == stored
    assert result.counts["pending"] == waiting - stored


def test_heads_signed_before_queuing_existed_are_queued_by_the_job(
        template: Path, tmp_path: Path, pki: Pki, opened: list[Services]) -> None:
    svc = _services(_station(template, tmp_path, pki, []), opened)
    assert jobs.execute("timestamps", svc).counts["enqueued"] == 0  # all queued already
    # A head as an older evidock stored it: a treehead row, nothing queued for it.
    with svc.catalog.engine.begin() as conn:
        conn.execute(text("INSERT INTO treehead (size, root, time, station_id, key_id, "
                          "signature, frontier) SELECT size, root, time, station_id, "
                          "key_id, signature, frontier FROM treehead WHERE id = :id"),
                     {"id": _head_row(svc)})
    old = svc.audit().heads()[-1][1]
    waiting = svc.stamper().pending()
    skipped = jobs.execute("timestamps", svc)
    assert skipped.outcome == "skipped" and skipped.counts["enqueued"] == 1
    assert skipped.counts["pending"] == waiting + 1
    with serving_tsa(pki.tsa) as url:
        home, config = tmp_path / "home", tmp_path / "home" / "evidock.toml"
        config.write_text(config.read_text().replace("tsa_urls = []",
                                                     f'tsa_urls = ["{url}"]'))
        svc = _services(home, opened)
        assert jobs.execute("timestamps", svc).outcome == "ok"
    stored = token_for(svc.catalog, kind=TREE_HEAD, subject=str(_head_row(svc)))
    assert stored is not None
    assert verify_token(stored.token, digest=sha256(canonical_bytes(old.to_dict())),
                        roots=(pki.root,)).ok


def test_tokens_and_queue_are_append_only(template: Path, tmp_path: Path, pki: Pki,
                                          opened: list[Services]) -> None:
    with serving_tsa(pki.tsa) as url:
        svc = _services(_station(template, tmp_path, pki, [url]), opened)
        jobs.execute("timestamps", svc)
    for stmt in ("UPDATE stamptoken SET attested_at = '2020-01-01'",
                 "DELETE FROM stamptoken", "DELETE FROM stampitem"):
        with pytest.raises(Exception, match="append-only"), svc.catalog.engine.begin() as c:
            c.execute(text(stmt))


def test_without_a_tsa_the_job_is_skipped_and_says_what_waits(
        template: Path, tmp_path: Path, pki: Pki, opened: list[Services]) -> None:
    svc = _services(_station(template, tmp_path, pki, []), opened)
    result = jobs.execute("timestamps", svc)
    assert result.outcome == "skipped"
    assert result.counts["pending"] == len(_manifests(svc)) + _heads(svc) > 0
    with pytest.raises(Exception, match="tsa_roots"):
        load_settings(environ={"EVIDOCK_HOME": str(tmp_path / "home"),
                               "EVIDOCK_TIMESTAMPS__TSA_ROOTS": "[]",
                               "EVIDOCK_TIMESTAMPS__TSA_URLS": '["http://x/"]'})
    (tmp_path / "home" / "tsa-root.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match="tsa_roots"):
        svc.stamper()


def test_station_status_shows_what_waits_for_a_token(template: Path, tmp_path: Path,
                                                     pki: Pki) -> None:
    home = _station(template, tmp_path, pki, [f"http://127.0.0.1:{unused_port()}/tsa"])
    with serving(home) as running:
        doc = ok_json(running.cli("dock", "status", "--json", user="clerk"))
        human = running.cli("dock", "status", user="clerk").stdout
    assert doc["timestamps"]["pending"] > 0 and doc["timestamps"]["tsas"] == 1
    assert f"timestamps: {doc['timestamps']['pending']} signed" in human


@pytest.fixture(scope="module")
def pg() -> Iterator[Callable[[], str]]:
    with pg_cluster() as make:
        yield make


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_queue_and_tokens_on_both_databases(dialect: str, tmp_path: Path, pki: Pki,
                                            request: pytest.FixtureRequest) -> None:
    url = (f"sqlite:///{tmp_path / 'c.sqlite3'}" if dialect == "sqlite"
           else request.getfixturevalue("pg")())
    catalog = Catalog.create(url)
    try:
        at = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
        digests = {f"m{i}": hashlib.sha256(b"m%d" % i).hexdigest() for i in range(3)}
        with catalog.transaction() as s:
            for subject, sha in [*digests.items(), ("m0", digests["m0"])]:  # m0 twice
                enqueue(s.connection(), kind=MANIFEST, subject=subject, sha256=sha,
                        claimed_at=at, at=at)
        assert enqueue_missing(catalog, now=at) == 0  # no renditions or heads here
        with serving_tsa(pki.tsa) as url_:
            stamper = Stamper(catalog=catalog, roots=(pki.root,), clock=lambda: at,
                              settings=TimestampSettings(tsa_urls=(url_,),
                                                         tsa_roots=("root.pem",)))
            assert stamper.pending() == 3
            report = stamper.run()
        assert report.count("stamped") == 3 and report.pending == 0
        for subject, sha in digests.items():
            stored = token_for(catalog, kind=MANIFEST, subject=subject)
            assert stored is not None and stored.claimed_at == at
            assert verify_token(stored.token, digest=bytes.fromhex(sha),
                                roots=(pki.root,)).ok
        with pytest.raises(Exception, match="append-only"), catalog.engine.begin() as c:
            c.execute(text("UPDATE stamptoken SET tsa_url = 'elsewhere'"))
    finally:
        catalog.close()
