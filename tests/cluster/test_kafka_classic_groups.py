"""Classic consumer groups (JoinGroup/SyncGroup/Heartbeat/LeaveGroup) with unmodified Kafka clients.

Goal: confluent-kafka (librdkafka, group.protocol=classic), kafka-python and aiokafka form a group
of three members on a 6-partition topic with client-side assignors (range; cooperative-sticky for
librdkafka, sticky for kafka-python, roundrobin for aiokafka): every partition gets exactly one
owner and every record produced after the group settled reaches exactly one member; a member that
closes (LeaveGroup) hands its partitions to the others well within the session timeout; a second
group reads every record again; `freshet group describe` shows the classic group (state,
generation, members, the selected protocol).

Method: a real `cluster up` of 3 nodes (`kafka_cluster`); each member is a thread polling its own
client (aiokafka: its own event loop in that thread); auto-commit off, so positions come from
auto.offset.reset=earliest and records are produced only once the group is stable — a partition
that moves is read again from the start by its new owner, so exactly-once is asserted per phase.

Reference: Kafka protocol guide (JoinGroup, SyncGroup, Heartbeat, LeaveGroup); KIP-394; KIP-345;
KIP-429 (cooperative rebalancing, done by the clients over the classic protocol).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
import uuid

import aiokafka
import confluent_kafka
import grpc
import kafka
import pytest
from aiokafka.coordinator.assignors.range import RangePartitionAssignor as AioRange
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor as AioRoundRobin
from freshet.v1 import group_pb2, group_pb2_grpc
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor

from tests.support.cli_harness import ClusterUp, run_cli

pytestmark = pytest.mark.cluster

PARTITIONS = 6
PER_PHASE = 120
SESSION_TIMEOUT_MS = 10000
SETTLE_TIMEOUT_S = 60


def create_topic(cluster) -> str:
    name = f"cg-{uuid.uuid4().hex[:10]}"
    result = run_cli(
        ["topic", "create", name, "--partitions", str(PARTITIONS), "--replication-factor", "3",
         "-b", cluster.bootstrap], None,
    )
    assert result.returncode == 0, result.stderr
    return name


def produce(bootstrap: str, topic: str, tag: str) -> set[bytes]:
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    values = set()
    for i in range(PER_PHASE):
        value = f"{tag}-{i}".encode()
        producer.produce(topic, value=value, partition=i % PARTITIONS)
        values.add(value)
    assert producer.flush(30) == 0
    return values


class Member:
    """One group member polling in its own thread: what it received and what it owns now."""

    def __init__(self, kind: str, bootstrap: str, group: str, topic: str, strategy: str, instance_id: str = "") -> None:
        self.kind, self.bootstrap, self.group, self.topic, self.strategy = kind, bootstrap, group, topic, strategy
        self.instance_id = instance_id
        self.client_errors: list[str] = []
        self.received: list[bytes] = []
        self.assignment: frozenset[int] = frozenset()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"{kind}-member")
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(30)
        assert not self._thread.is_alive(), f"{self.kind} member did not close"

    def _run(self) -> None:
        try:
            {"confluent": self._confluent, "kafka-python": self._kafka_python, "aiokafka": self._aio}[self.kind]()
        except BaseException as error:  # surfaced by the test
            self.error = error

    def _confluent(self) -> None:
        config = {
            "bootstrap.servers": self.bootstrap, "group.id": self.group, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "partition.assignment.strategy": self.strategy,
            "session.timeout.ms": SESSION_TIMEOUT_MS, "heartbeat.interval.ms": 1000,
            "error_cb": lambda error: self.client_errors.append(str(error)),
        }
        if self.instance_id:
            config["group.instance.id"] = self.instance_id
        consumer = confluent_kafka.Consumer(config)
        consumer.subscribe([self.topic])
        try:
            while not self._stop.is_set():
                message = consumer.poll(0.2)
                self.assignment = frozenset(tp.partition for tp in consumer.assignment())
                if message is not None and message.error() is not None:
                    self.client_errors.append(str(message.error()))
                if message is not None and message.error() is None:
                    self.received.append(message.value())
        finally:
            consumer.close()

    def _kafka_python(self) -> None:
        assignor = {"range": RangePartitionAssignor, "sticky": StickyPartitionAssignor}[self.strategy]
        consumer = kafka.KafkaConsumer(
            self.topic, bootstrap_servers=self.bootstrap, group_id=self.group, enable_auto_commit=False,
            auto_offset_reset="earliest", partition_assignment_strategy=[assignor],
            session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=1000,
        )
        try:
            while not self._stop.is_set():
                batches = consumer.poll(200)
                self.assignment = frozenset(tp.partition for tp in consumer.assignment())
                for records in batches.values():
                    self.received.extend(record.value for record in records)
        finally:
            consumer.close()

    def _aio(self) -> None:
        async def main():
            assignor = {"range": AioRange, "roundrobin": AioRoundRobin}[self.strategy]
            consumer = aiokafka.AIOKafkaConsumer(
                self.topic, bootstrap_servers=self.bootstrap, group_id=self.group, enable_auto_commit=False,
                auto_offset_reset="earliest", partition_assignment_strategy=(assignor,),
                session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=1000,
            )
            await consumer.start()
            try:
                while not self._stop.is_set():
                    batches = await consumer.getmany(timeout_ms=200)
                    self.assignment = frozenset(tp.partition for tp in consumer.assignment())
                    for records in batches.values():
                        self.received.extend(record.value for record in records)
            finally:
                await consumer.stop()

        asyncio.run(main())


def wait_settled(members: list[Member], timeout_s: float = SETTLE_TIMEOUT_S) -> None:
    """Until every partition has exactly one owner, evenly spread, unchanged for 2 s."""
    deadline = time.monotonic() + timeout_s
    stable_since, last = None, None
    while time.monotonic() < deadline:
        for member in members:
            assert member.error is None, f"{member.kind}: {member.error!r}"
        owned = [member.assignment for member in members]
        counts = sorted(len(a) for a in owned)
        is_even = sum(counts) == PARTITIONS and counts[-1] - counts[0] <= 1
        is_disjoint = frozenset().union(*owned) == frozenset(range(PARTITIONS))
        if is_even and is_disjoint:
            if owned != last:
                stable_since, last = time.monotonic(), owned
            elif time.monotonic() - stable_since >= 2:
                return
        else:
            stable_since, last = None, None
        time.sleep(0.1)
    raise AssertionError(f"group never settled: {[sorted(m.assignment) for m in members]}")


def wait_delivered(members: list[Member], values: set[bytes], timeout_s: float = 60) -> None:
    """Until every value reached some member; then assert none reached two (or one twice)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen = [v for member in members for v in member.received if v in values]
        if set(seen) >= values:
            break
        time.sleep(0.1)
    time.sleep(1)                                     # a duplicate would arrive about now
    seen = [v for member in members for v in member.received if v in values]
    missing = values - set(seen)
    assert not missing, f"{len(missing)} of {len(values)} records never delivered"
    assert len(seen) == len(values), f"{len(seen) - len(values)} records delivered twice"


