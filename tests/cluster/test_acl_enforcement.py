"""ACLs enforced end to end on a `freshet cluster up --secure` cluster, on both listeners.

Goal (issue 15, "Tests that must exist"): a user allowed only Read on topic `a` and its group `ga`
cannot produce to `a`, read `b`, create or delete topics, alter configs or ACLs, or join another
group; after `acl add` for Write it can produce within a few seconds, after `acl remove` it cannot;
deny beats allow; prefixed patterns; the superuser can do everything. Checked with the CLI (gRPC),
kafka-python and confluent-kafka (SASL_SSL, SCRAM-SHA-512).
Method: one secure 3-node cluster for the module (its `--json` line gives the CA, the superuser
and its password file); users and ACLs made with `freshet user create` / `freshet acl add`;
every refusal checked for its authorization error and for nothing having changed.
Needs the sec-tls, sec-auth and sec-admin branches (TLS, SASL, users and ACL commands): it cannot
pass on the sec-authz branch alone.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time

import confluent_kafka
import kafka
import kafka.errors
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.cli_harness import CLI, ClusterUp, run_cli
from tests.support.ports import free_port_block

pytestmark = pytest.mark.cluster

PROPAGATION_S = 5.0
PASSWORD = "reader-secret-1"


class SecureClusterUp(ClusterUp):
    """`freshet cluster up --secure --json`; `security` is the JSON line's (ca_file, user,
    password_file). Not thread-safe."""

    def __init__(self, data_dir) -> None:
        self.data_dir = data_dir
        self.base_port = free_port_block(24)
        self.process = subprocess.Popen(
            [*CLI, "cluster", "up", "--nodes", "3", "--secure", "--data-dir", str(data_dir),
             "--base-port", str(self.base_port), "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: list[str] = []
        self.errors: list[str] = []
        for stream, into in ((self.process.stdout, self.lines), (self.process.stderr, self.errors)):
            threading.Thread(target=self._read, args=(stream, into), daemon=True).start()
        self.node_pids: dict[int, int] = {}
        self.extra_pids: list[int] = []
        self.bootstrap = self.kafka_bootstrap = ""
        self.security: dict = {}

    def wait_ready(self, timeout_s: float = 120) -> str:
        bootstrap = super().wait_ready(timeout_s)
        self.security = json.loads(self.lines[0])["security"]
        return bootstrap


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    cluster = SecureClusterUp(tmp_path_factory.mktemp("secure-cluster"))
    try:
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.close()


def as_admin(cluster, args: list[str], **kwargs) -> subprocess.CompletedProcess:
    security = cluster.security
    options = ["--tls-ca", security["ca_file"], "--user", security["user"], "--password-file", security["password_file"]]
    return run_cli([*options, *args], cluster.bootstrap, **kwargs)


def as_reader(cluster, args: list[str], password_file) -> subprocess.CompletedProcess:
    options = ["--tls-ca", cluster.security["ca_file"], "--user", "reader", "--password-file", str(password_file)]
    return run_cli([*options, *args], cluster.bootstrap)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def refused(result: subprocess.CompletedProcess, code: str) -> None:
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not authorized" in lines[0] and "Traceback" not in result.stderr, result.stderr
    assert code in lines[0] or "PERMISSION_DENIED" in lines[0] or "authoriz" in lines[0].lower()


def kafka_python_config(cluster, user: str, password: str) -> dict:
    return dict(
        bootstrap_servers=cluster.kafka_bootstrap, security_protocol="SASL_SSL", ssl_cafile=cluster.security["ca_file"],
        sasl_mechanism="SCRAM-SHA-512", sasl_plain_username=user, sasl_plain_password=password,
    )


def confluent_config(cluster, user: str, password: str) -> dict:
    return {
        "bootstrap.servers": cluster.kafka_bootstrap, "security.protocol": "SASL_SSL",
        "ssl.ca.location": cluster.security["ca_file"], "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": user, "sasl.password": password,
    }


@pytest.fixture(scope="module")
def reader(secure, tmp_path_factory):
    """User `reader`: Read on topic a and group ga only; topics a and b exist with one record each."""
    password_file = tmp_path_factory.mktemp("reader") / "password"
    password_file.write_text(PASSWORD)
    ok(as_admin(secure, ["user", "create", "reader", "--password-stdin"], input=PASSWORD + "\n"))
    for topic in ("a", "b"):
        ok(as_admin(secure, ["topic", "create", topic, "-p", "1", "-r", "3"]))
        ok(as_admin(secure, ["produce", topic, "--value", f"first of {topic}"]))
    ok(as_admin(secure, ["acl", "add", "--allow", "--principal", "User:reader", "--operation", "Read", "--topic", "a"]))
    ok(as_admin(secure, ["acl", "add", "--allow", "--principal", "User:reader", "--operation", "Read", "--group", "ga"]))
    time.sleep(1.5)                                  # ACL changes reach every broker within about a second
    return password_file


def topics_of(cluster) -> list[str]:
    return ok(as_admin(cluster, ["topic", "list"])).split()


def test_the_reader_reads_a_and_nothing_else_on_the_grpc_port(secure, reader):
    assert "first of a" in ok(as_reader(secure, ["consume", "a", "--from-beginning", "--max-records", "1", "--group", "ga"], reader))
    refused(as_reader(secure, ["produce", "a", "--value", "nope"], reader), "TOPIC_AUTHORIZATION_FAILED")
    refused(as_reader(secure, ["consume", "b", "--from-beginning", "--max-records", "1"], reader), "TOPIC_AUTHORIZATION_FAILED")
    refused(as_reader(secure, ["topic", "create", "c"], reader), "CLUSTER_AUTHORIZATION_FAILED")
    refused(as_reader(secure, ["topic", "delete", "a"], reader), "TOPIC_AUTHORIZATION_FAILED")
    refused(as_reader(secure, ["config", "set", "--topic", "a", "retention.ms=1000"], reader), "TOPIC_AUTHORIZATION_FAILED")
    refused(as_reader(secure, ["acl", "add", "--allow", "--principal", "User:reader", "--operation", "All", "--cluster"], reader),
            "CLUSTER_AUTHORIZATION_FAILED")
    refused(as_reader(secure, ["consume", "a", "--from-beginning", "--max-records", "1", "--group", "other"], reader),
            "GROUP_AUTHORIZATION_FAILED")
    assert sorted(t for t in topics_of(secure) if not t.startswith("__")) == ["a", "b"], "nothing was created or deleted"
    assert "retention.ms" not in ok(as_admin(secure, ["config", "describe", "--topic", "a", "--dynamic"]))


def test_kafka_python_reader_is_refused_per_topic_and_group(secure, reader):
    config = kafka_python_config(secure, "reader", PASSWORD)
    producer = kafka.KafkaProducer(**config, acks="all", retries=0)
    try:
        with pytest.raises(kafka.errors.TopicAuthorizationFailedError):
            producer.send("a", b"nope").get(15)
    finally:
        producer.close(5)
    consumer = kafka.KafkaConsumer(**config, group_id="ga", enable_auto_commit=False, consumer_timeout_ms=10000,
                                   auto_offset_reset="earliest")
    try:
        consumer.subscribe(["a"])
        assert [record.value for record in consumer][:1] == [b"first of a"]
    finally:
        consumer.close()
    other = kafka.KafkaConsumer(**config, group_id="other", consumer_timeout_ms=5000)
    try:
        other.subscribe(["a"])
        with pytest.raises(kafka.errors.GroupAuthorizationFailedError):
            list(other)
    finally:
        other.close()
    admin = kafka.KafkaAdminClient(**config)
    try:
        result = admin.create_topics([kafka.admin.NewTopic("c", 1, 1)], raise_on_error=False)
        assert any(code == 29 for _, code, *_ in getattr(result, "topic_errors", [])) or "c" not in admin.list_topics()
    finally:
        admin.close()


def test_confluent_reader_cannot_produce_until_write_is_added_and_again_after_it_is_removed(secure, reader):
    config = confluent_config(secure, "reader", PASSWORD)

    def produce() -> int:
        errors = []
        producer = confluent_kafka.Producer({**config, "message.timeout.ms": 5000})
        producer.produce("a", b"maybe", on_delivery=lambda error, _: errors.append(error))
        producer.flush(10)
        return 0 if errors == [None] else errors[0].code()

    assert produce() == confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED
    write = ["--allow", "--principal", "User:reader", "--operation", "Write", "--topic", "a"]
    ok(as_admin(secure, ["acl", "add", *write]))
    deadline = time.monotonic() + PROPAGATION_S
    while produce() != 0:
        assert time.monotonic() < deadline, "Write did not take effect within a few seconds"
    ok(as_admin(secure, ["acl", "remove", *write]))
    deadline = time.monotonic() + PROPAGATION_S
    while produce() == 0:
        assert time.monotonic() < deadline, "the removed Write still allowed produce"
    assert produce() == confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED
    admin = AdminClient(config)
    futures = admin.create_topics([NewTopic("c", 1, 1)])
    with pytest.raises(confluent_kafka.KafkaException) as raised:
        futures["c"].result(15)
    assert raised.value.args[0].code() in (confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED,
                                           confluent_kafka.KafkaError.CLUSTER_AUTHORIZATION_FAILED)


def test_deny_beats_allow_and_prefixed_patterns_match(secure, reader):
    for topic in ("logs.app", "logs.secret"):
        ok(as_admin(secure, ["topic", "create", topic, "-p", "1", "-r", "3"]))
    ok(as_admin(secure, ["acl", "add", "--allow", "--principal", "User:reader", "--operation", "Write",
                         "--topic", "logs.", "--pattern", "prefixed"]))
    ok(as_admin(secure, ["acl", "add", "--deny", "--principal", "User:reader", "--operation", "Write",
                         "--topic", "logs.secret"]))
    time.sleep(1.5)
    ok(as_reader(secure, ["produce", "logs.app", "--value", "allowed by prefix"], reader))
    refused(as_reader(secure, ["produce", "logs.secret", "--value", "denied"], reader), "TOPIC_AUTHORIZATION_FAILED")
    assert "denied" not in ok(as_admin(secure, ["consume", "logs.secret", "--from-beginning", "--max-records", "1",
                                                "--timeout-ms", "3000"]))


def test_the_superuser_can_do_everything(secure):
    ok(as_admin(secure, ["topic", "create", "su", "-p", "2", "-r", "3"]))
    ok(as_admin(secure, ["produce", "su", "--value", "x"]))
    ok(as_admin(secure, ["config", "set", "--topic", "su", "retention.ms=60000"]))
    ok(as_admin(secure, ["acl", "list"]))
    ok(as_admin(secure, ["topic", "delete", "su"]))
    security = secure.security
    password = open(security["password_file"], encoding="utf-8").read().strip()
    producer = confluent_kafka.Producer(confluent_config(secure, security["user"], password))
    errors = []
    producer.produce("a", b"from the superuser", on_delivery=lambda error, _: errors.append(error))
    producer.flush(15)
    assert errors == [None]
