"""Every Kafka API the broker serves has an authorization decision, enforced as Kafka does.

Goal: the table (server/security/rules.py KAFKA_RULES) names every API a KafkaApis handler class
serves and every such handler takes the node's Authorizer; Produce and Fetch answer
TOPIC_AUTHORIZATION_FAILED per partition without appending or reading; the group APIs answer
GROUP_AUTHORIZATION_FAILED (commit, join, describe, delete) and TOPIC_AUTHORIZATION_FAILED per
partition of an unreadable topic without changing the group; InitProducerId needs IdempotentWrite
on the cluster or Write on a topic; ListGroups is filtered. Method: the real handlers over the fakes
of the Kafka API tests (real produce and fetch paths, real GroupCoordinator), a Caller bound with
bind_caller, an Authorizer over an image carrying ACLs; every answer encodes at its version.
Reference: Kafka KafkaApis.handleProduceRequest / handleFetchRequest / handleOffsetCommitRequest /
handleJoinGroupRequest, AuthHelper.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil

import pytest
from freshet.metadata.image import EMPTY_IMAGE
from freshet.metadata.security import AclBinding, AclSet, Operation, PatternType, Permission, ResourceType
from freshet.server import kafka as kafka_package
from freshet.server.kafka import classic_group_api, groups_api
from freshet.server.kafka.fetch_api import FetchHandler
from freshet.server.kafka.produce_api import InitProducerIdHandler, ProduceHandler
from freshet.server.security import rules
from freshet.server.security.authorizer import (
    Authorizer,
    Caller,
    SecuritySettings,
    bind_caller,
    unbind_caller,
)
from freshet.server.security.rules import KAFKA_RULES
from prometheus_client import CollectorRegistry

from tests.unit.server.kafka import test_kafka_groups_api as group_tests
from tests.unit.server.kafka.test_kafka_data_apis import (
    call,
    fetch_body,
    fetched,
    produce_body,
    produced,
    setup,
)
from tests.unit.server.kafka.test_kafka_groups_api import call as group_call
from tests.unit.server.kafka.test_kafka_groups_api import commit_body, entity

# The group API tests' fixtures: an event loop set as current, a loaded GroupCoordinator over it.
loop = group_tests.loop
coordinator = group_tests.coordinator

TOPIC_AUTHORIZATION_FAILED = 29
GROUP_AUTHORIZATION_FAILED = 30
CLUSTER_AUTHORIZATION_FAILED = 31
ALICE = "User:alice"


def acl(operation, resource_type, name, permission=Permission.ALLOW, pattern=PatternType.LITERAL):
    return AclBinding(resource_type, name, pattern, ALICE, "*", operation, permission)


def make_authorizer(*acls) -> Authorizer:
    image = dataclasses.replace(EMPTY_IMAGE, acls=AclSet(acls))
    return Authorizer(SecuritySettings(enabled=True, super_users=frozenset({"User:admin"})), lambda: image, CollectorRegistry())


@pytest.fixture
def alice():
    token = bind_caller(Caller(ALICE, "10.0.0.7"))
    yield
    unbind_caller(token)


def handler_classes() -> dict[str, type]:
    """Every class of server/kafka/*.py that serves a Kafka API (has api_key, name and handle)."""
    found = {}
    for info in pkgutil.iter_modules(kafka_package.__path__):
        module = importlib.import_module(f"freshet.server.kafka.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and hasattr(cls, "handle") and isinstance(getattr(cls, "api_key", None), int):
                found[cls.name] = cls
    return found


def test_every_served_kafka_api_has_a_decision_and_takes_the_authorizer():
    classes = handler_classes()
    assert set(classes) == set(KAFKA_RULES), "a new Kafka API needs a row in KAFKA_RULES"
    for name, cls in classes.items():
        if name in ("ApiVersions", "SaslHandshake", "SaslAuthenticate"):
            continue                              # answered before authentication, as Kafka
        assert "authorizer" in inspect.signature(cls.__init__).parameters, f"{name} takes no authorizer"


def test_produce_answers_unwritable_topics_per_partition_and_appends_nothing(loop, alice):
    broker, plane, image = setup(loop)
    reader = make_authorizer(acl(Operation.READ, ResourceType.TOPIC, "t"))
    answer = produced(call(loop, ProduceHandler(plane, image, reader), 0, 9, produce_body(9, 1)))
    assert answer.error_code == TOPIC_AUTHORIZATION_FAILED
    assert answer.error_message == "User:alice is not authorized to Write topic 't'"
    assert broker.log.log_end_offset == 0
    writer = make_authorizer(acl(Operation.WRITE, ResourceType.TOPIC, "t"))
    answer = produced(call(loop, ProduceHandler(plane, image, writer), 0, 9, produce_body(9, 1)))
    assert answer.error_code == 0 and broker.log.log_end_offset == 1


def test_a_deny_on_a_prefix_beats_an_allow_all(loop, alice):
    broker, plane, image = setup(loop)
    authorizer = make_authorizer(
        acl(Operation.ALL, ResourceType.TOPIC, "*"),
        acl(Operation.WRITE, ResourceType.TOPIC, "t", Permission.DENY, PatternType.PREFIXED),
    )
    answer = produced(call(loop, ProduceHandler(plane, image, authorizer), 0, 9, produce_body(9, 1)))
    assert answer.error_code == TOPIC_AUTHORIZATION_FAILED and broker.log.log_end_offset == 0


def test_fetch_needs_read_per_partition(loop, alice):
    broker, plane, image = setup(loop)
    call(loop, ProduceHandler(plane, image), 0, 9, produce_body(9, 1))
    writer_only = make_authorizer(acl(Operation.WRITE, ResourceType.TOPIC, "t"))
    assert fetched(call(loop, FetchHandler(plane, image, writer_only), 1, 12, fetch_body(12, 0))).error_code == TOPIC_AUTHORIZATION_FAILED
    reader = make_authorizer(acl(Operation.READ, ResourceType.TOPIC, "t", pattern=PatternType.PREFIXED))
    partition = fetched(call(loop, FetchHandler(plane, image, reader), 1, 12, fetch_body(12, 0)))
    assert partition.error_code == 0 and partition.records


def test_init_producer_id_needs_idempotent_write_or_write_on_a_topic(loop, alice):
    _, plane, _ = setup(loop)
    body = entity(22, 4, transactional_id=None, transaction_timeout=-1, producer_id=-1, producer_epoch=-1)
    refused = call(loop, InitProducerIdHandler(plane, 1000, make_authorizer(acl(Operation.READ, ResourceType.TOPIC, "t"))), 22, 4, body)
    assert (refused.error_code, refused.producer_id) == (CLUSTER_AUTHORIZATION_FAILED, -1)
    assert plane.producer_ids.next == 1000, "no id handed out"
    answer = call(loop, InitProducerIdHandler(plane, 1000, make_authorizer(acl(Operation.WRITE, ResourceType.TOPIC, "t"))), 22, 4, body)
    assert (answer.error_code, answer.producer_id) == (0, 1000)


def test_commits_need_read_on_the_group_and_on_each_topic(coordinator, alice):
    topic_only = make_authorizer(acl(Operation.READ, ResourceType.TOPIC, "orders"))
    answer = group_call(groups_api.OffsetCommitHandler(coordinator, 1, topic_only), 8, commit_body(8))
    assert {p.error_code for t in answer.topics for p in t.partitions} == {GROUP_AUTHORIZATION_FAILED}
    group_only = make_authorizer(acl(Operation.READ, ResourceType.GROUP, "g"))
    answer = group_call(groups_api.OffsetCommitHandler(coordinator, 1, group_only), 8, commit_body(8))
    assert {p.error_code for t in answer.topics for p in t.partitions} == {TOPIC_AUTHORIZATION_FAILED}
    assert coordinator.list_groups().groups == [], "nothing was committed: no group exists"
    both = make_authorizer(acl(Operation.READ, ResourceType.GROUP, "g"), acl(Operation.READ, ResourceType.TOPIC, "orders"))
    answer = group_call(groups_api.OffsetCommitHandler(coordinator, 1, both), 8, commit_body(8))
    assert {p.error_code for t in answer.topics for p in t.partitions} == {0}


def test_joining_describing_and_deleting_another_group_are_refused(coordinator, alice):
    authorizer = make_authorizer(acl(Operation.READ, ResourceType.GROUP, "g"))
    join = entity(11, 5, group_id="other", session_timeout=10000, rebalance_timeout=10000, member_id="",
                  group_instance_id=None, protocol_type="consumer",
                  protocols=(entity(11, 5, "JoinGroupRequestProtocol", name="range", metadata=b""),))
    answer = group_call(classic_group_api.JoinGroupHandler(coordinator, authorizer), 5, join)
    assert answer.error_code == GROUP_AUTHORIZATION_FAILED
    assert coordinator.list_groups().groups == []
    described = group_call(groups_api.DescribeGroupsHandler(coordinator, 1, authorizer), 5,
                           entity(15, 5, groups=("other",), include_authorized_operations=False))
    assert [g.error_code for g in described.groups] == [GROUP_AUTHORIZATION_FAILED]
    deleted = group_call(groups_api.DeleteGroupsHandler(coordinator, 1, authorizer), 2, entity(42, 2, groups_names=("g",)))
    assert [r.error_code for r in deleted.results] == [GROUP_AUTHORIZATION_FAILED], "Read does not imply Delete"


def test_list_groups_shows_only_describable_groups(coordinator, alice):
    both = make_authorizer(acl(Operation.READ, ResourceType.GROUP, "g"), acl(Operation.READ, ResourceType.TOPIC, "orders"))
    group_call(groups_api.OffsetCommitHandler(coordinator, 1, both), 8, commit_body(8, group="g"))
    group_call(groups_api.OffsetCommitHandler(coordinator, 1, rules.allow_all()), 8, commit_body(8, group="h"))
    listed = group_call(groups_api.ListGroupsHandler(coordinator, both), 4, entity(16, 4, states_filter=()))
    assert [g.group_id for g in listed.groups] == ["g"]
