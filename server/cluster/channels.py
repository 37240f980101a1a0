"""Talking to the controllers: one grpc.aio channel per controller, and forwarding to the active one.

Owns:
- `ControllerChannels`: lazily created, reused channels to every controller's gRPC endpoint
  (`NodeConfig.controller_listeners`), with short reconnect backoffs so that a restarted
  controller is reachable again within ~0.1-1 s (gRPC's default backoff grows to 120 s), and the
  order in which to try controllers (the hint first, then the others). With TLS the channels
  present this node's certificate (mTLS); after a certificate rotation new channels are made
  with the new one (calls already running finish on the old ones, closed with the rest).
  `reset(node_id)` retires one controller's channel after a call on it got no answer in time: the
  next call opens a new TCP connection instead of queueing behind bytes that wait out TCP's
  retransmission backoff after a partition heals (issue 16); the old channel is closed in the
  background after `RETIRED_GRACE_S`, so calls still running on it may finish. A call that
  has not finished by then is cancelled by gRPC, which its awaiting task sees as an
  asyncio.CancelledError although nobody cancelled the task (`cancelled_by_channel` tells the
  two apart; every caller must treat the first as "that controller did not answer");
- `forward`: Kafka's KIP-590 forwarding of a unary request to the active controller. It tries
  the best known controller, follows NOT_CONTROLLER hints, skips unreachable ones and retries
  with a short backoff until the request's deadline; errors other than "not the controller" or
  "unreachable" (a call cancelled by a retired channel counts as unreachable) are the answer and
  pass through unchanged (code and ErrorDetail).

Imports: asyncio, grpc, freshet.server (config, errors, status, security), wire types.
Thread-safety: not thread-safe; used on the node's event loop only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

import grpc
from freshet.server import limits, status
from freshet.server.config import HostPort
from freshet.server.errors import ForwardedError, NotControllerError, RequestTimedOutError
from freshet.server.security.node_identity import inter_node_channel
from freshet.server.security.tls import TlsMaterial
from freshet.v1 import common_pb2, controller_pb2_grpc

logger = logging.getLogger(__name__)

FORWARDED_METADATA_KEY = "x-freshet-forwarded"
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", limits.GRPC_MESSAGE_BYTES_MAX),
    ("grpc.max_receive_message_length", limits.GRPC_MESSAGE_BYTES_MAX),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
#: Each controller channel has connections of its own: with gRPC's global subchannel pool a new
#: channel with the same target and options would reuse the old channel's (stuck) connection.
OWN_CONNECTION_OPTIONS = [*CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1)]
RETRY_BACKOFF_S = 0.05
#: How long calls still running on a channel retired by `reset` may take before it is closed.
RETIRED_GRACE_S = 5.0


def cancelled_by_channel() -> bool:
    """Inside `except asyncio.CancelledError`: whether the error came from gRPC cancelling a call
    whose channel was closed (`ControllerChannels.reset`), rather than from cancelling the task
    that awaited it. Before issue 16's one-way faults found it, such an error ended the
    AlterPartition task without clearing its partitions' pending change, so their ISRs never
    changed again."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() == 0


