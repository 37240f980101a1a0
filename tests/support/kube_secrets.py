"""Kubernetes Secrets for the deploy tests: a CA and node certificates, and Secret volumes on disk.

Not a test module. The deploy tests (tests/unit/deploy, tests/cluster/test_deploy_pods.py) run the
manifests' node configuration outside Kubernetes; what the kubelet would provide, this makes:

- `TestCa`: a private CA that issues certificates with a common name, DNS and IP subject
  alternative names and both server and client auth usages, as the cert-manager Certificate of
  deploy/kubernetes/components/cert-manager does. The x509 work is the product's own
  (freshet.server.security.certificates, which `cluster up --secure` uses); this only shapes its
  output as a kubernetes.io/tls Secret.
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
import itertools
import os
import pathlib
from collections.abc import Mapping, Sequence

from cryptography import x509
from freshet.server.security import certificates

#: Test certificates outlive any test run, and no longer.
_VALIDITY_DAYS = 2


@dataclasses.dataclass
class TestCa:
    """A private CA. Not thread-safe (tests only)."""

    __test__ = False   # not a pytest test class

    common_name: str = "freshet-test-ca"

    def __post_init__(self) -> None:
        self.issued = certificates.create_ca(self.common_name)

    @property
    def certificate(self) -> x509.Certificate:
        return self.issued.certificate

    @property
    def certificate_pem(self) -> bytes:
        return self.issued.certificate_pem

    def issue(self, common_name: str, dns_names: Sequence[str] = (), ip_addresses: Sequence[str] = ()) -> tuple[bytes, bytes]:
        """(certificate PEM, private key PEM) for COMMON_NAME, usable as server and client."""
        hosts = tuple(dict.fromkeys([*dns_names, *ip_addresses]))      # in order, once each
        leaf = certificates.issue(self.issued, common_name, hosts, validity_days=_VALIDITY_DAYS)
        return leaf.certificate_pem, leaf.key_pem

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
