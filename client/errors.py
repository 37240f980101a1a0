"""Every exception the client SDK raises, one class per protocol error code plus client-side ones.

Owns the client's exception tree. A broker reports failures as a `freshet.v1.ErrorCode` (a gRPC
status detail, or inline per partition); the transport turns each code into the class below with
the same name, carrying the hints the broker sent (current leader, valid offset range). Errors
detected in the client itself (no broker reachable, a delivery deadline passed, a full buffer)
have their own classes and `code` None. No class here knows anything of gRPC: a raw
`grpc.RpcError` never reaches users.

`retriable` says whether the same operation may succeed if tried again later. The producer and
the consumer already retry retriable errors internally (within `delivery_timeout_ms` /
`retries`), so one that reaches the application means those retries ran out. `InvalidMetadataError`
marks errors after which the client refreshes its metadata before retrying (Kafka's
InvalidMetadataException).

Tree (code in brackets; * retriable)::

    FreshetError                                   .code .code_name .message .retriable
    |-- RetriableError *
    |   |-- InvalidMetadataError *                 refresh metadata, then retry
    |   |   |-- NotLeaderError *                   [NOT_LEADER] .leader_id .leader .leader_epoch
    |   |   |-- LeaderNotAvailableError *          [LEADER_NOT_AVAILABLE]
    |   |   |-- UnknownTopicError *                [UNKNOWN_TOPIC] topic or partition does not exist
    |   |   |-- UnknownTopicIdError *              [UNKNOWN_TOPIC_ID]
    |   |   |-- FencedLeaderEpochError *           [FENCED_LEADER_EPOCH] our leader epoch is old
    |   |   |-- BrokerUnavailableError *           [BROKER_NOT_AVAILABLE] also: connection failures
    |   |   |-- KafkaStorageError *                [KAFKA_STORAGE_ERROR] the broker's disk failed
    |   |   |-- PreferredLeaderNotAvailableError * [PREFERRED_LEADER_NOT_AVAILABLE]
    |   |   `-- EligibleLeadersNotAvailableError * [ELIGIBLE_LEADERS_NOT_AVAILABLE]
    |   |-- UnknownLeaderEpochError *              [UNKNOWN_LEADER_EPOCH] the broker is behind us
    |   |-- RequestTimedOutError *                 [REQUEST_TIMED_OUT] outcome unknown
    |   |-- NotEnoughReplicasError *               [NOT_ENOUGH_REPLICAS] nothing appended
    |   |-- NotEnoughReplicasAfterAppendError *    [NOT_ENOUGH_REPLICAS_AFTER_APPEND]
    |   |-- CoordinatorLoadInProgressError *       [COORDINATOR_LOAD_IN_PROGRESS]
    |   |-- CoordinatorNotAvailableError *         [COORDINATOR_NOT_AVAILABLE]
    |   |-- NotCoordinatorError *                  [NOT_COORDINATOR]
    |   |-- NotControllerError *                   [NOT_CONTROLLER] .controller_id .controller
    |   |-- NoQuorumError *                        [NO_QUORUM]
    |   `-- ClientTimeoutError *                   a client-side deadline passed (code None)
    |       |-- DeliveryTimeoutError *             delivery_timeout_ms passed; outcome unknown
    |       `-- MaxBlockTimeoutError *             send() blocked for max_block_ms (metadata)
    |           `-- BufferFullError *              ... because buffer_memory stayed full
    |-- UnknownServerError                         [UNKNOWN_SERVER_ERROR] also: unexpected replies
    |-- OffsetOutOfRangeError                      [OFFSET_OUT_OF_RANGE] .log_start_offset .log_end_offset
    |-- CorruptRecordError                         [CORRUPT_RECORD] .topic_partition .offset
    |-- RecordTooLargeError                        [RECORD_TOO_LARGE]
    |-- InvalidRecordError                         [INVALID_RECORD]
    |-- InvalidTimestampError                      [INVALID_TIMESTAMP]
    |-- UnsupportedCompressionTypeError            [UNSUPPORTED_COMPRESSION_TYPE]
    |-- InvalidRequiredAcksError                   [INVALID_REQUIRED_ACKS]
    |-- InvalidRequestError                        [INVALID_REQUEST]
    |-- OutOfOrderSequenceError                    [OUT_OF_ORDER_SEQUENCE] records were lost
    |-- DuplicateSequenceError                     [DUPLICATE_SEQUENCE]
    |-- InvalidProducerEpochError                  [INVALID_PRODUCER_EPOCH]
    |-- UnknownProducerIdError                     [UNKNOWN_PRODUCER_ID]
    |-- InvalidTopicError                          [INVALID_TOPIC]
    |-- TopicAlreadyExistsError                    [TOPIC_ALREADY_EXISTS]
    |-- InvalidPartitionsError                     [INVALID_PARTITIONS]
    |-- InvalidReplicationFactorError              [INVALID_REPLICATION_FACTOR]
    |-- InvalidReplicaAssignmentError              [INVALID_REPLICA_ASSIGNMENT]
    |-- InvalidConfigError                         [INVALID_CONFIG]
    |-- ReassignmentInProgressError                [REASSIGNMENT_IN_PROGRESS]
    |-- NoReassignmentInProgressError              [NO_REASSIGNMENT_IN_PROGRESS]
    |-- ElectionNotNeededError                     [ELECTION_NOT_NEEDED]
    |-- InvalidUpdateVersionError                  [INVALID_UPDATE_VERSION]
    |-- StaleControllerEpochError                  [STALE_CONTROLLER_EPOCH]
    |-- StaleBrokerEpochError                      [STALE_BROKER_EPOCH]
    |-- IllegalGenerationError                     [ILLEGAL_GENERATION]
    |-- InconsistentGroupProtocolError             [INCONSISTENT_GROUP_PROTOCOL]
    |-- InvalidGroupIdError                        [INVALID_GROUP_ID]
    |-- UnknownMemberError                         [UNKNOWN_MEMBER]
    |-- InvalidSessionTimeoutError                 [INVALID_SESSION_TIMEOUT]
    |-- RebalanceInProgressError                   [REBALANCE_IN_PROGRESS]
    |-- NonEmptyGroupError                         [NON_EMPTY_GROUP]
    |-- GroupIdNotFoundError                       [GROUP_ID_NOT_FOUND]
    |-- FencedInstanceIdError                      [FENCED_INSTANCE_ID]
    |-- GroupMaxSizeReachedError                   [GROUP_MAX_SIZE_REACHED]
    |-- FencedMemberEpochError                     [FENCED_MEMBER_EPOCH] rejoin with epoch 0
    |-- UnreleasedInstanceIdError                  [UNRELEASED_INSTANCE_ID]
    |-- UnsupportedAssignorError                   [UNSUPPORTED_ASSIGNOR]
    |-- StaleMemberEpochError                      [STALE_MEMBER_EPOCH]
    |-- AuthorizationError                         the principal lacks a right (an ACL is missing)
    |   |-- TopicAuthorizationFailedError          [TOPIC_AUTHORIZATION_FAILED]
    |   |-- GroupAuthorizationFailedError          [GROUP_AUTHORIZATION_FAILED]
    |   |-- ClusterAuthorizationFailedError        [CLUSTER_AUTHORIZATION_FAILED]
    |   `-- TransactionalIdAuthorizationFailedError  [TRANSACTIONAL_ID_AUTHORIZATION_FAILED]
    |-- SaslAuthenticationFailedError              [SASL_AUTHENTICATION_FAILED] bad credentials
    |-- UnsupportedSaslMechanismError              [UNSUPPORTED_SASL_MECHANISM]
    |-- IllegalSaslStateError                      [ILLEGAL_SASL_STATE]
    |-- SecurityDisabledError                      [SECURITY_DISABLED]
    |-- ResourceNotFoundError                      [RESOURCE_NOT_FOUND]
    |-- BrokerIdNotRegisteredError                 [BROKER_ID_NOT_REGISTERED]
    |-- UnacceptableCredentialError                [UNACCEPTABLE_CREDENTIAL]
    |-- DuplicateResourceError                     [DUPLICATE_RESOURCE]
    |-- GroupSubscribedToTopicError                [GROUP_SUBSCRIBED_TO_TOPIC]
    |-- CommitFailedError                          a commit the group fenced (partitions moved away)
    |-- ProducerClosedError                        send() after close(), or records a forced close dropped
    |-- NoOffsetForPartitionError                  no position and auto_offset_reset="none"
    `-- IllegalStateError                          an operation the client's state does not allow

Where Kafka has the same error, `retriable` follows Kafka's choice (RetriableException), with two
deliberate differences: CORRUPT_RECORD is not retriable (our client computes the CRC and the
broker checks it once, so a retry of the same bytes fails the same way; on a fetch the stored batch
is corrupt), and BROKER_NOT_AVAILABLE is retriable because the client also uses it for a broker it
cannot reach, which may come back.

Imports: standard library, `freshet.v1` (the ErrorCode enum) and `freshet.client.structs`.
Forbidden: server, metadata, cli, pysyncobj, and storage beyond record_batch, compression
and errors (import-linter contracts).

Thread-safety: exception classes are immutable after construction; the code table is read-only.
"""

