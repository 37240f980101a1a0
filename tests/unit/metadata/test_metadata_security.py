"""Users and ACLs in the metadata: SCRAM credentials (RFC vectors), `authorize`, the commands."""

from __future__ import annotations

import base64

import pytest
from freshet.metadata import commands as c
from freshet.metadata.security import (
    CLUSTER_NAME,
    EMPTY_ACLS,
    AclBinding,
    AclFilter,
    AclSet,
    Operation,
    PatternType,
    Permission,
    ResourceType,
    ScramCredential,
    ScramMechanism,
    authorize,
    parse_super_users,
    salted_password,
)

from tests.support.metadata_script import EPOCH, Script

E = c.common_pb2.ErrorCode
TOPIC, GROUP, CLUSTER = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.CLUSTER
LITERAL, PREFIXED = PatternType.LITERAL, PatternType.PREFIXED
ALLOW, DENY = Permission.ALLOW, Permission.DENY


def acl(rtype, name, principal, op, permission=ALLOW, pattern=LITERAL, host="*") -> AclBinding:
    return AclBinding(rtype, name, pattern, principal, host, op, permission)


# -- SCRAM ------------------------------------------------------------------------------------


def test_scram_sha_256_matches_rfc_7677_vector():
    """RFC 7677 §3: user "user", password "pencil"."""
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    credential = ScramCredential.from_password(ScramMechanism.SCRAM_SHA_256, "pencil", 4096, salt=salt)
    client_first_bare = b"n=user,r=rOprNGfwEbeRWgbNEkqO"
    server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    client_final_bare = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth_message = b",".join([client_first_bare, server_first, client_final_bare])
    proof = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    assert credential.verify_proof(auth_message, proof)
    assert credential.server_signature(auth_message) == base64.b64decode("6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
    assert not credential.verify_proof(auth_message, bytes(32))
    assert not credential.verify_proof(auth_message, proof[:-1])
    assert credential.verify_password("pencil")
    assert not credential.verify_password("pencil ")


def test_credentials_hide_their_secrets_and_check_kafka_bounds():
    credential = ScramCredential.from_password(ScramMechanism.SCRAM_SHA_512, "s3cret-pw", 4096)
    assert "s3cret" not in repr(credential) and credential.salt.hex() not in repr(credential)
    assert credential.problem() is None
    low = ScramCredential.from_password(ScramMechanism.SCRAM_SHA_512, "pw", 1000)
    assert "iterations 1000 are outside 4096..16384" in low.problem()
    salted = salted_password(ScramMechanism.SCRAM_SHA_512, b"pw", b"salt", 4096)
    assert ScramCredential.from_salted_password(ScramMechanism.SCRAM_SHA_512, b"salt", salted, 4096).verify_password("pw")
    assert ScramMechanism.from_name("scram-sha-512") is ScramMechanism.SCRAM_SHA_512
    with pytest.raises(ValueError, match="SCRAM-SHA-256, SCRAM-SHA-512"):
        ScramMechanism.from_name("SCRAM-MD5")


# -- authorize --------------------------------------------------------------------------------


def allowed(acls, principal, op, rtype, name, host="10.0.0.9", **kwargs) -> bool:
    return authorize(AclSet(acls), principal, host, op, rtype, name, **kwargs)


def test_no_acl_denies_unless_allow_everyone():
    assert not allowed([], "User:alice", Operation.READ, TOPIC, "a")
    assert allowed([], "User:alice", Operation.READ, TOPIC, "a", allow_if_no_acl=True)
    # Any binding on the resource, even for someone else, takes the fallback away.
    bob = [acl(TOPIC, "a", "User:bob", Operation.READ)]
    assert not allowed(bob, "User:alice", Operation.READ, TOPIC, "a", allow_if_no_acl=True)


def test_read_on_one_topic_allows_read_and_describe_of_that_topic_only():
    acls = [acl(TOPIC, "a", "User:alice", Operation.READ)]
    assert allowed(acls, "User:alice", Operation.READ, TOPIC, "a")
    assert allowed(acls, "User:alice", Operation.DESCRIBE, TOPIC, "a")          # implied
    assert not allowed(acls, "User:alice", Operation.WRITE, TOPIC, "a")
    assert not allowed(acls, "User:alice", Operation.READ, TOPIC, "b")
    assert not allowed(acls, "User:alice", Operation.DELETE, TOPIC, "a")
    assert not allowed(acls, "User:alice", Operation.DESCRIBE_CONFIGS, TOPIC, "a")
    assert not allowed(acls, "User:bob", Operation.READ, TOPIC, "a")


def test_deny_beats_allow_and_all_matches_every_operation():
    acls = [acl(TOPIC, "a", "User:alice", Operation.ALL), acl(TOPIC, "a", "User:alice", Operation.WRITE, DENY)]
    assert allowed(acls, "User:alice", Operation.READ, TOPIC, "a")
    assert not allowed(acls, "User:alice", Operation.WRITE, TOPIC, "a")
    denied_all = [acl(TOPIC, "*", "User:*", Operation.ALL, DENY), acl(TOPIC, "a", "User:alice", Operation.READ)]
    assert not allowed(denied_all, "User:alice", Operation.READ, TOPIC, "a")


def test_prefixed_and_wildcard_patterns_and_hosts():
    acls = [
        acl(TOPIC, "orders-", "User:alice", Operation.WRITE, pattern=PREFIXED),
        acl(GROUP, "*", "User:*", Operation.READ),
        acl(TOPIC, "logs", "User:alice", Operation.READ, host="10.0.0.1"),
    ]
    assert allowed(acls, "User:alice", Operation.WRITE, TOPIC, "orders-eu")
    assert not allowed(acls, "User:alice", Operation.WRITE, TOPIC, "order")
    assert allowed(acls, "User:anyone", Operation.READ, GROUP, "g1")
    assert allowed(acls, "User:alice", Operation.READ, TOPIC, "logs", host="10.0.0.1")
    assert not allowed(acls, "User:alice", Operation.READ, TOPIC, "logs", host="10.0.0.2")


def test_super_users_and_implied_describe_configs():
    supers = parse_super_users("User:admin; User:freshet-node")
    assert supers == {"User:admin", "User:freshet-node"}
    assert allowed([], "User:admin", Operation.ALTER, CLUSTER, CLUSTER_NAME, super_users=supers)
    configs = [acl(CLUSTER, CLUSTER_NAME, "User:ops", Operation.ALTER_CONFIGS)]
    assert allowed(configs, "User:ops", Operation.DESCRIBE_CONFIGS, CLUSTER, CLUSTER_NAME)
    assert not allowed(configs, "User:ops", Operation.ALTER, CLUSTER, CLUSTER_NAME)
    with pytest.raises(ValueError, match="User:NAME"):
        parse_super_users("admin")


def test_binding_validation_and_filters():
    assert acl(GROUP, "g", "User:a", Operation.WRITE).problem() == "operation Write does not apply to a group"
    assert "kafka-cluster" in acl(CLUSTER, "c", "User:a", Operation.ALTER).problem()
    assert "not of the form" in acl(TOPIC, "t", "alice", Operation.READ).problem()
    assert "prefixed pattern of '*'" in acl(TOPIC, "*", "User:a", Operation.READ, pattern=PREFIXED).problem()
    bindings = AclSet([
        acl(TOPIC, "orders-", "User:alice", Operation.WRITE, pattern=PREFIXED),
        acl(TOPIC, "orders-eu", "User:bob", Operation.READ),
        acl(TOPIC, "*", "User:carol", Operation.READ),
        acl(GROUP, "orders-eu", "User:bob", Operation.READ),
    ])
    matching = bindings.matching(AclFilter(ResourceType.TOPIC, "orders-eu", PatternType.MATCH))
    assert {b.principal for b in matching} == {"User:alice", "User:bob", "User:carol"}
    literal = bindings.matching(AclFilter(ResourceType.ANY, "orders-eu", PatternType.LITERAL))
    assert {(b.resource_type, b.principal) for b in literal} == {(TOPIC, "User:bob"), (GROUP, "User:bob")}
    assert len(bindings.matching(AclFilter(principal="User:bob", operation=Operation.READ))) == 2
    assert Operation.from_name("describe_configs") is Operation.DESCRIBE_CONFIGS
    assert Operation.from_name("AlterConfigs") is Operation.ALTER_CONFIGS
    with pytest.raises(ValueError, match="Read, Write"):
        Operation.from_name("Frobnicate")


# -- commands ---------------------------------------------------------------------------------


def claimed() -> Script:
    s = Script()
    s.claim()
    return s


def test_users_are_upserted_per_mechanism_and_deleted():
    s = claimed()
    sha256 = ScramCredential.from_password(ScramMechanism.SCRAM_SHA_256, "pw", 4096)
    sha512 = ScramCredential.from_password(ScramMechanism.SCRAM_SHA_512, "pw", 4096)
    s.ok(c.upsert_user_credential(s.rid(), EPOCH, "alice", sha256))
    s.ok(c.upsert_user_credential(s.rid(), EPOCH, "alice", sha512))
    assert s.image.scram_credential("alice", ScramMechanism.SCRAM_SHA_512) == sha512
    rotated = ScramCredential.from_password(ScramMechanism.SCRAM_SHA_256, "pw2", 8192)
    s.ok(c.upsert_user_credential(s.rid(), EPOCH, "alice", rotated))
    assert s.image.scram_credential("alice", ScramMechanism.SCRAM_SHA_256).verify_password("pw2")
    s.ok(c.delete_user_credential(s.rid(), EPOCH, "alice", ScramMechanism.SCRAM_SHA_256))
    assert set(s.image.users["alice"]) == {ScramMechanism.SCRAM_SHA_512}
    s.ok(c.delete_user_credential(s.rid(), EPOCH, "alice", ScramMechanism.SCRAM_SHA_512))
    assert "alice" not in s.image.users
    s.fails(c.delete_user_credential(s.rid(), EPOCH, "alice", ScramMechanism.SCRAM_SHA_512), E.RESOURCE_NOT_FOUND, "no SCRAM-SHA-512")


def test_bad_credentials_and_names_are_rejected_and_change_nothing():
    s = claimed()
    weak = ScramCredential.from_password(ScramMechanism.SCRAM_SHA_256, "pw", 100)
    s.fails(c.upsert_user_credential(s.rid(), EPOCH, "bob", weak), E.UNACCEPTABLE_CREDENTIAL, "iterations 100")
    good = ScramCredential.from_password(ScramMechanism.SCRAM_SHA_256, "pw", 4096)
    s.fails(c.upsert_user_credential(s.rid(), EPOCH, "bo b", good), E.INVALID_REQUEST, "separator")
    s.fails(c.upsert_user_credential(s.rid(), EPOCH, "", good), E.INVALID_REQUEST, "1..255")
    command = c.upsert_user_credential(s.rid(), EPOCH, "bob", good)
    command.upsert_user_credential.credential.mechanism = 9
    s.fails(command, E.UNACCEPTABLE_CREDENTIAL, "mechanism 9")
    assert s.image.users == {}


def test_acls_are_created_idempotently_validated_and_deleted():
    s = claimed()
    read = acl(TOPIC, "a", "User:alice", Operation.READ)
    write = acl(TOPIC, "a", "User:alice", Operation.WRITE)
    s.ok(c.create_acls(s.rid(), EPOCH, [read, read]))
    s.ok(c.create_acls(s.rid(), EPOCH, [read, write]))
    assert list(s.image.acls) == sorted([read, write])
    s.fails(c.create_acls(s.rid(), EPOCH, [acl(GROUP, "g", "User:a", Operation.WRITE)]), E.INVALID_REQUEST, "does not apply to a group")
    command = c.create_acls(s.rid(), EPOCH, [read])
    command.create_acls.acls[0].operation = 99
    s.fails(command, E.INVALID_REQUEST, "invalid ACL binding")
    assert len(s.image.acls) == 2
    s.ok(c.delete_acls(s.rid(), EPOCH, [read, acl(TOPIC, "zzz", "User:x", Operation.READ)]))
    assert list(s.image.acls) == [write]
    assert EMPTY_ACLS.with_changes(added=[write]) == s.image.acls
