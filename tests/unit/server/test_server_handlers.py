"""`status.handler` is the one path from a servicer's exceptions to gRPC statuses (STYLE.md §3).

Goal: whatever a handler raises (storage, metadata, server or group error, a partition's or the
controller's answer, a bug), the call ends with the table's gRPC code and an ErrorDetail carrying
the error's hints; a forwarded controller error keeps its gRPC code; bugs are INTERNAL with a
fixed message and a logged traceback; aborts and cancellations pass through; unary calls are
counted per API. Method: decorate fake servicer methods and drive them with a fake
grpc.aio.ServicerContext that records the abort; then check that every method of the real
servicers goes through the decorator, and drive BrokerService.InitProducerId over fakes.
"""

from __future__ import annotations

import asyncio
import logging
import types

import grpc
import pytest
from freshet.metadata import errors as metadata_errors
from freshet.server import errors as server_errors
from freshet.server import status
from freshet.server.broker.service import BrokerService
from freshet.server.controller.service import ControllerService
from freshet.server.groups.service import GroupService
from freshet.server.replication.leader_sessions import ReplicationService
from freshet.storage import errors as storage_errors
from freshet.v1 import (
    broker_pb2,
    broker_pb2_grpc,
    common_pb2,
    controller_pb2_grpc,
    group_pb2_grpc,
    replication_pb2_grpc,
)

E = common_pb2.ErrorCode
S = grpc.StatusCode


class FakeContext:
    """The parts of grpc.aio.ServicerContext that handlers use; records the abort."""

    def __init__(self, reads: list | None = None) -> None:
        self.aborts: list[tuple[grpc.StatusCode, str, tuple]] = []
        self.written: list = []
        self._reads = list(reads or [])

    async def abort(self, code, details="", trailing_metadata=()):
        self.aborts.append((code, details, tuple(trailing_metadata)))
        raise grpc.aio.AbortError()

    async def read(self):
        return self._reads.pop(0) if self._reads else grpc.aio.EOF

    async def write(self, message) -> None:
        self.written.append(message)

    def time_remaining(self):
        return None

    def ended_with(self) -> tuple[grpc.StatusCode, common_pb2.ErrorDetail]:
        assert len(self.aborts) == 1, self.aborts
        code, details, trailing = self.aborts[0]
        found = status.detail_from_metadata(trailing)
        assert found is not None
        assert details == found.message
        return code, found


class FakeMetrics:
    def __init__(self) -> None:
        self.observed: list[str] = []

    def observe_request(self, api: str, seconds: float) -> None:
        assert seconds >= 0
        self.observed.append(api)


