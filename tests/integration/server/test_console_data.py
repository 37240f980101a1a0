"""The console's data layer on a real 3-node cluster (in-process, security off): admin actions
through the Controller handlers, and every consumer group of the cluster with lag.

Goal: the console changes topics the way the CLI does (same handlers, same refusal codes) and
shows the groups of every coordinator, not only this node's, within a bounded time even when a
broker does not answer. Method: the module's 3-node cluster (tests/integration/server/conftest.py);
actions run on node 2 (usually not the active controller, so requests are forwarded); groups get
committed offsets with the SDK's GroupAdmin (an admin commit); one broker is made unreachable by
giving the console an image with an extra broker on a socket that accepts and never answers.
"""

from __future__ import annotations

import dataclasses
import socket
import uuid

import pytest
from freshet.client import Producer
from freshet.client.admin_groups import GroupAdmin
from freshet.client.errors import FreshetError
from freshet.server.http.console_data import actions, groups, logs
from freshet.server.http.console_data.backend import ActionRefused
from freshet.server.security.authorizer import Caller

from tests.support.waiting import wait_until

VIEWER = Caller()          # security off: the anonymous caller may do everything


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _bootstrap(cluster) -> str:
    return ",".join(f"127.0.0.1:{port}" for port in cluster.ports.values())


def test_topic_actions_change_the_cluster_as_the_cli_does(cluster):
    backend = cluster.nodes[2].console
    topic = _name("console-actions")
    created = actions.create_topic(backend, VIEWER, topic, partitions=2, replication_factor=3)
    assert (created.name, created.partitions, created.replication_factor) == (topic, 2, 3)
    assert actions.add_partitions(backend, VIEWER, topic, 3) == 1
    actions.alter_configs(backend, VIEWER, "topic", topic, {"retention.ms": "60000"})
    image = wait_until(lambda: (i := backend.image()).topic(topic) and i.topic(topic).configs.get("retention.ms") and i, 10, "config")
    assert len(image.topic(topic).partitions) == 3
    actions.alter_configs(backend, VIEWER, "topic", topic, delete_configs=["retention.ms"])
    wait_until(lambda: "retention.ms" not in backend.image().topic(topic).configs, 10, "config deleted")
    elected = actions.elect_preferred(backend, VIEWER, topic)
    assert sorted(e.partition for e in elected) == [0, 1, 2]
    assert all(e.error in (None, "ELECTION_NOT_NEEDED") for e in elected)
    actions.delete_topic(backend, VIEWER, topic)
    wait_until(lambda: backend.image().topic(topic) is None, 10, "topic deleted")


def test_refusals_carry_the_cli_code_and_message(cluster):
    backend = cluster.nodes[2].console
    topic = _name("console-refused")
    actions.create_topic(backend, VIEWER, topic, partitions=1, replication_factor=1)
    with pytest.raises(ActionRefused) as exists:
        actions.create_topic(backend, VIEWER, topic, partitions=1, replication_factor=1)
    assert exists.value.code_name == "TOPIC_ALREADY_EXISTS"
    assert topic in exists.value.message
    with pytest.raises(ActionRefused) as too_many:
        actions.create_topic(backend, VIEWER, _name("console-rf"), partitions=1, replication_factor=4)
    assert too_many.value.code_name == "INVALID_REPLICATION_FACTOR"
    with pytest.raises(ActionRefused) as unknown:
        actions.delete_topic(backend, VIEWER, _name("console-missing"))
    assert unknown.value.code_name == "UNKNOWN_TOPIC"
    with pytest.raises(ValueError, match="config resource"):
        actions.alter_configs(backend, VIEWER, "table", topic, {"a": "b"})


def _topic_with_records(cluster, records: int) -> str:
    topic = _name("console-groups")
    actions.create_topic(cluster.nodes[1].console, VIEWER, topic, partitions=2, replication_factor=2)
    with Producer(_bootstrap(cluster), acks="all") as producer:
        for i in range(records):
            producer.send(topic, value=f"v{i}".encode(), partition=0).result(timeout=15)
    return topic


def _commit(cluster, group: str, topic: str, offset: int) -> None:
    """An admin commit of `offset` on partition 0, retried while the coordinators settle
    (__consumer_offsets is created on first use)."""

    def commit() -> bool:
        try:
            with GroupAdmin(_bootstrap(cluster)) as admin:
                admin.reset_offsets(group, topic, to_offset=offset, partitions=[0], execute=True)
        except FreshetError as error:
            if not error.retriable:
                raise
            return False
        return True

    wait_until(commit, 30, f"offsets of {group} committed")


