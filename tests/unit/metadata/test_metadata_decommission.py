"""DecommissionBroker / CancelDecommissionBroker in the state machine and the snapshot.

Goal: the decommissioning mark is replicated state: validated (unknown broker, too few brokers
left for a replication factor: Kafka's INVALID_REPLICATION_FACTOR), idempotent, kept when the
broker restarts (a new incarnation registers), and carried byte-deterministically by snapshots.
Method: scripted commands (tests/support/metadata_script.py), then encode/decode round trips.
"""

from __future__ import annotations

from freshet.metadata import commands as c
from freshet.metadata import snapshot, state_machine
from freshet.metadata.image import EMPTY_IMAGE

from tests.support.metadata_script import EPOCH, E, Script


def _four_brokers_with_rf3_topic() -> Script:
    s = Script()
    s.cluster(4)
    s.topic("t", [([1, 2, 3], [1, 2, 3], 1), ([2, 3, 4], [2, 3, 4], 2)])
    return s


def test_decommission_marks_the_broker_and_is_idempotent():
    s = _four_brokers_with_rf3_topic()
    s.ok(c.decommission_broker(s.rid(), EPOCH, 2))
    assert s.image.brokers[2].is_decommissioning
    assert not any(s.image.brokers[n].is_decommissioning for n in (1, 3, 4))
    before = s.image.brokers
    s.ok(c.decommission_broker(s.rid(), EPOCH, 2))
    assert s.image.brokers == before


def test_decommission_of_an_unregistered_broker_fails_naming_it():
    s = _four_brokers_with_rf3_topic()
    s.fails(c.decommission_broker(s.rid(), EPOCH, 9), E.BROKER_ID_NOT_REGISTERED, "broker 9 is not registered")


def test_decommission_refused_when_too_few_brokers_would_remain_for_the_replication_factor():
    s = _four_brokers_with_rf3_topic()
    s.ok(c.decommission_broker(s.rid(), EPOCH, 4))
    result = s.fails(c.decommission_broker(s.rid(), EPOCH, 3), E.INVALID_REPLICATION_FACTOR)
    assert "topic 't' has replication factor 3 but only 2 available brokers would remain" in result.error_message
    assert not s.image.brokers[3].is_decommissioning


def test_fenced_brokers_do_not_count_as_remaining():
    s = _four_brokers_with_rf3_topic()
    s.ok(c.fence_broker(s.rid(), EPOCH, 4, s.image.brokers[4].broker_epoch))
    s.fails(c.decommission_broker(s.rid(), EPOCH, 1), E.INVALID_REPLICATION_FACTOR, "only 2 available brokers")


def test_cancel_clears_the_mark():
    s = _four_brokers_with_rf3_topic()
    s.ok(c.decommission_broker(s.rid(), EPOCH, 2))
    s.ok(c.cancel_decommission_broker(s.rid(), EPOCH, 2))
    assert not s.image.brokers[2].is_decommissioning
    s.fails(c.cancel_decommission_broker(s.rid(), EPOCH, 9), E.BROKER_ID_NOT_REGISTERED, "broker 9")


def test_the_mark_survives_a_new_incarnation_registering():
    s = _four_brokers_with_rf3_topic()
    s.ok(c.decommission_broker(s.rid(), EPOCH, 2))
    s.ok(c.register_broker(s.rid(), EPOCH, 2, b"\x77" * 16, "localhost", 9002))
    broker = s.image.brokers[2]
    assert broker.incarnation_id == b"\x77" * 16
    assert broker.is_fenced
    assert broker.is_decommissioning


def test_snapshot_round_trip_keeps_the_mark_and_is_byte_deterministic():
    s = _four_brokers_with_rf3_topic()
    s.ok(c.decommission_broker(s.rid(), EPOCH, 3))
    data = snapshot.encode_snapshot(s.image)
    decoded = snapshot.decode_snapshot(data)
    assert decoded.brokers[3].is_decommissioning
    assert not decoded.brokers[1].is_decommissioning
    assert decoded.brokers == s.image.brokers
    assert snapshot.encode_snapshot(decoded) == data
    replayed = state_machine.replay(EMPTY_IMAGE, s.log)
    assert snapshot.encode_snapshot(replayed) == data


def test_a_balancer_move_is_recorded_until_it_completes_and_survives_a_snapshot():
    s = _four_brokers_with_rf3_topic()
    topic_id = s.image.topic("t").topic_id
    s.ok(c.reassign_partition(s.rid(), EPOCH, topic_id, 0, [1, 2, 4], by_balancer=True))
    assert s.image.partition("t", 0).is_balancer_move
    decoded = snapshot.decode_snapshot(snapshot.encode_snapshot(s.image))
    assert decoded.partition("t", 0).is_balancer_move
    # A user's reassignment of the same partition takes it over.
    s.ok(c.reassign_partition(s.rid(), EPOCH, topic_id, 0, [1, 4, 3]))
    assert s.image.partition("t", 0).is_reassigning and not s.image.partition("t", 0).is_balancer_move
    s.ok(c.reassign_partition(s.rid(), EPOCH, topic_id, 0, [4, 2, 3], by_balancer=True))
    p = s.image.partition("t", 0)
    s.ok(c.change_partition(s.rid(), EPOCH, topic_id, 0, p.partition_epoch, isr=list(p.replicas)))
    assert s.image.partition("t", 0).is_balancer_move                       # still moving
    p = s.image.partition("t", 0)
    s.ok(c.change_partition(s.rid(), EPOCH, topic_id, 0, p.partition_epoch, replicas=[4, 2, 3], isr=[4, 2, 3], leader=4))
    assert not s.image.partition("t", 0).is_reassigning
    assert not s.image.partition("t", 0).is_balancer_move
