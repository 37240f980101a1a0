"""Users and ACLs managed through every front-end of a plain (PLAINTEXT) 3-node cluster.

Goal: `freshet user` / `freshet acl`, the SDK's Admin, and unmodified Kafka admin clients
(kafka-python's KafkaAdminClient, librdkafka's through confluent-kafka) manage the same users and
ACLs in the replicated metadata; every broker sees a change within about a second (issue 15);
secrets (passwords, salts, SCRAM keys) never come back: not from describes, `metadata dump`
or /status. With security off these operations are allowed, so a cluster can be prepared before
it is secured. Method: a real `cluster up` of 3 nodes; each change is made through one front-end
and read back through others, from every node (the SDK pinned to one node's address reads that
node's image).

Reference: KIP-554 (SCRAM credentials API), KIP-140/KIP-290 (ACL admin APIs, prefixed patterns),
RFC 5802 (SaltedPassword).
"""

from __future__ import annotations

import base64
import json
import time
import urllib.request

import kafka
import pytest
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from freshet.client import Admin
from freshet.client.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourcePatternFilter,
)
from freshet.client.admin import ResourceType as FreshetResourceType
from freshet.client.errors import ResourceNotFoundError
from freshet.v1 import controller_pb2, controller_pb2_grpc, metadata_pb2
from kafka.admin import ACL as KpACL
from kafka.admin import ACLFilter as KpACLFilter
from kafka.admin import ACLOperation as KpOperation
from kafka.admin import ACLPermissionType as KpPermission
from kafka.admin import ACLResourcePatternType as KpPatternType
from kafka.admin import ResourcePattern as KpResourcePattern
from kafka.admin import ResourcePatternFilter as KpResourcePatternFilter
from kafka.admin import ResourceType as KpResourceType

from tests.support.cli_harness import one_error_line, run_cli

pytestmark = pytest.mark.cluster

PROPAGATION_S_MAX = 1.5         # "within about a second", with room for a loaded 2-core machine


@pytest.fixture(scope="module")
def cluster(kafka_cluster):
    return kafka_cluster


@pytest.fixture(scope="module")
def node_admins(cluster):
    """One Admin per node, each pinned to that node (describes read that node's image)."""
    admins = [Admin(address) for address in cluster.bootstrap.split(",")]
    yield admins
    for admin in admins:
        admin.close()


def wait_everywhere(admins, predicate, what: str, timeout_s: float = 10.0) -> float:
    """Seconds until predicate(admin) holds on every node (polled every 10 ms)."""
    started = time.monotonic()
    pending = list(admins)
    while pending:
        pending = [admin for admin in pending if not predicate(admin)]
        assert time.monotonic() - started < timeout_s, f"{what}: not on {[a.bootstrap_servers for a in pending]}"
        if pending:
            time.sleep(0.01)
    return time.monotonic() - started


def acl_names(admin: Admin, acl_filter: ACLFilter | None = None) -> set[tuple]:
    return {
        (a.principal, a.operation.kafka_name, a.resource_pattern.resource_type.name, a.resource_pattern.resource_name,
         a.resource_pattern.pattern_type.name, a.permission_type.name)
        for a in admin.describe_acls(acl_filter)
    }


def users_of(admin: Admin) -> dict[str, list[tuple[str, int]]]:
    return {u.name: [(c.mechanism, c.iterations) for c in u.credentials] for u in admin.list_users()}


# -------------------------------------------------------------------------------------------------
# freshet user


def test_user_create_list_delete_with_the_cli_from_every_node(cluster, node_admins):
    """Goal: INTERFACE.md's `freshet user` commands; the password is read from stdin and never
    printed; the user shows on every node; deleting an unknown user exits 1 with one line."""
    password = "correct horse battery staple"
    created = run_cli(["user", "create", "cli-user", "--password-stdin"], cluster.bootstrap, input=password + "\n")
    assert created.returncode == 0, created.stderr
    assert password not in created.stdout + created.stderr
    assert "cli-user" in created.stdout
    wait_everywhere(node_admins, lambda a: "cli-user" in users_of(a), "cli-user created")
    for address in cluster.bootstrap.split(","):
        listed = run_cli(["user", "list", "--output", "json"], address)
        assert listed.returncode == 0, listed.stderr
        [user] = [u for u in json.loads(listed.stdout) if u["name"] == "cli-user"]
        assert user["credentials"] == [
            {"mechanism": "SCRAM-SHA-256", "iterations": 8192}, {"mechanism": "SCRAM-SHA-512", "iterations": 8192},
        ]
    table = run_cli(["user", "list"], cluster.bootstrap)
    assert "cli-user" in table.stdout and "SCRAM-SHA-512" in table.stdout

    empty = run_cli(["user", "create", "nobody", "--password-stdin"], cluster.bootstrap, input="")
    assert empty.returncode == 2 and "no password" in one_error_line(empty)
    no_flag = run_cli(["user", "create", "nobody"], cluster.bootstrap, input="pw\n")
    assert no_flag.returncode == 2 and "--password-stdin" in one_error_line(no_flag)
    bad_name = run_cli(["user", "create", "a:b", "--password-stdin"], cluster.bootstrap, input="pw\n")
    assert bad_name.returncode == 2 and "separator" in one_error_line(bad_name)
    assert "nobody" not in users_of(node_admins[0]) and "a:b" not in users_of(node_admins[0])

    deleted = run_cli(["user", "delete", "cli-user"], cluster.bootstrap)
    assert deleted.returncode == 0, deleted.stderr
    wait_everywhere(node_admins, lambda a: "cli-user" not in users_of(a), "cli-user deleted")
    again = run_cli(["user", "delete", "cli-user"], cluster.bootstrap)
    assert again.returncode == 1
    assert "does not exist" in one_error_line(again)


