"""librdkafka's snappy batches, captured off the wire, decode with storage's codec.

Goal: Freshet reads the snappy that librdkafka (confluent-kafka) writes: raw snappy, without
snappy-java's xerial framing (rdkafka_msgset_writer.c compresses with rd_kafka_snappy_compress_iov
and writes no header), and a batch we rebuild from it (compaction) is xerial-framed.

Method: the broker's own Kafka listener (server/kafka/listener.py) on a free loopback port with
ApiVersions, a one-partition Metadata and a Produce handler that keeps each request's records
and acknowledges them; a confluent-kafka Producer with compression.type=snappy sends to it.
"""

from __future__ import annotations

import asyncio
import datetime
import threading

import confluent_kafka
import pytest
from freshet.server.kafka import codec
from freshet.server.kafka.apis import KafkaApis
from freshet.server.kafka.listener import KafkaListener
from freshet.server.metrics import BrokerMetrics
from freshet.storage.compression import XERIAL_MAGIC, CompressionType
from freshet.storage.record_batch import (
    BATCH_HEADER_SIZE,
    decode_batch,
    decode_raw_records,
    iter_batches,
    rebuild_batch,
)
from prometheus_client import CollectorRegistry

TOPIC = "snappy-capture"


class _OnePartitionMetadata:
    """Metadata (key 3): this listener is broker 1 and leads partition 0 of TOPIC."""

    api_key = 3
    name = "Metadata"
    versions = (1, 4)

    def __init__(self, listener: KafkaListener) -> None:
        self._listener = listener

    def handle(self, request: codec.Request):
        schema = codec.response_schema(self.api_key, request.api_version)
        broker = codec.build(
            codec.nested(schema, "MetadataResponseBroker"), node_id=1, host="127.0.0.1", port=self._listener.port, rack=None
        )
        partition = codec.build(
            codec.nested(schema, "MetadataResponsePartition"),
            error_code=0, partition_index=0, leader_id=1, replica_nodes=(1,), isr_nodes=(1,), offline_replicas=(),
        )
        topic = codec.build(
            codec.nested(schema, "MetadataResponseTopic"), error_code=0, name=TOPIC, is_internal=False, partitions=(partition,)
        )
        return codec.build(schema, throttle_time=0, brokers=(broker,), cluster_id="capture", controller_id=1, topics=(topic,))


class _CapturingProduce:
    """Produce (key 0): keeps the records bytes of every partition and acknowledges them."""

    api_key = 0
    name = "Produce"
    versions = (3, 7)

    def __init__(self) -> None:
        self.captured: list[bytes] = []
        self._next_offset = 0

    def handle(self, request: codec.Request):
        schema = codec.response_schema(self.api_key, request.api_version)
        partition_class = codec.nested(schema, "PartitionProduceResponse")
        topics = []
        for topic in request.body.topic_data:
            partitions = []
            for data in topic.partition_data:
                records = bytes(data.records)
                self.captured.append(records)
                partitions.append(codec.build(
                    partition_class, index=data.index, error_code=0, base_offset=self._next_offset,
                    log_append_time=datetime.datetime.fromtimestamp(-0.001, datetime.UTC), log_start_offset=0,
                ))
                self._next_offset += sum(header.record_count for header, _ in iter_batches(records))
            topics.append(codec.build(codec.nested(schema, "TopicProduceResponse"), name=topic.name, partition_responses=tuple(partitions)))
        return codec.build(schema, responses=tuple(topics), throttle_time=0)


class _AdvertisedFetch:
    """Fetch (key 1) at v4, advertised only: librdkafka writes v2 batches (its MsgVer2 feature)
    only to a broker whose ApiVersions lists both Produce v3 and Fetch v4. A producer never
    fetches, so a call is a bug in this test."""

    api_key = 1
    name = "Fetch"
    versions = (4, 4)

    def handle(self, request: codec.Request):
        raise AssertionError("a producer sent a Fetch request")


@pytest.fixture
def capturing_broker():
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="capture-loop", daemon=True)
    thread.start()
    apis = KafkaApis(BrokerMetrics(CollectorRegistry()))
    listener = KafkaListener("127.0.0.1", 0, apis)
    produce = _CapturingProduce()
    apis.add(_OnePartitionMetadata(listener))
    apis.add(produce)
    apis.add(_AdvertisedFetch())
    asyncio.run_coroutine_threadsafe(listener.start(), loop).result(10)
    try:
        yield listener, produce
    finally:
        asyncio.run_coroutine_threadsafe(listener.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_librdkafka_writes_raw_snappy_that_decodes_and_compaction_rewrites_as_xerial(capturing_broker):
    listener, produce = capturing_broker
    producer = confluent_kafka.Producer({
        "bootstrap.servers": f"127.0.0.1:{listener.port}",
        "compression.type": "snappy",
        "linger.ms": 50,
        "enable.idempotence": False,
        "message.timeout.ms": 20000,
    })
    sent = [(b"key-%d" % n, (b"value-%d " % n) * 40, [("h", b"%d" % n)]) for n in range(300)]
    errors = []
    for key, value, headers in sent:
        producer.produce(TOPIC, value=value, key=key, headers=headers, partition=0,
                         on_delivery=lambda error, _: errors.append(error) if error else None)
    assert producer.flush(30) == 0
    assert errors == []
    decoded = []
    sections = []
    for records in produce.captured:
        for _, view in iter_batches(records):
            header, batch_records = decode_batch(view)
            assert header.compression == CompressionType.SNAPPY
            sections.append(bytes(view[BATCH_HEADER_SIZE:]))
            decoded.extend((record.key, record.value, record.headers) for record in batch_records)
    assert decoded == [(key, value, [(name, data) for name, data in headers]) for key, value, headers in sent]
    # What librdkafka wrote is raw snappy: no xerial header.
    assert sections and not any(section.startswith(XERIAL_MAGIC) for section in sections)
    # Compaction rebuilds such a batch in the xerial framing, and it still decodes.
    _, first = next(iter_batches(produce.captured[0]))
    header, section, raw_records = decode_raw_records(first)
    rebuilt = rebuild_batch(header, section, raw_records[1:])
    assert bytes(rebuilt[BATCH_HEADER_SIZE : BATCH_HEADER_SIZE + len(XERIAL_MAGIC)]) == XERIAL_MAGIC
    assert [record.key for record in decode_batch(rebuilt).records] == [record.key for record in decode_batch(first).records][1:]
