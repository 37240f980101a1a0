"""OS crashes (power loss) of one node and of every node at once, with the OS-crash model of
tests/support/os_crash.py: a crashed node is killed with SIGKILL and every file in its data
directory (segments, indexes, checkpoints, Raft journal, meta and snapshot) rolls back to what it
held at its last fsync, then it restarts.

Goal (issue 16): with write.caching=false (durable mode) an OS crash of every node at once loses
no acknowledged acks=all record; with write.caching=true (the default, Kafka's) it may, and the
test reports how many were lost without failing on it. A single-node OS crash loses nothing in
either mode. After every crash the replicas converge and are byte-identical
(tests/cluster/test_replication_cluster.py's checks).

One module-scoped 3-node cluster (every node broker + controller, so the crash of all of them
also rolls back the whole metadata quorum).
"""

from __future__ import annotations

import json
import pathlib

import pytest
from freshet.storage.record_batch import decode_batch, iter_batches

from tests.cluster.test_replication_cluster import (
    AckedProducer,
    create,
    leader_of,
    verify_replicas,
    wait_converged,
)
from tests.support import os_crash
from tests.support.node_cluster import NodeCluster
from tests.support.replica_logs import segment_bytes

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
SETS = ["replica.lag.time.max.ms=4000", "broker.session.timeout.ms=6000"]
ASSIGNMENTS = [[1, 2, 3], [2, 3, 1], [3, 1, 2]]
#: Small segments, so that rolls (which fsync) and sealed indexes happen during the test.
SEGMENT_BYTES = str(256 * 1024)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        for key, value in os_crash.node_environment().items():
            patch.setenv(key, value)
        with NodeCluster(tmp_path_factory.mktemp("os-crash"), controllers=3, sets=SETS) as nodes:
            for node_id in nodes.ports:
                nodes.start(node_id)
            nodes.wait_ready(timeout_s=90)
            yield nodes


def create_pair(cluster: NodeCluster, suffix: str) -> tuple[str, str]:
    """A write-caching topic and a durable one, RF 3, min.insync.replicas=2."""
    cached, durable = f"cached-{suffix}", f"durable-{suffix}"
    create(cluster, cached, ASSIGNMENTS, configs={"segment.bytes": SEGMENT_BYTES})
    create(cluster, durable, ASSIGNMENTS, configs={"segment.bytes": SEGMENT_BYTES, "write.caching": "false"})
    return cached, durable


def os_crash_and_restart(cluster: NodeCluster, node_ids: list[int]) -> dict[int, list[str]]:
    """SIGKILL every node in `node_ids` (all first, then roll back), restart them, wait until ready."""
    for node_id in node_ids:
        cluster.processes[node_id].kill()
    rolled_back = {node_id: os_crash.roll_back(str(pathlib.Path(cluster.root) / f"node-{node_id}")) for node_id in node_ids}
    for node_id in node_ids:
        cluster.start(node_id)
    cluster.wait_ready(node_ids, timeout_s=120)
    return rolled_back


def lost_acknowledged(cluster: NodeCluster, topic: str, acked: list[tuple[int, int, bytes]]) -> list[str]:
    """Acknowledged records not at their acknowledged offset in the converged replicas' logs."""
    values: dict[int, dict[int, bytes]] = {}
    for number, replicas in enumerate(ASSIGNMENTS):
        images = {segment_bytes(cluster.root, node_id, topic, number) for node_id in replicas}
        assert len(images) == 1, f"{topic}-{number}: replicas differ after the crash"
        values[number] = {
            record.offset: record.value for _, view in iter_batches(images.pop()) for record in decode_batch(view).records
        }
    return [f"{topic}-{number}@{offset}: {value!r}" for number, offset, value in acked if values[number].get(offset) != value]


def run_producers(cluster: NodeCluster, topics: tuple[str, str], tag: str) -> tuple[AckedProducer, AckedProducer]:
    producers = (AckedProducer(cluster, topics[0], len(ASSIGNMENTS), f"{tag}c"),
                 AckedProducer(cluster, topics[1], len(ASSIGNMENTS), f"{tag}d"))
    for producer in producers:
        producer.start()
    return producers


def test_an_os_crash_of_every_node_loses_nothing_acknowledged_in_durable_mode(cluster):
    """Both topics under load; all three nodes crash at once. Durable: every acknowledged record
    is still there (fails otherwise). Write caching: the number lost is reported."""
    cached, durable = create_pair(cluster, "all")
    producers = run_producers(cluster, (cached, durable), "a")
    try:
        for producer in producers:
            producer.wait_acks(1500, 90)
        rolled_back = os_crash_and_restart(cluster, [1, 2, 3])
        for producer in producers:
            producer.wait_acks(200, 120)
    finally:
        for producer in producers:
            producer.stop()
    cached_producer, durable_producer = producers
    checked = verify_replicas(cluster, durable, ASSIGNMENTS, durable_producer.acked)
    assert checked == len(durable_producer.acked)
    wait_converged(cluster, cached, ASSIGNMENTS)
    lost = lost_acknowledged(cluster, cached, cached_producer.acked)
    report = {
        "os_crash": "every node",
        "durable_acked": len(durable_producer.acked), "durable_lost": 0,
        "cached_acked": len(cached_producer.acked), "cached_lost": len(lost),
        "cached_failed_sends": len(cached_producer.failed), "durable_failed_sends": len(durable_producer.failed),
        "files_rolled_back": sum(len(changes) for changes in rolled_back.values()),
        "segment_bytes": int(SEGMENT_BYTES),
    }
    print(json.dumps(report))
    assert report["files_rolled_back"] > 0, "the crash model rolled nothing back: it is not installed"


def test_an_os_crash_of_one_node_loses_nothing_in_either_mode(cluster):
    """The leader of partition 0 of the durable topic crashes (power loss) under load and comes
    back: it recovers what it fsynced, re-replicates the rest, and nothing acknowledged is lost."""
    cached, durable = create_pair(cluster, "one")
    producers = run_producers(cluster, (cached, durable), "o")
    try:
        for producer in producers:
            producer.wait_acks(800, 90)
        victim = leader_of(cluster, durable, 0)
        assert victim in (1, 2, 3)
        rolled_back = os_crash_and_restart(cluster, [victim])
        assert rolled_back[victim], "the crash model rolled nothing back"
        for producer in producers:
            producer.wait_acks(300, 120)
    finally:
        for producer in producers:
            producer.stop()
    for topic, producer in zip((cached, durable), producers, strict=True):
        checked = verify_replicas(cluster, topic, ASSIGNMENTS, producer.acked)
        assert checked == len(producer.acked) >= 1100
