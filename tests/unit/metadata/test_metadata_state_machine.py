"""The metadata state machine from scripted command sequences: no network, no pysyncobj.

Each test applies a short script of commands and checks the image and the results. Where Kafka
KRaft has a rule (broker epochs, leader/partition epochs, reassignment sets, topic names) the test
cites it. Every rejection is checked to leave the state unchanged (Script.fails).
"""

from __future__ import annotations

import dataclasses
import logging

import pytest
from freshet.metadata import commands as c
from freshet.metadata import state_machine
from freshet.metadata.image import EMPTY_IMAGE, NO_CONTROLLER, NO_LEADER
from freshet.v1 import metadata_pb2

from tests.support.metadata_script import EPOCH, E, Script


def test_commands_before_any_controller_claim_are_refused_as_not_controller():
    s = Script()
    s.fails(c.noop(s.rid(), 0), E.NOT_CONTROLLER, "no controller has claimed")
    assert s.image.controller_id == NO_CONTROLLER


def test_claim_controller_needs_a_newer_term_and_is_idempotent_for_the_same_claim():
    s = Script()
    s.ok(c.claim_controller(s.rid(), 1, 5))
    assert (s.image.controller_id, s.image.controller_epoch) == (1, 5)
    s.ok(c.claim_controller(s.rid(), 1, 5))                      # same node and term: accepted again
    s.fails(c.claim_controller(s.rid(), 2, 5), E.STALE_CONTROLLER_EPOCH, "not newer")
    s.fails(c.claim_controller(s.rid(), 2, 4), E.STALE_CONTROLLER_EPOCH)
    s.ok(c.claim_controller(s.rid(), 2, 6))
    assert (s.image.controller_id, s.image.controller_epoch) == (2, 6)


def test_claim_controller_must_carry_its_term_as_controller_epoch():
    s = Script()
    command = c.claim_controller(s.rid(), 1, 5)
    command.controller_epoch = 4
    s.fails(command, E.INVALID_REQUEST, "differs from the claimed term")


def test_stale_and_future_controller_epochs_are_rejected_and_not_remembered():
    s = Script()
    s.claim(term=EPOCH)
    stale = c.noop("same-id", EPOCH - 1)
    s.fails(stale, E.STALE_CONTROLLER_EPOCH, "stale")
    s.fails(c.noop(s.rid(), EPOCH + 1), E.NOT_CONTROLLER, "has not claimed")
    # The rejection of the proposer is not remembered: the current controller may reuse the id.
    result = s.ok(c.noop("same-id", EPOCH))
    assert result.offset == s.offset


def test_duplicate_request_id_returns_the_first_result_and_changes_nothing():
    """A proposer may retry a command with an unknown outcome (pysyncobj defect: timed-out calls
    may still be applied)."""
    s = Script()
    s.cluster(1)
    epoch = s.image.brokers[1].broker_epoch
    first = s.ok(c.allocate_producer_ids("alloc-1", EPOCH, 1, epoch))
    image_after_first = s.image
    again = s.ok(c.allocate_producer_ids("alloc-1", EPOCH, 1, epoch))
    assert again == first
    assert again.offset == first.offset < s.offset
    assert s.image.next_producer_id == image_after_first.next_producer_id == 1000
    # Errors are remembered too: the same id answers the same error even if it would succeed now.
    s.fails(c.delete_topic("del-1", EPOCH, b"x" * 16), E.UNKNOWN_TOPIC_ID)
    s.topic("t", [([1], [1], 1)], topic_id=b"x" * 16)
    again_error = s.apply(c.delete_topic("del-1", EPOCH, b"x" * 16))
    assert again_error.error_code == E.UNKNOWN_TOPIC_ID
    assert s.image.topic("t") is not None


def test_invalid_request_ids_are_refused():
    s = Script()
    s.claim()
    s.fails(c.noop("", EPOCH), E.INVALID_REQUEST, "request_id")
    s.fails(c.noop("x" * 201, EPOCH), E.INVALID_REQUEST, "request_id")


def test_empty_and_undecodable_commands_give_invalid_request():
    s = Script()
    s.claim()
    s.fails(metadata_pb2.MetadataCommand(request_id=s.rid(), controller_epoch=EPOCH), E.INVALID_REQUEST, "no body")
    image, result = state_machine.apply_bytes(s.image, b"\xff\xff\xff", s.offset + 1)
    assert result.error_code == E.INVALID_REQUEST
    assert "undecodable" in result.error_message
    assert image.offset == s.offset + 1
    assert image.brokers == s.image.brokers


def test_init_cluster_sets_the_id_once():
    s = Script()
    s.claim()
    s.ok(c.init_cluster(s.rid(), EPOCH, "cluster-A"))
    s.ok(c.init_cluster(s.rid(), EPOCH, "cluster-A"))
    s.fails(c.init_cluster(s.rid(), EPOCH, "cluster-B"), E.INVALID_REQUEST, "already")
    s.fails(c.init_cluster(s.rid(), EPOCH, "bad id!"), E.INVALID_REQUEST)
    assert s.image.cluster_id == "cluster-A"


