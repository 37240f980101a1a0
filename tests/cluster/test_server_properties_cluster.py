"""A 3-node cluster started from Kafka's server.properties files (`freshet server start --config`).

Goal (issue 17, "Config files"): three real nodes started with nothing but `--config
node-N.properties` (made from deploy/server.properties with each node's ports, id and directory)
form a quorum, and the Kafka settings of the file take effect: the FRESHET, PLAINTEXT (Kafka
protocol), CONTROLLER (Raft) and HTTP listeners answer; a topic auto-created by a Kafka client gets
num.partitions and default.replication.factor; log.retention.hours becomes the cluster-wide
retention.ms; log.retention.check.interval.ms=1000 makes retention delete expired segments within
seconds (the default, 300 s, would not within this test); every ignored Kafka key printed one
warning line. Method: NodeCluster with its argv replaced by `--config FILE`; the Freshet SDK and
confluent-kafka (librdkafka) as clients. Reference: Kafka's config/kraft/server.properties.
"""

from __future__ import annotations

import pathlib
import re
import sys
import time

import pytest
from confluent_kafka import Producer as KafkaProducer
from confluent_kafka.admin import AdminClient
from freshet.client import Admin, Producer
from freshet.client.admin_results import ConfigResource

from tests.support.node_cluster import NodeCluster
from tests.support.ports import free_port_block
from tests.support.waiting import wait_until

pytestmark = pytest.mark.cluster

TEMPLATE = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "server.properties"
RETENTION_HOURS = 100
EXTRA = f"""
# Test settings (later duplicates win, as java.util.Properties)
num.partitions=3
default.replication.factor=3
offsets.topic.replication.factor=3
auto.create.topics.enable=true
log.retention.hours={RETENTION_HOURS}
log.retention.check.interval.ms=1000
"""


class PropertiesCluster(NodeCluster):
    """NodeCluster whose nodes start from server.properties files: gRPC P, Raft P+1, HTTP P+2,
    Kafka P+3. Not thread-safe."""

    def __init__(self, root: pathlib.Path) -> None:
        super().__init__(root, controllers=3)
        self.ports = {node_id: free_port_block(4) for node_id in self.controller_ids}
        self.quorum = ",".join(f"{n}@127.0.0.1:{self.ports[n] + 1}" for n in self.controller_ids)

    def kafka_bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.ports[n] + 3}" for n in self.controller_ids)

    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.ports[n]}" for n in self.controller_ids)

    def properties(self, node_id: int) -> pathlib.Path:
        port = self.ports[node_id]
        replace = {
            "node.id": str(node_id),
            "controller.quorum.voters": self.quorum,
            "listeners": f"FRESHET://127.0.0.1:{port},PLAINTEXT://127.0.0.1:{port + 3},CONTROLLER://127.0.0.1:{port + 1}",
            "advertised.listeners": f"FRESHET://127.0.0.1:{port},PLAINTEXT://127.0.0.1:{port + 3}",
            "http.listen": f"127.0.0.1:{port + 2}",
            "log.dirs": str(self.root / f"node-{node_id}"),
        }
        text = TEMPLATE.read_text()
        for key, value in replace.items():
            text, count = re.subn(rf"^{re.escape(key)}=.*$", f"{key}={value}", text, flags=re.MULTILINE)
            assert count == 1, f"{key} is not in {TEMPLATE} once"
        path = self.root / f"node-{node_id}.properties"
        path.write_text(text + EXTRA)
        return path

    def argv(self, node_id: int, roles: str) -> list[str]:
        return [sys.executable, "-m", "freshet.cli.main", "server", "start", "--config", str(self.properties(node_id))]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with PropertiesCluster(tmp_path_factory.mktemp("properties-cluster")) as nodes:
        for node_id in nodes.controller_ids:
            nodes.start(node_id)
        nodes.wait_ready(timeout_s=90)
        yield nodes


def test_every_ignored_kafka_key_printed_one_warning(cluster):
    text = cluster.processes[1].log_text()
    for key in ("num.network.threads", "num.io.threads", "socket.receive.buffer.bytes", "transaction.state.log.min.isr"):
        lines = [line for line in text.splitlines() if f"warning: ignoring Kafka setting {key} (" in line]
        assert len(lines) == 1, text[-3000:]
    assert "Traceback" not in text


