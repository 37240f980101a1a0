"""Zero-copy Fetch over the Kafka listener: the parts encoder and the listener's sendfile writer.

Goal: a Fetch response written as parts (framing bytes + FileRegions sent with sendfile) is the
very frame kio writes with the records in memory, at every Fetch version the broker serves and
for every shape the handler builds (records, errors with the current leader and the node
endpoints of KIP-951, read_committed's empty aborted list, topic ids); the listener sends the
regions with sendfile on plaintext connections and copies them on TLS ones, keeps responses in
request order when a later response is ready first, and a segment deleted by retention while its
region waits behind an earlier response is still sent whole.
Method: `codec.encode_response_parts` against `codec.encode_response` byte for byte; a real
KafkaListener on 127.0.0.1 over a scripted dispatcher whose answers hold regions of a real
PartitionLog, read by an asyncio client (plain and TLS with a throwaway CA), with the listener's
`freshet_kafka_fetch_record_bytes_total{path}` counters.
Reference: Kafka FetchResponse.json; FileRecords.writeTo / TransportLayer.transferFrom (Kafka
copies on SSL transports too: SslTransportLayer.transferFrom).
"""

from __future__ import annotations

import asyncio
import io
import ssl
import uuid

import pytest
import uvloop
from freshet.server.kafka import codec
from freshet.server.kafka.listener import COPY, SENDFILE, KafkaListener
from freshet.server.metrics import BrokerMetrics
from freshet.server.security import certificates
from freshet.storage.clock import ManualClock
from freshet.storage.file_region import FileRegion
from freshet.storage.log import PartitionLog
from kio.index import load_request_schema
from kio.schema.request_header.v2.header import RequestHeader as RequestHeaderV2
from kio.serial import entity_reader, entity_writer
from prometheus_client import CollectorRegistry

from tests.support.storage_helpers import SMALL_CONFIG, batch, segment_files
from tests.unit.server.kafka.test_kafka_data_apis import fetch_body
from tests.unit.server.test_broker_paths import memory_region

DAY_MS = 24 * 3600 * 1000
TOPIC_ID = uuid.UUID("6b1c6a1e-5c1a-4d55-9a4f-3f1d8f6a0b10")

# -- the parts encoder against kio ---------------------------------------------------------------


def fetch_response(version: int, records: list, *, read_committed: bool = False, with_error: bool = False):
    """A Fetch response as FetchHandler builds it: one topic, a partition per entry of `records`
    (bytes or regions), plus an errored partition with the current leader and its endpoint."""
    schema = codec.response_schema(1, version)
    partition_type = codec.nested(schema, "PartitionData")
    partitions = [
        codec.build(
            partition_type, partition_index=number, error_code=0, high_watermark=100 + number, last_stable_offset=100 + number,
            log_start_offset=number, aborted_transactions=() if read_committed else None, preferred_read_replica=-1,
            records=data,
        )
        for number, data in enumerate(records)
    ]
    endpoints = ()
    if with_error:
        fields = {"partition_index": 99, "error_code": 6, "high_watermark": -1, "last_stable_offset": -1,
                  "log_start_offset": -1, "aborted_transactions": None, "preferred_read_replica": -1, "records": b""}
        if codec.has_field(partition_type, "current_leader"):
            fields["current_leader"] = codec.build(codec.nested(schema, "LeaderIdAndEpoch"), leader_id=3, leader_epoch=7)
        partitions.insert(1, codec.build(partition_type, **fields))
        if codec.has_field(schema, "node_endpoints"):
            endpoints = (codec.build(codec.nested(schema, "NodeEndpoint"), node_id=3, host="k3", port=9093, rack=None),)
    topic = codec.build(codec.nested(schema, "FetchableTopicResponse"), topic="orders", topic_id=TOPIC_ID, partitions=tuple(partitions))
    return codec.build(schema, throttle_time=0, error_code=0, session_id=0, responses=(topic,), node_endpoints=endpoints)


def joined(response: codec.ResponseParts) -> bytes:
    return b"".join(part.read() if isinstance(part, FileRegion) else part for part in response.parts)


