"""The consumer's fetcher: its background thread, fetch and reset requests, and record decoding.

Owns

- the fetcher thread, which keeps one long-poll `Fetch` outstanding per broker (Kafka's and
  librdkafka's model), each asking for every fetchable partition that broker leads, from where that
  partition's buffered data ends; and which resolves partitions without a position by `ListOffsets`
  (auto_offset_reset). Prefetch is bounded per partition by `max_partition_fetch_bytes`;
- cutting a parked long poll short when a seek, an assignment or a resume needs the partition
  fetched from somewhere new (`interrupt`), or when a fetch has gone unanswered `stalled_s` past
  its wait and refreshed metadata names another leader for one of its partitions (a stopped or
  cut-off leader, issue 16: the broker is suspected, so refreshes ask the others first);
- what a response means for each partition: buffered batches, a new high watermark, a retry after
  `retry_backoff_ms` (with a metadata refresh and the leader hint of NOT_LEADER, KIP-320 epochs), a
  reset on OFFSET_OUT_OF_RANGE, or an error poll() raises;
- handing records to poll(): `collect` decodes lazily, batch by batch, only as many records as it
  returns, CRC-checking each batch (`check_crcs`) as poll() reaches it, skipping records below the
  position (a fetch returns whole batches) and control batches.

Imports: grpc (through the transport), `freshet.v1`, storage's batch codec and errors,
`freshet.client`. Forbidden: server, metadata, cli, pysyncobj (import-linter contracts).

Thread-safety: thread-safe. Every state change happens under the SubscriptionState's lock: gRPC
callbacks only post events, which the fetcher thread applies under the lock; requests are sent
outside it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import grpc
from freshet.client._metadata import Metadata
from freshet.client._subscription import PartitionState, SubscriptionState, no_offset_error
from freshet.client._transport import Transport, error_from_detail, translate_rpc_error
from freshet.client.errors import (
    AuthorizationError,
    CorruptRecordError,
    FreshetError,
    InvalidMetadataError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
    UnknownServerError,
    UnsupportedCompressionTypeError,
)
from freshet.client.structs import ConsumerRecord, TopicPartition
from freshet.storage import errors as storage_errors
from freshet.storage.record_batch import BatchHeader, decode_batch, iter_batches
from freshet.v1 import broker_pb2, common_pb2

logger = logging.getLogger("freshet.client.consumer")

#: The longest the fetcher thread sleeps without checking metadata age and retry times.
MAX_IDLE_S = 0.5
#: While a fetch is stalled: how often metadata is refreshed to see whether a leader moved.
STALL_RECHECK_S = 0.25


@dataclass(frozen=True)
class FetchSettings:
    """The fetch options of a ConsumerConfig, in the units the fetcher uses."""

    max_wait_ms: int
    min_bytes: int
    max_bytes: int
    partition_max_bytes: int
    check_crcs: bool
    request_timeout_s: float
    backoff_s: float
    auto_offset_reset: str
    client_id: str
    stalled_s: float = 1.0


class Fetcher:
    """Fetches and decodes records of the assigned partitions. Thread-safe (see the module docstring)."""

    def __init__(
        self, subscription: SubscriptionState, metadata: Metadata, transport: Transport, settings: FetchSettings
    ) -> None:
        self._subscription = subscription
        self._metadata = metadata
        self._transport = transport
        self._settings = settings
        self._events: deque = deque()
        self._fetching_nodes: set[int] = set()
        #: node id -> (outstanding Fetch, its partitions), so a seek can cut a long poll short.
        self._fetch_calls: dict[int, tuple[grpc.Future, set[TopicPartition]]] = {}
        #: node id -> (address, when its outstanding Fetch counts as stalled).
        self._stall_at: dict[int, tuple[str, float]] = {}
        self._next_stall_recheck_s = 0.0
        self._needs_metadata = False
        self._leader_hints: list = []
        self._interrupted_nodes: set[int] = set()
        self._poll_start = 0
        self.metrics = {"records_consumed_total": 0, "bytes_fetched_total": 0, "fetch_total": 0}
        """Counters, guarded by the subscription's lock."""
        self.thread = threading.Thread(target=self._run, name="freshet-consumer-fetcher", daemon=True)

    def start(self) -> None:
        self.thread.start()

    # =============================================================================================
    # Handing records to poll().

    def collect(self, limit: int) -> list[ConsumerRecord]:
        """Hand out up to `limit` buffered records; raise a partition's pending error first. Lock held."""
        states = list(self._subscription.states.values())
        if not states:
            return []
        for state in states:
            if state.is_paused:
                continue
            # Records buffered before the failure go out first; a corrupt batch still in the buffer
            # raises from _take when poll() reaches it.
            if state.error is not None and state.record_index >= len(state.records) and not state.batches:
                raise state.error
            if state.next_offset is None and state.reset_to is None and state.error is None:
                raise no_offset_error(state)
        start = self._poll_start % len(states)
        self._poll_start += 1
        out: list[ConsumerRecord] = []
        for state in states[start:] + states[:start]:
            if state.is_paused or state.next_offset is None:
                continue
            try:
                self._take(state, out, limit)
            except CorruptRecordError:
                if not out:
                    raise
                break  # hand out what we have; the next poll raises (state.error is set)
            if len(out) >= limit:
                break
        if out:
            self.metrics["records_consumed_total"] += len(out)
        return out

    def _take(self, state: PartitionState, out: list[ConsumerRecord], limit: int) -> None:
        """Move records of one partition into `out`, decoding batches as needed. Lock held."""
        partition_max_bytes = self._settings.partition_max_bytes
        was_full = state.buffered_bytes >= partition_max_bytes
        while len(out) < limit:
            records = state.records
            index = state.record_index
            if index < len(records):
                take = min(limit - len(out), len(records) - index)
                out.extend(records[index : index + take])
                state.record_index = index + take
                state.next_offset = records[index + take - 1].offset + 1
                continue
            # The decoded batch is used up: continue after it (compaction may leave offsets unused).
            if state.records_end > state.next_offset:
                state.next_offset = state.records_end
            if not state.batches:
                break
            header, view = state.batches[0]
            next_offset = header.base_offset + header.last_offset_delta + 1
            if next_offset > state.next_offset and not header.is_control:
                state.records = self._decode(state, header, view)  # raises on a corrupt batch
            else:
                state.records = []  # wholly below the position, or a control batch: skipped
            state.record_index = 0
            state.records_end = next_offset
            state.batches.popleft()
            state.buffered_bytes -= len(view)
        if was_full and state.buffered_bytes < partition_max_bytes:
            self._subscription.wake_fetcher_locked()

    def _decode(self, state: PartitionState, header: BatchHeader, view: memoryview) -> list[ConsumerRecord]:
        """The records of one batch at or after the position. Lock held.

        Raises:
            CorruptRecordError, UnsupportedCompressionTypeError: also kept in `state.error`, and the
                batch stays first in the buffer, so every poll() raises until a seek.
        """
        next_offset = state.next_offset
        topic, partition = state.tp
        try:
            decoded = decode_batch(view, verify_crc=self._settings.check_crcs)
        except (storage_errors.CorruptRecordError, storage_errors.RecordTooLargeError) as error:
            state.error = CorruptRecordError(
                f"{topic}-{partition}: the batch at offset {header.base_offset} is corrupt ({error}); "
                f"seek to offset {header.base_offset + header.last_offset_delta + 1} to skip it",
                topic_partition=state.tp,
                offset=header.base_offset,
            )
            raise state.error from error
        except storage_errors.UnsupportedCompressionError as error:
            state.error = UnsupportedCompressionTypeError(
                f"{topic}-{partition}: the batch at offset {header.base_offset}: {error}", topic_partition=state.tp
            )
            raise state.error from error
        timestamp_type = header.attributes >> 3 & 1
        epoch = header.partition_leader_epoch
        new = tuple.__new__
        records = decoded.records
        if records and records[0][0] < next_offset:
            records = [record for record in records if record[0] >= next_offset]
        return [
            new(ConsumerRecord, (topic, partition, offset, timestamp, timestamp_type, key, value, headers, epoch))
            for offset, timestamp, key, value, headers in records
        ]

    # =============================================================================================
    # The fetcher thread.

    def _post(self, event: tuple) -> None:
        with self._subscription.lock:
            self._events.append(event)
            self._subscription.wake_fetcher_locked()

    def _run(self) -> None:
        subscription = self._subscription
        try:
            while True:
                with subscription.lock:
                    if subscription.is_closed:
                        return
                    subscription.fetcher_needs_run = False
                    events = self._events
                    self._events = deque()
                    for event in events:
                        self._handle_event(event)
                    fetches, resets, next_s = self._plan()
                    needs_metadata = self._needs_metadata
                    self._needs_metadata = False
                    hints = self._leader_hints
                    self._leader_hints = []
                for tp, leader, leader_epoch in hints:
                    self._metadata.apply_leader_hint(tp.topic, tp.partition, leader, leader_epoch)
                if needs_metadata:
                    # Outside the lock: a refresh may call our listener, which takes the lock.
                    self._metadata.request_update()
                for address, request, node_id, generations in fetches:
                    self._send_fetch(address, request, node_id, generations)
                for address, request, generations in resets:
                    self._send_reset(address, request, generations)
                next_s = min(next_s, self._check_stalled())
                wait_s = min(self._metadata.maybe_refresh(), next_s, MAX_IDLE_S)
                with subscription.lock:
                    if not subscription.fetcher_needs_run and not self._events and not subscription.is_closed:
                        subscription.fetcher_wakeup.wait(max(wait_s, 0.001))
        except BaseException:
            logger.exception("the consumer's fetcher thread failed")
            with subscription.lock:
                for state in subscription.states.values():
                    state.error = UnknownServerError("the consumer's fetcher thread failed; see the log")
                subscription.data_ready.notify_all()
            raise

    def _plan(self):
        """Decide the fetches and resets to send now. Lock held."""
        now = time.monotonic()
        view = self._metadata.view
        next_s = MAX_IDLE_S
        fetch_by_node: dict[int, tuple[str, list[broker_pb2.PartitionFetch], dict]] = {}
        reset_by_address: dict[str, tuple[list[broker_pb2.PartitionOffsetQuery], dict]] = {}
        for tp, state in self._subscription.states.items():
            if state.error is not None or state.is_fetching or state.is_resetting:
                continue
            if state.retry_at_s > now:
                next_s = min(next_s, state.retry_at_s - now)
                continue
            if state.next_offset is None and state.reset_to is None:
                continue  # auto_offset_reset="none": poll() raises until seek()
            leader = view.leader(tp.topic, tp.partition)
            if leader is None:
                refused = view.topics.get(tp.topic)
                if refused is not None and isinstance(refused.error, AuthorizationError):
                    # Not allowed to Describe the topic: no leader will ever show up, so poll()
                    # raises the refusal (as Kafka's consumer does) instead of returning nothing.
                    state.error = refused.error
                    self._subscription.data_ready.notify_all()
                    continue
                self._needs_metadata = True
                continue
            node, epoch = leader
            if state.next_offset is None:
                queries, generations = reset_by_address.setdefault(node.address, ([], {}))
                queries.append(broker_pb2.PartitionOffsetQuery(topic=tp.topic, partition=tp.partition, timestamp=state.reset_to))
                generations[tp] = state.generation
                state.is_resetting = True
                continue
            if state.is_paused or state.buffered_bytes >= self._settings.partition_max_bytes:
                continue
            if node.node_id in self._fetching_nodes:
                continue
            entry = fetch_by_node.setdefault(node.node_id, (node.address, [], {}))
            entry[1].append(
                broker_pb2.PartitionFetch(
                    topic=tp.topic,
                    partition=tp.partition,
                    fetch_offset=state.fetch_offset,
                    partition_max_bytes=self._settings.partition_max_bytes,
                    current_leader_epoch=epoch,
                )
            )
            entry[2][tp] = state.generation
        fetches = [self._fetch_request(node_id, *entry) for node_id, entry in fetch_by_node.items()]
        resets = [
            (address, broker_pb2.ListOffsetsRequest(partitions=queries), generations)
            for address, (queries, generations) in reset_by_address.items()
        ]
        return fetches, resets, next_s

    def _fetch_request(self, node_id: int, address: str, partitions: list, generations: dict) -> tuple:
        """One planned Fetch: marks its partitions and node as fetching. Lock held."""
        for tp in generations:
            self._subscription.states[tp].is_fetching = True
        self._fetching_nodes.add(node_id)
        settings = self._settings
        request = broker_pb2.FetchRequest(
            max_wait_ms=settings.max_wait_ms,
            min_bytes=settings.min_bytes,
            max_bytes=settings.max_bytes,
            partitions=partitions,
            client_id=settings.client_id,
        )
        return address, request, node_id, generations

    def _send_fetch(self, address: str, request, node_id: int, generations: dict) -> None:
        timeout_s = request.max_wait_ms / 1000 + self._settings.request_timeout_s
        try:
            future = self._transport.stub(address).Fetch.future(request, timeout=timeout_s)
        except ValueError as error:  # the channel closed: the consumer is closing
            self._post(("fetch", address, node_id, generations, None, error))
            return
        with self._subscription.lock:
            self._fetch_calls[node_id] = (future, set(generations))
            # The broker may rightly park the fetch for max_wait_ms: stalled only past that.
            stall_at_s = time.monotonic() + request.max_wait_ms / 1000 + self._settings.stalled_s
            self._stall_at[node_id] = (address, stall_at_s)
            # A seek that came between planning and now could not cancel what did not exist yet.
            states = self._subscription.states
            is_interrupted = node_id in self._interrupted_nodes or any(
                tp not in states or states[tp].generation != generation for tp, generation in generations.items()
            )
            self._interrupted_nodes.discard(node_id)
        future.add_done_callback(lambda done: self._post(("fetch", address, node_id, generations, done, None)))
        if is_interrupted:
            future.cancel()

    def _check_stalled(self) -> float:
        """Cancel stalled fetches whose partitions moved; suspect their brokers. Returns seconds
        until the next check is due."""
        now = time.monotonic()
        view = self._metadata.view
        next_s = MAX_IDLE_S
        moved: list[grpc.Future] = []
        suspects: list[str] = []
        with self._subscription.lock:
            for node_id, (future, tps) in self._fetch_calls.items():
                address, stall_at_s = self._stall_at[node_id]
                if now < stall_at_s:
                    next_s = min(next_s, stall_at_s - now)
                    continue
                for tp in tps:
                    leader = view.leader(tp.topic, tp.partition)
                    if leader is not None and leader[0].node_id != node_id:
                        logger.info("fetch from %s stalled and %s moved to broker %d: fetching there", address, tp, leader[0].node_id)
                        moved.append(future)
                        break
                else:
                    suspects.append(address)
        if suspects:
            if now >= self._next_stall_recheck_s:
                self._next_stall_recheck_s = now + STALL_RECHECK_S
                for address in suspects:
                    self._metadata.suspect(address)
                self._metadata.request_update()
            next_s = min(next_s, max(self._next_stall_recheck_s - now, 0.001))
        for future in moved:
            future.cancel()  # _on_fetch releases its partitions; _plan sends them to the new leader
        return next_s

    def interrupt(self, partitions: Iterable[TopicPartition] | None) -> None:
        """Cancel outstanding long polls that hold up these partitions (all when None).

        A seek, a new assignment or a resume would otherwise wait for a parked fetch to return
        (up to fetch_max_wait_ms) before the partition is fetched from its new position.
        """
        view = self._metadata.view
        with self._subscription.lock:
            if partitions is None:
                nodes = set(self._fetching_nodes)
                calls = [future for future, _ in self._fetch_calls.values()]
            else:
                wanted = set(partitions)
                nodes = set()
                for tp in wanted:
                    leader = view.leader(tp.topic, tp.partition)
                    if leader is not None:
                        nodes.add(leader[0].node_id)
                calls = [
                    future
                    for node_id, (future, tps) in self._fetch_calls.items()
                    if node_id in nodes or tps & wanted
                ]
            # Fetches planned but not started yet are cancelled by _send_fetch when they start.
            self._interrupted_nodes |= {
                node_id for node_id in nodes if node_id in self._fetching_nodes and node_id not in self._fetch_calls
            }
        for future in calls:
            future.cancel()

    def _send_reset(self, address: str, request, generations: dict) -> None:
        try:
            future = self._transport.stub(address).ListOffsets.future(request, timeout=self._settings.request_timeout_s)
        except ValueError as error:
            self._post(("reset", address, generations, None, error))
            return
        future.add_done_callback(lambda done: self._post(("reset", address, generations, done, None)))

    def _handle_event(self, event: tuple) -> None:
        if event[0] == "fetch":
            self._on_fetch(*event[1:])
        else:
            self._on_reset(*event[1:])

    @staticmethod
    def _outcome(future, failure, address: str, what: str):
        """(response, None) or (None, FreshetError) of a finished call."""
        if future is None:
            return None, UnknownServerError(f"{what} on {address} could not start: {failure}")
        try:
            return future.result(), None
        except grpc.RpcError as rpc_error:
            return None, translate_rpc_error(rpc_error, address, what)
        except grpc.FutureCancelledError:
            return None, UnknownServerError(f"{what} on {address} was cancelled")

    # =============================================================================================
    # Answers (fetcher thread, lock held).

    def _release_fetching(self, generations: dict, retry_at_s: float | None = None) -> None:
        """Partitions of a finished Fetch may be fetched again (after `retry_at_s`). Lock held."""
        for tp, generation in generations.items():
            state = self._subscription.states.get(tp)
            if state is not None and state.generation == generation:
                state.is_fetching = False
                if retry_at_s is not None:
                    state.retry_at_s = retry_at_s

    def _on_fetch(self, address: str, node_id: int, generations: dict, future, failure) -> None:
        """Buffer a fetch response's batches. Lock held."""
        self._fetching_nodes.discard(node_id)
        if node_id in self._fetch_calls and self._fetch_calls[node_id][0] is future:
            del self._fetch_calls[node_id]
            del self._stall_at[node_id]
        now = time.monotonic()
        if future is not None and future.cancelled():
            # We cut the long poll short (a seek or an assignment): fetch again at once.
            self._release_fetching(generations)
            return
        response, error = self._outcome(future, failure, address, "Fetch")
        self.metrics["fetch_total"] += 1
        if error is not None:
            logger.info("fetch from %s failed: %s", address, error)
            self._needs_metadata = True
            self._release_fetching(generations, now + self._settings.backoff_s)
            return
        is_new_data = False
        for result in response.results:
            tp = TopicPartition(result.topic, result.partition)
            state = self._subscription.states.get(tp)
            if state is None or generations.get(tp) != state.generation:
                continue
            state.is_fetching = False
            if result.error.code != common_pb2.NONE:
                # The description is built only for a failure, not for every partition fetched.
                partition_error = error_from_detail(result.error, f"fetch {tp} from {address}")
                assert partition_error is not None
                self._on_fetch_error(state, partition_error, now)
                continue
            is_new_data = self._buffer(state, result) or is_new_data
        # Partitions the broker did not answer for are fetched again.
        self._release_fetching(generations)
        if is_new_data:
            self._subscription.data_ready.notify_all()

    def _buffer(self, state: PartitionState, result: broker_pb2.PartitionFetchResult) -> bool:
        """Buffer one partition's fetched batches; True when poll() has something new. Lock held."""
        state.high_watermark = result.high_watermark
        state.log_start_offset = result.log_start_offset
        data = result.records
        if not data:
            return False
        self.metrics["bytes_fetched_total"] += len(data)
        is_new_data = False
        try:
            for header, view in iter_batches(data):
                if header.base_offset + header.last_offset_delta < state.fetch_offset:
                    continue
                state.batches.append((header, view))
                state.buffered_bytes += len(view)
                state.fetch_offset = header.base_offset + header.last_offset_delta + 1
                is_new_data = True
        except storage_errors.CorruptRecordError as corrupt:
            state.error = CorruptRecordError(
                f"{state.tp}: a fetched batch near offset {state.fetch_offset} is malformed ({corrupt}); "
                f"seek past it to continue",
                topic_partition=state.tp,
                offset=state.fetch_offset,
            )
            is_new_data = True
        return is_new_data

    def _on_fetch_error(self, state: PartitionState, error: FreshetError, now: float) -> None:
        tp = state.tp
        if isinstance(error, OffsetOutOfRangeError):
            if self._subscription.reset_default is None:
                state.error = OffsetOutOfRangeError(
                    f"offset {state.fetch_offset} of {tp} is out of range [{error.log_start_offset}, "
                    f"{error.log_end_offset}) and auto_offset_reset is 'none': seek() to continue",
                    log_start_offset=error.log_start_offset,
                    log_end_offset=error.log_end_offset,
                    topic_partition=tp,
                )
                self._subscription.data_ready.notify_all()
                return
            logger.info("%s: offset %s out of range, resetting to %s", tp, state.fetch_offset, self._settings.auto_offset_reset)
            state.reset(self._subscription.reset_default)
            return
        if error.retriable or error.code == common_pb2.UNKNOWN_SERVER_ERROR:
            if isinstance(error, InvalidMetadataError) or error.code == common_pb2.UNKNOWN_LEADER_EPOCH:
                self._needs_metadata = True
                if error.leader is not None:
                    self._leader_hints.append((tp, error.leader, error.leader_epoch))
            logger.debug("fetch %s: %s; retrying", tp, error)
            state.retry_at_s = now + self._settings.backoff_s
            return
        if isinstance(error, RecordTooLargeError | CorruptRecordError):
            error.topic_partition = tp
        state.error = error
        self._subscription.data_ready.notify_all()

    def _on_reset(self, address: str, generations: dict, future, failure) -> None:
        """Apply ListOffsets answers for partitions being reset. Lock held."""
        response, error = self._outcome(future, failure, address, "ListOffsets")
        now = time.monotonic()
        answered = {}
        if response is not None:
            answered = {TopicPartition(r.topic, r.partition): r for r in response.results}
        for tp, generation in generations.items():
            state = self._subscription.states.get(tp)
            if state is None or state.generation != generation:
                continue
            state.is_resetting = False
            result = answered.get(tp)
            partition_error = error
            if partition_error is None:
                partition_error = (
                    error_from_detail(result.error, f"ListOffsets for {tp} on {address}")
                    if result is not None
                    else UnknownServerError(f"ListOffsets on {address} did not answer for {tp}")
                )
            if partition_error is not None:
                if partition_error.retriable or partition_error.code == common_pb2.UNKNOWN_SERVER_ERROR:
                    self._needs_metadata = True
                    state.retry_at_s = now + self._settings.backoff_s
                else:
                    state.error = partition_error
                    self._subscription.data_ready.notify_all()
                continue
            state.next_offset = result.offset
            state.fetch_offset = result.offset
            state.reset_to = None
            self._subscription.data_ready.notify_all()
