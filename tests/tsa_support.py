"""A real time-stamping authority on 127.0.0.1 for tests: ``openssl ts -reply`` behind
a small HTTP handler, with a test CA (``cryptography``, EC P-256) whose TSA leaf has the
critical timeStamping EKU RFC 3161 requires.

The TSA config has no ``certs=`` line: with one, OpenSSL writes the token's certificate
set unsorted and rfc3161-client refuses it (InvalidSetOrdering). Without it the token
carries the signer's certificate only, and the verifier is given the root.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from integrity.timestamp import der
from tests.pki_support import CertAuthority, Issued, _name, _write

_CONFIG = """\
[ tsa ]
default_tsa = tsa_config1
[ tsa_config1 ]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = {cert}
signer_key = {key}
signer_digest = sha256
default_policy = 1.2.3.4.1
other_policies = 1.2.3.4.5
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def require_openssl() -> str:
    """The openssl binary; a workstation without it skips, CI=true fails."""
    found = shutil.which("openssl")
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("openssl is needed for the RFC 3161 tests (CI=true: must run)")
        pytest.skip("openssl not installed")
    return found


class TsaAuthority(CertAuthority):
    """A CA that also issues TSA certificates (critical EKU, timeStamping only)."""

    def issue_tsa(self, cn: str, *, eku_critical: bool = True,
                  purpose: x509.ObjectIdentifier = ExtendedKeyUsageOID.TIME_STAMPING,
                  ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (self._builder(_name(cn), key.public_key(), datetime.now(UTC))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
                   .add_extension(x509.ExtendedKeyUsage([purpose]), eku_critical)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       self.key.public_key()), False))
        return _write(self.where, f"{self.label}-{cn}", key,
                      builder.sign(self.key, hashes.SHA256()))


class TestTsa:
    """``openssl ts -reply`` for one signer; ``answer`` may be swapped to misbehave."""

    __test__ = False  # not a pytest class

    def __init__(self, where: Path, signer: Issued, *, name: str = "tsa") -> None:
        self.openssl = require_openssl()
        self.dir = where / f"tsa-{name}"
        self.dir.mkdir()
        (self.dir / "serial").write_text("01\n")
        self.config = self.dir / "tsa.cnf"
        self.config.write_text(_CONFIG.format(dir=self.dir, cert=signer.cert,
                                              key=signer.key))
        self.lock = threading.Lock()
        self.requests: list[bytes] = []
        self.answer: Callable[[bytes], bytes] = self.reply

    def reply(self, query: bytes) -> bytes:
        """The TSA's honest answer: a TimeStampResp (DER) for ``query``."""
        with self.lock:  # one openssl at a time: they share the serial file
            q, r = self.dir / "q.tsq", self.dir / "r.tsr"
            q.write_bytes(query)
            subprocess.run([self.openssl, "ts", "-reply", "-config", str(self.config),
                            "-queryfile", str(q), "-out", str(r)],
                           check=True, capture_output=True, timeout=30)
            return r.read_bytes()


def resigned(reply: bytes, signer: Issued, where: Path) -> bytes:
    """``reply``'s TSTInfo signed again by ``signer`` with ``openssl cms`` (OpenSSL's TSA
    refuses a signer without the critical timeStamping EKU; a forger would not)."""
    openssl = require_openssl()
    tsr, tok, tst, out = (where / n for n in ("in.tsr", "tok.der", "tst.der", "out.der"))
    tsr.write_bytes(reply)
    for argv in (["ts", "-reply", "-in", tsr, "-token_out", "-out", tok],
                 ["cms", "-verify", "-noverify", "-inform", "DER", "-in", tok, "-out", tst],
                 ["cms", "-sign", "-binary", "-nodetach", "-nosmimecap", "-md", "sha256",
                  "-econtent_type", "1.2.840.113549.1.9.16.1.4", "-in", tst,
                  "-signer", signer.cert, "-inkey", signer.key, "-outform", "DER",
                  "-out", out]):
        subprocess.run([openssl, *map(str, argv)], check=True, capture_output=True,
                       timeout=30)
    granted = der(0x30, b"\x02\x01\x00")  # PKIStatusInfo { granted }
    return der(0x30, granted + out.read_bytes())


@contextmanager
def serving_tsa(tsa: TestTsa, *, port: int = 0) -> Iterator[str]:
    """Serve ``tsa`` over HTTP on 127.0.0.1 (``port`` 0: any free one); yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            tsa.requests.append(body)
            if self.headers.get("Content-Type") != "application/timestamp-query":
                self.send_error(415)
                return
            data = tsa.answer(body)
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/tsa"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def unused_port() -> int:
    """A port on 127.0.0.1 where nothing listens (a TSA that is down, until served)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port