def test_register_broker_epoch_is_the_offset_and_new_brokers_start_fenced():
    """KRaft: broker epoch = offset of the registration record; brokers register fenced."""
    s = Script(offset_step=10)
    s.claim()
    result = s.ok(c.register_broker(s.rid(), EPOCH, 4, b"\x01" * 16, "h4", 9094, "rack-a"))
    assert result.broker_epoch == s.offset
    broker = s.image.brokers[4]
    assert (broker.broker_epoch, broker.is_fenced, broker.in_controlled_shutdown) == (s.offset, True, False)
    assert (broker.address, broker.rack) == ("h4:9094", "rack-a")
    assert s.image.active_broker_ids() == []


def test_reregistering_the_same_incarnation_is_idempotent_and_a_new_incarnation_replaces_it():
    s = Script()
    s.claim()
    first = s.ok(c.register_broker(s.rid(), EPOCH, 1, b"\x01" * 16, "h", 9091))
    s.ok(c.unfence_broker(s.rid(), EPOCH, 1, first.broker_epoch))
    s.ok(c.begin_controlled_shutdown(s.rid(), EPOCH, 1, first.broker_epoch))
    same = s.ok(c.register_broker(s.rid(), EPOCH, 1, b"\x01" * 16, "h", 9091))
    assert same.broker_epoch == first.broker_epoch
    assert s.image.brokers[1].is_fenced is False                # nothing changed
    s.fails(c.register_broker(s.rid(), EPOCH, 1, b"\x01" * 16, "other", 9091), E.INVALID_REQUEST, "already registered")
    second = s.ok(c.register_broker(s.rid(), EPOCH, 1, b"\x02" * 16, "h2", 9092))
    assert second.broker_epoch == s.offset > first.broker_epoch
    broker = s.image.brokers[1]
    assert (broker.incarnation_id, broker.is_fenced, broker.in_controlled_shutdown) == (b"\x02" * 16, True, False)
    s.fails(c.fence_broker(s.rid(), EPOCH, 1, first.broker_epoch), E.STALE_BROKER_EPOCH)


@pytest.mark.parametrize(
    "node_id, incarnation, host, port, rack",
    [(-1, b"i" * 16, "h", 1, ""), (1, b"short", "h", 1, ""), (1, b"i" * 16, "", 1, ""), (1, b"i" * 16, "h", 0, ""),
     (1, b"i" * 16, "h", 65536, ""), (1, b"i" * 16, "h", 1, "r" * 256)],
)
def test_register_broker_validates_its_fields(node_id, incarnation, host, port, rack):
    s = Script()
    s.claim()
    s.fails(c.register_broker(s.rid(), EPOCH, node_id, incarnation, host, port, rack), E.INVALID_REQUEST)


def test_fence_unfence_and_controlled_shutdown_check_the_broker_epoch():
    s = Script()
    s.claim()
    epoch = s.broker(1, unfence=False)
    s.fails(c.unfence_broker(s.rid(), EPOCH, 1, epoch + 1), E.STALE_BROKER_EPOCH, "has epoch")
    s.fails(c.unfence_broker(s.rid(), EPOCH, 2, epoch), E.BROKER_NOT_AVAILABLE, "not registered")
    s.ok(c.unfence_broker(s.rid(), EPOCH, 1, epoch))
    assert s.image.active_broker_ids() == [1]
    s.ok(c.fence_broker(s.rid(), EPOCH, 1, epoch))
    s.ok(c.fence_broker(s.rid(), EPOCH, 1, epoch))               # idempotent
    assert s.image.brokers[1].is_fenced
    s.ok(c.begin_controlled_shutdown(s.rid(), EPOCH, 1, epoch))
    assert s.image.brokers[1].in_controlled_shutdown
    s.fails(c.unfence_broker(s.rid(), EPOCH, 1, epoch), E.INVALID_REQUEST, "controlled shutdown")


def test_create_topic_stores_assignment_leader_isr_and_configs():
    s = Script()
    s.cluster(3)
    topic_id = s.topic("orders", [([1, 2, 3], [1, 2, 3], 1), ([2, 3, 1], [2, 3], 2)], {"retention.ms": "1000"})
    topic = s.image.topic("orders")
    assert topic is not None and s.image.topic_by_id(topic_id) is topic
    assert topic.replication_factor == 3
    p0, p1 = topic.partitions
    assert (p0.replicas, p0.isr, p0.leader, p0.leader_epoch, p0.partition_epoch) == ((1, 2, 3), (1, 2, 3), 1, 0, 0)
    assert (p1.partition, p1.replicas, p1.isr, p1.leader) == (1, (2, 3, 1), (2, 3), 2)
    config = s.image.topic_config("orders")
    assert config.retention_ms == 1000
    assert config.cleanup_policy == "delete"                    # default merged in
    assert s.image.partition_count == 2
    assert s.image.partition("orders", 1) is p1
    assert s.image.partition("orders", 2) is None
    result = s.apply(c.create_topic(s.rid(), EPOCH, b"\x09" * 16, "other", [([1], [1], 1)]))
    assert result.WhichOneof("payload") == "topic_id" and result.topic_id == b"\x09" * 16


