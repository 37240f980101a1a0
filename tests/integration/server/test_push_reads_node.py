"""Shared push reads on real nodes, in-process (3 combined nodes on one loop).

Goal: with RF 3 the leader reads each appended range from its log once for both followers' pushes
(server/replication/push_reads.py), and the followers still end up with the leader's bytes
exactly. Method: one topic with one partition, 20 acks=all produce requests one after another;
then the counters of the leader's SharedPushReads (reached through its follower sessions) and
every replica's log read back from offset 0.
"""

from __future__ import annotations

import pytest

from tests.integration.server.test_server_data_plane import batch, leader_of, log_end, produce, topic
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


def test_followers_pushes_share_the_leaders_reads_and_get_its_bytes(cluster):
    topic(cluster, "shared-reads")
    leader = leader_of(cluster, "shared-reads", 0)
    for number in range(20):
        result = produce(cluster, leader, "shared-reads", 0, batch(5, b"x" * 1000 + bytes([number])))
        assert result.error.code == 0, result
    end = log_end(cluster, leader, "shared-reads", 0)
    assert end == 100
    wait_until(lambda: all(log_end(cluster, node, "shared-reads", 0) == end for node in cluster.nodes), 20, "followers caught up")
    sessions = [s for s in cluster.nodes[leader].data_plane.sessions if ("shared-reads", 0) in s.cursors]
    assert len(sessions) == 2
    reads = sessions[0]._reads
    assert sessions[1]._reads is reads, "both followers' sessions use the service's one SharedPushReads"
    # Each append wakes both sessions on the same turn of the loop: most pushes share a read.
    assert reads.shared >= 10, (reads.reads, reads.shared)
    leader_bytes = cluster.nodes[leader].data_plane.partitions[("shared-reads", 0)].log.read(0, 1 << 24).records
    assert len(leader_bytes) > 100_000
    for node in cluster.nodes.values():
        assert node.data_plane.partitions[("shared-reads", 0)].log.read(0, 1 << 24).records == leader_bytes
