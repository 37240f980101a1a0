"""The Consumer: reads records from assigned partitions, prefetching in the background.

Owns the public consumer API (manual assignment and consumer groups, see below) and its fetcher
thread:

- the fetcher keeps one long-poll `Fetch` outstanding per broker (Kafka's and librdkafka's model),
  each asking for every fetchable partition that broker leads, from where that partition's
  buffered data ends (`fetch_min_bytes`, `fetch_max_wait_ms`, `fetch_max_bytes`,
  `max_partition_fetch_bytes`). The broker parks it until data arrives, so an idle consumer costs
  one request per `fetch_max_wait_ms` per broker and new records arrive after one response;
- prefetch is bounded per partition: a partition is fetched again only while it holds fewer than
  `max_partition_fetch_bytes` of undelivered data, so a consumer holds at most about two such
  limits per partition (plus one batch, as a fetch always returns at least one whole batch);
- `poll()` decodes lazily, batch by batch, only as many records as it returns (`max_poll_records`):
  a fetch is split into batches by their 61-byte headers, and each batch is CRC-checked
  (`check_crcs`), decompressed and decoded by `decode_batch` when poll() reaches it. Records below
  the position are skipped (a fetch returns whole batches);
- positions: the position (Kafka's word, kept by `position()`; `next_offset` inside, since in
  Freshet a "position" is a byte in a segment) is the next offset poll() returns; the fetcher's
  offset runs ahead of it.
  A partition without a position is reset by `ListOffsets` per `auto_offset_reset`
  ("earliest", "latest"; "none" raises NoOffsetForPartitionError from poll()). OFFSET_OUT_OF_RANGE
  resets the same way (with "none" poll() raises OffsetOutOfRangeError until the next seek).
  NOT_LEADER, FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH and other retriable errors refresh metadata
  (a NOT_LEADER naming a newer leader is used at once) and retry after `retry_backoff_ms`; fetches
  carry the leader epoch the client knows, so a stale leader is fenced (KIP-320). A corrupt batch raises CorruptRecordError naming the partition and
  offset, from every poll() until the application seeks past it.

Consumer groups (`group_id` + `subscribe`): membership is KIP-848's (client/_group.py): a heartbeat
thread sends the subscription (topic names or a regex) and the partitions this consumer owns; the
coordinator computes the assignment and moves a partition only after its old owner revoked it.
poll() reconciles in the caller's thread: for partitions taken away it commits their positions
(with auto commit), calls `on_partitions_revoked`, drops them and acknowledges at once; for new
partitions it fetches their committed offsets (auto_offset_reset when none) and calls
`on_partitions_assigned`. Partitions that stay keep being fetched and returned throughout. A
member the coordinator fenced (session expired) drops everything (`on_partitions_lost`) and
rejoins. Not calling poll() for `max_poll_interval_ms` leaves the group. Commits: `commit()`
(sync), `commit_async()`, auto commit every `auto_commit_interval_ms` at the start of poll() (of
positions returned by earlier polls), before revocation and on close. A commit for partitions the
group moved away fails with CommitFailedError. With `assign()` and a group_id, commits go to the
group as an "empty group" commit (refused while the group has active members, as Kafka does).

Imports: grpc (through the transport), `freshet.v1`, `freshet.storage` codec modules, `freshet.client`.
Forbidden: server, metadata, cli, pysyncobj, and storage beyond record_batch, compression
and errors (import-linter contracts).

Thread-safety: thread-safe: every public method takes the consumer's lock, so calls from several
threads cannot corrupt it (Kafka's Java consumer refuses concurrent use instead). poll() is still
meant for one thread, as in every Kafka client: records are handed out once, in offset order per
partition, to whichever thread polls.
"""

from __future__ import annotations

import concurrent.futures
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence

import grpc
from freshet.client._group import CoordinatorClient, Membership
from freshet.client._metadata import Metadata
from freshet.client._transport import Transport, error_from_detail, raise_for_detail, translate_rpc_error
from freshet.client.errors import (
    ClientTimeoutError,
    CommitFailedError,
    CorruptRecordError,
    FencedMemberEpochError,
    FreshetError,
    IllegalStateError,
    InvalidMetadataError,
    NoOffsetForPartitionError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
    StaleMemberEpochError,
    UnknownMemberError,
    UnknownServerError,
    UnsupportedCompressionTypeError,
)
from freshet.client.structs import ConsumerRecord, OffsetAndTimestamp, TopicPartition
from freshet.storage import errors as storage_errors
from freshet.storage.record_batch import BatchHeader, decode_batch, iter_batches
from freshet.v1 import broker_pb2, common_pb2, group_pb2

logger = logging.getLogger("freshet.client.consumer")

EARLIEST = -2
LATEST = -1
_RESETS = {"earliest": EARLIEST, "latest": LATEST, "none": None}
_MAX_IDLE_S = 0.5
_FENCED = (UnknownMemberError, FencedMemberEpochError, StaleMemberEpochError)


class ConsumerRebalanceListener:
    """Callbacks around a group's reassignment, called from poll() in the polling thread.

    Override what you need (kafka-python's names). Each receives a set of TopicPartition.
    """

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Partitions moving to another member; their positions were already committed (auto commit)."""

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Partitions newly assigned; positions are their committed offsets (or auto_offset_reset)."""

    def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
        """Partitions lost without a chance to commit (the member was fenced); defaults to revoked."""
        self.on_partitions_revoked(lost)


class _PartitionState:
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


