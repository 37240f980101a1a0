"""ACLs enforced end to end on a `freshet cluster up --secure` cluster, on both listeners.

Goal (issue 15, "Tests that must exist"): a user allowed only Read on topic `a` and its group `ga`
cannot produce to `a`, read `b`, create or delete topics, alter configs or ACLs, or join another
group; after `acl add` for Write it can produce within a few seconds, after `acl remove` it cannot;
deny beats allow; prefixed patterns; the superuser can do everything. Checked with the CLI (gRPC),
the SDK, kafka-python and confluent-kafka (SASL_SSL, SCRAM-SHA-512). Every denial and every
user or ACL change is one audit line; no password reaches a node's log.
Method: one secure 3-node cluster for the module (its `--json` line gives the CA, the superuser
and its password file); users and ACLs made with `freshet user create` / `freshet acl add`;
every refusal checked for its authorization error and, as the superuser, for nothing having
changed (topics, configs, ACLs, users, groups, log end offsets). The audit and secrets checks
read the nodes' logs under the data dir at the end of the module.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import threading
import time

import confluent_kafka
import kafka
import kafka.admin
import kafka.errors
import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from freshet.client import Admin, Consumer, Producer, TopicPartition
from freshet.client import errors as sdk_errors
from freshet.client.admin_results import ConfigResource
from freshet.client.admin_security import ACL, ACLOperation, ACLPermissionType, ResourcePattern

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


def admin_options(cluster) -> list[str]:
    security = cluster.security
    return ["--tls-ca", security["ca_file"], "--user", security["user"], "--password-file", security["password_file"]]


def as_admin(cluster, args: list[str], bootstrap: str | None = None, **kwargs) -> subprocess.CompletedProcess:
    return run_cli([*admin_options(cluster), *args], bootstrap or cluster.bootstrap, **kwargs)


def as_reader(cluster, args: list[str], password_file, **kwargs) -> subprocess.CompletedProcess:
    options = ["--tls-ca", cluster.security["ca_file"], "--user", "reader", "--password-file", str(password_file)]
    return run_cli([*options, *args], cluster.bootstrap, **kwargs)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def refused(result: subprocess.CompletedProcess, code: str) -> str:
    """Assert a CLI refusal: exit 1, one line naming the missing right (`code` names the right's
    resource: TOPIC_/GROUP_/CLUSTER_AUTHORIZATION_FAILED). Returns the line."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "is not authorized to" in lines[0], lines[0]
    resource = {"TOPIC_AUTHORIZATION_FAILED": "topic", "GROUP_AUTHORIZATION_FAILED": "group",
                "CLUSTER_AUTHORIZATION_FAILED": "the cluster"}[code]
    assert resource in lines[0], lines[0]
    return lines[0]


def produce_line(cluster, who, topic: str, value: str, password_file=None) -> subprocess.CompletedProcess:
    if who == "admin":
        return as_admin(cluster, ["produce", topic], input=value + "\n")
    return as_reader(cluster, ["produce", topic], password_file, input=value + "\n")


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


def sdk_options(cluster, user: str, password: str) -> dict:
    return dict(
        security_protocol="SASL_SSL", ssl_cafile=cluster.security["ca_file"], sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username=user, sasl_plain_password=password,
    )


def admin_password(cluster) -> str:
    return pathlib.Path(cluster.security["password_file"]).read_text(encoding="utf-8").strip()


@pytest.fixture(scope="module")
def reader(secure, tmp_path_factory):
    """User `reader`: Read on topic a and group ga only; topics a and b exist with one record each."""
    password_file = tmp_path_factory.mktemp("reader") / "password"
    password_file.write_text(PASSWORD)
    ok(as_admin(secure, ["user", "create", "reader", "--password-stdin"], input=PASSWORD + "\n"))
    for topic in ("a", "b"):
        ok(as_admin(secure, ["topic", "create", topic, "-p", "1", "-r", "3"]))
        ok(produce_line(secure, "admin", topic, f"first of {topic}"))
    ok(as_admin(secure, ["acl", "add", "--allow", "--principal", "User:reader", "--operation", "Read", "--topic", "a"]))
    ok(as_admin(secure, ["acl", "add", "--allow", "--principal", "User:reader", "--operation", "Read", "--group", "ga"]))
    time.sleep(1.5)                                  # ACL changes reach every broker within about a second
    return password_file