@pytest.mark.parametrize("version", range(4, 19))
@pytest.mark.parametrize("shape", ["records", "read-committed-with-error", "empty-and-records", "no-partitions"])
def test_parts_are_kio_s_frame_byte_for_byte(version, shape):
    payloads = {
        "records": [b"\x01" * 300, bytes(range(256)) * 40],
        "read-committed-with-error": [b"abc" * 1000],
        "empty-and-records": [b"", b"\x07" * 70_000],
        "no-partitions": [],
    }[shape]
    is_committed = shape == "read-committed-with-error"
    in_memory = fetch_response(version, payloads, read_committed=is_committed, with_error=is_committed)
    expected = codec.encode_response(1, version, 42, in_memory)
    regions = [memory_region(data) if data else b"" for data in payloads]
    response = codec.encode_response_parts(1, version, 42, fetch_response(version, regions, read_committed=is_committed,
                                                                          with_error=is_committed))
    try:
        assert joined(response) == expected
        assert response.size == len(expected)
        kinds = [type(part) for part in response.parts]
        assert kinds.count(FileRegion) == sum(1 for data in payloads if data)
        assert all(kinds[n] is bytes for n in range(len(kinds)) if kinds[n] is not FileRegion)
    finally:
        response.close()
    assert all(region.is_closed for region in regions if region)


def test_a_failed_encoding_closes_the_regions_it_holds():
    region = memory_region(b"x" * 10)
    schema = codec.response_schema(1, 12)
    body = fetch_response(12, [region])
    broken = codec.build(schema, throttle_time=0, error_code=0, session_id=0, responses=body.responses + ("not a topic",))
    with pytest.raises(Exception):  # noqa: B017 - kio raises whatever its writer trips on
        codec.encode_response_parts(1, 12, 1, broken)
    assert region.is_closed


# -- the listener's writer -------------------------------------------------------------------------


class ScriptedDispatcher:
    """Answers every Fetch with `answers[correlation id]()`, an awaitable of a frame or parts."""

    def __init__(self) -> None:
        self.answers: dict = {}

    def supports(self, api_key: int, api_version: int) -> bool:
        return api_key == 1

    def dispatch(self, request: codec.Request, peer: str):
        return asyncio.get_running_loop().create_task(self.answers[request.correlation_id]())

    def unsupported_api_versions(self, error):
        raise AssertionError("not asked")


def fetch_request(correlation_id: int) -> bytes:
    buffer = io.BytesIO()
    entity_writer(RequestHeaderV2)(buffer, RequestHeaderV2(request_api_key=1, request_api_version=12,
                                                           correlation_id=correlation_id, client_id="test"))
    entity_writer(load_request_schema(1, 12))(buffer, fetch_body(12, 0))
    frame = buffer.getvalue()
    return len(frame).to_bytes(4, "big") + frame


async def read_response(reader: asyncio.StreamReader) -> tuple[int, list[bytes]]:
    """(correlation id, the records of each partition) of the next Fetch v12 response."""
    size = int.from_bytes(await reader.readexactly(4), "big")
    frame = await reader.readexactly(size)
    header, header_size = entity_reader(codec._response_codec(1, 12)[1])(frame, 0)
    body, body_size = entity_reader(codec.response_schema(1, 12))(frame, header_size)
    assert header_size + body_size == size
    return header.correlation_id, [bytes(partition.records) for topic in body.responses for partition in topic.partitions]


def server_tls(tmp_path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = certificates.create_ca()
    issued = certificates.issue(ca, "node-1", ("127.0.0.1",))
    for name, data in (("ca.pem", ca.certificate_pem), ("node.pem", issued.certificate_pem), ("node.key", issued.key_pem)):
        (tmp_path / name).write_bytes(data)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "node.pem", tmp_path / "node.key")
    client = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    return server, client


def filled_log(tmp_path, clock) -> PartitionLog:
    log = PartitionLog.open(str(tmp_path / "orders-0"), SMALL_CONFIG.with_changes(retention_ms=DAY_MS), clock)
    for number in range(40):
        log.append_as_leader(batch(3, value_size=100, timestamp=clock.now_ms() - 2 * DAY_MS, tag=number), 0)
    log.roll()
    for number in range(5):
        log.append_as_leader(batch(3, value_size=100, timestamp=clock.now_ms(), tag=100 + number), 0)
    return log


def sample(registry: CollectorRegistry, path: str) -> float:
    return registry.get_sample_value("freshet_kafka_fetch_record_bytes_total", {"path": path}) or 0.0


