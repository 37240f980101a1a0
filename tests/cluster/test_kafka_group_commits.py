"""Committed offsets of Kafka consumer groups: resume, reset by the CLI, and coordinator failover.

Goal: (1) with confluent-kafka, kafka-python and aiokafka (classic protocol, auto-commit off), a
group consumer that read N records and committed synchronously hands over to a NEW consumer in the
same group that reads exactly the N records produced afterwards, none of the old ones; (2) after
`freshet group reset-offsets --to-earliest --execute` a Kafka consumer of that group replays every
record; (3) kill -9 of the coordinator's broker while a librdkafka group auto-commits every 100 ms:
no sampled committed offset ever goes backwards, nothing committed before the kill is lost, and the
records produced after the kill all arrive.

Method: `kafka_cluster` (3 nodes) for (1) and (2), a ClusterUp of its own for (3); committed offsets
are sampled with a non-member librdkafka consumer's committed() (OffsetFetch); the coordinator is
found by the gRPC FindCoordinator, as in test_kafka_classic_groups.py.

Reference: Kafka protocol guide (OffsetCommit, OffsetFetch, FindCoordinator).
"""

from __future__ import annotations

import asyncio
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
from freshet.v1 import group_pb2, group_pb2_grpc

from tests.support.cli_harness import ClusterUp, run_cli

pytestmark = pytest.mark.cluster

PARTITIONS = 6
N = 120
READ_TIMEOUT_S = 60
LINGER_S = 2.0                                     # keep polling this long after the last expected record


def create_topic(cluster) -> str:
    name = f"gc-{uuid.uuid4().hex[:10]}"
    result = run_cli(
        ["topic", "create", name, "--partitions", str(PARTITIONS), "--replication-factor", "3",
         "-b", cluster.bootstrap], None,
    )
    assert result.returncode == 0, result.stderr
    return name


def produce(bootstrap: str, topic: str, tag: str, count: int = N) -> list[bytes]:
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": 60000})
    values = [f"{tag}-{i}".encode() for i in range(count)]
    for i, value in enumerate(values):
        producer.produce(topic, value=value, partition=i % PARTITIONS)
    assert producer.flush(60) == 0
    return values


def read_and_commit(kind: str, bootstrap: str, group: str, topic: str, want: int) -> list[bytes]:
    """Join `group` (classic, auto-commit off), read until `want` records then LINGER_S more,
    commit synchronously, close. Returns every value received."""
    if kind == "aiokafka":
        return asyncio.run(_aio_read_and_commit(bootstrap, group, topic, want))
    received: list[bytes] = []
    deadline = time.monotonic() + READ_TIMEOUT_S
    if kind == "confluent":
        consumer = confluent_kafka.Consumer({
            "bootstrap.servers": bootstrap, "group.id": group, "group.protocol": "classic",
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
        })
        consumer.subscribe([topic])
        try:
            done_at = None
            while time.monotonic() < deadline and (done_at is None or time.monotonic() < done_at + LINGER_S):
                message = consumer.poll(0.2)
                if message is not None and message.error() is None:
                    received.append(message.value())
                if done_at is None and len(received) >= want:
                    done_at = time.monotonic()
            if received:
                consumer.commit(asynchronous=False)
        finally:
            consumer.close()
        return received
    consumer = kafka.KafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        done_at = None
        while time.monotonic() < deadline and (done_at is None or time.monotonic() < done_at + LINGER_S):
            for records in consumer.poll(200).values():
                received.extend(record.value for record in records)
            if done_at is None and len(received) >= want:
                done_at = time.monotonic()
        if received:
            consumer.commit()
    finally:
        consumer.close()
    return received


async def _aio_read_and_commit(bootstrap: str, group: str, topic: str, want: int) -> list[bytes]:
    received: list[bytes] = []
    consumer = aiokafka.AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + READ_TIMEOUT_S
        done_at = None
        while time.monotonic() < deadline and (done_at is None or time.monotonic() < done_at + LINGER_S):
            for records in (await consumer.getmany(timeout_ms=200)).values():
                received.extend(record.value for record in records)
            if done_at is None and len(received) >= want:
                done_at = time.monotonic()
        if received:
            await consumer.commit()
    finally:
        await consumer.stop()
    return received


@pytest.mark.parametrize("kind", ["confluent", "kafka-python", "aiokafka"])
def test_a_new_consumer_resumes_from_the_committed_offsets(kafka_cluster, kind):
    bootstrap = kafka_cluster.kafka_bootstrap
    topic = create_topic(kafka_cluster)
    group = f"resume-{uuid.uuid4().hex[:8]}"
    old = produce(bootstrap, topic, "old")
    first = read_and_commit(kind, bootstrap, group, topic, N)
    assert sorted(first) == sorted(old), f"first consumer read {len(first)} records, {len(set(first))} distinct"
    new = produce(bootstrap, topic, "new")
    second = read_and_commit(kind, bootstrap, group, topic, N)
    replayed = [v for v in second if v in set(old)]
    assert not replayed, f"{len(replayed)} already-committed records read again"
    assert sorted(second) == sorted(new), f"second consumer read {len(second)} records, {len(set(second) & set(new))} of the new"