@pytest.mark.parametrize(
    "name, fragment",
    [("", "empty"), ("a" * 250, "limit is 249"), (".", "cannot be"), ("..", "cannot be"), ("a b", "may contain"),
     ("é", "may contain"), ("a/b", "may contain")],
)
def test_create_topic_rejects_names_kafka_rejects(name, fragment):
    s = Script()
    s.cluster(1)
    s.fails(c.create_topic(s.rid(), EPOCH, b"\x01" * 16, name, [([1], [1], 1)]), E.INVALID_TOPIC, fragment)


def test_topic_names_colliding_on_dot_and_underscore_are_rejected_as_kafka():
    s = Script()
    s.cluster(1)
    s.topic("a.b", [([1], [1], 1)])
    s.fails(c.create_topic(s.rid(), EPOCH, b"\x02" * 16, "a_b", [([1], [1], 1)]), E.INVALID_TOPIC, "collides")
    s.fails(c.create_topic(s.rid(), EPOCH, b"\x03" * 16, "a.b", [([1], [1], 1)]), E.TOPIC_ALREADY_EXISTS)
    s.topic("x" * 249, [([1], [1], 1)])                          # the longest valid name


@pytest.mark.parametrize(
    "assignments, code, fragment",
    [
        ([], E.INVALID_PARTITIONS, "at least 1"),
        ([([], [], -1)], E.INVALID_REPLICATION_FACTOR, "at least 1"),
        ([([1, 1], [1], 1)], E.INVALID_REPLICA_ASSIGNMENT, "duplicate replica"),
        ([([1, 9], [1], 1)], E.INVALID_REPLICA_ASSIGNMENT, "broker 9 is not registered"),
        ([([1, 2], [1, 2], 1), ([1], [1], 1)], E.INVALID_REPLICA_ASSIGNMENT, "replication factor is 2"),
        ([([1, 2], [1, 3], 1)], E.INVALID_REPLICA_ASSIGNMENT, "ISR member 3 is not a replica"),
        ([([1, 2], [1, 1], 1)], E.INVALID_REPLICA_ASSIGNMENT, "duplicate replica in ISR"),
        ([([1, 2], [2], 1)], E.INVALID_REPLICA_ASSIGNMENT, "not in the ISR"),
        ([([1, 4], [4], 4)], E.INVALID_REPLICA_ASSIGNMENT, "fenced"),
    ],
)
def test_create_topic_validates_the_assignment(assignments, code, fragment):
    s = Script()
    s.cluster(3)
    s.broker(4, unfence=False)
    s.fails(c.create_topic(s.rid(), EPOCH, b"\x01" * 16, "t", assignments), code, fragment)


def test_create_topic_checks_each_distinct_assignment_and_names_the_first_bad_partition():
    s = Script()
    s.cluster(3)
    s.broker(4, unfence=False)
    good = [([1, 2, 3], [1, 2, 3], 1), ([2, 3, 1], [2, 3, 1], 2)] * 500
    s.fails(
        c.create_topic(s.rid(), EPOCH, b"\x01" * 16, "t", [*good, ([1, 2, 4], [1, 2, 4], 4), ([1, 2, 9], [1], 1)]),
        E.INVALID_REPLICA_ASSIGNMENT,
        "partition 1000: broker 4 is fenced",
    )
    s.fails(c.create_topic(s.rid(), EPOCH, b"\x01" * 16, "t", [*good, ([1, 2], [1, 2], 1)]), E.INVALID_REPLICA_ASSIGNMENT,
            "partition 1000: has 2 replicas but the topic's replication factor is 3")
    s.topic("t", good)
    assert [s.image.partition("t", n).leader for n in (0, 1, 998, 999)] == [1, 2, 1, 2]


def test_create_topic_allows_an_offline_partition_without_leader():
    s = Script()
    s.cluster(2)
    s.topic("t", [([1, 2], [], NO_LEADER)])
    assert s.image.partition("t", 0).leader == NO_LEADER


def test_create_topic_validates_ids_and_configs():
    s = Script()
    s.cluster(1)
    one = [([1], [1], 1)]
    s.fails(c.create_topic(s.rid(), EPOCH, b"short", "t", one), E.INVALID_REQUEST, "16 bytes")
    s.fails(c.create_topic(s.rid(), EPOCH, bytes(16), "t", one), E.INVALID_REQUEST, "all zero")
    s.fails(c.create_topic(s.rid(), EPOCH, b"\x01" * 16, "t", one, {"retention.ms": "soon"}), E.INVALID_CONFIG, "retention.ms")
    s.fails(c.create_topic(s.rid(), EPOCH, b"\x01" * 16, "t", one, {"num.partitions": "3"}), E.INVALID_CONFIG, "cannot be set on a topic")
    s.fails(c.create_topic(s.rid(), EPOCH, b"\x01" * 16, "t", one, {"no.such.key": "3"}), E.INVALID_CONFIG, "unknown")
    duplicate = c.create_topic(s.rid(), EPOCH, b"\x01" * 16, "t", one)
    duplicate.create_topic.configs.add(key="retention.ms", value="1")
    duplicate.create_topic.configs.add(key="retention.ms", value="2")
    s.fails(duplicate, E.INVALID_CONFIG, "more than once")
    s.topic("t", one, topic_id=b"\x01" * 16)
    s.fails(c.create_topic(s.rid(), EPOCH, b"\x01" * 16, "u", one), E.INVALID_REQUEST, "already in use")


