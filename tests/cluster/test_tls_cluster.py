"""TLS on every port of a `freshet cluster up --secure` cluster, and certificate rotation.

Goal (issue 15): with TLS on, no port accepts plaintext cluster or client traffic; a client that
does not trust the cluster's CA is refused; real Kafka clients produce and consume over TLS; the
HTTP console and metrics answer over HTTPS (plaintext /metrics only on the opt-in listener); a
plaintext Raft peer (even one holding the Raft password) cannot join or read, and a plaintext
replication fetch is refused; replaced certificate files are served to new connections on the
gRPC, Kafka, HTTP and Raft ports without a restart while the cluster keeps working.

Method: one 3-node `cluster up --secure --json` per module on a free port block (every process
killed by pid at the end); refusals are checked both ways (the refused call fails within a bound
AND the cluster shows no effect). Clients speak the protocol the cluster reports (SASL_SSL: TLS
plus the superuser's SCRAM login), so a refusal proves the TLS layer refused, not the login.
The rotation test runs last: it replaces the shared node certificate.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

import grpc
import pytest
from cryptography import x509
from freshet.client import Admin, Consumer, Producer
from freshet.client.errors import FreshetError
from freshet.server.security import certificates
from freshet.v1 import controller_pb2, controller_pb2_grpc, replication_pb2, replication_pb2_grpc

from tests.support.ports import free_port_block, free_ports
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


class SecureCluster:
    """A `freshet cluster up --secure --json` child. Not thread-safe."""

    def __init__(self, data_dir, base_port: int) -> None:
        self.data_dir = data_dir
        self.base_port = base_port
        self.process = subprocess.Popen(
            [sys.executable, "-m", "freshet.cli.main", "cluster", "up", "--secure", "--nodes", "3",
             "--data-dir", str(data_dir), "--base-port", str(base_port), "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: list[str] = []
        self.errors: list[str] = []
        for stream, into in ((self.process.stdout, self.lines), (self.process.stderr, self.errors)):
            threading.Thread(target=lambda s=stream, i=into: i.extend(s), daemon=True).start()
        self.info: dict = {}

    def wait_ready(self, timeout_s: float) -> dict:
        deadline = time.monotonic() + timeout_s
        while not self.lines:
            assert self.process.poll() is None, f"cluster up exited early: {''.join(self.errors)}"
            assert time.monotonic() < deadline, f"not ready after {timeout_s} s: {''.join(self.errors)}"
            time.sleep(0.05)
        self.info = json.loads(self.lines[0])
        return self.info

    @property
    def security(self) -> dict:
        return self.info["security"]

    @property
    def ca_file(self) -> str:
        return self.security["ca_file"]

    def port(self, index: int, offset: int) -> int:
        """Node `index` (1-based): offset 0 gRPC, 1 Raft, 2 HTTP, 3 Kafka."""
        return self.base_port + (index - 1) * 10 + offset

    def kill(self) -> None:
        for pid in [node["pid"] for node in self.info.get("nodes", [])] + [self.process.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(10)

    # -- clients speaking the protocol the cluster reports --------------------------------------

    def sdk_options(self) -> dict:
        options = {"security_protocol": self.security.get("protocol", "SSL"), "ssl_cafile": self.ca_file}
        if options["security_protocol"] == "SASL_SSL":
            options.update(
                sasl_mechanism="SCRAM-SHA-512",
                sasl_plain_username=self.security["user"],
                sasl_plain_password=self.password(),
            )
        return options

    def password(self) -> str:
        with open(self.security["password_file"], encoding="utf-8") as file:
            return file.read().strip()

    def admin(self, **overrides) -> Admin:
        options = {"request_timeout_ms": 10000, **self.sdk_options(), **overrides}
        return Admin(self.info["bootstrap"], **options)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    base_port = free_port_block(23)
    secure = SecureCluster(tmp_path_factory.mktemp("tls") / "freshet-data", base_port)
    try:
        secure.wait_ready(timeout_s=120)
        yield secure
    finally:
        secure.kill()


def topic_names(cluster: SecureCluster) -> set[str]:
    admin = cluster.admin()
    try:
        return {listing.name for listing in admin.list_topics()}
    finally:
        admin.close()


def peer_certificate_serial(port: int, ca_file: str, alpn: list[str] | None = None, client: tuple[str, str] | None = None) -> int:
    """The serial number of the certificate a new TLS connection to 127.0.0.1:`port` is served."""
    context = ssl.create_default_context(cafile=ca_file)
    if alpn:
        context.set_alpn_protocols(alpn)
    if client:
        context.load_cert_chain(*client)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number


# -- the secure cluster's files and JSON line -------------------------------------------------------


def test_cluster_up_secure_makes_private_files_and_reports_them(cluster):
    security = cluster.security
    directory = os.path.dirname(security["ca_file"])
    assert directory == str(cluster.data_dir / "security")
    assert security["user"] == "admin"
    assert security["password_file"] == os.path.join(directory, "admin.password")
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    for name in ("ca.pem", "ca.key", "node.pem", "node.key", "admin.password"):
        assert stat.S_IMODE(os.stat(os.path.join(directory, name)).st_mode) == 0o600, name
    assert len(cluster.password()) >= 24
    node = x509.load_pem_x509_certificate(open(os.path.join(directory, "node.pem"), "rb").read())
    assert node.subject.rfc4514_string() == "CN=freshet-node"
    assert all(n["http"].startswith("https://") for n in cluster.info["nodes"])
    assert cluster.password() not in "".join(cluster.lines + cluster.errors)


# -- gRPC --------------------------------------------------------------------------------------------


def test_a_plaintext_grpc_client_is_refused_and_changes_nothing(cluster):
    name = f"plain-{uuid.uuid4().hex[:8]}"
    with grpc.insecure_channel(f"127.0.0.1:{cluster.port(1, 0)}") as channel:
        stub = controller_pb2_grpc.ControllerStub(channel)
        request = controller_pb2.CreateTopicsRequest(
            topics=[controller_pb2.CreatableTopic(name=name, num_partitions=1, replication_factor=1)]
        )
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as refused:
            stub.CreateTopics(request, timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert time.monotonic() - started < 5.5
    assert name not in topic_names(cluster)


def test_a_client_trusting_another_ca_is_refused(cluster, tmp_path):
    rogue = certificates.create_ca("rogue-ca")
    rogue_ca = tmp_path / "rogue-ca.pem"
    rogue_ca.write_bytes(rogue.certificate_pem)
    name = f"rogue-{uuid.uuid4().hex[:8]}"
    admin = cluster.admin(ssl_cafile=str(rogue_ca), request_timeout_ms=3000)
    try:
        with pytest.raises(FreshetError):
            admin.create_topic(name, 1, 1)
    finally:
        admin.close()
    assert name not in topic_names(cluster)


def test_the_cli_reaches_the_secure_cluster_with_tls_ca_and_fails_without(cluster):
    bootstrap = cluster.info["bootstrap"]
    environment = {**os.environ, "NO_COLOR": "1"}
    for name in ("FRESHET_TLS_CA", "FRESHET_USER", "FRESHET_PASSWORD_FILE"):
        environment.pop(name, None)
    login = ["--user", cluster.security["user"], "--password-file", cluster.security["password_file"]]
    with_ca = subprocess.run(
        [sys.executable, "-m", "freshet.cli.main", "cluster", "status", "-b", bootstrap, "--tls-ca", cluster.ca_file,
         *login, "-o", "json"],
        capture_output=True, text=True, timeout=60, env=environment,
    )
    assert with_ca.returncode == 0, with_ca.stderr
    assert len(json.loads(with_ca.stdout)["brokers"]) == 3
    # The right credentials without the CA: the TLS handshake (not the login) is what fails.
    without = subprocess.run(
        [sys.executable, "-m", "freshet.cli.main", "cluster", "status", "-b", bootstrap, *login],
        capture_output=True, text=True, timeout=60, env=environment,
    )
    assert without.returncode == 1
    assert without.stderr.count("\n") == 1 and "Traceback" not in without.stderr


# -- Kafka listener ----------------------------------------------------------------------------------


def test_a_plaintext_kafka_client_is_refused(cluster):
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    started = time.monotonic()
    with pytest.raises((KafkaError, OSError, ValueError)):
        client = KafkaAdminClient(
            bootstrap_servers=cluster.info["kafka_bootstrap"].split(",")[0],
            request_timeout_ms=3000,
            api_version_auto_timeout_ms=3000,
        )
        client.close()
    assert time.monotonic() - started < 30
    # The raw protocol: an ApiVersions v0 request in plaintext gets no Kafka response.
    request = b"\x00\x12\x00\x00\x00\x00\x00\x07\x00\x04test"
    with socket.create_connection(("127.0.0.1", cluster.port(1, 3)), timeout=5) as raw:
        raw.sendall(len(request).to_bytes(4, "big") + request)
        answer = b""
        try:
            while chunk := raw.recv(4096):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    # Nothing, or a TLS alert record (content type 21): never a response carrying correlation id 7.
    assert answer == b"" or answer[0] == 0x15, answer[:16]
    assert b"\x00\x00\x00\x07" not in answer[4:8]


def kafka_python_config(cluster: SecureCluster) -> dict:
    config = {"security_protocol": cluster.security.get("protocol", "SSL"), "ssl_cafile": cluster.ca_file}
    if config["security_protocol"] == "SASL_SSL":
        config.update(sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="admin", sasl_plain_password=cluster.password())
    return config


def confluent_config(cluster: SecureCluster) -> dict:
    config = {"security.protocol": cluster.security.get("protocol", "SSL"), "ssl.ca.location": cluster.ca_file}
    if config["security.protocol"] == "SASL_SSL":
        config.update({"sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "admin", "sasl.password": cluster.password()})
    return config


@pytest.mark.parametrize("client", ["kafka-python", "confluent-kafka"])
def test_kafka_clients_produce_and_consume_over_tls(cluster, client):
    topic = f"tls-{client}-{uuid.uuid4().hex[:6]}"
    admin = cluster.admin()
    try:
        admin.create_topic(topic, 1, 3)
    finally:
        admin.close()
    bootstrap = cluster.info["kafka_bootstrap"]
    values = [f"{client}-{i}".encode() for i in range(5)]
    if client == "kafka-python":
        from kafka import KafkaConsumer, KafkaProducer

        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **kafka_python_config(cluster))
        for value in values:
            producer.send(topic, value).get(timeout=30)
        producer.close()
        consumer = KafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=20000,
            **kafka_python_config(cluster),
        )
        received = []
        for message in consumer:
            received.append(message.value)
            if len(received) == len(values):
                break
        consumer.close()
    else:
        import confluent_kafka

        producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "acks": "all", **confluent_config(cluster)})
        for value in values:
            producer.produce(topic, value)
        assert producer.flush(30) == 0
        consumer = confluent_kafka.Consumer({
            "bootstrap.servers": bootstrap, "group.id": f"g-{topic}", "auto.offset.reset": "earliest",
            **confluent_config(cluster),
        })
        consumer.subscribe([topic])
        received = []
        deadline = time.monotonic() + 30
        while len(received) < len(values) and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                received.append(message.value())
        consumer.close()
    assert received == values


def fetch_record_bytes(cluster: SecureCluster) -> dict[str, float]:
    """freshet_kafka_fetch_record_bytes_total per path (sendfile, copy), summed over the nodes."""
    context = ssl.create_default_context(cafile=cluster.ca_file)
    credentials = base64.b64encode(f"{cluster.security['user']}:{cluster.password()}".encode()).decode()
    totals = {"sendfile": 0.0, "copy": 0.0}
    for index in (1, 2, 3):
        request = urllib.request.Request(f"https://127.0.0.1:{cluster.port(index, 2)}/metrics",
                                         headers={"Authorization": f"Basic {credentials}"})
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            for line in response.read().decode().splitlines():
                for path in totals:
                    if line.startswith(f'freshet_kafka_fetch_record_bytes_total{{path="{path}"}} '):
                        totals[path] += float(line.rsplit(" ", 1)[1])
    return totals


def test_tls_fetch_copies_the_records_since_sendfile_would_bypass_the_cipher(cluster):
    """Issue 20: on a TLS listener every Fetch record byte goes the copy path (none sendfile), and
    confluent-kafka reads 64 KiB values byte for byte (check.crcs on)."""
    import confluent_kafka

    topic = f"tls-copy-{uuid.uuid4().hex[:6]}"
    admin = cluster.admin()
    try:
        admin.create_topic(topic, 1, 3)
    finally:
        admin.close()
    values = [bytes([n]) * 1000 + os.urandom(64 * 1024 - 1000) for n in range(20)]
    with Producer(cluster.info["bootstrap"], **cluster.sdk_options()) as producer:
        for value in values:
            producer.send(topic, value=value, partition=0)
        producer.flush(30)
    before = fetch_record_bytes(cluster)
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": cluster.info["kafka_bootstrap"], "group.id": f"g-{topic}", "check.crcs": True,
        "enable.auto.commit": False, **confluent_config(cluster),
    })
    consumer.assign([confluent_kafka.TopicPartition(topic, 0, confluent_kafka.OFFSET_BEGINNING)])
    received = []
    deadline = time.monotonic() + 30
    try:
        while len(received) < len(values) and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None:
                assert message.error() is None, message.error()
                received.append(message.value())
    finally:
        consumer.close()
    after = fetch_record_bytes(cluster)
    assert received == values
    assert after["copy"] - before["copy"] >= sum(map(len, values))
    assert after["sendfile"] == before["sendfile"] == 0


# -- HTTP ----------------------------------------------------------------------------------------------


def test_https_console_and_metrics_with_the_ca_and_plaintext_refused(cluster):
    context = ssl.create_default_context(cafile=cluster.ca_file)
    port = cluster.port(1, 2)
    credentials = base64.b64encode(f"{cluster.security['user']}:{cluster.password()}".encode()).decode()
    basic = {"Authorization": f"Basic {credentials}"}
    # "/" without a session answers the login page (over HTTPS); /metrics takes HTTP Basic.
    for path, expected, headers in (("/metrics", b"freshet_metadata_offset", basic), ("/", b"<html", {}), ("/readyz", b"ready", {})):
        request = urllib.request.Request(f"https://127.0.0.1:{port}{path}", headers=headers)
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            assert response.status == 200
            assert expected in response.read()
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(f"https://127.0.0.1:{port}/metrics", context=context, timeout=10)
    assert anonymous.value.code == 401
    with pytest.raises((urllib.error.URLError, ConnectionError, http_client_errors())):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    with pytest.raises(urllib.error.URLError):      # a client that does not trust the CA
        urllib.request.urlopen(f"https://127.0.0.1:{port}/metrics", context=ssl.create_default_context(), timeout=10)


def http_client_errors():
    import http.client

    return http.client.HTTPException


def test_the_opt_in_plaintext_metrics_listener_serves_metrics_only(cluster, tmp_path):
    """A fourth node (broker only) joins the secure cluster with http.metrics.plaintext.listen."""
    grpc_port, http_port, plain_port, kafka_port = free_ports(4)
    directory = os.path.dirname(cluster.ca_file)
    quorum = ",".join(f"{i}@127.0.0.1:{cluster.port(i, 1)}" for i in (1, 2, 3))
    log = open(tmp_path / "node-4.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "freshet.cli.main", "server", "start", "--node-id", "4", "--roles", "broker",
         "--data-dir", str(tmp_path / "node-4"), "--listen", f"127.0.0.1:{grpc_port}",
         "--http-listen", f"127.0.0.1:{http_port}", "--controller-quorum", quorum,
         "--controller-listeners", ",".join(f"{i}@127.0.0.1:{cluster.port(i, 0)}" for i in (1, 2, 3)),
         "--set", f"security.protocol={cluster.security.get('protocol', 'SSL')}",
         "--set", f"ssl.certificate.location={directory}/node.pem",
         "--set", f"ssl.key.location={directory}/node.key",
         "--set", f"ssl.ca.location={directory}/ca.pem",
         "--set", f"http.metrics.plaintext.listen=127.0.0.1:{plain_port}"],
        stdout=log, stderr=log,
    )
    try:
        def plaintext(path: str) -> tuple[int, bytes]:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{plain_port}{path}", timeout=5) as response:
                    return response.status, response.read()
            except urllib.error.HTTPError as error:
                return error.code, error.read()
            except (urllib.error.URLError, OSError):
                assert process.poll() is None, (tmp_path / "node-4.log").read_text()
                return 0, b""

        wait_until(lambda: plaintext("/readyz")[0] == 200, timeout_s=60, what="node 4 ready (plaintext /readyz)")
        status, body = plaintext("/metrics")
        assert status == 200 and b"freshet_broker_partition_count" in body
        assert plaintext("/healthz")[0] == 200
        assert plaintext("/status")[0] == 404
        assert plaintext("/")[0] == 404
        # Node 4's own gRPC port is TLS: it registered with the controllers over mTLS.
        admin = cluster.admin()
        try:
            wait_until(lambda: 4 in {b.node.node_id for b in admin.describe_cluster().brokers}, timeout_s=30, what="broker 4 registered")
        finally:
            admin.close()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()


# -- Raft and replication ports ------------------------------------------------------------------------


def quorum_term(cluster: SecureCluster) -> tuple[int, int]:
    admin = cluster.admin()
    try:
        quorum = admin.describe_quorum()
        return quorum.term, quorum.leader_id
    finally:
        admin.close()


def test_a_plaintext_raft_peer_with_the_password_cannot_join_or_read(cluster, tmp_path):
    from pysyncobj import SyncObj, SyncObjConf

    term_before = quorum_term(cluster)
    # Raw TCP: pysyncobj would first read our self address; the TLS terminator answers nothing
    # readable (at most a TLS alert) and closes.
    with socket.create_connection(("127.0.0.1", cluster.port(1, 1)), timeout=6) as raw:
        raw.sendall(b"\x00\x00\x00\x10" + b"127.0.0.1:1" + b"\x00" * 5)
        received = b""
        try:
            while chunk := raw.recv(4096):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    assert received == b"" or received[0] == 0x15, received[:16]

    # A pysyncobj voter holding the right password, claiming to be voter 3, talking plaintext.
    secret = (cluster.data_dir / "cluster.secret").read_text().strip()
    (rogue_port,) = free_ports(1)
    voters = [f"127.0.0.1:{cluster.port(i, 1)}" for i in (1, 2, 3)]
    conf = SyncObjConf(
        password=secret, autoTick=True, bindAddress=f"127.0.0.1:{rogue_port}", dynamicMembershipChange=False,
        raftMinTimeout=0.3, raftMaxTimeout=0.6, appendEntriesPeriod=0.05, connectionRetryTime=0.2, journalFile=None,
    )
    rogue = SyncObj(voters[2], voters[:2], conf)
    try:
        time.sleep(5)
        status = rogue.getStatus()
        assert status["leader"] is None, status
        assert status["commit_idx"] <= 1 and status["log_len"] <= 1, status
        assert not status["has_quorum"]
    finally:
        rogue.destroy()
    term_after = quorum_term(cluster)
    assert term_after == term_before, (term_before, term_after)      # no vote request got through


def test_a_plaintext_replication_fetch_is_refused(cluster):
    with grpc.insecure_channel(f"127.0.0.1:{cluster.port(2, 0)}") as channel:
        stub = replication_pb2_grpc.ReplicationStub(channel)
        stream = stub.ReplicaFetch(iter([replication_pb2.ReplicaFetchRequest()]), timeout=5)
        with pytest.raises(grpc.RpcError) as refused:
            list(stream)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


# -- rotation (last: replaces the shared node certificate) ----------------------------------------------


def test_certificate_rotation_reaches_new_connections_without_restart(cluster):
    directory = os.path.dirname(cluster.ca_file)
    certificate_file, key_file = os.path.join(directory, "node.pem"), os.path.join(directory, "node.key")
    old_serial = certificates.read_issued(certificate_file, key_file).serial_number
    ports = {
        "grpc": (cluster.port(1, 0), ["h2"], None),
        "kafka": (cluster.port(2, 3), None, None),
        "http": (cluster.port(3, 2), None, None),
    }
    for name, (port, alpn, client) in ports.items():
        assert peer_certificate_serial(port, cluster.ca_file, alpn, client) == old_serial, name
    pids = [node["pid"] for node in cluster.info["nodes"]]

    ca = certificates.read_issued(cluster.ca_file, os.path.join(directory, "ca.key"))
    rotated = certificates.issue(ca, "freshet-node", ("localhost", "127.0.0.1", "::1"))
    assert rotated.serial_number != old_serial
    certificates.write_private(key_file + ".new", rotated.key_pem)
    certificates.write_private(certificate_file + ".new", rotated.certificate_pem)
    os.replace(key_file + ".new", key_file)
    os.replace(certificate_file + ".new", certificate_file)

    for name, (port, alpn, _) in ports.items():
        wait_until(
            lambda port=port, alpn=alpn: peer_certificate_serial(port, cluster.ca_file, alpn) == rotated.serial_number,
            timeout_s=10, what=f"{name} port serves the rotated certificate",
        )
    raft_client = (certificate_file, key_file)
    wait_until(
        lambda: peer_certificate_serial(cluster.port(1, 1), cluster.ca_file, None, raft_client) == rotated.serial_number,
        timeout_s=10, what="Raft port serves the rotated certificate",
    )
    # The cluster keeps working: a replicated topic, records in and out through the SDK.
    topic = f"rotated-{uuid.uuid4().hex[:6]}"
    admin = cluster.admin()
    try:
        admin.create_topic(topic, 1, 3)
    finally:
        admin.close()
    producer = Producer(cluster.info["bootstrap"], acks="all", **cluster.sdk_options())
    try:
        for i in range(3):
            producer.send(topic, f"after-rotation-{i}".encode()).result(30)
    finally:
        producer.close()
    consumer = Consumer(cluster.info["bootstrap"], auto_offset_reset="earliest", enable_auto_commit=False, **cluster.sdk_options())
    try:
        from freshet.client.structs import TopicPartition

        consumer.assign([TopicPartition(topic, 0)])
        values: list[bytes] = []
        deadline = time.monotonic() + 20
        while len(values) < 3 and time.monotonic() < deadline:
            values += [record.value for record in consumer.poll(500)]
        assert values == [f"after-rotation-{i}".encode() for i in range(3)]
    finally:
        consumer.close()
    assert [node["pid"] for node in cluster.info["nodes"]] == pids
    assert all(os.path.exists(f"/proc/{pid}") for pid in pids)       # no node restarted
