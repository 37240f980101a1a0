"""kcat (librdkafka's command-line client) against the Kafka listener: metadata, produce, consume.

Goal: Debian's kcat, an unmodified Kafka client, lists the cluster (every broker at its Kafka
address, topics created through Freshet), produces records with keys and headers that it then
consumes byte for byte, and consumes what the Freshet SDK produced, uncompressed and snappy
(xerial-framed, which librdkafka must decode).
Method: one `cluster up` of 3 nodes (`kafka_cluster`); topics are created with the Freshet CLI
over gRPC; kcat runs as a child process with a bounded time (the `kcat` fixture finds or installs
it). Records are printed with a length-prefixed format, so any byte survives the comparison.

Reference: Kafka protocol guide (Metadata, Produce v3+, Fetch v4+); kcat's -L/-P/-C modes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from freshet.client import Producer

pytestmark = pytest.mark.cluster

CLI = [sys.executable, "-m", "freshet.cli.main"]
KCAT_TIMEOUT_S = 60
#: Offset, key length and value length on a line, then the key and the value bytes, a newline and
#: the headers (kcat's "n=v" CSV) on a line: lengths make any byte of a key or value unambiguous.
RECORD_FORMAT = r"%o %K %S\n%k%s\n%h\n"
#: Bytes kcat passes through unchanged except the delimiters (newline ends a record, ":" the key).
ODD_BYTES = bytes(range(0x80, 0x100)) + b"\x00\x01\x7f\t "


def _create_topic(kafka_cluster, name: str, partitions: int) -> None:
    result = subprocess.run(
        [*CLI, "topic", "create", name, "--partitions", str(partitions), "--replication-factor", "3",
         "-b", kafka_cluster.bootstrap],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr


def _kcat(kcat: str, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([kcat, *args], input=data, capture_output=True, timeout=KCAT_TIMEOUT_S)


def _metadata(kcat: str, kafka_cluster) -> dict:
    listed = _kcat(kcat, "-L", "-J", "-b", kafka_cluster.kafka_bootstrap, "-m", "10")
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)


def _consume(kcat: str, kafka_cluster, topic: str, count: int) -> list[tuple[int, bytes, bytes, bytes]]:
    """(offset, key, value, headers CSV) of the first `count` records of partition 0 of `topic`."""
    result = _kcat(
        kcat, "-C", "-b", kafka_cluster.kafka_bootstrap, "-t", topic, "-p", "0", "-o", "0",
        "-c", str(count), "-e", "-f", RECORD_FORMAT, "-X", "fetch.wait.max.ms=100",
    )
    assert result.returncode == 0, result.stderr
    records = []
    output = result.stdout
    position = 0
    while position < len(output):
        line_end = output.index(b"\n", position)
        offset, key_length, value_length = (int(part) for part in output[position:line_end].split())
        position = line_end + 1
        key = output[position : position + max(key_length, 0)]
        position += max(key_length, 0)
        value = output[position : position + max(value_length, 0)]
        position += max(value_length, 0)
        assert output[position : position + 1] == b"\n"
        headers_end = output.index(b"\n", position + 1)
        records.append((offset, key, value, output[position + 1 : headers_end]))
        position = headers_end + 1
    return records


def test_kcat_lists_every_broker_at_its_kafka_address_and_a_topic_created_with_the_cli(kcat, kafka_cluster):
    """kcat -L: the 3 brokers at the addresses of their Kafka listeners, and a topic created over
    gRPC with its partitions, each led by one of those brokers with 3 replicas in sync."""
    _create_topic(kafka_cluster, "kcat-listed", 3)
    deadline = time.monotonic() + 30
    while True:
        metadata = _metadata(kcat, kafka_cluster)
        topics = {topic["topic"]: topic for topic in metadata["topics"]}
        listed = topics.get("kcat-listed")
        if listed is not None and all(partition["leader"] > 0 for partition in listed["partitions"]):
            break
        assert time.monotonic() < deadline, f"kcat-listed never listed with leaders: {metadata}"
        time.sleep(0.5)
    brokers = {broker["id"]: broker["name"] for broker in metadata["brokers"]}
    assert sorted(brokers.values()) == sorted(kafka_cluster.kafka_bootstrap.split(","))
    assert sorted(brokers) == [1, 2, 3]
    assert sorted(partition["partition"] for partition in listed["partitions"]) == [0, 1, 2]
    for partition in listed["partitions"]:
        assert partition["leader"] in brokers
        assert sorted(replica["id"] for replica in partition["replicas"]) == [1, 2, 3]
        assert sorted(replica["id"] for replica in partition["isrs"]) == [1, 2, 3]


def test_kcat_produces_with_keys_and_headers_and_consumes_the_same_bytes(kcat, kafka_cluster):
    """kcat -P -K: -H then kcat -C -e: every key, value and header comes back byte for byte, at
    consecutive offsets from 0.

    Uncompressed only: Debian's kcat links librdkafka 2.0.2, which sends gzip, snappy and lz4
    batches uncompressed to a broker that does not advertise Produce v0 ("Broker does not support
    compression type snappy: not compressing batch" in its msg debug log), and kio, hence the
    listener, has no Produce v0-v2 (Kafka 4 removed them). librdkafka's snappy is covered by
    tests/unit/server/kafka/test_kafka_librdkafka_snappy.py with confluent-kafka's newer build.
    """
    topic = "kcat-round-trip"
    _create_topic(kafka_cluster, topic, 1)
    sent = [(b"key-%d" % n, b"value-%d-" % n + ODD_BYTES * (n % 3)) for n in range(50)]
    produced = _kcat(
        kcat, "-P", "-b", kafka_cluster.kafka_bootstrap, "-t", topic, "-p", "0", "-K", ":",
        "-H", "trace=abc", "-H", "origin=kcat", "-X", "message.timeout.ms=20000",
        data=b"".join(key + b":" + value + b"\n" for key, value in sent),
    )
    assert produced.returncode == 0, produced.stderr
    assert _consume(kcat, kafka_cluster, topic, len(sent)) == [
        (offset, key, value, b"trace=abc,origin=kcat") for offset, (key, value) in enumerate(sent)
    ]


@pytest.mark.parametrize("compression", ["none", "snappy"])
def test_kcat_consumes_what_the_freshet_sdk_produced(kcat, kafka_cluster, compression):
    """Records sent by the Freshet SDK over gRPC (with snappy: xerial-framed batches) are read by
    kcat over the Kafka protocol with the same keys, values and headers."""
    topic = f"kcat-from-sdk-{compression}"
    _create_topic(kafka_cluster, topic, 1)
    sent = [(b"sdk-%d" % n, b"payload-%d-" % n + ODD_BYTES * (n % 4), b"%d" % n) for n in range(120)]
    with Producer(kafka_cluster.bootstrap, compression=compression, linger_ms=20) as producer:
        futures = [
            producer.send(topic, key=key, value=value, headers=[("n", header)], partition=0)
            for key, value, header in sent
        ]
        producer.flush(30)
    assert [future.result(30).offset for future in futures] == list(range(len(sent)))
    assert _consume(kcat, kafka_cluster, topic, len(sent)) == [
        (offset, key, value, b"n=" + header) for offset, (key, value, header) in enumerate(sent)
    ]
