"""The Kafka data APIs (Produce, Fetch, ListOffsets, InitProducerId, DescribeLogDirs,
DescribeProducers, DeleteRecords, the refused transaction APIs) over the real produce, fetch and
delete-records paths.

Goal: each handler maps a Kafka request onto the one data path (server/broker/produce.py,
fetch.py) and its answer back with Kafka's exact error codes, for every version it advertises.
Method: the data plane's real `ProducePath`/`FetchPath`/`PartitionTable` over the fake log of
tests/unit/server/test_broker_paths.py, requests built as kio entities of a given version, and
every response encoded with the version's kio writer (so a field the version lacks, or a wrong
type, fails here and not in a client).

Reference: Kafka protocol guide (Produce, Fetch, ListOffsets); KIP-227 (fetch sessions), KIP-320
(leader epoch fencing), KIP-516 (topic ids), KIP-734 (max timestamp), KIP-951 (leader hints),
KIP-107 (DeleteRecords).
"""

from __future__ import annotations

import asyncio
import dataclasses
import types
import uuid

import pytest
from freshet.server.broker.delete_records import DeleteRecordsPath
from freshet.server.config import KAFKA_LISTENER
from freshet.server.kafka import codec
from freshet.server.kafka.apis import CLOSE_CONNECTION, NO_RESPONSE, KafkaApis
from freshet.server.kafka.delete_records_api import DeleteRecordsHandler
from freshet.server.kafka.fetch_api import FetchHandler, ListOffsetsHandler
from freshet.server.kafka.log_dirs_api import DescribeLogDirsHandler, DescribeProducersHandler
from freshet.server.kafka.produce_api import InitProducerIdHandler, ProduceHandler
from freshet.server.kafka.transactions_api import REFUSED_APIS
from freshet.server.metrics import BrokerMetrics
from freshet.storage.errors import OffsetOutOfRangeError
from freshet.storage.file_region import FileRegion
from freshet.storage.log import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, TIMESTAMP_MAX, TimestampAndOffset
from kio.index import load_request_schema
from kio.serial import entity_reader
from prometheus_client import CollectorRegistry

from tests.unit.server.test_broker_paths import BATCH, NODE, TOPIC_ID, FakeLog, apply, hosted, make_broker

TOPIC_UUID = uuid.UUID(bytes=TOPIC_ID)


class KafkaFakeLog(FakeLog):
    """The fake log plus the reads ListOffsets and DescribeProducers make (record i has timestamp 100 + i)."""

    def offsets_for_time(self, timestamp: int):
        if timestamp == TIMESTAMP_MAX:
            return TimestampAndOffset(100 + len(self.batches) - 1, len(self.batches) - 1) if self.batches else None
        if timestamp in (EARLIEST_TIMESTAMP, LATEST_TIMESTAMP):
            raise AssertionError("the fetch path answers these itself")
        offset = max(timestamp - 100, 0)
        return TimestampAndOffset(100 + offset, offset) if offset < len(self.batches) else None

    def active_producers(self):
        return [(7, 2, 41, 1234)]

    def delete_records_before(self, offset: int, high_watermark: int) -> int:
        """PartitionLog's bounds: forward only, never past the high watermark."""
        if offset < 0 or offset > min(high_watermark, self.log_end_offset):
            raise OffsetOutOfRangeError(offset, self.log_start_offset, high_watermark)
        self.log_start_offset = max(self.log_start_offset, offset)
        return self.log_start_offset


@dataclasses.dataclass
class KafkaBroker:
    host: str = "b3"                            # the gRPC endpoint (the NOT_LEADER hint's)
    port: int = 9103
    rack: str = ""

    def listener(self, name: str):
        assert name == KAFKA_LISTENER
        return ("k3", 9093)


class FakeIds:
    def __init__(self) -> None:
        self.next = 1000

    async def next_id(self, deadline: float) -> int:
        self.next += 1
        return self.next - 1


