"""Domain exceptions of the metadata layer.

Owns every exception that freshet.metadata raises to its callers. They carry data (leader hints,
offsets, config keys), never a gRPC status: server/status.py holds the single table that maps them
to the wire. Rejections *by the state machine* are not exceptions: they are MetadataResult values
with an ErrorCode, because apply() never raises (`CommandFailedError` exists for callers who prefer
to raise on such a result).

Imports nothing but the standard library and the generated wire types. Thread-safe: exceptions are
immutable after construction.

Tree (`outcome_unknown` tells a proposer whether the command may still be applied later)::

    MetadataError
    ├── InvalidConfigError                 a config key/value failed the schema (configs.py)
    ├── CommandFailedError                 a MetadataResult carried an error code
    ├── SnapshotFormatError                snapshot bytes are not a valid Freshet snapshot
    ├── JournalError                       the Raft journal could not be read or written (fatal)
    ├── DataDirectoryError                 the data directory is unusable or held by another process
    ├── RaftBindError                      the Raft address could not be bound
    ├── ControllerRequestError             the active controller refused a request (carries its ErrorCode)
    │   ├── InvalidReplicationFactorError  more replicas than available brokers, or fewer than 1
    │   └── StaleBrokerEpochError          a broker incarnation that was replaced (or never registered)
    └── QuorumError                        the quorum could not take the proposal
        ├── NotLeaderError                 this voter is not the leader (not applied)
        ├── QuorumBusyError                the proposal queue is full (not applied)
        ├── CommandDiscardedError          a new leader replaced the entry (not applied)
        ├── CommandTooLargeError           encoded command above the limit (not applied)
        ├── TransferDeniedError            a leadership transfer was refused
        ├── QuorumClosedError              the quorum is closed or failed (outcome unknown)
        └── OutcomeUnknownError            may or may not be applied; retry with the same request id
            ├── ProposalTimeoutError       no result within the proposal timeout
            └── LeaderChangedError         leadership moved while waiting for the result
"""

from __future__ import annotations

from freshet.v1 import common_pb2


class MetadataError(Exception):
    """Base of every metadata-layer exception. Thread-safe (immutable)."""


class InvalidConfigError(MetadataError):
    """A configuration key or value is not acceptable. Thread-safe (immutable).

    Attributes:
        key: the configuration key as given.
        value: the offending value as given (None when the key itself is the problem).
        reason: what is wrong, e.g. "must be an integer >= -1".
    """

    def __init__(self, key: str, value: str | None, reason: str) -> None:
        self.key = key
        self.value = value
        self.reason = reason
        if value is None:
            message = f"configuration {key!r}: {reason}"
        else:
            message = f"invalid value {value!r} for configuration {key!r}: {reason}"
        super().__init__(message)


class CommandFailedError(MetadataError):
    """A command was applied but the state machine rejected it. Thread-safe (immutable).

    Attributes:
        error_code: the common_pb2.ErrorCode value of the result.
        error_message: the state machine's explanation.
        request_id: the request id of the rejected command.
        offset: the metadata offset at which the rejection was applied.
    """

    def __init__(self, error_code: int, error_message: str, request_id: str, offset: int) -> None:
        self.error_code = error_code
        self.error_message = error_message
        self.request_id = request_id
        self.offset = offset
        name = common_pb2.ErrorCode.Name(error_code)
        super().__init__(f"{name}: {error_message} (request {request_id!r}, offset {offset})")


class SnapshotFormatError(MetadataError):
    """Bytes that should hold a Freshet snapshot do not. Thread-safe (immutable).

    Attributes:
        reason: what failed (magic, version, checksum, protobuf decoding, an invariant).
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"not a valid Freshet metadata snapshot: {reason}")


class JournalError(MetadataError):
    """The Raft journal or its meta file could not be read or written. Thread-safe (immutable).

    A voter that cannot persist its log must stop voting: the quorum treats this as fatal.

    Attributes:
        path: the file concerned.
        reason: what failed.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"raft journal {path}: {reason}")


class JournalFullError(JournalError):
    """The journal's filesystem is full: the buffered records were not written (the file was cut
    back to its last whole record) and stay buffered; the quorum retries at its next tick instead
    of stopping. Nothing unwritten is acknowledged meanwhile. Thread-safe (immutable)."""


