"""The consumer's offsets: group commits and committed offsets, and ListOffsets lookups.

Owns

- `OffsetCommitter`: a group's committed offsets for one consumer: `commit_sync` (OffsetCommit to
  the coordinator with this member's id and epoch; a commit the group refuses because the member
  was fenced or its partitions moved becomes CommitFailedError), `commit_async` (one background
  thread, so async commits stay in order), auto commit every `auto_commit_interval_ms`, and
  `committed` (OffsetFetch);
- `OffsetLookup`: blocking `ListOffsets` in the caller's thread (beginning and end offsets,
  offsets for times), sent to each partition's leader and retried (metadata refresh, backoff)
  until the deadline.

Resets of partitions without a position are not here: the fetcher thread resolves them.

Imports: grpc (through the transport), `freshet.v1`, `freshet.client`. Forbidden: server,
metadata, cli, pysyncobj, and storage (import-linter contracts).

Thread-safety: both classes are thread-safe (the coordinator client and transport are; the
committer's executor is created under the subscription's lock).
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Callable, Mapping

import grpc
from freshet.client._group import CoordinatorClient
from freshet.client._metadata import Metadata
from freshet.client._retry import Deadline, Retry, retry_until_deadline
from freshet.client._subscription import SubscriptionState
from freshet.client._transport import Transport, error_from_detail, raise_for_detail, translate_rpc_error
from freshet.client.errors import (
    ClientTimeoutError,
    CommitFailedError,
    FencedMemberEpochError,
    FreshetError,
    IllegalStateError,
    StaleMemberEpochError,
    UnknownMemberError,
)
from freshet.client.structs import TopicPartition
from freshet.v1 import broker_pb2, common_pb2, group_pb2

logger = logging.getLogger("freshet.client.consumer")

#: Errors that mean this member no longer owns what it commits.
FENCED = (UnknownMemberError, FencedMemberEpochError, StaleMemberEpochError)


class OffsetCommitter:
    """Commits and reads a group's offsets for one consumer. Thread-safe."""

    def __init__(
        self,
        coordinator: CoordinatorClient,
        subscription: SubscriptionState,
        *,
        member_epoch: Callable[[], tuple[str, int]],
        api_timeout_s: float,
        auto_commit_interval_s: float,
    ) -> None:
        """
        Args:
            member_epoch: (member id, member epoch) to commit with; ("", -1) outside a group
                membership (an "empty group" commit of assign() with a group_id).
        """
        self._coordinator = coordinator
        self.group_id = coordinator.group_id
        self._subscription = subscription
        self._member_epoch = member_epoch
        self._api_timeout_s = api_timeout_s
        self._auto_commit_s = auto_commit_interval_s
        self._next_auto_commit_s = time.monotonic() + auto_commit_interval_s
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    def commit_async(
        self,
        offsets: dict[TopicPartition, int],
        callback: Callable[[dict[TopicPartition, int], BaseException | None], None] | None = None,
    ) -> concurrent.futures.Future:
        """Commit on the committer's thread, in order with other async commits."""
        with self._subscription.lock:
            self._subscription.check_open()
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="freshet-commit")
            executor = self._executor

        def run():
            error = None
            try:
                self.commit_sync(offsets, self._api_timeout_s)
            except FreshetError as commit_error:
                error = commit_error
            if callback is not None:
                callback(offsets, error)
            if error is not None:
                raise error
            return offsets

        return executor.submit(run)

    def maybe_auto_commit(self, positions: Callable[[], dict[TopicPartition, int]]) -> None:
        """Commit `positions()` asynchronously when auto_commit_interval_ms has passed."""
        now = time.monotonic()
        if now < self._next_auto_commit_s:
            return
        self._next_auto_commit_s = now + self._auto_commit_s
        offsets = positions()
        if offsets:
            future = self.commit_async(offsets)
            future.add_done_callback(_log_auto_commit_failure)

    def commit_sync(self, offsets: Mapping[TopicPartition, int], timeout_s: float) -> None:
        """Raises ValueError (a negative offset), CommitFailedError, ClientTimeoutError, FreshetError."""
        if not offsets:
            return
        for tp, offset in offsets.items():
            if not isinstance(offset, int) or offset < 0:
                raise ValueError(f"offset for {tp} must be an int >= 0, not {offset!r}")
        member_id, epoch = self._member_epoch()
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
        except FENCED as error:
            raise CommitFailedError(
                f"commit to group {self.group_id!r} refused: this consumer lost its membership or partitions ({error})"
            ) from error
        for result in response.results:
            error = error_from_detail(result.error, f"commit {result.topic}-{result.partition}")
            if error is None:
                continue
            if isinstance(error, FENCED):
                raise CommitFailedError(
                    f"commit of {result.topic}-{result.partition} to group {self.group_id!r} refused: {error}",
                    topic_partition=TopicPartition(result.topic, result.partition),
                ) from error
            raise error

    def committed(self, wanted: list[TopicPartition], timeout_s: float) -> dict[TopicPartition, int | None]:
        """{partition: committed offset, or None when nothing is committed} (OffsetFetch)."""
        request = group_pb2.OffsetFetchRequest(
            group_id=self.group_id,
            partitions=[common_pb2.TopicPartition(topic=tp.topic, partition=tp.partition) for tp in wanted],
        )
        response = self._coordinator.call("OffsetFetch", request, timeout_s)
        found: dict[TopicPartition, int | None] = {tp: None for tp in wanted}
        for result in response.results:
            raise_for_detail(result.error, f"committed offset of {result.topic}-{result.partition}")
            found[TopicPartition(result.topic, result.partition)] = result.offset if result.offset >= 0 else None
        return found

    def close(self) -> None:
        """Wait for async commits in progress."""
        executor = self._executor
        if executor is not None:
            executor.shutdown(wait=True)


