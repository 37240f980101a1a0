"""Users and ACLs between the wire and the model: validation, filters, describes, redaction, audit.

Goal: what a client sends is refused with Kafka's codes and a line naming the problem before
anything is proposed; describes and redacted metadata never carry a salt or a key; every accepted
change is one audit line and a metric without secrets. Method: the pure functions of
server/security/management.py and SecurityChanges over scripted images.

Reference: KIP-554 (AlterUserScramCredentials: the client sends salt and SaltedPassword), RFC 5802,
Kafka's AclBindingFilter semantics.
"""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest
from freshet.metadata import commands, snapshot
from freshet.metadata.errors import ControllerRequestError
from freshet.metadata.image import EMPTY_IMAGE
from freshet.metadata.security import (
    AclBinding,
    AclFilter,
    AclSet,
    Operation,
    PatternType,
    Permission,
    ResourceType,
    ScramCredential,
    ScramMechanism,
    salted_password,
)
from freshet.server.security import management
from freshet.server.security.authorizer import Caller, bind_caller, unbind_caller
from freshet.server.security.changes import SecurityChanges
from freshet.v1 import common_pb2, controller_pb2, metadata_pb2
from prometheus_client import CollectorRegistry

from tests.support.metadata_script import EPOCH, Script

E = common_pb2.ErrorCode
SALT = b"0123456789abcdef0123456789abcdef"
READ_A = AclBinding(ResourceType.TOPIC, "a", PatternType.LITERAL, "User:alice", "*", Operation.READ, Permission.ALLOW)
WRITE_PREFIX = AclBinding(ResourceType.TOPIC, "a-", PatternType.PREFIXED, "User:bob", "*", Operation.WRITE, Permission.ALLOW)
DENY_GROUP = AclBinding(ResourceType.GROUP, "g", PatternType.LITERAL, "User:bob", "10.0.0.1", Operation.READ, Permission.DENY)


def upsertion(name="alice", mechanism=2, iterations=4096, salt=SALT, salted=None) -> controller_pb2.ScramCredentialUpsertion:
    if salted is None:
        salted = salted_password(ScramMechanism(mechanism) if mechanism in (1, 2) else ScramMechanism(2), b"pw", salt, iterations)
    return controller_pb2.ScramCredentialUpsertion(name=name, mechanism=mechanism, iterations=iterations, salt=salt, salted_password=salted)


def refused(call) -> tuple[int, str]:
    with pytest.raises(ControllerRequestError) as raised:
        call()
    return raised.value.error_code, raised.value.message


# -- credentials --------------------------------------------------------------------------------------


def test_an_upsertion_gives_the_credential_of_the_password_without_carrying_it():
    credential = management.credential_of(upsertion())
    assert credential == ScramCredential.from_password(ScramMechanism.SCRAM_SHA_512, "pw", 4096, SALT)
    assert credential.verify_password("pw") and not credential.verify_password("pW")


@pytest.mark.parametrize(
    ("message", "code", "fragment"),
    [
        (upsertion(name=""), E.INVALID_REQUEST, "1..255"),
        (upsertion(name="a b"), E.INVALID_REQUEST, "separator"),
        (upsertion(mechanism=3, salted=bytes(64)), E.UNSUPPORTED_SASL_MECHANISM, "unknown SCRAM mechanism 3"),
        (upsertion(iterations=4095), E.UNACCEPTABLE_CREDENTIAL, "iterations 4095"),
        (upsertion(iterations=16385), E.UNACCEPTABLE_CREDENTIAL, "iterations 16385"),
        (upsertion(salt=b""), E.UNACCEPTABLE_CREDENTIAL, "salt"),
        (upsertion(salt=bytes(65)), E.UNACCEPTABLE_CREDENTIAL, "salt"),
        (upsertion(salted=bytes(32)), E.UNACCEPTABLE_CREDENTIAL, "SaltedPassword is 64 bytes, not 32"),
    ],
)
def test_bad_upsertions_are_refused_naming_the_problem(message, code, fragment):
    found_code, found_message = refused(lambda: management.credential_of(message))
    assert (E.Name(found_code), fragment in found_message) == (E.Name(code), True), found_message


# -- ACL bindings and filters ---------------------------------------------------------------------------


def test_bindings_are_checked_against_kafkas_model():
    assert management.binding_of(commands.acl_binding_record(READ_A)) == READ_A
    record = commands.acl_binding_record(dataclasses.replace(READ_A, resource_type=ResourceType.CLUSTER, resource_name="kafka-cluster"))
    assert refused(lambda: management.binding_of(record)) == (
        E.INVALID_REQUEST, "invalid ACL binding: operation Read does not apply to a cluster"
    )
    unknown = commands.acl_binding_record(READ_A)
    unknown.operation = 99
    code, message = refused(lambda: management.binding_of(unknown))
    assert code == E.INVALID_REQUEST and "99" in message
    bad_principal = commands.acl_binding_record(dataclasses.replace(READ_A, principal="alice"))
    assert "User:NAME" in refused(lambda: management.binding_of(bad_principal))[1]


def test_filters_take_zero_as_any_and_round_trip():
    everything = management.filter_of(controller_pb2.AclBindingFilter())
    assert everything == AclFilter()
    exact = AclFilter(ResourceType.TOPIC, "a", PatternType.LITERAL, "User:alice", "*", Operation.READ, Permission.ALLOW)
    assert management.filter_of(management.filter_message(exact)) == exact
    assert exact.matches(READ_A)
    assert refused(lambda: management.filter_of(controller_pb2.AclBindingFilter(resource_type=9)))[0] == E.INVALID_REQUEST
    assert refused(lambda: management.filter_of(controller_pb2.AclBindingFilter(principal="Group:x")))[0] == E.INVALID_REQUEST


