"""Zero-copy Fetch (sendfile) through the Kafka listener with real clients, and retention under it.

Goal (issue 20): librdkafka (confluent-kafka, kcat) consumes 64 KiB records byte for byte when the
records leave the segment files with sendfile, every record byte of those fetches goes the
sendfile path (none is copied) on a plaintext listener, and retention deleting segments while a
consumer reads them never corrupts what it gets (librdkafka checks every batch's CRC:
check.crcs=true; an offset retention took is OFFSET_OUT_OF_RANGE and a reset, never bad bytes).
Method: one 3-node `cluster up` (`kafka_cluster`); topics with RF 3 created over gRPC; values carry
their own sequence number and a digest; the nodes' /metrics give
freshet_kafka_fetch_record_bytes_total{path} before and after. The TLS copy path is checked in
tests/cluster/test_tls_cluster.py.
Reference: Kafka FileRecords.writeTo; librdkafka check.crcs.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
import urllib.request

import confluent_kafka
import pytest
from freshet.client import Admin, Producer
from freshet.client.admin_results import ConfigResource

from tests.cluster.test_kafka_kcat import _consume as kcat_consume

pytestmark = pytest.mark.cluster

VALUE_BYTES = 64 * 1024
_SAMPLE = re.compile(r'^freshet_kafka_fetch_record_bytes_total\{path="(\w+)"\} ([0-9.e+]+)$', re.MULTILINE)


def value_of(sequence: int, size: int = VALUE_BYTES) -> bytes:
    """`size` bytes that name their sequence number and end with a digest of the rest."""
    head = b"%08d:" % sequence
    body = (head + hashlib.sha256(head).digest() * (size // 32 + 1))[: size - 32]
    return body + hashlib.sha256(body).digest()


def is_intact(value: bytes) -> bool:
    return len(value) == VALUE_BYTES and hashlib.sha256(value[:-32]).digest() == value[-32:]


def fetch_bytes(kafka_cluster) -> dict[str, float]:
    """freshet_kafka_fetch_record_bytes_total per path, summed over the 3 nodes."""
    totals = {"sendfile": 0.0, "copy": 0.0}
    for node_id in (1, 2, 3):
        with urllib.request.urlopen(f"http://127.0.0.1:{kafka_cluster.port(node_id) + 2}/metrics", timeout=10) as answer:
            for path, value in _SAMPLE.findall(answer.read().decode()):
                totals[path] += float(value)
    return totals


def create_topic(kafka_cluster, name: str, partitions: int, **configs: str) -> None:
    with Admin(kafka_cluster.bootstrap) as admin:
        admin.create_topic(name, partitions, 3, configs=configs or None)


def produce(kafka_cluster, topic: str, sequences: range, partitions: int) -> None:
    with Producer(kafka_cluster.bootstrap, acks="all", linger_ms=5) as producer:
        futures = [producer.send(topic, value=value_of(n), partition=n % partitions) for n in sequences]
        producer.flush(60)
    for future in futures:
        future.result(60)


def consume(kafka_cluster, topic: str, partitions: int, count: int, timeout_s: float = 60) -> dict[int, list[bytes]]:
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": kafka_cluster.kafka_bootstrap, "group.id": f"g-{topic}", "enable.auto.commit": False,
        "check.crcs": True, "fetch.wait.max.ms": 100,
    })
    consumer.assign([confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in range(partitions)])
    got: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
    deadline = time.monotonic() + timeout_s
    try:
        while sum(map(len, got.values())) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            got[message.partition()].append(message.value())
    finally:
        consumer.close()
    return got


def test_confluent_kafka_reads_64k_records_sent_with_sendfile(kafka_cluster):
    topic = "zero-copy-confluent"
    create_topic(kafka_cluster, topic, 3)
    produce(kafka_cluster, topic, range(240), 3)
    before = fetch_bytes(kafka_cluster)
    got = consume(kafka_cluster, topic, 3, 240)
    after = fetch_bytes(kafka_cluster)
    assert {p: values for p, values in got.items()} == {p: [value_of(n) for n in range(p, 240, 3)] for p in range(3)}
    sent = after["sendfile"] - before["sendfile"]
    assert sent >= 240 * VALUE_BYTES, (before, after)
    assert after["copy"] == before["copy"], "a plaintext listener copies nothing"


def test_kcat_reads_what_the_sdk_produced_through_sendfile(kcat, kafka_cluster):
    topic = "zero-copy-kcat"
    create_topic(kafka_cluster, topic, 1)
    produce(kafka_cluster, topic, range(60), 1)
    before = fetch_bytes(kafka_cluster)
    records = kcat_consume(kcat, kafka_cluster, topic, 60)
    after = fetch_bytes(kafka_cluster)
    assert [(offset, value) for offset, _, value, _ in records] == [(n, value_of(n)) for n in range(60)]
    assert after["sendfile"] - before["sendfile"] >= 60 * VALUE_BYTES
    assert after["copy"] == before["copy"]


def test_retention_deleting_segments_under_a_consumer_never_corrupts_what_it_reads(kafka_cluster):
    """A producer keeps appending 64 KiB records to a topic of 256 KiB segments kept to 1 MiB while
    retention runs every 200 ms; a consumer that started at the beginning reads for 15 s. Every
    value it gets is intact and in sequence order within the partition (gaps only where
    retention took records before it got there), and it got many."""
    topic = "zero-copy-retention"
    create_topic(kafka_cluster, topic, 1, **{"segment.bytes": str(256 * 1024), "retention.bytes": str(1024 * 1024)})
    with Admin(kafka_cluster.bootstrap) as admin:
        admin.alter_configs(ConfigResource.cluster(), set={"log.retention.check.interval.ms": "200"})
    stop = threading.Event()
    produced = []

    def keep_producing() -> None:
        with Producer(kafka_cluster.bootstrap, acks="all", linger_ms=2) as producer:
            sequence = 0
            while not stop.is_set():
                producer.send(topic, value=value_of(sequence), partition=0).result(30)
                produced.append(sequence)
                sequence += 1

    writer = threading.Thread(target=keep_producing, name="zero-copy-producer", daemon=True)
    writer.start()
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": kafka_cluster.kafka_bootstrap, "group.id": f"g-{topic}", "enable.auto.commit": False,
        "check.crcs": True, "auto.offset.reset": "earliest", "fetch.wait.max.ms": 50,
        "fetch.max.bytes": 1024 * 1024, "max.partition.fetch.bytes": 512 * 1024,
    })
    sequences: list[int] = []
    errors: list[str] = []
    partition = confluent_kafka.TopicPartition(topic, 0, confluent_kafka.OFFSET_BEGINNING)
    try:
        consumer.assign([partition])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                continue
            if message.error() is not None:
                errors.append(str(message.error()))
                continue
            value = message.value()
            assert is_intact(value), f"offset {message.offset()}: a corrupt value"
            sequences.append(int(value[:8]))
            time.sleep(0.002)                            # a slow reader: retention overtakes it
        log_start_offset, _ = consumer.get_watermark_offsets(partition, timeout=10)
    finally:
        stop.set()
        consumer.close()
        writer.join(60)
        with Admin(kafka_cluster.bootstrap) as admin:
            admin.alter_configs(ConfigResource.cluster(), delete=["log.retention.check.interval.ms"])
    assert not writer.is_alive()
    assert log_start_offset > 0, "retention deleted segments while the consumer read"
    assert len(sequences) > 100, (len(sequences), len(produced), errors)
    assert sequences == sorted(set(sequences)), "in order, no duplicates"
    assert all("Offset out of range" in error or "OFFSET_OUT_OF_RANGE" in error for error in errors), errors