class FakeDataPlane:
    """What the Kafka handlers use of DataPlane, delegating to the real paths as DataPlane does."""

    def __init__(self, broker) -> None:
        self.node_id = NODE
        self._broker = broker
        self.producer_ids = FakeIds()
        self.live_brokers: set[int] = set()
        self.delete_records_path = DeleteRecordsPath(broker.table, lambda node_id: node_id in self.live_brokers)

    def produce(self, request, on_done):
        return self._broker.produce.produce(request, on_done)

    async def fetch(self, request):
        return await self._broker.fetch.fetch(request)

    async def fetch_regions(self, request):
        return await self._broker.fetch.fetch_regions(request)

    def list_offsets(self, request):
        return self._broker.fetch.list_offsets(request)

    def describe_log_dirs(self, request):
        return self._broker.fetch.describe_log_dirs(request)

    def describe_producers(self, topic, partition):
        return self._broker.fetch.describe_producers(topic, partition)

    async def delete_records(self, wanted, timeout_ms):
        return await self.delete_records_path.delete_records(wanted, timeout_ms)


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def setup(loop, leader: int = NODE, epoch: int = 1, isr=(1,), min_isr: int = 1):
    broker = make_broker(loop)
    broker.log = KafkaFakeLog()
    apply(broker, hosted(broker, leader=leader, epoch=epoch, isr=isr, min_isr=min_isr))
    image = broker.publisher.image
    image.topics_by_id = {TOPIC_ID: types.SimpleNamespace(name="t")}
    image.brokers = {3: KafkaBroker()}
    image.active_broker_ids = lambda: [3]
    return broker, FakeDataPlane(broker), lambda: image


def body(api_key: int, version: int, **fields):
    return codec.build(load_request_schema(api_key, version), **fields)


def nested(api_key: int, version: int, class_name: str, **fields):
    return codec.build(codec.nested(load_request_schema(api_key, version), class_name), **fields)


def request(api_key: int, version: int, entity) -> codec.Request:
    return codec.Request(api_key, version, 1, "test", entity, 0)


def run(loop, answer):
    """The handler's answer, awaited when it is awaitable, and checked to encode."""
    async def settle():
        return await answer if asyncio.iscoroutine(answer) or isinstance(answer, asyncio.Future) else answer
    return loop.run_until_complete(settle())


def call(loop, handler, api_key: int, version: int, entity):
    async def scenario():
        answer = handler.handle(request(api_key, version, entity))
        if asyncio.iscoroutine(answer):
            answer = await answer
        return answer
    answer = loop.run_until_complete(scenario())
    if getattr(handler, "has_file_regions", False):
        return sent(codec.encode_response_parts(api_key, version, 1, answer), api_key, version)
    if answer is not NO_RESPONSE and answer is not CLOSE_CONNECTION:
        codec.encode_response(api_key, version, 1, answer)
    return answer


def sent(response: codec.ResponseParts, api_key: int, version: int):
    """What a client decodes from a response written as parts (regions read, then closed)."""
    frame = b"".join(part.read() if isinstance(part, FileRegion) else part for part in response.parts)
    response.close()
    assert codec.size_of(frame[:4]) == len(frame) - 4 == response.size - 4
    _, header_schema, _, _ = codec._response_codec(api_key, version)
    header, header_size = entity_reader(header_schema)(frame, 4)
    assert header.correlation_id == 1
    body, body_size = entity_reader(codec.response_schema(api_key, version))(frame, 4 + header_size)
    assert 4 + header_size + body_size == len(frame)
    return body


# -- Produce ---------------------------------------------------------------------------------------


def produce_body(version: int, acks: int, records: bytes = BATCH, timeout_ms: int = 1000, topic_id=None):
    partition = nested(0, version, "PartitionProduceData", index=0, records=records)
    topic = nested(0, version, "TopicProduceData", name="t", topic_id=topic_id or TOPIC_UUID, partition_data=(partition,))
    return body(0, version, transactional_id=None, acks=acks, timeout=timeout_ms, topic_data=(topic,))


def produced(response):
    (topic,) = response.responses
    (partition,) = topic.partition_responses
    return partition


