"""The replicas a broker hosts follow metadata (server/broker/hosted_replicas.py).

Goal: logs exist exactly for this broker's replicas, with the topic's configuration; role
listeners hear of every change of role, leader, epochs, ISR and min.insync.replicas (the data
plane records where a leader epoch starts); nothing is deleted before the broker's metadata caught up;
a topic deleted and re-created under the same name never serves the old data. Method: scripted
metadata images (no network) reconciled into a real LogManager in a temporary directory.
"""

from __future__ import annotations

import asyncio
import errno

from freshet.metadata import commands as c
from freshet.server.broker import hosted_replicas
from freshet.server.broker.hosted_replicas import FOLLOWER, LEADER, HostedReplicas, log_config
from freshet.storage.errors import KafkaStorageError
from freshet.storage.log_manager import LogManager

from tests.support.metadata_script import EPOCH, Script

NODE = 2


class StaticPublisher:
    """Just enough of a MetadataPublisher for reconcile() called directly. Not thread-safe."""

    def __init__(self, image) -> None:
        self.image = image


def manager_for(tmp_path, image) -> HostedReplicas:
    return HostedReplicas(NODE, LogManager.open(str(tmp_path / "logs")), StaticPublisher(image), lambda image: True)


def test_logs_roles_configs_and_leader_epochs_follow_metadata(tmp_path):
    s = Script()
    s.cluster(3)
    topic_id = s.topic("t", [([2, 1], [2, 1], 2), ([1, 2], [1, 2], 1), ([1, 3], [1, 3], 1)], configs={"segment.bytes": "1048576"})
    manager = manager_for(tmp_path, s.image)
    heard = []
    manager.add_role_listener(lambda old, new: heard.append((old, new)))
    manager.reconcile(s.image, allow_deletes=True)
    assert {key: r.role for key, r in manager.replicas.items()} == {("t", 0): LEADER, ("t", 1): FOLLOWER}
    assert sorted((new.topic, new.partition, new.replicas, new.isr) for old, new in heard if old is None) == [
        ("t", 0, (2, 1), (2, 1)),
        ("t", 1, (1, 2), (1, 2)),
    ]
    assert sorted(manager.log_manager.all()) == [("t", 0), ("t", 1)]
    log = manager.replicas[("t", 0)].log
    assert log.config.segment_bytes == 1048576 and log.config == log_config(s.image, s.image.topic("t"))
    assert log.topic_id == topic_id.hex()
    assert log.leader_epoch_entries == [], "the data plane assigns epoch starts, on its loop"
    heard.clear()
    s.ok(c.change_partition(s.rid(), EPOCH, topic_id, 1, 0, leader=2))
    manager.reconcile(s.image, allow_deletes=True)
    assert manager.replicas[("t", 1)].role == LEADER
    assert [(old.role, new.role, new.leader_epoch) for old, new in heard] == [(FOLLOWER, LEADER, 1)]
    heard.clear()
    s.ok(c.change_partition(s.rid(), EPOCH, topic_id, 0, s.image.partition("t", 0).partition_epoch, isr=[2]))
    manager.reconcile(s.image, allow_deletes=True)
    assert [(new.isr, new.partition_epoch > old.partition_epoch) for old, new in heard] == [((2,), True)]
    heard.clear()
    s.ok(c.alter_configs(s.rid(), EPOCH, c.topic_resource(topic_name="t"), {"retention.ms": "1000", "min.insync.replicas": "2"}))
    manager.reconcile(s.image, allow_deletes=True)
    assert manager.replicas[("t", 0)].log.config.retention_ms == 1000
    assert sorted((new.partition, new.min_insync_replicas) for _, new in heard) == [(0, 2), (1, 2)]
    manager.log_manager.close()


def test_nothing_is_deleted_until_allowed_and_a_recreated_topic_starts_empty(tmp_path):
    s = Script()
    s.cluster(3)
    old_id = s.topic("t", [([2], [2], 2)])
    manager = manager_for(tmp_path, s.image)
    manager.reconcile(s.image, allow_deletes=True)
    old_log = manager.replicas[("t", 0)].log
    s.ok(c.delete_topic(s.rid(), EPOCH, old_id))
    new_id = s.topic("t", [([2, 1], [2, 1], 2)], topic_id=b"\x07" * 16)
    manager.reconcile(s.image, allow_deletes=False)
    assert manager.log_manager.get("t", 0) is old_log, "kept: the broker has not caught up yet"
    assert ("t", 0) not in manager.replicas
    manager.reconcile(s.image, allow_deletes=True)
    replica = manager.replicas[("t", 0)]
    assert replica.topic_id == new_id and replica.log.topic_id == new_id.hex()
    assert old_log.is_closed and manager.deleted_logs == 1
    s.ok(c.delete_topic(s.rid(), EPOCH, new_id))
    manager.reconcile(s.image, allow_deletes=True)
    assert manager.replicas == {} and manager.log_manager.all() == {}
    assert not (tmp_path / "logs" / "t-0").exists()
    manager.log_manager.close()


