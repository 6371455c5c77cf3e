"""TLS probes on raw sockets: the certificate as served, whether it verifies, and
which protocol versions the server accepts (httpx cannot pin a version)."""

from __future__ import annotations

import datetime
import socket
import ssl
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID

_CONNECT_TIMEOUT = 5.0


def _handshake(host: str, port: int, context: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT)
    try:
        return context.wrap_socket(raw, server_hostname=host)
    except BaseException:
        raw.close()
        raise


def _unverified() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def certificate_facts(host: str, port: int) -> dict[str, Any]:
    """The leaf certificate as served: names, issuer, validity (JSON-safe)."""
    with _handshake(host, port, _unverified()) as tls:
        der = tls.getpeercert(binary_form=True)
        version = tls.version()
    if not der:
        raise ValueError("the server sent no certificate")
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
        general = san.value
        assert isinstance(general, x509.SubjectAlternativeName)
        names = [str(n) for n in general.get_values_for_type(x509.DNSName)]
        names += [str(ip) for ip in general.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    now = datetime.datetime.now(datetime.UTC)
    expires = cert.not_valid_after_utc
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "self_signed": cert.issuer == cert.subject,
        "names": names,
        "not_after": expires.isoformat(),
        "days_left": (expires - now).total_seconds() / 86400,
        "negotiated": version,
    }


def verify_error(host: str, port: int, ca: str | None) -> str | None:
    """None when the chain and the name verify (against ``ca`` when given, else the
    system's trust store); else OpenSSL's reason."""
    context = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
    try:
        with _handshake(host, port, context):
            return None
    except ssl.SSLCertVerificationError as error:
        return str(error.verify_message or error)


def protocol_accepted(host: str, port: int, name: str) -> bool | None:
    """Whether a handshake pinned to one TLS version succeeds; None when this
    machine's OpenSSL cannot even offer that version (so we cannot tell)."""
    version = getattr(ssl.TLSVersion, name)
    context = _unverified()
    try:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # old versions need legacy ciphers
        context.minimum_version = version
        context.maximum_version = version
    except (ssl.SSLError, ValueError):
        return None
    try:
        with _handshake(host, port, context):
            return True
    except ssl.SSLError as error:
        if "no protocols available" in str(error).lower():
            return None
        return False
    except (ConnectionResetError, ConnectionAbortedError):
        return False  # refused during the handshake (some servers reset, not alert)