def test_cluster_groups_shows_every_coordinators_groups_with_lag(cluster):
    topic = _topic_with_records(cluster, 10)
    names = [_name("console-g") for _ in range(8)]
    for group in names:
        _commit(cluster, group, topic, 4)
    backend = cluster.nodes[1].console
    found = groups.cluster_groups(backend, VIEWER)
    assert not found.is_partial, found.failures
    by_name = {g.group: g for g in found.groups}
    assert set(names) <= set(by_name)
    coordinators = {by_name[n].coordinator for n in names}
    assert len(coordinators) >= 2, coordinators          # not only node 1's groups
    for group in names:
        (partition,) = [p for p in by_name[group].partitions if p.topic == topic]
        assert (partition.partition, partition.committed_offset, partition.high_watermark, partition.lag) == (0, 4, 10, 6)
        assert by_name[group].members == ()
        assert by_name[group].total_lag == 6
    detail = groups.describe_group(backend, VIEWER, names[0])
    assert detail.partitions == by_name[names[0]].partitions
    with pytest.raises(ActionRefused) as missing:
        groups.describe_group(backend, VIEWER, _name("console-nosuch"))
    assert missing.value.code_name == "GROUP_ID_NOT_FOUND"


def test_group_actions_reset_offsets_and_delete(cluster):
    topic = _topic_with_records(cluster, 5)
    group = _name("console-reset")
    _commit(cluster, group, topic, 5)
    backend = cluster.nodes[3].console
    plan = actions.reset_group_offsets(backend, VIEWER, group, topic, to_earliest=True, partitions=[0])
    assert [(p.partition, p.current_offset, p.new_offset) for p in plan] == [(0, 5, 0)]
    assert groups.describe_group(backend, VIEWER, group).total_lag == 0          # a plan changes nothing
    actions.reset_group_offsets(backend, VIEWER, group, topic, to_earliest=True, partitions=[0], execute=True)
    assert groups.describe_group(backend, VIEWER, group).total_lag == 5
    actions.delete_group(backend, VIEWER, group)
    with pytest.raises(ActionRefused) as gone:
        groups.describe_group(backend, VIEWER, group)
    assert gone.value.code_name == "GROUP_ID_NOT_FOUND"
    with pytest.raises(ActionRefused) as again:
        actions.delete_group(backend, VIEWER, group)
    assert again.value.code_name == "GROUP_ID_NOT_FOUND"


def test_a_silent_broker_makes_the_list_partial_not_slow(cluster):
    """A broker that accepts connections and never answers costs at most the call's timeout: the
    others' groups are shown and the silent one is listed as a failure."""
    topic = _topic_with_records(cluster, 3)
    group = _name("console-partial")
    _commit(cluster, group, topic, 1)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        backend = cluster.nodes[1].console
        real = backend.image()
        some = next(iter(real.brokers.values()))
        extra = dataclasses.replace(some, node_id=99, port=silent.getsockname()[1])
        image = dataclasses.replace(real, brokers={**real.brokers, 99: extra})
        slow = dataclasses.replace(backend, image=lambda: image, request_timeout_s=1.0)
        found = groups.cluster_groups(slow, VIEWER, budget_s=4.0)
    finally:
        silent.close()
    assert found.elapsed_s < 4.5
    assert found.is_partial
    assert [f.subject for f in found.failures] == [f"127.0.0.1:{extra.port}"]
    assert group in {g.group for g in found.groups}


def test_the_topic_page_logs_come_from_every_partitions_leader(cluster):
    """Every partition's log start, high watermark, log end and size, whoever leads it (the
    partitions are spread over the 3 brokers, so node 2 leads at most some of them)."""
    topic = _name("console-logs")
    actions.create_topic(cluster.nodes[1].console, VIEWER, topic, partitions=3, replication_factor=2)
    with Producer(_bootstrap(cluster), acks="all") as producer:
        for partition in range(3):
            for i in range(partition + 1):
                producer.send(topic, value=f"v{i}".encode(), partition=partition).result(timeout=15)
    backend = cluster.nodes[2].console
    image = wait_until(lambda: (i := backend.image()).topic(topic) and i, 10, "topic in node 2's image")
    assert len({p.leader for p in image.topic(topic).partitions}) > 1           # not all led by one node
    found = logs.topic_logs(backend, image.topic(topic))
    assert found.failures == () and found.unknown == {}
    for partition in range(3):
        log = found.partitions[partition]
        assert (log.log_start_offset, log.high_watermark, log.log_end_offset) == (0, partition + 1, partition + 1)
        assert log.size_bytes > 0