def test_describe_acls_applies_kafkas_filter_semantics():
    image = dataclasses.replace(EMPTY_IMAGE, acls=AclSet([READ_A, WRITE_PREFIX, DENY_GROUP]))
    def described(message):
        return [commands.acl_binding_from_record(r) for r in management.describe_acls(image, management.filter_of(message)).acls]
    assert described(controller_pb2.AclBindingFilter()) == sorted([READ_A, WRITE_PREFIX, DENY_GROUP])
    match = controller_pb2.AclBindingFilter(resource_type=2, resource_name="a-1", pattern_type=int(PatternType.MATCH))
    assert described(match) == [WRITE_PREFIX]
    literal_name = controller_pb2.AclBindingFilter(resource_name="a")            # pattern ANY: exact name only
    assert described(literal_name) == [READ_A]
    assert described(controller_pb2.AclBindingFilter(principal="User:bob", permission=int(Permission.DENY))) == [DENY_GROUP]


# -- describes and redaction never show secrets ---------------------------------------------------------


def users_image():
    s = Script()
    s.claim()
    for mechanism in ScramMechanism:
        s.ok(commands.upsert_user_credential(s.rid(), EPOCH, "alice", ScramCredential.from_password(mechanism, "pw", 4096, SALT)))
    return s.image


def test_describe_users_names_mechanisms_and_iterations_only():
    image = users_image()
    response = management.describe_users(image, [])
    assert [(u.name, [(c.mechanism, c.iterations) for c in u.credentials]) for u in response.users] == [("alice", [(1, 4096), (2, 4096)])]
    assert SALT not in response.SerializeToString()
    [missing] = management.describe_users(image, ["bob"]).users
    assert missing.error.code == E.RESOURCE_NOT_FOUND and "bob" in missing.error.message


def test_a_redacted_image_snapshot_has_no_salt_or_key_but_keeps_users():
    image = users_image()
    credential = image.scram_credential("alice", ScramMechanism.SCRAM_SHA_256)
    plain = snapshot.encode_snapshot(image)
    assert SALT in plain and credential.stored_key in plain                 # the test can fail
    redacted = snapshot.encode_snapshot(management.redacted_image(image))
    for secret in (SALT, credential.stored_key, credential.server_key):
        assert secret not in redacted
    decoded = metadata_pb2.MetadataSnapshot.FromString(redacted)
    assert [(u.name, [(c.mechanism, c.iterations) for c in u.credentials]) for u in decoded.users] == [("alice", [(1, 4096), (2, 4096)])]
    assert management.redacted_image(EMPTY_IMAGE) is EMPTY_IMAGE


def test_redacted_commands_strip_credentials_also_inside_batches():
    credential = ScramCredential.from_password(ScramMechanism.SCRAM_SHA_512, "pw", 4096, SALT)
    single = commands.encode(commands.upsert_user_credential("r", EPOCH, "alice", credential))
    batch = commands.encode(commands.atomic_batch("r", EPOCH, [commands.upsert_user_credential(*commands.INNER, "bob", credential)]))
    for data in (single, batch):
        assert SALT in data and credential.server_key in data
        redacted = management.redacted_command(data)
        assert SALT not in redacted and credential.server_key not in redacted and credential.stored_key not in redacted
    unrelated = commands.encode(commands.create_acls("r", EPOCH, [READ_A]))
    assert management.redacted_command(unrelated) == unrelated
    [inner] = commands.decode(management.redacted_command(batch)).atomic_batch.commands
    assert inner.upsert_user_credential.user == "bob" and inner.upsert_user_credential.credential.iterations == 4096


# -- audit -------------------------------------------------------------------------------------------


def test_every_accepted_change_is_one_audit_line_with_the_caller_and_a_metric(caplog):
    registry = CollectorRegistry()
    changes = SecurityChanges(registry)
    token = bind_caller(Caller("User:admin", "10.1.1.1"))
    try:
        with caplog.at_level(logging.INFO, logger="freshet.audit"):
            changes.user_changed("alice", "upsert", ScramMechanism.SCRAM_SHA_512)
            changes.acls_created([READ_A, WRITE_PREFIX])
            changes.acls_deleted([READ_A])
            changes.user_changed("alice", "delete", None)
    finally:
        unbind_caller(token)
    lines = [json.loads(record.getMessage()) for record in caplog.records if record.name == "freshet.audit"]
    assert [line["event"] for line in lines] == ["user_changed", "acl_created", "acl_created", "acl_deleted", "user_changed"]
    assert {line["principal"] for line in lines} == {"User:admin"} and {line["host"] for line in lines} == {"10.1.1.1"}
    assert lines[0]["user"] == "alice" and lines[0]["mechanism"] == "SCRAM-SHA-512" and lines[4]["mechanism"] == "all"
    assert lines[1]["acl"] == READ_A.describe() and lines[2]["pattern"] == "prefixed" and lines[2]["acl_principal"] == "User:bob"
    assert (changes.count("user_changed"), changes.count("acl_created"), changes.count("acl_deleted")) == (2, 2, 1)
    assert registry.get_sample_value("freshet_security_changes_total", {"event": "acl_created"}) == 2