def test_reset_offsets_to_earliest_by_the_cli_replays_the_topic(kafka_cluster):
    bootstrap = kafka_cluster.kafka_bootstrap
    topic = create_topic(kafka_cluster)
    group = f"reset-{uuid.uuid4().hex[:8]}"
    values = produce(bootstrap, topic, "r")
    assert sorted(read_and_commit("confluent", bootstrap, group, topic, N)) == sorted(values)
    assert read_and_commit("confluent", bootstrap, group, topic, 0) == [], "committed offsets not honoured"
    reset = run_cli(
        ["group", "reset-offsets", group, "--topic", topic, "--to-earliest", "--execute", "-b", kafka_cluster.bootstrap],
        None,
    )
    assert reset.returncode == 0, reset.stderr
    replay = read_and_commit("kafka-python", bootstrap, group, topic, N)
    assert sorted(replay) == sorted(values), f"replayed {len(replay)} records, {len(set(replay) & set(values))} distinct"


class Sampler:
    """Polls the group's committed offsets (OffsetFetch from a non-member) in a thread."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        self.consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": group})
        self.partitions = [confluent_kafka.TopicPartition(topic, p) for p in range(PARTITIONS)]
        self.samples: list[tuple[float, dict[int, int]]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                found = self.consumer.committed(self.partitions, timeout=5)
                self.samples.append((time.monotonic(), {tp.partition: tp.offset for tp in found if tp.error is None}))
            except confluent_kafka.KafkaException as error:
                self.errors.append(str(error))
            time.sleep(0.1)

    def latest(self) -> dict[int, int]:
        return dict(self.samples[-1][1]) if self.samples else {}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(15)
        self.consumer.close()


def test_committed_offsets_survive_a_kill_of_the_coordinators_broker(tmp_path):
    cluster = ClusterUp(tmp_path / "commit-failover")
    try:
        cluster.wait_ready()
        bootstrap = cluster.kafka_bootstrap
        topic = create_topic(cluster)
        group = f"cfail-{uuid.uuid4().hex[:8]}"
        received: list[bytes] = []
        stop = threading.Event()
        consumer_errors: list[BaseException] = []

        def consume() -> None:
            try:
                consumer = confluent_kafka.Consumer({
                    "bootstrap.servers": bootstrap, "group.id": group, "group.protocol": "classic",
                    "enable.auto.commit": True, "auto.commit.interval.ms": 100, "auto.offset.reset": "earliest",
                    "session.timeout.ms": 10000, "heartbeat.interval.ms": 1000,
                })
                consumer.subscribe([topic])
                try:
                    while not stop.is_set():
                        message = consumer.poll(0.2)
                        if message is not None and message.error() is None:
                            received.append(message.value())
                finally:
                    consumer.close()
            except BaseException as error:
                consumer_errors.append(error)

        def produce_slowly() -> None:
            producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": 60000})
            i = 0
            while not stop.is_set():
                producer.produce(topic, value=f"bg-{i}".encode(), partition=i % PARTITIONS)
                producer.poll(0)
                i += 1
                time.sleep(0.02)
            producer.flush(30)

        threads = [threading.Thread(target=consume, daemon=True), threading.Thread(target=produce_slowly, daemon=True)]
        for thread in threads:
            thread.start()
        sampler = Sampler(bootstrap, group, topic)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                latest = sampler.latest()
                if len(latest) == PARTITIONS and all(o > 0 for o in latest.values()):
                    break
                time.sleep(0.2)
            else:
                raise AssertionError(f"commits never covered every partition: {sampler.latest()} {sampler.errors[-3:]}")
            time.sleep(1)
            with grpc.insecure_channel(cluster.bootstrap.split(",")[0]) as channel:
                found = group_pb2_grpc.GroupStub(channel).FindCoordinator(
                    group_pb2.FindCoordinatorRequest(group_ids=[group]), timeout=10
                )
            coordinator = found.coordinators[0].coordinator.node_id
            before_kill = sampler.latest()
            os.kill(cluster.node_pids[coordinator], signal.SIGKILL)
            killed_at = time.monotonic()

            after = produce(bootstrap, topic, "after-kill")
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not set(after) <= set(received):
                assert not consumer_errors, consumer_errors
                time.sleep(0.2)
            missing = set(after) - set(received)
            assert not missing, f"{len(missing)} of {len(after)} records produced after the kill never arrived"

            # commits resume past what was committed before the kill
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                latest = sampler.latest()
                if sampler.samples[-1][0] > killed_at and all(latest.get(p, -1) > before_kill[p] for p in range(PARTITIONS)):
                    break
                time.sleep(0.2)
            else:
                raise AssertionError(f"commits did not advance after the kill: before {before_kill}, now {sampler.latest()}")
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
            sampler.close()

        assert not consumer_errors, consumer_errors
        highest: dict[int, int] = {}
        for at, offsets in sampler.samples:
            for p, offset in offsets.items():
                if p in highest:
                    assert offset >= highest[p], (
                        f"partition {p}: committed offset went back from {highest[p]} to {offset} "
                        f"{at - killed_at:+.1f} s from the kill"
                    )
                if offset >= 0:
                    highest[p] = max(highest.get(p, offset), offset)
        for at, offsets in sampler.samples:
            if at > killed_at:
                for p in range(PARTITIONS):
                    if p in offsets:
                        assert offsets[p] >= before_kill[p], f"partition {p}: committed {offsets[p]} < {before_kill[p]} after the kill"
    finally:
        cluster.close()
