"""The replica balancer's planner (metadata/controller/balancer.py): pure, deterministic, minimal.

Goal: decommissioning empties a broker with one move per replica; a new broker gets its share;
racks stay distinct; counts end within the threshold; a balanced cluster (and the result of a
plan) yields no moves; partitions being reassigned are left alone.
Method: images built from scripted commands with Kafka-style placement; moves applied to a copy
of the assignment and the planner run again. Reference: Cruise Control's ReplicaDistributionGoal,
LeaderReplicaDistributionGoal and RackAwareGoal; kafka-reassign-partitions --generate.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest
from freshet.metadata import commands as c
from freshet.metadata import configs, placement
from freshet.metadata.controller import balance_plan, balancer, placement_brokers, plan_topic
from freshet.metadata.errors import ControllerRequestError

from tests.support.metadata_script import EPOCH, E, Script


def _image(racks: dict[int, str], layout: dict[str, list[tuple[int, ...]]], fenced=(), decommissioning=()):
    s = Script()
    s.claim()
    for node_id, rack in sorted(racks.items()):
        s.broker(node_id, rack=rack)
    for name, assignment in sorted(layout.items()):
        s.topic(name, [(list(r), list(r), r[0]) for r in assignment])
    for node_id in fenced:
        s.ok(c.fence_broker(s.rid(), EPOCH, node_id, s.image.brokers[node_id].broker_epoch))
    for node_id in decommissioning:
        s.ok(c.decommission_broker(s.rid(), EPOCH, node_id))
    return s


def _placed(brokers: dict[int, str], partitions: int, factor: int) -> list[tuple[int, ...]]:
    return placement.assign_replicas(sorted(brokers.items()), partitions, factor)


def _apply(layout: dict[str, list[tuple[int, ...]]], moves) -> dict[str, list[tuple[int, ...]]]:
    result = {name: list(assignment) for name, assignment in layout.items()}
    for move in moves:
        assert result[move.topic][move.partition] == move.current_replicas
        result[move.topic][move.partition] = move.target_replicas
    return result


def _counts(layout, brokers) -> tuple[Counter, Counter]:
    replicas, preferred = Counter(dict.fromkeys(brokers, 0)), Counter(dict.fromkeys(brokers, 0))
    for assignment in layout.values():
        for replica_list in assignment:
            replicas.update(replica_list)
            preferred[replica_list[0]] += 1
    return replicas, preferred


def _plan(s: Script, **kwargs):
    eligible = [(b.node_id, b.rack) for b in placement_brokers(s.image)]
    decommissioning = [b.node_id for b in s.image.brokers.values() if b.is_decommissioning]
    return balancer.plan_moves(s.image, eligible, decommissioning, **kwargs)


def _within(counts: Counter, threshold: int) -> bool:
    mean = sum(counts.values()) / len(counts)
    low = min(math.floor(mean), math.ceil(mean * (1 - threshold / 100)))
    high = max(math.ceil(mean), math.floor(mean * (1 + threshold / 100)))
    return all(low <= v <= high for v in counts.values()) or max(counts.values()) - min(counts.values()) <= 1


def test_a_balanced_cluster_yields_no_moves():
    brokers = {1: "", 2: "", 3: "", 4: ""}
    layout = {"a": _placed(brokers, 8, 3), "b": _placed(brokers, 5, 2)}
    assert _plan(_image(brokers, layout)) == []


def test_decommission_empties_the_broker_with_one_move_per_replica():
    brokers = {1: "", 2: "", 3: "", 4: ""}
    layout = {"t": _placed(brokers, 8, 3)}
    s = _image(brokers, layout, decommissioning=[2])
    moves = _plan(s)
    on_two = sum(1 for replicas in layout["t"] if 2 in replicas)
    decommission_moves = [m for m in moves if m.reason == balancer.DECOMMISSION]
    assert len(decommission_moves) == on_two == 6
    assert sum(m.moved_replicas for m in moves) == on_two       # nothing else is copied
    after = _apply(layout, moves)
    replicas, _ = _counts(after, [1, 3, 4])
    assert all(2 not in r for r in after["t"])
    assert sorted(replicas.values()) == [8, 8, 8]
    for move in moves:
        assert len(move.target_replicas) == 3


def test_a_new_broker_gets_its_share_with_the_fewest_moves():
    old = {1: "", 2: "", 3: ""}
    layout = {"t": _placed(old, 12, 3)}
    s = _image({**old, 4: ""}, layout)
    moves = _plan(s)
    after = _apply(layout, moves)
    replicas, preferred = _counts(after, [1, 2, 3, 4])
    assert replicas == Counter({1: 9, 2: 9, 3: 9, 4: 9})
    assert sum(m.moved_replicas for m in moves) == 9               # exactly its share, no more
    assert preferred == Counter({1: 3, 2: 3, 3: 3, 4: 3})
    # Followers move rather than preferred leaders: broker 4 becomes preferred by reordering.
    assert all(m.current_replicas[0] == m.target_replicas[0] or 4 == m.target_replicas[0] for m in moves)


def test_moves_prefer_followers_over_current_leaders():
    old = {1: "", 2: "", 3: ""}
    layout = {"t": _placed(old, 6, 2)}
    s = _image({**old, 4: ""}, layout)
    moves = [m for m in _plan(s) if m.moved_replicas]
    for move in moves:
        (removed,) = set(move.current_replicas) - set(move.target_replicas)
        assert removed != move.current_replicas[0]                # the leader stays


def test_rack_awareness_keeps_replicas_in_distinct_racks():
    racks = {1: "a", 2: "b", 3: "c", 4: "a", 5: "b", 6: "c"}
    layout = {"t": _placed(racks, 12, 3)}
    s = _image(racks, layout, decommissioning=[1])
    moves = _plan(s)
    after = _apply(layout, moves)
    for replicas in after["t"]:
        assert len({racks[r] for r in replicas}) == 3, replicas
        assert 1 not in replicas
    # A new broker in rack a can only take replicas from rack a without losing the spread.
    three = {1: "a", 2: "b", 3: "c"}
    layout = {"t": _placed(three, 6, 3)}
    moves = _plan(_image({**three, 7: "a"}, layout))
    assert moves
    for move in moves:
        assert len({({**three, 7: "a"})[r] for r in move.target_replicas}) == 3
        assert set(move.current_replicas) - set(move.target_replicas) <= {1}


def test_counts_end_within_the_threshold_and_small_skews_inside_it_are_left_alone():
    old = {1: "", 2: "", 3: "", 4: ""}
    layout = {"t": _placed({1: "", 2: "", 3: ""}, 30, 2)}
    s = _image(old, layout)
    for threshold in (0, 10, 50):
        moves = _plan(s, threshold_percentage=threshold)
        replicas, preferred = _counts(_apply(layout, moves), old)
        assert _within(replicas, threshold), (threshold, replicas)
        assert _within(preferred, threshold), (threshold, preferred)
    fewer = len(_plan(s, threshold_percentage=50))
    assert 0 < fewer < len(_plan(s, threshold_percentage=0))
    # 10, 10, 11 replicas: inside 10% of the mean; nothing moves.
    skewed = {"t": [(1,), (2,), (3,)] * 10 + [(3,)]}
    assert _plan(_image({1: "", 2: "", 3: ""}, skewed)) == []


def test_running_the_plan_again_after_its_moves_yields_nothing():
    old = {1: "r1", 2: "r2", 3: "r1", 4: "r2"}
    layout = {"a": _placed({1: "r1", 2: "r2", 3: "r1"}, 9, 2), "b": _placed({1: "r1", 2: "r2"}, 4, 2)}
    s = _image({**old, 5: "r3"}, layout, decommissioning=[3])
    moves = _plan(s)
    assert moves == _plan(s)                                         # deterministic
    after = _apply(layout, moves)
    again = _image({**old, 5: "r3"}, after, decommissioning=[3])
    assert _plan(again) == []


def test_partitions_being_reassigned_and_fenced_brokers_replicas_are_left_alone():
    brokers = {1: "", 2: "", 3: "", 4: ""}
    layout = {"t": _placed(brokers, 4, 3)}
    s = _image(brokers, layout, decommissioning=[4])
    topic = s.image.topic("t")
    busy = next(p for p in topic.partitions if 4 in p.replicas)
    s.ok(c.reassign_partition(s.rid(), EPOCH, topic.topic_id, busy.partition, [1, 2, 3]))
    assert all(m.partition != busy.partition for m in _plan(s))
    # A fenced broker that is not decommissioning keeps its replicas (it may come back).
    s2 = _image(brokers, layout, fenced=[3])
    assert all(3 in m.target_replicas for m in _plan(s2) if 3 in m.current_replicas)


def test_while_a_broker_is_fenced_the_controller_plans_decommission_moves_only():
    old = {1: "", 2: "", 3: ""}
    layout = {"t": _placed(old, 6, 2)}
    s = _image({**old, 4: "", 5: ""}, layout, fenced=[5], decommissioning=[1])
    moves = balance_plan(s.image, 10)
    assert moves and all(m.reason == balancer.DECOMMISSION for m in moves)
    s.ok(c.unfence_broker(s.rid(), EPOCH, 5, s.image.brokers[5].broker_epoch))
    assert any(m.reason == balancer.REPLICA_BALANCE for m in balance_plan(s.image, 10))


def test_generate_style_planning_moves_only_the_given_topics_off_brokers_outside_the_list():
    brokers = {1: "", 2: "", 3: "", 4: ""}
    layout = {"a": _placed(brokers, 4, 2), "b": _placed(brokers, 4, 2)}
    s = _image(brokers, layout)
    moves = balancer.plan_moves(s.image, [(1, ""), (2, ""), (3, "")], decommissioning=[4], topics={"a"})
    assert {m.topic for m in moves} == {"a"}
    after = _apply(layout, moves)
    assert all(4 not in r for r in after["a"])
    assert after["b"] == layout["b"]


def test_placement_of_new_topics_skips_decommissioning_brokers():
    brokers = {1: "", 2: "", 3: "", 4: ""}
    s = _image(brokers, {}, decommissioning=[2])
    plan = plan_topic(s.image, "fresh", 6, 3, [], {}, configs.broker_config({}, {}))
    assert all(2 not in replicas for replicas, _, _ in plan.assignments)


def test_generate_proposes_every_partition_and_refuses_bad_input_clearly():
    brokers = {1: "", 2: "", 3: "", 4: ""}
    layout = {"a": _placed(brokers, 4, 2), "b": _placed(brokers, 2, 3)}
    s = _image(brokers, layout)
    proposal = balancer.generate_reassignment(s.image, ["a"], [1, 2, 3], 10)
    assert [(topic, partition) for topic, partition, _, _ in proposal] == [("a", n) for n in range(4)]
    assert all(4 not in proposed and len(proposed) == 2 for _, _, _, proposed in proposal)
    assert [current for _, _, current, _ in proposal] == layout["a"]
    cases = [
        ((["nope"], [1, 2, 3]), E.UNKNOWN_TOPIC, "topic 'nope' does not exist"),
        ((["a"], [1, 9]), E.BROKER_ID_NOT_REGISTERED, "broker 9 is not registered"),
        ((["b"], [1, 2]), E.INVALID_REPLICATION_FACTOR, "replication factor: 3 larger than available brokers: 2"),
        (([], [1]), E.INVALID_REQUEST, "at least one topic"),
        ((["a"], [1, 1]), E.INVALID_REQUEST, "appears twice"),
    ]
    for (topics, broker_ids), code, fragment in cases:
        with pytest.raises(ControllerRequestError) as raised:
            balancer.generate_reassignment(s.image, topics, broker_ids, 10)
        assert raised.value.error_code == code
        assert fragment in str(raised.value)