class DataDirectoryError(MetadataError):
    """The quorum's data directory cannot be used. Thread-safe (immutable).

    Attributes:
        path: the directory.
        reason: what is wrong (e.g. locked by another process).
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"metadata data directory {path}: {reason}")


class RaftBindError(MetadataError):
    """The voter could not listen on its Raft address. Thread-safe (immutable).

    Attributes:
        address: "host:port".
        reason: the last bind error.
    """

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(f"cannot listen on raft address {address}: {reason}")


class ControllerRequestError(MetadataError):
    """The controller logic refused a request before proposing anything. Thread-safe (immutable).

    Raised by freshet.metadata.controller and freshet.metadata.placement for requests that are
    invalid against the current image (bad topic name, unknown topic, stale epochs, ...). The
    ErrorCode says which; server/status.py maps it to the wire.

    Attributes:
        error_code: the common_pb2.ErrorCode value.
        message: what is wrong, naming the offending item.
    """

    def __init__(self, error_code: int, message: str) -> None:
        self.error_code = error_code
        self.message = message
        super().__init__(message)


class InvalidReplicationFactorError(ControllerRequestError):
    """A topic asks for more replicas than there are available brokers (or fewer than one).

    Attributes:
        replication_factor: what was asked.
        available_brokers: registered, unfenced brokers not shutting down.
    """

    def __init__(self, replication_factor: int, available_brokers: int) -> None:
        self.replication_factor = replication_factor
        self.available_brokers = available_brokers
        if replication_factor < 1:
            message = f"replication factor must be at least 1, not {replication_factor}"
        else:
            # Kafka's wording (InvalidReplicationFactorException), which users search for.
            message = f"replication factor: {replication_factor} larger than available brokers: {available_brokers}"
        super().__init__(common_pb2.INVALID_REPLICATION_FACTOR, message)


class StaleBrokerEpochError(ControllerRequestError):
    """A broker spoke with an epoch that is not its current registration's.

    Attributes:
        node_id: the broker.
        broker_epoch: the epoch it sent.
        current_epoch: the epoch of its current registration (-1 when it is not registered).
    """

    def __init__(self, node_id: int, broker_epoch: int, current_epoch: int) -> None:
        self.node_id = node_id
        self.broker_epoch = broker_epoch
        self.current_epoch = current_epoch
        if current_epoch < 0:
            message = f"broker {node_id} is not registered (epoch {broker_epoch})"
        else:
            message = (
                f"broker {node_id} epoch {broker_epoch} is stale: its current registration has epoch "
                f"{current_epoch} (another process registered as node {node_id})"
            )
        super().__init__(common_pb2.STALE_BROKER_EPOCH, message)


class QuorumError(MetadataError):
    """The metadata quorum could not take or finish a proposal. Thread-safe (immutable).

    Attributes:
        outcome_unknown: True when the command may still be applied later; the proposer must then
            retry with the same request id (the state machine answers a duplicate with the first
            result) or read the image, never assume failure.
    """

    outcome_unknown = False


class NotLeaderError(QuorumError):
    """This voter is not the Raft leader, so it does not accept proposals. Not applied.

    Attributes:
        leader_id: the node id of the leader as this voter knows it, or None when unknown.
    """

    def __init__(self, leader_id: int | None) -> None:
        self.leader_id = leader_id
        hint = "no leader is known" if leader_id is None else f"the leader is node {leader_id}"
        super().__init__(f"not the metadata quorum leader: {hint}")


class QuorumBusyError(QuorumError):
    """The proposal queue is full; the command was not appended. Back off and retry."""

    def __init__(self, queue_size: int) -> None:
        self.queue_size = queue_size
        super().__init__(f"metadata proposal queue is full ({queue_size} commands waiting)")


class CommandDiscardedError(QuorumError):
    """A new leader overwrote the uncommitted entry: the command was definitely not applied."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        super().__init__(f"command {request_id!r} was discarded by a new leader before commit")


class CommandTooLargeError(QuorumError):
    """The encoded command exceeds the largest entry the quorum replicates. Not applied."""

    def __init__(self, size_bytes: int, size_bytes_max: int) -> None:
        self.size_bytes = size_bytes
        self.size_bytes_max = size_bytes_max
        super().__init__(f"command is {size_bytes} bytes; the limit is {size_bytes_max} bytes")


class TransferDeniedError(QuorumError):
    """A leadership transfer was refused (target unknown, not connected or not caught up).

    Attributes:
        target_id: the requested node id, or None for "any caught-up voter".
    """

    def __init__(self, target_id: int | None) -> None:
        self.target_id = target_id
        target = "any voter" if target_id is None else f"node {target_id}"
        super().__init__(f"leadership transfer to {target} refused: not a connected, caught-up voter")


class QuorumClosedError(QuorumError):
    """The quorum was closed (or stopped after a fatal error) before the outcome was known."""

    outcome_unknown = True

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"metadata quorum is closed: {reason}; the outcome may be unknown")


class OutcomeUnknownError(QuorumError):
    """The command may or may not be applied. Retry with the same request id, or read the image.

    Attributes:
        request_id: the request id of the command.
    """

    outcome_unknown = True

    def __init__(self, request_id: str, reason: str) -> None:
        self.request_id = request_id
        self.reason = reason
        super().__init__(f"command {request_id!r}: {reason}; the outcome is unknown (it may still apply)")


class ProposalTimeoutError(OutcomeUnknownError):
    """No result arrived within the proposal timeout."""

    def __init__(self, request_id: str, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        super().__init__(request_id, f"no result within {timeout_s:.3f} s")


class LeaderChangedError(OutcomeUnknownError):
    """Leadership moved while the command was in flight."""

    def __init__(self, request_id: str) -> None:
        super().__init__(request_id, "the metadata leader changed while the command was in flight")
