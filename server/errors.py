"""Domain errors of the server layer (the node process).

Owns the exceptions `freshet.server` raises for operating errors: bad node configuration (exit
code 2), a node that cannot start (exit code 1), requests that find no active controller, timed
out or malformed requests. They carry data (keys, hints, timeouts) and no gRPC code:
server/status.py maps them, with storage's and metadata's errors, to the wire.

Tree::

    ServerError
    |-- NodeConfigError          a configuration key or flag has a bad value (usage error, exit 2)
    |-- NodeStartError           the node cannot start (port taken, data directory in use; exit 1)
    |-- NotControllerError       no active controller answered (carries the last known controller)
    |-- RequestTimedOutError     the request's deadline passed before it completed
    |-- InvalidRequestError      a malformed request (missing field, bad value)
    |-- InvalidRequiredAcksError a produce request whose acks is not 0, 1 or -1
    |-- PartitionRequestError    one partition's answer was an error (the data plane's internal API)
    |-- NotCoordinatorError      this broker does not coordinate the group
    |-- CoordinatorLoadInProgressError   ... yet: it is still reading __consumer_offsets
    |-- CoordinatorNotAvailableError     no broker coordinates the group now
    |-- ForwardedError           the active controller answered a forwarded request with an error
    |-- AuthenticationError      bad credentials, unknown user, expired session (SASL_AUTHENTICATION_FAILED)
    |-- IllegalSaslStateError    a SASL message out of order (ILLEGAL_SASL_STATE)
    |-- UnsupportedSaslMechanismError  a mechanism the node does not enable (UNSUPPORTED_SASL_MECHANISM)
    |-- AuthorizationError       the principal lacks a right (TOPIC/GROUP/CLUSTER_AUTHORIZATION_FAILED)
    |-- SecurityDisabledError    a user or ACL operation on a cluster without authentication
    |-- ActionRefusedError       the console's read or action was refused (the CLI's code and message)
    `-- GroupError               a request a consumer group refuses (server/groups/state.py)
        |-- UnknownMemberError           the member id is not (or no longer) in the group
        |-- FencedMemberEpochError       the member epoch is not one the coordinator accepts
        |-- StaleMemberEpochError        an offset commit for a partition the member does not own
        |-- NonEmptyGroupError           an admin operation that needs a group without members
        |-- GroupIdNotFoundError         no group of that id
        |-- GroupMaxSizeReachedError     the group is full
        `-- InvalidGroupRequestError     a malformed group request

`ForwardedError` is the one error that carries a gRPC status code: it is another node's answer,
passed on as it came (KIP-590 forwarding), so its code is data, not a mapping decision.

Imports: standard library, grpc (the StatusCode type only) and the wire ErrorDetail.
Thread-safety: exceptions are immutable after construction.
"""

from __future__ import annotations

import grpc
from freshet.v1 import common_pb2


class ServerError(Exception):
    """Base of every server-layer exception. Thread-safe (immutable)."""


class AuthenticationError(ServerError):
    """The caller could not be authenticated. The message says what failed in general terms
    ("authentication failed for user 'bob'") and never carries a secret or which part was wrong.
    Thread-safe (immutable)."""


class IllegalSaslStateError(ServerError):
    """A SASL message that the exchange's state does not expect (a second client-first, a final
    message before the first, a message after completion). Thread-safe (immutable)."""


class UnsupportedSaslMechanismError(ServerError):
    """A SASL mechanism the node does not enable (sasl.enabled.mechanisms). Thread-safe."""


class AuthorizationError(ServerError):
    """The caller's principal lacks `operation` on a resource.

    Attributes:
        error_code: TOPIC_, GROUP_, CLUSTER_ or TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
        message: one line naming the principal, the operation and the resource.
    """

    def __init__(self, error_code: int, message: str) -> None:
        self.error_code = error_code
        self.message = message
        super().__init__(message)


class SecurityDisabledError(ServerError):
    """A user or ACL operation on a cluster running without security (Kafka's SECURITY_DISABLED)."""


class NodeConfigError(ServerError):
    """A configuration key (flag, --set, config file entry) has an unacceptable value.

    Attributes:
        key: the key as the user wrote it (e.g. "broker.session.timeout.ms" or "--listen").
        reason: what is wrong.
    """

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"{key}: {reason}")


class NodeStartError(ServerError):
    """The node could not start (a port or data directory is held by another process, ...).

    Attributes:
        reason: what failed, naming the resource.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class NotControllerError(ServerError):
    """No active controller answered within the request's deadline.

    Attributes:
        controller_id: the controller as this node last knew it (-1 unknown).
        host, port: its gRPC endpoint ("" and 0 when unknown).
        reason: what was tried.
    """

    def __init__(self, controller_id: int, host: str = "", port: int = 0, reason: str = "") -> None:
        self.controller_id = controller_id
        self.host = host
        self.port = port
        self.reason = reason
        hint = "no controller is known" if controller_id < 0 else f"the last known controller is node {controller_id}"
        super().__init__(f"no active controller answered{': ' + reason if reason else ''} ({hint})")


class RequestTimedOutError(ServerError):
    """The request did not complete before its deadline (its outcome may be unknown).

    Attributes:
        what: the operation.
        timeout_s: the time it had.
    """

    def __init__(self, what: str, timeout_s: float) -> None:
        self.what = what
        self.timeout_s = timeout_s
        super().__init__(f"{what} did not complete within {timeout_s:.1f} s; retry with the same request id")


class InvalidRequestError(ServerError):
    """A malformed request.

    Attributes:
        reason: what is wrong, naming the field.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class InvalidRequiredAcksError(ServerError):
    """A produce request asked for acks other than 0, 1 or -1 (all).

    Attributes:
        acks: the value it carried.
    """

    def __init__(self, acks: int) -> None:
        self.acks = acks
        super().__init__(f"acks must be 0, 1 or -1 (all in-sync replicas), not {acks}")


