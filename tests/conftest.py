"""Fixtures shared by every test directory.

`kubectl`: the deploy tests render kustomize offline with `kubectl kustomize`. kubectl is not on a
fresh machine and not on PyPI, so when it is not on PATH this fetches Debian's kubernetes-client
package with apt (no root needed when the package lists are present; as root it refreshes them)
and unpacks it under the pytest cache, once per machine. Anything else fails with the one command
that fixes it.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import tempfile

import pytest


def _fetch_debian_kubectl(cache: pathlib.Path) -> pathlib.Path | None:
    binary = cache / "usr" / "bin" / "kubectl"
    if binary.exists():
        return binary
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        return None
    with tempfile.TemporaryDirectory() as work:
        download = ["apt-get", "download", "-qq", "kubernetes-client"]
        result = subprocess.run(download, cwd=work, capture_output=True, timeout=300)
        if result.returncode != 0 and os.geteuid() == 0:
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=300)
            result = subprocess.run(download, cwd=work, capture_output=True, timeout=300)
        packages = list(pathlib.Path(work).glob("kubernetes-client_*.deb"))
        if result.returncode != 0 or not packages:
            return None
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg-deb", "-x", str(packages[0]), str(cache)], check=True, timeout=120)
    return binary if binary.exists() else None


@pytest.fixture(scope="session")
def kubectl(pytestconfig, tmp_path_factory) -> str:
    found = shutil.which("kubectl")
    if found:
        return found
    cache = getattr(pytestconfig, "cache", None)           # None under -p no:cacheprovider
    where = cache.mkdir("kubectl") if cache is not None else tmp_path_factory.mktemp("kubectl")
    fetched = _fetch_debian_kubectl(where)
    assert fetched is not None, (
        "kubectl is needed to render the kustomize manifests offline and could not be fetched: "
        "install it (Debian: apt-get install kubernetes-client)"
    )
    return str(fetched)