def test_sdk_users_reach_every_node_within_a_second_and_describe_no_secrets(cluster, node_admins):
    admin = node_admins[1]
    admin.create_user("sdk-user", "pw-1", mechanisms=("SCRAM-SHA-512",), iterations=4096)
    elapsed = wait_everywhere(node_admins, lambda a: "sdk-user" in users_of(a), "sdk-user")
    print(f"user visible on every node after {elapsed * 1000:.0f} ms")
    assert elapsed < PROPAGATION_S_MAX
    [described] = admin.describe_user_scram_credentials(["sdk-user"])
    assert described.name == "sdk-user"
    assert [(c.mechanism, c.iterations) for c in described.credentials] == [("SCRAM-SHA-512", 4096)]
    with pytest.raises(ResourceNotFoundError):
        admin.describe_user_scram_credentials(["no-such-user"])
    admin.create_user("sdk-user", "pw-2", mechanisms=("SCRAM-SHA-256",))      # adds a mechanism
    wait_everywhere(node_admins, lambda a: len(users_of(a).get("sdk-user", ())) == 2, "second mechanism")
    admin.delete_user("sdk-user")
    wait_everywhere(node_admins, lambda a: "sdk-user" not in users_of(a), "sdk-user deleted")


# -------------------------------------------------------------------------------------------------
# freshet acl


def test_acl_add_list_remove_prefixed_and_literal_reach_every_node_within_a_second(cluster, node_admins):
    """Goal: `freshet acl` with literal and prefixed patterns; each change is on every broker
    within about a second (measured: the time from the command's answer until the last node's
    image shows it)."""
    literal = ["--allow", "--principal", "User:reader", "--operation", "read", "--topic", "payments"]
    prefixed = ["--allow", "--principal", "User:reader", "--operation", "Write", "--topic", "eu-", "--pattern", "prefixed"]
    group = ["--deny", "--principal", "User:reader", "--operation", "Read", "--group", "audit", "--host", "10.0.0.9"]
    timings = []
    for options in (literal, prefixed, group):
        added = run_cli(["acl", "add", *options], cluster.bootstrap)
        assert added.returncode == 0, added.stderr
        assert added.stdout.startswith("added: User:reader")
    expected = {
        ("User:reader", "Read", "TOPIC", "payments", "LITERAL", "ALLOW"),
        ("User:reader", "Write", "TOPIC", "eu-", "PREFIXED", "ALLOW"),
        ("User:reader", "Read", "GROUP", "audit", "LITERAL", "DENY"),
    }
    timings.append(wait_everywhere(node_admins, lambda a: expected <= acl_names(a), "ACLs added"))

    listed = run_cli(["acl", "list", "--principal", "User:reader", "--output", "json"], cluster.bootstrap)
    assert listed.returncode == 0, listed.stderr
    assert {(a["operation"], a["resource_name"], a["pattern_type"], a["permission"], a["host"]) for a in json.loads(listed.stdout)} == {
        ("Read", "payments", "literal", "allow", "*"), ("Write", "eu-", "prefixed", "allow", "*"), ("Read", "audit", "literal", "deny", "10.0.0.9"),
    }
    matched = run_cli(["acl", "list", "--topic", "eu-west", "--pattern", "match", "-o", "json"], cluster.bootstrap)
    assert [a["resource_name"] for a in json.loads(matched.stdout)] == ["eu-"]
    by_topic = run_cli(["acl", "list", "--topic", "payments", "-o", "json"], cluster.bootstrap)
    assert [a["operation"] for a in json.loads(by_topic.stdout)] == ["Read"]
    table = run_cli(["acl", "list", "--group", "audit"], cluster.bootstrap)
    assert "deny" in table.stdout and "10.0.0.9" in table.stdout

    removed = run_cli(["acl", "remove", *prefixed], cluster.bootstrap)
    assert removed.returncode == 0, removed.stderr
    timings.append(wait_everywhere(
        node_admins, lambda a: ("User:reader", "Write", "TOPIC", "eu-", "PREFIXED", "ALLOW") not in acl_names(a), "ACL removed"
    ))
    assert ("User:reader", "Read", "TOPIC", "payments", "LITERAL", "ALLOW") in acl_names(node_admins[2])
    again = run_cli(["acl", "remove", *prefixed], cluster.bootstrap)
    assert again.returncode == 1 and "no such ACL" in one_error_line(again)
    for options in (literal, group):
        assert run_cli(["acl", "remove", *options], cluster.bootstrap).returncode == 0
    wait_everywhere(node_admins, lambda a: not acl_names(a, ACLFilter(principal="User:reader")), "all removed")
    print("ACL change visible on every node after " + ", ".join(f"{t * 1000:.0f} ms" for t in timings))
    assert max(timings) < PROPAGATION_S_MAX


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        (["--allow", "--deny", "--principal", "User:x", "--operation", "Read", "--topic", "t"], "exactly one of --allow, --deny"),
        (["--allow", "--principal", "x", "--operation", "Read", "--topic", "t"], "User:NAME"),
        (["--allow", "--principal", "User:x", "--operation", "Fly", "--topic", "t"], "ClusterAction"),
        (["--allow", "--principal", "User:x", "--operation", "Read"], "--topic T, --group G, --cluster"),
        (["--allow", "--principal", "User:x", "--operation", "Read", "--topic", "t", "--group", "g"], "exactly one"),
        (["--allow", "--principal", "User:x", "--operation", "Read", "--topic", "t", "--pattern", "regex"], "literal or prefixed"),
        (["--allow", "--principal", "User:x", "--operation", "Write", "--group", "g"], "does not apply to a group"),
        (["--allow", "--principal", "User:x", "--operation", "Read", "--cluster"], "does not apply to a cluster"),
    ],
)
def test_acl_add_bad_input_exits_2_with_one_line_and_changes_nothing(cluster, node_admins, arguments, fragment):
    result = run_cli(["acl", "add", *arguments], cluster.bootstrap)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert fragment in one_error_line(result)
    assert not acl_names(node_admins[0], ACLFilter(principal="User:x"))