# -- the state a refusal must leave alone, read as the superuser ------------------------------------


def topics_of(cluster) -> list[str]:
    return sorted(t["name"] for t in json.loads(ok(as_admin(cluster, ["topic", "list", "-o", "json"]))))


def log_end_offsets(cluster) -> dict[str, int]:
    described = json.loads(ok(as_admin(cluster, ["topic", "describe", "-o", "json"])))
    return {t["name"]: sum(p["log_end_offset"] for p in t["partitions"]) for t in described}


def topic_configs(cluster, topic: str) -> dict:
    return json.loads(ok(as_admin(cluster, ["topic", "config", topic, "-o", "json"])))


def acls_of(cluster) -> list[dict]:
    return json.loads(ok(as_admin(cluster, ["acl", "list", "-o", "json"])))


def users_of(cluster) -> str:
    return ok(as_admin(cluster, ["user", "list"]))


def groups_of(cluster) -> list[str]:
    return sorted(g["group"] for g in json.loads(ok(as_admin(cluster, ["group", "list", "-o", "json"]))))


def state_of(cluster) -> dict:
    return {
        "topics": topics_of(cluster), "offsets": log_end_offsets(cluster), "configs": topic_configs(cluster, "a"),
        "acls": acls_of(cluster), "users": users_of(cluster), "groups": groups_of(cluster),
    }


# -- node logs: audit lines and secrets -------------------------------------------------------------


def node_logs(cluster) -> str:
    return "".join(path.read_text(errors="replace") for path in sorted(pathlib.Path(cluster.data_dir).glob("node-*/*.log")))


def audit_lines(cluster) -> list[dict]:
    return [json.loads(line.split(" audit: ", 1)[1]) for line in node_logs(cluster).splitlines() if " audit: {" in line]


