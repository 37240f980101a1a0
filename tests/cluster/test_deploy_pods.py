"""The Kubernetes layout, run as local processes: pods form a cluster, and a rolling restart loses nothing.

Goal (issue 8): the StatefulSet in deploy/kubernetes/base works as written, without a Kubernetes
cluster at hand. Method: render the base with `kubectl kustomize`, take the container's command
(the Dockerfile's ENTRYPOINT + the manifest's args) and env, fill in what Kubernetes would
(POD_NAME, POD_NAMESPACE from the downward API, the Secret), and start ordinals 0..2 as processes.
Each "pod" lives on its own loopback address, 127.0.0.11..13, standing in for its stable DNS name
through FRESHET_HOST_ALIASES (a hosts mapping the node reads, like a pod's hostAliases). Only
two things differ from a real pod: the data volume and the ConfigMap are local files, and the
port block (gRPC 9092 .. Kafka 9095) moves when that is taken on these addresses.

Kafka clients (kafka-python, librdkafka) bootstrapped at each pod's advertised Kafka address get
Metadata naming every broker at its advertised Kafka address: the names the pods derive from
FRESHET_KAFKA_PORT are the ones clients then connect to. Only Metadata: the Kafka listener does
not serve Produce/Fetch yet.

Then the rolling restart the StatefulSet controller does on `kubectl rollout restart`: highest
ordinal first, SIGTERM, wait until the pod is ready again and no partition is under-replicated,
then the next, while an acks=all idempotent producer runs. What survived is checked record by
record: every acknowledged record is read back at exactly its acknowledged offset.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import grpc
import kafka
import pytest
import yaml
from confluent_kafka.admin import AdminClient
from freshet.client import Consumer, Producer, TopicPartition
from freshet.v1 import broker_pb2, broker_pb2_grpc, controller_pb2, controller_pb2_grpc

from tests.support.node_cluster import NodeProcess
from tests.support.ports import free_port_block, port_block_is_free
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

REPO = pathlib.Path(__file__).resolve().parents[2]
PODS = 3
ADDRESSES = [f"127.0.0.{11 + ordinal}" for ordinal in range(PODS)]
NAMESPACE = "streaming"
SECRET = "pod-simulation-secret"


def _render_statefulset(kubectl: str) -> tuple[dict, dict]:
    rendered = subprocess.run(
        [kubectl, "kustomize", str(REPO / "deploy" / "kubernetes" / "base")],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    docs = [doc for doc in yaml.safe_load_all(rendered) if doc]
    (statefulset,) = [doc for doc in docs if doc["kind"] == "StatefulSet"]
    (config_map,) = [doc for doc in docs if doc["kind"] == "ConfigMap"]
    return statefulset, config_map


def _entrypoint() -> list[str]:
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", dockerfile, re.M).group(1))
    assert entrypoint[0] == "freshet"
    return [sys.executable, "-m", "freshet.cli.main", *entrypoint[1:]]


def _choose_port(default: int, count: int = 3) -> int:
    """The manifest's port block (`count` ports from `default`) when it is free on the pods'
    addresses, else a free one."""
    hosts = tuple(ADDRESSES)
    return default if port_block_is_free(default, count, hosts) else free_port_block(count, hosts=hosts)


class PodCluster:
    """Pods freshet-0..2 of the base StatefulSet as processes. Not thread-safe."""

    def __init__(self, root: pathlib.Path, kubectl: str) -> None:
        self.root = root
        statefulset, config_map = _render_statefulset(kubectl)
        self.statefulset_name = statefulset["metadata"]["name"]
        assert statefulset["spec"]["replicas"] == PODS
        container = statefulset["spec"]["template"]["spec"]["containers"][0]
        self.argv = _entrypoint() + container["args"]
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        self.port = _choose_port(ports["grpc"], max(ports.values()) - ports["grpc"] + 1)
        self.http_port = ports["http"] - ports["grpc"] + self.port
        self.kafka_port = ports["kafka"] - ports["grpc"] + self.port
        self.manifest_env = {item["name"]: item for item in container["env"]}
        # The pods listen where the container port says: the env and the port agree.
        assert self.manifest_env["FRESHET_KAFKA_PORT"]["value"] == str(ports["kafka"])
        service = self.manifest_env["FRESHET_SERVICE"]["value"]
        self.names = [f"{self.statefulset_name}-{i}.{service}.{NAMESPACE}.svc" for i in range(PODS)]
        config_path = pathlib.PurePosixPath(self.manifest_env["FRESHET_CONFIG"]["value"])
        self.config_file = root / config_path.name
        self.config_file.write_text(config_map["data"][config_path.name])
        self.processes: dict[int, NodeProcess] = {}
        self.all_processes: list[NodeProcess] = []

    def environment(self, ordinal: int) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("POD_", "FRESHET_"))}
        for name, item in self.manifest_env.items():
            source = item.get("valueFrom", {})
            if "value" in item:
                env[name] = item["value"]
            elif source.get("fieldRef", {}).get("fieldPath") == "metadata.name":
                env[name] = f"{self.statefulset_name}-{ordinal}"
            elif source.get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
                env[name] = NAMESPACE
            elif "secretKeyRef" in source:
                env[name] = SECRET
            else:
                raise AssertionError(f"the simulation does not know how to fill {name}: {item}")
        # What differs from a real pod: local volume and config, hosts mapping, maybe the port.
        env["FRESHET_DATA_DIR"] = str(self.root / f"data-{ordinal}")
        env["FRESHET_CONFIG"] = str(self.config_file)
        env["FRESHET_HOST_ALIASES"] = ",".join(f"{n}={a}" for n, a in zip(self.names, ADDRESSES, strict=True))
        env["FRESHET_PORT"] = str(self.port)
        env["FRESHET_KAFKA_PORT"] = str(self.kafka_port)   # moves with the block
        return env

    def start(self, ordinal: int) -> NodeProcess:
        process = NodeProcess(ordinal + 1, self.argv, self.root / f"pod-{ordinal}.log", self.environment(ordinal))
        self.processes[ordinal] = process
        self.all_processes.append(process)
        return process

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{address}:{self.port}" for address in ADDRESSES)

    def kafka_address(self, ordinal: int) -> str:
        """Pod ORDINAL's advertised Kafka address: its DNS name through the alias, the Kafka port."""
        return f"{ADDRESSES[ordinal]}:{self.kafka_port}"

    def http(self, ordinal: int, path: str) -> tuple[int, str] | None:
        try:
            with urllib.request.urlopen(f"http://{ADDRESSES[ordinal]}:{self.http_port}{path}", timeout=2) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except (urllib.error.URLError, OSError):
            return None

    def wait_ready(self, ordinal: int, timeout_s: float = 90.0) -> None:
        try:
            wait_until(lambda: (self.http(ordinal, "/readyz") or (0, ""))[0] == 200, timeout_s, f"pod {ordinal} ready", 0.1)
        except AssertionError:
            raise AssertionError(f"pod {ordinal} not ready:\n{self.processes[ordinal].log_tail()}") from None

    def metadata(self, ordinal: int) -> broker_pb2.MetadataResponse:
        with grpc.insecure_channel(f"{ADDRESSES[ordinal]}:{self.port}") as channel:
            return broker_pb2_grpc.BrokerStub(channel).Metadata(broker_pb2.MetadataRequest(), timeout=5)

    def close(self) -> None:
        for process in self.all_processes:
            try:
                if process.is_alive:
                    os.kill(process.pid, 18)  # SIGCONT, in case
                process.kill()
            except Exception:  # noqa: BLE001 - kill every child whatever happens
                pass


