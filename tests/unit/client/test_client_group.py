"""Consumer groups in the SDK against the fake cluster running the real group coordinator
(tests/support/fake_groups.py): subscription, incremental reassignment, commits, failover.

Reference: KIP-848 (incremental reconciliation: members that keep partitions keep consuming)."""

from __future__ import annotations

import re
import threading
import time

import pytest
from freshet.client import Consumer, ConsumerRebalanceListener, TopicPartition
from freshet.client.errors import CommitFailedError, NonEmptyGroupError

from tests.support.waiting import wait_until


class Recorder(ConsumerRebalanceListener):
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, frozenset]] = []
        self.owned: set = set()

    def on_partitions_revoked(self, revoked):
        with self.lock:
            self.events.append(("revoked", frozenset(revoked)))
            self.owned -= revoked

    def on_partitions_assigned(self, assigned):
        with self.lock:
            self.events.append(("assigned", frozenset(assigned)))
            self.owned |= assigned

    def on_partitions_lost(self, lost):
        with self.lock:
            self.events.append(("lost", frozenset(lost)))
            self.owned -= lost


class Worker:
    """A consumer polling in its own thread; records (partition, offset) of what it received."""

    def __init__(self, cluster, group_id, topics, name, **options) -> None:
        self.listener = Recorder()
        self.name = name
        self.consumer = Consumer(
            cluster.bootstrap,
            group_id=group_id,
            client_id=name,
            auto_offset_reset="earliest",
            session_timeout_ms=2000,
            auto_commit_interval_ms=200,
            fetch_max_wait_ms=100,
            **options,
        )
        self.consumer.subscribe(topics, listener=self.listener)
        self.received: list[tuple[int, int, float]] = []
        self.stop = threading.Event()
        self.pause_polling = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            if self.pause_polling.is_set():
                time.sleep(0.05)
                continue
            for record in self.consumer.poll(timeout_ms=100):
                self.received.append((record.partition, record.offset, time.monotonic()))

    def owned(self) -> set:
        with self.listener.lock:
            return set(self.listener.owned)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.consumer.close()


def fill(cluster, topic, partitions, per_partition, start=0):
    for partition in range(partitions):
        cluster.append(topic, partition, [f"{partition}-{n}".encode() for n in range(start, start + per_partition)])


def test_group_splits_partitions_and_a_joining_member_does_not_stop_the_others(cluster, groups):
    """3 members over 6 partitions: each partition owned by exactly one; a 4th joins: members
    that keep partitions are never revoked them and keep receiving records throughout."""
    cluster.create_topic("orders", 6)
    fill(cluster, "orders", 6, 5)
    workers = [Worker(cluster, "g", ["orders"], f"w{i}") for i in range(3)]
    try:
        wait_until(lambda: sorted(len(w.owned()) for w in workers) == [2, 2, 2], what="3 x 2 partitions")
        owned = [tp for w in workers for tp in w.owned()]
        assert sorted(owned) == [TopicPartition("orders", p) for p in range(6)]
        before = {w.name: w.owned() for w in workers}
        newcomer = Worker(cluster, "g", ["orders"], "w3")
        workers.append(newcomer)
        join_s = time.monotonic()
        # Produce continuously while the group rebalances.
        for round_number in range(20):
            fill(cluster, "orders", 6, 1, start=5 + round_number)
            time.sleep(0.05)
        wait_until(lambda: sorted(len(w.owned()) for w in workers) == [1, 1, 2, 2], what="rebalance")
        settle_s = time.monotonic() - join_s
        owned = [tp for w in workers for tp in w.owned()]
        assert sorted(owned) == [TopicPartition("orders", p) for p in range(6)]
        for worker in workers[:3]:
            kept = worker.owned()
            assert kept <= before[worker.name]
            revoked = set().union(*[parts for kind, parts in worker.listener.events if kind != "assigned"] or [set()])
            assert not (revoked & kept), f"{worker.name} was asked to stop consuming partitions it kept"
            # It received records of its kept partitions during the rebalance window too.
            kept_numbers = {tp.partition for tp in kept}
            during = [t for p, _, t in worker.received if p in kept_numbers and join_s <= t <= join_s + settle_s + 0.5]
            assert during, f"{worker.name} got nothing from {kept} while the group rebalanced"
        # Everything is consumed by the group, each record once per owner period (no gaps).
        fill(cluster, "orders", 6, 1, start=25)
        wait_until(
            lambda: {(p, o) for w in workers for p, o, _ in w.received} >= {(p, o) for p in range(6) for o in range(26)},
            what="every record consumed",
        )
        assert settle_s < 5
    finally:
        for worker in workers:
            worker.close()


