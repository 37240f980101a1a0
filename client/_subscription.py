"""The consumer's assigned partitions and their positions (Kafka's SubscriptionState).

Owns

- `PartitionState`: what the consumer knows of one assigned partition: its position (the next
  offset poll() returns, `next_offset`), the fetcher's offset, a pending reset, the buffered
  batches and decoded records, a pending error, and the generation that makes answers to requests
  sent before a seek or reassignment drop out;
- `SubscriptionState`: the consumer's one lock and its two conditions (`data_ready` wakes poll()
  and position(), `fetcher_wakeup` wakes the fetcher thread), the assignment (replaced wholesale,
  never mutated in place, so a copy read under the lock stays valid), and the operations on
  positions the Consumer's public methods are made of: assign, seek, seek to beginning/end,
  position, pause/resume, high watermark, committed positions.

Positions use Kafka's word ("position"); inside Freshet a "position" is a byte in a segment, so the
field is `next_offset`.

Imports: `freshet.client` and storage's batch codec types only (no grpc, no server, metadata, cli
or pysyncobj; import-linter contracts).

Thread-safety: `SubscriptionState` is thread-safe: every method takes its lock, except those whose
docstring says "Lock held", which the fetcher and poll() call with the lock already taken.
`PartitionState` is guarded by that lock.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping

from freshet.client.errors import (
    ClientTimeoutError,
    FreshetError,
    IllegalStateError,
    NoOffsetForPartitionError,
)
from freshet.client.structs import ConsumerRecord, TopicPartition
from freshet.storage.record_batch import BatchHeader

#: ListOffsets timestamps that mean the log start offset and the end (high watermark).
EARLIEST = -2
LATEST = -1
#: auto_offset_reset -> where a partition without a position starts (None: raise).
RESETS = {"earliest": EARLIEST, "latest": LATEST, "none": None}


class PartitionState:
    """What the consumer knows of one assigned partition. Guarded by the consumer's lock."""

    __slots__ = (
        "tp",
        "next_offset",
        "fetch_offset",
        "reset_to",
        "is_paused",
        "batches",
        "buffered_bytes",
        "records",
        "record_index",
        "records_end",
        "error",
        "generation",
        "retry_at_s",
        "high_watermark",
        "log_start_offset",
        "is_fetching",
        "is_resetting",
    )

    def __init__(self, tp: TopicPartition) -> None:
        self.tp = tp
        self.next_offset: int | None = None
        """The offset poll() returns next (Kafka's "position"); None until a reset or seek gives one."""
        self.fetch_offset: int | None = None
        """Next offset to fetch: the end of the buffered batches."""
        self.reset_to: int | None = None
        """EARLIEST or LATEST while a ListOffsets reset is pending."""
        self.is_paused = False
        self.batches: deque[tuple[BatchHeader, memoryview]] = deque()
        self.buffered_bytes = 0
        self.records: list[ConsumerRecord] = []
        """The decoded batch poll() is handing out, from `record_index` on."""
        self.record_index = 0
        self.records_end = 0
        """The offset after the batch `records` came from."""
        self.error: FreshetError | None = None
        """Raised by every poll() until a seek clears it."""
        self.generation = 0
        """Bumped by every seek, reset and reassignment, so answers to older requests are dropped."""
        self.retry_at_s = 0.0
        self.high_watermark = -1
        self.log_start_offset = -1
        self.is_fetching = False
        self.is_resetting = False

    def clear_buffer(self) -> None:
        self.batches.clear()
        self.buffered_bytes = 0
        self.records = []
        self.record_index = 0
        self.records_end = 0

    def seek(self, offset: int) -> None:
        self.clear_buffer()
        self.next_offset = offset
        self.fetch_offset = offset
        self.reset_to = None
        self.error = None
        self.generation += 1
        self.retry_at_s = 0.0
        # Answers to requests sent before the seek are dropped (generation), so nothing is pending.
        self.is_fetching = False
        self.is_resetting = False

    def reset(self, where: int | None) -> None:
        """Drop the position and buffer; the fetcher resolves `where` (EARLIEST/LATEST) by ListOffsets."""
        self.seek(0)
        self.next_offset = None
        self.fetch_offset = None
        self.reset_to = where


