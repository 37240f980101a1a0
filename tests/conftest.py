"""Fixtures shared by every test directory.

`kubectl`: the deploy tests render kustomize offline with `kubectl kustomize`. kubectl is not on a
fresh machine and not on PyPI: tests/support/debian_tools.py finds it, or installs Debian's
kubernetes-client package (apt-get as root; unprivileged, its .deb unpacked under the pytest
cache, once per machine). Anything else fails with the one command that fixes it.

`chromium`: the console's browser test drives Debian's chromium with its chromium-driver, found or
installed the same way (both need shared libraries, so only apt-get as root can provide them).
"""

from __future__ import annotations

import pytest

from tests.support.debian_tools import debian_tool


@pytest.fixture(scope="session")
def kubectl(pytestconfig, tmp_path_factory) -> str:
    cache = getattr(pytestconfig, "cache", None)           # None under -p no:cacheprovider
    where = cache.mkdir("kubectl") if cache is not None else tmp_path_factory.mktemp("kubectl")
    found = debian_tool("kubectl", "kubernetes-client", where, probe=["version", "--client"])
    assert found is not None, (
        "kubectl is needed to render the kustomize manifests offline and could not be fetched: "
        "install it (Debian: apt-get install kubernetes-client)"
    )
    return found


@pytest.fixture(scope="session")
def chromium(pytestconfig, tmp_path_factory) -> tuple[str, str]:
    """(chromium binary, chromedriver) paths."""
    cache = getattr(pytestconfig, "cache", None)
    where = cache.mkdir("chromium") if cache is not None else tmp_path_factory.mktemp("chromium")
    binary = debian_tool("chromium", "chromium", where, probe=["--headless=new", "--no-sandbox", "--version"])
    driver = debian_tool("chromedriver", "chromium-driver", where, probe=["--version"])
    assert binary is not None and driver is not None, (
        "the console's browser test needs Chromium and its driver, which could not be installed: "
        "apt-get install chromium chromium-driver"
    )
    return binary, driver