@pytest.mark.slow
def test_a_member_that_stops_polling_loses_its_partitions_and_commits_never_go_back(cluster, groups):
    cluster.create_topic("orders", 4)
    fill(cluster, "orders", 4, 10)
    a = Worker(cluster, "g", ["orders"], "a", max_poll_interval_ms=1500)
    b = Worker(cluster, "g", ["orders"], "b", max_poll_interval_ms=1500)
    probe = Consumer(cluster.bootstrap, group_id="g", enable_auto_commit=False)
    try:
        wait_until(lambda: len(a.owned()) == 2 and len(b.owned()) == 2, what="split")
        tps = [TopicPartition("orders", p) for p in range(4)]
        wait_until(lambda: all(v == 10 for v in probe.committed(tps).values()), what="auto commits")
        a.pause_polling.set()  # a stops calling poll(): after max_poll_interval_ms it leaves
        wait_until(lambda: len(b.owned()) == 4, timeout_s=10, what="b takes everything")
        seen = []
        for round_number in range(5):
            fill(cluster, "orders", 4, 2, start=10 + 2 * round_number)
            seen.append(probe.committed(tps))
            time.sleep(0.2)
        wait_until(lambda: all(v == 20 for v in probe.committed(tps).values()), what="b commits the rest")
        seen.append(probe.committed(tps))
        for earlier, later in zip(seen, seen[1:], strict=False):
            for tp in tps:
                assert later[tp] >= earlier[tp], f"committed offset of {tp} went back"
        a.pause_polling.clear()  # a polls again: it rejoins and gets its share back
        wait_until(lambda: len(a.owned()) == 2 and len(b.owned()) == 2, what="a rejoined")
        assert any(kind == "lost" for kind, _ in a.listener.events)
    finally:
        probe.close()
        a.close()
        b.close()


def test_coordinator_failover_keeps_the_group_and_its_offsets(cluster, groups):
    cluster.create_topic("orders", 2)
    fill(cluster, "orders", 2, 5)
    worker = Worker(cluster, "g", ["orders"], "w")
    try:
        wait_until(lambda: len(worker.owned()) == 2, what="assigned")
        worker.consumer.commit_async().result(10)
        tps = [TopicPartition("orders", p) for p in range(2)]
        wait_until(lambda: worker.consumer.committed(tps) == {tp: 5 for tp in tps}, what="commit")
        old = groups.coordinator_of("g")
        cluster.kill(old)
        groups.failover(old)
        for partition in range(2):  # the data partitions it led move too (the controller's job)
            if cluster.partition("orders", partition).leader_id == old:
                cluster.move_leader("orders", partition, groups.coordinator_of("g"))
        assert groups.coordinator_of("g") != old
        fill(cluster, "orders", 2, 5, start=5)
        wait_until(lambda: worker.consumer.committed(tps) == {tp: 10 for tp in tps}, what="commits on the new coordinator")
        assert worker.owned() == set(tps), "the member kept its partitions across the failover"
        assert not any(kind == "lost" for kind, _ in worker.listener.events)
    finally:
        worker.close()


def test_two_groups_each_receive_everything_and_one_group_splits_it(cluster, groups):
    cluster.create_topic("events", 4)
    everything = {(p, o) for p in range(4) for o in range(25)}
    pub = Worker(cluster, "audit", ["events"], "audit")
    queue_members = [Worker(cluster, "billing", ["events"], f"billing-{i}") for i in range(2)]
    try:
        wait_until(lambda: all(len(w.owned()) == 2 for w in queue_members) and len(pub.owned()) == 4, what="assigned")
        fill(cluster, "events", 4, 25)
        wait_until(lambda: {(p, o) for p, o, _ in pub.received} == everything, what="audit got everything")
        wait_until(
            lambda: {(p, o) for w in queue_members for p, o, _ in w.received} == everything, what="billing got everything"
        )
        counts = [len(w.received) for w in queue_members]
        assert all(count > 0 for count in counts), counts
        assert sum(counts) == len(everything), "each record went to one billing member only"
    finally:
        for worker in [pub, *queue_members]:
            worker.close()


