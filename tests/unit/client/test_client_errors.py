"""The client's error tree: one class per protocol code, retriability, hints, and no gRPC leaks.

Goal: every ErrorCode a broker can send becomes a documented FreshetError subclass carrying the
broker's hints, and gRPC statuses become FreshetErrors, never grpc.RpcError (the producer and
consumer tests check the same for dead brokers end to end). Method: walk the ErrorCode enum;
decode real gRPC statuses produced by the fake broker and hand-made ones.
Reference: STYLE.md section 3 (errors), Kafka's Errors.java (the code table is protocol).
"""

from __future__ import annotations

import inspect
import re

import grpc
import pytest
from freshet.client import errors
from freshet.client._transport import error_from_detail, translate_rpc_error
from freshet.client.structs import Node, TopicPartition
from freshet.v1 import broker_pb2, broker_pb2_grpc, common_pb2

ALL_CODES = [value for value in common_pb2.ErrorCode.DESCRIPTOR.values if value.number != common_pb2.NONE]


def test_every_error_code_has_its_own_class():
    """Each non-NONE ErrorCode maps to a distinct FreshetError subclass that reports that code."""
    classes = set()
    for value in ALL_CODES:
        cls = errors.ERROR_CLASSES.get(value.number)
        assert cls is not None, f"no class for {value.name}"
        assert issubclass(cls, errors.FreshetError)
        error = errors.error_for_code(value.number, "from the broker")
        assert type(error) is cls
        assert error.code == value.number
        assert error.code_name == value.name
        assert error.message == "from the broker"
        assert str(error) == f"[{value.name}] from the broker"
        classes.add(cls)
    assert len(classes) == len(ALL_CODES)
    assert set(errors.ERROR_CLASSES) == {value.number for value in ALL_CODES}


def test_class_names_follow_the_code_names():
    """UNKNOWN_TOPIC -> UnknownTopicError, except BROKER_NOT_AVAILABLE (the brief's BrokerUnavailableError)."""
    renamed = {"BROKER_NOT_AVAILABLE": "BrokerUnavailableError"}
    for value in ALL_CODES:
        words = value.name.removesuffix("_ERROR").split("_")
        expected = renamed.get(value.name) or "".join(word.title() for word in words) + "Error"
        assert errors.ERROR_CLASSES[value.number].__name__ == expected


def test_retriable_follows_kafka():
    """Transient conditions are retriable; validation, data and state errors are not."""
    retriable = {
        "NOT_LEADER", "LEADER_NOT_AVAILABLE", "UNKNOWN_TOPIC", "REQUEST_TIMED_OUT", "BROKER_NOT_AVAILABLE",
        "NOT_ENOUGH_REPLICAS", "NOT_ENOUGH_REPLICAS_AFTER_APPEND", "FENCED_LEADER_EPOCH",
        "UNKNOWN_LEADER_EPOCH", "KAFKA_STORAGE_ERROR", "NOT_CONTROLLER", "NO_QUORUM",
        "COORDINATOR_NOT_AVAILABLE", "COORDINATOR_LOAD_IN_PROGRESS", "NOT_COORDINATOR",
    }  # fmt: skip
    final = {
        "OFFSET_OUT_OF_RANGE", "CORRUPT_RECORD", "RECORD_TOO_LARGE", "INVALID_REPLICATION_FACTOR",
        "TOPIC_ALREADY_EXISTS", "INVALID_TOPIC", "OUT_OF_ORDER_SEQUENCE", "INVALID_CONFIG",
        "UNKNOWN_SERVER_ERROR", "INVALID_REQUEST", "INVALID_RECORD",
    }  # fmt: skip
    for value in ALL_CODES:
        error = errors.error_for_code(value.number)
        if value.name in retriable:
            assert error.retriable, value.name
        if value.name in final:
            assert not error.retriable, value.name
    assert errors.error_for_code(common_pb2.NOT_LEADER).__class__.__mro__[1] is errors.InvalidMetadataError


def test_client_side_errors_have_no_code_and_sensible_retriability():
    """Errors born in the client carry no protocol code; timeouts are retriable, misuse and closed
    clients are not."""
    assert errors.DeliveryTimeoutError("late").code is None
    assert errors.DeliveryTimeoutError("late").code_name is None
    assert str(errors.DeliveryTimeoutError("late")) == "late"
    assert errors.DeliveryTimeoutError.retriable and errors.BufferFullError.retriable
    assert issubclass(errors.BufferFullError, errors.MaxBlockTimeoutError)
    assert issubclass(errors.MaxBlockTimeoutError, errors.ClientTimeoutError)
    for cls in (errors.ProducerClosedError, errors.IllegalStateError, errors.NoOffsetForPartitionError):
        assert cls("x").code is None and not cls.retriable


