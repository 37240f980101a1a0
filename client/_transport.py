"""The client's gRPC seam: bootstrap addresses, one channel per broker, and error translation.

Owns

- parsing the bootstrap list ("host:port,host:port", the `FRESHET_BOOTSTRAP` environment variable,
  `localhost:9092` by default),
- one `grpc.Channel` (and `Broker` stub) per broker address, created on first use and closed with
  the transport; channels reconnect on their own with a short backoff (50 ms to 1 s, Kafka's
  reconnect.backoff.ms / reconnect.backoff.max.ms), so a restarted broker is found again quickly,
- turning every `grpc.RpcError` into a `freshet.client.errors.FreshetError`: the status detail
  `freshet.v1.ErrorDetail` when the broker attached one (via grpc_status), else the gRPC status
  code mapped as STYLE.md section 3 does, and per-partition `ErrorDetail`s likewise.

Producer, Consumer and Admin share this module; nothing above it touches grpc errors. A client
given `transport=` uses that Transport instead of building one, and leaves closing it to whoever
built it (tests run clients over an in-memory channel factory this way).

Imports: grpc, grpc_status, protobuf's well-known types, `freshet.v1`, `freshet.client`. No storage.
Forbidden: server, metadata, cli, pysyncobj, and storage beyond record_batch, compression
and errors (import-linter contracts).

Thread-safety: `Transport` is thread-safe (channels are created under a lock; grpc channels and
stubs are themselves thread-safe). The functions are pure.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence

import grpc
from freshet.client._security import SecurityConfig, authenticated_channel
from freshet.client.errors import (
    BrokerUnavailableError,
    CorruptRecordError,
    FencedLeaderEpochError,
    FreshetError,
    InvalidRequestError,
    NotLeaderError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
    RequestTimedOutError,
    UnknownServerError,
    UnknownTopicError,
    error_for_code,
)
from freshet.client.structs import Node, TopicPartition
from freshet.v1 import broker_pb2_grpc, common_pb2, group_pb2_grpc
from google.rpc import status_pb2
from grpc_status import rpc_status

#: Environment variable read when no bootstrap list is given (INTERFACE.md).
BOOTSTRAP_ENV = "FRESHET_BOOTSTRAP"
#: Bootstrap used when neither the argument nor the environment gives one.
DEFAULT_BOOTSTRAP = "localhost:9092"

_DETAILS_KEY = "grpc-status-details-bin"


def parse_bootstrap(bootstrap: str | Sequence[str] | None) -> list[str]:
    """The bootstrap addresses as a list of "host:port" gRPC targets, in the order given.

    Args:
        bootstrap: "host:port,host:port", a sequence of "host:port", or None for the
            `FRESHET_BOOTSTRAP` environment variable, else "localhost:9092".

    Raises:
        ValueError: an empty list, or an entry that is not host:port with a port in 1..65535.
    """
    if bootstrap is None:
        bootstrap = os.environ.get(BOOTSTRAP_ENV) or DEFAULT_BOOTSTRAP
    entries = bootstrap.split(",") if isinstance(bootstrap, str) else list(bootstrap)
    addresses: list[str] = []
    for entry in entries:
        entry = entry.strip()
        if not entry:
            continue
        host, separator, port_text = entry.rpartition(":")
        if not separator or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"bootstrap entry {entry!r} is not host:port")
        if ":" in host and not (host.startswith("[") and host.endswith("]")):
            raise ValueError(f"bootstrap entry {entry!r}: write an IPv6 host in brackets, [::1]:9092")
        if entry not in addresses:
            addresses.append(entry)
    if not addresses:
        raise ValueError("the bootstrap list is empty: give at least one host:port")
    return addresses


def channel_options(max_receive_bytes: int) -> list[tuple[str, int]]:
    """gRPC channel options for a broker channel.

    Args:
        max_receive_bytes: the largest response the client accepts (a fetch response is bounded by
            fetch_max_bytes plus one oversized batch, so the consumer passes something above that).
    """
    return [
        ("grpc.max_receive_message_length", max_receive_bytes),
        ("grpc.max_send_message_length", -1),
        # Kafka's reconnect.backoff.ms=50 / reconnect.backoff.max.ms=1000: gRPC's default grows to
        # 120 s, which would hide a restarted broker from us for minutes.
        ("grpc.initial_reconnect_backoff_ms", 50),
        ("grpc.min_reconnect_backoff_ms", 50),
        ("grpc.max_reconnect_backoff_ms", 1000),
        # Retries are the client's business (sequence numbers, backoff, deadlines), not gRPC's.
        ("grpc.enable_retries", 0),
    ]


#: Makes the channel to one address from its gRPC options (default: `grpc.insecure_channel`).
ChannelFactory = Callable[[str, list[tuple[str, int]]], grpc.Channel]


def insecure_channel(address: str, options: list[tuple[str, int]]) -> grpc.Channel:
    return grpc.insecure_channel(address, options=options)


class Transport:
    """Channels and stubs to brokers, keyed by address. Thread-safe.

    The seam below every client: Producer, Consumer and Admin take `transport=` (default: one
    built from their bootstrap_servers). A `channel_factory` other than gRPC's (tests pass an
    in-memory one) carries every call without sockets; nothing above this class can tell.
    """

    def __init__(
        self,
        bootstrap: str | Sequence[str] | None,
        *,
        client_id: str,
        max_receive_bytes: int = -1,
        channel_factory: ChannelFactory = insecure_channel,
        security: SecurityConfig | None = None,
    ) -> None:
        """`security`: the client's security options; with SASL_SSL every channel authenticates
        with its node and sends the session token with each call (client/_security.py)."""
        self.bootstrap_addresses = parse_bootstrap(bootstrap)
        self.security = security or SecurityConfig()
        self.client_id = client_id
        self._channel_factory = channel_factory
        self._options = channel_options(max_receive_bytes)
        self._lock = threading.Lock()
        self._channels: dict[str, grpc.Channel] = {}
        self._stubs: dict[str, broker_pb2_grpc.BrokerStub] = {}
        self._group_stubs: dict[str, group_pb2_grpc.GroupStub] = {}
        self._is_closed = False

    def stub(self, address: str) -> broker_pb2_grpc.BrokerStub:
        """The Broker stub for `address`, creating its channel on first use.

        After close() the stub's calls fail at once (closed channel), which callers see as
        BrokerUnavailableError through `translate_rpc_error`.
        """
        stub = self._stubs.get(address)
        if stub is not None:
            return stub
        with self._lock:
            stub = self._stubs.get(address)
            if stub is None:
                channel = authenticated_channel(self._channel_factory(address, self._options), address, self.security)
                if self._is_closed:
                    channel.close()
                self._channels[address] = channel
                stub = broker_pb2_grpc.BrokerStub(channel)
                self._stubs[address] = stub
            return stub

    def channel(self, address: str) -> grpc.Channel:
        """The channel to `address` (created on first use), for stubs of other services (Admin's
        Controller stub shares the node's channel with its Broker stub)."""
        self.stub(address)
        return self._channels[address]

    def group_stub(self, address: str) -> group_pb2_grpc.GroupStub:
        """The Group (consumer group coordinator) stub for `address`, over the same channel."""
        self.stub(address)
        with self._lock:
            stub = self._group_stubs.get(address)
            if stub is None:
                stub = self._group_stubs[address] = group_pb2_grpc.GroupStub(self._channels[address])
            return stub

    def close(self) -> None:
        """Close every channel; calls in progress fail with CANCELLED (mapped by the callers)."""
        with self._lock:
            self._is_closed = True
            channels = list(self._channels.values())
        for channel in channels:
            channel.close()


def node_from_endpoint(endpoint: common_pb2.BrokerEndpoint) -> Node:
    return Node(endpoint.node_id, endpoint.host, endpoint.port, endpoint.rack or None)


def error_from_detail(detail: common_pb2.ErrorDetail, context: str = "") -> FreshetError | None:
    """The exception a `freshet.v1.ErrorDetail` describes, or None when its code is NONE.

    Args:
        detail: the detail (inline in a per-partition result, or unpacked from a gRPC status).
        context: prepended to the broker's message, e.g. "produce to orders-0 on localhost:9092".
    """
    if detail.code == common_pb2.NONE:
        return None
    fields: dict = {}
    if detail.leader_id or detail.HasField("leader"):
        fields["leader_id"] = detail.leader_id
        if detail.HasField("leader") and detail.leader.host:
            fields["leader"] = node_from_endpoint(detail.leader)
        fields["leader_epoch"] = detail.leader_epoch
    if detail.controller_id or detail.HasField("controller"):
        fields["controller_id"] = detail.controller_id
        if detail.HasField("controller") and detail.controller.host:
            fields["controller"] = node_from_endpoint(detail.controller)
    if detail.code == common_pb2.OFFSET_OUT_OF_RANGE:
        fields["log_start_offset"] = detail.log_start_offset
        fields["log_end_offset"] = detail.log_end_offset
    if detail.HasField("partition") and detail.partition.topic:
        fields["topic_partition"] = TopicPartition(detail.partition.topic, detail.partition.partition)
    message = detail.message
    if context:
        message = f"{context}: {message}" if message else context
    return error_for_code(detail.code, message, **fields)


def raise_for_detail(detail: common_pb2.ErrorDetail, context: str = "") -> None:
    """Raise the exception `detail` describes (see error_from_detail); return when its code is NONE."""
    error = error_from_detail(detail, context)
    if error is not None:
        raise error


def _rich_status(error: grpc.RpcError) -> status_pb2.Status | None:
    try:
        return rpc_status.from_call(error)
    except ValueError:
        # The code or message of the rich status disagrees with the call's; the detail is still
        # the broker's best account of the failure, so read it directly.
        for key, value in error.trailing_metadata() or ():
            if key == _DETAILS_KEY:
                return status_pb2.Status.FromString(value)
        return None


# gRPC status code -> (class, what it means) when the broker attached no ErrorDetail.
_STATUS_CLASSES: dict[grpc.StatusCode, type[FreshetError]] = {
    grpc.StatusCode.UNAVAILABLE: BrokerUnavailableError,
    grpc.StatusCode.CANCELLED: BrokerUnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: RequestTimedOutError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequestError,
    grpc.StatusCode.NOT_FOUND: UnknownTopicError,
    grpc.StatusCode.FAILED_PRECONDITION: NotLeaderError,
    grpc.StatusCode.ABORTED: FencedLeaderEpochError,
    grpc.StatusCode.OUT_OF_RANGE: OffsetOutOfRangeError,
    grpc.StatusCode.DATA_LOSS: CorruptRecordError,
}


def translate_rpc_error(error: grpc.RpcError, address: str, what: str) -> FreshetError:
    """The FreshetError for a failed gRPC call.

    Args:
        error: the RpcError (it is also a grpc.Call: code, details, trailing metadata).
        address: the broker called, named in the message.
        what: the operation, e.g. "Metadata" or "produce stream".
    """
    code = error.code() if hasattr(error, "code") else None
    details = (error.details() if hasattr(error, "details") else None) or ""
    status = _rich_status(error) if hasattr(error, "trailing_metadata") else None
    if status is not None:
        for any_detail in status.details:
            if any_detail.Is(common_pb2.ErrorDetail.DESCRIPTOR):
                detail = common_pb2.ErrorDetail()
                any_detail.Unpack(detail)
                translated = error_from_detail(detail, f"{what} on {address}")
                if translated is not None:
                    return translated
    context = f"{what} on {address} failed"
    if code is None:
        return UnknownServerError(f"{context}: {error!r}")
    message = f"{context}: {code.name} {details}".rstrip()
    if code == grpc.StatusCode.UNAVAILABLE:
        message = f"cannot reach broker {address} ({what}): {details}"
    elif code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details:
        return RecordTooLargeError(message)
    elif code == grpc.StatusCode.UNIMPLEMENTED:
        return UnknownServerError(f"broker {address} does not implement {what}: {details}")
    cls = _STATUS_CLASSES.get(code, UnknownServerError)
    return cls(message)


def client_transport(
    bootstrap_servers: str | Sequence[str] | None,
    transport: Transport | None,
    *,
    client_id: str,
    security: Mapping[str, object] | None = None,
) -> tuple[Transport, bool]:
    """The transport a client uses, and whether the client owns (and so closes) it. A given
    transport keeps its own security options.

    Args:
        security: the client's security keyword options (security_protocol, ssl_cafile, ...;
            see freshet.client._security), used for the channels of a transport built here.

    Raises:
        ValueError: both bootstrap_servers and transport given, security options with a
            transport, a malformed bootstrap list, or a bad security option.
        TypeError: an unknown keyword option.
    """
    security_config = SecurityConfig.from_options(security or {})
    if transport is None:
        return Transport(
            bootstrap_servers, client_id=client_id, channel_factory=security_config.channel_factory(), security=security_config
        ), True
    if bootstrap_servers is not None:
        raise ValueError("give bootstrap_servers or transport, not both (the transport has its bootstrap list)")
    if security:
        raise ValueError("give security options or transport, not both (the transport has its channels)")
    return transport, False