def test_logs_on_disk_without_a_replica_in_metadata_are_deleted_once_caught_up(tmp_path):
    s = Script()
    s.cluster(3)
    s.topic("moved", [([1, 3], [1, 3], 1)])
    logs = LogManager.open(str(tmp_path / "logs"))
    logs.get_or_create("moved", 0, None, log_config(s.image, s.image.topic("moved")))
    manager = HostedReplicas(NODE, logs, StaticPublisher(s.image), lambda image: True)
    manager.reconcile(s.image, allow_deletes=False)
    assert logs.get("moved", 0) is not None
    manager.reconcile(s.image, allow_deletes=True)
    assert logs.get("moved", 0) is None and manager.deleted_logs == 1
    logs.close()


def test_only_changed_topics_are_looked_at_except_when_cluster_configs_change(tmp_path):
    """Goal: a broker with many replicas does not revisit all of them for every command. Method:
    count get_or_create calls: a change to one partition touches that partition only (the others
    keep their HostedReplica objects); a topic config change touches that topic; a cluster-wide
    config change touches (and reconfigures) every log; a replica moved away is deleted."""
    s = Script()
    s.cluster(3)
    s.topic("a", [([2, 1], [2, 1], 2)] * 4)
    b_id = s.topic("b", [([2, 3], [2, 3], 2)] * 4)
    manager = manager_for(tmp_path, s.image)
    calls = []
    real = manager.log_manager.get_or_create

    def counting(topic, partition, topic_id, config):
        calls.append((topic, partition))
        return real(topic, partition, topic_id, config)

    manager.log_manager.get_or_create = counting
    manager.reconcile(s.image, allow_deletes=True)
    assert len(calls) == 8
    calls.clear()
    s.ok(c.reassign_partition(s.rid(), EPOCH, b_id, 0, [3, 1]))
    s.ok(c.change_partition(s.rid(), EPOCH, b_id, 0, s.image.partition("b", 0).partition_epoch, replicas=[3, 1], isr=[3, 1], leader=3))
    manager.reconcile(s.image, allow_deletes=True)
    assert calls == [], "topic a and b's other partitions untouched"
    assert ("b", 0) not in manager.replicas and manager.log_manager.get("b", 0) is None
    untouched = dict(manager.replicas)
    heard = []
    manager.add_role_listener(lambda old, new: heard.append((old, new)))
    s.ok(c.change_partition(s.rid(), EPOCH, b_id, 1, s.image.partition("b", 1).partition_epoch, isr=[2]))
    manager.reconcile(s.image, allow_deletes=True)
    assert calls == [("b", 1)]
    assert [(new.partition, new.isr) for _, new in heard] == [(1, (2,))]
    assert all(manager.replicas[key] is replica for key, replica in untouched.items() if key != ("b", 1))
    calls.clear()
    s.ok(c.alter_configs(s.rid(), EPOCH, c.topic_resource(topic_name="b"), {"retention.ms": "7000"}))
    manager.reconcile(s.image, allow_deletes=True)
    assert sorted(calls) == [("b", 1), ("b", 2), ("b", 3)], "a topic config change: the whole topic"
    assert {manager.replicas[("b", n)].log.config.retention_ms for n in (1, 2, 3)} == {7000}
    calls.clear()
    s.ok(c.alter_configs(s.rid(), EPOCH, c.cluster_resource(), {"retention.ms": "5000"}))
    manager.reconcile(s.image, allow_deletes=True)
    assert len(calls) == 7
    assert {(r.topic, r.log.config.retention_ms) for r in manager.replicas.values()} == {("a", 5000), ("b", 7000)}
    manager.log_manager.close()


class ListeningPublisher(StaticPublisher):
    """A publisher the replica manager's task can subscribe to (no image ever changes here)."""

    def add_listener(self, listener) -> None:
        pass

    def remove_listener(self, listener) -> None:
        pass


def test_a_replica_whose_log_could_not_be_created_is_hosted_once_the_disk_has_room_again(tmp_path, monkeypatch):
    """Goal: a replica whose log could not be created (ENOSPC on a full disk) is looked at again
    by itself, without waiting for the next metadata change (a quiet cluster may have none), and
    is hosted once the disk has room. Method: get_or_create fails twice as a full disk does; the
    manager's own task runs with no new image; the retry interval is shortened."""
    s = Script()
    s.cluster(3)
    s.topic("t", [([2, 1], [2, 1], 2)])
    manager = HostedReplicas(NODE, LogManager.open(str(tmp_path / "logs")), ListeningPublisher(s.image), lambda image: True)
    failures = [2]
    real_get_or_create = LogManager.get_or_create

    def full_then_room(self, topic, partition, topic_id, config):
        if failures[0] > 0:
            failures[0] -= 1
            raise KafkaStorageError(str(tmp_path), "create", OSError(errno.ENOSPC, "No space left on device"))
        return real_get_or_create(self, topic, partition, topic_id, config)

    monkeypatch.setattr(LogManager, "get_or_create", full_then_room)
    monkeypatch.setattr(hosted_replicas, "RETRY_UNHOSTED_S", 0.05)
    assert manager.reconcile(s.image, allow_deletes=True) is True, "one replica could not be hosted"
    assert ("t", 0) not in manager.replicas

    async def run() -> None:
        await manager.start()
        try:
            for _ in range(100):
                if ("t", 0) in manager.replicas:
                    return
                await asyncio.sleep(0.02)
        finally:
            await manager.close()

    asyncio.run(run())
    assert failures == [0] and manager.replicas[("t", 0)].role == LEADER
    assert manager.reconcile(s.image, allow_deletes=True) is False, "nothing left to retry"
    manager.log_manager.close()