class OffsetLookup:
    """ListOffsets on partition leaders, in the caller's thread. Thread-safe."""

    def __init__(self, metadata: Metadata, transport: Transport, *, request_timeout_s: float, backoff_s: float) -> None:
        self._metadata = metadata
        self._transport = transport
        self._request_timeout_s = request_timeout_s
        self._backoff_s = backoff_s

    def list_offsets(
        self, queries: dict[TopicPartition, int], timeout_s: float
    ) -> dict[TopicPartition, broker_pb2.PartitionOffsetResult]:
        """{partition: result} for {partition: timestamp, EARLIEST or LATEST}.

        Raises:
            FreshetError: a non-retriable error of a partition or a topic.
            ClientTimeoutError: partitions still unanswered at the deadline (cause: the last error).
            IllegalStateError: the consumer closed meanwhile.
        """
        self._metadata.add_topics({tp.topic for tp in queries})
        results: dict[TopicPartition, broker_pb2.PartitionOffsetResult] = {}
        pending = dict(queries)
        if not pending:
            return results

        def attempt(deadline: Deadline) -> dict[TopicPartition, broker_pb2.PartitionOffsetResult]:
            view = self._metadata.view
            by_leader = self._by_leader(view, pending)
            if not by_leader:
                self._metadata.wait_for_update(view.version, min(self._backoff_s * 5, max(deadline.remaining(), 0)))
                # e.g. no broker reachable; the wait above was the backoff.
                raise Retry(self._metadata.last_error, is_backoff=False)
            round_error = None
            for address, tps in by_leader.items():
                round_error = self._ask(address, tps, pending, results, deadline) or round_error
            if pending:
                raise Retry(round_error)
            return results

        return retry_until_deadline(
            attempt,
            Deadline(timeout_s),
            backoff_s=self._backoff_s,
            give_up=lambda last_error: ClientTimeoutError(
                f"ListOffsets for {', '.join(str(tp) for tp in pending)} got no answer in "
                f"{int(timeout_s * 1000)} ms" + (f": {last_error}" if last_error else "")
            ),
        )

    @staticmethod
    def _by_leader(view, pending: dict[TopicPartition, int]) -> dict[str, list[TopicPartition]]:
        """Pending partitions by their leader's address (those without a leader left out)."""
        by_leader: dict[str, list[TopicPartition]] = {}
        for tp in pending:
            leader = view.leader(tp.topic, tp.partition)
            if leader is None:
                info = view.topics.get(tp.topic)
                if info is not None and info.error is not None and not info.error.retriable:
                    raise info.error
                continue
            by_leader.setdefault(leader[0].address, []).append(tp)
        return by_leader

    def _ask(self, address: str, tps: list[TopicPartition], pending: dict, results: dict, deadline: Deadline):
        """One ListOffsets to one leader: answered partitions move from `pending` to `results`.

        Returns the last retriable error (None when there was none); raises a non-retriable one.
        """
        request = broker_pb2.ListOffsetsRequest(
            partitions=[
                broker_pb2.PartitionOffsetQuery(topic=tp.topic, partition=tp.partition, timestamp=pending[tp])
                for tp in tps
            ]
        )
        try:
            response = self._transport.stub(address).ListOffsets(
                request, timeout=deadline.request_timeout(self._request_timeout_s)
            )
        except ValueError as closed:  # the channel was closed: close() ran meanwhile
            raise IllegalStateError("the consumer is closed") from closed
        except grpc.RpcError as rpc_error:
            error = translate_rpc_error(rpc_error, address, "ListOffsets")
            if not error.retriable:
                raise error from None
            self._metadata.request_update()
            return error
        last_error = None
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
        return last_error


def _log_auto_commit_failure(future: concurrent.futures.Future) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.warning("auto commit failed: %s", future.exception())
