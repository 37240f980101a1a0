"""Kafka's ACL and SCRAM user APIs to controller requests and back.

Goal: CreateAcls / DescribeAcls / DeleteAcls (v1-v3) and Describe/AlterUserScramCredentials (v0)
say to the active controller what the gRPC path says, answer with Kafka's shapes and codes
(UNACCEPTABLE_CREDENTIAL as Kafka's 93, DUPLICATE_RESOURCE, CLUSTER_AUTHORIZATION_FAILED), refuse
without forwarding anything when the caller lacks the cluster right, never return a secret, and
audit each accepted change with the caller. Method: handlers over a scripted image with `forward`
replaced by a fake that records the controller request and answers from a canned response; every
response is encoded with kio at its version.

Reference: KIP-554, Kafka protocol guide (CreateAcls, DescribeAcls, DeleteAcls).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging

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
from freshet.server.kafka import acls_api, admin_api, codec, scram_credentials_api
from freshet.server.security.authorizer import (
    Authorizer,
    Caller,
    SecuritySettings,
    bind_caller,
    unbind_caller,
)
from freshet.server.security.changes import SecurityChanges
from freshet.v1 import common_pb2, controller_pb2
from kio.index import load_request_schema

from tests.support.metadata_script import EPOCH, Script

E = common_pb2.ErrorCode
SALT = b"k" * 24
READ_A = AclBinding(ResourceType.TOPIC, "a", PatternType.LITERAL, "User:alice", "*", Operation.READ, Permission.ALLOW)
WRITE_PREFIX = AclBinding(ResourceType.TOPIC, "a-", PatternType.PREFIXED, "User:alice", "*", Operation.WRITE, Permission.ALLOW)


class FakePublisher:
    def __init__(self, image) -> None:
        self.image = image

    async def wait_for_offset(self, offset: int, timeout_s: float) -> bool:
        return True


class FakeForward:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.answers: dict[str, object] = {}

    async def __call__(self, channels, method, request, deadline, hint, skip_self):
        self.calls.append((method, request))
        return self.answers[method](request)


@pytest.fixture
def fake_forward(monkeypatch):
    fake = FakeForward()
    monkeypatch.setattr(admin_api, "forward", fake)
    return fake


@pytest.fixture
def image():
    s = Script()
    s.claim()
    s.ok(commands.upsert_user_credential(s.rid(), EPOCH, "alice", ScramCredential.from_password(ScramMechanism.SCRAM_SHA_256, "pw", 4096, SALT)))
    return dataclasses.replace(s.image, acls=AclSet([READ_A, WRITE_PREFIX]))


@pytest.fixture
def link(image):
    return admin_api.ControllerLink(1, None, lambda: None, FakePublisher(image), 30_000)


def open_authorizer(image) -> Authorizer:
    return Authorizer(SecuritySettings(), lambda: image)


def closed_authorizer(image) -> Authorizer:
    """Security on, no ACL for anyone: every cluster operation is refused."""
    return Authorizer(SecuritySettings(enabled=True), lambda: image)


def body(api_key: int, version: int, **fields):
    return codec.build(load_request_schema(api_key, version), **fields)


def nested(api_key: int, version: int, class_name: str, **fields):
    return codec.build(codec.nested(load_request_schema(api_key, version), class_name), **fields)


def run(handler, version: int, request_body):
    request = codec.Request(handler.api_key, version, 7, "test", request_body, 0)
    answer = handler.handle(request)
    if asyncio.iscoroutine(answer):
        answer = asyncio.run(answer)
    frame = codec.encode_response(handler.api_key, version, 7, answer)
    return answer, frame


def ok_results(request, field: str):
    return [dict(error=status.ok_detail()) for _ in getattr(request, field)]


def creation(version: int, binding: AclBinding):
    return nested(
        30, version, "AclCreation", resource_type=int(binding.resource_type), resource_name=binding.resource_name,
        resource_pattern_type=int(binding.pattern_type), principal=binding.principal, host=binding.host,
        operation=int(binding.operation), permission_type=int(binding.permission),
    )


@pytest.mark.parametrize("version", [1, 2, 3])
def test_create_acls_forwards_the_bindings_and_audits_the_accepted_ones(version, link, image, fake_forward, caplog):
    def answer(request):
        results = [controller_pb2.AclResult(acl=record, error=status.ok_detail()) for record in request.acls]
        results[1].error.CopyFrom(status.detail(E.INVALID_REQUEST, "invalid ACL binding: nope"))
        return controller_pb2.CreateAclsResponse(results=results, metadata_offset=9)

    fake_forward.answers["CreateAcls"] = answer
    changes = SecurityChanges()
    handler = acls_api.CreateAclsHandler(link, open_authorizer(image), changes)
    token = bind_caller(Caller("User:admin", "1.2.3.4"))
    try:
        with caplog.at_level(logging.INFO, logger="freshet.audit"):
            response, _ = run(handler, version, body(30, version, creations=(creation(version, READ_A), creation(version, WRITE_PREFIX))))
    finally:
        unbind_caller(token)
    [(method, request)] = fake_forward.calls
    assert method == "CreateAcls"
    assert [commands.acl_binding_from_record(r) for r in request.acls] == [READ_A, WRITE_PREFIX]
    assert [(r.error_code, r.error_message) for r in response.results] == [(0, None), (42, "invalid ACL binding: nope")]
    [line] = [json.loads(r.getMessage()) for r in caplog.records if r.name == "freshet.audit"]
    assert line["event"] == "acl_created" and line["principal"] == "User:admin" and line["resource"] == "a"
    assert changes.count("acl_created") == 1


def test_acl_changes_without_the_cluster_right_are_refused_and_nothing_is_forwarded(link, image, fake_forward):
    create = acls_api.CreateAclsHandler(link, closed_authorizer(image), SecurityChanges())
    response, _ = run(create, 3, body(30, 3, creations=(creation(3, READ_A),)))
    assert [(r.error_code, r.error_message) for r in response.results] == [
        (31, "User:ANONYMOUS is not authorized to Alter the cluster")
    ]
    delete = acls_api.DeleteAclsHandler(link, closed_authorizer(image), SecurityChanges())
    response, _ = run(delete, 2, body(31, 2, filters=(nested(
        31, 2, "DeleteAclsFilter", resource_type_filter=1, resource_name_filter=None, pattern_type_filter=1,
        principal_filter=None, host_filter=None, operation=1, permission_type=1,
    ),)))
    assert [r.error_code for r in response.filter_results] == [31] and response.filter_results[0].matching_acls == ()
    describe = acls_api.DescribeAclsHandler(link, closed_authorizer(image))
    response, _ = run(describe, 1, body(29, 1, resource_type_filter=1, resource_name_filter=None, pattern_type_filter=1,
                                         principal_filter=None, host_filter=None, operation=1, permission_type=1))
    assert response.error_code == 31 and response.resources == ()
    alter = scram_credentials_api.AlterUserScramCredentialsHandler(link, closed_authorizer(image), SecurityChanges())
    response, _ = run(alter, 0, body(51, 0, deletions=(nested(51, 0, "ScramCredentialDeletion", name="alice", mechanism=1),), upsertions=()))
    assert [(r.user, r.error_code) for r in response.results] == [("alice", 31)]
    assert fake_forward.calls == []


@pytest.mark.parametrize("version", [1, 2, 3])
def test_describe_acls_groups_the_matching_bindings_by_resource(version, link, image):
    handler = acls_api.DescribeAclsHandler(link, open_authorizer(image))
    match = body(29, version, resource_type_filter=2, resource_name_filter="a-1", pattern_type_filter=int(PatternType.MATCH),
                 principal_filter=None, host_filter=None, operation=1, permission_type=1)
    response, _ = run(handler, version, match)
    assert response.error_code == 0
    [resource] = response.resources
    assert (resource.resource_name, resource.pattern_type) == ("a-", int(PatternType.PREFIXED))
    assert [(a.principal, a.operation, a.permission_type) for a in resource.acls] == [("User:alice", 4, 3)]
    everything = body(29, version, resource_type_filter=1, resource_name_filter=None, pattern_type_filter=1,
                      principal_filter="User:alice", host_filter=None, operation=1, permission_type=1)
    assert [r.resource_name for r in run(handler, version, everything)[0].resources] == ["a", "a-"]
    bad = body(29, version, resource_type_filter=9, resource_name_filter=None, pattern_type_filter=1,
               principal_filter=None, host_filter=None, operation=1, permission_type=1)
    assert run(handler, version, bad)[0].error_code == 42


@pytest.mark.parametrize("version", [1, 3])
def test_delete_acls_reports_the_bindings_the_controller_deleted(version, link, image, fake_forward):
    def answer(request):
        return controller_pb2.DeleteAclsResponse(results=[
            controller_pb2.DeleteAclsFilterResult(error=status.ok_detail(), acls=[commands.acl_binding_record(READ_A)]),
            controller_pb2.DeleteAclsFilterResult(error=status.detail(E.INVALID_REQUEST, "invalid ACL filter: unknown operation 42")),
        ], metadata_offset=11)

    fake_forward.answers["DeleteAcls"] = answer
    handler = acls_api.DeleteAclsHandler(link, open_authorizer(image), SecurityChanges())
    filters = (
        nested(31, version, "DeleteAclsFilter", resource_type_filter=2, resource_name_filter="a", pattern_type_filter=3,
               principal_filter="User:alice", host_filter="*", operation=3, permission_type=3),
        nested(31, version, "DeleteAclsFilter", resource_type_filter=1, resource_name_filter=None, pattern_type_filter=1,
               principal_filter=None, host_filter=None, operation=42, permission_type=1),
    )
    response, _ = run(handler, version, body(31, version, filters=filters))
    [(_, request)] = fake_forward.calls
    assert request.filters[0].resource_name == "a" and request.filters[0].principal == "User:alice"
    assert not request.filters[1].HasField("resource_name") and request.filters[1].operation == 42
    first, second = response.filter_results
    assert first.error_code == 0
    assert [(m.resource_name, m.operation, m.principal) for m in first.matching_acls] == [("a", 3, "User:alice")]
    assert (second.error_code, second.error_message, second.matching_acls) == (42, "invalid ACL filter: unknown operation 42", ())


def test_describe_user_scram_credentials_shows_mechanisms_and_iterations_never_secrets(link, image):
    handler = scram_credentials_api.DescribeUserScramCredentialsHandler(link, open_authorizer(image))
    response, frame = run(handler, 0, body(50, 0, users=None))
    assert [(r.user, r.error_code, [(c.mechanism, c.iterations) for c in r.credential_infos]) for r in response.results] == [
        ("alice", 0, [(1, 4096)])
    ]
    credential = image.scram_credential("alice", ScramMechanism.SCRAM_SHA_256)
    for secret in (SALT, credential.stored_key, credential.server_key):
        assert secret not in frame
    names = tuple(nested(50, 0, "UserName", name=n) for n in ("bob", "alice", "bob"))
    response, _ = run(handler, 0, body(50, 0, users=names))
    assert [(r.user, r.error_code) for r in response.results] == [("bob", 92), ("alice", 0)]
    response, _ = run(handler, 0, body(50, 0, users=(nested(50, 0, "UserName", name="carol"),)))
    assert [(r.user, r.error_code) for r in response.results] == [("carol", 91)]


def test_alter_user_scram_credentials_splits_deletions_and_upsertions_per_user(link, image, fake_forward):
    def upserts(request):
        results = [controller_pb2.UserScramCredentialResult(user=u.name, mechanism=u.mechanism, error=status.ok_detail()) for u in request.upsertions]
        results[-1].error.CopyFrom(status.detail(E.UNACCEPTABLE_CREDENTIAL, "SCRAM-SHA-512 iterations 10 are outside 4096..16384"))
        return controller_pb2.UpsertUserScramCredentialsResponse(results=results, metadata_offset=5)

    def deletes(request):
        return controller_pb2.DeleteUserScramCredentialsResponse(results=[
            controller_pb2.UserScramCredentialResult(user=d.name, mechanism=d.mechanism, error=status.ok_detail()) for d in request.deletions
        ], metadata_offset=4)

    fake_forward.answers["UpsertUserScramCredentials"] = upserts
    fake_forward.answers["DeleteUserScramCredentials"] = deletes
    changes = SecurityChanges()
    handler = scram_credentials_api.AlterUserScramCredentialsHandler(link, open_authorizer(image), changes)
    upsertion = lambda name, mechanism, iterations: nested(  # noqa: E731
        51, 0, "ScramCredentialUpsertion", name=name, mechanism=mechanism, iterations=iterations, salt=b"salt", salted_password=b"x" * 32,
    )
    request = body(
        51, 0,
        deletions=(nested(51, 0, "ScramCredentialDeletion", name="alice", mechanism=1),
                   nested(51, 0, "ScramCredentialDeletion", name="dup", mechanism=2)),
        upsertions=(upsertion("bob", 1, 4096), upsertion("dup", 2, 4096), upsertion("carol", 2, 10)),
    )
    response, _ = run(handler, 0, request)
    assert [(r.user, r.error_code) for r in response.results] == [("alice", 0), ("dup", 92), ("bob", 0), ("carol", 93)]
    assert response.results[3].error_message == "SCRAM-SHA-512 iterations 10 are outside 4096..16384"
    calls = dict(fake_forward.calls)
    assert [(d.name, d.mechanism) for d in calls["DeleteUserScramCredentials"].deletions] == [("alice", 1)]
    assert [(u.name, u.iterations) for u in calls["UpsertUserScramCredentials"].upsertions] == [("bob", 4096), ("carol", 10)]
    assert changes.count("user_changed") == 2
