"""The producer's record accumulator: per-partition queues of batches, buffer memory, record futures.

Owns what `Producer.send` touches on the hot path and what the sender thread drains:

- one deque of `ProducerBatch` per partition; `send()` appends a record tuple to the last open
  batch of its partition (a new batch when it would pass `batch_size`), so the per-record work is
  a size estimate, a list append and a future; the sender encodes each batch once
  (`encode_batch`, one CRC per batch);
- `buffer_memory` accounting: a record reserves its estimated size until its batch completes;
  `send()` waits up to `max_block_ms` for space and then raises BufferFullError (back-pressure,
  Kafka's BufferPool);
- record futures: one `RecordFuture` per record, all futures of a batch sharing one condition, so a
  batch of N records costs one lock to create and one notify to complete (Kafka's
  FutureRecordMetadata over a per-batch ProduceRequestResult);
- sticky partitioning for records without key or partition (KIP-480), decided under the lock;
- the set of incomplete batches, which `flush()` waits on.

Imports: standard library and `freshet.client` only.
Forbidden: server, metadata, cli, pysyncobj, and storage beyond record_batch, compression
and errors (import-linter contracts).

Thread-safety: `RecordAccumulator` is thread-safe: every method takes its one lock, and `lock` is
shared with the sender, which reads and changes queues only while holding it. A `ProducerBatch`
is owned by whoever removed it from its queue (the sender thread) once drained. Callbacks run on
the thread that completes the batch (the sender thread), never under the lock.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from freshet.client.errors import BufferFullError, FreshetError, ProducerClosedError
from freshet.client.partitioner import StickyPartitioner
from freshet.client.structs import RecordMetadata

logger = logging.getLogger("freshet.client.producer")

#: Batch header bytes, counted against batch_size and buffer_memory once per batch.
BATCH_OVERHEAD_BYTES = 61
#: Upper estimate of a record's framing in a batch: length, attributes, timestamp and offset deltas,
#: key and value lengths, header count (each a small varint). Used for batch_size and memory only.
RECORD_OVERHEAD_BYTES = 22

# concurrent.futures' state names (stable since Python 3.2): a RecordFuture starts RUNNING.
_RUNNING = "RUNNING"
_FINISHED = "FINISHED"

DeliveryCallback = Callable[[RecordMetadata | None, Exception | None], None]


class RecordFuture(concurrent.futures.Future):
    """The future of one record, resolving to RecordMetadata or failing with a FreshetError.

    A `concurrent.futures.Future` in every respect (result, exception, add_done_callback, wait,
    as_completed) except that it starts RUNNING and so cannot be cancelled: once send() returned,
    the record belongs to the producer. All futures of one batch share one condition, which the
    sender holds while it completes the whole batch, so waiters wake once, to a finished future.
    Thread-safe.
    """

    def __init__(self, condition: threading.Condition) -> None:
        # No super().__init__(): that would create a condition per record; this one is the batch's.
        self._condition = condition
        self._state = _RUNNING
        self._result = None
        self._exception = None
        self._waiters = []
        self._done_callbacks = []


class ProducerBatch:
    """Records bound for one partition, sent and acknowledged together.

    Not thread-safe: appended to under the accumulator lock while open, then owned by the sender.
    """

    __slots__ = (
        "topic",
        "partition",
        "records",
        "futures",
        "callbacks",
        "size_bytes",
        "created_s",
        "condition",
        "is_closed",
        "attempts",
        "retry_at_s",
        "base_sequence",
        "producer_id",
        "producer_epoch",
        "encoded",
        "maybe_written",
        "last_error",
        "is_done",
    )

    def __init__(self, topic: str, partition: int, created_s: float) -> None:
        self.topic = topic
        self.partition = partition
        self.records: list[tuple] = []
        """(timestamp ms, key, value, headers) per record, the tuple encode_batch reads."""
        self.futures: list[RecordFuture] = []
        self.callbacks: list[tuple[int, DeliveryCallback]] = []
        """(record index, on_delivery) for records that gave a callback."""
        self.size_bytes = BATCH_OVERHEAD_BYTES
        """Estimated encoded size; also what the batch holds of buffer_memory."""
        self.created_s = created_s
        self.condition = threading.Condition()
        self.is_closed = False
        """No more appends: drained once, or closed by a flush."""
        self.attempts = 0
        self.retry_at_s = 0.0
        self.base_sequence = -1
        """Idempotence: assigned when first drained and kept across retries (-1 until then)."""
        self.producer_id = -1
        self.producer_epoch = -1
        self.encoded: bytes | None = None
        """The encoded batch, built once and re-sent unchanged by retries."""
        self.maybe_written = False
        """Some attempt ended without a definite answer: the broker may hold this batch."""
        self.last_error: FreshetError | None = None
        self.is_done = False

    def __repr__(self) -> str:
        return (
            f"ProducerBatch({self.topic}-{self.partition}, records={len(self.records)}, "
            f"sequence={self.base_sequence}, attempts={self.attempts})"
        )


class RecordAccumulator:
    """Per-partition batch queues with memory accounting. Thread-safe (see the module docstring)."""

    def __init__(self, *, batch_size: int, buffer_memory: int, sticky: StickyPartitioner | None = None) -> None:
        self.batch_size = batch_size
        self.buffer_memory = buffer_memory
        self.lock = threading.Lock()
        #: Notified when the sender has something new to look at (see `wake_sender_locked`).
        self.sender_wakeup = threading.Condition(self.lock)
        self._space_freed = threading.Condition(self.lock)
        self._batch_done = threading.Condition(self.lock)
        self.queues: dict[tuple[str, int], deque[ProducerBatch]] = {}
        self.incomplete: set[ProducerBatch] = set()
        self.buffer_used = 0
        self.waiting_threads = 0
        self.flushes_in_progress = 0
        self.is_closed = False
        """No more appends (close() started)."""
        self.sender_needs_run = False
        self._sticky = sticky or StickyPartitioner()

    # ---------------------------------------------------------------------------------------------
    # Producer side.

    def append(
        self,
        topic: str,
        partition: int | None,
        partition_count: int,
        available: tuple[int, ...],
        record: tuple,
        size: int,
        callback: DeliveryCallback | None,
        max_block_s: float,
    ) -> RecordFuture:
        """Add one record to its partition's open batch and return its future.

        Args:
            topic: the topic.
            partition: the partition, or None for the sticky partition.
            partition_count, available: the topic's partition count and partitions with a leader.
            record: (timestamp ms, key, value, headers).
            size: the record's estimated encoded size (<= buffer_memory, checked by the caller).
            callback: on_delivery, or None.
            max_block_s: how long to wait for buffer space.

        Raises:
            ProducerClosedError: close() has started.
            BufferFullError: no space in buffer_memory within max_block_s.
        """
        with self.lock:
            if self.is_closed:
                raise ProducerClosedError("cannot send: the producer is closed")
            if self.buffer_used + size + BATCH_OVERHEAD_BYTES > self.buffer_memory:
                self._wait_for_space(size + BATCH_OVERHEAD_BYTES, max_block_s)
            batch_size = self.batch_size
            queues = self.queues
            if partition is None:
                partition = self._sticky.partition(topic, partition_count, available)
                queue = queues.get((topic, partition))
                batch = queue[-1] if queue else None
                if batch is None or batch.is_closed or batch.size_bytes + size > batch_size:
                    # This record would start a new batch: move the topic to another partition first.
                    partition = self._sticky.next_partition(topic, partition_count, available, partition)
                    queue = queues.get((topic, partition))
                    batch = queue[-1] if queue else None
            else:
                queue = queues.get((topic, partition))
                batch = queue[-1] if queue else None
            is_new_batch = False
            if batch is None or batch.is_closed or (batch.size_bytes + size > batch_size and batch.records):
                if queue is None:
                    queue = queues[(topic, partition)] = deque()
                batch = ProducerBatch(topic, partition, time.monotonic())
                queue.append(batch)
                self.incomplete.add(batch)
                self.buffer_used += BATCH_OVERHEAD_BYTES
                is_new_batch = True
            batch.records.append(record)
            batch.size_bytes += size
            self.buffer_used += size
            future = RecordFuture(batch.condition)
            futures = batch.futures
            futures.append(future)
            if callback is not None:
                batch.callbacks.append((len(futures) - 1, callback))
            if (is_new_batch or batch.size_bytes >= batch_size) and len(queue) == 1:
                # Kafka wakes its sender on a new batch (to start the linger clock) or a full one.
                # Only the first batch of a queue matters: the sender plans from queue heads, and a
                # head with batches behind it is ready already (it was woken when the head filled).
                self.sender_needs_run = True
                self.sender_wakeup.notify()
            return future

    def _wait_for_space(self, needed: int, max_block_s: float) -> None:
        deadline = time.monotonic() + max_block_s
        self.waiting_threads += 1
        # Waiting threads count as a flush: whatever is buffered should go out now to free memory.
        self.sender_needs_run = True
        self.sender_wakeup.notify()
        try:
            while self.buffer_used + needed > self.buffer_memory:
                if self.is_closed:
                    raise ProducerClosedError("cannot send: the producer closed while send() waited for space")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BufferFullError(
                        f"buffer_memory ({self.buffer_memory} bytes) stayed full for "
                        f"{int(max_block_s * 1000)} ms (max_block_ms): {self.buffer_used} bytes are "
                        "waiting for brokers to acknowledge them"
                    )
                self._space_freed.wait(remaining)
        finally:
            self.waiting_threads -= 1

    # ---------------------------------------------------------------------------------------------
    # Sender side (all with `lock` held unless said otherwise).

    def wake_sender_locked(self) -> None:
        self.sender_needs_run = True
        self.sender_wakeup.notify()

    def wake_sender(self) -> None:
        with self.lock:
            self.wake_sender_locked()

    def reenqueue_locked(self, batch: ProducerBatch) -> None:
        """Put a batch that will be retried back at the head of its queue, in sequence order.

        Batches that already carry a sequence number go before every batch without one, and among
        themselves in sequence order, so retries never reorder a partition (Kafka's
        insertInSequenceOrder).
        """
        queue = self.queues.setdefault((batch.topic, batch.partition), deque())
        if batch.base_sequence < 0:
            queue.appendleft(batch)
            return
        index = 0
        for index, queued in enumerate(queue):  # noqa: B007 - index is used after the loop
            if queued.base_sequence < 0 or queued.base_sequence > batch.base_sequence:
                break
        else:
            index = len(queue)
        queue.insert(index, batch)

    def expire_locked(self, now_s: float, delivery_timeout_s: float) -> list[ProducerBatch]:
        """Remove and return queued batches older than the delivery timeout (in queue order)."""
        expired: list[ProducerBatch] = []
        for queue in self.queues.values():
            # Batches queue in creation order (a retried batch goes back in front of newer ones), so
            # the first batch that has not expired ends the scan of its queue.
            while queue and now_s - queue[0].created_s >= delivery_timeout_s:
                batch = queue.popleft()
                batch.is_closed = True
                expired.append(batch)
        return expired

    def abort_all_locked(self) -> list[ProducerBatch]:
        """Remove and return every queued batch (a forced close)."""
        batches = [batch for queue in self.queues.values() for batch in queue]
        for queue in self.queues.values():
            queue.clear()
        for batch in batches:
            batch.is_closed = True
        return batches

    # ---------------------------------------------------------------------------------------------
    # Completion (sender thread; takes the lock itself).

    def complete(self, batch: ProducerBatch, base_offset: int, log_append_time_ms: int) -> None:
        """Resolve every future of a batch with its RecordMetadata, free its memory, run callbacks."""
        if batch.is_done:
            return
        topic, partition = batch.topic, batch.partition
        records = batch.records
        futures = batch.futures
        new = tuple.__new__
        with batch.condition:
            # Future.set_result, inlined for the whole batch under the one shared condition.
            for index, future in enumerate(futures):
                timestamp = log_append_time_ms if log_append_time_ms >= 0 else records[index][0]
                offset = base_offset + index if base_offset >= 0 else -1
                future._result = new(RecordMetadata, (topic, partition, offset, timestamp))
                future._state = _FINISHED
                for waiter in future._waiters:
                    waiter.add_result(future)
            batch.condition.notify_all()
        self._finish(batch)
        for future in futures:
            if future._done_callbacks:
                future._invoke_callbacks()
        for index, callback in batch.callbacks:
            _run_callback(callback, futures[index]._result, None)

    def fail(self, batch: ProducerBatch, error: FreshetError) -> None:
        """Fail every future of a batch with `error`, free its memory, run callbacks."""
        if batch.is_done:
            return
        futures = batch.futures
        with batch.condition:
            # Future.set_exception, inlined for the whole batch under the one shared condition.
            for future in futures:
                future._exception = error
                future._state = _FINISHED
                for waiter in future._waiters:
                    waiter.add_exception(future)
            batch.condition.notify_all()
        self._finish(batch)
        for future in futures:
            if future._done_callbacks:
                future._invoke_callbacks()
        for _, callback in batch.callbacks:
            _run_callback(callback, None, error)

    def _finish(self, batch: ProducerBatch) -> None:
        batch.is_done = True
        with self.lock:
            self.incomplete.discard(batch)
            self.buffer_used -= batch.size_bytes
            self._space_freed.notify_all()
            self._batch_done.notify_all()
        # The records and encoded bytes are no longer needed; drop them so memory really frees.
        batch.records = []
        batch.encoded = None

    # ---------------------------------------------------------------------------------------------
    # Flush.

    def wait_for(self, batches: set[ProducerBatch], timeout_s: float | None) -> set[ProducerBatch]:
        """Wait until every batch in `batches` is done or `timeout_s` passes; return those not done."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self.lock:
            pending = {batch for batch in batches if not batch.is_done}
            while pending:
                if deadline is None:
                    self._batch_done.wait()
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._batch_done.wait(remaining)
                pending = {batch for batch in pending if not batch.is_done}
            return pending


def _run_callback(callback: DeliveryCallback, metadata: RecordMetadata | None, error: Exception | None) -> None:
    try:
        callback(metadata, error)
    except Exception:  # a user callback must not kill the sender thread
        logger.exception("on_delivery callback %r raised", callback)
