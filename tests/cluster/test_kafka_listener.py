"""The Kafka protocol listener against real Kafka clients: metadata and the connection's rules.

Goal: unmodified Kafka clients find the cluster through the Kafka listener (ApiVersions, then
Metadata with every broker's Kafka address), and a client that breaks the protocol loses its own
connection only. Method: a real `cluster up` of 3 nodes; kafka-python and confluent-kafka
(librdkafka) ask for metadata; raw sockets send a garbage frame, a frame over
socket.request.max.bytes and an unknown API key, and the node keeps serving other clients.

Reference: Kafka protocol guide (framing, ApiVersions fallback of KIP-511).
"""

from __future__ import annotations

import socket
import struct

import kafka
import pytest
from confluent_kafka.admin import AdminClient

pytestmark = pytest.mark.cluster


def _first(bootstrap: str) -> tuple[str, int]:
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    return host, int(port)


def test_kafka_clients_see_every_broker_at_its_kafka_address(kafka_cluster):
    metadata = AdminClient({"bootstrap.servers": kafka_cluster.kafka_bootstrap}).list_topics(timeout=10)
    seen = sorted(f"{broker.host}:{broker.port}" for broker in metadata.brokers.values())
    assert seen == sorted(kafka_cluster.kafka_bootstrap.split(","))
    consumer = kafka.KafkaConsumer(bootstrap_servers=kafka_cluster.kafka_bootstrap)
    try:
        assert isinstance(consumer.topics(), set)
    finally:
        consumer.close()


def _api_versions_v3(correlation_id: int) -> bytes:
    client_id = b"raw"
    header = struct.pack(">hhih", 18, 3, correlation_id, len(client_id)) + client_id + b"\x00"
    body = b"\x04raw\x021\x00"                       # compact strings "raw", "1", no tagged fields
    frame = header + body
    return struct.pack(">i", len(frame)) + frame


def _exchange(address: tuple[str, int], data: bytes) -> bytes:
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(struct.pack(">i", 12) + b"\x00\x03\x00\x01garbage!", id="garbage-body"),
        pytest.param(struct.pack(">i", 200 * 1024 * 1024), id="over-socket.request.max.bytes"),
        pytest.param(struct.pack(">i", -5), id="negative-size"),
        pytest.param(struct.pack(">i", 10) + struct.pack(">hhih", 999, 0, 7, 0), id="unknown-api-key"),
        pytest.param(struct.pack(">i", 10) + struct.pack(">hhih", 3, 99, 7, 0), id="unsupported-metadata-version"),
    ],
)
def test_a_broken_frame_closes_that_connection_only(kafka_cluster, frame):
    address = _first(kafka_cluster.kafka_bootstrap)
    with socket.create_connection(address, timeout=5) as bystander:
        answer = _exchange(address, frame)
        assert answer == b""                               # closed without an answer
        bystander.sendall(_api_versions_v3(41))
        size = struct.unpack(">i", bystander.recv(4))[0]
        assert size > 0
        reply = b""
        while len(reply) < size:
            reply += bystander.recv(size - len(reply))
        assert struct.unpack_from(">i", reply)[0] == 41   # the correlation id, answered in order


def test_pipelined_requests_are_answered_in_order(kafka_cluster):
    address = _first(kafka_cluster.kafka_bootstrap)
    data = b"".join(_api_versions_v3(correlation_id) for correlation_id in range(1, 21))
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(data)
        seen = []
        for _ in range(20):
            size = struct.unpack(">i", _recv_exactly(sock, 4))[0]
            reply = _recv_exactly(sock, size)
            seen.append(struct.unpack_from(">i", reply)[0])
    assert seen == list(range(1, 21))


def test_an_api_versions_version_from_the_future_gets_the_supported_ranges(kafka_cluster):
    address = _first(kafka_cluster.kafka_bootstrap)
    frame = struct.pack(">hhih", 18, 99, 5, 0)
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", _recv_exactly(sock, 4))[0]
        reply = _recv_exactly(sock, size)
    correlation_id, error_code, count = struct.unpack_from(">ihi", reply)
    assert correlation_id == 5
    assert error_code == 35                              # UNSUPPORTED_VERSION
    keys = {struct.unpack_from(">hhh", reply, 10 + 6 * i)[0] for i in range(count)}
    assert {3, 18} <= keys                               # Metadata and ApiVersions at least


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "connection closed early"
        data += chunk
    return data