@pytest.mark.parametrize("version", range(3, 14))
def test_produce_acks_1_answers_the_base_offset_at_every_version(loop, version):
    broker, plane, image = setup(loop)
    handler = ProduceHandler(plane, image)
    call(loop, handler, 0, version, produce_body(version, 1))
    answer = produced(call(loop, handler, 0, version, produce_body(version, 1)))
    assert (answer.error_code, answer.base_offset, answer.log_append_time) == (0, 1, None)
    if version >= 5:
        assert answer.log_start_offset == 0
    assert broker.log.log_end_offset == 2


def test_produce_v13_names_topics_by_id_and_refuses_an_unknown_one(loop):
    broker, plane, image = setup(loop)
    handler = ProduceHandler(plane, image)
    response = call(loop, handler, 0, 13, produce_body(13, 1, topic_id=uuid.uuid4()))
    assert produced(response).error_code == 100                       # UNKNOWN_TOPIC_ID
    assert broker.log.log_end_offset == 0
    assert produced(call(loop, handler, 0, 13, produce_body(13, 1))).error_code == 0


def test_produce_acks_0_gets_no_response_and_closes_the_connection_on_error(loop):
    broker, plane, image = setup(loop)
    handler = ProduceHandler(plane, image)
    assert call(loop, handler, 0, 9, produce_body(9, 0)) is NO_RESPONSE
    assert broker.log.log_end_offset == 1
    two_batches = BATCH + BATCH
    assert call(loop, handler, 0, 9, produce_body(9, 0, records=two_batches)) is CLOSE_CONNECTION
    assert broker.log.log_end_offset == 1


def test_produce_to_a_follower_is_not_leader_or_follower_with_the_leader_and_its_endpoint(loop):
    broker, plane, image = setup(loop, leader=3, epoch=7)
    handler = ProduceHandler(plane, image)
    response = call(loop, handler, 0, 10, produce_body(10, 1))
    answer = produced(response)
    assert answer.error_code == 6                                      # NOT_LEADER_OR_FOLLOWER
    assert (answer.current_leader.leader_id, answer.current_leader.leader_epoch) == (3, 7)
    assert [(e.node_id, e.host, e.port) for e in response.node_endpoints] == [(3, "k3", 9093)]
    assert answer.error_message


def test_produce_errors_map_to_kafka_codes(loop):
    broker, plane, image = setup(loop, isr=(1,), min_isr=2)
    handler = ProduceHandler(plane, image)
    assert produced(call(loop, handler, 0, 9, produce_body(9, -1))).error_code == 19   # NOT_ENOUGH_REPLICAS
    assert produced(call(loop, handler, 0, 9, produce_body(9, 2))).error_code == 21    # INVALID_REQUIRED_ACKS
    answer = produced(call(loop, handler, 0, 9, produce_body(9, 1, records=BATCH + BATCH)))
    assert answer.error_code == 87                                                      # INVALID_RECORD
    assert "more than one record batch" in answer.error_message
    assert broker.log.log_end_offset == 0


def test_produce_acks_all_times_out_as_request_timed_out(loop):
    broker, plane, image = setup(loop, isr=(1, 2), min_isr=1)
    handler = ProduceHandler(plane, image)
    answer = produced(call(loop, handler, 0, 9, produce_body(9, -1, timeout_ms=20)))
    assert answer.error_code == 7                                                       # REQUEST_TIMED_OUT
    assert broker.log.log_end_offset == 1


# -- Fetch -----------------------------------------------------------------------------------------


def fetch_body(version: int, offset: int, epoch: int = -1, session_id: int = 0, session_epoch: int = -1,
               isolation_level: int = 0, topic_id=None, max_wait_ms: int = 0):
    partition = nested(1, version, "FetchPartition", partition=0, current_leader_epoch=epoch, fetch_offset=offset,
                       last_fetched_epoch=-1, log_start_offset=-1, partition_max_bytes=1 << 20)
    topic = nested(1, version, "FetchTopic", topic="t", topic_id=topic_id or TOPIC_UUID, partitions=(partition,))
    return body(1, version, replica_id=-1, max_wait=max_wait_ms, min_bytes=1, max_bytes=1 << 20,
                isolation_level=isolation_level, session_id=session_id, session_epoch=session_epoch,
                topics=(topic,), forgotten_topics_data=(), rack_id="")


