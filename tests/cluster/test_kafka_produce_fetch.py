"""Produce and fetch over the Kafka protocol with unmodified Kafka clients.

Goal: kafka-python, confluent-kafka (librdkafka) and aiokafka produce and consume through the
Kafka listener as they would against Kafka: keys, headers and timestamps come back equal, in
every compression, with acks 0/1/all; assign-mode consumers seek, look offsets up by time and
read the beginning and end offsets; the Freshet SDK and a Kafka client share one topic; corrupt
batches are refused with CORRUPT_RECORD and append nothing; an idempotent acks=all producer keeps
every acknowledged record exactly once across a kill -9 of the partition leader.

Method: a real `cluster up` of 3 nodes (the module's `kafka_cluster`, or a cluster of its own for
the kill); topics created with the Freshet CLI; raw Produce frames encoded with kio for the
corrupt batches. Group APIs are not used (assign, no group commits).

Reference: Kafka protocol guide (Produce, Fetch, ListOffsets); KIP-98 (idempotent producer).
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import socket
import struct
import threading
import time
import uuid

import aiokafka
import confluent_kafka
import kafka
import pytest
from freshet.client import Consumer as FreshetConsumer
from freshet.client import Producer as FreshetProducer
from freshet.client import TopicPartition as FreshetTopicPartition
from freshet.storage.record_batch import Record, encode_batch
from kio.index import load_request_schema, load_response_schema
from kio.serial import entity_reader, entity_writer

from tests.support.cli_harness import ClusterUp, run_cli

pytestmark = pytest.mark.cluster

COMPRESSIONS = ["none", "gzip", "lz4", "zstd", "snappy"]
COUNT = 20
BASE_TIMESTAMP_MS = 1_700_000_000_000


def create_topic(cluster, partitions: int = 1, replication: int = 3) -> str:
    name = f"k-{uuid.uuid4().hex[:10]}"
    result = run_cli(["topic", "create", name, "-p", str(partitions), "-r", str(replication)], cluster.bootstrap)
    assert result.returncode == 0, result.stderr
    return name


def sample(tag: str) -> list[tuple[bytes, bytes, list[tuple[str, bytes]], int]]:
    """(key, value, headers, timestamp) of COUNT records; values compress (repeated text)."""
    return [
        (f"{tag}-key-{i}".encode(), (f"{tag}-value-{i}-" * 20).encode(), [("h1", f"x{i}".encode()), ("h2", b"")],
         BASE_TIMESTAMP_MS + i * 10)
        for i in range(COUNT)
    ]


# -- one client, every compression -------------------------------------------------------------------


def _kafka_python_round_trip(bootstrap: str, topic: str, records, compression: str):
    producer = kafka.KafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                   compression_type=None if compression == "none" else compression)
    try:
        futures = [producer.send(topic, key=k, value=v, headers=h, partition=0, timestamp_ms=t) for k, v, h, t in records]
        producer.flush(30)
        offsets = [future.get(30).offset for future in futures]
    finally:
        producer.close(10)
    consumer = kafka.KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        tp = kafka.TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        got = []
        deadline = time.monotonic() + 30
        while len(got) < len(records) and time.monotonic() < deadline:
            for messages in consumer.poll(timeout_ms=500).values():
                got += [(m.offset, m.key, m.value, list(m.headers), m.timestamp) for m in messages]
    finally:
        consumer.close()
    return offsets, got


def _confluent_round_trip(bootstrap: str, topic: str, records, compression: str):
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "acks": "all", "compression.type": compression,
                                         "enable.idempotence": True, "linger.ms": 5})
    offsets = [None] * len(records)

    def delivered(index):
        def done(error, message):
            assert error is None, error
            offsets[index] = message.offset()
        return done

    for index, (k, v, h, t) in enumerate(records):
        producer.produce(topic, key=k, value=v, headers=h, partition=0, timestamp=t, on_delivery=delivered(index))
    assert producer.flush(30) == 0
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "assign-only", "enable.auto.commit": False})
    try:
        consumer.assign([confluent_kafka.TopicPartition(topic, 0, confluent_kafka.OFFSET_BEGINNING)])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < len(records) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            got.append((message.offset(), message.key(), message.value(), list(message.headers() or []), message.timestamp()[1]))
    finally:
        consumer.close()
    return offsets, got


def _aiokafka_round_trip(bootstrap: str, topic: str, records, compression: str):
    async def scenario():
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                             compression_type=None if compression == "none" else compression)
        await producer.start()
        try:
            futures = [await producer.send(topic, key=k, value=v, headers=h, partition=0, timestamp_ms=t) for k, v, h, t in records]
            offsets = [(await future).offset for future in futures]
        finally:
            await producer.stop()
        consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            tp = aiokafka.TopicPartition(topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            got = []
            deadline = time.monotonic() + 30
            while len(got) < len(records) and time.monotonic() < deadline:
                for messages in (await consumer.getmany(timeout_ms=500)).values():
                    got += [(m.offset, m.key, m.value, list(m.headers), m.timestamp) for m in messages]
        finally:
            await consumer.stop()
        return offsets, got

    return asyncio.run(scenario())


ROUND_TRIPS = {"kafka-python": _kafka_python_round_trip, "confluent-kafka": _confluent_round_trip, "aiokafka": _aiokafka_round_trip}


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("client", sorted(ROUND_TRIPS))
def test_a_kafka_client_reads_back_what_it_produced_in_each_compression(kafka_cluster, client, compression):
    """Keys, values, headers and CreateTime timestamps come back byte for byte at the offsets the
    produce acknowledged (snappy needs the broker's snappy support, another branch)."""
    topic = create_topic(kafka_cluster)
    records = sample(f"{client}-{compression}")
    offsets, got = ROUND_TRIPS[client](kafka_cluster.kafka_bootstrap, topic, records, compression)
    assert offsets == list(range(COUNT))
    assert got == [(i, k, v, h, t) for i, (k, v, h, t) in enumerate(records)]


# -- acks, offsets and seeks ----------------------------------------------------------------------------


@pytest.mark.parametrize("acks", [0, 1, "all"])
def test_kafka_python_produces_with_acks_0_1_and_all(kafka_cluster, acks):
    topic = create_topic(kafka_cluster)
    producer = kafka.KafkaProducer(bootstrap_servers=kafka_cluster.kafka_bootstrap, acks=acks)
    try:
        futures = [producer.send(topic, value=b"v%d" % i, partition=0) for i in range(COUNT)]
        producer.flush(30)
        metadata = [future.get(30) for future in futures]
    finally:
        producer.close(10)
    if acks != 0:
        assert [m.offset for m in metadata] == list(range(COUNT))
    consumer = kafka.KafkaConsumer(bootstrap_servers=kafka_cluster.kafka_bootstrap, enable_auto_commit=False)
    try:
        tp = kafka.TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        values = []
        deadline = time.monotonic() + 30
        while len(values) < COUNT and time.monotonic() < deadline:
            for messages in consumer.poll(timeout_ms=500).values():
                values += [(m.offset, m.value) for m in messages]
    finally:
        consumer.close()
    assert values == [(i, b"v%d" % i) for i in range(COUNT)]


def test_assign_mode_consumers_seek_and_look_offsets_up(kafka_cluster):
    """beginning/end offsets, offsets_for_times (first record at or after) and seek, with
    kafka-python and librdkafka over the same partition."""
    topic = create_topic(kafka_cluster)
    records = sample("seek")
    _kafka_python_round_trip(kafka_cluster.kafka_bootstrap, topic, records, "none")
    consumer = kafka.KafkaConsumer(bootstrap_servers=kafka_cluster.kafka_bootstrap, enable_auto_commit=False)
    try:
        tp = kafka.TopicPartition(topic, 0)
        consumer.assign([tp])
        assert consumer.beginning_offsets([tp]) == {tp: 0}
        assert consumer.end_offsets([tp]) == {tp: COUNT}
        found = consumer.offsets_for_times({tp: BASE_TIMESTAMP_MS + 55})[tp]
        assert (found.offset, found.timestamp) == (6, BASE_TIMESTAMP_MS + 60)
        assert consumer.offsets_for_times({tp: BASE_TIMESTAMP_MS + 10 * COUNT})[tp] is None
        consumer.seek(tp, 15)
        messages = []
        deadline = time.monotonic() + 30
        while len(messages) < 5 and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                messages += batch
        assert [m.offset for m in messages] == [15, 16, 17, 18, 19]
    finally:
        consumer.close()
    librdkafka = confluent_kafka.Consumer({"bootstrap.servers": kafka_cluster.kafka_bootstrap, "group.id": "assign-only"})
    try:
        assert librdkafka.get_watermark_offsets(confluent_kafka.TopicPartition(topic, 0), timeout=10) == (0, COUNT)
        (found,) = librdkafka.offsets_for_times([confluent_kafka.TopicPartition(topic, 0, BASE_TIMESTAMP_MS + 100)], timeout=10)
        assert found.offset == 10
        librdkafka.assign([confluent_kafka.TopicPartition(topic, 0, 18)])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 2 and time.monotonic() < deadline:
            message = librdkafka.poll(0.5)
            if message is not None and message.error() is None:
                got.append(message.offset())
        assert got == [18, 19]
    finally:
        librdkafka.close()


def test_the_freshet_sdk_and_a_kafka_client_share_a_topic(kafka_cluster):
    """Records written alternately by the SDK (gRPC) and kafka-python (Kafka protocol) get one
    sequence of offsets, and each side reads the other's records."""
    topic = create_topic(kafka_cluster)
    kafka_producer = kafka.KafkaProducer(bootstrap_servers=kafka_cluster.kafka_bootstrap, acks="all")
    expected = []
    try:
        with FreshetProducer(kafka_cluster.bootstrap, acks="all") as sdk_producer:
            for i in range(10):
                if i % 2:
                    offset = kafka_producer.send(topic, key=b"kafka", value=b"%d" % i, partition=0,
                                                 headers=[("via", b"kafka")]).get(30).offset
                else:
                    offset = sdk_producer.send(topic, key=b"sdk", value=b"%d" % i, partition=0,
                                               headers=[("via", b"sdk")]).result(30).offset
                expected.append((offset, b"kafka" if i % 2 else b"sdk", b"%d" % i))
    finally:
        kafka_producer.close(10)
    assert [offset for offset, _, _ in expected] == list(range(10))
    with FreshetConsumer(kafka_cluster.bootstrap, auto_offset_reset="earliest") as sdk_consumer:
        sdk_consumer.assign([FreshetTopicPartition(topic, 0)])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 10 and time.monotonic() < deadline:
            got += [(r.offset, r.key, r.value) for r in sdk_consumer.poll(timeout_ms=500)]
    assert got == expected
    consumer = kafka.KafkaConsumer(bootstrap_servers=kafka_cluster.kafka_bootstrap, enable_auto_commit=False)
    try:
        tp = kafka.TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        read = []
        deadline = time.monotonic() + 30
        while len(read) < 10 and time.monotonic() < deadline:
            for messages in consumer.poll(timeout_ms=500).values():
                read += [(m.offset, m.key, m.value) for m in messages]
    finally:
        consumer.close()
    assert read == expected


# -- corrupt input ------------------------------------------------------------------------------------


def _produce_raw(address: tuple[str, int], topic: str, records: bytes) -> int:
    """Send one Produce v9 (acks=1) with `records` for partition 0; the partition's error code."""
    version = 9
    schema = load_request_schema(0, version)
    module = __import__(schema.__module__, fromlist=["x"])
    body = schema(transactional_id=None, acks=1, timeout=__import__("datetime").timedelta(seconds=10), topic_data=(
        module.TopicProduceData(name=topic, partition_data=(module.PartitionProduceData(index=0, records=records),)),))
    buffer = io.BytesIO()
    entity_writer(schema.__header_schema__)(buffer, schema.__header_schema__(
        request_api_key=0, request_api_version=version, correlation_id=7, client_id="raw"))
    entity_writer(schema)(buffer, body)
    frame = buffer.getvalue()
    with socket.create_connection(address, timeout=15) as sock:
        sock.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", _read_exactly(sock, 4))[0]
        data = _read_exactly(sock, size)
    response_schema = load_response_schema(0, version)
    header, used = entity_reader(response_schema.__header_schema__)(data, 0)
    assert header.correlation_id == 7
    response, _ = entity_reader(response_schema)(data, used)
    return int(response.responses[0].partition_responses[0].error_code)


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = b""
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        assert chunk, "connection closed"
        chunks += chunk
    return chunks


def test_corrupt_batches_are_refused_and_append_nothing(kafka_cluster):
    """A batch cut short and a batch whose CRC does not match get CORRUPT_MESSAGE (2) from the
    leader, and the next good record takes the offset right after the last good one."""
    topic = create_topic(kafka_cluster)
    good = bytes(encode_batch([Record(BASE_TIMESTAMP_MS, b"k", b"good")]))
    wrong_crc = bytearray(encode_batch([Record(BASE_TIMESTAMP_MS, b"k", b"tampered")]))
    wrong_crc[-1] ^= 0xFF
    truncated = bytes(encode_batch([Record(BASE_TIMESTAMP_MS, b"k", b"cut" * 50)]))[:-20]
    addresses = [(host, int(port)) for host, port in (a.rsplit(":", 1) for a in kafka_cluster.kafka_bootstrap.split(","))]
    leader = None
    deadline = time.monotonic() + 30
    while leader is None and time.monotonic() < deadline:
        for address in addresses:
            if _produce_raw(address, topic, good) == 0:
                leader = address
                break
        else:
            time.sleep(0.2)
    assert leader is not None, "no broker accepted the good batch"
    assert _produce_raw(leader, topic, bytes(wrong_crc)) == 2
    assert _produce_raw(leader, topic, truncated) == 2
    producer = kafka.KafkaProducer(bootstrap_servers=kafka_cluster.kafka_bootstrap, acks="all")
    try:
        assert producer.send(topic, value=b"after", partition=0).get(30).offset == 1
    finally:
        producer.close(10)


# -- kill -9 of the leader ------------------------------------------------------------------------------


def test_idempotent_acks_all_producer_survives_a_leader_kill_exactly_once(tmp_path):
    """Every record librdkafka acknowledged is read back exactly once at the offset it was
    acknowledged with, although the partition leader was killed with SIGKILL mid-stream."""
    cluster = ClusterUp(tmp_path / "kill")
    try:
        cluster.wait_ready()
        topic = create_topic(cluster)
        producer = confluent_kafka.Producer({
            "bootstrap.servers": cluster.kafka_bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 2,
            "message.timeout.ms": 60000, "retry.backoff.ms": 100,
        })
        acked: dict[bytes, int] = {}
        failed: list = []
        lock = threading.Lock()

        def delivered(error, message):
            with lock:
                if error is None:
                    acked[message.value()] = message.offset()
                else:
                    failed.append(error)

        total = 3000
        killed = False
        for n in range(total):
            producer.produce(topic, value=b"%06d" % n, partition=0, on_delivery=delivered)
            producer.poll(0)
            if n % 100 == 0:
                time.sleep(0.02)
            if not killed and n == total // 3:
                producer.flush(30)
                leader = producer.list_topics(topic, timeout=10).topics[topic].partitions[0].leader
                os.kill(cluster.node_pids[leader], signal.SIGKILL)
                killed = True
        assert producer.flush(90) == 0
        assert killed and not failed, failed[:3]
        assert len(acked) == total
        consumer = confluent_kafka.Consumer({"bootstrap.servers": cluster.kafka_bootstrap, "group.id": "assign-only"})
        try:
            consumer.assign([confluent_kafka.TopicPartition(topic, 0, confluent_kafka.OFFSET_BEGINNING)])
            read: list[tuple[int, bytes]] = []
            deadline = time.monotonic() + 60
            while len(read) < total and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is not None and message.error() is None:
                    read.append((message.offset(), message.value()))
        finally:
            consumer.close()
        values = [value for _, value in read]
        assert len(values) == len(set(values)), "a record was written twice"
        assert dict((value, offset) for offset, value in read) == acked
        assert [offset for offset, _ in read] == list(range(len(read)))
    finally:
        cluster.close()


# -- transactions (not supported) -----------------------------------------------------------------------


def test_transactional_producers_fail_fast_with_a_clear_error(kafka_cluster):
    """Transactions do not exist: librdkafka's and kafka-python's init_transactions fail at once
    (well under their 5 s timeout) instead of retrying. The transaction APIs are not advertised, but
    FindCoordinator is (consumer groups), so the clients ask it for a transaction coordinator and get
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED, which both treat as fatal."""
    producer = confluent_kafka.Producer({"bootstrap.servers": kafka_cluster.kafka_bootstrap, "transactional.id": "tx-1"})
    started = time.monotonic()
    with pytest.raises(confluent_kafka.KafkaException) as refused:
        producer.init_transactions(5)
    assert time.monotonic() - started < 1.5
    error = refused.value.args[0]
    assert error.code() == confluent_kafka.KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, error
    assert error.fatal() and not error.retriable()
    assert "no transaction coordinator" in error.str()
    started = time.monotonic()
    with pytest.raises(kafka.errors.TransactionalIdAuthorizationFailedError) as refused_too:
        python_producer = kafka.KafkaProducer(bootstrap_servers=kafka_cluster.kafka_bootstrap, transactional_id="tx-2")
        try:
            python_producer.init_transactions()
        finally:
            python_producer.close(1)
    assert time.monotonic() - started < 5, refused_too.value
