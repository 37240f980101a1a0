"""The producer's sender thread: drains batches to partition leaders over ProduceStream, with retries.

Owns everything between the accumulator and the brokers:

- one `ProduceStream` per broker (`ProduceStream` RPC): requests are written in order and carry a
  correlation id; at most `max_in_flight` wait for their response. Each request carries at most one
  batch per partition, for every partition of that leader that is ready, up to `max_request_size`.
  A broken stream (the broker died, or a response took longer than `request_timeout_ms`, which
  cancels the stream as Kafka closes the connection) fails all of its requests at once;
- stalled leaders (issue 16): while a request has waited longer than `stalled_request_ms`, its
  broker is suspected (`Metadata.suspect`: refreshes ask the others first) and metadata is refreshed
  every `_STALL_RECHECK_S`; once the view names another leader for a partition in one of its
  requests, the stream is abandoned as if it had timed out (outcome unknown, retriable) and its
  batches go to the new leader with the same producer id and sequence numbers, so a SIGSTOPped or
  cut-off leader costs about the controller's session timeout, not `request_timeout_ms`;
- readiness (Kafka's RecordAccumulator.ready): a partition's first batch is sent when it is full,
  older than `linger_ms`, not the last batch of its queue, being retried, or when a flush, a close
  or a thread waiting for buffer space asks for everything now;
- retries: a retriable error puts the batch back at the head of its queue, in sequence order, for a
  new attempt after `retry_backoff_ms`, refreshing metadata for NOT_LEADER and friends (the new
  leader a NOT_LEADER names is used at once when its epoch is newer);
  `delivery_timeout_ms` after a batch was created it fails with DeliveryTimeoutError instead;
- idempotence (Kafka's TransactionManager without transactions): a producer id from
  `InitProducerId`; per partition a sequence number assigned when a batch is first drained and
  kept by its retries, so the leader recognises a retry of a batch it already appended (DUPLICATE,
  original offsets). Ordering rules, per partition:
    * while the broker has not yet acknowledged a batch of ours (it accepts any first sequence from
      a producer it does not know), only one batch is in flight;
    * a batch being retried is sent alone: newer batches wait until it is acknowledged, so a
      retry can never land behind them (Kafka limits a retrying partition to one in flight too);
    * OUT_OF_ORDER_SEQUENCE for a batch behind an unresolved earlier batch means "the earlier one
      is missing": retried in order. With no earlier batch unresolved, it means the broker lost
      acknowledged records: the batch fails with OutOfOrderSequenceError;
    * when a batch that had a sequence fails for good (expired, or a non-retriable error), its
      partition's sequence has a hole: once the partition has nothing in flight, it moves to a
      fresh producer id and its queued batches are renumbered from 0 (Kafka bumps the epoch;
      `InitProducerId` here always hands out a new id instead). Queued batches that a broker may
      already hold (an attempt ended without an answer) are failed with DeliveryTimeoutError rather
      than renumbered when the failed batch itself may have been written: renumbering them could
      write them twice.
  At most 5 requests are in flight per broker, each with at most one batch per partition, so every
  possible retry is among the 5 batches per producer the leader remembers.

Imports: grpc, `freshet.v1`, `freshet.storage.record_batch`, `freshet.storage.errors`, `freshet.client`.
Forbidden: server, metadata, cli, pysyncobj, and storage beyond record_batch, compression
and errors (import-linter contracts).

Layout: the producer id and the per-partition sequence state live in `_idempotence.py`
(`ProducerIdManager`, `PartitionState`); the Sender consults it before draining a partition.

Thread-safety: `Sender` runs one thread that owns the streams, partition states, in-flight
requests and metrics; other threads only post events (`post_event`) and read `metrics()`.
Queues in the accumulator are touched only under the accumulator lock.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

import grpc
from freshet.client._accumulator import ProducerBatch, RecordAccumulator
from freshet.client._idempotence import PartitionState, ProducerIdManager
from freshet.client._metadata import Metadata
from freshet.client._transport import Transport, error_from_detail, translate_rpc_error
from freshet.client.errors import (
    AuthorizationError,
    BrokerUnavailableError,
    DeliveryTimeoutError,
    FreshetError,
    InvalidMetadataError,
    InvalidRecordError,
    OutOfOrderSequenceError,
    ProducerClosedError,
    RecordTooLargeError,
    RequestTimedOutError,
    UnknownProducerIdError,
    UnknownServerError,
    UnsupportedCompressionTypeError,
)
from freshet.storage import errors as storage_errors
from freshet.storage.record_batch import encode_batch, increment_sequence
from freshet.v1 import broker_pb2, common_pb2

logger = logging.getLogger("freshet.client.producer")

# Per-partition error codes after which the broker may hold the batch even though it said no.
_OUTCOME_UNKNOWN_CODES = frozenset(
    {
        common_pb2.REQUEST_TIMED_OUT,
        common_pb2.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        common_pb2.UNKNOWN_SERVER_ERROR,
    }
)
# Longest the sender sleeps with nothing to do; also bounds how late a periodic check runs.
_MAX_IDLE_S = 0.5
# While a request is stalled: how often metadata is refreshed to see whether its leader moved.
_STALL_RECHECK_S = 0.25


class _InFlightRequest:
    """One ProduceRequest awaiting its response. Sender thread only."""

    __slots__ = ("correlation_id", "batches", "sent_s", "deadline_s")

    def __init__(self, correlation_id: int, batches: list[ProducerBatch], sent_s: float, deadline_s: float):
        self.correlation_id = correlation_id
        self.batches = batches
        self.sent_s = sent_s
        self.deadline_s = deadline_s


class _ProduceStream:
    """One ProduceStream call to one broker.

    The sender thread writes requests (`send`) and owns `in_flight`; a reader thread turns
    responses and the stream's end into sender events. Not thread-safe beyond that split.
    """

    def __init__(self, node_id: int, address: str, transport: Transport, sender: Sender) -> None:
        self.node_id = node_id
        self.address = address
        self.in_flight: dict[int, _InFlightRequest] = {}
        self.is_closing = False
        #: Set before cancelling: why we gave up on the stream (else the RPC's own error is used).
        self.close_error: FreshetError | None = None
        self._sender = sender
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._call = transport.stub(address).ProduceStream(self._request_iterator())
        self._reader = threading.Thread(
            target=self._read, name=f"freshet-produce-stream-{node_id}", daemon=True
        )
        self._reader.start()

    def _request_iterator(self) -> Iterator[broker_pb2.ProduceRequest]:
        # Consumed by a gRPC thread; None ends the stream (half-close).
        while True:
            request = self._requests.get()
            if request is None:
                return
            yield request

    def _read(self) -> None:
        try:
            for response in self._call:
                self._sender.post_event(("response", self, response))
            error: FreshetError = BrokerUnavailableError(f"broker {self.address} ended the produce stream")
        except grpc.RpcError as rpc_error:
            error = translate_rpc_error(rpc_error, self.address, "produce stream")
        except Exception as unexpected:  # never let the sender wait forever for a dead reader
            logger.exception("produce stream reader for %s failed", self.address)
            error = UnknownServerError(f"produce stream to {self.address} failed: {unexpected!r}")
        finally:
            self._requests.put(None)
        self._sender.post_event(("closed", self, error))

    def send(self, request: broker_pb2.ProduceRequest) -> None:
        self._requests.put(request)

    @property
    def unsent_requests(self) -> int:
        """Requests written but not yet taken by gRPC (approximate: another thread takes them)."""
        return self._requests.qsize()

    def finish(self, timeout_s: float) -> None:
        """End the stream gracefully: requests already queued still go out (acks=0 needs that)."""
        self.is_closing = True
        self._requests.put(None)
        self._reader.join(timeout_s)
        if self._reader.is_alive():
            self._call.cancel()

    def abort(self, error: FreshetError) -> None:
        """Give up on the stream: its in-flight requests fail with `error` when the reader stops."""
        if self.is_closing:
            return
        self.is_closing = True
        self.close_error = error
        self._requests.put(None)
        self._call.cancel()


class Sender:
    """The producer's background thread (see the module docstring). Thread-safe entry points:
    `post_event`, `start`, `initiate_close`, `force_close`, `join`, `metrics`.
    """

    def __init__(
        self,
        *,
        accumulator: RecordAccumulator,
        metadata: Metadata,
        transport: Transport,
        client_id: str,
        acks: int,
        linger_ms: int,
        max_in_flight: int,
        max_request_size: int,
        retries: int,
        retry_backoff_ms: int,
        delivery_timeout_ms: int,
        request_timeout_ms: int,
        stalled_request_ms: int,
        is_idempotent: bool,
        compression: int,
        compression_level: int | None,
        on_exit: Callable[[], None],
    ) -> None:
        self._accumulator = accumulator
        self._on_exit = on_exit
        self._metadata = metadata
        self._transport = transport
        self._client_id = client_id
        self._acks = acks
        self._linger_s = linger_ms / 1000
        self._max_in_flight = max_in_flight
        self._max_request_size = max_request_size
        self._retries = retries
        self._backoff_s = retry_backoff_ms / 1000
        self._delivery_timeout_ms = delivery_timeout_ms
        self._delivery_timeout_s = delivery_timeout_ms / 1000
        self._request_timeout_ms = request_timeout_ms
        self._request_timeout_s = request_timeout_ms / 1000
        self._stalled_s = stalled_request_ms / 1000
        self._next_stall_recheck_s = 0.0
        self._is_idempotent = is_idempotent
        self._compression = compression
        self._compression_level = compression_level
        self._events: deque = deque()
        self._streams: dict[int, _ProduceStream] = {}
        self._closing_streams: list[_ProduceStream] = []
        self._partitions: dict[tuple[str, int], PartitionState] = {}
        self._correlation_ids = itertools.count(1)
        self._drain_start = 0
        self._is_forced = False
        self._metrics = _new_metrics()
        self._producer_ids = ProducerIdManager(
            accumulator=accumulator,
            metadata=metadata,
            transport=transport,
            client_id=client_id,
            request_timeout_s=self._request_timeout_s,
            backoff_s=self._backoff_s,
            post_event=self.post_event,
            post_locked=self._post_locked,
            metrics=self._metrics,
        )
        self._latency_total_s = 0.0
        self._latency_count = 0
        self._thread = threading.Thread(target=self._run, name="freshet-producer-sender", daemon=True)
        metadata.add_listener(accumulator.wake_sender)

    # ---------------------------------------------------------------------------------------------
    # Thread-safe entry points.

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def start(self) -> None:
        self._thread.start()

    def post_event(self, event: tuple) -> None:
        """Hand an event (response, stream end, producer id) to the sender thread."""
        with self._accumulator.lock:
            self._post_locked(event)

    def _post_locked(self, event: tuple) -> None:
        """post_event for a caller holding the accumulator lock."""
        self._events.append(event)
        self._accumulator.wake_sender_locked()

    def force_close(self) -> None:
        """Fail everything still undelivered with ProducerClosedError and stop."""
        with self._accumulator.lock:
            self._is_forced = True
            self._accumulator.wake_sender_locked()

    def metrics(self) -> dict[str, float]:
        """A copy of the sender's counters (written by the sender thread only)."""
        return dict(self._metrics)

    # ---------------------------------------------------------------------------------------------
    # The loop.

    def _run(self) -> None:
        accumulator = self._accumulator
        try:
            while True:
                with accumulator.lock:
                    accumulator.sender_needs_run = False
                    events = self._events
                    self._events = deque()
                    is_forced = self._is_forced
                    is_finished = accumulator.is_closed and not accumulator.incomplete and not events
                if is_forced:
                    self._abort_everything(ProducerClosedError("the producer was closed before delivery"))
                    return
                if is_finished:
                    return
                for event in events:
                    self._handle_event(event)
                now = time.monotonic()
                wait_s = min(self._metadata.maybe_refresh(), _MAX_IDLE_S)
                self._expire_batches(now)
                if self._is_idempotent:
                    self._producer_ids.maybe_request(now)
                next_wake_s = self._drain_and_send(now)
                # After sending, so the deadlines of the requests just sent count too.
                next_wake_s = min(next_wake_s, self._check_request_timeouts(time.monotonic()))
                wait_s = min(wait_s, next_wake_s - time.monotonic())
                with accumulator.lock:
                    is_finished = accumulator.is_closed and not accumulator.incomplete
                    if not accumulator.sender_needs_run and not self._events and not is_finished and wait_s > 0:
                        accumulator.sender_wakeup.wait(wait_s)
        except BaseException:
            logger.exception("the producer's sender thread failed")
            with accumulator.lock:
                accumulator.is_closed = True  # nothing would send new records: refuse them
            self._abort_everything(UnknownServerError("the producer's sender thread failed; see the log"))
            raise
        finally:
            for stream in list(self._streams.values()):
                stream.finish(min(self._request_timeout_s, 5.0))
            for stream in self._closing_streams:
                stream.abort(ProducerClosedError("the producer is closed"))
            self._on_exit()

    def _handle_event(self, event: tuple) -> None:
        kind = event[0]
        if kind == "response":
            self._on_response(event[1], event[2])
        elif kind == "closed":
            self._on_stream_closed(event[1], event[2])
        elif kind == "producer_id":
            self._producer_ids.on_producer_id(event[1], event[2], event[3])
            if isinstance(self._producer_ids.error, AuthorizationError):
                self._fail_unsent(self._producer_ids.error)
        elif kind == "fail_batches":
            for batch in event[1]:
                error = DeliveryTimeoutError(
                    f"{batch.topic}-{batch.partition}: outcome unknown: an earlier batch of the partition "
                    "failed while the broker may have written it, so this batch, which may be written "
                    "too, cannot be renumbered and resent without risking a duplicate"
                )
                error.__cause__ = batch.last_error
                self._fail_batch(batch, error)
        else:  # pragma: no cover - a programming error
            raise AssertionError(f"unknown sender event {kind!r}")

    # ---------------------------------------------------------------------------------------------
    # Draining.

    def _drain_and_send(self, now: float) -> float:
        """Send every ready batch the in-flight limits allow; return when to look again."""
        accumulator = self._accumulator
        view = self._metadata.view
        next_wake = now + _MAX_IDLE_S
        by_node: dict[int, list[ProducerBatch]] = {}
        node_bytes: dict[int, int] = {}
        nodes = {}
        needs_metadata = False
        linger_s = self._linger_s
        batch_size = accumulator.batch_size
        is_idempotent = self._is_idempotent
        with accumulator.lock:
            is_urgent = (
                accumulator.flushes_in_progress > 0 or accumulator.is_closed or accumulator.waiting_threads > 0
            )
            items = list(accumulator.queues.items())
            if not items:
                return next_wake
            # Start where the last drain stopped, so no partition is always last (Kafka's drainIndex).
            start = self._drain_start % len(items)
            self._drain_start += 1
            for key, batches in items[start:] + items[:start]:
                if not batches:
                    continue
                batch = batches[0]
                if batch.retry_at_s > now:
                    next_wake = min(next_wake, batch.retry_at_s)
                    continue
                if not (
                    is_urgent
                    or batch.is_closed
                    or len(batches) > 1
                    or batch.size_bytes >= batch_size
                    or now - batch.created_s >= linger_s
                ):
                    next_wake = min(next_wake, batch.created_s + linger_s)
                    continue
                leader = view.leader(*key)
                if leader is None:
                    needs_metadata = True
                    continue
                node = leader[0]
                node_id = node.node_id
                stream = self._streams.get(node_id)
                in_flight = 0
                if stream is not None:
                    if stream.is_closing:
                        continue
                    # Requests gRPC has not taken yet count too: with acks=0 nothing else bounds them.
                    in_flight = len(stream.in_flight) or stream.unsent_requests
                if in_flight + (1 if node_id in by_node else 0) >= self._max_in_flight:
                    continue
                state = self._partitions.get(key)
                if state is not None and state.in_flight and state.in_flight_node != node_id:
                    continue  # still in flight to a previous leader: keep the partition's order
                if is_idempotent and not self._producer_ids.may_send(key, state, batch):
                    continue
                if node_id in by_node and node_bytes[node_id] + batch.size_bytes > self._max_request_size:
                    next_wake = now
                    continue
                batches.popleft()
                batch.is_closed = True
                by_node.setdefault(node_id, []).append(batch)
                node_bytes[node_id] = node_bytes.get(node_id, 0) + batch.size_bytes
                nodes[node_id] = node
                if batches:
                    next_wake = now  # more may be ready as soon as this request is out
        if needs_metadata:
            self._metadata.request_update()
        for node_id, batches in by_node.items():
            self._send(nodes[node_id], batches, now)
        return next_wake

    def _send(self, node, batches: list[ProducerBatch], now: float) -> None:
        stream = self._streams.get(node.node_id)
        if stream is not None and stream.address != node.address and not stream.in_flight:
            stream.abort(BrokerUnavailableError(f"broker {node.node_id} moved to {node.address}"))
            self._closing_streams.append(stream)
            del self._streams[node.node_id]
            stream = None
        if stream is None:
            try:
                stream = _ProduceStream(node.node_id, node.address, self._transport, self)
            except ValueError as error:  # the channel was closed under us: the producer is closing
                for batch in batches:
                    self._on_batch_error(batch, BrokerUnavailableError(str(error)), maybe_written=False)
                return
            self._streams[node.node_id] = stream
        records = []
        sent: list[ProducerBatch] = []
        for batch in batches:
            key = (batch.topic, batch.partition)
            state = self._partitions.get(key)
            if state is None:
                state = self._partitions[key] = self._producer_ids.new_partition_state()
            if not self._encode(batch, state):
                continue
            records.append(
                broker_pb2.PartitionRecords(topic=batch.topic, partition=batch.partition, records=batch.encoded)
            )
            batch.attempts += 1
            sent.append(batch)
        if not sent:
            return
        correlation_id = next(self._correlation_ids)
        request = broker_pb2.ProduceRequest(
            acks=self._acks,
            # The broker gives up waiting for its ISR a little before we give up on the stream, so a
            # slow ISR costs one REQUEST_TIMED_OUT result, not every request on the stream.
            timeout_ms=max(1, self._request_timeout_ms * 9 // 10),
            partitions=records,
            client_id=self._client_id,
            correlation_id=correlation_id,
        )
        if self._acks == 0:
            stream.send(request)
            self._metrics["request_total"] += 1
            for batch in sent:
                self._on_batch_success(batch, -1, -1)
            return
        for batch in sent:
            state = self._partitions[(batch.topic, batch.partition)]
            state.in_flight += 1
            state.in_flight_node = node.node_id
        stream.in_flight[correlation_id] = _InFlightRequest(
            correlation_id, sent, now, now + self._request_timeout_s
        )
        stream.send(request)
        self._metrics["request_total"] += 1

    def _encode(self, batch: ProducerBatch, state: PartitionState) -> bool:
        """Number (idempotence) and encode a batch the first time it is sent; False if it failed."""
        if batch.encoded is not None:
            return True
        sequence = -1
        if self._is_idempotent:
            if batch.base_sequence < 0:
                sequence = state.next_sequence
            else:
                sequence = batch.base_sequence
        try:
            encoded = encode_batch(
                batch.records,
                compression=self._compression,
                compression_level=self._compression_level,
                producer_id=state.producer_id if self._is_idempotent else -1,
                producer_epoch=state.producer_epoch if self._is_idempotent else -1,
                base_sequence=sequence,
            )
        except storage_errors.StorageError as error:
            self._fail_batch(batch, _client_error(error, batch))
            return False
        batch.encoded = bytes(encoded)
        if self._is_idempotent and batch.base_sequence < 0:
            batch.base_sequence = sequence
            batch.producer_id = state.producer_id
            batch.producer_epoch = state.producer_epoch
            state.next_sequence = increment_sequence(sequence, len(batch.records))
            state.unresolved.append(batch)
        return True

    # ---------------------------------------------------------------------------------------------
    # Responses.

    def _on_response(self, stream: _ProduceStream, response: broker_pb2.ProduceResponse) -> None:
        request = stream.in_flight.pop(response.correlation_id, None)
        if request is None:
            return  # acks=0 responses, or a request already failed with its stream
        latency_s = time.monotonic() - request.sent_s
        self._latency_total_s += latency_s
        self._latency_count += 1
        metrics = self._metrics
        metrics["request_latency_avg_ms"] = self._latency_total_s / self._latency_count * 1000
        metrics["request_latency_max_ms"] = max(metrics["request_latency_max_ms"], latency_s * 1000)
        results = {(result.topic, result.partition): result for result in response.results}
        for batch in request.batches:
            key = (batch.topic, batch.partition)
            self._partitions[key].in_flight -= 1
            result = results.get(key)
            code = None if result is None else result.error.code
            if code == common_pb2.NONE:
                self._on_batch_success(batch, result.base_offset, result.log_append_time_ms)
                continue
            if code == common_pb2.DUPLICATE_SEQUENCE:
                # Written before, but older than the batches the broker remembers: offsets unknown.
                self._on_batch_success(batch, -1, -1)
                continue
            # Only a failure needs the description: not built for every batch acknowledged.
            where = f"produce to {batch.topic}-{batch.partition} on {stream.address}"
            if result is None:
                self._on_batch_error(
                    batch,
                    RequestTimedOutError(f"{where}: the response has no result for the partition"),
                    maybe_written=True,
                )
            else:
                error = error_from_detail(result.error, where)
                assert error is not None
                self._on_batch_error(batch, error, maybe_written=code in _OUTCOME_UNKNOWN_CODES)

    def _on_stream_closed(self, stream: _ProduceStream, error: FreshetError) -> None:
        if self._streams.get(stream.node_id) is stream:
            del self._streams[stream.node_id]
        if stream in self._closing_streams:
            self._closing_streams.remove(stream)
        error = stream.close_error or error
        requests = list(stream.in_flight.values())
        stream.in_flight.clear()
        if requests:
            logger.info("produce stream to %s ended with %d requests in flight: %s", stream.address, len(requests), error)
            self._metadata.request_update()
        for request in requests:
            for batch in request.batches:
                self._partitions[(batch.topic, batch.partition)].in_flight -= 1
                self._on_batch_error(batch, error, maybe_written=True)

    def _on_batch_success(self, batch: ProducerBatch, base_offset: int, log_append_time_ms: int) -> None:
        if self._is_idempotent and batch.base_sequence >= 0:
            state = self._partitions[(batch.topic, batch.partition)]
            if batch.producer_id == state.producer_id:
                state.is_confirmed = True
                if batch in state.unresolved:
                    state.unresolved.remove(batch)
        metrics = self._metrics
        metrics["record_send_total"] += len(batch.records)
        metrics["batch_send_total"] += 1
        metrics["byte_send_total"] += len(batch.encoded or b"")
        self._accumulator.complete(batch, base_offset, log_append_time_ms)

    def _on_batch_error(self, batch: ProducerBatch, error: FreshetError, *, maybe_written: bool) -> None:
        if batch.is_done:
            return
        batch.last_error = error
        if maybe_written:
            batch.maybe_written = True
        is_retriable = error.retriable
        key = (batch.topic, batch.partition)
        state = self._partitions.get(key)
        if self._is_idempotent and state is not None and batch.base_sequence >= 0:
            if isinstance(error, OutOfOrderSequenceError):
                # Retriable when an earlier batch is missing on the broker (it is being retried or
                # renumbered); otherwise the broker lost records we had written.
                is_retriable = (
                    state.needs_reset
                    or batch.producer_id != state.producer_id
                    or (bool(state.unresolved) and state.unresolved[0] is not batch)
                )
            elif isinstance(error, UnknownProducerIdError):
                # The broker forgot us (our records were all deleted): renumber under a fresh id.
                if batch.producer_id == state.producer_id:
                    state.needs_reset = True
                is_retriable = True
        if isinstance(error, InvalidMetadataError):
            self._metadata.apply_leader_hint(batch.topic, batch.partition, error.leader, error.leader_epoch)
            self._metadata.request_update()
        now = time.monotonic()
        is_expired = now - batch.created_s >= self._delivery_timeout_s
        if is_retriable and not is_expired and batch.attempts <= self._retries:
            batch.retry_at_s = now + self._backoff_s
            self._metrics["record_retry_total"] += len(batch.records)
            with self._accumulator.lock:
                self._accumulator.reenqueue_locked(batch)
                self._accumulator.wake_sender_locked()
            return
        if is_retriable and is_expired:
            final: FreshetError = DeliveryTimeoutError(
                f"expiring {len(batch.records)} record(s) for {batch.topic}-{batch.partition}: "
                f"{self._delivery_timeout_ms} ms has passed since batch creation; last error: {error}"
            )
            final.__cause__ = error
        else:
            final = error
        self._fail_batch(batch, final)

    def _fail_unsent(self, error: AuthorizationError) -> None:
        """Fail every queued batch never sent (it waits for a producer id) with `error` now.

        A principal without IdempotentWrite on the cluster (or Write on some topic) is refused a
        producer id. Retrying cannot help, so waiting delivery_timeout_ms for it only hides the
        reason; Kafka's producer makes the same refusal fatal. Unlike Kafka, a later send asks
        again (after an `acl add` it succeeds without a new producer).
        """
        with self._accumulator.lock:
            unsent = [batch for queue in self._accumulator.queues.values() for batch in queue if batch.base_sequence < 0]
            for queue in self._accumulator.queues.values():
                kept = [batch for batch in queue if batch.base_sequence >= 0]
                queue.clear()
                queue.extend(kept)
            for batch in unsent:
                batch.is_closed = True
        for batch in unsent:
            self._fail_batch(batch, error)

    def _fail_batch(self, batch: ProducerBatch, error: FreshetError) -> None:
        if self._is_idempotent and batch.base_sequence >= 0:
            state = self._partitions.get((batch.topic, batch.partition))
            if state is not None and batch.producer_id == state.producer_id and batch in state.unresolved:
                state.unresolved.remove(batch)
                state.needs_reset = True
                state.hole_maybe_written = state.hole_maybe_written or batch.maybe_written
        self._metrics["record_error_total"] += len(batch.records)
        self._accumulator.fail(batch, error)

    # ---------------------------------------------------------------------------------------------
    # Timeouts.

    def _check_request_timeouts(self, now: float) -> float:
        """Abort streams whose oldest request is past request_timeout_ms, or stalled on a broker
        that no longer leads one of its partitions; return the next deadline."""
        next_deadline = now + _MAX_IDLE_S
        for stream in list(self._streams.values()):
            if not stream.in_flight or stream.is_closing:
                continue
            oldest = next(iter(stream.in_flight.values()))
            if oldest.deadline_s <= now:
                self._abandon(
                    stream,
                    RequestTimedOutError(
                        f"no produce response from {stream.address} within request_timeout_ms "
                        f"({self._request_timeout_ms} ms); outcome unknown"
                    ),
                )
                continue
            next_deadline = min(next_deadline, oldest.deadline_s)
            stalled_at_s = oldest.sent_s + self._stalled_s
            if stalled_at_s > now:
                next_deadline = min(next_deadline, stalled_at_s)
                continue
            moved = self._moved_partition(stream)
            if moved is not None:
                self._abandon(stream, moved)
                continue
            if now >= self._next_stall_recheck_s:
                self._next_stall_recheck_s = now + _STALL_RECHECK_S
                self._metadata.suspect(stream.address)
                self._metadata.request_update()
            next_deadline = min(next_deadline, self._next_stall_recheck_s)
        return next_deadline

    def _moved_partition(self, stream: _ProduceStream) -> BrokerUnavailableError | None:
        """The error abandoning `stream` when the view has another leader for one of its batches."""
        view = self._metadata.view
        for request in stream.in_flight.values():
            for batch in request.batches:
                leader = view.leader(batch.topic, batch.partition)
                if leader is not None and leader[0].node_id != stream.node_id:
                    waited_ms = int((time.monotonic() - request.sent_s) * 1000)
                    return BrokerUnavailableError(
                        f"{batch.topic}-{batch.partition} moved from broker {stream.node_id} to "
                        f"{leader[0].node_id} while a produce request waited {waited_ms} ms on "
                        f"{stream.address}; outcome unknown, resending to the new leader"
                    )
        return None

    def _abandon(self, stream: _ProduceStream, error: FreshetError) -> None:
        """Cancel `stream`; its in-flight batches fail with `error` (retriable) when its reader ends."""
        logger.info("abandoning the produce stream to %s: %s", stream.address, error)
        stream.abort(error)
        self._closing_streams.append(stream)
        del self._streams[stream.node_id]
        self._metrics["stalled_stream_aborts_total"] += not isinstance(error, RequestTimedOutError)

    def _expire_batches(self, now: float) -> None:
        with self._accumulator.lock:
            expired = self._accumulator.expire_locked(now, self._delivery_timeout_s)
        for batch in expired:
            cause = batch.last_error
            message = (
                f"expiring {len(batch.records)} record(s) for {batch.topic}-{batch.partition}: "
                f"{self._delivery_timeout_ms} ms has passed since batch creation"
            )
            if cause is not None:
                message += f"; last error: {cause}"
            elif self._is_idempotent and self._producer_ids.producer_id < 0 and self._producer_ids.error is not None:
                message += f"; no producer id: {self._producer_ids.error}"
                cause = self._producer_ids.error
            elif self._metadata.view.leader(batch.topic, batch.partition) is None:
                message += "; the partition has no known leader"
                cause = self._metadata.last_error
            error = DeliveryTimeoutError(message)
            error.__cause__ = cause
            self._fail_batch(batch, error)

    # ---------------------------------------------------------------------------------------------
    # Shutdown.

    def _abort_everything(self, error: FreshetError) -> None:
        for stream in list(self._streams.values()) + self._closing_streams:
            for request in stream.in_flight.values():
                for batch in request.batches:
                    self._accumulator.fail(batch, error)
            stream.in_flight.clear()
            stream.abort(error)
        with self._accumulator.lock:
            queued = self._accumulator.abort_all_locked()
            leftovers = list(self._accumulator.incomplete)
        for batch in queued + leftovers:
            self._accumulator.fail(batch, error)


def _new_metrics() -> dict[str, float]:
    """The sender's counters, all zero (Kafka's producer metric names, snake_case)."""
    return {
        "record_send_total": 0,
        "record_error_total": 0,
        "record_retry_total": 0,
        "batch_send_total": 0,
        "byte_send_total": 0,
        "request_total": 0,
        "request_latency_avg_ms": 0.0,
        "request_latency_max_ms": 0.0,
        "producer_id_resets_total": 0,
        "stalled_stream_aborts_total": 0,
    }


def _client_error(error: storage_errors.StorageError, batch: ProducerBatch) -> FreshetError:
    where = f"cannot encode a batch for {batch.topic}-{batch.partition}: {error}"
    if isinstance(error, storage_errors.RecordTooLargeError):
        return RecordTooLargeError(where)
    if isinstance(error, storage_errors.UnsupportedCompressionError):
        return UnsupportedCompressionTypeError(where)
    return InvalidRecordError(where)