CASES = [
    ("confluent", "range"),
    ("confluent", "cooperative-sticky"),
    ("kafka-python", "range"),
    ("kafka-python", "sticky"),
    ("aiokafka", "range"),
    ("aiokafka", "roundrobin"),
]


@pytest.mark.parametrize(("kind", "strategy"), CASES, ids=[f"{k}-{s}" for k, s in CASES])
def test_a_group_of_three_shares_a_topic_and_survives_a_leave(kafka_cluster, kind, strategy):
    bootstrap = kafka_cluster.kafka_bootstrap
    topic = create_topic(kafka_cluster)
    group = f"g-{uuid.uuid4().hex[:8]}"
    members = [Member(kind, bootstrap, group, topic, strategy) for _ in range(3)]
    try:
        wait_settled(members)
        first = produce(bootstrap, topic, "first")
        wait_delivered(members, first)
        for member in members:
            assert len(member.received) >= PER_PHASE // PARTITIONS, "a member got none of its partitions' records"

        described = run_cli(["group", "describe", group, "-b", kafka_cluster.bootstrap], None)
        assert described.returncode == 0, described.stderr
        assert "Stable" in described.stdout and "3 member(s)" in described.stdout, described.stdout
        listed = run_cli(["group", "list", "--output", "json", "-b", kafka_cluster.bootstrap], None)
        assert listed.returncode == 0, listed.stderr
        assert {"group": group, "state": "Stable", "members": 3} in json.loads(listed.stdout)

        leaving, staying = members[0], members[1:]
        left_at = time.monotonic()
        leaving.close()
        wait_settled(staying)
        moved_after_s = time.monotonic() - left_at - 2          # wait_settled holds a settled state 2 s
        assert moved_after_s < SESSION_TIMEOUT_MS / 1000, f"partitions moved only after {moved_after_s:.1f} s"
        second = produce(bootstrap, topic, "second")
        wait_delivered(staying, second)
    finally:
        for member in members:
            member.close() if member._thread.is_alive() else None

    other = Member(kind, bootstrap, f"{group}-again", topic, strategy)
    try:
        wait_delivered([other], first | second)
    finally:
        other.close()