def fetched(response):
    (topic,) = response.responses
    (partition,) = topic.partitions
    return partition


@pytest.mark.parametrize("version", range(4, 19))
def test_fetch_returns_committed_batches_as_bytes_at_every_version(loop, version):
    broker, plane, image = setup(loop, isr=(1,))
    produce_handler = ProduceHandler(plane, image)
    call(loop, produce_handler, 0, 9, produce_body(9, 1))
    broker.table.partitions[("t", 0)].leader.isr = (1, 2)                 # the next write is not committed
    call(loop, produce_handler, 0, 9, produce_body(9, 1))
    response = call(loop, FetchHandler(plane, image), 1, version, fetch_body(version, 0))
    answer = fetched(response)
    assert answer.error_code == 0
    assert bytes(answer.records) == BATCH
    assert (answer.high_watermark, answer.last_stable_offset) == (1, 1)
    assert answer.aborted_transactions is None
    if version >= 7:
        assert (response.error_code, response.session_id) == (0, 0)
    if version >= 11:
        assert answer.preferred_read_replica == -1


def test_fetch_read_committed_reads_to_the_high_watermark_with_no_aborted_transactions(loop):
    broker, plane, image = setup(loop)
    call(loop, ProduceHandler(plane, image), 0, 9, produce_body(9, 1))
    answer = fetched(call(loop, FetchHandler(plane, image), 1, 11, fetch_body(11, 0, isolation_level=1)))
    assert (answer.error_code, answer.last_stable_offset, answer.aborted_transactions) == (0, 1, ())


def test_fetch_fencing_out_of_range_and_unknown_topic_id(loop):
    broker, plane, image = setup(loop, epoch=5)
    handler = FetchHandler(plane, image)
    fenced = call(loop, handler, 1, 12, fetch_body(12, 0, epoch=4))
    assert fetched(fenced).error_code == 74                                               # FENCED_LEADER_EPOCH
    assert fetched(fenced).current_leader.leader_epoch == 5
    assert fetched(call(loop, handler, 1, 12, fetch_body(12, 0, epoch=6))).error_code == 75   # UNKNOWN_LEADER_EPOCH
    out = fetched(call(loop, handler, 1, 12, fetch_body(12, 9)))
    assert (out.error_code, out.log_start_offset) == (1, 0)                                 # OFFSET_OUT_OF_RANGE
    unknown = fetched(call(loop, handler, 1, 13, fetch_body(13, 0, topic_id=uuid.uuid4())))
    assert unknown.error_code == 100                                                        # UNKNOWN_TOPIC_ID


def test_fetch_sessions_are_never_created_and_incremental_requests_are_refused(loop):
    broker, plane, image = setup(loop)
    handler = FetchHandler(plane, image)
    created = call(loop, handler, 1, 12, fetch_body(12, 0, session_id=0, session_epoch=0))
    assert (created.error_code, created.session_id) == (0, 0)
    incremental = call(loop, handler, 1, 12, fetch_body(12, 0, session_id=55, session_epoch=3))
    assert (incremental.error_code, incremental.responses) == (70, ())                     # FETCH_SESSION_ID_NOT_FOUND
    bad_epoch = call(loop, handler, 1, 12, fetch_body(12, 0, session_id=0, session_epoch=4))
    assert bad_epoch.error_code == 71                                                       # INVALID_FETCH_SESSION_EPOCH


def test_fetch_long_poll_answers_when_data_is_committed(loop):
    broker, plane, image = setup(loop)

    async def scenario():
        waiting = asyncio.ensure_future(FetchHandler(plane, image).handle(request(1, 12, fetch_body(12, 0, max_wait_ms=5000))))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        ProduceHandler(plane, image).handle(request(0, 9, produce_body(9, 0)))
        return await asyncio.wait_for(waiting, 1.0)

    answer = fetched(sent(codec.encode_response_parts(1, 12, 1, loop.run_until_complete(scenario())), 1, 12))
    assert bytes(answer.records) == BATCH


