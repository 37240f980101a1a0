"""Fixtures shared by the multi-process tests.

`kafka_cluster`: one `freshet cluster up --nodes 3` per test module, with its Kafka listeners
(`.kafka_bootstrap`, "h:p,h:p,h:p") and gRPC bootstrap (`.bootstrap`); every process it started is
killed by pid at the end of the module. Tests that kill nodes restart what they killed or use a
cluster of their own.
"""

from __future__ import annotations

import pytest

from tests.support.cli_harness import ClusterUp


@pytest.fixture(scope="module")
def kafka_cluster(tmp_path_factory):
    cluster = ClusterUp(tmp_path_factory.mktemp("kafka-cluster"))
    try:
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.close()
