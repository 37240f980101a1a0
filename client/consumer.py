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

Layout: `Consumer` is a facade over `_subscription.SubscriptionState` (assignment, positions, the
lock), `_fetcher.Fetcher` (the fetcher thread and record decoding), `_offsets` (commits, committed
offsets, ListOffsets lookups) and `_reconciler.GroupReconciler` (subscription and rebalances);
its options are validated by `_config.ConsumerConfig`.

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
from collections.abc import Callable, Iterable, Mapping, Sequence

from freshet.client._config import ConsumerConfig
from freshet.client._fetcher import Fetcher, FetchSettings
from freshet.client._group import CoordinatorClient, Membership
from freshet.client._metadata import Metadata
from freshet.client._offsets import OffsetCommitter, OffsetLookup
from freshet.client._reconciler import (
    CallbackListener,
    ConsumerRebalanceListener,
    GroupReconciler,
    subscription_arguments,
)
from freshet.client._subscription import EARLIEST, LATEST, RESETS, SubscriptionState
from freshet.client._transport import Transport, client_transport
from freshet.client.errors import FreshetError, IllegalStateError
from freshet.client.structs import ConsumerRecord, OffsetAndTimestamp, TopicPartition
from freshet.v1 import broker_pb2

__all__ = ["EARLIEST", "LATEST", "Consumer", "ConsumerRebalanceListener"]