class SubscriptionState:
    """The assigned partitions, their positions and the consumer's lock. Thread-safe."""

    def __init__(self, reset_default: int | None) -> None:
        self.reset_default = reset_default
        """Where a partition without a position starts (EARLIEST, LATEST, or None to raise)."""
        self.lock = threading.Lock()
        self.data_ready = threading.Condition(self.lock)
        """Notified when records, a position or an error arrive, and on close."""
        self.fetcher_wakeup = threading.Condition(self.lock)
        self.fetcher_needs_run = False
        self.states: dict[TopicPartition, PartitionState] = {}
        """Replaced wholesale on every change of assignment; guarded by `lock`."""
        self.is_closed = False

    # ---- helpers that run with the lock held ----------------------------------------------------

    def wake_fetcher_locked(self) -> None:
        """Lock held."""
        self.fetcher_needs_run = True
        self.fetcher_wakeup.notify()

    def wake_fetcher(self) -> None:
        with self.lock:
            self.wake_fetcher_locked()

    def check_open(self) -> None:
        """Lock held (or a racy read that is only an early warning)."""
        if self.is_closed:
            raise IllegalStateError("the consumer is closed")

    def state(self, tp: TopicPartition) -> PartitionState:
        """Lock held."""
        self.check_open()
        state = self.states.get(tp)
        if state is None:
            raise IllegalStateError(f"partition {tp[0]}-{tp[1]} is not assigned to this consumer")
        return state

    def drop_locked(self, partitions: Iterable[TopicPartition]) -> None:
        """Stop consuming `partitions` (answers to their requests in flight drop out). Lock held."""
        for tp in partitions:
            state = self.states.pop(tp, None)
            if state is not None:
                state.generation += 1
        self.states = dict(self.states)
        self.wake_fetcher_locked()

    # ---- operations ----------------------------------------------------------------------------

    def set_assignment(self, partitions: Iterable[TopicPartition], committed: Mapping | None = None) -> list[TopicPartition]:
        """Replace the assignment; new partitions start at `committed[tp]` when given, else reset.

        Partitions that stay keep their position and buffer. Returns the partitions now assigned.

        Raises:
            ValueError: an entry that is not a (topic, partition >= 0).
            IllegalStateError: the consumer is closed.
        """
        committed = committed or {}
        wanted = [TopicPartition(*tp) for tp in partitions]
        for tp in wanted:
            if not isinstance(tp.topic, str) or not tp.topic or not isinstance(tp.partition, int) or tp.partition < 0:
                raise ValueError(f"not a partition: {tp!r}")
        with self.lock:
            self.check_open()
            states = {}
            for tp in wanted:
                state = self.states.get(tp)
                if state is None:
                    state = PartitionState(tp)
                    state.reset_to = self.reset_default
                    if committed.get(tp) is not None:
                        state.seek(committed[tp])
                states[tp] = state
            for tp, state in self.states.items():
                if tp not in states:
                    state.generation += 1
            self.states = states
            self.wake_fetcher_locked()
        return wanted

    def drop(self, partitions: Iterable[TopicPartition]) -> None:
        with self.lock:
            self.drop_locked(partitions)

    def assigned(self) -> set[TopicPartition]:
        with self.lock:
            return set(self.states)

    def is_empty(self) -> bool:
        with self.lock:
            return not self.states

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Raises IllegalStateError (not assigned, closed), ValueError (negative offset)."""
        if not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be an int >= 0, not {offset!r}")
        with self.lock:
            self.state(partition).seek(offset)
            self.wake_fetcher_locked()
            self.data_ready.notify_all()

    def seek_to(self, where: int, partitions: tuple[TopicPartition, ...]) -> list[TopicPartition]:
        """Reset each partition (every assigned one when none is given) to EARLIEST or LATEST,
        resolved lazily by the fetcher. Returns the partitions reset."""
        with self.lock:
            states = [self.state(tp) for tp in partitions] if partitions else list(self.states.values())
            for state in states:
                state.reset(where)
            self.wake_fetcher_locked()
        return [state.tp for state in states]

    def position(self, partition: TopicPartition, timeout_s: float, timeout_ms: int | None, last_error) -> int:
        """The next offset poll() returns, waiting up to `timeout_s` for a pending reset.

        Args:
            timeout_ms: the caller's argument, named in the timeout message.
            last_error: a callable giving the cause for ClientTimeoutError (metadata's last error).
        """
        deadline = time.monotonic() + timeout_s
        with self.lock:
            while True:
                state = self.state(partition)
                if state.next_offset is not None:
                    return state.next_offset
                if state.error is not None:
                    raise state.error
                if state.reset_to is None:
                    raise no_offset_error(state)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ClientTimeoutError(f"no position for {partition} after {timeout_ms} ms") from last_error()
                self.wake_fetcher_locked()
                self.data_ready.wait(remaining)

    def set_paused(self, partitions: tuple[TopicPartition, ...], is_paused: bool) -> None:
        with self.lock:
            for tp in partitions:
                self.state(tp).is_paused = is_paused
            if not is_paused:
                self.wake_fetcher_locked()

    def paused(self) -> set[TopicPartition]:
        with self.lock:
            return {tp for tp, state in self.states.items() if state.is_paused}

    def highwater(self, partition: TopicPartition) -> int | None:
        with self.lock:
            watermark = self.state(partition).high_watermark
            return watermark if watermark >= 0 else None

    def positions(self, partitions: Iterable[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        """{partition: position} of `partitions` (default every assigned one) that have a position."""
        with self.lock:
            wanted = self.states if partitions is None else partitions
            return {
                tp: self.states[tp].next_offset
                for tp in wanted
                if tp in self.states and self.states[tp].next_offset is not None
            }

    def buffered_bytes(self) -> int:
        with self.lock:
            return sum(state.buffered_bytes for state in self.states.values())

    def close(self) -> bool:
        """Mark closed and wake every waiter; False when it already was."""
        with self.lock:
            if self.is_closed:
                return False
            self.is_closed = True
            self.fetcher_wakeup.notify_all()
            self.data_ready.notify_all()
            return True


def no_offset_error(state: PartitionState) -> NoOffsetForPartitionError:
    return NoOffsetForPartitionError(
        f"no position for {state.tp} and auto_offset_reset is 'none': seek() first",
        topic_partition=state.tp,
    )
