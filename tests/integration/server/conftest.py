"""Fixtures of the in-process node tests: one 3-node cluster (combined nodes) per test module.

Tests in a module share the cluster and use fresh topic names so they do not depend on each other.
"""

from __future__ import annotations

import pytest

from tests.support.inprocess_nodes import InProcessCluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with InProcessCluster(tmp_path_factory.mktemp("nodes"), controllers=3) as nodes:
        nodes.start_all()
        yield nodes