def describe(cluster, group: str) -> str:
    described = run_cli(["group", "describe", group, "-b", cluster.bootstrap], None)
    assert described.returncode == 0, described.stderr
    return described.stdout.splitlines()[0]


def test_a_restarted_static_member_takes_its_place_without_a_rebalance(kafka_cluster):
    """KIP-345 with librdkafka (group.instance.id): a static member that closes does not leave; one
    restarted with its instance id gets its partitions back in the same generation, the others
    keep theirs; a second live process with a taken instance id fences the first (FENCED_INSTANCE_ID)."""
    bootstrap = kafka_cluster.kafka_bootstrap
    topic = create_topic(kafka_cluster)
    group = f"static-{uuid.uuid4().hex[:8]}"
    members = [Member("confluent", bootstrap, group, topic, "range", instance_id=f"i{i}") for i in range(3)]
    replacements = []
    try:
        wait_settled(members)
        before = describe(kafka_cluster, group)
        assert "Stable" in before and "3 member(s)" in before, before
        owned = [member.assignment for member in members]
        members[0].close()
        restarted = Member("confluent", bootstrap, group, topic, "range", instance_id="i0")
        replacements.append(restarted)
        wait_settled([restarted, *members[1:]])
        assert [restarted.assignment, *(m.assignment for m in members[1:])] == owned
        assert describe(kafka_cluster, group) == before, "a static member's restart rebalanced the group"
        records = produce(bootstrap, topic, "static")
        wait_delivered([restarted, *members[1:]], records)

        duplicate = Member("confluent", bootstrap, group, topic, "range", instance_id="i1")
        replacements.append(duplicate)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any("fenced" in e.lower() for e in members[1].client_errors):
            time.sleep(0.2)
        assert any("fenced" in e.lower() for e in members[1].client_errors), members[1].client_errors
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and duplicate.assignment != owned[1]:
            time.sleep(0.2)
        assert duplicate.assignment == owned[1]
        assert "3 member(s)" in describe(kafka_cluster, group)
    finally:
        for member in [*members, *replacements]:
            if member._thread.is_alive():
                member.close()


def test_members_rejoin_after_the_coordinators_broker_is_killed(tmp_path):
    """Classic membership is not persisted: after kill -9 of the coordinator's broker the new
    coordinator does not know the members, they get UNKNOWN_MEMBER_ID (or find it empty) and
    rejoin, and the group settles again and delivers every new record once."""
    cluster = ClusterUp(tmp_path / "failover")
    try:
        cluster.wait_ready()
        bootstrap = cluster.kafka_bootstrap
        topic = create_topic(cluster)
        group = f"failover-{uuid.uuid4().hex[:8]}"
        members = [Member("confluent", bootstrap, group, topic, "range") for _ in range(3)]
        try:
            wait_settled(members)
            with grpc.insecure_channel(cluster.bootstrap.split(",")[0]) as channel:
                found = group_pb2_grpc.GroupStub(channel).FindCoordinator(
                    group_pb2.FindCoordinatorRequest(group_ids=[group]), timeout=10
                )
            coordinator = found.coordinators[0].coordinator.node_id
            os.kill(cluster.node_pids[coordinator], signal.SIGKILL)
            time.sleep(SESSION_TIMEOUT_MS / 1000 / 2)
            wait_settled(members, timeout_s=120)
            after = describe(cluster, group)
            assert "Stable" in after and "3 member(s)" in after, after
            records = produce(bootstrap, topic, "after-kill")
            wait_delivered(members, records)
        finally:
            for member in members:
                member.close()
    finally:
        cluster.close()
