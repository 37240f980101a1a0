"""Consumer-group plumbing of the SDK: finding the coordinator, calling it, and membership.

Owns

- `CoordinatorClient`: FindCoordinator (any bootstrap broker answers) and calls to the group's
  coordinator, retried within a deadline on the errors that mean "ask again" (NOT_COORDINATOR,
  COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS, an unreachable broker): the coordinator
  is looked up again, so a coordinator failover is invisible to callers beyond a short delay;
- `Membership`: the heartbeat thread of a subscribed consumer (KIP-848's ConsumerGroupHeartbeat).
  It sends the subscription and the partitions the application owns, and hands the target
  assignments it receives to the poll thread as events; the poll thread reconciles (revoke
  callbacks, commit, assign callbacks) and reports the new owned set, which the thread sends at once
  (that heartbeat is the revocation acknowledgement that lets the coordinator move a partition).
  A fenced or unknown member is "lost": the poll thread drops every partition (on_lost) before the
  thread rejoins with epoch 0. A consumer that does not poll for `max_poll_interval_ms` leaves the
  group (Kafka's rule: its partitions go to members that make progress) and rejoins on its next
  poll().

Imports: grpc (through the transport), `freshet.v1`, `freshet.client`.
Thread-safety: `CoordinatorClient` is thread-safe; `Membership` is shared by its thread and the
poll thread under its own lock.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable

import grpc
from freshet.client._retry import Deadline, Retry, retry_until_deadline
from freshet.client._transport import Transport, error_from_detail, translate_rpc_error
from freshet.client.errors import (
    BrokerUnavailableError,
    ClientTimeoutError,
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    FencedMemberEpochError,
    FreshetError,
    IllegalStateError,
    NotCoordinatorError,
    RequestTimedOutError,
    UnknownMemberError,
)
from freshet.client.structs import TopicPartition
from freshet.v1 import common_pb2, group_pb2

logger = logging.getLogger("freshet.client.group")

_REFIND = (NotCoordinatorError, CoordinatorNotAvailableError, BrokerUnavailableError, RequestTimedOutError)
_RETRY = (*_REFIND, CoordinatorLoadInProgressError)


class CoordinatorClient:
    """Calls to one group's coordinator with re-discovery and retries. Thread-safe."""

    def __init__(self, transport: Transport, group_id: str, *, retry_backoff_s: float, request_timeout_s: float) -> None:
        self._transport = transport
        self.group_id = group_id
        self._backoff_s = max(retry_backoff_s, 0.01)
        self._request_timeout_s = request_timeout_s
        self._lock = threading.Lock()
        self._address: str | None = None
        self._bootstrap_index = 0

    def invalidate(self) -> None:
        with self._lock:
            self._address = None

    @property
    def address(self) -> str | None:
        return self._address

    def _find(self, deadline: Deadline) -> str:
        """The coordinator's address: cached, else asked of the bootstrap brokers until `deadline`."""
        with self._lock:
            if self._address is not None:
                return self._address
        return retry_until_deadline(
            self._find_once,
            deadline,
            backoff_s=self._backoff_s,
            give_up=lambda last_error: ClientTimeoutError(
                f"no coordinator found for group {self.group_id!r}" + (f": {last_error}" if last_error else "")
            ),
        )

    def _find_once(self, deadline: Deadline) -> str:
        """One FindCoordinator; raises Retry on an error worth retrying (next bootstrap broker
        after an unreachable one)."""
        addresses = self._transport.bootstrap_addresses
        with self._lock:
            address = addresses[self._bootstrap_index % len(addresses)]
        try:
            response = self._transport.group_stub(address).FindCoordinator(
                group_pb2.FindCoordinatorRequest(group_ids=[self.group_id]),
                timeout=deadline.request_timeout(self._request_timeout_s),
            )
        except ValueError as closed:
            raise IllegalStateError("the client is closed") from closed
        except grpc.RpcError as rpc_error:
            error = translate_rpc_error(rpc_error, address, "FindCoordinator")
            if not error.retriable:
                raise error from None
            with self._lock:
                self._bootstrap_index += 1
            raise Retry(error) from None
        entry = response.coordinators[0]
        error = error_from_detail(entry.error, f"FindCoordinator for group {self.group_id!r} on {address}")
        if error is None and entry.coordinator.node_id < 0:
            error = CoordinatorNotAvailableError(f"group {self.group_id!r} has no coordinator yet")
        if error is not None:
            if not error.retriable:
                raise error
            raise Retry(error)
        found = f"{entry.coordinator.host}:{entry.coordinator.port}"
        with self._lock:
            self._address = found
        return found

    def call(self, method: str, request, timeout_s: float):
        """Call `method` of the Group service on the coordinator, retrying what may succeed later.

        Raises:
            FreshetError: the coordinator's non-retriable error, or the last retriable one as
                ClientTimeoutError's cause when `timeout_s` ran out.
        """

        def attempt(deadline: Deadline):
            address = self._find(deadline)
            try:
                return getattr(self._transport.group_stub(address), method)(
                    request, timeout=deadline.request_timeout(self._request_timeout_s)
                )
            except ValueError as closed:
                raise IllegalStateError("the client is closed") from closed
            except grpc.RpcError as rpc_error:
                error = translate_rpc_error(rpc_error, address, method)
            if not isinstance(error, _RETRY):
                raise error
            if isinstance(error, _REFIND):
                self.invalidate()
            logger.debug("%s for group %s: %s; retrying", method, self.group_id, error)
            raise Retry(error)

        return retry_until_deadline(
            attempt,
            Deadline(timeout_s),
            backoff_s=self._backoff_s,
            give_up=lambda last_error: ClientTimeoutError(
                f"{method} for group {self.group_id!r} did not succeed in {timeout_s:.1f} s"
                + (f": {last_error}" if last_error else "")
            ),
        )