class ControllerChannels:
    """Channels to the controllers' gRPC endpoints. Not thread-safe (the node's loop)."""

    def __init__(self, listeners: Mapping[int, HostPort], self_id: int, tls: TlsMaterial | None = None) -> None:
        assert listeners
        self.listeners = dict(sorted(listeners.items()))
        self.self_id = self_id
        self.tls = tls
        self._generation = tls.generation if tls is not None else 0
        self._retired: list[grpc.aio.Channel] = []
        self._channels: dict[int, grpc.aio.Channel] = {}
        self._stubs: dict[int, controller_pb2_grpc.ControllerStub] = {}
        self._rotation = 0
        self._closing: set[asyncio.Task] = set()
        #: Channels retired by `reset` (a metric for tests and logs).
        self.resets = 0

    def endpoint(self, node_id: int) -> HostPort | None:
        return self.listeners.get(node_id)

    def stub(self, node_id: int) -> controller_pb2_grpc.ControllerStub:
        if self.tls is not None and self.tls.generation != self._generation:
            self._generation = self.tls.generation           # rotated: new channels, new certificate
            self._retired.extend(self._channels.values())
            self._channels, self._stubs = {}, {}
        stub = self._stubs.get(node_id)
        if stub is None:
            channel = inter_node_channel(str(self.listeners[node_id]), OWN_CONNECTION_OPTIONS, self.tls)
            self._channels[node_id] = channel
            stub = self._stubs[node_id] = controller_pb2_grpc.ControllerStub(channel)
        return stub

    def reset(self, node_id: int) -> None:
        """Retire the channel to `node_id` (a call on it got no answer in time): the next `stub`
        makes a new channel, hence a new connection; the old one is closed in the background once
        the calls on it finished or RETIRED_GRACE_S passed."""
        channel = self._channels.pop(node_id, None)
        self._stubs.pop(node_id, None)
        if channel is None:
            return
        self.resets += 1
        logger.info("controller %d: retiring its channel, the next call opens a new connection", node_id)
        self._retired.append(channel)                     # closed by close() if still open then
        task = asyncio.get_running_loop().create_task(self._close_retired(channel), name="close-controller-channel")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close_retired(self, channel: grpc.aio.Channel) -> None:
        await channel.close(grace=RETIRED_GRACE_S)
        if channel in self._retired:
            self._retired.remove(channel)

    def candidates(self, hint: int | None, exclude_self: bool = False) -> list[int]:
        """Controllers to try, in order: the hint (when it is a controller), then the others in an
        order that rotates between calls, so that retries spread."""
        ids = [node_id for node_id in self.listeners if not (exclude_self and node_id == self.self_id)]
        if not ids:
            return []
        self._rotation = (self._rotation + 1) % len(ids)
        rotated = ids[self._rotation :] + ids[: self._rotation]
        if hint is not None and hint in rotated:
            rotated.remove(hint)
            rotated.insert(0, hint)
        return rotated

    async def close(self) -> None:
        for task in list(self._closing):
            task.cancel()
        channels, self._channels, self._stubs = self._channels, {}, {}
        retired, self._retired = self._retired, []
        for channel in [*channels.values(), *retired]:
            await channel.close()


async def forward(
    channels: ControllerChannels,
    method: str,
    request,
    deadline: float,
    hint: Callable[[], int | None],
    skip_self: bool,
    attempt_timeout_s: float | None = None,
):
    """Send a unary Controller request to the active controller and return its response.

    Args:
        channels: the controller channels.
        method: the Controller RPC name ("CreateTopics").
        request: the request message, or a function returning it, called before each attempt
            (so that a retry sends what is true then: AlterPartition recomputes its ISR).
        deadline: time.monotonic() by which it must complete.
        hint: the controller this node believes is active (called before each attempt).
        skip_self: do not send to this node (it knows it is not the active controller).
        attempt_timeout_s: give up on one controller after this long and try the next (for
            requests the controller deduplicates: a controller whose replies are cut off must not
            hold the request until its deadline while another one has taken over). None: each
            attempt may take until the deadline.

    Raises:
        ForwardedError: the active controller refused the request (its answer).
        NotControllerError: no active controller answered before the deadline.
        RequestTimedOutError: a controller took the request but did not answer in time.
    """
    hinted: int | None = None
    last_known = -1
    attempts = 0
    while True:
        order = channels.candidates(hinted if hinted is not None else hint(), exclude_self=skip_self)
        for target in order:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            attempts += 1
            timeout = remaining if attempt_timeout_s is None else min(remaining, attempt_timeout_s)
            try:
                message = request() if callable(request) else request
                return await getattr(channels.stub(target), method)(
                    message, timeout=timeout, metadata=((FORWARDED_METADATA_KEY, "1"),)
                )
            except grpc.aio.AioRpcError as error:
                detail = status.detail_from_metadata(error.trailing_metadata())
                if detail is not None and detail.code == common_pb2.NOT_CONTROLLER:
                    if detail.controller_id >= 0:
                        last_known = detail.controller_id
                        if detail.controller_id != target and not (skip_self and detail.controller_id == channels.self_id):
                            hinted = detail.controller_id
                            break                       # follow the hint at once
                    continue
                if error.code() == grpc.StatusCode.UNAVAILABLE and detail is None:
                    continue                            # unreachable (or died mid-call): next one
                if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED and detail is None:
                    if timeout < remaining:
                        continue                        # this attempt's time is up: the next controller
                    raise RequestTimedOutError(f"{method} on controller {target}", remaining) from None
                raise ForwardedError(error.code(), detail, error.details() or "") from None
            except asyncio.CancelledError:
                if not cancelled_by_channel():
                    raise
                continue                                # its channel was retired under the call: next one
        else:
            hinted = None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            endpoint = channels.endpoint(last_known) if last_known >= 0 else None
            raise NotControllerError(
                last_known,
                endpoint.host if endpoint else "",
                endpoint.port if endpoint else 0,
                f"tried {attempts} times",
            )
        await asyncio.sleep(min(RETRY_BACKOFF_S, remaining))