class PartitionRequestError(ServerError):
    """A partition refused a request of the data plane's internal API (`DataPlane.append_as_leader`,
    `read_committed`): NOT_LEADER with the hint, NOT_ENOUGH_REPLICAS, REQUEST_TIMED_OUT, ...

    Attributes:
        detail: the partition's ErrorDetail, as a client would get it.
        error_code: its code.
    """

    def __init__(self, error_code: int, detail: common_pb2.ErrorDetail) -> None:
        self.detail = detail
        self.error_code = error_code
        super().__init__(f"{common_pb2.ErrorCode.Name(error_code)}: {detail.message}")


class NotCoordinatorError(ServerError):
    """This broker does not coordinate the group (it does not lead its __consumer_offsets partition).

    Attributes:
        group_id: the group.
        partition: its __consumer_offsets partition.
    """

    def __init__(self, group_id: str, partition: int) -> None:
        self.group_id = group_id
        self.partition = partition
        super().__init__(
            f"this broker is not the coordinator of group {group_id!r} (__consumer_offsets-{partition}); "
            "find the coordinator again"
        )


class CoordinatorLoadInProgressError(ServerError):
    """The broker leads the group's partition but is still reading it to rebuild the groups."""

    def __init__(self, group_id: str, partition: int) -> None:
        self.group_id = group_id
        self.partition = partition
        super().__init__(f"group {group_id!r}: __consumer_offsets-{partition} is still loading; retry shortly")


class CoordinatorNotAvailableError(ServerError):
    """No broker can coordinate the group now (its partition has no leader, or the offsets topic
    could not be created)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class ForwardedError(ServerError):
    """The active controller answered a forwarded request with an error: pass it on as it is.

    Attributes:
        code: the gRPC status code it answered with (kept: the client sees the controller's code).
        error_detail: the ErrorDetail it carried (None when it had none).
        message: the status message.
        error_code: the ErrorDetail's code (UNKNOWN_SERVER_ERROR when it carried none).
    """

    def __init__(self, code: grpc.StatusCode, error_detail: common_pb2.ErrorDetail | None, message: str) -> None:
        self.code = code
        self.error_detail = error_detail
        self.message = message
        self.error_code = common_pb2.UNKNOWN_SERVER_ERROR if error_detail is None else error_detail.code
        super().__init__(f"{code.name}: {message}")


class GroupError(ServerError):
    """A request a consumer group refuses (raised by server/groups/state.py and the coordinator).
    The message says what to do; server/status.py maps each subclass to its ErrorCode."""


class UnknownMemberError(GroupError):
    """The member id is not (or no longer) in the group."""


class FencedMemberEpochError(GroupError):
    """The request's member epoch is not one the coordinator accepts for this member."""


class StaleMemberEpochError(GroupError):
    """An offset commit for a partition the member does not own (it moved to another member)."""


class InconsistentGroupProtocolError(GroupError):
    """A member of one group protocol (classic JoinGroup, or KIP-848 heartbeats) asked to join a
    group of the other protocol that has members (Kafka's INCONSISTENT_GROUP_PROTOCOL)."""


class IllegalGenerationError(GroupError):
    """A classic group request carries a generation that is not the group's current one."""


class NonEmptyGroupError(GroupError):
    """An admin operation that needs a group without active members."""


class GroupIdNotFoundError(GroupError):
    """No group of that id."""


class GroupMaxSizeReachedError(GroupError):
    """The group has as many members as the coordinator allows."""


class UnsupportedAssignorError(GroupError):
    """A server assignor the coordinator does not have (Kafka's UNSUPPORTED_ASSIGNOR)."""


class InvalidGroupRequestError(GroupError):
    """A malformed group request (bad regex, unknown assignor, bad epoch)."""


class KafkaFrameError(ServerError):
    """A Kafka protocol frame that cannot be a request (too short, an unreadable header or body).
    The listener closes that connection (server/kafka/listener.py)."""


class UnsupportedKafkaRequestError(ServerError):
    """A Kafka API key or version with no schema: Kafka closes such a connection, except for
    ApiVersions, which it answers with UNSUPPORTED_VERSION and the supported ranges (KIP-511)."""

    def __init__(self, api_key: int, api_version: int, correlation_id: int) -> None:
        super().__init__(f"API key {api_key} version {api_version} is not supported")
        self.api_key = api_key
        self.api_version = api_version
        self.correlation_id = correlation_id


class ActionRefusedError(ServerError):
    """A console read or action (server/http/console_data) was refused: the code and message the
    CLI gets for the same request (the handler's, the SDK's, or the authorization rule's).

    Attributes:
        error_code: the protocol ErrorCode (TOPIC_AUTHORIZATION_FAILED, UNKNOWN_TOPIC, ...).
        message: the one-line reason ("User:bob is not authorized to Delete topic 'a'").
    """

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message

    @property
    def code(self) -> int:
        return self.error_code

    @property
    def code_name(self) -> str:
        """The ErrorCode's name ("TOPIC_AUTHORIZATION_FAILED"), as the CLI prints it."""
        try:
            return common_pb2.ErrorCode.Name(self.error_code)
        except ValueError:
            return f"UNKNOWN_CODE_{self.error_code}"

    def __str__(self) -> str:
        return f"{self.code_name}: {self.message}"
