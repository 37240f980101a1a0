"""Authentication on a real node (in-process): the gRPC port with the SDK, the Kafka listener with
kafka-python and confluent-kafka, refusals, the rate limit, the bootstrap user, audit and metrics.

Goal: with security.protocol=SASL_SSL a user logs in with SCRAM-SHA-256/512 or PLAIN on both
listeners and works; a wrong password, an unknown user or no credentials are refused with
SASL_AUTHENTICATION_FAILED and change nothing; failed logins are rate limited per host; the
bootstrap user exists without anyone creating it. Method: one combined node (broker + controller)
started from the same NodeConfig loader as `freshet server start`, real clients on loopback.

Everything runs over TLS, as in production: the module makes a CA and a node certificate (CN
freshet-node, SANs localhost and 127.0.0.1) with server/security/certificates.py; the node gets
the ssl.* keys and `User:freshet-node` as a super user (its own inter-node calls carry the node
proof of server/security/node_identity.py); the SDK, the CLI, kafka-python, confluent-kafka and
the raw socket trust the CA and present no client certificate, so only a login names them.
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import struct
import uuid

import grpc
import pytest
from freshet.client import Admin, Consumer, Producer, TopicPartition
from freshet.client import errors as client_errors
from freshet.client._security import SecurityConfig
from freshet.client._transport import Transport
from freshet.metadata.security import ScramMechanism
from freshet.server.security import certificates
from freshet.server.security.rate_limit import LoginRateLimiter
from freshet.v1 import broker_pb2, broker_pb2_grpc, common_pb2

from tests.support.inprocess_nodes import InProcessCluster
from tests.support.ports import free_ports
from tests.support.waiting import wait_until

ADMIN_PASSWORD = "admin-secret-Pa55"
NODE_PRINCIPAL = "User:freshet-node"


def write_tls_files(directory) -> dict[str, str]:
    """A CA and a node certificate signed by it (CN freshet-node, as `cluster up --secure` makes),
    written as PEM files; their paths by node config key."""
    ca = certificates.create_ca("auth-test-ca")
    node = certificates.issue(ca, "freshet-node", hosts=("localhost", "127.0.0.1"))
    paths = {
        "ssl.ca.location": str(directory / "ca.pem"),
        "ssl.certificate.location": str(directory / "node.pem"),
        "ssl.key.location": str(directory / "node-key.pem"),
    }
    certificates.write_private(paths["ssl.ca.location"], ca.certificate_pem)
    certificates.write_private(paths["ssl.certificate.location"], node.certificate_pem)
    certificates.write_private(paths["ssl.key.location"], node.key_pem)
    return paths


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    root = tmp_path_factory.mktemp("auth-node")
    tls_files = write_tls_files(root)
    password_file = root / "admin.password"
    password_file.write_text(ADMIN_PASSWORD + "\n")
    kafka_port = free_ports(1)[0]
    sets = [
        "security.protocol=SASL_SSL",
        *(f"{key}={path}" for key, path in tls_files.items()),
        f"super.users=User:admin;{NODE_PRINCIPAL}",
        "security.bootstrap.user=admin",
        f"security.bootstrap.password.file={password_file}",
        f"kafka.listen=127.0.0.1:{kafka_port}",
    ]
    with InProcessCluster(root, controllers=1, extra_sets=sets) as nodes:
        nodes.start_all()
        node = nodes.nodes[1]
        wait_until(
            lambda: all(node.publisher.image.scram_credential("admin", m) for m in ScramMechanism), 15, "the bootstrap user"
        )
        nodes.kafka_bootstrap = f"127.0.0.1:{kafka_port}"
        nodes.grpc_bootstrap = f"127.0.0.1:{nodes.ports[1]}"
        nodes.ca_file = tls_files["ssl.ca.location"]
        yield nodes


@pytest.fixture(autouse=True)
def fresh_rate_limit(secure):
    secure.nodes[1].security.authenticator.limiter = LoginRateLimiter()


def transport(secure, **security) -> Transport:
    """A Transport to the node whose channels are made as the public constructors make them."""
    config = SecurityConfig(**security)
    return Transport(
        secure.grpc_bootstrap, client_id="auth-test", channel_factory=config.channel_factory(), security=config
    )


def admin_security(secure, password=ADMIN_PASSWORD, user="admin", mechanism="SCRAM-SHA-512") -> dict:
    return {
        "security_protocol": "SASL_SSL", "ssl_cafile": secure.ca_file, "sasl_mechanism": mechanism,
        "sasl_plain_username": user, "sasl_plain_password": password,
    }


def topic_names(secure) -> set[str]:
    return {topic.name for topic in secure.nodes[1].publisher.image.topics_by_id.values()}


def test_the_bootstrap_user_is_created_once_with_both_mechanisms(secure):
    image = secure.nodes[1].publisher.image
    assert set(image.users["admin"]) == set(ScramMechanism)
    assert image.scram_credential("admin", ScramMechanism.SCRAM_SHA_512).verify_password(ADMIN_PASSWORD)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"])
def test_the_sdk_logs_in_and_produces_and_consumes(secure, mechanism):
    topic = f"auth-sdk-{mechanism.lower()}-{uuid.uuid4().hex[:6]}"
    security = admin_security(secure, mechanism=mechanism)
    with Admin(transport=transport(secure, **security)) as admin:
        admin.create_topic(topic, partitions=1, replication_factor=1)
    producer_transport = transport(secure, **security)
    with Producer(transport=producer_transport, acks="all") as producer:
        producer.send(topic, value=b"hello").result(timeout=15)
    consumer_transport = transport(secure, **security)
    with Consumer(transport=consumer_transport, auto_offset_reset="earliest") as consumer:
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        values = wait_until(lambda: [r.value for r in consumer.poll(timeout_ms=500)] or None, 15, "a record")
    assert values == [b"hello"]
    for built in (producer_transport, consumer_transport):
        built.close()


def test_the_sdk_options_on_the_public_constructors(secure):
    """Producer/Consumer/Admin take kafka-python's option names (their transport gets them)."""
    admin = Admin(secure.grpc_bootstrap, **admin_security(secure))
    try:
        assert admin._transport.security.sasl_plain_username == "admin"
        assert "admin-secret" not in repr(admin._transport.security)
    finally:
        admin.close()
    with pytest.raises(ValueError, match="sasl_plain_password"):
        Producer(secure.grpc_bootstrap, security_protocol="SASL_SSL", ssl_cafile=secure.ca_file, sasl_plain_username="admin")
    with pytest.raises(ValueError, match="SASL_PLAINTEXT"):
        Consumer(secure.grpc_bootstrap, security_protocol="SASL_PLAINTEXT")