class Consumer:
    """Reads records from assigned partitions, or as a member of a consumer group. Thread-safe
    (see the module docstring).

    Example::

        with Consumer("localhost:9092", auto_offset_reset="earliest") as consumer:
            consumer.assign([TopicPartition("orders", 0)])
            for record in consumer.poll(timeout_ms=1000):
                print(record.offset, record.value)

        with Consumer("localhost:9092", group_id="billing") as consumer:
            consumer.subscribe(["orders"])
            for record in consumer.poll(timeout_ms=1000):
                ...
            consumer.commit()
    """

    def __init__(
        self,
        bootstrap_servers: str | Sequence[str] | None = None,
        *,
        group_id: str | None = None,
        client_id: str = "freshet-consumer",
        auto_offset_reset: str = "latest",
        enable_auto_commit: bool = True,
        max_poll_records: int = 500,
        fetch_min_bytes: int = 1,
        fetch_max_wait_ms: int = 500,
        fetch_max_bytes: int = 50 * 1024 * 1024,
        max_partition_fetch_bytes: int = 1024 * 1024,
        check_crcs: bool = True,
        request_timeout_ms: int = 30000,
        retry_backoff_ms: int = 100,
        metadata_max_age_ms: int = 300000,
        default_api_timeout_ms: int = 60000,
        group_instance_id: str | None = None,
        auto_commit_interval_ms: int = 5000,
        session_timeout_ms: int = 45000,
        max_poll_interval_ms: int = 300000,
        group_remote_assignor: str = "uniform",
    ) -> None:
        """Create a consumer; it connects lazily, once partitions are assigned or subscribed.

        Args:
            bootstrap_servers: "host:port,host:port"; None reads `FRESHET_BOOTSTRAP`, else
                "localhost:9092".
            group_id: the consumer group: needed by subscribe(), commit() and committed().
            client_id: names this client in broker logs.
            auto_offset_reset: where to start without a position, or after OFFSET_OUT_OF_RANGE:
                "earliest", "latest" (Kafka's default) or "none" (raise).
            enable_auto_commit: commit positions every auto_commit_interval_ms (from poll()), before
                partitions are revoked and on close; ignored without a group_id (as kafka-python).
            max_poll_records: the most records one poll() returns.
            fetch_min_bytes: the broker answers a fetch once it has this many bytes (or the wait ends).
            fetch_max_wait_ms: the longest the broker parks a fetch waiting for fetch_min_bytes.
            fetch_max_bytes: bound on one fetch response (at least one batch is always returned).
            max_partition_fetch_bytes: bound per partition per fetch, and the prefetch bound.
            check_crcs: verify each batch's CRC-32C before decoding it (Kafka's check.crcs).
            request_timeout_ms: how long a request may take beyond its own wait.
            retry_backoff_ms: wait before retrying a partition after an error.
            metadata_max_age_ms: refresh metadata at least this often.
            default_api_timeout_ms: bound on blocking calls (position, offsets_for_times, commit, ...).
            group_instance_id: static membership (Kafka's group.instance.id): a restart within the
                session timeout gets the same partitions back without a rebalance.
            auto_commit_interval_ms: how often auto commit runs.
            session_timeout_ms: the coordinator removes this member after this long without a
                heartbeat (bounded by the brokers' group.min/max.session.timeout.ms).
            max_poll_interval_ms: a consumer that does not call poll() for this long leaves the group.
            group_remote_assignor: the coordinator's assignor: "uniform" (cooperative-sticky) or "range".

        Raises:
            ValueError: an option out of range.
        """
        if auto_offset_reset not in _RESETS:
            raise ValueError(f"auto_offset_reset must be 'earliest', 'latest' or 'none', not {auto_offset_reset!r}")
        for name, value, minimum in (
            ("max_poll_records", max_poll_records, 1),
            ("fetch_min_bytes", fetch_min_bytes, 0),
            ("fetch_max_wait_ms", fetch_max_wait_ms, 0),
            ("fetch_max_bytes", fetch_max_bytes, 1),
            ("max_partition_fetch_bytes", max_partition_fetch_bytes, 1),
            ("request_timeout_ms", request_timeout_ms, 1),
            ("retry_backoff_ms", retry_backoff_ms, 0),
            ("metadata_max_age_ms", metadata_max_age_ms, 1),
            ("default_api_timeout_ms", default_api_timeout_ms, 0),
            ("auto_commit_interval_ms", auto_commit_interval_ms, 1),
            ("session_timeout_ms", session_timeout_ms, 1),
            ("max_poll_interval_ms", max_poll_interval_ms, 1),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"{name} must be an int >= {minimum}, not {value!r}")
        if group_id is not None and (not isinstance(group_id, str) or not group_id):
            raise ValueError(f"group_id must be a non-empty string, not {group_id!r}")
        if group_remote_assignor not in ("uniform", "range"):
            raise ValueError(f"group_remote_assignor must be 'uniform' or 'range', not {group_remote_assignor!r}")
        self.group_id = group_id
        self.config = {
            "client_id": client_id,
            "auto_offset_reset": auto_offset_reset,
            "enable_auto_commit": enable_auto_commit and group_id is not None,
            "max_poll_records": max_poll_records,
            "fetch_min_bytes": fetch_min_bytes,
            "fetch_max_wait_ms": fetch_max_wait_ms,
            "fetch_max_bytes": fetch_max_bytes,
            "max_partition_fetch_bytes": max_partition_fetch_bytes,
            "check_crcs": check_crcs,
            "request_timeout_ms": request_timeout_ms,
            "retry_backoff_ms": retry_backoff_ms,
            "metadata_max_age_ms": metadata_max_age_ms,
            "default_api_timeout_ms": default_api_timeout_ms,
            "group_instance_id": group_instance_id,
            "auto_commit_interval_ms": auto_commit_interval_ms,
            "session_timeout_ms": session_timeout_ms,
            "max_poll_interval_ms": max_poll_interval_ms,
            "group_remote_assignor": group_remote_assignor,
        }
        self._reset_default = _RESETS[auto_offset_reset]
        self._max_poll_records = max_poll_records
        self._check_crcs = check_crcs
        self._backoff_s = retry_backoff_ms / 1000
        self._request_timeout_s = request_timeout_ms / 1000
        self._api_timeout_s = default_api_timeout_ms / 1000
        self._fetch_request_template = (fetch_max_wait_ms, fetch_min_bytes, fetch_max_bytes)
        self._partition_max_bytes = max_partition_fetch_bytes
        # A response holds at most fetch_max_bytes plus one batch per partition beyond its share;
        # gRPC's 4 MiB default would refuse ordinary fetches.
        self._transport = Transport(bootstrap_servers, client_id=client_id, max_receive_bytes=-1)
        self._metadata = Metadata(
            self._transport,
            metadata_max_age_ms=metadata_max_age_ms,
            retry_backoff_ms=retry_backoff_ms,
            request_timeout_ms=request_timeout_ms,
        )
        self._lock = threading.Lock()
        self._data_ready = threading.Condition(self._lock)
        self._fetcher_wakeup = threading.Condition(self._lock)
        self._fetcher_needs_run = False
        self._states: dict[TopicPartition, _PartitionState] = {}
        self._events: deque = deque()
        self._fetching_nodes: set[int] = set()
        #: node id -> (outstanding Fetch, its partitions), so a seek can cut a long poll short.
        self._fetch_calls: dict[int, tuple[grpc.Future, set[TopicPartition]]] = {}
        self._needs_metadata = False
        self._leader_hints: list = []
        self._interrupted_nodes: set[int] = set()
        self._poll_start = 0
        self._is_closed = False
        self._metrics = {"records_consumed_total": 0, "bytes_fetched_total": 0, "fetch_total": 0}
        self._coordinator = (
            CoordinatorClient(
                self._transport, group_id, retry_backoff_s=self._backoff_s, request_timeout_s=self._request_timeout_s
            )
            if group_id is not None
            else None
        )
        self._membership: Membership | None = None
        self._listener: ConsumerRebalanceListener | None = None
        self._group_owned: frozenset[TopicPartition] = frozenset()
        self._auto_commit_s = auto_commit_interval_ms / 1000
        self._next_auto_commit_s = time.monotonic() + self._auto_commit_s
        self._commit_executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._metadata.add_listener(self._wake_fetcher)
        self._fetcher = threading.Thread(target=self._run_fetcher, name="freshet-consumer-fetcher", daemon=True)
        self._fetcher.start()

    @property
    def bootstrap_servers(self) -> list[str]:
        return list(self._transport.bootstrap_addresses)

    # =============================================================================================
    # Assignment and positions.

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Read exactly these partitions from now on (replacing any earlier assignment).

        Partitions that stay assigned keep their position and buffered records; new ones start
        without a position and are reset per auto_offset_reset (or positioned by `seek`).
        """
        if self._membership is not None:
            raise IllegalStateError("assign() on a subscribed consumer: unsubscribe() first")
        self._set_assignment(partitions)

    def _set_assignment(self, partitions: Iterable[TopicPartition], committed: Mapping | None = None) -> None:
        """Replace the assignment; new partitions start at `committed[tp]` when given, else reset."""
        committed = committed or {}
        wanted = [TopicPartition(*tp) for tp in partitions]
        for tp in wanted:
            if not isinstance(tp.topic, str) or not tp.topic or not isinstance(tp.partition, int) or tp.partition < 0:
                raise ValueError(f"not a partition: {tp!r}")
        with self._lock:
            self._check_open()
            states = {}
            for tp in wanted:
                state = self._states.get(tp)
                if state is None:
                    state = _PartitionState(tp)
                    state.reset_to = self._reset_default
                    if committed.get(tp) is not None:
                        state.seek(committed[tp])
                states[tp] = state
            for tp, state in self._states.items():
                if tp not in states:
                    state.generation += 1
            self._states = states
            self._wake_fetcher_locked()
        self._metadata.add_topics({tp.topic for tp in wanted})
        self._interrupt_fetches(None)

    def assignment(self) -> set[TopicPartition]:
        """The partitions assigned now."""
        with self._lock:
            return set(self._states)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Make `offset` the next offset poll() returns for `partition` (drops its buffered records).

        Raises:
            IllegalStateError: the partition is not assigned.
            ValueError: a negative offset.
        """
        if not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be an int >= 0, not {offset!r}")
        with self._lock:
            self._state(partition).seek(offset)
            self._wake_fetcher_locked()
            self._data_ready.notify_all()
        self._interrupt_fetches([TopicPartition(*partition)])

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        """Start each partition (every assigned one when none is given) at its log start offset.

        Evaluated lazily, on the next poll() or position(), as in Kafka.
        """
        self._seek_to(EARLIEST, partitions)

    def seek_to_end(self, *partitions: TopicPartition) -> None:
        """Start each partition (every assigned one when none is given) at its end (high watermark).

        Evaluated lazily, on the next poll() or position(), as in Kafka.
        """
        self._seek_to(LATEST, partitions)

    def _seek_to(self, where: int, partitions: tuple[TopicPartition, ...]) -> None:
        with self._lock:
            states = [self._state(tp) for tp in partitions] if partitions else list(self._states.values())
            for state in states:
                state.seek(0)
                state.next_offset = None
                state.fetch_offset = None
                state.reset_to = where
            self._wake_fetcher_locked()
        self._interrupt_fetches([state.tp for state in states])

    def position(self, partition: TopicPartition, timeout_ms: int | None = None) -> int:
        """The offset of the next record poll() will return for `partition`.

        Blocks (up to `timeout_ms`, default default_api_timeout_ms) while a reset is being resolved.

        Raises:
            IllegalStateError: the partition is not assigned.
            NoOffsetForPartitionError: no position and auto_offset_reset is "none".
            OffsetOutOfRangeError: the position went out of range and auto_offset_reset is "none".
            ClientTimeoutError: the reset was not resolved in time (brokers unreachable).
        """
        deadline = time.monotonic() + (self._api_timeout_s if timeout_ms is None else timeout_ms / 1000)
        with self._lock:
            while True:
                state = self._state(partition)
                if state.next_offset is not None:
                    return state.next_offset
                if state.error is not None:
                    raise state.error
                if state.reset_to is None:
                    raise self._no_offset_error(state)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    cause = self._metadata.last_error
                    raise ClientTimeoutError(f"no position for {partition} after {timeout_ms} ms") from cause
                self._wake_fetcher_locked()
                self._data_ready.wait(remaining)

    def pause(self, *partitions: TopicPartition) -> None:
        """Stop fetching and returning records of these partitions (they stay assigned)."""
        with self._lock:
            for tp in partitions:
                self._state(tp).is_paused = True

    def resume(self, *partitions: TopicPartition) -> None:
        """Undo `pause` for these partitions."""
        with self._lock:
            for tp in partitions:
                self._state(tp).is_paused = False
            self._wake_fetcher_locked()
        self._interrupt_fetches([TopicPartition(*tp) for tp in partitions])

    def paused(self) -> set[TopicPartition]:
        """The paused partitions."""
        with self._lock:
            return {tp for tp, state in self._states.items() if state.is_paused}

    def highwater(self, partition: TopicPartition) -> int | None:
        """The high watermark seen in the last fetch of `partition`, None before the first fetch."""
        with self._lock:
            watermark = self._state(partition).high_watermark
            return watermark if watermark >= 0 else None

    def _state(self, tp: TopicPartition) -> _PartitionState:
        self._check_open()
        state = self._states.get(tp)
        if state is None:
            raise IllegalStateError(f"partition {tp[0]}-{tp[1]} is not assigned to this consumer")
        return state

    def _check_open(self) -> None:
        if self._is_closed:
            raise IllegalStateError("the consumer is closed")

    def _no_offset_error(self, state: _PartitionState) -> NoOffsetForPartitionError:
        return NoOffsetForPartitionError(
            f"no position for {state.tp} and auto_offset_reset is 'none': seek() first",
            topic_partition=state.tp,
        )

    # =============================================================================================
    # Polling.

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> list[ConsumerRecord]:
        """Return the next records of the assigned, unpaused partitions, waiting up to `timeout_ms`.

        Records of one partition come in offset order; partitions take turns between polls.

        Args:
            timeout_ms: how long to wait when nothing is buffered; 0 returns at once.
            max_records: the most records to return (default max_poll_records).

        Returns:
            A list of ConsumerRecord, empty when nothing arrived in time.

        Raises:
            NoOffsetForPartitionError, OffsetOutOfRangeError: auto_offset_reset="none" and a partition
                has no valid position (raised until seek()).
            CorruptRecordError: a batch failed its CRC or does not decode (raised until the
                application seeks past `error.offset`).
            FreshetError: another non-retriable fetch error of a partition (e.g. UnknownServerError).
            IllegalStateError: the consumer is closed, or has no partitions assigned.
        """
        limit = self._max_poll_records if max_records is None else max_records
        if limit < 1:
            raise ValueError("max_records must be >= 1")
        deadline = time.monotonic() + max(timeout_ms, 0) / 1000
        if self._membership is not None:
            return self._poll_group(limit, deadline)
        if self.config["enable_auto_commit"]:
            self._maybe_auto_commit()
        with self._lock:
            self._check_open()
            if not self._states:
                raise IllegalStateError("poll() with no partitions: assign() some first")
            while True:
                self._check_open()
                records = self._collect(limit)
                if records:
                    self._metrics["records_consumed_total"] += len(records)
                    return records
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._data_ready.wait(remaining)

    def _poll_group(self, limit: int, deadline: float) -> list[ConsumerRecord]:
        """poll() of a subscribed consumer: reconcile the group's assignment between waits."""
        membership = self._membership
        assert membership is not None
        while True:
            self._check_open()
            membership.on_poll()
            if self.config["enable_auto_commit"]:
                self._maybe_auto_commit()
            self._reconcile(membership)
            with self._lock:
                self._check_open()
                records = self._collect(limit) if self._states else []
                if records:
                    self._metrics["records_consumed_total"] += len(records)
                    return records
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._data_ready.wait(min(remaining, 0.1))

    def _collect(self, limit: int) -> list[ConsumerRecord]:
        """Hand out up to `limit` buffered records; raise a partition's pending error first. Lock held."""
        states = list(self._states.values())
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
                raise self._no_offset_error(state)
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
        return out

    def _take(self, state: _PartitionState, out: list[ConsumerRecord], limit: int) -> None:
        """Move records of one partition into `out`, decoding batches as needed. Lock held."""
        was_full = state.buffered_bytes >= self._partition_max_bytes
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
        if was_full and state.buffered_bytes < self._partition_max_bytes:
            self._wake_fetcher_locked()

    def _decode(self, state: _PartitionState, header: BatchHeader, view: memoryview) -> list[ConsumerRecord]:
        """The records of one batch at or after the position. Lock held.

        Raises:
            CorruptRecordError, UnsupportedCompressionTypeError: also kept in `state.error`, and the
                batch stays first in the buffer, so every poll() raises until a seek.
        """
        next_offset = state.next_offset
        topic, partition = state.tp
        try:
            decoded = decode_batch(view, verify_crc=self._check_crcs)
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
    # Consumer groups.

    def subscribe(
        self,
        topics: Iterable[str] | re.Pattern | None = None,
        *,
        pattern: str | re.Pattern | None = None,
        listener: ConsumerRebalanceListener | None = None,
        on_revoked: Callable[[set[TopicPartition]], None] | None = None,
        on_assigned: Callable[[set[TopicPartition]], None] | None = None,
        on_lost: Callable[[set[TopicPartition]], None] | None = None,
    ) -> None:
        """Join the group and consume what its coordinator assigns from these topics.

        Args:
            topics: topic names, or a compiled regex (same as `pattern`).
            pattern: a regex over topic names (full match, Python `re` syntax, evaluated by the
                coordinator, so topics created later are picked up); internal topics never match.
            listener: a ConsumerRebalanceListener; or give the callbacks one by one.
            on_revoked, on_assigned, on_lost: callables taking a set of TopicPartition.

        Raises:
            IllegalStateError: no group_id, or partitions were assigned manually.
            ValueError: neither or both of topics and pattern, an empty name, a bad regex.
        """
        if self._coordinator is None:
            raise IllegalStateError("subscribe() needs a group_id; without one, assign() partitions")
        if isinstance(topics, re.Pattern):
            topics, pattern = None, topics
        if isinstance(topics, str):
            raise ValueError(f"topics must be a list of names, not the string {topics!r} (use pattern= for a regex)")
        if (topics is None) == (pattern is None):
            raise ValueError("give topic names or a pattern, not both or neither")
        names: list[str] = []
        regex = ""
        if topics is not None:
            names = list(topics)
            if not names or any(not isinstance(name, str) or not name for name in names):
                raise ValueError(f"topic names must be non-empty strings: {names!r}")
        else:
            regex = pattern.pattern if isinstance(pattern, re.Pattern) else pattern
            try:
                re.compile(regex)
            except re.error as error:
                raise ValueError(f"pattern {regex!r}: {error}") from None
        if listener is None and (on_revoked or on_assigned or on_lost):
            listener = _CallbackListener(on_revoked, on_assigned, on_lost)
        with self._lock:
            self._check_open()
            if self._states and self._membership is None:
                raise IllegalStateError("subscribe() after assign(): call assign([]) first")
        self._listener = listener
        if self._membership is None:
            self._membership = Membership(
                self._coordinator,
                client_id=self._transport.client_id,
                instance_id=self.config["group_instance_id"],
                session_timeout_ms=self.config["session_timeout_ms"],
                max_poll_interval_ms=self.config["max_poll_interval_ms"],
                assignor=self.config["group_remote_assignor"],
                on_event=self._on_group_event,
                retry_backoff_s=self._backoff_s,
            )
        self._membership.subscribe(names, regex)

    def subscription(self) -> set[str] | str | None:
        """The subscribed topic names, the pattern, or None when not subscribed."""
        if self._membership is None:
            return None
        return self._membership._regex or set(self._membership._topics)

    def unsubscribe(self) -> None:
        """Give up every partition (commit, on_partitions_revoked) and leave the group."""
        membership = self._membership
        if membership is None:
            return
        self._revoke_all_and_leave(membership)
        self._membership = None

    def _release(self, partitions: set[TopicPartition], why: str) -> BaseException | None:
        """Give partitions up: commit their positions (with auto commit), stop fetching them,
        then call on_partitions_revoked; the callback's error, if any."""
        if self.config["enable_auto_commit"]:
            try:
                self._commit_sync(self._positions(partitions), self._api_timeout_s)
            except FreshetError as error:
                logger.warning("commit %s of group %s failed: %s", why, self.group_id, error)
        with self._lock:
            self._drop_partitions(partitions)
        self._interrupt_fetches(partitions)
        return self._call_listener("on_partitions_revoked", partitions)

    def _revoke_all_and_leave(self, membership: Membership) -> None:
        owned = set(self._group_owned)
        error: BaseException | None = None
        if owned:
            error = self._release(owned, "before leaving")
        self._group_owned = frozenset()
        membership.leave(min(self._api_timeout_s, 5.0))
        if error is not None:
            raise error

    def _on_group_event(self) -> None:
        with self._lock:
            self._data_ready.notify_all()

    def _drop_partitions(self, partitions: Iterable[TopicPartition]) -> None:
        """Lock held."""
        for tp in partitions:
            state = self._states.pop(tp, None)
            if state is not None:
                state.generation += 1
        self._states = dict(self._states)
        self._wake_fetcher_locked()

    def _call_listener(self, method: str, partitions: set[TopicPartition]) -> BaseException | None:
        """Call a rebalance callback outside the lock; return (not raise) what it raised."""
        if self._listener is None:
            return None
        try:
            getattr(self._listener, method)(set(partitions))
        except Exception as error:
            logger.exception("%s raised", method)
            return error
        return None

    def _reconcile(self, membership: Membership) -> None:
        """Apply the group's latest assignment (see the module docstring). Caller's thread, no lock."""
        event = membership.take_event()  # raises a fatal group error (e.g. UNRELEASED_INSTANCE_ID)
        if event is None:
            return
        kind, target = event
        errors: list[BaseException] = []
        if kind == "lost":
            lost = set(self._group_owned)
            with self._lock:
                self._drop_partitions(lost)
            self._interrupt_fetches(None)
            self._group_owned = frozenset()
            if lost:
                errors.append(self._call_listener("on_partitions_lost", lost))
            membership.lost_handled()
        else:
            owned = self._group_owned
            revoked = set(owned - target)
            added = set(target - owned)
            if revoked:
                errors.append(self._release(revoked, "of revoked partitions"))
                self._group_owned = owned - revoked
                membership.set_owned(self._group_owned)
            if added:
                try:
                    # Bounded, so partitions this member keeps are not held up for long: a failure
                    # leaves the new partitions for the next poll() to pick up.
                    committed = self.committed(added, timeout_ms=int(max(min(self._api_timeout_s, 5.0), 1.0) * 1000))
                except FreshetError as error:
                    if not error.retriable:
                        raise
                    logger.info("group %s: committed offsets of %s not available yet: %s", self.group_id,
                                sorted(added), error)
                    added = set()
            if added:
                self._set_assignment(self._group_owned | added, committed)
                self._group_owned = self._group_owned | added
                membership.set_owned(self._group_owned)
                errors.append(self._call_listener("on_partitions_assigned", added))
        for error in errors:
            if error is not None:
                raise error

    def _positions(self, partitions: Iterable[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        with self._lock:
            wanted = self._states if partitions is None else partitions
            return {
                tp: self._states[tp].next_offset
                for tp in wanted
                if tp in self._states and self._states[tp].next_offset is not None
            }

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None, timeout_ms: int | None = None) -> None:
        """Commit offsets to the group, synchronously.

        Args:
            offsets: {partition: the next offset to consume}; default: the position of every
                assigned partition (what poll() returned so far).
            timeout_ms: default default_api_timeout_ms.

        Raises:
            IllegalStateError: no group_id.
            CommitFailedError: the group moved these partitions away or fenced this member.
            ClientTimeoutError: no coordinator answered in time.
        """
        if self._coordinator is None:
            raise IllegalStateError("commit() needs a group_id")
        values = self._positions() if offsets is None else {TopicPartition(*tp): o for tp, o in offsets.items()}
        self._commit_sync(values, self._api_timeout_s if timeout_ms is None else timeout_ms / 1000)

    def commit_async(
        self,
        offsets: Mapping[TopicPartition, int] | None = None,
        callback: Callable[[dict[TopicPartition, int], BaseException | None], None] | None = None,
    ) -> concurrent.futures.Future:
        """Commit in the background, in order with other async commits. Returns a Future; the
        callback gets (offsets, exception or None)."""
        if self._coordinator is None:
            raise IllegalStateError("commit_async() needs a group_id")
        values = self._positions() if offsets is None else {TopicPartition(*tp): o for tp, o in offsets.items()}
        with self._lock:
            self._check_open()
            if self._commit_executor is None:
                self._commit_executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="freshet-commit")
            executor = self._commit_executor

        def run():
            error = None
            try:
                self._commit_sync(values, self._api_timeout_s)
            except FreshetError as commit_error:
                error = commit_error
            if callback is not None:
                callback(values, error)
            if error is not None:
                raise error
            return values

        return executor.submit(run)

    def _maybe_auto_commit(self) -> None:
        now = time.monotonic()
        if now < self._next_auto_commit_s:
            return
        self._next_auto_commit_s = now + self._auto_commit_s
        positions = self._positions(self._group_owned if self._membership is not None else None)
        if positions:
            future = self.commit_async(positions)
            future.add_done_callback(_log_auto_commit_failure)

    def _commit_sync(self, offsets: Mapping[TopicPartition, int], timeout_s: float) -> None:
        if not offsets:
            return
        for tp, offset in offsets.items():
            if not isinstance(offset, int) or offset < 0:
                raise ValueError(f"offset for {tp} must be an int >= 0, not {offset!r}")
        assert self._coordinator is not None
        member_id, epoch = self._membership.epoch() if self._membership is not None else ("", -1)
        request = group_pb2.OffsetCommitRequest(
            group_id=self.group_id,
            member_id=member_id,
            member_epoch=epoch,
            partitions=[
                group_pb2.OffsetCommitPartition(topic=tp.topic, partition=tp.partition, offset=offset, leader_epoch=-1)
                for tp, offset in sorted(offsets.items())
            ],
        )
        try:
            response = self._coordinator.call("OffsetCommit", request, timeout_s)
        except _FENCED as error:
            raise CommitFailedError(
                f"commit to group {self.group_id!r} refused: this consumer lost its membership or partitions ({error})"
            ) from error
        for result in response.results:
            error = error_from_detail(result.error, f"commit {result.topic}-{result.partition}")
            if error is None:
                continue
            if isinstance(error, _FENCED):
                raise CommitFailedError(
                    f"commit of {result.topic}-{result.partition} to group {self.group_id!r} refused: {error}",
                    topic_partition=TopicPartition(result.topic, result.partition),
                ) from error
            raise error

    def committed(
        self, partitions: TopicPartition | Iterable[TopicPartition], timeout_ms: int | None = None
    ) -> int | None | dict[TopicPartition, int | None]:
        """The group's committed offsets: for one TopicPartition an int (None if nothing is
        committed); for several, {partition: int or None}.

        Raises:
            IllegalStateError: no group_id.
            ClientTimeoutError: no coordinator answered in time.
        """
        if self._coordinator is None:
            raise IllegalStateError("committed() needs a group_id")
        is_single = isinstance(partitions, TopicPartition)
        wanted = [partitions] if is_single else [TopicPartition(*tp) for tp in partitions]
        request = group_pb2.OffsetFetchRequest(
            group_id=self.group_id,
            partitions=[common_pb2.TopicPartition(topic=tp.topic, partition=tp.partition) for tp in wanted],
        )
        timeout_s = self._api_timeout_s if timeout_ms is None else timeout_ms / 1000
        response = self._coordinator.call("OffsetFetch", request, timeout_s)
        found: dict[TopicPartition, int | None] = {tp: None for tp in wanted}
        for result in response.results:
            raise_for_detail(result.error, f"committed offset of {result.topic}-{result.partition}")
            found[TopicPartition(result.topic, result.partition)] = result.offset if result.offset >= 0 else None
        return found[wanted[0]] if is_single else found

    def _close_group(self) -> None:
        """close(): commit, revoke and leave (subscribed), or a last commit (assigned with a group)."""
        try:
            if self._membership is not None:
                self._revoke_all_and_leave(self._membership)
            elif self._coordinator is not None and self.config["enable_auto_commit"] and self._states:
                self._commit_sync(self._positions(), min(self._api_timeout_s, 5.0))
        except FreshetError as error:
            logger.warning("closing consumer of group %s: %s", self.group_id, error)
        executor = self._commit_executor
        if executor is not None:
            executor.shutdown(wait=True)

    # =============================================================================================
    # Offsets lookups (blocking, in the caller's thread).

    def beginning_offsets(
        self, partitions: Iterable[TopicPartition], timeout_ms: int | None = None
    ) -> dict[TopicPartition, int]:
        """The log start offset of each partition."""
        found = self._list_offsets({TopicPartition(*tp): EARLIEST for tp in partitions}, timeout_ms)
        return {tp: result.offset for tp, result in found.items()}

    def partitions_for_topic(self, topic: str) -> set[int]:
        """The partition numbers of `topic` (kafka-python's name), waiting up to
        default_api_timeout_ms for its metadata.

        Raises:
            UnknownTopicError: brokers kept saying the topic does not exist (for 5 s, as the
                producer's topic_metadata_propagation_max_ms, or half the timeout if shorter: a
                new topic takes a moment to reach every broker).
            MaxBlockTimeoutError: no broker answered in time.
        """
        propagation_s = min(5.0, self._api_timeout_s / 2)
        info = self._metadata.wait_for_topic(topic, self._api_timeout_s, propagation_s)
        return set(range(len(info.partitions)))

    def end_offsets(self, partitions: Iterable[TopicPartition], timeout_ms: int | None = None) -> dict[TopicPartition, int]:
        """The end offset (high watermark: the offset the next committed record gets) of each partition."""
        found = self._list_offsets({TopicPartition(*tp): LATEST for tp in partitions}, timeout_ms)
        return {tp: result.offset for tp, result in found.items()}

    def offsets_for_times(
        self, timestamps: dict[TopicPartition, int], timeout_ms: int | None = None
    ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        """For each partition, the first offset whose record timestamp is >= the given ms timestamp.

        Returns:
            {partition: OffsetAndTimestamp, or None when no record is that recent}.

        Raises:
            ValueError: a negative timestamp.
            FreshetError: a non-retriable error of a partition (e.g. UnknownTopicError after retries).
            ClientTimeoutError: no answer within the timeout.
        """
        for tp, timestamp in timestamps.items():
            if not isinstance(timestamp, int) or timestamp < 0:
                raise ValueError(f"timestamp for {tp} must be an int >= 0, not {timestamp!r}")
        found = self._list_offsets({TopicPartition(*tp): ts for tp, ts in timestamps.items()}, timeout_ms)
        return {
            tp: OffsetAndTimestamp(result.offset, result.timestamp, result.leader_epoch) if result.offset >= 0 else None
            for tp, result in found.items()
        }

    def _list_offsets(
        self, queries: dict[TopicPartition, int], timeout_ms: int | None
    ) -> dict[TopicPartition, broker_pb2.PartitionOffsetResult]:
        self._check_open()
        timeout_s = self._api_timeout_s if timeout_ms is None else timeout_ms / 1000
        deadline = time.monotonic() + timeout_s
        self._metadata.add_topics({tp.topic for tp in queries})
        results: dict[TopicPartition, broker_pb2.PartitionOffsetResult] = {}
        pending = dict(queries)
        last_error: FreshetError | None = None
        while pending:
            if time.monotonic() >= deadline:
                raise ClientTimeoutError(
                    f"ListOffsets for {', '.join(str(tp) for tp in pending)} got no answer in "
                    f"{int(timeout_s * 1000)} ms" + (f": {last_error}" if last_error else "")
                ) from last_error
            view = self._metadata.view
            by_leader: dict[str, list[TopicPartition]] = {}
            for tp in pending:
                leader = view.leader(tp.topic, tp.partition)
                if leader is None:
                    info = view.topics.get(tp.topic)
                    if info is not None and info.error is not None and not info.error.retriable:
                        raise info.error
                    continue
                by_leader.setdefault(leader[0].address, []).append(tp)
            if not by_leader:
                last_error = self._metadata.last_error or last_error  # e.g. no broker reachable
                self._metadata.wait_for_update(view.version, min(self._backoff_s * 5, max(deadline - time.monotonic(), 0)))
                continue
            for address, tps in by_leader.items():
                request = broker_pb2.ListOffsetsRequest(
                    partitions=[
                        broker_pb2.PartitionOffsetQuery(topic=tp.topic, partition=tp.partition, timestamp=pending[tp])
                        for tp in tps
                    ]
                )
                try:
                    response = self._transport.stub(address).ListOffsets(
                        request, timeout=max(min(self._request_timeout_s, deadline - time.monotonic()), 0.001)
                    )
                except ValueError as closed:  # the channel was closed: close() ran meanwhile
                    raise IllegalStateError("the consumer is closed") from closed
                except grpc.RpcError as rpc_error:
                    last_error = translate_rpc_error(rpc_error, address, "ListOffsets")
                    if not last_error.retriable:
                        raise last_error from None
                    self._metadata.request_update()
                    continue
                for result in response.results:
                    tp = TopicPartition(result.topic, result.partition)
                    if tp not in pending:
                        continue
                    error = error_from_detail(result.error, f"ListOffsets for {tp} on {address}")
                    if error is None:
                        results[tp] = result
                        del pending[tp]
                    elif error.retriable:
                        last_error = error
                        self._metadata.request_update()
                    else:
                        raise error
            if pending:
                time.sleep(min(self._backoff_s, max(deadline - time.monotonic(), 0)))
        return results

    # =============================================================================================
    # The fetcher thread.

    def _wake_fetcher(self) -> None:
        with self._lock:
            self._wake_fetcher_locked()

    def _wake_fetcher_locked(self) -> None:
        self._fetcher_needs_run = True
        self._fetcher_wakeup.notify()

    def _post(self, event: tuple) -> None:
        with self._lock:
            self._events.append(event)
            self._wake_fetcher_locked()

    def _run_fetcher(self) -> None:
        try:
            while True:
                with self._lock:
                    if self._is_closed:
                        return
                    self._fetcher_needs_run = False
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
                wait_s = min(self._metadata.maybe_refresh(), next_s, _MAX_IDLE_S)
                with self._lock:
                    if not self._fetcher_needs_run and not self._events and not self._is_closed:
                        self._fetcher_wakeup.wait(max(wait_s, 0.001))
        except BaseException:
            logger.exception("the consumer's fetcher thread failed")
            with self._lock:
                for state in self._states.values():
                    state.error = UnknownServerError("the consumer's fetcher thread failed; see the log")
                self._data_ready.notify_all()
            raise

    def _plan(self):
        """Decide the fetches and resets to send now. Lock held."""
        now = time.monotonic()
        view = self._metadata.view
        max_wait_ms, min_bytes, max_bytes = self._fetch_request_template
        next_s = _MAX_IDLE_S
        fetch_by_node: dict[int, tuple[str, list[broker_pb2.PartitionFetch], dict]] = {}
        reset_by_address: dict[str, tuple[list[broker_pb2.PartitionOffsetQuery], dict]] = {}
        needs_metadata = False
        for tp, state in self._states.items():
            if state.error is not None or state.is_fetching or state.is_resetting:
                continue
            if state.retry_at_s > now:
                next_s = min(next_s, state.retry_at_s - now)
                continue
            if state.next_offset is None and state.reset_to is None:
                continue  # auto_offset_reset="none": poll() raises until seek()
            leader = view.leader(tp.topic, tp.partition)
            if leader is None:
                needs_metadata = True
                continue
            node, epoch = leader
            if state.next_offset is None:
                queries, generations = reset_by_address.setdefault(node.address, ([], {}))
                queries.append(broker_pb2.PartitionOffsetQuery(topic=tp.topic, partition=tp.partition, timestamp=state.reset_to))
                generations[tp] = state.generation
                state.is_resetting = True
                continue
            if state.is_paused or state.buffered_bytes >= self._partition_max_bytes:
                continue
            if node.node_id in self._fetching_nodes:
                continue
            entry = fetch_by_node.setdefault(node.node_id, (node.address, [], {}))
            entry[1].append(
                broker_pb2.PartitionFetch(
                    topic=tp.topic,
                    partition=tp.partition,
                    fetch_offset=state.fetch_offset,
                    partition_max_bytes=self._partition_max_bytes,
                    current_leader_epoch=epoch,
                )
            )
            entry[2][tp] = state.generation
        if needs_metadata:
            self._needs_metadata = True
        fetches = []
        for node_id, (address, partitions, generations) in fetch_by_node.items():
            for tp in generations:
                self._states[tp].is_fetching = True
            self._fetching_nodes.add(node_id)
            request = broker_pb2.FetchRequest(
                max_wait_ms=max_wait_ms,
                min_bytes=min_bytes,
                max_bytes=max_bytes,
                partitions=partitions,
                client_id=self._transport.client_id,
            )
            fetches.append((address, request, node_id, generations))
        resets = [
            (address, broker_pb2.ListOffsetsRequest(partitions=queries), generations)
            for address, (queries, generations) in reset_by_address.items()
        ]
        return fetches, resets, next_s

    def _send_fetch(self, address: str, request, node_id: int, generations: dict) -> None:
        timeout_s = request.max_wait_ms / 1000 + self._request_timeout_s
        try:
            future = self._transport.stub(address).Fetch.future(request, timeout=timeout_s)
        except ValueError as error:  # the channel closed: the consumer is closing
            self._post(("fetch", address, node_id, generations, None, error))
            return
        with self._lock:
            self._fetch_calls[node_id] = (future, set(generations))
            # A seek that came between planning and now could not cancel what did not exist yet.
            is_interrupted = node_id in self._interrupted_nodes or any(
                tp not in self._states or self._states[tp].generation != generation
                for tp, generation in generations.items()
            )
            self._interrupted_nodes.discard(node_id)
        future.add_done_callback(lambda done: self._post(("fetch", address, node_id, generations, done, None)))
        if is_interrupted:
            future.cancel()

    def _interrupt_fetches(self, partitions: Iterable[TopicPartition] | None) -> None:
        """Cancel outstanding long polls that hold up these partitions (all when None).

        A seek, a new assignment or a resume would otherwise wait for a parked fetch to return
        (up to fetch_max_wait_ms) before the partition is fetched from its new position.
        """
        view = self._metadata.view
        with self._lock:
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
            future = self._transport.stub(address).ListOffsets.future(request, timeout=self._request_timeout_s)
        except ValueError as error:
            self._post(("reset", address, generations, None, error))
            return
        future.add_done_callback(lambda done: self._post(("reset", address, generations, done, None)))

    def _handle_event(self, event: tuple) -> None:
        if event[0] == "fetch":
            self._on_fetch(*event[1:])
        else:
            self._on_reset(*event[1:])

    def _outcome(self, future, failure, address: str, what: str):
        """(response, None) or (None, FreshetError) of a finished call."""
        if future is None:
            return None, UnknownServerError(f"{what} on {address} could not start: {failure}")
        try:
            return future.result(), None
        except grpc.RpcError as rpc_error:
            return None, translate_rpc_error(rpc_error, address, what)
        except grpc.FutureCancelledError:
            return None, UnknownServerError(f"{what} on {address} was cancelled")

    def _on_fetch(self, address: str, node_id: int, generations: dict, future, failure) -> None:
        """Buffer a fetch response's batches. Lock held."""
        self._fetching_nodes.discard(node_id)
        if node_id in self._fetch_calls and self._fetch_calls[node_id][0] is future:
            del self._fetch_calls[node_id]
        now = time.monotonic()
        if future is not None and future.cancelled():
            # We cut the long poll short (a seek or an assignment): fetch again at once.
            for tp, generation in generations.items():
                state = self._states.get(tp)
                if state is not None and state.generation == generation:
                    state.is_fetching = False
            return
        response, error = self._outcome(future, failure, address, "Fetch")
        self._metrics["fetch_total"] += 1
        if error is not None:
            logger.info("fetch from %s failed: %s", address, error)
            self._needs_metadata = True
            for tp, generation in generations.items():
                state = self._states.get(tp)
                if state is not None and state.generation == generation:
                    state.is_fetching = False
                    state.retry_at_s = now + self._backoff_s
            return
        is_new_data = False
        for result in response.results:
            tp = TopicPartition(result.topic, result.partition)
            state = self._states.get(tp)
            if state is None or generations.get(tp) != state.generation:
                continue
            state.is_fetching = False
            if result.error.code != common_pb2.NONE:
                # The description is built only for a failure, not for every partition fetched.
                partition_error = error_from_detail(result.error, f"fetch {tp} from {address}")
                assert partition_error is not None
                self._on_fetch_error(state, partition_error, now)
                continue
            state.high_watermark = result.high_watermark
            state.log_start_offset = result.log_start_offset
            data = result.records
            if not data:
                continue
            self._metrics["bytes_fetched_total"] += len(data)
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
                    f"{tp}: a fetched batch near offset {state.fetch_offset} is malformed ({corrupt}); "
                    f"seek past it to continue",
                    topic_partition=tp,
                    offset=state.fetch_offset,
                )
                is_new_data = True
        # Partitions the broker did not answer for are fetched again.
        for tp, generation in generations.items():
            state = self._states.get(tp)
            if state is not None and state.generation == generation:
                state.is_fetching = False
        if is_new_data:
            self._data_ready.notify_all()

    def _on_fetch_error(self, state: _PartitionState, error: FreshetError, now: float) -> None:
        tp = state.tp
        if isinstance(error, OffsetOutOfRangeError):
            if self._reset_default is None:
                state.error = OffsetOutOfRangeError(
                    f"offset {state.fetch_offset} of {tp} is out of range [{error.log_start_offset}, "
                    f"{error.log_end_offset}) and auto_offset_reset is 'none': seek() to continue",
                    log_start_offset=error.log_start_offset,
                    log_end_offset=error.log_end_offset,
                    topic_partition=tp,
                )
                self._data_ready.notify_all()
                return
            logger.info("%s: offset %s out of range, resetting to %s", tp, state.fetch_offset, self.config["auto_offset_reset"])
            state.seek(0)
            state.next_offset = None
            state.fetch_offset = None
            state.reset_to = self._reset_default
            return
        if error.retriable or error.code == common_pb2.UNKNOWN_SERVER_ERROR:
            if isinstance(error, InvalidMetadataError) or error.code == common_pb2.UNKNOWN_LEADER_EPOCH:
                self._needs_metadata = True
                if error.leader is not None:
                    self._leader_hints.append((tp, error.leader, error.leader_epoch))
            logger.debug("fetch %s: %s; retrying", tp, error)
            state.retry_at_s = now + self._backoff_s
            return
        if isinstance(error, RecordTooLargeError | CorruptRecordError):
            error.topic_partition = tp
        state.error = error
        self._data_ready.notify_all()

    def _on_reset(self, address: str, generations: dict, future, failure) -> None:
        """Apply ListOffsets answers for partitions being reset. Lock held."""
        response, error = self._outcome(future, failure, address, "ListOffsets")
        now = time.monotonic()
        answered = {}
        if response is not None:
            answered = {TopicPartition(r.topic, r.partition): r for r in response.results}
        for tp, generation in generations.items():
            state = self._states.get(tp)
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
                    state.retry_at_s = now + self._backoff_s
                else:
                    state.error = partition_error
                    self._data_ready.notify_all()
                continue
            state.next_offset = result.offset
            state.fetch_offset = result.offset
            state.reset_to = None
            self._data_ready.notify_all()

    # =============================================================================================
    # Closing and introspection.

    def metrics(self) -> dict[str, float]:
        """Counters: records_consumed_total, bytes_fetched_total, fetch_total, buffered_bytes."""
        with self._lock:
            metrics = dict(self._metrics)
            metrics["buffered_bytes"] = sum(state.buffered_bytes for state in self._states.values())
            return metrics

    def close(self) -> None:
        """Commit (auto commit), leave the group, stop fetching and release threads. Idempotent."""
        with self._lock:
            is_closed = self._is_closed
        if not is_closed:
            self._close_group()
        with self._lock:
            if self._is_closed:
                return
            self._is_closed = True
            self._fetcher_wakeup.notify_all()
            self._data_ready.notify_all()
        if threading.current_thread() is not self._fetcher:
            self._fetcher.join(5)
        self._metadata.close()
        self._transport.close()

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class _CallbackListener(ConsumerRebalanceListener):
    def __init__(self, on_revoked, on_assigned, on_lost) -> None:
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned
        self._on_lost = on_lost

    def on_partitions_revoked(self, revoked):
        if self._on_revoked is not None:
            self._on_revoked(revoked)

    def on_partitions_assigned(self, assigned):
        if self._on_assigned is not None:
            self._on_assigned(assigned)

    def on_partitions_lost(self, lost):
        if self._on_lost is not None:
            self._on_lost(lost)
        else:
            self.on_partitions_revoked(lost)


def _log_auto_commit_failure(future: concurrent.futures.Future) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.warning("auto commit failed: %s", future.exception())
