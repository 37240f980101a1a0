"""The SDK's users and ACLs: the password stays in the client, kafka-python's names, Kafka's numbers.

Goal: `create_user` sends Kafka's SaltedPassword form (which the server's SCRAM check accepts for
the password) and never the password; ACL types convert to and from the wire with Kafka's enum
numbers (the same as the server's model); errors of an item raise its class; a metadata dump has
no secrets even from a node that sends them. Method: SecurityAdmin with `_call` replaced by a
recorder answering canned responses; the server's metadata.security checks the credentials.
"""

from __future__ import annotations

import pytest
from freshet.client import Admin
from freshet.client import admin_security as sdk
from freshet.client.admin import redact_secrets
from freshet.client.errors import InvalidRequestError, ResourceNotFoundError, UnsupportedSaslMechanismError
from freshet.metadata import security
from freshet.v1 import common_pb2, controller_pb2

E = common_pb2.ErrorCode
OK = common_pb2.ErrorDetail(code=E.NONE)


def test_an_upsertion_carries_kafkas_salted_password_never_the_password():
    upsertion = sdk.scram_upsertion("alice", "s3cret-pass", "scram-sha-512", 4096)
    assert b"s3cret-pass" not in upsertion.SerializeToString()
    assert len(upsertion.salt) == 32 and upsertion.mechanism == 2 and upsertion.iterations == 4096
    mechanism = security.ScramMechanism.SCRAM_SHA_512
    assert upsertion.salted_password == security.salted_password(mechanism, b"s3cret-pass", upsertion.salt, 4096)
    credential = security.ScramCredential.from_salted_password(mechanism, upsertion.salt, upsertion.salted_password, 4096)
    assert credential.verify_password("s3cret-pass") and not credential.verify_password("s3cret-pasS")
    assert sdk.scram_upsertion("alice", "p", "SCRAM-SHA-512", 4096).salt != upsertion.salt       # fresh salts


@pytest.mark.parametrize(
    ("mechanism", "password", "iterations", "error"),
    [
        ("PLAIN", "p", 4096, UnsupportedSaslMechanismError),
        ("SCRAM-SHA-256", "", 4096, InvalidRequestError),
        ("SCRAM-SHA-256", "p", 1000, InvalidRequestError),
        ("SCRAM-SHA-256", "p", 20000, InvalidRequestError),
    ],
)
def test_bad_credentials_are_refused_before_sending(mechanism, password, iterations, error):
    with pytest.raises(error):
        sdk.scram_upsertion("alice", password, mechanism, iterations)


def test_the_sdk_enums_have_the_servers_numbers():
    for client_enum, server_enum in (
        (sdk.ResourceType, security.ResourceType),
        (sdk.ACLOperation, security.Operation),
        (sdk.ACLPermissionType, security.Permission),
        (sdk.ACLResourcePatternType, security.PatternType),
    ):
        assert {m.name: int(m) for m in client_enum} == {m.name: int(m) for m in server_enum}
    assert sdk.ACLOperation.from_name("describeconfigs") is sdk.ACLOperation.DESCRIBE_CONFIGS
    assert sdk.ACLOperation.DESCRIBE_CONFIGS.kafka_name == "DescribeConfigs"


def test_acls_round_trip_through_the_wire_and_describe_like_the_server():
    acl = sdk.ACL("User:bob", "*", sdk.ACLOperation.WRITE, sdk.ACLPermissionType.DENY,
                  sdk.ResourcePattern(sdk.ResourceType.TOPIC, "eu-", sdk.ACLResourcePatternType.PREFIXED))
    assert sdk.ACL.from_proto(acl.to_proto()) == acl
    server = security.AclBinding(security.ResourceType.TOPIC, "eu-", security.PatternType.PREFIXED, "User:bob", "*",
                                 security.Operation.WRITE, security.Permission.DENY)
    assert acl.describe() == server.describe()
    everything = sdk.ACLFilter().to_proto()
    assert not everything.HasField("principal") and not everything.HasField("resource_name")
    assert (everything.resource_type, everything.operation, everything.permission, everything.pattern_type) == (1, 1, 1, 1)


