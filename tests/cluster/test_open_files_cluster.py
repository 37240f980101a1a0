"""Three nodes that may keep only 8 segment files open each host 40 partitions at RF 3 (120
replicas), take acks=all writes to every partition, lose a node to kill -9, recover it from its
data, and serve every record back.

Goal (issue 18): a node hosts more partition replicas than its open-file budget
(`log.open.files.max`), with nothing lost or reordered, and its metrics show the cache at work.
Method: `freshet server start` processes (tests/support/node_cluster.py) with
`log.open.files.max=8`; values name their partition and sequence number; after the killed node is
back and in every ISR, the survivors stop one at a time so the restarted node must lead, and a
consumer reads all partitions from the beginning. The node's /metrics give the cache's figures,
/proc/PID/fd what it holds.
"""

from __future__ import annotations

import os
import re

import pytest
from freshet.client import Admin, Consumer, Producer, TopicPartition

from tests.support.node_cluster import NodeCluster
from tests.support.waiting import wait_until

pytestmark = pytest.mark.cluster

TOPIC = "many-logs"
PARTITIONS = 40
RECORDS_PER_PARTITION = 6
BUDGET = 8


def bootstrap_of(cluster: NodeCluster) -> str:
    return ",".join(f"127.0.0.1:{cluster.ports[n]}" for n in cluster.alive())


def metric(cluster: NodeCluster, node_id: int, name: str) -> float:
    answer = cluster.http(node_id, "/metrics")
    assert answer is not None and answer[0] == 200
    found = re.search(rf"^{name} (\S+)$", answer[1], re.MULTILINE)
    assert found is not None, name
    return float(found.group(1))


def segment_files_open(pid: int) -> int:
    count = 0
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        count += target.endswith((".log", ".index", ".timeindex")) and f"{TOPIC}-" in target
    return count


def fully_in_sync(cluster: NodeCluster) -> bool:
    with Admin(bootstrap_of(cluster)) as admin:
        partitions = admin.describe_topics([TOPIC], with_offsets=False)[0].partitions
    return len(partitions) == PARTITIONS and all(len(p.isr) == 3 for p in partitions)


def test_more_replicas_than_open_files_survive_kill_9_and_read_back(tmp_path):
    with NodeCluster(tmp_path / "cluster", sets=[f"log.open.files.max={BUDGET}"]) as cluster:
        for node_id in (1, 2, 3):
            cluster.start(node_id)
        cluster.wait_ready()
        with Admin(bootstrap_of(cluster)) as admin:
            admin.create_topic(TOPIC, PARTITIONS, 3, configs={"min.insync.replicas": "2"})
        wait_until(lambda: fully_in_sync(cluster), 60, "every partition fully in sync")
        with Producer(bootstrap_of(cluster), acks="all", linger_ms=0) as producer:
            for sequence in range(RECORDS_PER_PARTITION):
                futures = [producer.send(TOPIC, value=b"%d:%d" % (p, sequence), partition=p) for p in range(PARTITIONS)]
                producer.flush(30)
                for future in futures:
                    future.result(30)
        for node_id in (1, 2, 3):
            assert metric(cluster, node_id, "freshet_log_open_files_max") == BUDGET
            assert metric(cluster, node_id, "freshet_log_open_files") <= BUDGET
            assert metric(cluster, node_id, "freshet_log_open_files_evicted_total") > 0
            assert segment_files_open(cluster.processes[node_id].pid) <= BUDGET
        cluster.processes[3].kill()
        cluster.start(3)
        cluster.wait_ready([3], timeout_s=60)
        wait_until(lambda: fully_in_sync(cluster), 60, "node 3 back in every ISR")
        # Kill node 1 too: node 3, recovered through its 8 cached files, now leads the partitions
        # node 1 led, and the reads below come from it and node 2.
        cluster.processes[1].kill()
        wait_until(lambda: not cluster.processes[1].is_alive, 10, "node 1 gone")
        got: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
        with Consumer(bootstrap_of(cluster), enable_auto_commit=False) as consumer:
            consumer.assign([TopicPartition(TOPIC, p) for p in range(PARTITIONS)])
            consumer.seek_to_beginning(*(TopicPartition(TOPIC, p) for p in range(PARTITIONS)))

            def read_all() -> bool:
                for record in consumer.poll(500):
                    got[record.partition].append(record.value)
                return sum(map(len, got.values())) >= PARTITIONS * RECORDS_PER_PARTITION

            wait_until(read_all, 60, "every record read back", 0.0)
        assert got == {p: [b"%d:%d" % (p, s) for s in range(RECORDS_PER_PARTITION)] for p in range(PARTITIONS)}
        assert segment_files_open(cluster.processes[3].pid) <= BUDGET
        assert cluster.processes[2].is_alive and cluster.processes[3].is_alive
