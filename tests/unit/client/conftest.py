"""Fixtures of the client SDK tests: a fake cluster of three brokers on loopback, and its groups.

The cluster (tests/support/fake_broker.py) serves broker.proto over real gRPC on real partition
logs in the test's tmp_path, so the SDK runs exactly as against brokers, faults included. `groups`
adds the real group coordinator to it (tests/support/fake_groups.py).
"""

from __future__ import annotations

import pytest

from tests.support.fake_broker import FakeCluster
from tests.support.fake_groups import FakeGroups


@pytest.fixture
def cluster(tmp_path):
    with FakeCluster(str(tmp_path), broker_count=3) as fake:
        yield fake


@pytest.fixture
def groups(cluster):
    fake = FakeGroups(cluster, partitions=3)
    yield fake
    fake.close()
