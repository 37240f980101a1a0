"""The gRPC Controller service's user and ACL RPCs: Kafka's cluster rights, describes, audit.

Goal: changes need Alter on the cluster and describes Describe on the cluster (refused with
PERMISSION_DENIED / CLUSTER_AUTHORIZATION_FAILED before anything is routed); describes answer
from the node's image without secrets; the node the client called audits accepted changes, a
forwarded hop does not (so one change is one line). Method: ControllerService with fakes for the
image, the local controller and the gRPC context.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import types

import grpc
import pytest
from freshet.metadata import commands
from freshet.metadata.security import (
    AclBinding,
    AclSet,
    Operation,
    PatternType,
    Permission,
    ResourceType,
    ScramCredential,
    ScramMechanism,
)
from freshet.server import status
from freshet.server.cluster.channels import FORWARDED_METADATA_KEY
from freshet.server.controller.service import ControllerService
from freshet.server.security.authorizer import (
    Authorizer,
    Caller,
    SecuritySettings,
    bind_caller,
    unbind_caller,
)
from freshet.server.security.changes import SecurityChanges
from freshet.v1 import common_pb2, controller_pb2

from tests.support.metadata_script import EPOCH, Script

E = common_pb2.ErrorCode
SALT = b"q" * 20
READ_A = AclBinding(ResourceType.TOPIC, "a", PatternType.LITERAL, "User:alice", "*", Operation.READ, Permission.ALLOW)


class FakeContext:
    def __init__(self, forwarded: bool = False) -> None:
        self.aborts: list = []
        self._metadata = ((FORWARDED_METADATA_KEY, "1"),) if forwarded else ()

    async def abort(self, code, details="", trailing_metadata=()):
        self.aborts.append((code, status.detail_from_metadata(tuple(trailing_metadata))))
        raise grpc.aio.AbortError()

    def invocation_metadata(self):
        return self._metadata

    def time_remaining(self):
        return 5.0


class FakeController:
    is_active = True

    def __init__(self) -> None:
        self.requests: list = []

    async def upsert_user_scram_credentials(self, request):
        self.requests.append(request)
        return controller_pb2.UpsertUserScramCredentialsResponse(results=[
            controller_pb2.UserScramCredentialResult(user=u.name, mechanism=u.mechanism, error=status.ok_detail()) for u in request.upsertions
        ])


def image():
    s = Script()
    s.claim()
    s.ok(commands.upsert_user_credential(s.rid(), EPOCH, "alice", ScramCredential.from_password(ScramMechanism.SCRAM_SHA_512, "pw", 4096, SALT)))
    return dataclasses.replace(s.image, acls=AclSet([READ_A]))


def service(enabled: bool, controller=None) -> tuple[ControllerService, SecurityChanges]:
    current = image()
    publisher = types.SimpleNamespace(image=current)
    config = types.SimpleNamespace(node_id=1, request_timeout_ms=5000)
    changes = SecurityChanges()
    authorizer = Authorizer(SecuritySettings(enabled=enabled, super_users=frozenset({"User:admin"})), lambda: current)
    return ControllerService(config, publisher, None, controller, None, lambda: None, authorizer, changes), changes


REQUESTS = {
    "UpsertUserScramCredentials": (controller_pb2.UpsertUserScramCredentialsRequest(), "Alter"),
    "DeleteUserScramCredentials": (controller_pb2.DeleteUserScramCredentialsRequest(), "Alter"),
    "DescribeUserScramCredentials": (controller_pb2.DescribeUserScramCredentialsRequest(), "Describe"),
    "CreateAcls": (controller_pb2.CreateAclsRequest(), "Alter"),
    "DescribeAcls": (controller_pb2.DescribeAclsRequest(), "Describe"),
    "DeleteAcls": (controller_pb2.DeleteAclsRequest(), "Alter"),
}


@pytest.mark.parametrize("method", sorted(REQUESTS))
def test_every_user_and_acl_rpc_needs_its_cluster_right(method):
    servicer, changes = service(enabled=True)
    request, operation = REQUESTS[method]
    context = FakeContext()
    token = bind_caller(Caller("User:bob", "10.0.0.2"))
    try:
        with pytest.raises(grpc.aio.AbortError):
            asyncio.run(getattr(servicer, method)(request, context))
    finally:
        unbind_caller(token)
    [(code, detail)] = context.aborts
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert detail.code == E.CLUSTER_AUTHORIZATION_FAILED
    assert detail.message == f"User:bob is not authorized to {operation} the cluster"


def test_a_super_user_may_describe_and_describes_carry_no_secret():
    servicer, _ = service(enabled=True)
    token = bind_caller(Caller("User:admin", "10.0.0.3"))
    try:
        users = asyncio.run(servicer.DescribeUserScramCredentials(controller_pb2.DescribeUserScramCredentialsRequest(), FakeContext()))
        acls = asyncio.run(servicer.DescribeAcls(controller_pb2.DescribeAclsRequest(), FakeContext()))
    finally:
        unbind_caller(token)
    assert [(u.name, [(c.mechanism, c.iterations) for c in u.credentials]) for u in users.users] == [("alice", [(2, 4096)])]
    assert SALT not in users.SerializeToString()
    assert [commands.acl_binding_from_record(r) for r in acls.acls] == [READ_A]


def test_with_security_off_user_changes_are_allowed_and_audited_once_on_the_entry_node(caplog):
    controller = FakeController()
    servicer, changes = service(enabled=False, controller=controller)
    request = controller_pb2.UpsertUserScramCredentialsRequest(
        upsertions=[controller_pb2.ScramCredentialUpsertion(name="carol", mechanism=1, iterations=4096, salt=b"s", salted_password=b"x" * 32)]
    )
    with caplog.at_level(logging.INFO, logger="freshet.audit"):
        response = asyncio.run(servicer.UpsertUserScramCredentials(request, FakeContext()))
        asyncio.run(servicer.UpsertUserScramCredentials(request, FakeContext(forwarded=True)))
    assert [r.error.code for r in response.results] == [E.NONE]
    assert len(controller.requests) == 2 and controller.requests[0].request_id           # the servicer chose an id
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "freshet.audit"]
    assert [(line["event"], line["user"], line["mechanism"]) for line in lines] == [("user_changed", "carol", "SCRAM-SHA-256")]
    assert b"x" * 32 not in caplog.text.encode()
    assert changes.count("user_changed") == 1


def _upsert_as(servicer, caller: Caller, forwarded: bool):
    request = controller_pb2.UpsertUserScramCredentialsRequest(
        upsertions=[controller_pb2.ScramCredentialUpsertion(name="dave", mechanism=2, iterations=4096, salt=b"s", salted_password=b"y" * 64)]
    )
    token = bind_caller(caller)
    try:
        return asyncio.run(servicer.UpsertUserScramCredentials(request, FakeContext(forwarded=forwarded)))
    finally:
        unbind_caller(token)


def test_only_a_node_may_mark_a_change_forwarded_so_a_client_cannot_skip_its_audit_line(caplog):
    """The forwarded header (which skips the audit line: the calling node writes it) counts only
    from a super user proved by a certificate (a node). A logged-in super user sending it, even
    one named like the node principal, is audited as any client."""
    controller = FakeController()
    servicer, changes = service(enabled=True, controller=controller)
    with caplog.at_level(logging.INFO, logger="freshet.audit"):
        _upsert_as(servicer, Caller("User:admin", "10.0.0.4"), forwarded=True)                        # logged in: forged
        _upsert_as(servicer, Caller("User:admin", "10.0.0.5", is_from_certificate=True), forwarded=True)  # a node
        with pytest.raises(grpc.aio.AbortError):                                                      # not a super user
            _upsert_as(servicer, Caller("User:alice", "10.0.0.6", is_from_certificate=True), forwarded=True)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "freshet.audit"]
    assert [(line["event"], line["host"]) for line in lines if line["event"] == "user_changed"] == [("user_changed", "10.0.0.4")]
    assert changes.count("user_changed") == 1
    assert len(controller.requests) == 2                     # alice (no Alter on the cluster) was refused first