def run_on(loop: str, coroutine):
    """Run `coroutine` on asyncio's own loop or on uvloop (the node's default, which has no native
    sendfile: the listener sends from a thread there, server/kafka/sendfile.py)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop if loop == "uvloop" else None) as runner:
        return runner.run(coroutine)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("is_tls", [False, True], ids=["plaintext-sendfile", "tls-copy"])
def test_the_listener_sends_regions_in_order_even_after_retention_deleted_their_segment(tmp_path, is_tls, loop):
    """Request 1's answer waits; request 2's is ready at once with a region of the first segment;
    retention then deletes that segment; request 1 is answered. The client gets 1 then 2, and 2's
    records are the bytes the segment held."""
    clock = ManualClock(1_700_000_000_000)
    log = filled_log(tmp_path, clock)
    first_base = log.segment_base_offsets()[0]
    expected = {
        1: [log.read(120, 1 << 20).records],
        2: [log.read(first_base, 1 << 20).records, log.read(30, 1 << 20).records],
    }
    released = asyncio.Event()
    dispatcher = ScriptedDispatcher()

    async def first():
        await released.wait()
        return codec.encode_response_parts(1, 12, 1, fetch_response(12, [log.read(120, 1 << 20, as_region=True).records]))

    async def second():
        regions = [log.read(first_base, 1 << 20, as_region=True).records, log.read(30, 1 << 20, as_region=True).records]
        return codec.encode_response_parts(1, 12, 2, fetch_response(12, regions))

    dispatcher.answers = {1: first, 2: second}
    registry = CollectorRegistry()
    server_context, client_context = server_tls(tmp_path) if is_tls else (None, None)

    async def scenario():
        listener = KafkaListener("127.0.0.1", 0, dispatcher, ssl_context=server_context, metrics=BrokerMetrics(registry))
        await listener.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", listener.port, ssl=client_context)
            writer.write(fetch_request(1) + fetch_request(2))
            await writer.drain()
            await asyncio.sleep(0.2)                    # request 2's answer is made, waiting behind request 1
            path = segment_files(log.directory)[0]
            assert log.delete_old_segments(clock.now_ms(), high_watermark=log.log_end_offset) > 0
            assert path not in segment_files(log.directory)
            released.set()
            answers = [await asyncio.wait_for(read_response(reader), 10) for _ in range(2)]
            writer.close()
            return answers
        finally:
            await listener.close()

    answers = run_on(loop, scenario())
    log.close()
    assert answers == [(1, expected[1]), (2, expected[2])]
    total = sum(len(records) for records in expected[1] + expected[2])
    assert (sample(registry, SENDFILE), sample(registry, COPY)) == ((0, total) if is_tls else (total, 0))


def test_regions_of_answers_never_written_are_closed_when_the_connection_ends(tmp_path):
    """Answer 2 (with a region) is made while answer 1 hangs; the listener closes; answer 2's
    region is closed and answer 1 cancelled."""
    clock = ManualClock(1_700_000_000_000)
    log = filled_log(tmp_path, clock)
    made: list[codec.ResponseParts] = []
    dispatcher = ScriptedDispatcher()
    stuck_task: list[asyncio.Task] = []

    async def stuck():
        stuck_task.append(asyncio.current_task())
        await asyncio.Event().wait()

    async def ready():
        made.append(codec.encode_response_parts(1, 12, 2, fetch_response(12, [log.read(0, 1 << 20, as_region=True).records])))
        return made[-1]

    dispatcher.answers = {1: stuck, 2: ready}

    async def scenario():
        listener = KafkaListener("127.0.0.1", 0, dispatcher)
        await listener.start()
        _, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(fetch_request(1) + fetch_request(2))
        await writer.drain()
        for _ in range(200):
            if made:
                break
            await asyncio.sleep(0.01)
        assert made and not made[0].regions()[0].is_closed
        await listener.close()
        writer.close()
        return listener.connection_count

    assert asyncio.run(scenario()) == 0
    log.close()
    assert all(region.is_closed for region in made[0].regions())
    assert stuck_task[0].cancelled()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("is_tls", [False, True], ids=["plaintext-sendfile", "tls-copy"])
def test_a_region_its_file_cannot_fill_closes_the_connection_after_a_partial_frame(tmp_path, is_tls, loop):
    """The region claims 1000 bytes of a 10-byte file: its length is already on the wire, so the
    listener closes the connection (the client sees a cut frame, never a wrong one)."""
    short = memory_region(b"x" * 10)
    short.count = 1000
    dispatcher = ScriptedDispatcher()

    async def answer():
        return codec.encode_response_parts(1, 12, 1, fetch_response(12, [short]))

    dispatcher.answers = {1: answer}
    server_context, client_context = server_tls(tmp_path) if is_tls else (None, None)

    async def scenario():
        listener = KafkaListener("127.0.0.1", 0, dispatcher, ssl_context=server_context)
        await listener.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", listener.port, ssl=client_context)
            writer.write(fetch_request(1))
            await writer.drain()
            size = int.from_bytes(await asyncio.wait_for(reader.readexactly(4), 10), "big")
            with pytest.raises(asyncio.IncompleteReadError):
                await asyncio.wait_for(reader.readexactly(size), 10)
            writer.close()
        finally:
            await listener.close()

    run_on(loop, scenario())
    assert short.is_closed