# -- ListOffsets -----------------------------------------------------------------------------------


def list_body(version: int, timestamp: int, epoch: int = -1):
    partition = nested(2, version, "ListOffsetsPartition", partition_index=0, current_leader_epoch=epoch, timestamp=timestamp)
    topic = nested(2, version, "ListOffsetsTopic", name="t", partitions=(partition,))
    return body(2, version, replica_id=-1, isolation_level=0, topics=(topic,), timeout=1000)


def listed(response):
    (topic,) = response.topics
    (partition,) = topic.partitions
    return partition


@pytest.mark.parametrize("version", range(1, 11))
def test_list_offsets_earliest_latest_and_by_time_at_every_version(loop, version):
    broker, plane, image = setup(loop, epoch=3)
    for _ in range(3):
        call(loop, ProduceHandler(plane, image), 0, 9, produce_body(9, 1))
    handler = ListOffsetsHandler(plane)
    assert listed(call(loop, handler, 2, version, list_body(version, -2))).offset == 0
    assert listed(call(loop, handler, 2, version, list_body(version, -1))).offset == 3
    by_time = listed(call(loop, handler, 2, version, list_body(version, 101)))
    assert (by_time.error_code, by_time.offset, by_time.timestamp) == (0, 1, 101)
    assert listed(call(loop, handler, 2, version, list_body(version, 500))).offset == -1
    if version >= 4:
        assert by_time.leader_epoch == 3


def test_list_offsets_max_timestamp_earliest_local_and_fencing(loop):
    broker, plane, image = setup(loop, epoch=3)
    for _ in range(3):
        call(loop, ProduceHandler(plane, image), 0, 9, produce_body(9, 1))
    handler = ListOffsetsHandler(plane)
    largest = listed(call(loop, handler, 2, 7, list_body(7, -3)))
    assert (largest.error_code, largest.offset, largest.timestamp) == (0, 2, 102)
    assert listed(call(loop, handler, 2, 8, list_body(8, -4))).offset == 0
    assert listed(call(loop, handler, 2, 9, list_body(9, -1, epoch=2))).error_code == 74   # FENCED_LEADER_EPOCH
    assert listed(call(loop, handler, 2, 9, list_body(9, -1, epoch=4))).error_code == 75   # UNKNOWN_LEADER_EPOCH
    assert listed(call(loop, handler, 2, 9, list_body(9, -1, epoch=3))).offset == 3


def test_list_offsets_on_a_follower_is_not_leader_or_follower(loop):
    broker, plane, image = setup(loop, leader=3, epoch=3)
    answer = listed(call(loop, ListOffsetsHandler(plane), 2, 9, list_body(9, -1)))
    assert (answer.error_code, answer.offset) == (6, -1)


# -- InitProducerId and the refused transaction APIs -----------------------------------------------


@pytest.mark.parametrize("version", range(0, 6))
def test_init_producer_id_gives_idempotent_ids_and_refuses_transactional_ids_at_once(loop, version):
    broker, plane, image = setup(loop)
    handler = InitProducerIdHandler(plane, 30000)
    fresh = call(loop, handler, 22, version, body(22, version, transactional_id=None, transaction_timeout=60000,
                                                  producer_id=-1, producer_epoch=-1))
    assert (fresh.error_code, fresh.producer_id, fresh.producer_epoch) == (0, 1000, 0)
    answer = handler.handle(request(22, version, body(22, version, transactional_id="tx", transaction_timeout=60000,
                                                       producer_id=-1, producer_epoch=-1)))
    assert not asyncio.iscoroutine(answer)                                                 # answered at once
    assert (answer.error_code, answer.producer_id) == (53, -1)   # TRANSACTIONAL_ID_AUTHORIZATION_FAILED: fatal in clients
    codec.encode_response(22, version, 1, answer)