class FakeServicer:
    """A servicer whose handlers raise whatever the test puts in `error`."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.node_id = 7
        self.metrics = FakeMetrics()
        self.error = error

    @status.handler("Unary")
    async def Unary(self, request, context):  # noqa: N802
        if self.error is not None:
            raise self.error
        return f"answer to {request}"

    @status.handler()
    async def Streaming(self, request_iterator, context):  # noqa: N802
        while (request := await context.read()) is not grpc.aio.EOF:
            await context.write(f"answer to {request}")
        if self.error is not None:
            raise self.error


def run_unary(error: BaseException | None) -> tuple[FakeServicer, FakeContext, object]:
    servicer, context = FakeServicer(error), FakeContext()
    try:
        answer = asyncio.run(servicer.Unary("ping", context))
    except grpc.aio.AbortError:
        answer = None
    return servicer, context, answer


NOT_LEADER = status.detail(E.NOT_LEADER, "t-0: node 3 leads it", leader_id=3)
ERRORS = [
    # (error, gRPC code, ErrorCode, message)
    (storage_errors.OffsetOutOfRangeError(50, 10, 40), S.OUT_OF_RANGE, E.OFFSET_OUT_OF_RANGE, None),
    (storage_errors.RecordTooLargeError(2_000_000, 1_000_000), S.INVALID_ARGUMENT, E.RECORD_TOO_LARGE, None),
    (metadata_errors.InvalidReplicationFactorError(4, 3), S.INVALID_ARGUMENT, E.INVALID_REPLICATION_FACTOR,
     "replication factor: 4 larger than available brokers: 3"),
    (metadata_errors.ProposalTimeoutError("r", 5.0), S.DEADLINE_EXCEEDED, E.REQUEST_TIMED_OUT, None),
    (server_errors.NotControllerError(2, "127.0.0.1", 9102, "tried 3 times"), S.UNAVAILABLE, E.NOT_CONTROLLER, None),
    (server_errors.InvalidRequiredAcksError(5), S.INVALID_ARGUMENT, E.INVALID_REQUIRED_ACKS,
     "acks must be 0, 1 or -1 (all in-sync replicas), not 5"),
    (server_errors.UnknownMemberError("member 'm' is not in group 'g'"), S.FAILED_PRECONDITION, E.UNKNOWN_MEMBER,
     "member 'm' is not in group 'g'"),
    (server_errors.GroupIdNotFoundError("group 'g' does not exist"), S.NOT_FOUND, E.GROUP_ID_NOT_FOUND, None),
    (server_errors.PartitionRequestError(E.NOT_LEADER, NOT_LEADER), S.FAILED_PRECONDITION, E.NOT_LEADER,
     "t-0: node 3 leads it"),
]


@pytest.mark.parametrize("error, grpc_code, error_code, message", ERRORS, ids=lambda value: type(value).__name__)
def test_a_domain_error_ends_the_call_with_its_row_of_the_table(error, grpc_code, error_code, message):
    _, context, answer = run_unary(error)
    code, found = context.ended_with()
    assert answer is None
    assert (code, found.code) == (grpc_code, error_code)
    assert found.message == (str(error) if message is None else message)
    assert found == status.detail_for(error, 7)


def test_the_detail_carries_the_hints_of_the_error():
    _, context, _ = run_unary(server_errors.NotControllerError(2, "127.0.0.1", 9102))
    _, found = context.ended_with()
    assert (found.controller_id, found.controller.host, found.controller.port) == (2, "127.0.0.1", 9102)
    _, context, _ = run_unary(storage_errors.OffsetOutOfRangeError(50, 10, 40))
    _, found = context.ended_with()
    assert (found.log_start_offset, found.log_end_offset) == (10, 40)
    _, context, _ = run_unary(server_errors.PartitionRequestError(E.NOT_LEADER, NOT_LEADER))
    _, found = context.ended_with()
    assert found.leader_id == 3


def test_a_forwarded_controller_error_keeps_its_grpc_code_and_detail():
    """The table would send NOT_CONTROLLER as UNAVAILABLE; the controller said FAILED_PRECONDITION."""
    forwarded = status.detail(E.NOT_CONTROLLER, "ask node 2", controller_id=2)
    _, context, _ = run_unary(server_errors.ForwardedError(S.FAILED_PRECONDITION, forwarded, "ask node 2"))
    assert context.ended_with() == (S.FAILED_PRECONDITION, forwarded)


def test_a_forwarded_error_without_a_detail_keeps_its_code_and_message(caplog):
    with caplog.at_level(logging.ERROR, logger=status.logger.name):
        _, context, _ = run_unary(server_errors.ForwardedError(S.RESOURCE_EXHAUSTED, None, "message too large"))
    code, found = context.ended_with()
    assert (code, found.code, found.message) == (S.RESOURCE_EXHAUSTED, E.UNKNOWN_SERVER_ERROR, "message too large")
    assert caplog.records == [], "the controller's own failure is logged there, not here"


def test_a_bug_is_internal_with_a_fixed_message_and_a_logged_traceback(caplog):
    with caplog.at_level(logging.ERROR, logger=status.logger.name):
        _, context, _ = run_unary(ZeroDivisionError("secret internals"))
    code, found = context.ended_with()
    assert (code, found.code) == (S.INTERNAL, E.UNKNOWN_SERVER_ERROR)
    assert found.message == "internal error on node 7; see its log"
    assert "secret" not in context.aborts[0][1]
    [record] = caplog.records
    assert "Unary" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError


def test_a_broken_domain_error_base_is_internal_and_logged(caplog):
    with caplog.at_level(logging.ERROR, logger=status.logger.name):
        _, context, _ = run_unary(storage_errors.StorageError("segment vanished"))
    assert context.ended_with()[0] == S.INTERNAL
    assert len(caplog.records) == 1


def test_unary_calls_are_counted_per_api_whatever_their_outcome():
    servicer, context, answer = run_unary(None)
    assert (answer, context.aborts, servicer.metrics.observed) == ("answer to ping", [], ["Unary"])
    servicer, _, _ = run_unary(server_errors.InvalidRequestError("no topic"))
    assert servicer.metrics.observed == ["Unary"]
    servicer, _, _ = run_unary(ZeroDivisionError())
    assert servicer.metrics.observed == ["Unary"]


def test_an_abort_or_a_cancellation_passes_through_untouched():
    servicer, context, _ = run_unary(grpc.aio.AbortError())
    assert context.aborts == []
    assert servicer.metrics.observed == ["Unary"]
    servicer, context = FakeServicer(asyncio.CancelledError()), FakeContext()
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(servicer.Unary("ping", context))
    assert context.aborts == []


def test_a_streaming_handler_ends_with_the_status_after_what_it_wrote():
    servicer = FakeServicer(server_errors.PartitionRequestError(E.NOT_LEADER, NOT_LEADER))
    context = FakeContext(reads=["a", "b"])
    with pytest.raises(grpc.aio.AbortError):
        asyncio.run(servicer.Streaming(None, context))
    assert context.written == ["answer to a", "answer to b"]
    assert context.ended_with() == (S.FAILED_PRECONDITION, NOT_LEADER)
    assert servicer.metrics.observed == [], "streams count their messages themselves"


def test_a_streaming_handler_that_ends_normally_sends_no_status():
    servicer, context = FakeServicer(), FakeContext(reads=["a"])
    assert asyncio.run(servicer.Streaming(None, context)) is None
    assert (context.written, context.aborts) == (["answer to a"], [])


def test_only_coroutine_handlers_can_be_decorated():
    async def generator(self, request, context):
        yield request

    with pytest.raises(AssertionError, match="async def"):
        status.handler()(generator)


@pytest.mark.parametrize(
    "servicer, base",
    [
        (BrokerService, broker_pb2_grpc.BrokerServicer),
        (ControllerService, controller_pb2_grpc.ControllerServicer),
        (GroupService, group_pb2_grpc.GroupServicer),
        (ReplicationService, replication_pb2_grpc.ReplicationServicer),
    ],
    ids=lambda value: value.__name__,
)
def test_every_rpc_a_servicer_implements_goes_through_the_handler(servicer, base):
    handle_code = status.handler()(FakeServicer.Unary.__wrapped__).__code__
    rpcs = [name for name in vars(base) if not name.startswith("_")]
    implemented = [name for name in rpcs if name in vars(servicer)]
    assert implemented, f"{servicer.__name__} implements none of {rpcs}"
    bypassing = [name for name in implemented if vars(servicer)[name].__code__ is not handle_code]
    assert bypassing == [], f"decorate {bypassing} with status.handler"


def broker_service(next_id) -> BrokerService:
    config = types.SimpleNamespace(node_id=4, request_timeout_ms=1000)
    data_plane = types.SimpleNamespace(
        metrics=FakeMetrics(),
        producer_ids=types.SimpleNamespace(next_id=next_id),
        produce_path=types.SimpleNamespace(produce=None),     # InitProducerId never produces
    )
    return BrokerService(config, publisher=None, channels=None, controller_hint=lambda: None, data_plane=data_plane)


def test_init_producer_id_keeps_the_grpc_code_of_a_forwarded_controller_error():
    """The gap this path closed: InitProducerId used to re-derive the code from the ErrorDetail, so
    a controller's FAILED_PRECONDITION NOT_CONTROLLER left as UNAVAILABLE, and a detail-less
    RESOURCE_EXHAUSTED as INTERNAL."""
    for code, forwarded in [
        (S.FAILED_PRECONDITION, status.detail(E.NOT_CONTROLLER, "ask node 2", controller_id=2)),
        (S.RESOURCE_EXHAUSTED, None),
    ]:

        async def next_id(deadline: float, code=code, forwarded=forwarded) -> int:
            raise server_errors.ForwardedError(code, forwarded, "refused by the controller")

        service, context = broker_service(next_id), FakeContext()
        with pytest.raises(grpc.aio.AbortError):
            asyncio.run(service.InitProducerId(broker_pb2.InitProducerIdRequest(), context))
        ended_code, found = context.ended_with()
        assert ended_code == code
        assert found == (forwarded or status.detail(E.UNKNOWN_SERVER_ERROR, "refused by the controller"))
        assert service.metrics.observed == ["InitProducerId"]


def test_init_producer_id_answers_the_allocated_id():
    async def next_id(deadline: float) -> int:
        return 42

    service, context = broker_service(next_id), FakeContext()
    response = asyncio.run(service.InitProducerId(broker_pb2.InitProducerIdRequest(), context))
    assert (response.producer_id, response.producer_epoch, context.aborts) == (42, 0, [])