@pytest.mark.parametrize(("user", "password"), [("admin", "wrong-password"), ("nobody", ADMIN_PASSWORD)])
def test_the_sdk_with_bad_credentials_is_refused_and_nothing_changes(secure, user, password):
    topic = f"auth-refused-{uuid.uuid4().hex[:6]}"
    with Admin(transport=transport(secure, **admin_security(secure, password, user)), request_timeout_ms=5000) as admin:
        with pytest.raises(client_errors.SaslAuthenticationFailedError) as refused:
            admin.create_topic(topic, partitions=1, replication_factor=1)
    assert refused.value.retriable is False
    assert repr(user) in str(refused.value)
    assert "invalid credentials" in str(refused.value)
    assert password not in str(refused.value)
    assert topic not in topic_names(secure)


def test_a_grpc_call_without_credentials_is_unauthenticated(secure):
    """TLS alone (the CA trusted, no client certificate, no node proof) names nobody."""
    channel = SecurityConfig(security_protocol="SSL", ssl_cafile=secure.ca_file).channel_factory()(secure.grpc_bootstrap, [])
    try:
        with pytest.raises(grpc.RpcError) as refused:
            broker_pb2_grpc.BrokerStub(channel).Metadata(broker_pb2.MetadataRequest(), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        bad_token = [("authorization", "Bearer not-a-token")]
        with pytest.raises(grpc.RpcError) as refused:
            broker_pb2_grpc.BrokerStub(channel).Metadata(broker_pb2.MetadataRequest(), timeout=5, metadata=bad_token)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        channel.close()


def test_the_sdk_authenticates_again_when_the_node_forgot_its_token(secure):
    node = secure.nodes[1]
    with Admin(transport=transport(secure, **admin_security(secure))) as admin:
        admin.list_topics()
        for token_digest in list(node.security.authenticator.sessions._sessions):
            del node.security.authenticator.sessions._sessions[token_digest]           # as after a node restart
        admin.list_topics()                                                   # re-authenticates, retries


def test_failed_logins_are_rate_limited_per_host(secure):
    node = secure.nodes[1]
    node.security.authenticator.limiter = LoginRateLimiter(failures_max=3, window_s=60)
    for _ in range(3):
        with Admin(transport=transport(secure, **admin_security(secure, "wrong")), request_timeout_ms=5000) as admin:
            with pytest.raises(client_errors.SaslAuthenticationFailedError, match="invalid credentials"):
                admin.list_topics()
    with Admin(transport=transport(secure, **admin_security(secure)), request_timeout_ms=5000) as admin:
        with pytest.raises(client_errors.SaslAuthenticationFailedError, match="too many failed"):
            admin.list_topics()                                               # even the right password, for now
    assert "too many failed authentication attempts" in kafka_python_refused(secure, ADMIN_PASSWORD)


def test_logins_are_audited_and_counted_without_secrets(secure, caplog):
    with caplog.at_level(logging.INFO, logger="freshet.audit"):
        with Admin(transport=transport(secure, **admin_security(secure, "wrong-one")), request_timeout_ms=5000) as admin:
            with pytest.raises(client_errors.SaslAuthenticationFailedError):
                admin.list_topics()
        with Admin(transport=transport(secure, **admin_security(secure))) as admin:
            admin.list_topics()
    lines = [json.loads(record.getMessage()) for record in caplog.records if record.name == "freshet.audit"]
    events = {(line["event"], line.get("mechanism"), line.get("user") or line.get("principal")) for line in lines}
    assert ("authentication_failed", "SCRAM-SHA-512", "admin") in events
    assert ("authentication_succeeded", "SCRAM-SHA-512", "User:admin") in events
    assert all(line["host"] == "127.0.0.1" for line in lines if line["event"].startswith("authentication"))
    text = " ".join(record.getMessage() for record in caplog.records)
    assert "wrong-one" not in text and ADMIN_PASSWORD not in text
    registry = secure.nodes[1].registry
    labels = {"listener": "grpc", "mechanism": "SCRAM-SHA-512"}
    assert registry.get_sample_value("freshet_authentication_failures_total", labels) >= 1
    assert registry.get_sample_value("freshet_authentication_successes_total", labels) >= 1


# -- the Kafka listener -------------------------------------------------------------------------


def kafka_python_producer(secure, password, user="admin", mechanism="SCRAM-SHA-512", **overrides):
    from kafka import KafkaProducer

    return KafkaProducer(
        bootstrap_servers=secure.kafka_bootstrap,
        security_protocol="SASL_SSL",
        ssl_cafile=secure.ca_file,
        sasl_mechanism=mechanism,
        sasl_plain_username=user,
        sasl_plain_password=password,
        request_timeout_ms=10000,
        max_block_ms=5000,
        **overrides,
    )


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"])
def test_kafka_python_logs_in_and_produces_and_consumes(secure, mechanism):
    from kafka import KafkaConsumer

    topic = f"auth-kp-{mechanism.lower()}-{uuid.uuid4().hex[:6]}"
    with Admin(transport=transport(secure, **admin_security(secure))) as admin:
        admin.create_topic(topic, partitions=1, replication_factor=1)
    producer = kafka_python_producer(secure, ADMIN_PASSWORD, mechanism=mechanism)
    try:
        producer.send(topic, b"over-sasl").get(timeout=15)
    finally:
        producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=secure.kafka_bootstrap,
        security_protocol="SASL_SSL",
        ssl_cafile=secure.ca_file,
        sasl_mechanism=mechanism,
        sasl_plain_username="admin",
        sasl_plain_password=ADMIN_PASSWORD,
        auto_offset_reset="earliest",
        consumer_timeout_ms=15000,
    )
    try:
        values = [message.value for message in _first(consumer)]
    finally:
        consumer.close()
    assert values[:1] == [b"over-sasl"]


