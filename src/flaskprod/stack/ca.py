"""The local certificate authority of ``flaskprod up``.

A CA of our own (rather than a self-signed server certificate) lets curl, httpx and
browsers trust the stack through one file, and lets the server certificate be
re-issued without asking the user to trust anything again. Everything lives in the
state folder, is made once and reused; private keys are 0600.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: Names the server certificate covers: what a browser on this machine may type.
SERVER_NAMES = ("localhost",)
SERVER_ADDRESSES = ("127.0.0.1", "::1")

# Browsers refuse leaf certificates valid longer than 398 days; renew well before.
_LEAF_DAYS = 397
_RENEW_BEFORE = datetime.timedelta(days=30)
_CA_DAYS = 3650


@dataclass(frozen=True)
class LocalCA:
    """Paths of the CA and of the server certificate it signed."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path

    def spki_sha256(self) -> str:
        """Base64 SHA-256 of the server key's SubjectPublicKeyInfo (Chromium's
        ``--ignore-certificate-errors-spki-list`` and HPKP format)."""
        return spki_sha256(self.server_cert)


def spki_sha256(cert_path: Path) -> str:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def _write_private(path: Path, data: bytes, mode: int) -> None:
    # Created with its final mode (never world-readable, even for a moment) and
    # moved into place, so a crash never leaves half a key behind.
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    tmp.chmod(mode)
    tmp.replace(path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _make_ca(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    hostname = os.uname().nodename
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "flaskprod local CA"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"flaskprod local CA ({hostname})"),
        ]
    )
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=_CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(folder / "ca-key.pem", _key_pem(key), 0o600)
    _write_private(folder / "ca.pem", cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert, key


def _make_server(
    folder: Path, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    san = [x509.DNSName(n) for n in SERVER_NAMES] + [
        x509.IPAddress(ipaddress.ip_address(a)) for a in SERVER_ADDRESSES
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=_LEAF_DAYS))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(folder / "server-key.pem", _key_pem(key), 0o600)
    # The chain nginx sends: leaf then CA, so clients holding only the CA verify.
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(
        serialization.Encoding.PEM
    )
    _write_private(folder / "server.pem", chain, 0o644)


def _server_is_usable(cert_path: Path, ca_cert: x509.Certificate) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return False
    return cert.issuer == ca_cert.subject and cert.not_valid_after_utc - _RENEW_BEFORE > _now()


def ensure_ca(folder: Path) -> LocalCA:
    """The CA and server certificate in ``folder``, made on first use and reused;
    the server certificate is re-issued when it is near expiry or from another CA."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    paths = LocalCA(
        ca_cert=folder / "ca.pem",
        ca_key=folder / "ca-key.pem",
        server_cert=folder / "server.pem",
        server_key=folder / "server-key.pem",
    )
    ca_cert: x509.Certificate | None = None
    ca_key: ec.EllipticCurvePrivateKey | None = None
    if paths.ca_cert.exists() and paths.ca_key.exists():
        try:
            ca_cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
            loaded = serialization.load_pem_private_key(paths.ca_key.read_bytes(), None)
            ca_key = loaded if isinstance(loaded, ec.EllipticCurvePrivateKey) else None
        except ValueError:
            ca_cert = ca_key = None
        if ca_cert is not None and ca_cert.not_valid_after_utc - _RENEW_BEFORE <= _now():
            ca_cert = ca_key = None
    if ca_cert is None or ca_key is None:
        ca_cert, ca_key = _make_ca(folder)
        paths.server_cert.unlink(missing_ok=True)
    if not (paths.server_key.exists() and _server_is_usable(paths.server_cert, ca_cert)):
        _make_server(folder, ca_cert, ca_key)
    return paths
