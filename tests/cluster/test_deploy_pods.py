"""The Kubernetes layout, run as local processes: pods form a cluster, and a rolling restart loses nothing.

Goal (issue 8): the StatefulSet in deploy/kubernetes/base works as written, without a Kubernetes
cluster at hand. Method: render the base with `kubectl kustomize`, take the container's command
(the Dockerfile's ENTRYPOINT + the manifest's args) and env, fill in what Kubernetes would
(POD_NAME, POD_NAMESPACE from the downward API, the Secret), and start ordinals 0..2 as processes.
Each "pod" lives on its own loopback address, 127.0.0.11..13, standing in for its stable DNS name
through FRESHET_HOST_ALIASES (a hosts mapping the node reads, like a pod's hostAliases). Only
two things differ from a real pod: the data volume and the ConfigMap are local files, and the
port block (gRPC 9092 .. Kafka 9095) moves when that is taken on these addresses.

Security (issue 15): the base runs TLS on every port and SASL authentication (security.protocol
SASL_SSL in the ConfigMap). The simulation plays the cluster operator and the kubelet: a test CA
issues the node certificate (CN freshet-node, the pods' names and addresses) into Secret
freshet-tls and a random password into freshet-admin, and each pod gets both mounted where its
spec mounts them, laid out as the kubelet's atomic writer does (tests/support/kube_secrets.py).
Every client (SDK, kafka-python, librdkafka) connects with the CA and the superuser the
bootstrap created from the Secret. Probes are the kubelet's: HTTPS, no certificate check, no
credentials. A plaintext client, a client trusting another CA and a wrong password are refused.
The certificate is rotated as cert-manager and the kubelet do it (the Secret updated, ..data
swapped in each pod's volume): every pod serves the new certificate without a restart and the
cluster keeps replicating.

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

import http.client
import json
import os
import pathlib
import re
import secrets
import socket
import ssl
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.request

import grpc
import kafka
import pytest
import yaml
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from cryptography import x509
from freshet.client import Admin, Consumer, Producer, TopicPartition
from freshet.client.errors import FreshetError, SaslAuthenticationFailedError
from freshet.v1 import broker_pb2, broker_pb2_grpc

from tests.support.kube_secrets import SecretVolume, TestCa, localize_config
from tests.support.node_cluster import NodeProcess
from tests.support.ports import free_port_block, port_block_is_free
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

REPO = pathlib.Path(__file__).resolve().parents[2]
PODS = 3
ADDRESSES = [f"127.0.0.{11 + ordinal}" for ordinal in range(PODS)]
NAMESPACE = "streaming"
SECRET = "pod-simulation-secret"
NODE_COMMON_NAME = "freshet-node"
SCRAM = "SCRAM-SHA-512"


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
        self.config_text = config_map["data"][config_path.name]
        settings = tomllib.loads(self.config_text)
        assert settings["security.protocol"] == "SASL_SSL", "the base runs TLS and authentication"
        assert f"User:{NODE_COMMON_NAME}" in settings["super.users"].split(";")
        # The operator's Secrets: the node certificate (for every name and, through the aliases,
        # address a pod is dialled at) and the superuser's password.
        self.ca = TestCa()
        (root / "ca.crt").write_bytes(self.ca.certificate_pem)
        self.user = settings["security.bootstrap.user"]
        self.password = secrets.token_urlsafe(18)
        self.secrets = {"freshet-tls": self.node_tls_secret(), "freshet-admin": {"password": self.password.encode()}}
        self.pod_spec = statefulset["spec"]["template"]["spec"]
        self.volumes: dict[int, dict[str, SecretVolume]] = {}
        self.processes: dict[int, NodeProcess] = {}
        self.all_processes: list[NodeProcess] = []

    def node_tls_secret(self) -> dict[str, bytes]:
        # Through the aliases, clients and peers dial the pods' addresses: IP SANs, and the same
        # as DNS SANs for clients that match an IP against DNS names (librdkafka's check).
        return self.ca.tls_secret(NODE_COMMON_NAME, [*self.names, *ADDRESSES], ADDRESSES)

    @property
    def client_options(self) -> dict[str, str]:
        """The SDK's options for the superuser (kafka-python's names)."""
        return {
            "security_protocol": "SASL_SSL", "ssl_cafile": str(self.root / "ca.crt"), "sasl_mechanism": SCRAM,
            "sasl_plain_username": self.user, "sasl_plain_password": self.password,
        }

    @property
    def librdkafka_config(self) -> dict[str, str]:
        return {
            "security.protocol": "SASL_SSL", "ssl.ca.location": str(self.root / "ca.crt"), "sasl.mechanism": SCRAM,
            "sasl.username": self.user, "sasl.password": self.password,
        }

    def _mount(self, ordinal: int) -> pathlib.Path:
        """Pod ORDINAL's Secret volumes (as the kubelet lays them out, once per pod, kept across
        restarts like a pod's) and its ConfigMap file with the mount paths moved to them."""
        volumes = {volume["name"]: volume for volume in self.pod_spec["volumes"]}
        mounts = {}
        for mount in self.pod_spec["containers"][0]["volumeMounts"]:
            source = volumes.get(mount["name"], {}).get("secret")   # data: a volumeClaimTemplate
            if source is None:
                continue
            assert mount.get("readOnly") is True and "subPath" not in mount, mount
            if mount["name"] not in self.volumes.setdefault(ordinal, {}):
                items = {item["key"]: item["path"] for item in source["items"]} if "items" in source else None
                directory = self.root / f"pod-{ordinal}-volumes" / mount["name"]
                self.volumes[ordinal][mount["name"]] = SecretVolume(directory, self.secrets[source["secretName"]], items)
            mounts[mount["mountPath"]] = self.volumes[ordinal][mount["name"]].directory
        assert len(mounts) == 2, f"the pods mount freshet-tls and freshet-admin: {mounts}"
        config_file = self.root / f"pod-{ordinal}-server.toml"
        config_file.write_text(localize_config(self.config_text, mounts))
        return config_file

    def rotate_certificate(self) -> None:
        """A new node certificate in Secret freshet-tls, as cert-manager renews it; the kubelet
        then updates each pod's volume (one pod after another)."""
        self.secrets["freshet-tls"] = self.node_tls_secret()
        for ordinal in sorted(self.volumes):
            self.volumes[ordinal]["tls"].update(self.secrets["freshet-tls"])

    def served_certificate(self, ordinal: int, port: int) -> x509.Certificate:
        """The certificate pod ORDINAL presents on PORT (verified against the CA and its name)."""
        context = ssl.create_default_context(cafile=str(self.root / "ca.crt"))
        with socket.create_connection((ADDRESSES[ordinal], port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname=ADDRESSES[ordinal]) as tls:
                return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))

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
        env["FRESHET_CONFIG"] = str(self._mount(ordinal))
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

    def admin(self, ordinal: int | None = None, **options) -> Admin:
        bootstrap = self.bootstrap if ordinal is None else f"{ADDRESSES[ordinal]}:{self.port}"
        return Admin(bootstrap, **{**self.client_options, **options})

    def probe(self, ordinal: int, path: str, scheme: str = "https") -> tuple[int, str] | None:
        """GET PATH as the kubelet's httpGet probe does: HTTPS without checking the certificate,
        no credentials. None when nothing answers."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            url = f"{scheme}://{ADDRESSES[ordinal]}:{self.http_port}{path}"
            with urllib.request.urlopen(url, timeout=2, context=context if scheme == "https" else None) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except (urllib.error.URLError, OSError, http.client.HTTPException):
            return None

    def wait_ready(self, ordinal: int, timeout_s: float = 90.0) -> None:
        try:
            wait_until(lambda: (self.probe(ordinal, "/readyz") or (0, ""))[0] == 200, timeout_s, f"pod {ordinal} ready", 0.1)
        except AssertionError:
            raise AssertionError(f"pod {ordinal} not ready:\n{self.processes[ordinal].log_tail()}") from None

    def under_replicated(self, ordinal: int = 0) -> list[str]:
        """Partitions without a leader or with an ISR short of their replicas, as pod ORDINAL
        sees them."""
        admin = self.admin(ordinal)
        try:
            topics = admin.describe_topics(with_offsets=False)
        finally:
            admin.close()
        return [
            f"{topic.name}-{partition.partition}"
            for topic in topics
            for partition in topic.partitions
            if partition.leader is None or len(partition.isr) < len(partition.replicas)
        ]

    def close(self) -> None:
        for process in self.all_processes:
            try:
                if process.is_alive:
                    os.kill(process.pid, 18)  # SIGCONT, in case
                process.kill()
            except Exception:  # noqa: BLE001 - kill every child whatever happens
                pass


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
    admin = pods.admin(0)
    try:
        admin.create_topic(name, partitions=partitions, replication_factor=3)
        wait_until(
            lambda: not pods.under_replicated(0) and name in {t.name for t in admin.list_topics()},
            30, f"{name} fully replicated",
        )
    finally:
        admin.close()


def _read_all(pods: PodCluster, topic: str, partitions: int, expected: int, timeout_s: float = 60.0):
    records = {}
    options = pods.client_options
    with Consumer(pods.bootstrap, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False, **options) as consumer:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        deadline = time.monotonic() + timeout_s
        while len(records) < expected and time.monotonic() < deadline:
            for record in consumer.poll(timeout_ms=500):
                records[(record.partition, record.offset)] = record.value
    return records


def test_pods_find_each_other_by_their_stable_names_and_serve_produce_and_consume(pods):
    admin = pods.admin(2)
    try:
        brokers = admin.describe_cluster().brokers
    finally:
        admin.close()
    # Each pod advertises its DNS name (through the alias, its address): node id = ordinal + 1.
    assert {b.node.node_id: f"{b.node.host}:{b.node.port}" for b in brokers} == {
        ordinal + 1: f"{address}:{pods.port}" for ordinal, address in enumerate(ADDRESSES)
    }
    _create_topic(pods, "pods", partitions=3)
    with Producer(pods.bootstrap, acks="all", **pods.client_options) as producer:
        futures = {f"pod-{i}".encode(): producer.send("pods", value=f"pod-{i}".encode(), partition=i % 3) for i in range(300)}
        acked = {}
        for value, future in futures.items():
            metadata = future.result(timeout=30)
            acked[(metadata.partition, metadata.offset)] = value
    assert len(acked) == 300
    assert _read_all(pods, "pods", 3, 300) == acked


def test_the_kubelets_probes_answer_over_https_without_credentials_and_plaintext_is_refused(pods):
    """/healthz and /readyz as the manifest's probes ask for them (HTTPS, no client certificate,
    no credentials); the HTTP port speaks no plaintext, nor does the gRPC port."""
    for ordinal in range(PODS):
        assert (pods.probe(ordinal, "/healthz") or (0,))[0] == 200, ordinal
        assert (pods.probe(ordinal, "/readyz") or (0,))[0] == 200, ordinal
        assert (pods.probe(ordinal, "/readyz", scheme="http") or (0,))[0] != 200, f"pod {ordinal}: plaintext HTTP answered"
        with grpc.insecure_channel(f"{ADDRESSES[ordinal]}:{pods.port}") as channel:
            with pytest.raises(grpc.RpcError):
                broker_pb2_grpc.BrokerStub(channel).Metadata(broker_pb2.MetadataRequest(), timeout=5)
        # The node presents the certificate from the freshet-tls Secret, CN freshet-node.
        served = pods.served_certificate(ordinal, pods.http_port)
        assert served.subject.rfc4514_string() == f"CN={NODE_COMMON_NAME}"


def test_clients_with_a_wrong_password_or_another_ca_are_refused_and_change_nothing(pods):
    admin = pods.admin(0, sasl_plain_password="not-the-password")
    try:
        with pytest.raises(SaslAuthenticationFailedError):
            admin.create_topic("wrong-password", partitions=1, replication_factor=3)
    finally:
        admin.close()
    other_ca = pods.root / "other-ca.crt"
    other_ca.write_bytes(TestCa().certificate_pem)
    admin = pods.admin(0, ssl_cafile=str(other_ca), request_timeout_ms=5000)
    try:
        with pytest.raises(FreshetError):   # the handshake fails: the node's certificate is not trusted
            admin.create_topic("other-ca", partitions=1, replication_factor=3)
    finally:
        admin.close()
    # librdkafka reconnects every ~50 ms after a failed login; slowed down here so its few tries
    # stay within the node's per-source budget (10 failures a minute) and the checks below, from
    # the same address, are not locked out.
    wrong = AdminClient({"bootstrap.servers": pods.kafka_address(0), **pods.librdkafka_config, "sasl.password": "nope",
                         "reconnect.backoff.ms": 10000, "reconnect.backoff.max.ms": 10000})
    with pytest.raises(KafkaException):   # SASL authentication failed
        wrong.list_topics(timeout=5)
    admin = pods.admin(0)
    try:
        assert not {"wrong-password", "other-ca"} & {t.name for t in admin.list_topics()}
    finally:
        admin.close()


def _check_kafka_metadata_through_every_pod(pods: PodCluster, topic: str, partitions: int) -> None:
    """A Kafka client bootstrapped at each pod's advertised Kafka address sees every broker at its
    advertised Kafka address, and the topic."""
    expected = {ordinal + 1: pods.kafka_address(ordinal) for ordinal in range(PODS)}
    for ordinal in range(PODS):
        bootstrap = pods.kafka_address(ordinal)
        metadata = AdminClient({"bootstrap.servers": bootstrap, **pods.librdkafka_config}).list_topics(timeout=10)
        seen = {node_id: f"{broker.host}:{broker.port}" for node_id, broker in metadata.brokers.items()}
        assert seen == expected, f"librdkafka through pod {ordinal}"
        assert len(metadata.topics[topic].partitions) == partitions, f"librdkafka through pod {ordinal}"
        consumer = kafka.KafkaConsumer(bootstrap_servers=bootstrap, **pods.client_options)
        try:
            assert topic in consumer.topics(), f"kafka-python through pod {ordinal}"
            assert consumer.partitions_for_topic(topic) == set(range(partitions))
        finally:
            consumer.close()


def test_kafka_clients_reach_every_pod_at_its_advertised_kafka_address_and_see_all_brokers(pods):
    _create_topic(pods, "kafka-metadata", partitions=3)
    _check_kafka_metadata_through_every_pod(pods, "kafka-metadata", 3)


def test_a_rotated_certificate_is_served_without_a_restart_and_the_pods_keep_replicating(pods):
    """cert-manager renews freshet-tls; the kubelet swaps each pod's volume; every pod serves the
    new certificate on its HTTP and Kafka ports within seconds, same process, and produce with
    acks=all (replication between the pods) goes on."""
    pids = {ordinal: process.pid for ordinal, process in pods.processes.items()}
    before = {ordinal: pods.served_certificate(ordinal, pods.http_port).serial_number for ordinal in range(PODS)}
    pods.rotate_certificate()
    expected = x509.load_pem_x509_certificate(pods.secrets["freshet-tls"]["tls.crt"]).serial_number
    assert expected not in before.values()
    for ordinal in range(PODS):
        for port in (pods.http_port, pods.kafka_port):
            wait_until(
                lambda o=ordinal, p=port: pods.served_certificate(o, p).serial_number == expected,
                30, f"pod {ordinal} serving the rotated certificate on port {port}", 0.2,
            )
    assert {ordinal: process.pid for ordinal, process in pods.processes.items()} == pids
    assert all(process.is_alive for process in pods.processes.values())
    _create_topic(pods, "after-rotation", partitions=3)
    with Producer(pods.bootstrap, acks="all", **pods.client_options) as producer:
        futures = [producer.send("after-rotation", value=f"r-{i}".encode(), partition=i % 3) for i in range(60)]
        acked = {(m.partition, m.offset): f"r-{i}".encode() for i, m in enumerate(f.result(timeout=30) for f in futures)}
    assert _read_all(pods, "after-rotation", 3, 60) == acked
    assert not pods.under_replicated(0)


def test_a_rolling_restart_highest_ordinal_first_loses_no_acknowledged_record(pods):
    topic, partitions = "rolling", 3
    _create_topic(pods, topic, partitions)
    acked: dict[tuple[int, int], bytes] = {}
    ack_times: dict[int, list[float]] = {p: [] for p in range(partitions)}
    failures: list[BaseException] = []
    stop = threading.Event()

    def produce() -> None:
        with Producer(pods.bootstrap, acks="all", linger_ms=2, delivery_timeout_ms=120_000, **pods.client_options) as producer:
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
            wait_until(lambda: not pods.under_replicated(0), 60, "no under-replicated partition", 0.2)
            restarts.append({"pod": ordinal, "stop_s": round(stopped - started, 2), "back_s": round(time.monotonic() - started, 2)})
        count = len(acked)
        wait_until(lambda: len(acked) > count + 100, 30, "the producer going on after the roll")
    finally:
        stop.set()
        producer_thread.join(150)
    assert not producer_thread.is_alive()
    assert not failures, f"the producer saw {len(failures)} failures, first {failures[0]!r}"
    read = _read_all(pods, topic, partitions, len(acked))
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