from __future__ import annotations

from typing import ClassVar

from freshet.client.structs import Node, TopicPartition
from freshet.v1 import common_pb2

_ErrorCode = common_pb2.ErrorCode


class FreshetError(Exception):
    """Base class of every error the SDK raises. Immutable after construction; thread-safe.

    Attributes:
        code: the protocol `ErrorCode` number, or None for an error detected in the client.
        code_name: the ErrorCode's name ("NOT_LEADER"), or None.
        message: what happened, in words (the broker's message when it sent one).
        retriable: whether retrying the same operation later may succeed (a class attribute).
        leader_id: NOT_LEADER / FENCED_LEADER_EPOCH: the current leader's node id, -1 if unknown.
        leader: that leader's endpoint, when the broker sent one.
        leader_epoch: the leader epoch the broker knows, -1 if not sent.
        controller_id, controller: NOT_CONTROLLER: the active controller, -1 / None if unknown.
        log_start_offset, log_end_offset: OFFSET_OUT_OF_RANGE: the valid range [start, end), -1 if
            not sent.
        topic_partition: the partition the error is about, when there is one.
    """

    code: ClassVar[int | None] = None
    retriable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        leader_id: int = -1,
        leader: Node | None = None,
        leader_epoch: int = -1,
        controller_id: int = -1,
        controller: Node | None = None,
        log_start_offset: int = -1,
        log_end_offset: int = -1,
        topic_partition: TopicPartition | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            # An instance may carry a code its class does not name: a code newer than this client.
            self.code = code
        self.leader_id = leader_id
        self.leader = leader
        self.leader_epoch = leader_epoch
        self.controller_id = controller_id
        self.controller = controller
        self.log_start_offset = log_start_offset
        self.log_end_offset = log_end_offset
        self.topic_partition = topic_partition

    @property
    def code_name(self) -> str | None:
        """The ErrorCode name of `code` ("NOT_LEADER"), None for client-side errors."""
        if self.code is None:
            return None
        try:
            return _ErrorCode.Name(self.code)
        except ValueError:
            return f"UNKNOWN_CODE_{self.code}"

    def __str__(self) -> str:
        if self.code is None:
            return self.message
        return f"[{self.code_name}] {self.message}"


