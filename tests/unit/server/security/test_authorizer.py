"""The node's Authorizer: the current caller, denials with the resource type's code, audit lines."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging

import pytest
from freshet.metadata.image import EMPTY_IMAGE
from freshet.metadata.security import AclBinding, AclSet, Operation, PatternType, Permission, ResourceType
from freshet.server.errors import AuthorizationError
from freshet.server.security.authorizer import (
    Authorizer,
    Caller,
    SecuritySettings,
    bind_caller,
    current_caller,
    unbind_caller,
)
from freshet.v1 import common_pb2
from prometheus_client import CollectorRegistry

E = common_pb2.ErrorCode
READ_A = AclBinding(ResourceType.TOPIC, "a", PatternType.LITERAL, "User:alice", "*", Operation.READ, Permission.ALLOW)


def authorizer(enabled=True, acls=(READ_A,), registry=None) -> Authorizer:
    image = dataclasses.replace(EMPTY_IMAGE, acls=AclSet(acls))
    settings = SecuritySettings(enabled=enabled, super_users=frozenset({"User:admin"}))
    return Authorizer(settings, lambda: image, registry or CollectorRegistry())


def test_disabled_security_allows_everything():
    assert authorizer(enabled=False).allows(Operation.DELETE, ResourceType.TOPIC, "a")
    authorizer(enabled=False).check(Operation.ALTER, ResourceType.CLUSTER)


def test_denials_raise_the_resource_types_code_and_are_audited(caplog):
    registry = CollectorRegistry()
    auth = authorizer(registry=registry)
    token = bind_caller(Caller("User:alice", "10.1.2.3"))
    try:
        auth.check(Operation.READ, ResourceType.TOPIC, "a")
        with caplog.at_level(logging.INFO, logger="freshet.audit"):
            with pytest.raises(AuthorizationError) as raised:
                auth.check(Operation.WRITE, ResourceType.TOPIC, "a")
        assert raised.value.error_code == E.TOPIC_AUTHORIZATION_FAILED
        assert str(raised.value) == "User:alice is not authorized to Write topic 'a'"
        with pytest.raises(AuthorizationError) as raised:
            auth.check(Operation.CREATE, ResourceType.CLUSTER)
        assert raised.value.error_code == E.CLUSTER_AUTHORIZATION_FAILED
        assert "to Create the cluster" in str(raised.value)
        assert auth.filter(Operation.DESCRIBE, ResourceType.TOPIC, ["a", "b"]) == ["a"]
    finally:
        unbind_caller(token)
    line = json.loads(caplog.records[0].getMessage())
    assert line == {"event": "authorization_denied", "host": "10.1.2.3", "operation": "Write",
                    "principal": "User:alice", "resource": "a", "resource_type": "topic"}
    assert registry.get_sample_value("freshet_authorization_denials_total", {"resource_type": "topic", "operation": "Write"}) == 1


def test_anonymous_is_denied_and_super_users_are_not():
    auth = authorizer()
    assert current_caller().principal == "User:ANONYMOUS"
    assert not auth.allows(Operation.READ, ResourceType.TOPIC, "a")
    assert auth.allows(Operation.ALTER, ResourceType.CLUSTER, "kafka-cluster", Caller("User:admin", "::1"))


def test_the_caller_is_per_task():
    async def serve(name: str) -> str:
        bind_caller(Caller(f"User:{name}", "h"))
        await asyncio.sleep(0.01)
        return current_caller().principal

    async def main():
        return await asyncio.gather(serve("a"), serve("b"))

    assert asyncio.run(main()) == ["User:a", "User:b"]
