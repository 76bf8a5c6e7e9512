"""A certificate authority made in a test: a root and the leaves it signs, as PEM files
(real X.509 from the ``cryptography`` package, EC P-256), and client TLS contexts."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Agency"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(where: Path, stem: str, key: ec.EllipticCurvePrivateKey,
           cert: x509.Certificate) -> Issued:
    issued = Issued(cert=where / f"{stem}.pem", key=where / f"{stem}.key")
    issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    issued.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    return issued


class CertAuthority:
    """A certificate authority for one test: a root, and leaves it signs."""

    def __init__(self, where: Path, name: str) -> None:
        self.where, self.key = where, ec.generate_private_key(ec.SECP256R1())
        self.name, self.label = _name(name), name
        now = datetime.now(UTC)
        self.cert = (self._builder(self.name, self.key.public_key(), now)
                     .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
                     .add_extension(x509.KeyUsage(False, False, False, False, False, True,
                                                  True, False, False), True)
                     .sign(self.key, hashes.SHA256()))
        self.root = _write(where, name, self.key, self.cert)

    def _builder(self, subject: x509.Name, public: Any, now: datetime) -> Any:
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(self.name)
                .public_key(public).serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(minutes=5))
                .not_valid_after(now + timedelta(days=1))
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), False))

    def issue(self, cn: str, *, server: bool = False) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (self._builder(_name(cn), key.public_key(), datetime.now(UTC))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       self.key.public_key()), False))
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(IPv4Address("127.0.0.1"))]), False)
        return _write(self.where, f"{self.label}-{cn}", key,
                      builder.sign(self.key, hashes.SHA256()))


def trusting(ca: CertAuthority, client: Issued | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca.root.cert))
    if client is not None:
        ctx.load_cert_chain(str(client.cert), str(client.key))
    return ctx