def test_refused_transaction_apis_answer_with_a_non_retriable_error_and_are_not_advertised(loop):
    apis = KafkaApis(BrokerMetrics(CollectorRegistry()))
    for refused in REFUSED_APIS:
        apis.refuse(refused)
    advertised = {handler.api_key for handler in apis.handlers()}
    assert advertised.isdisjoint({24, 25, 26, 27, 28, 65, 66})
    anything = types.SimpleNamespace(
        v3_and_below_topics=(types.SimpleNamespace(name="t", partitions=(0, 1)),),
        topics=(types.SimpleNamespace(name="t", partitions=(types.SimpleNamespace(partition_index=0),)),),
        markers=(types.SimpleNamespace(producer_id=5, topics=(types.SimpleNamespace(name="t", partition_indexes=(0,)),)),),
        transactional_ids=("tx",),
    )
    for refused in REFUSED_APIS:
        for version in range(refused.versions[0], refused.versions[1] + 1):
            assert apis.supports(refused.api_key, version)
            answer = refused.handle(request(refused.api_key, version, anything))
            codec.encode_response(refused.api_key, version, 1, answer)
            assert "53" in str(_codes(answer)) or 53 in _codes(answer), (refused.name, version, answer)


def _codes(entity) -> list[int]:
    """Every error code anywhere in a response entity."""
    found = []
    if dataclasses.is_dataclass(entity):
        for field in dataclasses.fields(entity):
            value = getattr(entity, field.name)
            if field.metadata.get("kafka_type") == "error_code":
                found.append(int(value))
            else:
                found.extend(_codes(value))
    elif isinstance(entity, tuple):
        for item in entity:
            found.extend(_codes(item))
    return found


# -- DescribeLogDirs and DescribeProducers ---------------------------------------------------------


@pytest.mark.parametrize("version", range(1, 5))
def test_describe_log_dirs_lists_hosted_replicas_in_the_one_logs_dir(loop, tmp_path, version):
    broker, plane, image = setup(loop)
    call(loop, ProduceHandler(plane, image), 0, 9, produce_body(9, 1))
    handler = DescribeLogDirsHandler(plane, str(tmp_path))
    everything = call(loop, handler, 35, version, body(35, version, topics=None))
    (result,) = everything.results
    assert (result.error_code, result.log_dir) == (0, str(tmp_path))
    (topic,) = result.topics
    (partition,) = topic.partitions
    assert (topic.name, partition.partition_index, partition.partition_size, partition.offset_lag) == ("t", 0, len(BATCH), 0)
    if version >= 4:
        assert result.total_bytes > 0 and result.usable_bytes >= 0
    wanted = nested(35, version, "DescribableLogDirTopic", topic="other", partitions=(0,))
    (only,) = call(loop, handler, 35, version, body(35, version, topics=(wanted,))).results
    assert only.topics == ()


def test_describe_producers_reads_the_leaders_producer_state(loop):
    broker, plane, image = setup(loop)
    topic = nested(61, 0, "TopicRequest", name="t", partition_indexes=(0,))
    (answer,) = call(loop, DescribeProducersHandler(plane), 61, 0, body(61, 0, topics=(topic,))).topics
    (partition,) = answer.partitions
    (producer,) = partition.active_producers
    assert (partition.error_code, producer.producer_id, producer.producer_epoch, producer.last_sequence,
            producer.last_timestamp, producer.coordinator_epoch, producer.current_txn_start_offset) == (0, 7, 2, 41, 1234, -1, -1)
    follower_broker, follower_plane, _ = setup(loop, leader=3)
    (answer,) = call(loop, DescribeProducersHandler(follower_plane), 61, 0, body(61, 0, topics=(topic,))).topics
    assert answer.partitions[0].error_code == 6


# -- DeleteRecords ---------------------------------------------------------------------------------


def delete_body(version: int, offsets: dict[tuple[str, int], int], timeout_ms: int = 1000):
    by_topic: dict[str, list] = {}
    for (topic, number), offset in offsets.items():
        by_topic.setdefault(topic, []).append(nested(21, version, "DeleteRecordsPartition", partition_index=number, offset=offset))
    topics = tuple(nested(21, version, "DeleteRecordsTopic", name=name, partitions=tuple(items)) for name, items in by_topic.items())
    return body(21, version, topics=topics, timeout=timeout_ms)


