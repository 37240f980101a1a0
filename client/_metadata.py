"""The client's metadata cache: which brokers exist and which broker leads each partition.

Owns `ClusterView`, an immutable snapshot (brokers, topics with their partitions' leaders and
leader epochs), and `Metadata`, which keeps the current view for the topics this client uses and
refreshes it:

- on demand (`request_update`): after NOT_LEADER, UNKNOWN_TOPIC, LEADER_NOT_AVAILABLE, a fenced
  epoch or a connection failure, and when a topic is used for the first time; a NOT_LEADER that
  names the new leader with a newer leader epoch updates the view at once (`apply_leader_hint`,
  Kafka's KIP-951), so the retry need not wait for the refresh;
- periodically, once the view is older than `metadata_max_age_ms` (Kafka's metadata.max.age.ms),
  through `maybe_refresh`, which the producer's sender and the consumer's fetcher call on each turn.

A refresh is asynchronous (`Metadata.future`): it asks one broker at a time, known brokers first and
then the bootstrap addresses, until one answers; addresses a client `suspect`s (a request to them has
been outstanding for long: the process may be stopped or cut off) go last for `SUSPECT_S`, and an
attempt already waiting on a newly suspected address is cancelled so the round moves on at once
instead of waiting out `request_timeout_ms` (issue 16); when none does, it records a
BrokerUnavailableError naming every address tried and waits `retry_backoff_ms` before the next
round. A partition whose cached leader epoch is newer than the answer's is kept as cached, so a
lagging broker cannot send the client back to a deposed leader (Kafka KIP-320); a different topic
id means the topic was re-created and replaces the cached one.

Imports: grpc (through the transport), `freshet.v1`, `freshet.client`.
Forbidden: server, metadata, cli, pysyncobj, and storage beyond record_batch, compression
and errors (import-linter contracts).

Thread-safety: thread-safe. `view` is an immutable snapshot swapped atomically; refresh state is
guarded by one lock; listeners are called outside it.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import NamedTuple

import grpc
from freshet.client._transport import Transport, error_from_detail, node_from_endpoint, translate_rpc_error
from freshet.client.errors import (
    BrokerUnavailableError,
    FreshetError,
    MaxBlockTimeoutError,
    UnknownTopicError,
)
from freshet.client.structs import Node
from freshet.v1 import broker_pb2, common_pb2

#: How long a suspected address stays at the end of refresh rounds.
SUSPECT_S = 30.0


class PartitionInfo(NamedTuple):
    """One partition as the metadata describes it. Immutable, thread-safe."""

    partition: int
    leader_id: int
    """-1: no leader right now."""
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


class TopicInfo(NamedTuple):
    """One topic: its partitions in partition order, or the error the broker gave for it.

    Immutable, thread-safe.
    """

    name: str
    topic_id: bytes
    partitions: tuple[PartitionInfo, ...]
    available_partitions: tuple[int, ...]
    """Partitions whose leader is a live broker (the sticky partitioner picks among these)."""
    error: FreshetError | None


class ClusterView:
    """An immutable snapshot of the cluster as one Metadata answer (merged with older ones) saw it.

    Thread-safe: never mutated after construction.
    """

    __slots__ = ("cluster_id", "controller_id", "brokers", "topics", "metadata_offset", "version")

    def __init__(
        self,
        cluster_id: str,
        controller_id: int,
        brokers: Mapping[int, Node],
        topics: Mapping[str, TopicInfo],
        metadata_offset: int,
        version: int,
    ) -> None:
        self.cluster_id = cluster_id
        self.controller_id = controller_id
        self.brokers: Mapping[int, Node] = MappingProxyType(dict(brokers))
        self.topics: Mapping[str, TopicInfo] = MappingProxyType(dict(topics))
        self.metadata_offset = metadata_offset
        self.version = version
        """Increases by one with every applied answer."""

    def leader(self, topic: str, partition: int) -> tuple[Node, int] | None:
        """(leader node, leader epoch) of a partition, or None when unknown or offline."""
        info = self.topics.get(topic)
        if info is None or partition >= len(info.partitions):
            return None
        partition_info = info.partitions[partition]
        node = self.brokers.get(partition_info.leader_id)
        if node is None:
            return None
        return node, partition_info.leader_epoch


def _merge(view: ClusterView, response: broker_pb2.MetadataResponse) -> ClusterView:
    """The view after applying `response` to `view` (see the module docstring for the rules)."""
    is_newer = response.metadata_offset >= view.metadata_offset
    if is_newer or not view.brokers:
        brokers = {endpoint.node_id: node_from_endpoint(endpoint) for endpoint in response.brokers}
        controller_id = response.controller_id
    else:
        brokers = dict(view.brokers)
        controller_id = view.controller_id
    topics = dict(view.topics)
    for topic in response.topics:
        if topic.HasField("error") and topic.error.code != common_pb2.NONE:
            topics[topic.name] = TopicInfo(
                topic.name, topic.topic_id, (), (), error_from_detail(topic.error, f"topic {topic.name!r}")
            )
            continue
        cached = view.topics.get(topic.name)
        same_topic = cached is not None and cached.topic_id == topic.topic_id and cached.error is None
        by_number: dict[int, PartitionInfo] = {}
        for partition in topic.partitions:
            info = PartitionInfo(
                partition.partition,
                partition.leader_id,
                partition.leader_epoch,
                tuple(partition.replicas),
                tuple(partition.isr),
            )
            if same_topic and partition.partition < len(cached.partitions):
                old = cached.partitions[partition.partition]
                if old.leader_epoch > info.leader_epoch:
                    info = old  # this broker lags behind what we already know (KIP-320)
            by_number[partition.partition] = info
        count = len(by_number)
        if sorted(by_number) != list(range(count)):
            # Partition numbers must be dense; a broker that says otherwise is not trusted for this topic.
            continue
        partitions = tuple(by_number[number] for number in range(count))
        available = tuple(p.partition for p in partitions if p.leader_id in brokers)
        topics[topic.name] = TopicInfo(topic.name, topic.topic_id, partitions, available, None)
    # Topics the broker left out keep their cached entry.
    return ClusterView(
        response.cluster_id or view.cluster_id,
        controller_id,
        brokers,
        topics,
        max(response.metadata_offset, view.metadata_offset),
        view.version + 1,
    )


class Metadata:
    """The metadata cache of one client, refreshed asynchronously. Thread-safe."""

    def __init__(
        self,
        transport: Transport,
        *,
        metadata_max_age_ms: int,
        retry_backoff_ms: int,
        request_timeout_ms: int,
    ) -> None:
        self._transport = transport
        self._max_age_s = metadata_max_age_ms / 1000
        self._backoff_s = retry_backoff_ms / 1000
        self._timeout_s = request_timeout_ms / 1000
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._view = ClusterView("", -1, {}, {}, -1, 0)
        self._topics: set[str] = set()
        self._listeners: list[Callable[[], None]] = []
        self._is_in_flight = False
        self._needs_update = False
        self._last_success_s = float("-inf")
        self._next_attempt_s = 0.0
        self._round: list[str] = []
        self._round_errors: list[str] = []
        self._rounds_failed = 0
        #: The last failed round's error, cleared by a successful answer.
        self.last_error: FreshetError | None = None
        self._is_closed = False
        #: address -> monotonic time it was suspected (see `suspect`).
        self._suspects: dict[str, float] = {}
        #: (address, future) of the attempt in flight, so suspecting its address can cancel it.
        self._attempt_in_flight: tuple[str, grpc.Future] | None = None

    # ---------------------------------------------------------------------------------------------
    # Reading.

    @property
    def view(self) -> ClusterView:
        """The current snapshot (immutable; read it once per decision)."""
        return self._view

    @property
    def rounds_failed(self) -> int:
        """How many refresh rounds found no broker answering (for tests and metrics)."""
        return self._rounds_failed

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call `listener()` (from a gRPC thread, without locks held) after every refresh round."""
        with self._lock:
            self._listeners.append(listener)

    # ---------------------------------------------------------------------------------------------
    # Refreshing.

    def add_topics(self, topics: Iterable[str]) -> None:
        """Track these topics too; an unknown one triggers a refresh."""
        with self._lock:
            new = set(topics) - self._topics
            if not new:
                return
            self._topics |= new
            self._needs_update = True
        self.maybe_refresh()

    def request_update(self) -> None:
        """Refresh as soon as the backoff allows (a stale leader, an unknown topic, a lost broker)."""
        with self._lock:
            self._needs_update = True
        self.maybe_refresh()

    def maybe_refresh(self) -> float:
        """Start a refresh round if one is due and none is running.

        Returns:
            Seconds until the next call may have something to do (for the caller's wait).
        """
        with self._lock:
            if self._is_closed or not self._topics:
                return self._max_age_s
            now = time.monotonic()
            if self._is_in_flight:
                return self._backoff_s
            is_due = self._needs_update or now - self._last_success_s >= self._max_age_s
            if not is_due:
                return self._last_success_s + self._max_age_s - now
            if now < self._next_attempt_s:
                return self._next_attempt_s - now
            self._is_in_flight = True
            self._needs_update = False
            known = [node.address for node in self._view.brokers.values()]
            random.shuffle(known)
            addresses = known + [a for a in self._transport.bootstrap_addresses if a not in known]
            suspects = {a for a, since in self._suspects.items() if now - since < SUSPECT_S}
            # A stable sort: suspected addresses last, the rest in their shuffled order.
            self._round = sorted(addresses, key=lambda address: address in suspects)
            self._round_errors = []
            address = self._round.pop(0)
            request = broker_pb2.MetadataRequest(topics=sorted(self._topics))
        self._attempt(address, request)
        return self._backoff_s

    def _attempt(self, address: str, request: broker_pb2.MetadataRequest) -> None:
        try:
            future = self._transport.stub(address).Metadata.future(request, timeout=self._timeout_s)
        except (grpc.RpcError, ValueError) as error:  # a closed channel raises ValueError
            self._on_failure(address, request, f"{address} ({error})")
            return
        with self._lock:
            self._attempt_in_flight = (address, future)
        future.add_done_callback(lambda done: self._on_done(address, request, done))

    def suspect(self, address: str) -> None:
        """A request to `address` has been outstanding too long: ask it last for a while.

        Cancels a refresh attempt waiting on that address when the round has another address
        to try, so the round moves on rather than waiting out request_timeout_ms with every other
        refresh held up behind it. (With none left, cancelling could only fail the round: a
        single slow broker is still the best source.)
        """
        with self._lock:
            self._suspects[address] = time.monotonic()
            attempt = self._attempt_in_flight
            has_next = bool(self._round)
        if attempt is not None and attempt[0] == address and has_next:
            attempt[1].cancel()

    def _on_done(self, address: str, request: broker_pb2.MetadataRequest, future: grpc.Future) -> None:
        with self._lock:
            if self._attempt_in_flight is not None and self._attempt_in_flight[1] is future:
                self._attempt_in_flight = None
        try:
            response = future.result()
        except grpc.RpcError as error:
            translated = translate_rpc_error(error, address, "Metadata")
            # The round's message names each address once: keep gRPC's own words for connection failures.
            is_unreachable = isinstance(translated, BrokerUnavailableError) and hasattr(error, "details")
            self._on_failure(address, request, f"{address} ({error.details() if is_unreachable else translated})")
            return
        except grpc.FutureCancelledError:
            self._on_failure(address, request, f"{address} (cancelled)")
            return
        with self._lock:
            self._view = _merge(self._view, response)
            self._last_success_s = time.monotonic()
            self._is_in_flight = False
            self.last_error = None
            self._changed.notify_all()
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    def _on_failure(self, address: str, request: broker_pb2.MetadataRequest, reason: str) -> None:
        with self._lock:
            self._round_errors.append(reason)
            next_address = self._round.pop(0) if self._round and not self._is_closed else None
            if next_address is None:
                self._is_in_flight = False
                self._rounds_failed += 1
                self._next_attempt_s = time.monotonic() + self._backoff_s
                self._needs_update = True
                self.last_error = BrokerUnavailableError(
                    "no broker answered a Metadata request; tried " + ", ".join(self._round_errors)
                )
                self._changed.notify_all()
                listeners = list(self._listeners)
        if next_address is not None:
            self._attempt(next_address, request)
            return
        for listener in listeners:
            listener()

    def apply_leader_hint(self, topic: str, partition: int, leader: Node | None, leader_epoch: int) -> bool:
        """Use the leader a NOT_LEADER / FENCED_LEADER_EPOCH answer named, without a round trip.

        Applied only when the hint's leader epoch is newer than the cached one (so an old hint
        cannot undo a newer view), as Kafka does since KIP-951. A refresh should still follow.

        Returns:
            Whether the view changed.
        """
        if leader is None or leader_epoch < 0:
            return False
        with self._lock:
            view = self._view
            info = view.topics.get(topic)
            if info is None or info.error is not None or partition >= len(info.partitions):
                return False
            old = info.partitions[partition]
            if leader_epoch <= old.leader_epoch:
                return False
            partitions = list(info.partitions)
            partitions[partition] = old._replace(leader_id=leader.node_id, leader_epoch=leader_epoch)
            brokers = dict(view.brokers)
            brokers.setdefault(leader.node_id, leader)
            available = tuple(p.partition for p in partitions if p.leader_id in brokers)
            topics = dict(view.topics)
            topics[topic] = info._replace(partitions=tuple(partitions), available_partitions=available)
            self._view = ClusterView(
                view.cluster_id, view.controller_id, brokers, topics, view.metadata_offset, view.version + 1
            )
            self._changed.notify_all()
        return True

    def wait_for_topic(self, topic: str, timeout_s: float, unknown_topic_timeout_s: float) -> TopicInfo:
        """Block until `topic` has partitions in the view, refreshing as needed.

        Args:
            topic: the topic.
            timeout_s: give up after this long (the producer's max_block_ms).
            unknown_topic_timeout_s: how long brokers may keep saying UNKNOWN_TOPIC before the
                topic is taken not to exist (a new topic takes a moment to reach every broker).

        Raises:
            UnknownTopicError: brokers said the topic does not exist for unknown_topic_timeout_s.
            FreshetError: the broker's error for the topic (e.g. InvalidTopicError).
            MaxBlockTimeoutError: no answer in time; its cause is the last refresh error.
        """
        start = time.monotonic()
        deadline = start + timeout_s
        self.add_topics([topic])
        info = self._view.topics.get(topic)
        if info is not None and info.partitions:
            return info
        # Whatever is cached may be old news: the topic may have been created since.
        self.request_update()
        seen_version = -1
        while True:
            view = self._view
            info = view.topics.get(topic)
            now = time.monotonic()
            if info is not None and info.partitions:
                return info
            if info is not None and info.error is not None and view.version != seen_version:
                seen_version = view.version
                if not isinstance(info.error, UnknownTopicError):
                    raise info.error
                if now - start >= unknown_topic_timeout_s:
                    raise UnknownTopicError(
                        f"topic {topic!r} does not exist (brokers said so for "
                        f"{int(unknown_topic_timeout_s * 1000)} ms)"
                    )
                self.request_update()
            if now >= deadline:
                raise MaxBlockTimeoutError(
                    f"topic {topic!r} not present in metadata after {int(timeout_s * 1000)} ms"
                    + (f": {self.last_error.message}" if self.last_error is not None else "")
                ) from self.last_error
            wait_s = min(deadline - now, max(self.maybe_refresh(), 0.001), self._backoff_s)
            with self._lock:
                if self._view is view:
                    self._changed.wait(wait_s)

    def wait_for_update(self, version: int, timeout_s: float) -> ClusterView:
        """Request a refresh and block until the view's version passes `version` or a round fails.

        Returns:
            The current view (possibly unchanged after `timeout_s` or a failed round).
        """
        self.request_update()
        deadline = time.monotonic() + timeout_s
        failed = self._rounds_failed
        with self._lock:
            while self._view.version <= version and self._rounds_failed == failed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            return self._view

    def close(self) -> None:
        """Stop refreshing; waiters return at their deadlines."""
        with self._lock:
            self._is_closed = True
            self._round = []
            self._changed.notify_all()