def _under_replicated(metadata: broker_pb2.MetadataResponse) -> list[str]:
    return [
        f"{topic.name}-{partition.partition}"
        for topic in metadata.topics
        for partition in topic.partitions
        if partition.leader_id < 0 or len(partition.isr) < len(partition.replicas)
    ]


@pytest.fixture(scope="module")
def pods(tmp_path_factory, kubectl):
    cluster = PodCluster(tmp_path_factory.mktemp("pods"), kubectl)
    try:
        for ordinal in range(PODS):
            cluster.start(ordinal)
        for ordinal in range(PODS):
            cluster.wait_ready(ordinal)
        yield cluster
    finally:
        cluster.close()
        assert all(not process.is_alive for process in cluster.all_processes)


def _create_topic(pods: PodCluster, name: str, partitions: int) -> None:
    with grpc.insecure_channel(f"{ADDRESSES[0]}:{pods.port}") as channel:
        request = controller_pb2.CreateTopicsRequest(
            topics=[controller_pb2.CreatableTopic(name=name, num_partitions=partitions, replication_factor=3)]
        )
        response = controller_pb2_grpc.ControllerStub(channel).CreateTopics(request, timeout=30)
    assert [result.error.code for result in response.results] == [0], response
    wait_until(
        lambda: not _under_replicated(pods.metadata(0)) and any(t.name == name for t in pods.metadata(0).topics),
        30, f"{name} fully replicated",
    )


def _read_all(bootstrap: str, topic: str, partitions: int, expected: int, timeout_s: float = 60.0):
    records = {}
    with Consumer(bootstrap, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False) as consumer:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        deadline = time.monotonic() + timeout_s
        while len(records) < expected and time.monotonic() < deadline:
            for record in consumer.poll(timeout_ms=500):
                records[(record.partition, record.offset)] = record.value
    return records