class RetriableError(FreshetError):
    """A transient failure: the same operation may succeed later. Immutable; thread-safe."""

    retriable = True


class InvalidMetadataError(RetriableError):
    """The client's view of leaders may be stale: refresh metadata and retry. Immutable; thread-safe."""


class NotLeaderError(InvalidMetadataError):
    """NOT_LEADER: the broker does not lead the partition; `leader_id`/`leader` name the one that does."""

    code = _ErrorCode.NOT_LEADER


class LeaderNotAvailableError(InvalidMetadataError):
    """LEADER_NOT_AVAILABLE: the partition has no leader right now (an election is under way)."""

    code = _ErrorCode.LEADER_NOT_AVAILABLE


class UnknownTopicError(InvalidMetadataError):
    """UNKNOWN_TOPIC: the topic or partition does not exist (or has not reached this broker yet)."""

    code = _ErrorCode.UNKNOWN_TOPIC


class UnknownTopicIdError(InvalidMetadataError):
    """UNKNOWN_TOPIC_ID: no topic has this id (deleted, or not yet known to the broker)."""

    code = _ErrorCode.UNKNOWN_TOPIC_ID


class FencedLeaderEpochError(InvalidMetadataError):
    """FENCED_LEADER_EPOCH: the request carried an older leader epoch than the broker's."""

    code = _ErrorCode.FENCED_LEADER_EPOCH


