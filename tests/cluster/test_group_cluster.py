"""Consumer groups on a real 3-node cluster (node processes on loopback, members as processes).

Goals and methods:
- a group of 3 member processes over 6 partitions owns every partition exactly once; a 4th member
  joins and the members that keep partitions are never asked to give them up and keep receiving
  records while the group settles (KIP-848 incremental reconciliation); a member kill -9'ed has its
  partitions reassigned within the session timeout; sampled committed offsets never go back;
- two groups on one topic both receive everything (pub/sub), one group splits it (queue);
- kill -9 of the group coordinator's broker: another broker loads the group from
  __consumer_offsets (replicated, acks=all), the member keeps its partitions and commits continue
  from where they were (no committed offset lost or moved back).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import threading
import time

import pytest
from freshet.client import Consumer, Producer, TopicPartition
from freshet.v1 import group_pb2, group_pb2_grpc

from tests.support.node_cluster import NodeCluster
from tests.support.waiting import wait_until

pytestmark = pytest.mark.cluster

SESSION_TIMEOUT_MS = 3000
MEMBER_SCRIPT = pathlib.Path(__file__).with_name("group_member.py")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with NodeCluster(tmp_path_factory.mktemp("groups"), sets=["group.min.session.timeout.ms=2000"]) as nodes:
        for node_id in (1, 2, 3):
            nodes.start(node_id)
        nodes.wait_ready()
        yield nodes


def bootstrap_of(cluster) -> str:
    return ",".join(f"127.0.0.1:{cluster.ports[n]}" for n in cluster.alive())


class MemberProcess:
    """tests/cluster/group_member.py as a child process; its JSON events are collected."""

    def __init__(self, bootstrap: str, group: str, topic: str, name: str) -> None:
        env = dict(os.environ)
        self.name = name
        self.process = subprocess.Popen(
            [sys.executable, str(MEMBER_SCRIPT), bootstrap, group, topic, name, str(SESSION_TIMEOUT_MS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        self.events: list[dict] = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            with self.lock:
                self.events.append(json.loads(line))

    def owned(self) -> set[int]:
        owned: set[int] = set()
        with self.lock:
            for event in self.events:
                if event["event"] == "assigned":
                    owned |= set(event["partitions"])
                elif event["event"] in ("revoked", "lost"):
                    owned -= set(event["partitions"])
        return owned

    def snapshot(self) -> list[dict]:
        with self.lock:
            return list(self.events)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


class BackgroundProducer:
    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.producer = Producer(bootstrap, acks="all", linger_ms=5)
        self.topic = topic
        self.partitions = partitions
        self.stop_event = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop_event.is_set():
            for partition in range(self.partitions):
                self.producer.send(self.topic, value=b"x" * 100, partition=partition)
            self.sent += self.partitions
            time.sleep(0.02)

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(10)
        self.producer.flush()
        self.producer.close()


class CommitSampler:
    """Samples the group's committed offsets and records any that went back."""

    def __init__(self, bootstrap: str, group: str, partitions: list[TopicPartition]) -> None:
        self.probe = Consumer(bootstrap, group_id=group, enable_auto_commit=False, default_api_timeout_ms=20000)
        self.partitions = partitions
        self.highest: dict[TopicPartition, int] = {}
        self.regressions: list[str] = []
        self.samples = 0
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop_event.is_set():
            try:
                committed = self.probe.committed(self.partitions)
            except Exception:  # noqa: BLE001 - a failover may make a sample fail; the next one counts
                time.sleep(0.1)
                continue
            self.samples += 1
            for tp, offset in committed.items():
                if offset is None:
                    continue
                if offset < self.highest.get(tp, -1):
                    self.regressions.append(f"{tp}: {self.highest[tp]} -> {offset}")
                self.highest[tp] = max(offset, self.highest.get(tp, -1))
            time.sleep(0.1)

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(30)
        self.probe.close()


def test_members_split_partitions_join_incrementally_and_a_killed_member_is_replaced(cluster):
    cluster.create_topic(1, "orders", 6, 3)
    bootstrap = bootstrap_of(cluster)
    producer = BackgroundProducer(bootstrap, "orders", 6)
    tps = [TopicPartition("orders", p) for p in range(6)]
    sampler = CommitSampler(bootstrap, "g", tps)
    members = [MemberProcess(bootstrap, "g", "orders", f"m{i}") for i in range(3)]
    try:
        wait_until(lambda: sorted(len(m.owned()) for m in members) == [2, 2, 2], 60, "3 members x 2 partitions")
        owned = sorted(p for m in members for p in m.owned())
        assert owned == list(range(6)), "each partition owned by exactly one member"
        before = {m.name: m.owned() for m in members}

        joiner = MemberProcess(bootstrap, "g", "orders", "m3")
        members.append(joiner)
        wait_until(lambda: any(e["event"] == "started" for e in joiner.snapshot()), 30, "m3 started")
        joined_at = time.monotonic()
        wait_until(lambda: sorted(len(m.owned()) for m in members) == [1, 1, 2, 2], 30, "4 members settled")
        settle_s = time.monotonic() - joined_at
        assert sorted(p for m in members for p in m.owned()) == list(range(6))
        for member in members[:3]:
            kept = member.owned()
            assert kept <= before[member.name]
            events = member.snapshot()
            given_up = {p for e in events if e["event"] in ("revoked", "lost") for p in e["partitions"]}
            assert not given_up & kept, f"{member.name} was asked to stop consuming {given_up & kept}"
            during = [
                e for e in events
                if e["event"] == "records" and e["partition"] in kept and joined_at <= e["t"] <= joined_at + settle_s
            ]
            assert during or settle_s < 0.3, f"{member.name} received nothing from {kept} while the group settled"
        print(f"\nsettle time after a 4th member joined: {settle_s:.2f} s")

        victim = members[1]
        victim_partitions = victim.owned()
        victim.kill()  # kill -9: no leave, no commit
        killed_at = time.monotonic()
        survivors = [m for m in members if m is not victim]
        wait_until(
            lambda: sorted(p for m in survivors for p in m.owned()) == list(range(6)),
            SESSION_TIMEOUT_MS / 1000 + 10,
            "the killed member's partitions reassigned",
        )
        reassigned_s = time.monotonic() - killed_at
        print(f"partitions {sorted(victim_partitions)} of the killed member reassigned after {reassigned_s:.2f} s")
        assert reassigned_s < SESSION_TIMEOUT_MS / 1000 + 5
        producer.stop()
        ends = {}
        with Consumer(bootstrap) as reader:
            ends = reader.end_offsets(tps)
        wait_until(lambda: all(sampler.highest.get(tp, -1) == ends[tp] for tp in tps), 30, "commits reach the log end")
        assert sampler.samples > 10
        assert sampler.regressions == [], sampler.regressions
    finally:
        producer.stop_event.set()
        for member in members:
            member.stop()
        sampler.stop()
        producer.stop()