def wait_for_audit(cluster, predicate, count: int, what: str, timeout_s: float = 5.0) -> list[dict]:
    """The audit lines (all nodes) matching `predicate`, once there are `count` of them (exactly)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = [line for line in audit_lines(cluster) if predicate(line)]
        if len(found) >= count or time.monotonic() > deadline:
            assert len(found) == count, (what, found)
            return found
        time.sleep(0.1)


# -- the tests ---------------------------------------------------------------------------------------


def test_the_reader_reads_a_and_nothing_else_with_the_cli(secure, reader):
    read = ["--from-beginning", "--max-messages", "1", "--timeout-ms", "10000"]
    assert "first of a" in ok(as_reader(secure, ["consume", "a", *read, "--group", "ga"], reader))
    before = state_of(secure)
    refused(produce_line(secure, "reader", "a", "nope", reader), "CLUSTER_AUTHORIZATION_FAILED")   # no Write anywhere: no producer id
    refused(as_reader(secure, ["consume", "b", *read], reader), "TOPIC_AUTHORIZATION_FAILED")
    refused(as_reader(secure, ["consume", "b", *read, "--group", "ga"], reader), "TOPIC_AUTHORIZATION_FAILED")
    refused(as_reader(secure, ["topic", "create", "c-cli", "-p", "1", "-r", "1"], reader), "TOPIC_AUTHORIZATION_FAILED")
    refused(as_reader(secure, ["topic", "delete", "a"], reader), "TOPIC_AUTHORIZATION_FAILED")
    refused(as_reader(secure, ["topic", "config", "a", "--set", "retention.ms=1000"], reader), "TOPIC_AUTHORIZATION_FAILED")
    refused(as_reader(secure, ["config", "--cluster", "--set", "log.retention.ms=1000"], reader), "CLUSTER_AUTHORIZATION_FAILED")
    refused(as_reader(secure, ["acl", "add", "--allow", "--principal", "User:reader", "--operation", "All", "--cluster"], reader),
            "CLUSTER_AUTHORIZATION_FAILED")
    refused(as_reader(secure, ["acl", "remove", "--allow", "--principal", "User:reader", "--operation", "Read", "--topic", "a"],
                      reader), "CLUSTER_AUTHORIZATION_FAILED")
    refused(as_reader(secure, ["user", "create", "mallory", "--password-stdin"], reader, input="mallory-secret-9\n"),
            "CLUSTER_AUTHORIZATION_FAILED")
    refused(as_reader(secure, ["consume", "a", *read, "--group", "other"], reader), "GROUP_AUTHORIZATION_FAILED")
    assert state_of(secure) == before, "a refusal changed something"
    assert before["topics"] == ["a", "b"] and "other" not in before["groups"]
    assert before["configs"]["retention.ms"]["source"] == "default"
    # One audit line per denial, on the node that refused it.
    wait_for_audit(secure, lambda line: line["event"] == "authorization_denied" and line["resource"] == "c-cli", 1,
                   "the refused topic create")


def test_the_reader_is_refused_the_same_with_the_sdk(secure, reader):
    options = sdk_options(secure, "reader", PASSWORD)
    before = state_of(secure)
    admin = Admin(secure.bootstrap, request_timeout_ms=10000, **options)
    try:
        with pytest.raises(sdk_errors.TopicAuthorizationFailedError):
            admin.create_topic("c-sdk", 1, 1)
        with pytest.raises(sdk_errors.TopicAuthorizationFailedError):
            admin.delete_topic("a")
        with pytest.raises(sdk_errors.TopicAuthorizationFailedError):
            admin.alter_configs(ConfigResource.topic("a"), set={"retention.ms": "1000"})
        with pytest.raises(sdk_errors.ClusterAuthorizationFailedError):
            admin.create_acls([ACL("User:reader", "*", ACLOperation.ALL, ACLPermissionType.ALLOW, ResourcePattern.cluster())])
        with pytest.raises(sdk_errors.ClusterAuthorizationFailedError):
            admin.create_user("mallory", "mallory-secret-9")
        assert [t.name for t in admin.list_topics()] == ["a"]             # b is not even listed
    finally:
        admin.close()
    with Producer(secure.bootstrap, acks="all", enable_idempotence=False, retries=0, **options) as producer:
        with pytest.raises(sdk_errors.TopicAuthorizationFailedError) as raised:
            producer.send("a", b"nope").result(15)
        assert raised.value.retriable is False
    with Producer(secure.bootstrap, acks="all", **options) as producer:      # idempotent: refused its producer id
        with pytest.raises(sdk_errors.ClusterAuthorizationFailedError):
            producer.send("a", b"nope").result(15)
    with Consumer(secure.bootstrap, enable_auto_commit=False, **options) as consumer:
        consumer.assign([TopicPartition("a", 0)])
        consumer.seek_to_beginning()
        values: list[bytes] = []
        deadline = time.monotonic() + 20
        while not values and time.monotonic() < deadline:
            values += [record.value for record in consumer.poll(500)]
        assert values[:1] == [b"first of a"]
    # Group ga may be joined (the CLI's member committed past the record already: no records).
    with Consumer(secure.bootstrap, group_id="ga", enable_auto_commit=False, **options) as consumer:
        consumer.subscribe(["a"])
        deadline = time.monotonic() + 20
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(200)
        assert consumer.assignment() == {TopicPartition("a", 0)}
    with Consumer(secure.bootstrap, enable_auto_commit=False, **options) as consumer:
        consumer.assign([TopicPartition("b", 0)])
        consumer.seek_to_beginning()
        with pytest.raises(sdk_errors.TopicAuthorizationFailedError):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                assert consumer.poll(500) == []
    with Consumer(secure.bootstrap, group_id="other", enable_auto_commit=False, **options) as consumer:
        consumer.subscribe(["a"])
        with pytest.raises(sdk_errors.GroupAuthorizationFailedError):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                assert consumer.poll(500) == []
    assert state_of(secure) == before, "a refusal changed something"


def test_kafka_python_reader_is_refused_per_topic_and_group(secure, reader):
    config = kafka_python_config(secure, "reader", PASSWORD)
    before = state_of(secure)
    producer = kafka.KafkaProducer(**config, acks="all", retries=0)
    try:
        with pytest.raises(kafka.errors.TopicAuthorizationFailedError):
            producer.send("a", b"nope").get(15)
    finally:
        producer.close(5)
    consumer = kafka.KafkaConsumer(**config, consumer_timeout_ms=10000, auto_offset_reset="earliest")
    try:
        consumer.assign([kafka.TopicPartition("a", 0)])
        assert [record.value for record in consumer][:1] == [b"first of a"]
    finally:
        consumer.close()
    member = kafka.KafkaConsumer(**config, group_id="ga", enable_auto_commit=False, consumer_timeout_ms=3000)
    try:
        member.subscribe(["a"])
        list(member)                                     # joins; ga committed past the record already
        assert member.assignment() == {kafka.TopicPartition("a", 0)}
    finally:
        member.close()
    other = kafka.KafkaConsumer(**config, group_id="other", consumer_timeout_ms=5000)
    try:
        other.subscribe(["a"])
        with pytest.raises(kafka.errors.GroupAuthorizationFailedError):
            list(other)
    finally:
        other.close()
    admin = kafka.KafkaAdminClient(**config)
    try:
        with pytest.raises((kafka.errors.TopicAuthorizationFailedError, kafka.errors.ClusterAuthorizationFailedError)):
            admin.create_topics([kafka.admin.NewTopic("c-kafka-python", 1, 1)])
    finally:
        admin.close()
    assert state_of(secure) == before, "a refusal changed something"


def test_confluent_reader_cannot_produce_until_write_is_added_and_again_after_it_is_removed(secure, reader):
    config = confluent_config(secure, "reader", PASSWORD)

    def produce() -> int:
        errors = []
        producer = confluent_kafka.Producer({**config, "message.timeout.ms": 5000})
        producer.produce("a", b"maybe", on_delivery=lambda error, _: errors.append(error))
        producer.flush(10)
        assert len(errors) == 1, errors
        # `is None`: KafkaError's == against None fails inside the C binding (SystemError).
        return 0 if errors[0] is None else errors[0].code()

    offsets = log_end_offsets(secure)["a"]
    assert produce() == confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert log_end_offsets(secure)["a"] == offsets
    write = ["--allow", "--principal", "User:reader", "--operation", "Write", "--topic", "a"]
    ok(as_admin(secure, ["acl", "add", *write]))
    started = time.monotonic()
    while produce() != 0:
        assert time.monotonic() - started < PROPAGATION_S, "Write did not take effect within a few seconds"
    # The CLI (idempotent: Write on a topic is enough for a producer id) produces too.
    ok(produce_line(secure, "reader", "a", "by the cli", reader))
    ok(as_admin(secure, ["acl", "remove", *write]))
    started = time.monotonic()
    while produce() == 0:
        assert time.monotonic() - started < PROPAGATION_S, "the removed Write still allowed produce"
    written = log_end_offsets(secure)["a"]
    assert produce() == confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED
    refused(produce_line(secure, "reader", "a", "no longer", reader), "CLUSTER_AUTHORIZATION_FAILED")
    assert log_end_offsets(secure)["a"] == written
    admin = AdminClient(config)
    futures = admin.create_topics([NewTopic("c-confluent", 1, 1)])
    with pytest.raises(confluent_kafka.KafkaException) as raised:
        futures["c-confluent"].result(15)
    assert raised.value.args[0].code() in (confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED,
                                           confluent_kafka.KafkaError.CLUSTER_AUTHORIZATION_FAILED)
    assert "c-confluent" not in topics_of(secure)


def test_deny_beats_allow_and_prefixed_patterns_match(secure, reader):
    for topic in ("logs.app", "logs.secret", "other.app"):
        ok(as_admin(secure, ["topic", "create", topic, "-p", "1", "-r", "3"]))
    ok(as_admin(secure, ["acl", "add", "--allow", "--principal", "User:reader", "--operation", "Write",
                         "--topic", "logs.", "--pattern", "prefixed"]))
    ok(as_admin(secure, ["acl", "add", "--deny", "--principal", "User:reader", "--operation", "Write",
                         "--topic", "logs.secret"]))
    time.sleep(1.5)
    ok(produce_line(secure, "reader", "logs.app", "allowed by prefix", reader))
    refused(produce_line(secure, "reader", "logs.secret", "denied", reader), "TOPIC_AUTHORIZATION_FAILED")
    refused(produce_line(secure, "reader", "other.app", "not under the prefix", reader), "TOPIC_AUTHORIZATION_FAILED")
    offsets = log_end_offsets(secure)
    assert (offsets["logs.app"], offsets["logs.secret"], offsets["other.app"]) == (1, 0, 0)
    with Producer(secure.bootstrap, acks="all", **sdk_options(secure, "reader", PASSWORD)) as producer:
        assert producer.send("logs.app", b"sdk by prefix").result(15).offset == 1
        with pytest.raises(sdk_errors.TopicAuthorizationFailedError):
            producer.send("logs.secret", b"sdk denied").result(15)
    assert log_end_offsets(secure)["logs.secret"] == 0


def test_the_superuser_can_do_everything(secure):
    ok(as_admin(secure, ["topic", "create", "su", "-p", "2", "-r", "3"]))
    ok(produce_line(secure, "admin", "su", "x"))
    assert "x" in ok(as_admin(secure, ["consume", "su", "--from-beginning", "--max-messages", "1", "--timeout-ms", "10000",
                                       "--group", "any-group"]))
    ok(as_admin(secure, ["topic", "config", "su", "--set", "retention.ms=60000"]))
    assert topic_configs(secure, "su")["retention.ms"] == {"value": "60000", "source": "dynamic_topic"}
    ok(as_admin(secure, ["topic", "alter", "su", "-p", "3"]))
    ok(as_admin(secure, ["user", "create", "temp", "--password-stdin"], input="temp-secret-42\n"))
    # Through nodes 2 and 3 only: at least one of them forwards to the active controller, which
    # must accept the forwarding node (node certificate over SASL_SSL) and not audit it twice.
    node_2, node_3 = secure.bootstrap.split(",")[1:]
    ok(as_admin(secure, ["acl", "add", "--allow", "--principal", "User:temp", "--operation", "Read", "--topic", "su"], node_2))
    ok(as_admin(secure, ["acl", "remove", "--allow", "--principal", "User:temp", "--operation", "Read", "--topic", "su"], node_3))
    ok(as_admin(secure, ["user", "delete", "temp"], node_3))
    ok(as_admin(secure, ["topic", "create", "su-forwarded", "-p", "1", "-r", "3"], node_2))
    ok(as_admin(secure, ["topic", "delete", "su-forwarded"], node_3))
    ok(as_admin(secure, ["acl", "list"]))
    ok(as_admin(secure, ["topic", "delete", "su"]))
    assert "su" not in topics_of(secure) and "temp" not in users_of(secure)
    password = admin_password(secure)
    producer = confluent_kafka.Producer(confluent_config(secure, secure.security["user"], password))
    errors = []
    producer.produce("a", b"from the superuser", on_delivery=lambda error, _: errors.append(error))
    producer.flush(15)
    assert len(errors) == 1 and errors[0] is None, errors
    admin = kafka.KafkaAdminClient(**kafka_python_config(secure, secure.security["user"], password))
    try:
        admin.create_topics([kafka.admin.NewTopic("su-kafka-python", 1, 3)])
        admin.delete_topics(["su-kafka-python"])
    finally:
        admin.close()


def test_every_user_and_acl_change_is_one_audit_line_and_no_secret_reaches_a_node_log(secure, reader):
    """Runs last: reads what the module did from the nodes' logs. The CLI sends each change to
    node 1 or forwards it there; whichever node the client called writes the line, once."""
    lines = audit_lines(secure)
    created = [(line["acl_principal"], line["operation"], line["resource"]) for line in lines if line["event"] == "acl_created"]
    deleted = [(line["acl_principal"], line["operation"], line["resource"]) for line in lines if line["event"] == "acl_deleted"]
    assert sorted(created) == sorted([
        ("User:reader", "Read", "a"), ("User:reader", "Read", "ga"), ("User:reader", "Write", "a"),
        ("User:reader", "Write", "logs."), ("User:reader", "Write", "logs.secret"), ("User:temp", "Read", "su"),
    ])
    assert sorted(deleted) == [("User:reader", "Write", "a"), ("User:temp", "Read", "su")]
    users = [(line["user"], line["action"], line["mechanism"]) for line in lines if line["event"] == "user_changed"]
    assert sorted(users) == sorted([
        ("reader", "upsert", "SCRAM-SHA-256"), ("reader", "upsert", "SCRAM-SHA-512"),
        ("temp", "upsert", "SCRAM-SHA-256"), ("temp", "upsert", "SCRAM-SHA-512"), ("temp", "delete", "all"),
    ])
    assert all(line["principal"] == "User:admin" for line in lines if line["event"] in ("acl_created", "acl_deleted", "user_changed"))
    denials = [line for line in lines if line["event"] == "authorization_denied"]
    assert {(line["principal"], line["resource"]) for line in denials} >= {("User:reader", "c-cli"), ("User:reader", "logs.secret")}
    logs = node_logs(secure)
    for secret in (admin_password(secure), PASSWORD, "temp-secret-42", "mallory-secret-9"):
        assert secret not in logs
    key = pathlib.Path(secure.security["ca_file"]).with_name("node.key").read_text()
    assert key.splitlines()[1] not in logs
