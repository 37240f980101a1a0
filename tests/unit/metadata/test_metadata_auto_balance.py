"""The active controller's replica balancer schedule (metadata/controller/auto_balance.py).

Goal: a new broker or a decommission triggers bounded batches of reassignments, one batch in
flight at a time, none while any partition (a user's) is being reassigned, none when
auto.balance.enable=false; driven to the end, the decommissioned broker is empty and the new one
has its share. Method: a ControllerCore over scripted images and a manual clock; followers
"catch up" by the test writing the full ISR, as the leaders' AlterPartition would.
"""

from __future__ import annotations

import itertools
from collections import Counter

from freshet.metadata import commands as c
from freshet.metadata import placement
from freshet.metadata.clock import ManualClock
from freshet.metadata.controller import ActionKind, ControllerCore, ControllerSettings

from tests.support.metadata_script import EPOCH, Script


def _core(clock: ManualClock) -> ControllerCore:
    counter = itertools.count()
    return ControllerCore(ControllerSettings(node_id=1), EPOCH, clock, new_request_id=lambda: f"ctl-{next(counter)}")


def _heartbeats(core: ControllerCore, s: Script) -> None:
    for node_id, broker in s.image.brokers.items():
        if node_id in core.sessions:
            core.heartbeat(s.image, node_id, broker.broker_epoch, s.image.offset, False)


def _cluster(brokers: int, partitions: int) -> Script:
    s = Script()
    s.cluster(brokers)
    layout = placement.assign_replicas([(n, "") for n in range(1, brokers + 1)], partitions, 3)
    s.topic("t", [(list(r), list(r), r[0]) for r in layout])
    return s


def _catch_up(s: Script) -> None:
    """Every adding replica joins the ISR (what the leader's AlterPartition does in a cluster)."""
    topic = s.image.topic("t")
    for p in topic.partitions:
        if p.is_reassigning and set(p.isr) != set(p.replicas):
            s.ok(c.change_partition(s.rid(), EPOCH, topic.topic_id, p.partition, p.partition_epoch, isr=list(p.replicas)))


def _replica_counts(s: Script) -> Counter:
    return Counter(r for p in s.image.topic("t").partitions for r in p.replicas)


def _drive(core: ControllerCore, s: Script, clock: ManualClock, batch_max: int = 5, rounds: int = 200) -> list[ActionKind]:
    kinds = []
    idle_polls = 0
    for _ in range(rounds):
        _heartbeats(core, s)
        action = core.poll(s.image)
        if action is None:
            if any(p.is_reassigning for p in s.image.topic("t").partitions):
                _catch_up(s)
                continue
            idle_polls += 1
            if idle_polls == 2:                   # the work loop polls again at its next round
                return kinds
            continue
        idle_polls = 0
        if action.kind is ActionKind.BALANCE:
            assert not any(p.is_reassigning for p in s.image.topic("t").partitions)   # one batch in flight
            batch = action.command.atomic_batch.commands
            assert 1 <= len(batch) <= batch_max                                       # the configured bound
        kinds.append(action.kind)
        s.ok(action.command)
        if action.kind is ActionKind.BALANCE:
            # The image records who started each move (what `partition reassign --verify` shows).
            moving = [p for p in s.image.topic("t").partitions if p.is_reassigning]
            assert all(p.is_balancer_move for p in moving)
        clock.advance(10)
    raise AssertionError("the balancer did not settle")


def test_a_new_broker_gets_replicas_in_bounded_batches():
    s = _cluster(3, 12)
    s.ok(c.alter_configs(s.rid(), EPOCH, c.cluster_resource(), {"auto.balance.max.concurrent.moves": "2"}))
    clock = ManualClock()
    core = _core(clock)
    core.activate(s.image)
    assert _drive(core, s, clock).count(ActionKind.BALANCE) == 0      # balanced: nothing
    s.broker(4)
    core.open_session(s.image, 4)
    kinds = _drive(core, s, clock, batch_max=2)
    assert kinds.count(ActionKind.BALANCE) >= 5                       # 9 replicas, 2 per batch
    assert ActionKind.COMPLETE_REASSIGNMENT in kinds
    assert _replica_counts(s) == Counter({1: 9, 2: 9, 3: 9, 4: 9})
    # Once the plan is done, the preferred leaders it chose are elected (not after the 300 s check).
    assert kinds[-1] is ActionKind.REBALANCE
    assert Counter(p.leader for p in s.image.topic("t").partitions) == Counter({1: 3, 2: 3, 3: 3, 4: 3})


def test_decommission_empties_the_broker_and_disabling_stops_new_batches():
    s = _cluster(4, 8)
    clock = ManualClock()
    core = _core(clock)
    core.activate(s.image)
    _drive(core, s, clock)
    s.ok(c.alter_configs(s.rid(), EPOCH, c.cluster_resource(), {"auto.balance.enable": "false"}))
    s.ok(c.decommission_broker(s.rid(), EPOCH, 2))
    _heartbeats(core, s)
    assert core.poll(s.image) is None                                 # switched off: nothing starts
    s.ok(c.alter_configs(s.rid(), EPOCH, c.cluster_resource(), {"auto.balance.enable": "true"}))
    kinds = _drive(core, s, clock)
    assert ActionKind.BALANCE in kinds
    assert _replica_counts(s)[2] == 0
    assert sorted(_replica_counts(s).values()) == [8, 8, 8]


def test_no_batch_starts_while_a_user_reassignment_is_in_progress():
    s = _cluster(3, 6)
    clock = ManualClock()
    core = _core(clock)
    core.activate(s.image)
    s.broker(4)
    core.open_session(s.image, 4)
    topic = s.image.topic("t")
    first = topic.partitions[0]
    s.ok(c.reassign_partition(s.rid(), EPOCH, topic.topic_id, 0, [4, *first.replicas[1:]]))
    assert not s.image.partition("t", 0).is_balancer_move                     # a user's
    for _ in range(5):
        _heartbeats(core, s)
        action = core.poll(s.image)
        assert action is None or action.kind is not ActionKind.BALANCE
        if action is not None:
            s.ok(action.command)
    clock.advance(301_000)
    _heartbeats(core, s)
    assert core.poll(s.image) is None                                 # still waiting for the user's move


def test_restarts_and_failovers_are_not_triggers_but_the_interval_is():
    """A skew that is already there when a controller takes over (pinned assignments, say) waits
    for auto.balance.check.interval.seconds; a broker restart changes no load and triggers
    nothing; an empty broker that appears does."""
    s = Script()
    s.cluster(4)
    s.topic("t", [([1, 2, 3], [1, 2, 3], 1)] + [([2, 3, 1], [2, 3, 1], 2)] * 5)
    clock = ManualClock()
    core = _core(clock)
    core.activate(s.image)
    _heartbeats(core, s)
    assert core.poll(s.image) is None                               # broker 4 is empty, but was already
    s.ok(c.fence_broker(s.rid(), EPOCH, 3, s.image.brokers[3].broker_epoch))
    s.ok(c.register_broker(s.rid(), EPOCH, 3, b"\x33" * 16, "localhost", 9003))
    s.ok(c.unfence_broker(s.rid(), EPOCH, 3, s.image.brokers[3].broker_epoch))
    core.open_session(s.image, 3)
    _heartbeats(core, s)
    action = core.poll(s.image)
    assert action is None or action.kind is not ActionKind.BALANCE    # a restart is not a trigger
    clock.advance(300_000)
    _heartbeats(core, s)
    action = core.poll(s.image)
    assert action is not None and action.kind is ActionKind.BALANCE