def test_delete_topic_by_id():
    s = Script()
    s.cluster(1)
    topic_id = s.topic("t", [([1], [1], 1)])
    s.ok(c.delete_topic(s.rid(), EPOCH, topic_id))
    assert s.image.topic("t") is None and s.image.topics_by_id == {}
    s.fails(c.delete_topic(s.rid(), EPOCH, topic_id), E.UNKNOWN_TOPIC_ID)
    s.topic("t", [([1], [1], 1)], topic_id=b"\x05" * 16)         # the name is free again


def test_create_partitions_only_increases_and_keeps_the_replication_factor():
    s = Script()
    s.cluster(3)
    topic_id = s.topic("t", [([1, 2], [1, 2], 1)])
    s.fails(c.create_partitions(s.rid(), EPOCH, topic_id, 1, []), E.INVALID_PARTITIONS, "can only increase")
    s.fails(c.create_partitions(s.rid(), EPOCH, topic_id, 3, [([2, 3], [2, 3], 2)]), E.INVALID_PARTITIONS, "1 new")
    s.fails(c.create_partitions(s.rid(), EPOCH, topic_id, 2, [([3], [3], 3)]), E.INVALID_REPLICA_ASSIGNMENT, "factor is 2")
    s.fails(c.create_partitions(s.rid(), EPOCH, b"\x07" * 16, 2, [([3], [3], 3)]), E.UNKNOWN_TOPIC_ID)
    s.ok(c.create_partitions(s.rid(), EPOCH, topic_id, 3, [([2, 3], [2, 3], 2), ([3, 1], [3], 3)]))
    partitions = s.image.topic("t").partitions
    assert [p.partition for p in partitions] == [0, 1, 2]
    assert partitions[2].isr == (3,)


def _two_replica_topic(s: Script) -> bytes:
    s.cluster(3)
    return s.topic("t", [([1, 2], [1, 2], 1)])


def test_change_partition_is_compare_and_set_on_partition_epoch():
    s = Script()
    topic_id = _two_replica_topic(s)
    result = s.ok(c.change_partition(s.rid(), EPOCH, topic_id, 0, 0, isr=[1]))
    p = s.image.partition("t", 0)
    assert (p.isr, p.leader, p.leader_epoch, p.partition_epoch) == ((1,), 1, 0, 1)
    assert result.partition.partition_epoch == 1 and list(result.partition.isr) == [1]
    s.fails(c.change_partition(s.rid(), EPOCH, topic_id, 0, 0, isr=[1, 2]), E.INVALID_UPDATE_VERSION, "epoch is 1")
    s.ok(c.change_partition(s.rid(), EPOCH, topic_id, 0, 1, isr=[1, 2]))
    assert s.image.partition("t", 0).partition_epoch == 2


def test_leader_epoch_increments_on_every_leader_change_including_to_none():
    """Kafka: leader epoch bumps whenever the leader changes; partition epoch on every change."""
    s = Script()
    topic_id = _two_replica_topic(s)
    s.ok(c.change_partition(s.rid(), EPOCH, topic_id, 0, 0, leader=2))
    p = s.image.partition("t", 0)
    assert (p.leader, p.leader_epoch, p.partition_epoch) == (2, 1, 1)
    s.ok(c.change_partition(s.rid(), EPOCH, topic_id, 0, 1, leader=NO_LEADER, isr=[2]))
    p = s.image.partition("t", 0)
    assert (p.leader, p.leader_epoch, p.partition_epoch, p.isr) == (NO_LEADER, 2, 2, (2,))


def test_a_change_that_changes_nothing_bumps_no_epoch():
    s = Script()
    topic_id = _two_replica_topic(s)
    result = s.ok(c.change_partition(s.rid(), EPOCH, topic_id, 0, 0, leader=1, isr=[1, 2]))
    assert result.partition.partition_epoch == 0
    assert s.image.partition("t", 0).partition_epoch == 0


def test_change_partition_validates_leader_and_isr():
    s = Script()
    topic_id = _two_replica_topic(s)
    s.broker(4, unfence=False)
    s.fails(c.change_partition(s.rid(), EPOCH, topic_id, 0, 0, leader=3), E.INVALID_REQUEST, "not in the ISR")
    s.fails(c.change_partition(s.rid(), EPOCH, topic_id, 0, 0, isr=[2]), E.INVALID_REQUEST, "leader 1 is not in the ISR")
    s.fails(c.change_partition(s.rid(), EPOCH, topic_id, 0, 0, isr=[1, 3]), E.INVALID_REQUEST, "not a replica")
    s.fails(c.change_partition(s.rid(), EPOCH, topic_id, 0, 0, leader=-2), E.INVALID_REQUEST)
    s.fails(c.change_partition(s.rid(), EPOCH, topic_id, 1, 0, leader=1), E.UNKNOWN_TOPIC, "no partition 1")
    s.fails(c.change_partition(s.rid(), EPOCH, b"\x00" * 15 + b"\x01", 0, 0, leader=1), E.UNKNOWN_TOPIC_ID)
    s.fails(
        c.change_partition(s.rid(), EPOCH, topic_id, 0, 0, replicas=[1, 4], isr=[1, 4], leader=4),
        E.INVALID_REQUEST,
        "fenced",
    )