def test_sdk_acls_with_kafka_python_names(node_admins):
    admin = node_admins[0]
    acls = [
        ACL("User:sdk", "*", ACLOperation.DESCRIBE, ACLPermissionType.ALLOW, ResourcePattern(FreshetResourceType.TOPIC, "*")),
        ACL("User:sdk", "*", ACLOperation.ALTER, ACLPermissionType.ALLOW, ResourcePattern.cluster()),
        ACL("User:sdk", "*", ACLOperation.READ, ACLPermissionType.ALLOW,
            ResourcePattern(FreshetResourceType.GROUP, "sdk-", ACLResourcePatternType.PREFIXED)),
    ]
    admin.create_acls(acls)
    assert set(admin.describe_acls(ACLFilter(principal="User:sdk"))) == set(acls)
    only_groups = ACLFilter(resource_pattern=ResourcePatternFilter(FreshetResourceType.GROUP, "sdk-x", ACLResourcePatternType.MATCH))
    assert admin.describe_acls(only_groups) == [acls[2]]
    [deleted_topics, deleted_rest] = admin.delete_acls([
        ACLFilter(principal="User:sdk", resource_pattern=ResourcePatternFilter(FreshetResourceType.TOPIC)),
        ACLFilter(principal="User:sdk"),
    ])
    assert deleted_topics == [acls[0]]
    assert set(deleted_rest) == {acls[1], acls[2]}        # not acls[0] again: the first filter took it
    assert admin.describe_acls(ACLFilter(principal="User:sdk")) == []


# -------------------------------------------------------------------------------------------------
# Kafka clients on the Kafka listener