def test_an_unknown_code_keeps_its_number():
    """A code newer than this client is not dropped: it becomes UnknownServerError carrying the number."""
    error = errors.error_for_code(4242, "new thing")
    assert isinstance(error, errors.UnknownServerError)
    assert error.code == 4242
    assert error.code_name == "UNKNOWN_CODE_4242"


def test_the_docstring_tree_names_every_class():
    """errors.py draws its tree (httpx style); a class missing from the drawing is a documentation bug."""
    doc = errors.__doc__
    for name, cls in inspect.getmembers(errors, inspect.isclass):
        if issubclass(cls, errors.FreshetError):
            assert re.search(rf"\b{name}\b", doc), f"{name} is not in the tree in errors.py's docstring"


def test_error_detail_hints_are_decoded():
    """NOT_LEADER carries the leader; OFFSET_OUT_OF_RANGE the valid range; the partition is named."""
    detail = common_pb2.ErrorDetail(
        code=common_pb2.NOT_LEADER,
        message="not me",
        leader_id=3,
        leader=common_pb2.BrokerEndpoint(node_id=3, host="10.0.0.3", port=9092),
        leader_epoch=7,
        partition=common_pb2.TopicPartition(topic="orders", partition=2),
    )
    error = error_from_detail(detail, "produce to orders-2")
    assert isinstance(error, errors.NotLeaderError)
    assert error.message == "produce to orders-2: not me"
    assert (error.leader_id, error.leader, error.leader_epoch) == (3, Node(3, "10.0.0.3", 9092), 7)
    assert error.topic_partition == TopicPartition("orders", 2)
    out_of_range = error_from_detail(
        common_pb2.ErrorDetail(code=common_pb2.OFFSET_OUT_OF_RANGE, log_start_offset=5, log_end_offset=9)
    )
    assert isinstance(out_of_range, errors.OffsetOutOfRangeError)
    assert (out_of_range.log_start_offset, out_of_range.log_end_offset) == (5, 9)
    assert error_from_detail(common_pb2.ErrorDetail(code=common_pb2.NONE)) is None


def test_grpc_status_details_are_decoded(cluster):
    """A whole-request failure is a gRPC status with an ErrorDetail attached; the code survives."""
    cluster.faults.metadata_errors.append(common_pb2.NOT_CONTROLLER)
    address = f"127.0.0.1:{cluster.brokers[1].port}"
    with grpc.insecure_channel(address) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            broker_pb2_grpc.BrokerStub(channel).Metadata(broker_pb2.MetadataRequest(), timeout=5)
    error = translate_rpc_error(caught.value, address, "Metadata")
    assert isinstance(error, errors.NotControllerError)
    assert "injected Metadata failure" in error.message and address in error.message


def test_statuses_without_details_map_by_grpc_code():
    """A status without ErrorDetail (a proxy, an old broker) still becomes the closest FreshetError."""

    class FakeRpcError(grpc.RpcError):
        def __init__(self, code, details):
            self._code, self._details = code, details

        def code(self):
            return self._code

        def details(self):
            return self._details

        def trailing_metadata(self):
            return ()

    cases = {
        grpc.StatusCode.UNAVAILABLE: errors.BrokerUnavailableError,
        grpc.StatusCode.DEADLINE_EXCEEDED: errors.RequestTimedOutError,
        grpc.StatusCode.NOT_FOUND: errors.UnknownTopicError,
        grpc.StatusCode.FAILED_PRECONDITION: errors.NotLeaderError,
        grpc.StatusCode.OUT_OF_RANGE: errors.OffsetOutOfRangeError,
        grpc.StatusCode.DATA_LOSS: errors.CorruptRecordError,
        grpc.StatusCode.INTERNAL: errors.UnknownServerError,
        grpc.StatusCode.UNIMPLEMENTED: errors.UnknownServerError,
    }
    for code, cls in cases.items():
        assert type(translate_rpc_error(FakeRpcError(code, "why"), "h:1", "Fetch")) is cls, code
    too_big = translate_rpc_error(
        FakeRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "Received message larger than max (5 vs. 4)"), "h:1", "Fetch"
    )
    assert isinstance(too_big, errors.RecordTooLargeError)