class Recorder:
    def __init__(self, answers) -> None:
        self.answers = answers
        self.requests: list[tuple[str, object]] = []

    def __call__(self, service, method, request, **_):
        assert service == "controller"
        self.requests.append((method, request))
        return self.answers[method](request)


@pytest.fixture
def admin(monkeypatch):
    client = Admin("localhost:1")
    yield client
    client.close()


def test_create_and_delete_user_send_one_request_each(admin, monkeypatch):
    recorder = Recorder({
        "UpsertUserScramCredentials": lambda r: controller_pb2.UpsertUserScramCredentialsResponse(
            results=[controller_pb2.UserScramCredentialResult(user=u.name, mechanism=u.mechanism, error=OK) for u in r.upsertions]
        ),
        "DeleteUserScramCredentials": lambda r: controller_pb2.DeleteUserScramCredentialsResponse(results=[
            controller_pb2.UserScramCredentialResult(user="alice", error=common_pb2.ErrorDetail(code=E.RESOURCE_NOT_FOUND, message="user 'alice' does not exist"))
        ]),
    })
    monkeypatch.setattr(admin, "_call", recorder)
    admin.create_user("alice", "pw")
    [(_, upserted)] = recorder.requests
    assert [(u.name, u.mechanism, u.iterations) for u in upserted.upsertions] == [("alice", 1, 8192), ("alice", 2, 8192)]
    assert upserted.request_id
    with pytest.raises(ResourceNotFoundError, match="does not exist"):
        admin.delete_user("alice")
    assert [(d.name, d.mechanism) for d in recorder.requests[-1][1].deletions] == [("alice", 0)]


def test_acl_methods_map_results_per_item(admin, monkeypatch):
    read = sdk.ACL("User:a", "*", sdk.ACLOperation.READ, sdk.ACLPermissionType.ALLOW, sdk.ResourcePattern(sdk.ResourceType.TOPIC, "t"))
    bad = sdk.ACL("User:a", "*", sdk.ACLOperation.READ, sdk.ACLPermissionType.ALLOW, sdk.ResourcePattern.cluster())
    refusal = common_pb2.ErrorDetail(code=E.INVALID_REQUEST, message="invalid ACL binding: operation Read does not apply to a cluster")
    recorder = Recorder({
        "CreateAcls": lambda r: controller_pb2.CreateAclsResponse(results=[
            controller_pb2.AclResult(acl=r.acls[0], error=OK), controller_pb2.AclResult(acl=r.acls[1], error=refusal),
        ]),
        "DeleteAcls": lambda r: controller_pb2.DeleteAclsResponse(results=[
            controller_pb2.DeleteAclsFilterResult(error=OK, acls=[read.to_proto()]), controller_pb2.DeleteAclsFilterResult(error=OK),
        ]),
        "DescribeAcls": lambda r: controller_pb2.DescribeAclsResponse(acls=[read.to_proto()]),
    })
    monkeypatch.setattr(admin, "_call", recorder)
    with pytest.raises(InvalidRequestError, match="cluster 'kafka-cluster'.*does not apply"):
        admin.create_acls([read, bad])
    assert admin.delete_acls([sdk.ACLFilter(principal="User:a"), sdk.ACLFilter(principal="User:b")]) == [[read], []]
    assert admin.describe_acls() == [read]
    assert recorder.requests[-1][1].filter == sdk.ACLFilter().to_proto()
    assert admin.create_acls([]) is None and admin.delete_acls([]) == []


def test_a_dump_loses_any_secret_a_node_sends():
    image = {"users": [{"name": "alice", "credentials": [
        {"mechanism": 1, "salt": "c2FsdA==", "stored_key": "a2V5", "server_key": "a2V5", "iterations": 4096},
    ]}], "topics": []}
    assert redact_secrets(image) == {"users": [{"name": "alice", "credentials": [{"mechanism": 1, "iterations": 4096}]}], "topics": []}