class BrokerUnavailableError(InvalidMetadataError):
    """BROKER_NOT_AVAILABLE, or a broker the client cannot reach (the message names the addresses)."""

    code = _ErrorCode.BROKER_NOT_AVAILABLE


class KafkaStorageError(InvalidMetadataError):
    """KAFKA_STORAGE_ERROR: the broker's disk failed under the partition; leadership will move."""

    code = _ErrorCode.KAFKA_STORAGE_ERROR


class PreferredLeaderNotAvailableError(InvalidMetadataError):
    """PREFERRED_LEADER_NOT_AVAILABLE: the preferred replica cannot become leader now."""

    code = _ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE


class EligibleLeadersNotAvailableError(InvalidMetadataError):
    """ELIGIBLE_LEADERS_NOT_AVAILABLE: no replica is eligible to lead (election not possible now)."""

    code = _ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE


class UnknownLeaderEpochError(RetriableError):
    """UNKNOWN_LEADER_EPOCH: the request carried a newer leader epoch than the broker knows yet."""

    code = _ErrorCode.UNKNOWN_LEADER_EPOCH


class RequestTimedOutError(RetriableError):
    """REQUEST_TIMED_OUT: the request did not complete in time; whether it took effect is unknown."""

    code = _ErrorCode.REQUEST_TIMED_OUT


class NotEnoughReplicasError(RetriableError):
    """NOT_ENOUGH_REPLICAS: the ISR is smaller than min.insync.replicas; nothing was appended."""

    code = _ErrorCode.NOT_ENOUGH_REPLICAS


class NotEnoughReplicasAfterAppendError(RetriableError):
    """NOT_ENOUGH_REPLICAS_AFTER_APPEND: appended on the leader, but the ISR shrank before acks."""

    code = _ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND


class CoordinatorLoadInProgressError(RetriableError):
    """COORDINATOR_LOAD_IN_PROGRESS: the group coordinator is still loading its partition."""

    code = _ErrorCode.COORDINATOR_LOAD_IN_PROGRESS


class CoordinatorNotAvailableError(RetriableError):
    """COORDINATOR_NOT_AVAILABLE: the group coordinator is not available."""

    code = _ErrorCode.COORDINATOR_NOT_AVAILABLE


class NotCoordinatorError(RetriableError):
    """NOT_COORDINATOR: the broker is not the coordinator of this group."""

    code = _ErrorCode.NOT_COORDINATOR


class NotControllerError(RetriableError):
    """NOT_CONTROLLER: not the active controller; `controller_id`/`controller` name the one that is."""

    code = _ErrorCode.NOT_CONTROLLER


class NoQuorumError(RetriableError):
    """NO_QUORUM: the metadata quorum has no leader or no majority right now."""

    code = _ErrorCode.NO_QUORUM


class ClientTimeoutError(RetriableError):
    """A deadline of the client itself passed (flush, close, a synchronous lookup). Thread-safe."""


class DeliveryTimeoutError(ClientTimeoutError):
    """A record was not acknowledged within delivery_timeout_ms; it may or may not have been written.

    The cause (`__cause__`) is the last error of its batch, if it was sent and failed.
    """


class MaxBlockTimeoutError(ClientTimeoutError):
    """send() blocked for max_block_ms without getting what it needed (topic metadata, buffer space)."""


class BufferFullError(MaxBlockTimeoutError):
    """send() found buffer_memory full for max_block_ms: the producer cannot keep up or brokers are down."""


class UnknownServerError(FreshetError):
    """UNKNOWN_SERVER_ERROR: a bug on the broker, or a reply this client does not understand."""

    code = _ErrorCode.UNKNOWN_SERVER_ERROR


class OffsetOutOfRangeError(FreshetError):
    """OFFSET_OUT_OF_RANGE: the offset is outside [log_start_offset, log_end_offset) of the partition."""

    code = _ErrorCode.OFFSET_OUT_OF_RANGE