def test_unclean_leader_may_come_from_outside_the_isr_and_starts_a_new_isr():
    s = Script()
    topic_id = _two_replica_topic(s)
    s.ok(c.change_partition(s.rid(), EPOCH, topic_id, 0, 0, leader=NO_LEADER, isr=[1]))
    s.fails(c.change_partition(s.rid(), EPOCH, topic_id, 0, 1, leader=2), E.INVALID_REQUEST, "not in the ISR")
    s.ok(c.change_partition(s.rid(), EPOCH, topic_id, 0, 1, leader=2, is_unclean=True))
    p = s.image.partition("t", 0)
    assert (p.leader, p.isr, p.leader_epoch) == (2, (2,), 2)


def test_reassignment_sets_adding_and_removing_and_completes_with_change_partition():
    """Kafka: during a move replicas = target + (original - target); adding/removing are the sets."""
    s = Script()
    s.cluster(4)
    topic_id = s.topic("t", [([1, 2, 3], [1, 2, 3], 1)])
    s.ok(c.reassign_partition(s.rid(), EPOCH, topic_id, 0, [2, 3, 4]))
    p = s.image.partition("t", 0)
    assert (p.replicas, p.adding_replicas, p.removing_replicas) == ((2, 3, 4, 1), (4,), (1,))
    assert (p.leader, p.leader_epoch, p.partition_epoch) == (1, 0, 1)
    assert p.target_replicas == (2, 3, 4)
    assert p.original_replicas == (2, 3, 1)                     # the original set, in the merged order (as Kafka)
    assert s.image.topic("t").replication_factor == 3
    # The new replica catches up and joins the ISR; then the controller completes the move.
    s.ok(c.change_partition(s.rid(), EPOCH, topic_id, 0, 1, isr=[1, 2, 3, 4]))
    s.ok(c.change_partition(s.rid(), EPOCH, topic_id, 0, 2, replicas=[2, 3, 4], isr=[2, 3, 4], leader=2))
    p = s.image.partition("t", 0)
    assert (p.replicas, p.isr, p.leader, p.adding_replicas, p.removing_replicas) == ((2, 3, 4), (2, 3, 4), 2, (), ())
    assert (p.leader_epoch, p.partition_epoch) == (1, 3)


def test_removing_a_replica_bumps_the_leader_epoch_even_when_the_leader_stays():
    s = Script()
    s.cluster(3)
    topic_id = s.topic("t", [([1, 2, 3], [1, 2, 3], 1)])
    s.ok(c.change_partition(s.rid(), EPOCH, topic_id, 0, 0, replicas=[1, 2], isr=[1, 2]))
    p = s.image.partition("t", 0)
    assert (p.leader, p.leader_epoch) == (1, 1)


def test_cancelling_a_reassignment_restores_the_original_replicas_and_reelects_if_needed():
    s = Script()
    s.cluster(4)
    topic_id = s.topic("t", [([1, 2], [1, 2], 1)])
    s.fails(c.reassign_partition(s.rid(), EPOCH, topic_id, 0, []), E.NO_REASSIGNMENT_IN_PROGRESS)
    s.ok(c.reassign_partition(s.rid(), EPOCH, topic_id, 0, [3, 4]))
    s.ok(c.change_partition(s.rid(), EPOCH, topic_id, 0, 1, isr=[1, 2, 3], leader=3))
    s.ok(c.reassign_partition(s.rid(), EPOCH, topic_id, 0, []))
    p = s.image.partition("t", 0)
    assert (p.replicas, p.isr, p.adding_replicas, p.removing_replicas) == ((1, 2), (1, 2), (), ())
    assert p.leader == 1                                        # 3 left: first in-ISR unfenced replica
    assert p.leader_epoch == 2


def test_reassign_validates_targets():
    s = Script()
    topic_id = _two_replica_topic(s)
    s.fails(c.reassign_partition(s.rid(), EPOCH, topic_id, 0, [1, 1]), E.INVALID_REPLICA_ASSIGNMENT, "duplicate")
    s.fails(c.reassign_partition(s.rid(), EPOCH, topic_id, 0, [1, 9]), E.INVALID_REPLICA_ASSIGNMENT, "not registered")
    s.fails(c.reassign_partition(s.rid(), EPOCH, topic_id, 5, [1]), E.UNKNOWN_TOPIC)
    result = s.ok(c.reassign_partition(s.rid(), EPOCH, topic_id, 0, [1, 2]))      # already there
    assert result.partition.partition_epoch == 0


