"""Kubernetes Secrets for the deploy tests: a CA and node certificates, and Secret volumes on disk.

Not a test module. The deploy tests (tests/unit/deploy, tests/cluster/test_deploy_pods.py) run the
manifests' node configuration outside Kubernetes; what the kubelet would provide, this makes:

- `TestCa`: a private CA (the `cryptography` package) that issues certificates with a common name,
  DNS and IP subject alternative names and both server and client auth usages, as the
  cert-manager Certificate of deploy/kubernetes/components/cert-manager does.
- `SecretVolume`: a Secret mounted the way the kubelet's AtomicWriter lays it out: the data in a
  timestamped directory `..2026_...`, a `..data` symlink to it, and one symlink per key through
  `..data`. `update()` swaps `..data` atomically as the kubelet does when the Secret changes, so
  a node that reloads its certificate from disk sees exactly what it sees in a pod.
- `localize_config()`: the ConfigMap's server.toml with every path under a mounted volume moved to
  where the test mounted it.

Thread-safety: none needed (tests call it from one thread).
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import itertools
import os
import pathlib
from collections.abc import Mapping, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=2)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


@dataclasses.dataclass
class TestCa:
    """A private CA. Not thread-safe (tests only)."""

    __test__ = False   # not a pytest test class

    common_name: str = "freshet-test-ca"
    key: ec.EllipticCurvePrivateKey = dataclasses.field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    def __post_init__(self) -> None:
        now = datetime.datetime.now(datetime.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.common_name)])
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue(self, common_name: str, dns_names: Sequence[str] = (), ip_addresses: Sequence[str] = ()) -> tuple[bytes, bytes]:
        """(certificate PEM, private key PEM) for COMMON_NAME, usable as server and client."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
        names += [x509.IPAddress(ipaddress.ip_address(address)) for address in ip_addresses]
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        certificate = builder.sign(self.key, hashes.SHA256())
        return certificate.public_bytes(serialization.Encoding.PEM), _pem_key(key)

    def tls_secret(self, common_name: str, dns_names: Sequence[str] = (), ip_addresses: Sequence[str] = ()) -> dict[str, bytes]:
        """The data of a kubernetes.io/tls Secret as cert-manager writes it: tls.crt, tls.key, ca.crt."""
        certificate, key = self.issue(common_name, dns_names, ip_addresses)
        return {"tls.crt": certificate, "tls.key": key, "ca.crt": self.certificate_pem}


_generation = itertools.count(1)


class SecretVolume:
    """A Secret volume laid out as the kubelet does (module docstring). Not thread-safe."""

    def __init__(self, directory: pathlib.Path, data: Mapping[str, bytes], items: Mapping[str, str] | None = None) -> None:
        """`items`: Secret key -> file name (the volume's `items`); None: every key, as its name."""
        self.directory = directory
        self.items = dict(items) if items is not None else {key: key for key in data}
        directory.mkdir(parents=True, exist_ok=True)
        self.update(data)
        for path in self.items.values():
            os.symlink(os.path.join("..data", path), directory / path)

    def update(self, data: Mapping[str, bytes]) -> None:
        """Replace the Secret's data atomically: new timestamped directory, `..data` swapped by rename."""
        stamp = f"..{datetime.datetime.now(datetime.UTC):%Y_%m_%d_%H_%M_%S}.{next(_generation)}"
        target = self.directory / stamp
        target.mkdir()
        for key, path in self.items.items():
            (target / path).write_bytes(data[key])
            os.chmod(target / path, 0o440)
        link = self.directory / "..data"
        previous = os.readlink(link) if link.is_symlink() else None
        os.symlink(stamp, self.directory / "..data_tmp")
        os.replace(self.directory / "..data_tmp", link)
        if previous is not None:
            for file in (self.directory / previous).iterdir():
                file.unlink()
            (self.directory / previous).rmdir()


def localize_config(toml_text: str, mounts: Mapping[str, pathlib.Path]) -> str:
    """TOML_TEXT with every quoted path under a mount path (e.g. "/var/run/secrets/freshet/tls/...")
    moved under the local directory standing in for that volume."""
    for mount_path, local in mounts.items():
        toml_text = toml_text.replace(f'"{mount_path.rstrip("/")}/', f'"{local}/')
    return toml_text
