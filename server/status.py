"""The single table from domain errors to the wire: (gRPC status code, freshet ErrorCode).

Owns:
- `ERROR_CODES`: every freshet.v1.ErrorCode with the gRPC status code it travels with (STYLE.md §3:
  INVALID_ARGUMENT fail, NOT_FOUND refresh once, ALREADY_EXISTS fail, FAILED_PRECONDITION refresh
  and redirect, UNAVAILABLE back off and retry, ABORTED re-read and retry, OUT_OF_RANGE reset,
  DEADLINE_EXCEEDED outcome unknown, INTERNAL a bug);
- `DOMAIN_ERRORS`: every exception class of storage/, metadata/ and server/ with its ErrorCode (the
  gRPC code then comes from ERROR_CODES); classes that carry their own `error_code` (the
  controller's and the state machine's rejections) map through it instead (row value None);
- turning an exception into a google.rpc.Status with a freshet.v1.ErrorDetail (message and hints:
  controller, leader, offsets); reading it back from a call;
- `handler`: the decorator on every servicer method, the one path by which an exception leaves a
  gRPC call (and the per-API request metrics of unary calls).

A unit test checks that every ErrorCode and every domain exception class has a row.

Imports grpc, grpcio-status, wire types and the error modules of storage, metadata and server; no
server sub-package (they import this module).
Thread-safety: module data is immutable; functions are pure (a handler awaits its call's context).
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

import grpc
from freshet.metadata import errors as metadata_errors
from freshet.server import errors as server_errors
from freshet.storage import errors as storage_errors
from freshet.v1 import common_pb2
from google.protobuf import any_pb2
from google.rpc import status_pb2
from grpc_status import rpc_status

logger = logging.getLogger(__name__)

E = common_pb2.ErrorCode
S = grpc.StatusCode

DETAILS_METADATA_KEY = "grpc-status-details-bin"

#: A servicer method: (self, request or request iterator, context) -> response (None if streaming).
Handler = Callable[..., Awaitable]

ERROR_CODES: Mapping[int, grpc.StatusCode] = {
    E.NONE: S.OK,
    E.UNKNOWN_SERVER_ERROR: S.INTERNAL,
    E.OFFSET_OUT_OF_RANGE: S.OUT_OF_RANGE,
    E.CORRUPT_RECORD: S.INVALID_ARGUMENT,
    E.UNKNOWN_TOPIC: S.NOT_FOUND,
    E.LEADER_NOT_AVAILABLE: S.UNAVAILABLE,
    E.NOT_LEADER: S.FAILED_PRECONDITION,
    E.REQUEST_TIMED_OUT: S.DEADLINE_EXCEEDED,
    E.BROKER_NOT_AVAILABLE: S.UNAVAILABLE,
    E.RECORD_TOO_LARGE: S.INVALID_ARGUMENT,
    E.STALE_CONTROLLER_EPOCH: S.UNAVAILABLE,
    E.COORDINATOR_LOAD_IN_PROGRESS: S.UNAVAILABLE,
    E.COORDINATOR_NOT_AVAILABLE: S.UNAVAILABLE,
    E.NOT_COORDINATOR: S.FAILED_PRECONDITION,
    E.INVALID_TOPIC: S.INVALID_ARGUMENT,
    E.NOT_ENOUGH_REPLICAS: S.UNAVAILABLE,
    E.NOT_ENOUGH_REPLICAS_AFTER_APPEND: S.UNAVAILABLE,
    E.INVALID_REQUIRED_ACKS: S.INVALID_ARGUMENT,
    E.ILLEGAL_GENERATION: S.FAILED_PRECONDITION,
    E.INCONSISTENT_GROUP_PROTOCOL: S.INVALID_ARGUMENT,
    E.INVALID_GROUP_ID: S.INVALID_ARGUMENT,
    E.UNKNOWN_MEMBER: S.FAILED_PRECONDITION,
    E.INVALID_SESSION_TIMEOUT: S.INVALID_ARGUMENT,
    E.REBALANCE_IN_PROGRESS: S.ABORTED,
    E.INVALID_TIMESTAMP: S.INVALID_ARGUMENT,
    E.TOPIC_ALREADY_EXISTS: S.ALREADY_EXISTS,
    E.INVALID_PARTITIONS: S.INVALID_ARGUMENT,
    E.INVALID_REPLICATION_FACTOR: S.INVALID_ARGUMENT,
    E.INVALID_REPLICA_ASSIGNMENT: S.INVALID_ARGUMENT,
    E.INVALID_CONFIG: S.INVALID_ARGUMENT,
    # Sent only after forwarding found no active controller within the deadline, or by a
    # non-controller to a broker's heartbeat stream (with the hint): back off and retry.
    E.NOT_CONTROLLER: S.UNAVAILABLE,
    E.INVALID_REQUEST: S.INVALID_ARGUMENT,
    E.OUT_OF_ORDER_SEQUENCE: S.FAILED_PRECONDITION,
    E.DUPLICATE_SEQUENCE: S.ALREADY_EXISTS,
    E.INVALID_PRODUCER_EPOCH: S.FAILED_PRECONDITION,
    E.KAFKA_STORAGE_ERROR: S.UNAVAILABLE,
    E.UNKNOWN_PRODUCER_ID: S.FAILED_PRECONDITION,
    E.REASSIGNMENT_IN_PROGRESS: S.FAILED_PRECONDITION,
    E.NON_EMPTY_GROUP: S.FAILED_PRECONDITION,
    E.GROUP_ID_NOT_FOUND: S.NOT_FOUND,
    E.FENCED_LEADER_EPOCH: S.ABORTED,
    E.UNKNOWN_LEADER_EPOCH: S.UNAVAILABLE,
    E.UNSUPPORTED_COMPRESSION_TYPE: S.INVALID_ARGUMENT,
    E.STALE_BROKER_EPOCH: S.FAILED_PRECONDITION,
    E.PREFERRED_LEADER_NOT_AVAILABLE: S.FAILED_PRECONDITION,
    E.FENCED_INSTANCE_ID: S.FAILED_PRECONDITION,
    E.ELIGIBLE_LEADERS_NOT_AVAILABLE: S.FAILED_PRECONDITION,
    E.ELECTION_NOT_NEEDED: S.FAILED_PRECONDITION,
    E.NO_REASSIGNMENT_IN_PROGRESS: S.FAILED_PRECONDITION,
    E.INVALID_RECORD: S.INVALID_ARGUMENT,
    E.INVALID_UPDATE_VERSION: S.ABORTED,
    E.UNKNOWN_TOPIC_ID: S.NOT_FOUND,
    E.BROKER_ID_NOT_REGISTERED: S.NOT_FOUND,
    E.GROUP_MAX_SIZE_REACHED: S.RESOURCE_EXHAUSTED,
    E.FENCED_MEMBER_EPOCH: S.FAILED_PRECONDITION,
    E.UNRELEASED_INSTANCE_ID: S.FAILED_PRECONDITION,
    E.UNSUPPORTED_ASSIGNOR: S.INVALID_ARGUMENT,
    E.STALE_MEMBER_EPOCH: S.FAILED_PRECONDITION,
    E.NO_QUORUM: S.UNAVAILABLE,
    E.TOPIC_AUTHORIZATION_FAILED: S.PERMISSION_DENIED,
    E.GROUP_AUTHORIZATION_FAILED: S.PERMISSION_DENIED,
    E.CLUSTER_AUTHORIZATION_FAILED: S.PERMISSION_DENIED,
    E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: S.PERMISSION_DENIED,
    E.SASL_AUTHENTICATION_FAILED: S.UNAUTHENTICATED,
    E.UNSUPPORTED_SASL_MECHANISM: S.INVALID_ARGUMENT,
    E.ILLEGAL_SASL_STATE: S.FAILED_PRECONDITION,
    E.SECURITY_DISABLED: S.FAILED_PRECONDITION,
    E.RESOURCE_NOT_FOUND: S.NOT_FOUND,
    E.UNACCEPTABLE_CREDENTIAL: S.INVALID_ARGUMENT,
    E.DUPLICATE_RESOURCE: S.INVALID_ARGUMENT,
    E.GROUP_SUBSCRIBED_TO_TOPIC: S.FAILED_PRECONDITION,
}

# Exception class -> ErrorCode; None: the instance carries `error_code` (ControllerRequestError
# and CommandFailedError: rejections whose code the controller or state machine chose;
# PartitionRequestError and ForwardedError: a partition's or the controller's ErrorDetail).
DOMAIN_ERRORS: Mapping[type[Exception], int | None] = {
    # storage/
    storage_errors.StorageError: E.UNKNOWN_SERVER_ERROR,
    storage_errors.CorruptRecordError: E.CORRUPT_RECORD,        # a producer's batch failed its CRC
    storage_errors.InvalidRecordError: E.INVALID_RECORD,
    storage_errors.RecordTooLargeError: E.RECORD_TOO_LARGE,
    storage_errors.UnsupportedCompressionError: E.UNSUPPORTED_COMPRESSION_TYPE,
    storage_errors.OffsetOutOfRangeError: E.OFFSET_OUT_OF_RANGE,
    storage_errors.LogOffsetGapError: E.INVALID_REQUEST,
    storage_errors.OutOfOrderSequenceError: E.OUT_OF_ORDER_SEQUENCE,
    storage_errors.InvalidProducerEpochError: E.INVALID_PRODUCER_EPOCH,
    storage_errors.CorruptCheckpointError: E.KAFKA_STORAGE_ERROR,
    storage_errors.CorruptIndexError: E.KAFKA_STORAGE_ERROR,
    storage_errors.InconsistentTopicIdError: E.UNKNOWN_TOPIC_ID,
    storage_errors.LogClosedError: E.NOT_LEADER,                # the replica moved away meanwhile
    storage_errors.KafkaStorageError: E.KAFKA_STORAGE_ERROR,
    storage_errors.LogDirFullError: E.KAFKA_STORAGE_ERROR,     # travels as RESOURCE_EXHAUSTED (status_of)
    # metadata/
    metadata_errors.MetadataError: E.UNKNOWN_SERVER_ERROR,
    metadata_errors.InvalidConfigError: E.INVALID_CONFIG,
    metadata_errors.CommandFailedError: None,
    metadata_errors.SnapshotFormatError: E.UNKNOWN_SERVER_ERROR,
    metadata_errors.JournalError: E.NO_QUORUM,
    metadata_errors.JournalFullError: E.NO_QUORUM,
    metadata_errors.DataDirectoryError: E.KAFKA_STORAGE_ERROR,
    metadata_errors.RaftBindError: E.UNKNOWN_SERVER_ERROR,
    metadata_errors.ControllerRequestError: None,
    metadata_errors.InvalidReplicationFactorError: None,
    metadata_errors.StaleBrokerEpochError: None,
    metadata_errors.QuorumError: E.NO_QUORUM,
    metadata_errors.NotLeaderError: E.NOT_CONTROLLER,
    metadata_errors.QuorumBusyError: E.NO_QUORUM,
    metadata_errors.CommandDiscardedError: E.NOT_CONTROLLER,
    metadata_errors.CommandTooLargeError: E.INVALID_REQUEST,
    metadata_errors.TransferDeniedError: E.INVALID_REQUEST,
    metadata_errors.QuorumClosedError: E.NO_QUORUM,
    metadata_errors.OutcomeUnknownError: E.REQUEST_TIMED_OUT,
    metadata_errors.ProposalTimeoutError: E.REQUEST_TIMED_OUT,
    metadata_errors.LeaderChangedError: E.REQUEST_TIMED_OUT,
    # server/
    server_errors.ServerError: E.UNKNOWN_SERVER_ERROR,
    server_errors.NodeConfigError: E.INVALID_CONFIG,
    server_errors.NodeStartError: E.UNKNOWN_SERVER_ERROR,
    server_errors.NotControllerError: E.NOT_CONTROLLER,
    server_errors.RequestTimedOutError: E.REQUEST_TIMED_OUT,
    server_errors.InvalidRequestError: E.INVALID_REQUEST,
    server_errors.InvalidRequiredAcksError: E.INVALID_REQUIRED_ACKS,
    server_errors.PartitionRequestError: None,                  # the partition's own code
    server_errors.NotCoordinatorError: E.NOT_COORDINATOR,
    server_errors.CoordinatorLoadInProgressError: E.COORDINATOR_LOAD_IN_PROGRESS,
    server_errors.CoordinatorNotAvailableError: E.COORDINATOR_NOT_AVAILABLE,
    server_errors.ForwardedError: None,                         # the controller's answer, gRPC code too
    server_errors.GroupError: E.UNKNOWN_SERVER_ERROR,
    server_errors.UnknownMemberError: E.UNKNOWN_MEMBER,
    server_errors.FencedMemberEpochError: E.FENCED_MEMBER_EPOCH,
    server_errors.StaleMemberEpochError: E.STALE_MEMBER_EPOCH,
    server_errors.NonEmptyGroupError: E.NON_EMPTY_GROUP,
    server_errors.GroupIdNotFoundError: E.GROUP_ID_NOT_FOUND,
    server_errors.InvalidGroupRequestError: E.INVALID_REQUEST,
    server_errors.UnsupportedAssignorError: E.UNSUPPORTED_ASSIGNOR,
    server_errors.GroupMaxSizeReachedError: E.GROUP_MAX_SIZE_REACHED,
    server_errors.InconsistentGroupProtocolError: E.INCONSISTENT_GROUP_PROTOCOL,
    server_errors.IllegalGenerationError: E.ILLEGAL_GENERATION,
    # the Kafka listener (server/kafka): the connection is closed; INVALID_REQUEST if ever answered
    server_errors.AuthenticationError: E.SASL_AUTHENTICATION_FAILED,
    server_errors.IllegalSaslStateError: E.ILLEGAL_SASL_STATE,
    server_errors.UnsupportedSaslMechanismError: E.UNSUPPORTED_SASL_MECHANISM,
    server_errors.AuthorizationError: None,                     # the resource type's code
    server_errors.SecurityDisabledError: E.SECURITY_DISABLED,
    server_errors.ActionRefusedError: None,                     # the refused request's own code
    server_errors.KafkaFrameError: E.INVALID_REQUEST,
    server_errors.UnsupportedKafkaRequestError: E.INVALID_REQUEST,
}

# Error classes whose instances describe bugs or broken nodes rather than the request: their
# message is logged with a traceback and the client gets a fixed text.
_INTERNAL_MESSAGE = "internal error on node {node}; see its log"


def error_code_of(error: Exception) -> int:
    """The freshet ErrorCode of a domain error (UNKNOWN_SERVER_ERROR for anything else)."""
    for cls in type(error).__mro__:
        if cls in DOMAIN_ERRORS:
            code = DOMAIN_ERRORS[cls]
            if code is None:
                code = error.error_code  # type: ignore[attr-defined]
            return code
    return E.UNKNOWN_SERVER_ERROR


def grpc_code(error_code: int) -> grpc.StatusCode:
    return ERROR_CODES.get(error_code, S.INTERNAL)


# The Kafka protocol's table, beside the gRPC one. Freshet's ErrorCode numbers are Kafka's
# (common.proto), so a Kafka client gets the same number, except for the Freshet-only codes:
KAFKA_REQUEST_TIMED_OUT = 7
_KAFKA_CODES: dict[int, int] = {
    # No metadata quorum: the request could not be ordered. Kafka clients retry REQUEST_TIMED_OUT.
    E.NO_QUORUM: KAFKA_REQUEST_TIMED_OUT,
    # Forwarding found no active controller before the request's deadline. A KRaft broker
    # forwards admin requests (KIP-590) and answers REQUEST_TIMED_OUT then; NOT_CONTROLLER is
    # only what a controller tells a broker, never what a Kafka client of a broker sees.
    E.NOT_CONTROLLER: KAFKA_REQUEST_TIMED_OUT,
}


def kafka_code(error_code: int) -> int:
    """The Kafka error code a Kafka client gets for a Freshet ErrorCode."""
    return _KAFKA_CODES.get(error_code, error_code)


def kafka_error_of(error: Exception, node_id: int = -1) -> tuple[int, str]:
    """(Kafka error code, message) for a domain error raised while answering a Kafka request."""
    error_detail = detail_for(error, node_id)
    return kafka_code(error_detail.code), error_detail.message


def detail(error_code: int, message: str, **hints) -> common_pb2.ErrorDetail:
    """An ErrorDetail; `hints` are ErrorDetail fields (controller_id, leader_id, ...)."""
    result = common_pb2.ErrorDetail(code=error_code, message=message, leader_id=-1, controller_id=-1)
    for name, value in hints.items():
        if isinstance(value, common_pb2.BrokerEndpoint | common_pb2.TopicPartition):
            getattr(result, name).CopyFrom(value)
        else:
            setattr(result, name, value)
    return result


def ok_detail() -> common_pb2.ErrorDetail:
    return common_pb2.ErrorDetail(code=E.NONE, leader_id=-1, controller_id=-1)


def detail_for(error: Exception, node_id: int = -1) -> common_pb2.ErrorDetail:
    """The ErrorDetail of a domain error, with the hints its data gives."""
    if isinstance(error, server_errors.PartitionRequestError):
        found = common_pb2.ErrorDetail()
        found.CopyFrom(error.detail)
        return found
    if isinstance(error, server_errors.ForwardedError):
        if error.error_detail is None:
            return detail(E.UNKNOWN_SERVER_ERROR, error.message)
        found = common_pb2.ErrorDetail()
        found.CopyFrom(error.error_detail)
        return found
    code = error_code_of(error)
    if isinstance(error, metadata_errors.ControllerRequestError):
        message = error.message
    elif isinstance(error, metadata_errors.CommandFailedError):
        message = error.error_message
    elif code == E.UNKNOWN_SERVER_ERROR:
        message = _INTERNAL_MESSAGE.format(node=node_id)
    else:
        message = str(error)
    hints: dict = {}
    if isinstance(error, server_errors.NotControllerError):
        hints["controller_id"] = error.controller_id
        if error.host:
            hints["controller"] = common_pb2.BrokerEndpoint(node_id=error.controller_id, host=error.host, port=error.port)
    elif isinstance(error, metadata_errors.NotLeaderError) and error.leader_id is not None:
        hints["controller_id"] = error.leader_id
    elif isinstance(error, storage_errors.OffsetOutOfRangeError):
        hints["log_start_offset"] = error.log_start_offset
        hints["log_end_offset"] = error.log_end_offset
    return detail(code, message, **hints)


def to_rpc_status(code: grpc.StatusCode, error_detail: common_pb2.ErrorDetail) -> grpc.Status:
    """A grpc.Status carrying `error_detail` as a google.rpc.Status detail."""
    packed = any_pb2.Any()
    packed.Pack(error_detail)
    return rpc_status.to_status(
        status_pb2.Status(code=code.value[0], message=error_detail.message, details=[packed])
    )


def status_of(error: Exception, node_id: int = -1) -> tuple[grpc.StatusCode, common_pb2.ErrorDetail]:
    """The gRPC status code and ErrorDetail a call ends with when its handler raised `error`.

    The code is the table's for the detail's ErrorCode, except for a ForwardedError: that is the
    active controller's answer and keeps the code it came with (the client sees what the controller
    said, whichever node it asked)."""
    error_detail = detail_for(error, node_id)
    if isinstance(error, server_errors.ForwardedError):
        return error.code, error_detail
    if isinstance(error, storage_errors.LogDirFullError):
        # A full disk is not a broken one (STYLE.md §3: RESOURCE_EXHAUSTED, back off); the
        # ErrorCode stays Kafka's KAFKA_STORAGE_ERROR, which clients retry.
        return S.RESOURCE_EXHAUSTED, error_detail
    return grpc_code(error_detail.code), error_detail


def handler(api: str | None = None) -> Callable[[Handler], Handler]:
    """Decorate a gRPC handler of a servicer: the one path from exceptions to gRPC statuses.

    Works for unary and streaming handlers alike (every handler is an `async def` that returns its
    response or writes to the context). An exception the handler raises ends the call with
    `status_of(error)`: the table's gRPC code and an ErrorDetail with the error's hints. Errors that
    map to UNKNOWN_SERVER_ERROR (bugs, broken nodes) are logged with their traceback, and the
    client gets a fixed message naming the node (a ForwardedError's failure was logged where it
    happened, on the controller, and passes on as it came). A call the handler aborted itself, or that was
    cancelled, passes through.

    Who is calling: when the servicer has an `authenticator` (server/security/authentication.py;
    None or absent on a PLAINTEXT node), `authenticator.enter(context)` binds the call's Caller
    before the handler runs and `authenticator.exit(...)` unbinds it after; an unauthenticated
    call on a SASL_SSL node ends there with UNAUTHENTICATED / SASL_AUTHENTICATION_FAILED.

    The servicer provides `node_id` (named in INTERNAL messages) and, when `api` is given,
    `metrics` (server/metrics.py): the call is then counted and timed under `api`, whatever its
    outcome. Streaming handlers count their messages themselves and pass no `api`.
    """

    def decorate(method: Handler) -> Handler:
        assert inspect.iscoroutinefunction(method), f"{method.__qualname__}: gRPC handlers are async def"

        @functools.wraps(method)
        async def handle(self, request, context: grpc.aio.ServicerContext):
            started = time.monotonic()
            authenticator = getattr(self, "authenticator", None)
            bound = None
            try:
                if authenticator is not None:
                    bound = authenticator.enter(context)     # raises AuthenticationError
                return await method(self, request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as error:
                code, error_detail = status_of(error, self.node_id)
                if error_detail.code == E.UNKNOWN_SERVER_ERROR and not isinstance(error, server_errors.ForwardedError):
                    logger.error("internal error answering %s", method.__name__, exc_info=error)
                rpc = to_rpc_status(code, error_detail)
                await context.abort(rpc.code, rpc.details, rpc.trailing_metadata)
            finally:
                if bound is not None:
                    authenticator.exit(bound)
                if api is not None:
                    self.metrics.observe_request(api, time.monotonic() - started)

        return handle

    return decorate


def detail_from_metadata(trailing_metadata) -> common_pb2.ErrorDetail | None:
    """The ErrorDetail inside a call's trailing metadata, or None."""
    for key, value in trailing_metadata or ():
        if key == DETAILS_METADATA_KEY:
            status = status_pb2.Status.FromString(value)
            for item in status.details:
                if item.Is(common_pb2.ErrorDetail.DESCRIPTOR):
                    found = common_pb2.ErrorDetail()
                    item.Unpack(found)
                    return found
    return None


def detail_from_rpc_error(error: grpc.RpcError) -> common_pb2.ErrorDetail | None:
    """The ErrorDetail a failed call carried, or None (e.g. the connection failed)."""
    trailing = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    return detail_from_metadata(trailing)
