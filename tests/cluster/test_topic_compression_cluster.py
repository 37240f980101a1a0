"""Topic compression.type on a real cluster, checked with `freshet dump-log` on every replica.

Goal: with compression.type=zstd, batches an uncompressed producer sends are stored zstd by the
leader (Kafka LogValidator) and copied byte for byte by the followers; the stored batches are
valid (CRC) and a Kafka client and the Freshet SDK read every record intact. Both produce paths
(the Kafka listener and gRPC) go through the re-encoding.

Method: `freshet cluster up` of 3 nodes; a topic created with `--config compression.type=zstd`;
kafka-python (no compression) and the Freshet SDK (compression none) produce with acks=all;
`freshet dump-log --print-data --output json` runs on the partition's segment in each node's data
directory (the leader's and two followers'); kafka-python consumes from the beginning.

Reference: Kafka LogValidator.validateMessagesAndAssignOffsetsCompressed; DumpLogSegments.
"""

from __future__ import annotations

import glob
import json
import os
import time
import uuid

import kafka
import pytest
from freshet.client import Producer as FreshetProducer

from tests.support.cli_harness import run_cli
from tests.support.waiting import wait_until

pytestmark = pytest.mark.cluster

COUNT = 30
BASE_TIMESTAMP_MS = 1_700_000_000_000


def _segment(data_dir, node_id: int, topic: str) -> str | None:
    found = glob.glob(os.path.join(str(data_dir), f"node-{node_id}", "**", f"{topic}-0", "00000000000000000000.log"),
                      recursive=True)
    return found[0] if found else None


def _dump(path: str) -> dict:
    result = run_cli(["dump-log", path, "--print-data", "--output", "json"], None)
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def test_zstd_topic_stores_zstd_on_leader_and_followers_and_clients_read_it(kafka_cluster):
    topic = f"zstd-{uuid.uuid4().hex[:8]}"
    created = run_cli(["topic", "create", topic, "-p", "1", "-r", "3", "--config", "compression.type=zstd"],
                      kafka_cluster.bootstrap)
    assert created.returncode == 0, created.stderr
    sent = [(f"key-{i}".encode(), (f"value-{i}-" * 30).encode(), [("h", f"{i}".encode())], BASE_TIMESTAMP_MS + i)
            for i in range(COUNT)]
    producer = kafka.KafkaProducer(bootstrap_servers=kafka_cluster.kafka_bootstrap, acks="all", linger_ms=5)
    try:
        for key, value, headers, timestamp in sent:
            producer.send(topic, key=key, value=value, headers=headers, partition=0, timestamp_ms=timestamp)
        producer.flush(30)
    finally:
        producer.close(10)
    with FreshetProducer(kafka_cluster.bootstrap, acks="all", compression="none") as sdk_producer:
        sdk_producer.send(topic, value=b"from-grpc", key=b"sdk", partition=0, timestamp_ms=BASE_TIMESTAMP_MS + COUNT)
        sdk_producer.flush(30)
    expected = [(key.decode(), value.decode(), [[name, data.decode()] for name, data in headers], timestamp)
                for key, value, headers, timestamp in sent] + [("sdk", "from-grpc", [], BASE_TIMESTAMP_MS + COUNT)]

    dumps: dict[int, dict] = {}

    def every_replica_has_everything() -> bool:
        for node_id in kafka_cluster.node_pids:
            path = _segment(kafka_cluster.data_dir, node_id, topic)
            if path is None:
                return False
            dumps[node_id] = _dump(path)
            records = [r for b in dumps[node_id]["files"][0]["batches"] for r in b.get("records") or []]
            if len(records) < COUNT + 1:
                return False
        return True

    wait_until(every_replica_has_everything, timeout_s=60, what="all 3 replicas hold every record", interval_s=0.5)
    assert len(dumps) == 3
    stored = {}
    for node_id, document in dumps.items():
        assert document["is_valid"] is True, (node_id, document)
        (log,) = document["files"]
        assert {batch["compression"] for batch in log["batches"]} == {"zstd"}, node_id
        assert all(batch["is_valid"] for batch in log["batches"])
        records = [r for b in log["batches"] for r in b["records"]]
        assert [(r["key"], r["value"], r["headers"], r["timestamp"]) for r in records] == expected
        assert [r["offset"] for r in records] == list(range(COUNT + 1))
        stored[node_id] = [(b["position"], b["crc"], b["size_bytes"]) for b in log["batches"]]
    assert len({tuple(batches) for batches in stored.values()}) == 1, "followers must hold the leader's bytes"

    consumer = kafka.KafkaConsumer(bootstrap_servers=kafka_cluster.kafka_bootstrap, enable_auto_commit=False)
    try:
        partition = kafka.TopicPartition(topic, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        got = []
        deadline = time.monotonic() + 30
        while len(got) < COUNT + 1 and time.monotonic() < deadline:
            for messages in consumer.poll(timeout_ms=500).values():
                got += [(m.key, m.value, list(m.headers), m.timestamp) for m in messages]
    finally:
        consumer.close()
    assert got == [(k, v, h, t) for k, v, h, t in sent] + [(b"sdk", b"from-grpc", [], BASE_TIMESTAMP_MS + COUNT)]


def test_a_batch_too_large_once_recompressed_is_refused_over_the_kafka_listener(kafka_cluster):
    """Goal: as Kafka, a gzip batch that fits max.message.bytes but not once stored uncompressed
    gets MESSAGE_TOO_LARGE (code 10) and nothing is written; a small record is accepted after.

    Method: compression.type=uncompressed, max.message.bytes=4096; kafka-python sends 64 KiB of
    zeros with gzip (about 100 bytes on the wire); then a 10-byte record; read back the offsets.
    """
    topic = f"uncompressed-{uuid.uuid4().hex[:8]}"
    created = run_cli(["topic", "create", topic, "-p", "1", "-r", "3", "--config", "compression.type=uncompressed",
                       "--config", "max.message.bytes=4096"], kafka_cluster.bootstrap)
    assert created.returncode == 0, created.stderr
    producer = kafka.KafkaProducer(bootstrap_servers=kafka_cluster.kafka_bootstrap, acks="all", compression_type="gzip",
                                   retries=0)
    try:
        refused = producer.send(topic, value=bytes(64 * 1024), partition=0)
        producer.flush(30)
        with pytest.raises(kafka.errors.MessageSizeTooLargeError):
            refused.get(30)
        accepted = producer.send(topic, value=b"small-one!", partition=0).get(30)
    finally:
        producer.close(10)
    assert accepted.offset == 0, "the refused batch must not have taken an offset"