logger = logging.getLogger("freshet.client.consumer")


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
        stalled_request_ms: int = 1000,
        transport: Transport | None = None,
        **security,
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
            stalled_request_ms: a fetch unanswered this long past fetch_max_wait_ms makes the
                consumer refresh metadata (asking other brokers first) a few times a second; when a
                fetched partition has a new leader, the fetch is cancelled and the partition is
                fetched from the new leader, instead of waiting out request_timeout_ms.
            transport: the connections to use instead of opening gRPC channels to
                bootstrap_servers (tests pass one over an in-memory channel); its bootstrap list is
                used, and closing it is left to the caller.
            **security: kafka-python's names (freshet.client._security): security_protocol
                ("PLAINTEXT", "SSL", "SASL_SSL"), ssl_cafile, ssl_certfile, ssl_keyfile,
                sasl_mechanism ("SCRAM-SHA-512" default, "SCRAM-SHA-256", "PLAIN"),
                sasl_plain_username, sasl_plain_password (never logged or shown). Wrong
                credentials fail the first call with SaslAuthenticationFailedError (not retriable).

        Raises:
            ValueError: an option out of range, or both bootstrap_servers and transport.
        """
        options = ConsumerConfig(
            group_id=group_id,
            client_id=client_id,
            auto_offset_reset=auto_offset_reset,
            enable_auto_commit=enable_auto_commit,
            max_poll_records=max_poll_records,
            fetch_min_bytes=fetch_min_bytes,
            fetch_max_wait_ms=fetch_max_wait_ms,
            fetch_max_bytes=fetch_max_bytes,
            max_partition_fetch_bytes=max_partition_fetch_bytes,
            check_crcs=check_crcs,
            request_timeout_ms=request_timeout_ms,
            retry_backoff_ms=retry_backoff_ms,
            metadata_max_age_ms=metadata_max_age_ms,
            default_api_timeout_ms=default_api_timeout_ms,
            group_instance_id=group_instance_id,
            auto_commit_interval_ms=auto_commit_interval_ms,
            session_timeout_ms=session_timeout_ms,
            max_poll_interval_ms=max_poll_interval_ms,
            group_remote_assignor=group_remote_assignor,
            stalled_request_ms=stalled_request_ms,
        )
        self.group_id = group_id
        self._options = options
        self.config = options.as_dict()
        # A response holds at most fetch_max_bytes plus one batch per partition beyond its share:
        # the transport's default max_receive_bytes (-1, unbounded) must stay, as gRPC's 4 MiB
        # default would refuse ordinary fetches.
        self._transport, self._owns_transport = client_transport(bootstrap_servers, transport, client_id=client_id, security=security)
        self._build(options)

    def _build(self, options: ConsumerConfig) -> None:
        """Create the parts the facade delegates to, and start the fetcher thread."""
        self._api_timeout_s = options.default_api_timeout_ms / 1000
        backoff_s = options.retry_backoff_ms / 1000
        request_timeout_s = options.request_timeout_ms / 1000
        self._metadata = Metadata(
            self._transport,
            metadata_max_age_ms=options.metadata_max_age_ms,
            retry_backoff_ms=options.retry_backoff_ms,
            request_timeout_ms=options.request_timeout_ms,
        )
        self._subscription = SubscriptionState(RESETS[options.auto_offset_reset])
        settings = FetchSettings(
            max_wait_ms=options.fetch_max_wait_ms,
            min_bytes=options.fetch_min_bytes,
            max_bytes=options.fetch_max_bytes,
            partition_max_bytes=options.max_partition_fetch_bytes,
            check_crcs=options.check_crcs,
            request_timeout_s=request_timeout_s,
            backoff_s=backoff_s,
            auto_offset_reset=options.auto_offset_reset,
            client_id=options.client_id,
            stalled_s=options.stalled_request_ms / 1000,
        )
        self._fetcher = Fetcher(self._subscription, self._metadata, self._transport, settings)
        self._lookup = OffsetLookup(self._metadata, self._transport, request_timeout_s=request_timeout_s, backoff_s=backoff_s)
        self._coordinator: CoordinatorClient | None = None
        self._committer: OffsetCommitter | None = None
        self._group: GroupReconciler | None = None
        if options.group_id is not None:
            self._build_group(options, backoff_s, request_timeout_s)
        self._metadata.add_listener(self._subscription.wake_fetcher)
        self._fetcher.start()

    def _build_group(self, options: ConsumerConfig, backoff_s: float, request_timeout_s: float) -> None:
        assert options.group_id is not None
        self._coordinator = CoordinatorClient(
            self._transport, options.group_id, retry_backoff_s=backoff_s, request_timeout_s=request_timeout_s
        )
        self._committer = OffsetCommitter(
            self._coordinator,
            self._subscription,
            member_epoch=lambda: self._group.member_epoch() if self._group is not None else ("", -1),
            api_timeout_s=self._api_timeout_s,
            auto_commit_interval_s=options.auto_commit_interval_ms / 1000,
        )
        self._group = GroupReconciler(
            self._coordinator,
            self._subscription,
            self._fetcher,
            self._committer,
            assign=self._set_assignment,
            membership_options={
                "client_id": options.client_id,
                "instance_id": options.group_instance_id,
                "session_timeout_ms": options.session_timeout_ms,
                "max_poll_interval_ms": options.max_poll_interval_ms,
                "assignor": options.group_remote_assignor,
                "retry_backoff_s": backoff_s,
            },
            is_auto_commit=options.is_auto_commit,
            api_timeout_s=self._api_timeout_s,
        )

    @property
    def bootstrap_servers(self) -> list[str]:
        return list(self._transport.bootstrap_addresses)

    @property
    def _membership(self) -> Membership | None:
        """The group membership while subscribed (heartbeat thread), else None."""
        return self._group.membership if self._group is not None else None

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
        wanted = self._subscription.set_assignment(partitions, committed)
        self._metadata.add_topics({tp.topic for tp in wanted})
        self._fetcher.interrupt(None)

    def assignment(self) -> set[TopicPartition]:
        """The partitions assigned now."""
        return self._subscription.assigned()

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Make `offset` the next offset poll() returns for `partition` (drops its buffered records).

        Raises:
            IllegalStateError: the partition is not assigned.
            ValueError: a negative offset.
        """
        self._subscription.seek(partition, offset)
        self._fetcher.interrupt([TopicPartition(*partition)])

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        """Start each partition (every assigned one when none is given) at its log start offset.

        Evaluated lazily, on the next poll() or position(), as in Kafka.
        """
        self._fetcher.interrupt(self._subscription.seek_to(EARLIEST, partitions))

    def seek_to_end(self, *partitions: TopicPartition) -> None:
        """Start each partition (every assigned one when none is given) at its end (high watermark).

        Evaluated lazily, on the next poll() or position(), as in Kafka.
        """
        self._fetcher.interrupt(self._subscription.seek_to(LATEST, partitions))

    def position(self, partition: TopicPartition, timeout_ms: int | None = None) -> int:
        """The offset of the next record poll() will return for `partition`.

        Blocks (up to `timeout_ms`, default default_api_timeout_ms) while a reset is being resolved.

        Raises:
            IllegalStateError: the partition is not assigned.
            NoOffsetForPartitionError: no position and auto_offset_reset is "none".
            OffsetOutOfRangeError: the position went out of range and auto_offset_reset is "none".
            ClientTimeoutError: the reset was not resolved in time (brokers unreachable).
        """
        timeout_s = self._api_timeout_s if timeout_ms is None else timeout_ms / 1000
        return self._subscription.position(partition, timeout_s, timeout_ms, lambda: self._metadata.last_error)

    def pause(self, *partitions: TopicPartition) -> None:
        """Stop fetching and returning records of these partitions (they stay assigned)."""
        self._subscription.set_paused(partitions, True)

    def resume(self, *partitions: TopicPartition) -> None:
        """Undo `pause` for these partitions."""
        self._subscription.set_paused(partitions, False)
        self._fetcher.interrupt([TopicPartition(*tp) for tp in partitions])

    def paused(self) -> set[TopicPartition]:
        """The paused partitions."""
        return self._subscription.paused()

    def highwater(self, partition: TopicPartition) -> int | None:
        """The high watermark seen in the last fetch of `partition`, None before the first fetch."""
        return self._subscription.highwater(partition)

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
        limit = self._options.max_poll_records if max_records is None else max_records
        if limit < 1:
            raise ValueError("max_records must be >= 1")
        deadline = time.monotonic() + max(timeout_ms, 0) / 1000
        if self._membership is not None:
            return self._poll_group(limit, deadline)
        if self._options.is_auto_commit:
            self._maybe_auto_commit()
        subscription = self._subscription
        with subscription.lock:
            subscription.check_open()
            if not subscription.states:
                raise IllegalStateError("poll() with no partitions: assign() some first")
            while True:
                subscription.check_open()
                records = self._fetcher.collect(limit)
                if records:
                    return records
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                subscription.data_ready.wait(remaining)

    def _poll_group(self, limit: int, deadline: float) -> list[ConsumerRecord]:
        """poll() of a subscribed consumer: reconcile the group's assignment between waits."""
        membership = self._membership
        assert membership is not None
        assert self._group is not None
        subscription = self._subscription
        while True:
            subscription.check_open()
            membership.on_poll()
            if self._options.is_auto_commit:
                self._maybe_auto_commit()
            self._group.reconcile(membership)
            with subscription.lock:
                subscription.check_open()
                records = self._fetcher.collect(limit) if subscription.states else []
                if records:
                    return records
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                subscription.data_ready.wait(min(remaining, 0.1))

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
        if self._group is None:
            raise IllegalStateError("subscribe() needs a group_id; without one, assign() partitions")
        names, regex = subscription_arguments(topics, pattern)
        if listener is None and (on_revoked or on_assigned or on_lost):
            listener = CallbackListener(on_revoked, on_assigned, on_lost)
        self._group.subscribe(names, regex, listener)

    def subscription(self) -> set[str] | str | None:
        """The subscribed topic names, the pattern, or None when not subscribed."""
        return self._group.subscription() if self._group is not None else None

    def unsubscribe(self) -> None:
        """Give up every partition (commit, on_partitions_revoked) and leave the group."""
        if self._group is not None:
            self._group.unsubscribe()

    # =============================================================================================
    # Committed offsets.

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
        if self._committer is None:
            raise IllegalStateError("commit() needs a group_id")
        values = self._offsets_to_commit(offsets)
        self._committer.commit_sync(values, self._api_timeout_s if timeout_ms is None else timeout_ms / 1000)

    def commit_async(
        self,
        offsets: Mapping[TopicPartition, int] | None = None,
        callback: Callable[[dict[TopicPartition, int], BaseException | None], None] | None = None,
    ) -> concurrent.futures.Future:
        """Commit in the background, in order with other async commits. Returns a Future; the
        callback gets (offsets, exception or None)."""
        if self._committer is None:
            raise IllegalStateError("commit_async() needs a group_id")
        return self._committer.commit_async(self._offsets_to_commit(offsets), callback)

    def _offsets_to_commit(self, offsets: Mapping[TopicPartition, int] | None) -> dict[TopicPartition, int]:
        if offsets is None:
            return self._subscription.positions()
        return {TopicPartition(*tp): offset for tp, offset in offsets.items()}

    def _maybe_auto_commit(self) -> None:
        assert self._committer is not None
        group = self._group
        owned = group.owned if group is not None and group.membership is not None else None
        self._committer.maybe_auto_commit(lambda: self._subscription.positions(owned))

    def committed(
        self, partitions: TopicPartition | Iterable[TopicPartition], timeout_ms: int | None = None
    ) -> int | None | dict[TopicPartition, int | None]:
        """The group's committed offsets: for one TopicPartition an int (None if nothing is
        committed); for several, {partition: int or None}.

        Raises:
            IllegalStateError: no group_id.
            ClientTimeoutError: no coordinator answered in time.
        """
        if self._committer is None:
            raise IllegalStateError("committed() needs a group_id")
        is_single = isinstance(partitions, TopicPartition)
        wanted = [partitions] if is_single else [TopicPartition(*tp) for tp in partitions]
        timeout_s = self._api_timeout_s if timeout_ms is None else timeout_ms / 1000
        found = self._committer.committed(wanted, timeout_s)
        return found[wanted[0]] if is_single else found

    def _close_group(self) -> None:
        """close(): commit, revoke and leave (subscribed), or a last commit (assigned with a group)."""
        if self._committer is None:
            return
        assert self._group is not None
        try:
            membership = self._group.membership
            if membership is not None:
                self._group.revoke_all_and_leave(membership)
            elif self._options.is_auto_commit and not self._subscription.is_empty():
                self._committer.commit_sync(self._subscription.positions(), min(self._api_timeout_s, 5.0))
        except FreshetError as error:
            logger.warning("closing consumer of group %s: %s", self.group_id, error)
        self._committer.close()

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
        self._subscription.check_open()
        timeout_s = self._api_timeout_s if timeout_ms is None else timeout_ms / 1000
        return self._lookup.list_offsets(queries, timeout_s)

    # =============================================================================================
    # Closing and introspection.

    def metrics(self) -> dict[str, float]:
        """Counters: records_consumed_total, bytes_fetched_total, fetch_total, buffered_bytes."""
        with self._subscription.lock:
            metrics = dict(self._fetcher.metrics)
            metrics["buffered_bytes"] = sum(state.buffered_bytes for state in self._subscription.states.values())
            return metrics

    def close(self) -> None:
        """Commit (auto commit), leave the group, stop fetching and release threads. Idempotent."""
        with self._subscription.lock:
            is_closed = self._subscription.is_closed
        if not is_closed:
            self._close_group()
        if not self._subscription.close():
            return
        if threading.current_thread() is not self._fetcher.thread:
            self._fetcher.thread.join(5)
        self._metadata.close()
        if self._owns_transport:
            self._transport.close()

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