def test_alter_configs_on_cluster_broker_and_topic_with_merged_typed_views():
    s = Script()
    s.cluster(2)
    topic_id = s.topic("t", [([1], [1], 1)], {"min.insync.replicas": "2"})
    s.ok(c.alter_configs(s.rid(), EPOCH, c.cluster_resource(), {"retention.ms": "5000", "num.partitions": "6"}))
    s.ok(c.alter_configs(s.rid(), EPOCH, c.broker_resource(2), {"num.partitions": "9"}))
    s.ok(c.alter_configs(s.rid(), EPOCH, c.topic_resource(topic_name="t"), {"cleanup.policy": "compact"}))
    config = s.image.topic_config(topic_id)
    assert (config.retention_ms, config.min_insync_replicas, config.cleanup_policy) == (5000, 2, "compact")
    assert s.image.broker_config(1).num_partitions == 6
    assert s.image.broker_config(2).num_partitions == 9
    assert s.image.broker_config(3).broker_session_timeout_ms == 6000
    s.ok(c.alter_configs(s.rid(), EPOCH, c.topic_resource(topic_id=topic_id), delete_keys=["min.insync.replicas"]))
    s.ok(c.alter_configs(s.rid(), EPOCH, c.broker_resource(2), delete_keys=["num.partitions"]))
    assert s.image.topic_config("t").min_insync_replicas == 1
    assert 2 not in s.image.broker_configs
    assert s.image.topic_config("missing") is None


def test_group_configs_are_per_group_with_the_cluster_value_as_default():
    """Goal: the GROUP config scope (Kafka 4, KIP-848): lag.alert.seconds set on one group, the
    cluster value is every other group's default, deleting the last key forgets the group."""
    s = Script()
    s.cluster(1)
    assert s.image.group_config("billing").lag_alert_seconds == 0.0
    s.ok(c.alter_configs(s.rid(), EPOCH, c.cluster_resource(), {"lag.alert.seconds": "300"}))
    s.ok(c.alter_configs(s.rid(), EPOCH, c.group_resource("billing"), {"lag.alert.seconds": "60"}))
    assert s.image.group_config("billing").lag_alert_seconds == 60.0
    assert s.image.group_config("shipping").lag_alert_seconds == 300.0
    assert dict(s.image.group_configs) == {"billing": {"lag.alert.seconds": "60"}}
    s.ok(c.alter_configs(s.rid(), EPOCH, c.group_resource("billing"), delete_keys=["lag.alert.seconds"]))
    assert "billing" not in s.image.group_configs
    assert s.image.group_config("billing").lag_alert_seconds == 300.0


@pytest.mark.parametrize(
    "resource, to_set, to_delete, code, fragment",
    [
        (c.cluster_resource(), {"retention.ms": "-2"}, [], E.INVALID_CONFIG, "must be >= -1"),
        (c.cluster_resource(), {"unclean.leader.election.enable": "yes"}, [], E.INVALID_CONFIG, "true or false"),
        (c.broker_resource(1), {"retention.ms": "1"}, [], E.INVALID_CONFIG, "cannot be set on a broker"),
        (c.broker_resource(1), {"offsets.topic.num.partitions": "3"}, [], E.INVALID_CONFIG, "cannot be set on a broker"),
        (c.topic_resource(topic_name="t"), {"cleanup.policy": "shred"}, [], E.INVALID_CONFIG, "one of delete, compact"),
        (c.topic_resource(topic_name="t"), {"min.cleanable.dirty.ratio": "1.5"}, [], E.INVALID_CONFIG, "between"),
        (c.topic_resource(topic_name="t"), {"segment.bytes": "99999999999"}, [], E.INVALID_CONFIG, "out of range"),
        (c.topic_resource(topic_name="t"), {}, ["no.such"], E.INVALID_CONFIG, "unknown"),
        (c.topic_resource(topic_name="t"), {"retention.ms": "1"}, ["retention.ms"], E.INVALID_REQUEST, "both set and deleted"),
        (c.topic_resource(topic_name="nope"), {"retention.ms": "1"}, [], E.UNKNOWN_TOPIC, "does not exist"),
        (c.topic_resource(topic_id=b"\x03" * 16), {"retention.ms": "1"}, [], E.UNKNOWN_TOPIC_ID, ""),
        (c.topic_resource(topic_id=b"t" + bytes(15), topic_name="u"), {}, [], E.INVALID_REQUEST, "not 'u'"),
        (metadata_pb2.ConfigResource(), {}, [], E.INVALID_REQUEST, "resource type"),
        (c.broker_resource(-1), {}, [], E.INVALID_REQUEST, "negative"),
        (c.group_resource(""), {"lag.alert.seconds": "1"}, [], E.INVALID_REQUEST, "group id is empty"),
        (c.group_resource("g"), {"retention.ms": "1"}, [], E.INVALID_CONFIG, "cannot be set on a group"),
        (c.group_resource("g"), {"lag.alert.seconds": "-1"}, [], E.INVALID_CONFIG, "must be >= 0"),
        (c.broker_resource(1), {"lag.alert.seconds": "5"}, [], E.INVALID_CONFIG, "cannot be set on a broker"),
    ],
)
def test_alter_configs_rejects_invalid_keys_values_and_resources(resource, to_set, to_delete, code, fragment):
    s = Script()
    s.cluster(1)
    s.topic("t", [([1], [1], 1)])
    s.fails(c.alter_configs(s.rid(), EPOCH, resource, to_set, to_delete), code, fragment)