def test_pods_find_each_other_by_their_stable_names_and_serve_produce_and_consume(pods):
    metadata = pods.metadata(2)
    assert sorted(broker.node_id for broker in metadata.brokers) == [1, 2, 3]
    assert sorted(f"{b.host}:{b.port}" for b in metadata.brokers) == sorted(f"{a}:{pods.port}" for a in ADDRESSES)
    for ordinal in range(PODS):
        answer = pods.http(ordinal, "/status")
        assert answer is not None and answer[0] == 200
        status = json.loads(answer[1])
        assert status["node_id"] == ordinal + 1
        assert status["advertised"] == f"{ADDRESSES[ordinal]}:{pods.port}"   # its DNS name, through the alias
    _create_topic(pods, "pods", partitions=3)
    with Producer(pods.bootstrap, acks="all") as producer:
        futures = {f"pod-{i}".encode(): producer.send("pods", value=f"pod-{i}".encode(), partition=i % 3) for i in range(300)}
        acked = {}
        for value, future in futures.items():
            metadata = future.result(timeout=30)
            acked[(metadata.partition, metadata.offset)] = value
    assert len(acked) == 300
    assert _read_all(pods.bootstrap, "pods", 3, 300) == acked
    code, page = pods.http(1, "/")
    assert code == 200 and "<h3>pods <span" in page and "0 offline" in page, page[:500]


def _check_kafka_metadata_through_every_pod(pods: PodCluster, topic: str, partitions: int) -> None:
    """A Kafka client bootstrapped at each pod's advertised Kafka address sees every broker at its
    advertised Kafka address, and the topic."""
    expected = {ordinal + 1: pods.kafka_address(ordinal) for ordinal in range(PODS)}
    for ordinal in range(PODS):
        bootstrap = pods.kafka_address(ordinal)
        metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
        seen = {node_id: f"{broker.host}:{broker.port}" for node_id, broker in metadata.brokers.items()}
        assert seen == expected, f"librdkafka through pod {ordinal}"
        assert len(metadata.topics[topic].partitions) == partitions, f"librdkafka through pod {ordinal}"
        consumer = kafka.KafkaConsumer(bootstrap_servers=bootstrap)
        try:
            assert topic in consumer.topics(), f"kafka-python through pod {ordinal}"
            assert consumer.partitions_for_topic(topic) == set(range(partitions))
        finally:
            consumer.close()


def test_kafka_clients_reach_every_pod_at_its_advertised_kafka_address_and_see_all_brokers(pods):
    _create_topic(pods, "kafka-metadata", partitions=3)
    _check_kafka_metadata_through_every_pod(pods, "kafka-metadata", 3)


def test_a_rolling_restart_highest_ordinal_first_loses_no_acknowledged_record(pods):
    topic, partitions = "rolling", 3
    _create_topic(pods, topic, partitions)
    acked: dict[tuple[int, int], bytes] = {}
    ack_times: dict[int, list[float]] = {p: [] for p in range(partitions)}
    failures: list[BaseException] = []
    stop = threading.Event()

    def produce() -> None:
        with Producer(pods.bootstrap, acks="all", linger_ms=2, delivery_timeout_ms=120_000) as producer:
            sequence = 0
            while not stop.is_set():
                futures = []
                for _ in range(30):
                    value = f"r-{sequence}".encode()
                    futures.append((value, producer.send(topic, value=value, partition=sequence % partitions)))
                    sequence += 1
                for value, future in futures:
                    try:
                        metadata = future.result(timeout=130)
                    except Exception as error:  # noqa: BLE001 - every failure is checked below
                        failures.append(error)
                        continue
                    acked[(metadata.partition, metadata.offset)] = value
                    ack_times[metadata.partition].append(time.monotonic())
                time.sleep(0.01)

    producer_thread = threading.Thread(target=produce, name="rolling-producer", daemon=True)
    producer_thread.start()
    restarts = []
    try:
        wait_until(lambda: len(acked) > 200, 30, "the producer under way")
        for ordinal in reversed(range(PODS)):
            started = time.monotonic()
            assert pods.processes[ordinal].terminate(timeout_s=60) == 0, pods.processes[ordinal].log_tail()
            stopped = time.monotonic()
            pods.start(ordinal)
            pods.wait_ready(ordinal)
            wait_until(lambda: not _under_replicated(pods.metadata(0)), 60, "no under-replicated partition", 0.2)
            restarts.append({"pod": ordinal, "stop_s": round(stopped - started, 2), "back_s": round(time.monotonic() - started, 2)})
        count = len(acked)
        wait_until(lambda: len(acked) > count + 100, 30, "the producer going on after the roll")
    finally:
        stop.set()
        producer_thread.join(150)
    assert not producer_thread.is_alive()
    assert not failures, f"the producer saw {len(failures)} failures, first {failures[0]!r}"
    read = _read_all(pods.bootstrap, topic, partitions, len(acked))
    lost = {key: value for key, value in acked.items() if read.get(key) != value}
    assert not lost, f"{len(lost)} acknowledged records lost or moved, e.g. {sorted(lost)[:5]}"
    # Unavailability per partition: the longest gap between two acknowledgements.
    gaps = {p: max(b - a for a, b in zip(times, times[1:], strict=False)) for p, times in ack_times.items()}
    report = {"acked": len(acked), "restarts": restarts, "max_ack_gap_s": {p: round(g, 2) for p, g in gaps.items()}}
    print("rolling restart:", json.dumps(report))
    (pods.root / "rolling_restart_report.json").write_text(json.dumps(report))
    assert max(gaps.values()) < 10, report
    # Restarted pods come back with the same advertised Kafka addresses.
    _check_kafka_metadata_through_every_pod(pods, topic, partitions)