def test_kafka_python_admin_creates_describes_and_deletes_acls(cluster, node_admins):
    client = kafka.KafkaAdminClient(bootstrap_servers=cluster.kafka_bootstrap, request_timeout_ms=20000)
    try:
        acl = KpACL("User:kp", "*", KpOperation.READ, KpPermission.ALLOW, KpResourcePattern(KpResourceType.TOPIC, "kp-", KpPatternType.PREFIXED))
        bad = KpACL("User:kp", "*", KpOperation.WRITE, KpPermission.ALLOW, KpResourcePattern(KpResourceType.GROUP, "g"))
        created = client.create_acls([acl, bad])
        assert [a.principal for a in created["succeeded"]] == ["User:kp"]
        [failure] = created["failed"]                 # kafka-python 3 lists the error classes
        assert failure.__name__ == "InvalidRequestError", failure
        wait_everywhere(node_admins, lambda a: ("User:kp", "Read", "TOPIC", "kp-", "PREFIXED", "ALLOW") in acl_names(a), "kp ACL")
        found, error = client.describe_acls(KpACLFilter(
            principal="User:kp", host=None, operation=KpOperation.ANY, permission_type=KpPermission.ANY,
            resource_pattern=KpResourcePatternFilter(KpResourceType.TOPIC, "kp-orders", KpPatternType.MATCH),
        ))
        assert error.errno == 0
        assert [(a.principal, a.operation, a.resource_pattern.resource_name) for a in found] == [("User:kp", KpOperation.READ, "kp-")]
        [(_, matches, delete_error)] = client.delete_acls([KpACLFilter(
            principal="User:kp", host="*", operation=KpOperation.ANY, permission_type=KpPermission.ANY,
            resource_pattern=KpResourcePatternFilter(KpResourceType.ANY, None, KpPatternType.ANY),
        )])
        assert delete_error.errno == 0
        assert [(m.principal, m.resource_pattern.resource_name, m.resource_pattern.pattern_type) for m in matches] == [
            ("User:kp", "kp-", KpPatternType.PREFIXED)
        ]
        wait_everywhere(node_admins, lambda a: not acl_names(a, ACLFilter(principal="User:kp")), "kp ACL deleted")
    finally:
        client.close()


def test_confluent_kafka_admin_manages_acls_and_scram_users(cluster, node_admins):
    client = AdminClient({"bootstrap.servers": cluster.kafka_bootstrap})
    binding = AclBinding(ResourceType.GROUP, "ck-group", ResourcePatternType.LITERAL, "User:ck", "*", AclOperation.READ, AclPermissionType.ALLOW)
    for future in client.create_acls([binding]).values():
        assert future.result(30) is None
    wait_everywhere(node_admins, lambda a: ("User:ck", "Read", "GROUP", "ck-group", "LITERAL", "ALLOW") in acl_names(a), "ck ACL")
    any_filter = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, "User:ck", None, AclOperation.ANY, AclPermissionType.ANY)
    assert client.describe_acls(any_filter).result(30) == [binding]
    [deleted] = client.delete_acls([any_filter]).values()
    assert deleted.result(30) == [binding]
    assert client.describe_acls(any_filter).result(30) == []

    salt = b"confluent-salt-0123456789abcdef!"
    upsert = UserScramCredentialUpsertion("ck-user", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"pw", salt)
    for future in client.alter_user_scram_credentials([upsert]).values():
        assert future.result(30) is None
    wait_everywhere(node_admins, lambda a: users_of(a).get("ck-user") == [("SCRAM-SHA-512", 4096)], "ck-user")
    description = client.describe_user_scram_credentials(["ck-user"])["ck-user"].result(30)
    assert [(c.mechanism, c.iterations) for c in description.scram_credential_infos] == [(ScramMechanism.SCRAM_SHA_512, 4096)]

    dump = run_cli(["metadata", "dump"], cluster.bootstrap)
    assert dump.returncode == 0, dump.stderr
    assert base64.b64encode(salt).decode() not in dump.stdout
    image = json.loads(dump.stdout)
    [user] = [u for u in image["users"] if u["name"] == "ck-user"]
    assert user["credentials"] == [{"mechanism": 2, "iterations": 4096}]
    # The test can fail: a watcher that does not ask for redaction (a broker) gets the salt.
    assert salt in raw_snapshot_users(cluster.bootstrap.split(",")[0])["ck-user"]
    for port in (cluster.port(node) + 2 for node in (1, 2, 3)):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=10) as answer:
            body = answer.read().decode()
        assert base64.b64encode(salt).decode() not in body and salt.hex() not in body

    deletion = UserScramCredentialDeletion("ck-user", ScramMechanism.SCRAM_SHA_512)
    for future in client.alter_user_scram_credentials([deletion]).values():
        assert future.result(30) is None
    wait_everywhere(node_admins, lambda a: "ck-user" not in users_of(a), "ck-user deleted")


def raw_snapshot_users(address: str) -> dict[str, bytes]:
    """name -> the salts of a WatchMetadata snapshot taken without redaction."""
    import grpc

    with grpc.insecure_channel(address) as channel:
        stream = controller_pb2_grpc.ControllerStub(channel).WatchMetadata(
            controller_pb2.WatchMetadataRequest(from_offset=-1, watcher="test"), timeout=10
        )
        message = next(iter(stream))
        stream.cancel()
    snapshot = metadata_pb2.MetadataSnapshot.FromString(message.snapshot.snapshot)
    return {user.name: b"".join(c.salt for c in user.credentials) for user in snapshot.users}