def test_allocate_producer_ids_hands_out_consecutive_blocks_to_current_brokers():
    s = Script()
    s.cluster(2)
    first = s.ok(c.allocate_producer_ids(s.rid(), EPOCH, 1, s.image.brokers[1].broker_epoch))
    second = s.ok(c.allocate_producer_ids(s.rid(), EPOCH, 2, s.image.brokers[2].broker_epoch))
    assert (first.producer_ids.broker_id, first.producer_ids.first_producer_id, first.producer_ids.size) == (1, 0, 1000)
    assert second.producer_ids.first_producer_id == 1000
    assert s.image.next_producer_id == 2000
    s.fails(c.allocate_producer_ids(s.rid(), EPOCH, 1, 12345), E.STALE_BROKER_EPOCH)
    s.fails(c.allocate_producer_ids(s.rid(), EPOCH, 7, 1), E.BROKER_NOT_AVAILABLE)


def test_a_bug_in_a_handler_gives_unknown_server_error_and_leaves_the_state_unchanged(monkeypatch, caplog):
    """pysyncobj retries a raising @replicated method every tick forever; apply must not raise."""
    s = Script()
    s.cluster(1)

    def broken(image, command, offset, result):
        raise KeyError("a bug")

    monkeypatch.setitem(state_machine._HANDLERS, "create_topic", broken)
    before = s.image
    with caplog.at_level(logging.ERROR, logger="freshet.metadata.state_machine"):
        result = s.apply(c.create_topic("buggy", EPOCH, b"\x01" * 16, "t", [([1], [1], 1)]))
    assert result.error_code == E.UNKNOWN_SERVER_ERROR
    assert "a bug" not in result.error_message                 # the message is deterministic
    assert "bug applying metadata command" in caplog.text
    assert s.image.topics_by_id == before.topics_by_id
    assert s.image.request_result("buggy") == result            # remembered: a retry answers the same
    s.ok(c.noop(s.rid(), EPOCH))                                # and the machine keeps going


def test_apply_requires_an_advancing_offset():
    with pytest.raises(AssertionError):
        state_machine.apply(EMPTY_IMAGE, c.noop("x", 1), 0)


def test_replaying_the_log_from_any_prefix_snapshot_reaches_the_same_image():
    """A broker that replays the same commands from a snapshot reaches an identical image."""
    s = Script(offset_step=3)
    s.cluster(3)
    topic_id = s.topic("t", [([1, 2], [1, 2], 1)])
    s.ok(c.change_partition(s.rid(), EPOCH, topic_id, 0, 0, leader=2))
    s.fails(c.change_partition(s.rid(), EPOCH, topic_id, 0, 0, leader=1), E.INVALID_UPDATE_VERSION)
    s.ok(c.noop("dup", EPOCH))
    s.ok(c.noop("dup", EPOCH))
    for cut in range(len(s.log) + 1):
        start = EMPTY_IMAGE if cut == 0 else state_machine.replay(EMPTY_IMAGE, s.log[:cut])
        assert state_machine.replay(start, s.log[cut:]) == s.image


def test_unchanged_topics_and_brokers_are_shared_between_images():
    """Structural sharing: an ISR change copies one partition tuple, not the other topics."""
    s = Script()
    s.cluster(2)
    ids = [s.topic(f"t{i}", [([1, 2], [1, 2], 1)] * 4) for i in range(20)]
    before = s.image
    s.ok(c.change_partition(s.rid(), EPOCH, ids[0], 2, 0, isr=[1]))
    after = s.image
    assert all(after.topics_by_id[t] is before.topics_by_id[t] for t in ids[1:])
    assert after.topics_by_id[ids[0]].partitions[1] is before.topics_by_id[ids[0]].partitions[1]
    assert after.brokers is before.brokers
    assert dataclasses.replace(before, offset=after.offset) != after


def test_atomic_batch_applies_every_inner_command_at_one_offset():
    """Goal: fencing a broker and moving its leaderships is one step. Method: a batch of FenceBroker
    plus a ChangePartition; both take effect at the batch's offset and the result lists both."""
    s = Script()
    s.cluster(3)
    topic_id = s.topic("t", [([1, 2], [1, 2], 1)])
    epoch = s.image.brokers[1].broker_epoch
    result = s.ok(
        c.atomic_batch(
            s.rid(),
            EPOCH,
            [
                c.fence_broker(*c.INNER, node_id=1, broker_epoch=epoch),
                c.change_partition(*c.INNER, topic_id=topic_id, partition=0, expected_partition_epoch=0, leader=2, isr=[2]),
            ],
        )
    )
    assert s.image.brokers[1].is_fenced
    partition = s.image.partition("t", 0)
    assert (partition.leader, partition.isr, partition.leader_epoch) == (2, (2,), 1)
    assert [r.WhichOneof("payload") for r in result.batch.results] == [None, None], "no partition states kept"
    assert all(r.offset == s.offset for r in result.batch.results)