class CorruptRecordError(FreshetError):
    """CORRUPT_RECORD: a batch failed its CRC or framing checks (`topic_partition`, `offset` say where).

    Attributes:
        offset: the offset the bad batch was read at (consumer side), -1 if not known.
    """

    code = _ErrorCode.CORRUPT_RECORD

    def __init__(self, message: str, *, offset: int = -1, **fields) -> None:
        super().__init__(message, **fields)
        self.offset = offset


class RecordTooLargeError(FreshetError):
    """RECORD_TOO_LARGE: a record or batch is larger than a limit (max.message.bytes, max_request_size)."""

    code = _ErrorCode.RECORD_TOO_LARGE


class InvalidRecordError(FreshetError):
    """INVALID_RECORD: a well-formed batch that breaks a rule of the broker."""

    code = _ErrorCode.INVALID_RECORD


class InvalidTimestampError(FreshetError):
    """INVALID_TIMESTAMP: a record timestamp outside what the topic accepts."""

    code = _ErrorCode.INVALID_TIMESTAMP


class UnsupportedCompressionTypeError(FreshetError):
    """UNSUPPORTED_COMPRESSION_TYPE: a codec the broker (or this client) cannot handle."""

    code = _ErrorCode.UNSUPPORTED_COMPRESSION_TYPE


class InvalidRequiredAcksError(FreshetError):
    """INVALID_REQUIRED_ACKS: acks is not 0, 1 or -1."""

    code = _ErrorCode.INVALID_REQUIRED_ACKS


class InvalidRequestError(FreshetError):
    """INVALID_REQUEST: a malformed or contradictory request."""

    code = _ErrorCode.INVALID_REQUEST


class OutOfOrderSequenceError(FreshetError):
    """OUT_OF_ORDER_SEQUENCE: the broker lost records this idempotent producer had written.

    The producer raises it only when no earlier batch of the partition is still unresolved, i.e.
    when the gap is on the broker's side (an unclean election or acks=1 failover lost data).
    """

    code = _ErrorCode.OUT_OF_ORDER_SEQUENCE


class DuplicateSequenceError(FreshetError):
    """DUPLICATE_SEQUENCE: a duplicate batch older than the ones the broker remembers."""

    code = _ErrorCode.DUPLICATE_SEQUENCE


class InvalidProducerEpochError(FreshetError):
    """INVALID_PRODUCER_EPOCH: this producer id is fenced by a newer epoch."""

    code = _ErrorCode.INVALID_PRODUCER_EPOCH


class UnknownProducerIdError(FreshetError):
    """UNKNOWN_PRODUCER_ID: the broker no longer knows this producer id."""

    code = _ErrorCode.UNKNOWN_PRODUCER_ID


class InvalidTopicError(FreshetError):
    """INVALID_TOPIC: the name breaks the topic-name rules, or the topic cannot be used this way."""

    code = _ErrorCode.INVALID_TOPIC


class TopicAlreadyExistsError(FreshetError):
    """TOPIC_ALREADY_EXISTS."""

    code = _ErrorCode.TOPIC_ALREADY_EXISTS


class InvalidPartitionsError(FreshetError):
    """INVALID_PARTITIONS: a partition count that is not allowed (zero, or a decrease)."""

    code = _ErrorCode.INVALID_PARTITIONS


class InvalidReplicationFactorError(FreshetError):
    """INVALID_REPLICATION_FACTOR: e.g. larger than the number of live brokers."""

    code = _ErrorCode.INVALID_REPLICATION_FACTOR


class InvalidReplicaAssignmentError(FreshetError):
    """INVALID_REPLICA_ASSIGNMENT."""

    code = _ErrorCode.INVALID_REPLICA_ASSIGNMENT


class InvalidConfigError(FreshetError):
    """INVALID_CONFIG: an unknown config key or a value out of range."""

    code = _ErrorCode.INVALID_CONFIG


class ReassignmentInProgressError(FreshetError):
    """REASSIGNMENT_IN_PROGRESS."""

    code = _ErrorCode.REASSIGNMENT_IN_PROGRESS


class NoReassignmentInProgressError(FreshetError):
    """NO_REASSIGNMENT_IN_PROGRESS."""

    code = _ErrorCode.NO_REASSIGNMENT_IN_PROGRESS