def test_two_groups_each_get_everything_and_a_group_splits_it(cluster):
    cluster.create_topic(1, "events", 4, 3)
    bootstrap = bootstrap_of(cluster)
    with Producer(bootstrap, acks="all") as producer:
        for n in range(200):
            producer.send("events", value=str(n).encode(), partition=n % 4)
        producer.flush()
    everything = {(n % 4, n // 4) for n in range(200)}

    def consume(group, consumers, stop):
        while not stop.is_set():
            for consumer, got in consumers:
                for record in consumer.poll(timeout_ms=50):
                    got.append((record.partition, record.offset))

    audit = [(Consumer(bootstrap, group_id="audit", auto_offset_reset="earliest"), [])]
    billing = [(Consumer(bootstrap, group_id="billing", auto_offset_reset="earliest"), []) for _ in range(2)]
    for consumer, _ in audit + billing:
        consumer.subscribe(["events"])
    stop = threading.Event()
    threads = [threading.Thread(target=consume, args=(g, c, stop), daemon=True) for g, c in (("audit", audit), ("billing", billing))]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: set(audit[0][1]) == everything, 60, "audit received everything")
        wait_until(lambda: set(billing[0][1]) | set(billing[1][1]) == everything, 60, "billing received everything")
        wait_until(lambda: all(c.assignment() for c, _ in billing), 30, "both billing members own partitions")
        # The web console of the coordinators lists both groups (with their lag).
        pages = "".join((cluster.http(node_id, "/") or (0, ""))[1] for node_id in cluster.alive())
        assert ">audit<" in pages and ">billing<" in pages
        metrics = "".join((cluster.http(node_id, "/metrics") or (0, ""))[1] for node_id in cluster.alive())
        assert 'freshet_group_members{group="billing"} 2.0' in metrics
        assert 'freshet_group_lag{group="audit"}' in metrics
        first, second = billing[0][1], billing[1][1]
        assert not set(first) & set(second), "a record went to both members of one group"
        assert len(first) + len(second) == 200, "each record once: revocation commits before handing over"
        assert {tp.partition for tp in billing[0][0].assignment()}.isdisjoint({tp.partition for tp in billing[1][0].assignment()})
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        for consumer, _ in audit + billing:
            consumer.close()


def test_killing_the_coordinators_broker_keeps_the_group_and_its_offsets(cluster):
    """Runs last in the module: it kills a node."""
    cluster.create_topic(1, "payments", 3, 3)
    bootstrap = bootstrap_of(cluster)
    tps = [TopicPartition("payments", p) for p in range(3)]
    producer = BackgroundProducer(bootstrap, "payments", 3)
    consumer = Consumer(bootstrap, group_id="pay", auto_offset_reset="earliest", auto_commit_interval_ms=200,
                        session_timeout_ms=SESSION_TIMEOUT_MS)
    consumer.subscribe(["payments"])
    got: list[tuple[int, int]] = []
    stop = threading.Event()

    def run():
        while not stop.is_set():
            for record in consumer.poll(timeout_ms=100):
                got.append((record.partition, record.offset))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    sampler = CommitSampler(bootstrap, "pay", tps)
    try:
        wait_until(lambda: all((sampler.highest.get(tp) or 0) > 20 for tp in tps), 60, "commits flowing")
        coordinator_id = group_pb2_grpc.GroupStub(cluster.channel(1)).FindCoordinator(
            group_pb2.FindCoordinatorRequest(group_ids=["pay"]), timeout=10
        ).coordinators[0].coordinator.node_id
        before_kill = dict(sampler.highest)
        cluster.processes[coordinator_id].kill()
        killed_at = time.monotonic()
        wait_until(
            lambda: all(sampler.highest.get(tp, -1) > before_kill[tp] + 20 for tp in tps),
            60,
            "commits continue on the new coordinator",
        )
        print(f"\ncommits resumed {time.monotonic() - killed_at:.2f} s after kill -9 of coordinator node {coordinator_id}")
        alive = [n for n in cluster.alive()]
        new_coordinator = group_pb2_grpc.GroupStub(cluster.channel(alive[0])).FindCoordinator(
            group_pb2.FindCoordinatorRequest(group_ids=["pay"]), timeout=10
        ).coordinators[0].coordinator.node_id
        assert new_coordinator != coordinator_id
        assert consumer.assignment() == set(tps), "the member kept its partitions"
        assert sampler.regressions == [], sampler.regressions
    finally:
        stop.set()
        thread.join(10)
        producer.stop_event.set()
        sampler.stop()
        consumer.close()
        producer.stop()