class Membership:
    """A subscribed consumer's group membership (see the module docstring). Thread-safe."""

    def __init__(
        self,
        coordinator: CoordinatorClient,
        *,
        client_id: str,
        instance_id: str | None,
        session_timeout_ms: int,
        max_poll_interval_ms: int,
        assignor: str,
        on_event: Callable[[], None],
        retry_backoff_s: float,
    ) -> None:
        self._coordinator = coordinator
        self._client_id = client_id
        self._instance_id = instance_id or ""
        self._session_timeout_ms = session_timeout_ms
        self._max_poll_interval_s = max_poll_interval_ms / 1000
        self._assignor = assignor
        self._on_event = on_event
        self._backoff_s = retry_backoff_s
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self.member_id = ""
        self.member_epoch = 0
        self._topics: tuple[str, ...] = ()
        self._regex = ""
        self._owned: frozenset[TopicPartition] = frozenset()
        self._target: frozenset[TopicPartition] | None = None
        self._is_lost = False
        self._fatal: FreshetError | None = None
        self._heartbeat_interval_s = 0.5
        self._next_heartbeat_s = 0.0
        self._last_poll_s = time.monotonic()
        self._has_left_for_poll_timeout = False
        self._is_closed = False
        self._host = socket.gethostname()
        self._thread = threading.Thread(target=self._run, name="freshet-consumer-heartbeat", daemon=True)
        self._thread.start()

    # ---- called by the poll thread ----------------------------------------------------------------

    def subscribe(self, topics: Iterable[str] = (), regex: str = "") -> None:
        with self._lock:
            self._topics = tuple(sorted(set(topics)))
            self._regex = regex
            self._next_heartbeat_s = 0.0
            self._wakeup.notify_all()

    def on_poll(self) -> None:
        """The application polled: reset the max.poll.interval clock; rejoin after a poll timeout."""
        with self._lock:
            self._last_poll_s = time.monotonic()
            if self._has_left_for_poll_timeout and not self._is_lost:
                self._has_left_for_poll_timeout = False
                self._next_heartbeat_s = 0.0
                self._wakeup.notify_all()

    def take_event(self) -> tuple[str, frozenset[TopicPartition]] | None:
        """("lost", owned) when the membership was lost, ("assign", target) for a new target."""
        with self._lock:
            if self._fatal is not None:
                error, self._fatal = self._fatal, None
                raise error
            if self._is_lost:
                return ("lost", self._owned)
            if self._target is not None and self._target != self._owned:
                return ("assign", self._target)
            return None

    def set_owned(self, owned: Iterable[TopicPartition]) -> None:
        """The application now owns exactly `owned`: tell the coordinator at once."""
        with self._lock:
            self._owned = frozenset(owned)
            self._next_heartbeat_s = 0.0
            self._wakeup.notify_all()

    def lost_handled(self) -> None:
        """The poll thread dropped every partition after a loss: rejoin as a new member."""
        with self._lock:
            self._owned = frozenset()
            self._target = None
            self._is_lost = False
            self.member_id = ""
            self.member_epoch = 0
            self._next_heartbeat_s = 0.0
            self._wakeup.notify_all()

    def epoch(self) -> tuple[str, int]:
        with self._lock:
            return self.member_id, self.member_epoch

    def leave(self, timeout_s: float) -> None:
        """Stop heartbeating and leave the group (static members leave with epoch -2)."""
        with self._lock:
            self._is_closed = True
            self._wakeup.notify_all()
            member_id = self.member_id
            epoch = -2 if self._instance_id else -1
            is_member = bool(member_id) and self.member_epoch > 0
        self._thread.join(5)
        if not is_member:
            return
        request = group_pb2.ConsumerGroupHeartbeatRequest(
            group_id=self._coordinator.group_id, member_id=member_id, member_epoch=epoch, instance_id=self._instance_id
        )
        try:
            self._coordinator.call("ConsumerGroupHeartbeat", request, timeout_s)
        except FreshetError as error:
            logger.info("leaving group %s: %s", self._coordinator.group_id, error)

    # ---- the heartbeat thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                while True:
                    if self._is_closed:
                        return
                    now = time.monotonic()
                    if (
                        not self._has_left_for_poll_timeout
                        and self.member_epoch > 0
                        and now - self._last_poll_s > self._max_poll_interval_s
                    ):
                        break
                    if self._is_lost or self._has_left_for_poll_timeout or (not self._topics and not self._regex):
                        self._wakeup.wait(0.5)
                        continue
                    if now >= self._next_heartbeat_s:
                        break
                    self._wakeup.wait(self._next_heartbeat_s - now)
                if now - self._last_poll_s > self._max_poll_interval_s and self.member_epoch > 0:
                    logger.warning(
                        "group %s: poll() not called for more than max_poll_interval_ms; leaving the group so its "
                        "partitions go to members that make progress",
                        self._coordinator.group_id,
                    )
                    request = self._request(leave=True)
                    self._has_left_for_poll_timeout = True
                    self._is_lost = bool(self._owned)
                    self.member_epoch = 0
                    self.member_id = ""
                    if not self._is_lost:
                        self._target = None
                else:
                    request = self._request()
            self._send(request)

    def _request(self, leave: bool = False) -> group_pb2.ConsumerGroupHeartbeatRequest:
        """Lock held."""
        request = group_pb2.ConsumerGroupHeartbeatRequest(
            group_id=self._coordinator.group_id,
            member_id=self.member_id,
            member_epoch=(-2 if self._instance_id else -1) if leave else self.member_epoch,
            instance_id=self._instance_id,
            rebalance_timeout_ms=int(self._max_poll_interval_s * 1000),
            session_timeout_ms=self._session_timeout_ms,
            server_assignor=self._assignor,
            client_id=self._client_id,
            client_host=self._host,
        )
        if not leave:
            request.subscribed_topic_names.extend(self._topics)
            request.subscribed_topic_regex = self._regex
            request.has_subscription = True
            request.has_owned_partitions = True
            request.owned_partitions.extend(
                common_pb2.TopicPartition(topic=tp.topic, partition=tp.partition) for tp in sorted(self._owned)
            )
        return request

    def _send(self, request) -> None:
        timeout_s = max(self._session_timeout_ms / 1000 / 2, 1.0)
        try:
            response = self._coordinator.call("ConsumerGroupHeartbeat", request, timeout_s)
        except (UnknownMemberError, FencedMemberEpochError) as error:
            logger.info("group %s: %s; rejoining after dropping partitions", self._coordinator.group_id, error)
            with self._lock:
                self._is_lost = True
                if not self._owned:
                    self._is_lost = False
                    self.member_id, self.member_epoch, self._target = "", 0, None
                self._next_heartbeat_s = 0.0
            self._on_event()
            return
        except (ClientTimeoutError, IllegalStateError) as error:
            with self._lock:
                if self._is_closed:
                    return
                self._next_heartbeat_s = time.monotonic() + self._backoff_s
            logger.info("group %s heartbeat: %s", self._coordinator.group_id, error)
            return
        except FreshetError as error:
            with self._lock:
                self._fatal = error
                self._next_heartbeat_s = time.monotonic() + max(self._backoff_s, 1.0)
            self._on_event()
            return
        if request.member_epoch < 0:
            self._on_event()
            return
        with self._lock:
            if self._is_lost or self._is_closed or self._has_left_for_poll_timeout:
                return
            self.member_id = response.member_id
            self.member_epoch = response.member_epoch
            self._heartbeat_interval_s = max(response.heartbeat_interval_ms, 10) / 1000
            self._next_heartbeat_s = time.monotonic() + self._heartbeat_interval_s
            if response.has_assignment:
                self._target = frozenset(TopicPartition(tp.topic, tp.partition) for tp in response.assignment)
                is_new = self._target != self._owned
            else:
                is_new = False
        if is_new:
            self._on_event()