def test_atomic_batch_is_all_or_nothing_and_names_the_failing_command():
    """Goal: a rejected inner command leaves no trace of the others. Method: a valid FenceBroker
    followed by a stale ChangePartition; Script.fails checks the whole state is unchanged."""
    s = Script()
    s.cluster(3)
    topic_id = s.topic("t", [([1, 2], [1, 2], 1)])
    epoch = s.image.brokers[1].broker_epoch
    batch = c.atomic_batch(
        s.rid(),
        EPOCH,
        [
            c.fence_broker(*c.INNER, node_id=1, broker_epoch=epoch),
            c.change_partition(*c.INNER, topic_id=topic_id, partition=0, expected_partition_epoch=5, leader=2),
        ],
    )
    result = s.fails(batch, E.INVALID_UPDATE_VERSION, "command 1 of the batch (change_partition)")
    assert not result.HasField("batch")
    assert not s.image.brokers[1].is_fenced


def test_atomic_batch_rejects_claims_nesting_inner_ids_and_emptiness():
    s = Script()
    s.cluster(1)
    fence = c.fence_broker(*c.INNER, node_id=1, broker_epoch=s.image.brokers[1].broker_epoch)
    s.fails(c.atomic_batch(s.rid(), EPOCH, []), E.INVALID_REQUEST, "at least one")
    nested = c.atomic_batch(*c.INNER, [fence])
    s.fails(c.atomic_batch(s.rid(), EPOCH, [nested]), E.INVALID_REQUEST, "not allowed in a batch")
    claim = c.claim_controller("", 1, EPOCH + 1)
    claim.controller_epoch = 0
    s.fails(c.atomic_batch(s.rid(), EPOCH, [claim]), E.INVALID_REQUEST, "not allowed in a batch")
    with_id = c.fence_broker("inner-id", 0, 1, s.image.brokers[1].broker_epoch)
    batch = c.atomic_batch(s.rid(), EPOCH, [fence])
    batch.atomic_batch.commands.append(with_id)
    s.fails(batch, E.INVALID_REQUEST, "its own request id")
    s.fails(c.atomic_batch(s.rid(), EPOCH - 1, [fence]), E.STALE_CONTROLLER_EPOCH)
    assert not s.image.brokers[1].is_fenced


def test_atomic_batch_is_deduplicated_as_one_request():
    s = Script()
    s.cluster(2)
    epoch = s.image.brokers[2].broker_epoch
    batch = c.atomic_batch("batch-1", EPOCH, [c.fence_broker(*c.INNER, node_id=2, broker_epoch=epoch)])
    first = s.ok(batch)
    s.ok(c.unfence_broker(s.rid(), EPOCH, 2, epoch))
    again = s.ok(batch)
    assert again == first
    assert not s.image.brokers[2].is_fenced, "the duplicate must not fence again"


def test_a_batch_of_partition_changes_equals_applying_them_one_by_one():
    """Goal: the grouped apply of consecutive ChangePartitions (one TopicImage per topic) is exactly
    the one-by-one apply. Method: the same changes (two topics, the same partition changed twice,
    a broker fence in between) as one batch and as separate commands on a copy of the state;
    compare snapshots and every inner result."""
    from freshet.metadata import snapshot

    s = Script()
    s.cluster(3)
    a = s.topic("a", [([1, 2, 3], [1, 2, 3], 1)] * 3)
    b = s.topic("b", [([2, 3], [2, 3], 2)] * 2)
    fence_epoch = s.image.brokers[3].broker_epoch
    inner = [
        c.change_partition(*c.INNER, topic_id=a, partition=0, expected_partition_epoch=0, isr=[1, 2]),
        c.change_partition(*c.INNER, topic_id=b, partition=1, expected_partition_epoch=0, leader=3),
        c.change_partition(*c.INNER, topic_id=a, partition=0, expected_partition_epoch=1, leader=2, isr=[2]),
        c.fence_broker(*c.INNER, node_id=3, broker_epoch=fence_epoch),
        c.change_partition(*c.INNER, topic_id=b, partition=1, expected_partition_epoch=1, leader=2, isr=[2]),
        c.change_partition(*c.INNER, topic_id=a, partition=2, expected_partition_epoch=0, replicas=[1, 2], isr=[1, 2]),
    ]
    initial = s.image
    one_by_one = Script(initial, offset_step=1)
    sequential_results = []
    for command in inner:
        command = metadata_pb2.MetadataCommand.FromString(c.encode(command))
        command.request_id = one_by_one.rid() + "-seq"
        command.controller_epoch = EPOCH
        sequential_results.append(one_by_one.ok(command))
    batch = s.ok(c.atomic_batch(s.rid(), EPOCH, inner))
    assert snapshot.encode_snapshot(dataclasses.replace(s.image, offset=0, recent_requests=one_by_one.image.recent_requests)) == (
        snapshot.encode_snapshot(dataclasses.replace(one_by_one.image, offset=0))
    )
    for grouped, single in zip(batch.batch.results, sequential_results, strict=True):
        assert grouped.error_code == single.error_code == E.NONE
        assert grouped.WhichOneof("payload") is None, "partition states are not kept in batch results"
    bad = list(inner)
    bad[4] = c.change_partition(*c.INNER, topic_id=b, partition=1, expected_partition_epoch=0, leader=2)
    Script(initial).fails(c.atomic_batch("bad", EPOCH, bad), E.INVALID_UPDATE_VERSION, "command 4 of the batch")
