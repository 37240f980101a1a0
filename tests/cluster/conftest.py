"""Fixtures shared by the multi-process tests.

`kafka_cluster`: one `freshet cluster up --nodes 3` per test module, with its Kafka listeners
(`.kafka_bootstrap`, "h:p,h:p,h:p") and gRPC bootstrap (`.bootstrap`); every process it started is
killed by pid at the end of the module. Tests that kill nodes restart what they killed or use a
cluster of their own.

`kcat`: the path of Debian's kcat (the Kafka-protocol tests' reference client), found or installed
by tests/support/debian_tools.py as `kubectl` is (apt-get as root; .ci/run installs it up front).
"""

from __future__ import annotations

import pytest

from tests.support.cli_harness import ClusterUp
from tests.support.debian_tools import debian_tool


@pytest.fixture(scope="module")
def kafka_cluster(tmp_path_factory):
    cluster = ClusterUp(tmp_path_factory.mktemp("kafka-cluster"))
    try:
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def kcat(pytestconfig, tmp_path_factory) -> str:
    cache = getattr(pytestconfig, "cache", None)           # None under -p no:cacheprovider
    where = cache.mkdir("kcat") if cache is not None else tmp_path_factory.mktemp("kcat")
    found = debian_tool("kcat", "kcat", where, probe=["-V"])
    assert found is not None, "kcat is needed by the Kafka-protocol tests and could not be installed: apt-get install kcat"
    return found