def test_listeners_and_quorum_from_the_files(cluster):
    with Admin(cluster.bootstrap()) as admin:
        description = admin.describe_cluster()
        assert sorted(broker.node.node_id for broker in description.brokers) == [1, 2, 3]
        assert all(broker.state == "active" for broker in description.brokers)
        quorum = admin.describe_quorum()
        assert quorum.has_quorum
        assert {voter.node_id: voter.raft_address for voter in quorum.voters} == {
            n: f"127.0.0.1:{cluster.ports[n] + 1}" for n in cluster.controller_ids
        }
    metadata = AdminClient({"bootstrap.servers": cluster.kafka_bootstrap()}).list_topics(timeout=15)
    assert sorted(f"{b.host}:{b.port}" for b in metadata.brokers.values()) == sorted(cluster.kafka_bootstrap().split(","))


def test_log_retention_hours_became_the_cluster_default(cluster):
    with Admin(cluster.bootstrap()) as admin:

        def retention():
            entries = {entry.key: entry for entry in admin.describe_configs(ConfigResource.cluster(), ["retention.ms"])}
            entry = entries.get("retention.ms")
            return entry if entry is not None and entry.source == "dynamic_cluster" else None

        entry = wait_until(retention, 20, "retention.ms written by the active controller", 0.2)
        assert entry.value == str(RETENTION_HOURS * 3_600_000)


def test_an_auto_created_topic_gets_num_partitions_and_replication_factor(cluster):
    producer = KafkaProducer({"bootstrap.servers": cluster.kafka_bootstrap(), "acks": "all"})
    delivered = []
    producer.produce("auto-created", b"hello", on_delivery=lambda error, message: delivered.append(error))
    assert producer.flush(30) == 0
    assert delivered == [None]
    with Admin(cluster.bootstrap()) as admin:
        (topic,) = admin.describe_topics(["auto-created"], with_offsets=False)
    assert len(topic.partitions) == 3
    assert all(len(partition.replicas) == 3 for partition in topic.partitions)


def test_retention_runs_at_the_configured_check_interval(cluster):
    with Admin(cluster.bootstrap()) as admin:
        admin.create_topic("short-lived", 1, 3, configs={"retention.ms": "1000", "segment.bytes": "1024"})
        with Producer(cluster.bootstrap(), acks="all", linger_ms=0) as producer:
            for index in range(12):
                producer.send("short-lived", value=bytes([65 + index]) * 700).result()
        produced_at = time.monotonic()

        def log_start():
            (topic,) = admin.describe_topics(["short-lived"])
            offset = topic.partitions[0].log_start_offset
            return offset if offset is not None and offset >= 10 else None

        # Every segment expires 1 s after its record (the active one is rolled then). Retention
        # passes every second delete them one pass after another; with the default interval the
        # first pass would come 300 s after the node started.
        start = wait_until(log_start, 30, "retention to delete the expired segments", 0.25)
        waited_s = time.monotonic() - produced_at
    assert 10 <= start <= 12, start       # 12: the log end offset
    assert waited_s < 30


def test_a_later_cluster_value_survives_a_controller_failover(cluster):
    """The file's defaults are written only where the cluster has no value: after `config
    --cluster` changes retention.ms, the next active controller (same file) must not undo it."""
    changed = "123456789"
    with Admin(cluster.bootstrap()) as admin:
        wait_until(lambda: admin.describe_configs(ConfigResource.cluster(), ["retention.ms"])[0].source == "dynamic_cluster",
                   20, "the file's retention.ms written", 0.2)
        admin.alter_configs(ConfigResource.cluster(), set={"retention.ms": changed})
    active = cluster.active_controller()
    cluster.processes[active].kill()
    survivors = [node_id for node_id in cluster.controller_ids if node_id != active]
    successor = cluster.active_controller(among=survivors, timeout_s=30)
    assert successor != active
    bootstrap = ",".join(f"127.0.0.1:{cluster.ports[n]}" for n in survivors)
    with Admin(bootstrap) as admin:
        # The successor's activation (and its topic-defaults pass) is done once it serves requests.
        wait_until(lambda: admin.describe_cluster().controller_id == successor, 30, "the successor serves", 0.2)
        time.sleep(2.0)
        (entry,) = admin.describe_configs(ConfigResource.cluster(), ["retention.ms"])
        assert (entry.value, entry.source) == (changed, "dynamic_cluster")
        assert "auto-created" in {topic.name for topic in admin.list_topics()}
    cluster.start(active)
    cluster.wait_ready([active], timeout_s=60)
    with Admin(cluster.bootstrap()) as admin:
        (entry,) = admin.describe_configs(ConfigResource.cluster(), ["retention.ms"])
        assert entry.value == changed