def test_regex_subscription_picks_up_new_topics(cluster, groups):
    cluster.create_topic("logs-a", 1)
    cluster.create_topic("other", 1)
    worker = Worker(cluster, "g", re.compile(r"logs-.*"), "w")
    try:
        wait_until(lambda: worker.owned() == {TopicPartition("logs-a", 0)}, what="logs-a")
        cluster.create_topic("logs-b", 2)
        wait_until(lambda: len(worker.owned()) == 3, what="logs-b picked up")
        assert TopicPartition("other", 0) not in worker.owned()
    finally:
        worker.close()


def test_static_member_restart_gets_its_partitions_back(cluster, groups):
    cluster.create_topic("orders", 4)
    a = Worker(cluster, "g", ["orders"], "a", group_instance_id="host-a")
    b = Worker(cluster, "g", ["orders"], "b", group_instance_id="host-b")
    try:
        wait_until(lambda: len(a.owned()) == 2 and len(b.owned()) == 2, what="split")
        a_parts = a.owned()
        b_events = len(b.listener.events)
        a.close()
        a = Worker(cluster, "g", ["orders"], "a", group_instance_id="host-a")
        wait_until(lambda: a.owned() == a_parts, what="same partitions back")
        assert len(b.listener.events) == b_events, "b saw no rebalance"
    finally:
        a.close()
        b.close()


def test_commit_and_committed_and_resume_from_committed(cluster, groups):
    cluster.create_topic("orders", 1)
    fill(cluster, "orders", 1, 10)
    tp = TopicPartition("orders", 0)
    with Consumer(cluster.bootstrap, group_id="g", auto_offset_reset="earliest", enable_auto_commit=False) as consumer:
        consumer.subscribe(["orders"])
        got = []
        wait_until(lambda: got.extend(consumer.poll(timeout_ms=50)) or len(got) >= 4, what="records")
        assert consumer.committed(tp) is None
        consumer.commit({tp: 4})
        assert consumer.committed(tp) == 4
        assert consumer.committed([tp]) == {tp: 4}
    with Consumer(cluster.bootstrap, group_id="g", auto_offset_reset="earliest", enable_auto_commit=False) as consumer:
        consumer.subscribe(["orders"])
        got = []
        wait_until(lambda: got.extend(consumer.poll(timeout_ms=50)) or got, what="records")
        assert got[0].offset == 4, "a new member starts at the committed offset"


def test_manual_assign_commits_only_to_an_empty_group(cluster, groups):
    cluster.create_topic("orders", 1)
    tp = TopicPartition("orders", 0)
    member = Worker(cluster, "g", ["orders"], "member")
    manual = Consumer(cluster.bootstrap, group_id="g", enable_auto_commit=False)
    try:
        wait_until(lambda: member.owned() == {tp}, what="assigned")
        manual.assign([tp])
        with pytest.raises(NonEmptyGroupError, match="active member"):
            manual.commit({tp: 3})
        member.close()
        manual.commit({tp: 3})
        assert manual.committed(tp) == 3
    finally:
        manual.close()
        member.close()


def test_a_fenced_member_cannot_commit(cluster, groups):
    cluster.create_topic("orders", 2)
    worker = Worker(cluster, "g", ["orders"], "w")
    try:
        wait_until(lambda: len(worker.owned()) == 2, what="assigned")
        member_id, epoch = worker.consumer._membership.epoch()
        from freshet.client._group import CoordinatorClient
        from freshet.v1 import group_pb2

        other = Consumer(cluster.bootstrap, group_id="g")
        try:
            client = CoordinatorClient(other._transport, "g", retry_backoff_s=0.05, request_timeout_s=5)
            request = group_pb2.OffsetCommitRequest(
                group_id="g", member_id=member_id, member_epoch=epoch + 5,
                partitions=[group_pb2.OffsetCommitPartition(topic="orders", partition=0, offset=1)],
            )
            from freshet.client.errors import FencedMemberEpochError

            with pytest.raises(FencedMemberEpochError):
                client.call("OffsetCommit", request, 5)
        finally:
            other.close()
        assert CommitFailedError.retriable is False
    finally:
        worker.close()