class ElectionNotNeededError(FreshetError):
    """ELECTION_NOT_NEEDED: the preferred replica already leads."""

    code = _ErrorCode.ELECTION_NOT_NEEDED


class InvalidUpdateVersionError(FreshetError):
    """INVALID_UPDATE_VERSION: a partition_epoch compare-and-set failed."""

    code = _ErrorCode.INVALID_UPDATE_VERSION


class StaleControllerEpochError(FreshetError):
    """STALE_CONTROLLER_EPOCH: a command from a controller that lost its term."""

    code = _ErrorCode.STALE_CONTROLLER_EPOCH


class StaleBrokerEpochError(FreshetError):
    """STALE_BROKER_EPOCH: a broker incarnation that was replaced."""

    code = _ErrorCode.STALE_BROKER_EPOCH


class IllegalGenerationError(FreshetError):
    """ILLEGAL_GENERATION: a consumer-group request from an old generation."""

    code = _ErrorCode.ILLEGAL_GENERATION


class InconsistentGroupProtocolError(FreshetError):
    """INCONSISTENT_GROUP_PROTOCOL."""

    code = _ErrorCode.INCONSISTENT_GROUP_PROTOCOL


class InvalidGroupIdError(FreshetError):
    """INVALID_GROUP_ID."""

    code = _ErrorCode.INVALID_GROUP_ID


class UnknownMemberError(FreshetError):
    """UNKNOWN_MEMBER: the group coordinator does not know this member."""

    code = _ErrorCode.UNKNOWN_MEMBER


class InvalidSessionTimeoutError(FreshetError):
    """INVALID_SESSION_TIMEOUT."""

    code = _ErrorCode.INVALID_SESSION_TIMEOUT


class RebalanceInProgressError(FreshetError):
    """REBALANCE_IN_PROGRESS: the group is rebalancing; rejoin."""

    code = _ErrorCode.REBALANCE_IN_PROGRESS


class NonEmptyGroupError(FreshetError):
    """NON_EMPTY_GROUP: the group still has members."""

    code = _ErrorCode.NON_EMPTY_GROUP


class GroupIdNotFoundError(FreshetError):
    """GROUP_ID_NOT_FOUND."""

    code = _ErrorCode.GROUP_ID_NOT_FOUND


class FencedInstanceIdError(FreshetError):
    """FENCED_INSTANCE_ID: another member took this static group instance id."""

    code = _ErrorCode.FENCED_INSTANCE_ID


class GroupMaxSizeReachedError(FreshetError):
    """GROUP_MAX_SIZE_REACHED: the group has as many members as it may."""

    code = _ErrorCode.GROUP_MAX_SIZE_REACHED


class FencedMemberEpochError(FreshetError):
    """FENCED_MEMBER_EPOCH: the coordinator no longer knows this member epoch; the member rejoins."""

    code = _ErrorCode.FENCED_MEMBER_EPOCH


class UnreleasedInstanceIdError(FreshetError):
    """UNRELEASED_INSTANCE_ID: another live member still holds this group_instance_id."""

    code = _ErrorCode.UNRELEASED_INSTANCE_ID


class UnsupportedAssignorError(FreshetError):
    """UNSUPPORTED_ASSIGNOR: the coordinator has no assignor of that name ("range", "uniform")."""

    code = _ErrorCode.UNSUPPORTED_ASSIGNOR


class StaleMemberEpochError(FreshetError):
    """STALE_MEMBER_EPOCH: an offset commit carried an older member epoch than the member's."""

    code = _ErrorCode.STALE_MEMBER_EPOCH


class AuthorizationError(FreshetError):
    """Base of the *_AUTHORIZATION_FAILED errors: the principal lacks a right (never retriable:
    an operator must add an ACL first)."""


class TopicAuthorizationFailedError(AuthorizationError):
    """TOPIC_AUTHORIZATION_FAILED: the principal may not do this to the topic."""

    code = _ErrorCode.TOPIC_AUTHORIZATION_FAILED


class GroupAuthorizationFailedError(AuthorizationError):
    """GROUP_AUTHORIZATION_FAILED: the principal may not do this to the group."""

    code = _ErrorCode.GROUP_AUTHORIZATION_FAILED


