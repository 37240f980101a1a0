"""server/status.py is the single table from domain errors to the wire (STYLE.md §3).

Goal: no domain error can reach a client as an unmapped INTERNAL, and every protocol ErrorCode has
a gRPC code. Method: find every `errors` module of the storage, metadata and server packages (any
depth), walk every exception class defined anywhere in those packages' modules, and require each to
live in an errors module and have a row; walk every ErrorCode value; check the hints that errors
carry end up in the ErrorDetail.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import freshet.metadata
import freshet.server
import freshet.storage
import grpc
from freshet.metadata import errors as metadata_errors
from freshet.server import errors as server_errors
from freshet.server import status
from freshet.storage import errors as storage_errors
from freshet.v1 import common_pb2

E = common_pb2.ErrorCode
LAYERS = (freshet.storage, freshet.metadata, freshet.server)


def layer_modules() -> list:
    """Every module of storage/, metadata/ and server/, sub-packages included."""
    modules = []
    for layer in LAYERS:
        modules.append(layer)
        for info in pkgutil.walk_packages(layer.__path__, layer.__name__ + "."):
            modules.append(importlib.import_module(info.name))
    return modules


def exception_classes_defined_in(module) -> list[type[Exception]]:
    return [
        value
        for _, value in inspect.getmembers(module, inspect.isclass)
        if issubclass(value, Exception) and value.__module__ == module.__name__
    ]


def domain_error_classes() -> list[type[Exception]]:
    """The exception classes of every `errors` module of the three layers."""
    return [
        cls
        for module in layer_modules()
        if module.__name__.rsplit(".", 1)[-1] == "errors"
        for cls in exception_classes_defined_in(module)
    ]


def test_public_exceptions_are_defined_only_in_errors_modules():
    """A public exception class elsewhere (as the group errors once were in server/groups/state.py)
    would escape the table: it must move to its layer's errors.py. Private ones (`_Truncated`)
    never leave their module; server/tools/ are command-line helpers that serve no gRPC."""
    stray = [
        f"{module.__name__}.{cls.__qualname__}"
        for module in layer_modules()
        if module.__name__.rsplit(".", 1)[-1] != "errors" and not module.__name__.startswith("freshet.server.tools")
        for cls in exception_classes_defined_in(module)
        if not cls.__name__.startswith("_")
    ]
    assert stray == []


def test_every_domain_error_class_has_its_own_row():
    classes = domain_error_classes()
    assert len(classes) > 30
    assert server_errors.ForwardedError in classes and server_errors.UnknownMemberError in classes
    missing = [cls.__qualname__ for cls in classes if cls not in status.DOMAIN_ERRORS]
    assert missing == [], f"add rows to server/status.py DOMAIN_ERRORS for {missing}"
    stale = [cls.__qualname__ for cls in status.DOMAIN_ERRORS if cls not in classes]
    assert stale == []


def test_every_error_code_has_a_grpc_code_and_only_none_is_ok():
    for name, value in E.items():
        assert value in status.ERROR_CODES, name
        assert (status.ERROR_CODES[value] == grpc.StatusCode.OK) == (value == E.NONE), name


def test_rows_without_a_code_are_exactly_the_errors_carrying_one():
    for cls, code in status.DOMAIN_ERRORS.items():
        carries = (
            "error_code" in inspect.signature(cls.__init__).parameters
            or issubclass(cls, metadata_errors.ControllerRequestError)
            or cls is server_errors.ForwardedError  # its error_code is its ErrorDetail's
        )
        assert (code is None) == carries, cls


def test_details_carry_the_data_of_the_error():
    replication = status.detail_for(metadata_errors.InvalidReplicationFactorError(4, 3))
    assert (replication.code, replication.message) == (E.INVALID_REPLICATION_FACTOR, "replication factor: 4 larger than available brokers: 3")
    assert status.grpc_code(replication.code) == grpc.StatusCode.INVALID_ARGUMENT
    not_controller = status.detail_for(server_errors.NotControllerError(2, "127.0.0.1", 9102, "tried"))
    assert (not_controller.code, not_controller.controller_id, not_controller.controller.port) == (E.NOT_CONTROLLER, 2, 9102)
    out_of_range = status.detail_for(storage_errors.OffsetOutOfRangeError(50, 10, 40))
    assert (out_of_range.code, out_of_range.log_start_offset, out_of_range.log_end_offset) == (E.OFFSET_OUT_OF_RANGE, 10, 40)
    failed = status.detail_for(metadata_errors.CommandFailedError(E.INVALID_UPDATE_VERSION, "epoch 3, not 4", "r", 9))
    assert (failed.code, failed.message) == (E.INVALID_UPDATE_VERSION, "epoch 3, not 4")
    assert status.grpc_code(failed.code) == grpc.StatusCode.ABORTED
    timeout = status.detail_for(metadata_errors.ProposalTimeoutError("r", 5.0))
    assert status.grpc_code(timeout.code) == grpc.StatusCode.DEADLINE_EXCEEDED


def test_bugs_are_internal_with_a_fixed_message_that_names_the_node():
    detail = status.detail_for(ZeroDivisionError("secret internals"), node_id=3)
    assert detail.code == E.UNKNOWN_SERVER_ERROR
    assert detail.message == "internal error on node 3; see its log"


def test_a_detail_survives_the_round_trip_through_trailing_metadata():
    original = status.detail(E.NOT_CONTROLLER, "no controller", controller_id=2)
    rpc_status = status.to_rpc_status(grpc.StatusCode.UNAVAILABLE, original)
    assert rpc_status.code == grpc.StatusCode.UNAVAILABLE and rpc_status.details == "no controller"
    assert status.detail_from_metadata(rpc_status.trailing_metadata) == original
    assert status.detail_from_metadata(()) is None


def test_a_full_log_directory_is_resource_exhausted_with_kafka_storage_error():
    """STYLE.md §3: disk full is RESOURCE_EXHAUSTED (back off); the ErrorCode stays Kafka's
    KAFKA_STORAGE_ERROR (56), which the SDK and Kafka clients retry."""
    error = storage_errors.LogDirFullError("/data/logs", "produce to t", free_bytes=123, low_water_bytes=456)
    code, detail = status.status_of(error, node_id=1)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert detail.code == common_pb2.ErrorCode.KAFKA_STORAGE_ERROR
    assert "/data/logs" in detail.message
    assert "123 bytes free" in detail.message
    assert status.kafka_error_of(error)[0] == 56
    broken = storage_errors.KafkaStorageError("/data/logs/t-0", "read")
    assert status.status_of(broken)[0] == grpc.StatusCode.UNAVAILABLE
