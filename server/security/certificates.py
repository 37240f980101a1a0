"""Certificates for local and test clusters: a CA, and certificates it signs (cryptography).

Owns making key pairs and X.509 certificates, and writing them as PEM files readable by their
owner only (mode 0600): `freshet cluster up --secure` creates its CA and node certificate with it,
and the tests make rogue CAs and rotated certificates the same way. Production certificates come
from the operator's PKI (cert-manager, ...); nothing here runs in a production node.

Keys are ECDSA P-256 (small, fast handshakes; every TLS stack in use here accepts them).

Imports: the `cryptography` package, standard library. Thread-safety: pure functions (they write
only the files they are given).
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALIDITY_DAYS = 3650
CERTIFICATE_VALIDITY_DAYS = 825


@dataclasses.dataclass(frozen=True)
class Issued:
    """A certificate and its private key, both PEM. Thread-safe (immutable)."""

    certificate_pem: bytes
    key_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.certificate_pem)

    @property
    def serial_number(self) -> int:
        return self.certificate.serial_number


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def create_ca(common_name: str = "freshet-local-ca") -> Issued:
    """A self-signed CA certificate (path length 0: it signs leaf certificates only)."""
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(certificate.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def issue(
    ca: Issued,
    common_name: str,
    hosts: tuple[str, ...] = (),
    validity_days: int = CERTIFICATE_VALIDITY_DAYS,
) -> Issued:
    """A leaf certificate signed by `ca` for `common_name`, usable as TLS server and client
    certificate (nodes are both), with `hosts` (DNS names or IP addresses) as subject alternative
    names. Each call makes a new key and a new random serial number."""
    ca_certificate = ca.certificate
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    key = _key()
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=validity_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_certificate.public_key()), critical=False
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    certificate = builder.sign(ca_key, hashes.SHA256())
    return Issued(certificate.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def write_private(path: str, data: bytes) -> None:
    """Write `data` to `path` with mode 0600, atomically (a reader never sees half a file: nodes
    watch these files for rotation)."""
    temporary = f"{path}.tmp-{os.getpid()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def read_issued(certificate_path: str, key_path: str) -> Issued:
    """An Issued from its two PEM files. Raises OSError."""
    with open(certificate_path, "rb") as file:
        certificate_pem = file.read()
    with open(key_path, "rb") as file:
        key_pem = file.read()
    return Issued(certificate_pem, key_pem)