class ClusterAuthorizationFailedError(AuthorizationError):
    """CLUSTER_AUTHORIZATION_FAILED: the principal may not do this to the cluster."""

    code = _ErrorCode.CLUSTER_AUTHORIZATION_FAILED


class TransactionalIdAuthorizationFailedError(AuthorizationError):
    """TRANSACTIONAL_ID_AUTHORIZATION_FAILED: the principal may not use the transactional id."""

    code = _ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED


class SaslAuthenticationFailedError(FreshetError):
    """SASL_AUTHENTICATION_FAILED: unknown user, wrong password or an expired session."""

    code = _ErrorCode.SASL_AUTHENTICATION_FAILED


class UnsupportedSaslMechanismError(FreshetError):
    """UNSUPPORTED_SASL_MECHANISM: the cluster does not enable that mechanism."""

    code = _ErrorCode.UNSUPPORTED_SASL_MECHANISM


class IllegalSaslStateError(FreshetError):
    """ILLEGAL_SASL_STATE: an authentication message out of order."""

    code = _ErrorCode.ILLEGAL_SASL_STATE


class SecurityDisabledError(FreshetError):
    """SECURITY_DISABLED: a security operation on a cluster running without authentication."""

    code = _ErrorCode.SECURITY_DISABLED


class ResourceNotFoundError(FreshetError):
    """RESOURCE_NOT_FOUND: e.g. deleting a user or credential that does not exist."""

    code = _ErrorCode.RESOURCE_NOT_FOUND


class BrokerIdNotRegisteredError(FreshetError):
    """BROKER_ID_NOT_REGISTERED: no broker with this id is registered (e.g. decommissioning it)."""

    code = _ErrorCode.BROKER_ID_NOT_REGISTERED


class UnacceptableCredentialError(FreshetError):
    """UNACCEPTABLE_CREDENTIAL: SCRAM iterations or salt out of bounds, or a bad user name."""

    code = _ErrorCode.UNACCEPTABLE_CREDENTIAL


class DuplicateResourceError(FreshetError):
    """DUPLICATE_RESOURCE: the same resource (user and mechanism, ...) twice in one request."""

    code = _ErrorCode.DUPLICATE_RESOURCE


class GroupSubscribedToTopicError(FreshetError):
    """GROUP_SUBSCRIBED_TO_TOPIC: the group's members still subscribe to the topic."""

    code = _ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC


class CommitFailedError(FreshetError):
    """A commit the group refused because this consumer lost its membership or the partitions
    (Kafka's CommitFailedException). The cause (`__cause__`) is the coordinator's error."""


class ProducerClosedError(FreshetError):
    """send() on a closed producer, or a record still undelivered when close() gave up on it."""


class NoOffsetForPartitionError(FreshetError):
    """The consumer has no position for a partition and auto_offset_reset is "none"."""


class IllegalStateError(FreshetError):
    """An operation the client's current state does not allow (e.g. polling an unassigned partition)."""


def _build_code_table() -> dict[int, type[FreshetError]]:
    table: dict[int, type[FreshetError]] = {}
    pending: list[type[FreshetError]] = [FreshetError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        code = cls.__dict__.get("code")
        if code is not None:
            assert code not in table, f"two classes for code {code}: {table[code]} and {cls}"
            table[code] = cls
    return table


#: ErrorCode number -> the class raised for it. Every code but NONE has one (a test checks).
ERROR_CLASSES: dict[int, type[FreshetError]] = _build_code_table()


def error_for_code(code: int, message: str = "", **fields) -> FreshetError:
    """The exception for a protocol error `code`, carrying `message` and any hint `fields`.

    A code this client does not know (a newer broker) becomes an UnknownServerError that keeps the
    code, so it is still reported faithfully.

    Args:
        code: a non-NONE ErrorCode number.
        message: the broker's message; a default naming the code is used when empty.
        fields: keyword fields of FreshetError (leader_id, leader, log_start_offset, ...).
    """
    assert code != _ErrorCode.NONE, "NONE is success, not an error"
    cls = ERROR_CLASSES.get(code)
    if cls is None:
        return UnknownServerError(message or f"broker sent error code {code}, unknown to this client", code=code, **fields)
    if not message:
        message = _ErrorCode.Name(code).lower().replace("_", " ")
    return cls(message, **fields)