def _first(consumer):
    for message in consumer:
        yield message
        return


def kafka_python_refused(secure, password, user="admin") -> str:
    """Produce with kafka-python; the log text of its refusal. kafka-python (3.x) bootstraps in
    the constructor and retries a refused login until `bootstrap_timeout_ms` (default 30 s), so
    the bound is short here: the first refusal is logged within a second."""
    from kafka.errors import KafkaError

    handler = _Collect()
    logging.getLogger("kafka").addHandler(handler)
    try:
        with pytest.raises(KafkaError):
            producer = kafka_python_producer(secure, password, user=user, bootstrap_timeout_ms=3000)
            try:
                producer.send("auth-never", b"x").get(timeout=6)
            finally:
                producer.close(timeout=2)
    finally:
        logging.getLogger("kafka").removeHandler(handler)
    return " ".join(handler.messages)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.mark.parametrize(("user", "password"), [("admin", "wrong-password"), ("nobody", ADMIN_PASSWORD)])
def test_kafka_python_with_bad_credentials_is_refused_with_kafkas_message(secure, user, password):
    before = topic_names(secure)
    text = kafka_python_refused(secure, password, user)
    assert "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512" in text
    assert password not in text
    assert topic_names(secure) == before


def test_confluent_kafka_scram_sha_512_produces_and_consumes(secure):
    from confluent_kafka import Consumer as KafkaConsumer
    from confluent_kafka import Producer as KafkaProducer

    topic = f"auth-ck-{uuid.uuid4().hex[:6]}"
    with Admin(transport=transport(secure, **admin_security(secure))) as admin:
        admin.create_topic(topic, partitions=1, replication_factor=1)
    common = {
        "bootstrap.servers": secure.kafka_bootstrap,
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": secure.ca_file,
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "admin",
        "sasl.password": ADMIN_PASSWORD,
    }
    delivered = []
    producer = KafkaProducer(common)
    producer.produce(topic, b"librdkafka", on_delivery=lambda error, message: delivered.append(error))
    producer.flush(15)
    assert delivered == [None]
    consumer = KafkaConsumer({**common, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe([topic])
        message = wait_until(lambda: _polled(consumer), 20, "a record")
    finally:
        consumer.close()
    assert message.value() == b"librdkafka"


def _polled(consumer):
    message = consumer.poll(0.5)
    return message if message is not None and message.error() is None else None


def test_confluent_kafka_with_a_wrong_password_gets_sasl_authentication_failed(secure):
    from confluent_kafka import Producer as KafkaProducer

    errors = []
    producer = KafkaProducer({
        "bootstrap.servers": secure.kafka_bootstrap,
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": secure.ca_file,
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "admin",
        "sasl.password": "wrong-password",
        "error_cb": errors.append,
        "reconnect.backoff.ms": 1000,
        "log_level": 0,
    })
    wait_until(lambda: (producer.poll(0.2), errors)[1], 10, "an error callback")
    producer.flush(0)
    text = " ".join(str(error) for error in errors)
    assert "Authentication failed during authentication due to invalid credentials" in text, text
    assert "wrong-password" not in text


def _frame(api_key: int, api_version: int, correlation_id: int, body: bytes = b"") -> bytes:
    client_id = b"raw"
    header = struct.pack(">hhih", api_key, api_version, correlation_id, len(client_id)) + client_id
    return struct.pack(">i", len(header) + len(body)) + header + body


def test_the_kafka_listener_serves_nothing_but_sasl_before_authentication(secure):
    host, port = secure.kafka_bootstrap.split(":")
    context = ssl.create_default_context(cafile=secure.ca_file)
    with socket.create_connection((host, int(port)), timeout=5) as raw, context.wrap_socket(raw, server_hostname=host) as connection:
        connection.sendall(_frame(18, 0, 1))                     # ApiVersions v0: answered
        size = struct.unpack(">i", connection.recv(4))[0]
        body = b""
        while len(body) < size:
            body += connection.recv(size - len(body))
        assert struct.unpack(">i", body[:4])[0] == 1
        connection.sendall(_frame(3, 0, 2, struct.pack(">i", 0)))  # Metadata v0, no topics: closed
        assert connection.recv(4) == b""


def test_sasl_apis_are_advertised_only_with_sasl(secure):
    handlers = {handler.api_key for handler in secure.nodes[1].kafka.apis.handlers()}
    assert {17, 36} <= handlers
    assert common_pb2.SASL_AUTHENTICATION_FAILED == 58


# -- the CLI --------------------------------------------------------------------------------------


def test_the_cli_logs_in_with_user_and_password_file(secure, tmp_path):
    from tests.support.cli_harness import run_cli

    password_file = tmp_path / "password"
    password_file.write_text(ADMIN_PASSWORD + "\n")
    topic = f"auth-cli-{uuid.uuid4().hex[:6]}"
    created = run_cli(
        ["topic", "create", topic, "--partitions", "1", "--replication-factor", "1",
         "--tls-ca", secure.ca_file, "--user", "admin", "--password-file", str(password_file)],
        secure.grpc_bootstrap,
    )
    assert created.returncode == 0, created.stderr
    assert topic in topic_names(secure)
    produced = run_cli(
        ["produce", topic], secure.grpc_bootstrap, input="one\n",
        env={"FRESHET_TLS_CA": secure.ca_file, "FRESHET_USER": "admin", "FRESHET_PASSWORD_FILE": str(password_file)},
    )
    assert produced.returncode == 0, produced.stderr


@pytest.mark.parametrize("form", ["sasl.username", "sasl.jaas.config"])
def test_the_cli_logs_in_with_a_kafka_command_config(secure, tmp_path, form):
    from tests.support.cli_harness import run_cli

    properties = tmp_path / "client.properties"
    if form == "sasl.username":
        credentials = f"sasl.username=admin\nsasl.password={ADMIN_PASSWORD}\n"
    else:
        credentials = (
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="admin" password="{ADMIN_PASSWORD}";\n'
        )
    properties.write_text(
        "# a Kafka client config\nsecurity.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-256\n"
        f"ssl.ca.location={secure.ca_file}\n{credentials}"
    )
    listed = run_cli(["topic", "list", "--command-config", str(properties), "--output", "json"], secure.grpc_bootstrap)
    assert listed.returncode == 0, listed.stderr
    assert isinstance(json.loads(listed.stdout), list)


def test_the_cli_with_a_wrong_password_exits_1_with_one_line(secure, tmp_path):
    from tests.support.cli_harness import one_error_line, run_cli

    password_file = tmp_path / "password"
    password_file.write_text("not-the-password\n")
    topic = f"auth-cli-refused-{uuid.uuid4().hex[:6]}"
    refused = run_cli(
        ["--tls-ca", secure.ca_file, "--user", "admin", "--password-file", str(password_file), "topic", "create", topic,
         "--partitions", "1", "--replication-factor", "1"],
        secure.grpc_bootstrap,
    )
    assert refused.returncode == 1
    line = one_error_line(refused)
    assert "'admin'" in line and "invalid credentials" in line and "--password-file" in line
    assert "not-the-password" not in refused.stderr
    assert topic not in topic_names(secure)
    missing = run_cli(["topic", "list", "--tls-ca", secure.ca_file, "--user", "admin"], secure.grpc_bootstrap)
    assert missing.returncode == 2
    assert "--password-file" in one_error_line(missing)
