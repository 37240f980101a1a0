"""The active controller's user and ACL requests: one command per item, Kafka's filter resolution.

Goal: UpsertUserScramCredentials, DeleteUserScramCredentials, CreateAcls and DeleteAcls validate
each item against the newest image, propose one command per item (at most once per request id),
and answer per item with Kafka's codes; DeleteAcls resolves each filter into exact bindings and
reports what it deleted, a binding once. Method: SecurityRequests over a fake controller whose
proposals are applied by the real state machine (tests/support/metadata_script.Script).

Reference: KIP-554; Kafka's AclControlManager.deleteAcls (a binding deleted by an earlier filter of
the request is not reported again).
"""

from __future__ import annotations

import asyncio
import types

from freshet.metadata import commands
from freshet.metadata.security import (
    AclBinding,
    AclFilter,
    Operation,
    PatternType,
    Permission,
    ResourceType,
    ScramMechanism,
    salted_password,
)
from freshet.server.controller.security_requests import SecurityRequests
from freshet.server.security.management import filter_message
from freshet.v1 import common_pb2, controller_pb2

from tests.support.metadata_script import EPOCH, Script

E = common_pb2.ErrorCode
SALT = b"s" * 16
READ_A = AclBinding(ResourceType.TOPIC, "a", PatternType.LITERAL, "User:alice", "*", Operation.READ, Permission.ALLOW)
READ_B = AclBinding(ResourceType.TOPIC, "b", PatternType.LITERAL, "User:alice", "*", Operation.READ, Permission.ALLOW)
WRITE_PREFIX = AclBinding(ResourceType.TOPIC, "a", PatternType.PREFIXED, "User:bob", "*", Operation.WRITE, Permission.ALLOW)


class FakeController:
    """The parts of ActiveController the requests use; proposals go to the real state machine."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.lock = asyncio.Lock()
        self.node_id = 1
        self.proposed: list = []

    def require_active(self):
        return types.SimpleNamespace(controller_epoch=EPOCH)

    async def propose_for_request(self, command):
        self.proposed.append(command)
        return self.script.apply(command)


class ScriptQuorum:
    def __init__(self, script: Script) -> None:
        self._script = script

    @property
    def image(self):
        return self._script.image


def requests_over_script():
    script = Script()
    script.claim()
    controller = FakeController(script)
    return script, controller, SecurityRequests(controller, ScriptQuorum(script), None)


def upsertion(name: str, mechanism: ScramMechanism, iterations: int = 4096) -> controller_pb2.ScramCredentialUpsertion:
    return controller_pb2.ScramCredentialUpsertion(
        name=name, mechanism=int(mechanism), iterations=iterations, salt=SALT,
        salted_password=salted_password(mechanism, b"pw", SALT, iterations),
    )


def codes(response) -> list[str]:
    return [E.Name(result.error.code) for result in response.results]


def test_upserts_one_command_per_item_refusing_bad_and_duplicate_items():
    script, controller, requests = requests_over_script()
    request = controller_pb2.UpsertUserScramCredentialsRequest(request_id="up", upsertions=[
        upsertion("alice", ScramMechanism.SCRAM_SHA_256),
        upsertion("alice", ScramMechanism.SCRAM_SHA_512),
        upsertion("bob", ScramMechanism.SCRAM_SHA_256, iterations=100),
        upsertion("carol", ScramMechanism.SCRAM_SHA_256),
        upsertion("carol", ScramMechanism.SCRAM_SHA_256),
    ])
    response = asyncio.run(requests.upsert_user_scram_credentials(request))
    assert codes(response) == ["NONE", "NONE", "UNACCEPTABLE_CREDENTIAL", "INVALID_REQUEST", "INVALID_REQUEST"]
    assert "more than once" in response.results[3].error.message
    assert len(controller.proposed) == 2 and response.metadata_offset == script.image.offset
    assert sorted(script.image.users) == ["alice"]
    assert script.image.scram_credential("alice", ScramMechanism.SCRAM_SHA_512).verify_password("pw")
    # The same request again (a client retry): the remembered results, nothing proposed.
    again = asyncio.run(requests.upsert_user_scram_credentials(request))
    assert codes(again) == codes(response) and len(controller.proposed) == 2


def test_deleting_mechanism_zero_removes_the_whole_user_at_once():
    script, controller, requests = requests_over_script()
    asyncio.run(requests.upsert_user_scram_credentials(controller_pb2.UpsertUserScramCredentialsRequest(
        request_id="up", upsertions=[upsertion("alice", m) for m in ScramMechanism] + [upsertion("bob", ScramMechanism.SCRAM_SHA_256)],
    )))
    proposed_before = len(controller.proposed)
    response = asyncio.run(requests.delete_user_scram_credentials(controller_pb2.DeleteUserScramCredentialsRequest(
        request_id="del", deletions=[
            controller_pb2.ScramCredentialDeletion(name="alice", mechanism=0),
            controller_pb2.ScramCredentialDeletion(name="bob", mechanism=2),
            controller_pb2.ScramCredentialDeletion(name="nobody", mechanism=0),
            controller_pb2.ScramCredentialDeletion(name="bob", mechanism=7),
        ],
    )))
    assert codes(response) == ["NONE", "RESOURCE_NOT_FOUND", "RESOURCE_NOT_FOUND", "UNSUPPORTED_SASL_MECHANISM"]
    assert "no SCRAM-SHA-512 credential" in response.results[1].error.message
    [batch] = controller.proposed[proposed_before:]
    assert batch.WhichOneof("command") == "atomic_batch" and len(batch.atomic_batch.commands) == 2
    assert sorted(script.image.users) == ["bob"]


def test_create_acls_refuses_invalid_bindings_and_keeps_the_rest():
    script, _, requests = requests_over_script()
    invalid = commands.acl_binding_record(READ_A)
    invalid.resource_type = int(ResourceType.GROUP)
    invalid.operation = int(Operation.WRITE)
    response = asyncio.run(requests.create_acls(controller_pb2.CreateAclsRequest(
        request_id="acl", acls=[commands.acl_binding_record(READ_A), invalid, commands.acl_binding_record(WRITE_PREFIX)],
    )))
    assert codes(response) == ["NONE", "INVALID_REQUEST", "NONE"]
    assert "does not apply to a group" in response.results[1].error.message
    assert list(script.image.acls) == sorted([READ_A, WRITE_PREFIX])


def test_delete_acls_resolves_filters_reports_each_binding_once_and_proposes_nothing_for_no_match():
    script, controller, requests = requests_over_script()
    script.ok(commands.create_acls(script.rid(), EPOCH, [READ_A, READ_B, WRITE_PREFIX]))
    response = asyncio.run(requests.delete_acls(controller_pb2.DeleteAclsRequest(request_id="del", filters=[
        filter_message(AclFilter(resource_name="a", pattern_type=PatternType.MATCH)),   # READ_A and the prefix "a"
        filter_message(AclFilter(principal="User:alice")),                             # READ_B only now
        filter_message(AclFilter(principal="User:nobody")),
        controller_pb2.AclBindingFilter(operation=42),
    ])))
    assert codes(response) == ["NONE", "NONE", "NONE", "INVALID_REQUEST"]
    deleted = [[commands.acl_binding_from_record(r) for r in result.acls] for result in response.results]
    assert deleted == [sorted([READ_A, WRITE_PREFIX]), [READ_B], [], []]
    assert len(controller.proposed) == 2
    assert list(script.image.acls) == []
