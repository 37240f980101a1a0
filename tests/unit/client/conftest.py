"""Fixtures of the client SDK tests: a fake cluster of three brokers, and its groups.

The cluster (tests/support/fake_broker.py) serves broker.proto on real partition logs in the
test's tmp_path, so the SDK runs exactly as against brokers, faults included. `cluster` serves over
real gRPC on loopback; `memory_cluster` serves the same servicers over an in-memory network
(tests/support/memory_transport.py) that clients reach with `transport=memory_cluster.transport()`,
no sockets. `groups` / `memory_groups` add the real group coordinator (tests/support/fake_groups.py).
"""

from __future__ import annotations

import pytest

from tests.support.fake_broker import FakeCluster
from tests.support.fake_groups import FakeGroups
from tests.support.memory_transport import InMemoryNetwork


@pytest.fixture
def cluster(tmp_path):
    with FakeCluster(str(tmp_path), broker_count=3) as fake:
        yield fake


@pytest.fixture
def groups(cluster):
    fake = FakeGroups(cluster, partitions=3)
    yield fake
    fake.close()


@pytest.fixture
def memory_cluster(tmp_path):
    with InMemoryNetwork() as network, FakeCluster(str(tmp_path), broker_count=3, network=network) as fake:
        yield fake


@pytest.fixture
def memory_groups(memory_cluster):
    fake = FakeGroups(memory_cluster, partitions=3)
    yield fake
    fake.close()