def deleted(response) -> dict[tuple[str, int], tuple[int, int]]:
    """(topic, partition) -> (error code, low watermark)."""
    return {(topic.name, p.partition_index): (p.error_code, p.low_watermark) for topic in response.topics for p in topic.partitions}


@pytest.mark.parametrize("version", range(0, 3))
def test_delete_records_moves_the_log_start_and_answers_the_low_watermark_at_every_version(loop, version):
    """Goal: KIP-107 on the leader: the log start moves to the offset (-1: the high watermark),
    ListOffsets earliest answers it, an offset above the high watermark is OFFSET_OUT_OF_RANGE,
    an unknown partition UNKNOWN_TOPIC_OR_PARTITION. Method: leader alone alive."""
    broker, plane, image = setup(loop)
    for _ in range(5):
        call(loop, ProduceHandler(plane, image), 0, 9, produce_body(9, 1))
    handler = DeleteRecordsHandler(plane)
    assert deleted(call(loop, handler, 21, version, delete_body(version, {("t", 0): 2}))) == {("t", 0): (0, 2)}
    assert broker.log.log_start_offset == 2
    assert listed(call(loop, ListOffsetsHandler(plane), 2, 9, list_body(9, -2))).offset == 2
    assert deleted(call(loop, handler, 21, version, delete_body(version, {("t", 0): 1}))) == {("t", 0): (0, 2)}, "only forward"
    assert deleted(call(loop, handler, 21, version, delete_body(version, {("t", 0): 6}))) == {("t", 0): (1, -1)}
    assert deleted(call(loop, handler, 21, version, delete_body(version, {("t", 0): -2}))) == {("t", 0): (1, -1)}
    answer = deleted(call(loop, handler, 21, version, delete_body(version, {("t", 0): -1, ("t", 5): 0})))
    assert answer == {("t", 0): (0, 5), ("t", 5): (3, -1)}
    assert broker.log.log_start_offset == 5


def test_delete_records_on_a_follower_is_not_leader_or_follower(loop):
    broker, plane, image = setup(loop, leader=3, epoch=3)
    assert deleted(call(loop, DeleteRecordsHandler(plane), 21, 2, delete_body(2, {("t", 0): 0}))) == {("t", 0): (6, -1)}


def test_delete_records_waits_for_live_followers_and_times_out_as_request_timed_out(loop):
    """Goal: Kafka's DelayedDeleteRecords: the answer waits until every live replica's log start
    reached the offset (the low watermark), and is REQUEST_TIMED_OUT at the request's timeout; a
    dead follower does not count. Method: follower 2 alive and silent, then reporting."""
    broker, plane, image = setup(loop)
    for _ in range(5):
        call(loop, ProduceHandler(plane, image), 0, 9, produce_body(9, 1))
    handler = DeleteRecordsHandler(plane)
    plane.live_brokers = {2}
    assert deleted(call(loop, handler, 21, 2, delete_body(2, {("t", 0): 3}, timeout_ms=30))) == {("t", 0): (7, -1)}
    assert broker.log.log_start_offset == 3, "deleted on the leader all the same"
    partition = broker.table.partitions[("t", 0)]

    async def follower_catches_up():
        await asyncio.sleep(0.02)
        partition.follower_log_start_offset(2, 2)
        await asyncio.sleep(0.02)
        partition.follower_log_start_offset(2, 4)

    async def scenario():
        catching_up = asyncio.ensure_future(follower_catches_up())
        answer = await handler.handle(request(21, 2, delete_body(2, {("t", 0): 4}, timeout_ms=5000)))
        await catching_up
        return answer

    started = loop.time()
    assert deleted(loop.run_until_complete(scenario())) == {("t", 0): (0, 4)}
    assert loop.time() - started < 1
    plane.live_brokers = set()
    assert deleted(call(loop, handler, 21, 2, delete_body(2, {("t", 0): 5}, timeout_ms=0))) == {("t", 0): (0, 5)}
