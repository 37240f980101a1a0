"""Consumer lag in time: how far behind, in seconds, every group this coordinator serves is.

Owns `LagTracker`: on a timer (`group.lag.refresh.interval.ms`), it gathers the committed offset
of every partition of every group loaded here, asks each partition's leader broker ONE
`Replication.RecordTimestamps` call per refresh for the timestamps of the records at those offsets
(the leader reads one batch header per query through the offset index; nothing is decoded), and
keeps, per group and partition, `PartitionLag`: the age of the oldest uncommitted record (the
measurement's wall clock minus that record's timestamp, never negative), 0 when the committed
offset reached the high watermark, unknown (None) while the leader cannot be asked or the batch
carries no timestamp. The cost per refresh is one RPC per leader broker and one header read per
distinct (partition, committed offset); nothing happens per record or per commit.

Readers (`lag_of`, `topic_summaries`) see the last completed refresh: values are at most one
interval plus one round trip old, and `measured_at_ms` says when. A refresh replaces the whole
table, so groups deleted or moved to another coordinator disappear at the next refresh.

What an answer means inside a batch: the leader answers the batch's first timestamp, which is at or
before the record's own CreateTime when producers stamp in order, so lag is over-estimated by at
most the batch's time span (linger.ms, typically milliseconds); LogAppendTime batches are exact.

`lag_seconds_of` is the pure core (one leader answer + the clock -> a lag); `LagTracker.refresh`
does the I/O through one seam, `ask(leader_id, request)`, which the runtime implements (a local
call when this broker leads, else the Replication stub of the replica fetcher's channels).

Imports: asyncio, freshet.v1, freshet.server. Thread-safety: not thread-safe; the node's event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping

import grpc
from freshet.server.tasks import cancel_and_wait
from freshet.v1 import common_pb2, group_pb2, replication_pb2

logger = logging.getLogger(__name__)

TopicPartition = tuple[str, int]
#: A group's committed offsets as the tracker needs them: group id -> {(topic, partition): offset}.
CommittedOffsets = Mapping[str, Mapping[TopicPartition, int]]
Ask = Callable[[int, replication_pb2.RecordTimestampsRequest], Awaitable[replication_pb2.RecordTimestampsResponse]]

NO_LEADER = -1
NO_TIMESTAMP = -1


@dataclasses.dataclass(frozen=True, slots=True)
class PartitionLag:
    """One group's lag on one partition at one measurement. Thread-safe (immutable)."""

    committed_offset: int
    lag_seconds: float | None
    """Age of the oldest uncommitted record, >= 0; 0 when caught up; None when unknown."""
    high_watermark: int
    """-1 when the leader did not answer."""
    measured_at_ms: int

    @property
    def lag_records(self) -> int | None:
        """High watermark - committed offset (>= 0), None when the leader did not answer."""
        return None if self.high_watermark < 0 else max(self.high_watermark - self.committed_offset, 0)


@dataclasses.dataclass(frozen=True, slots=True)
class TopicLag:
    """A group's lag on one topic: the worst partition in time, the sum in records, and whether it
    is over the group's alert threshold. Thread-safe (immutable)."""

    group: str
    topic: str
    lag_seconds: float | None
    lag_records: int | None
    is_alerting: bool


def lag_seconds_of(result: replication_pb2.RecordTimestampResult, now_ms: int) -> float | None:
    """The lag one leader answer gives: 0 when caught up, now - timestamp (>= 0) in seconds,
    None when the answer is an error or the batch carries no timestamp."""
    if result.error.code != common_pb2.ErrorCode.NONE:
        return None
    if result.is_caught_up:
        return 0.0
    if result.timestamp == NO_TIMESTAMP:
        return None
    return max(now_ms - result.timestamp, 0) / 1000


def summarize(group: str, lags: Mapping[TopicPartition, PartitionLag], alert_seconds: float) -> list[TopicLag]:
    """Per topic of `lags`: max lag_seconds over known partitions, sum of records lag, and
    is_alerting (alert_seconds > 0 and the max is above it). Sorted by topic."""
    by_topic: dict[str, list[PartitionLag]] = {}
    for (topic, _), lag in lags.items():
        by_topic.setdefault(topic, []).append(lag)
    found = []
    for topic in sorted(by_topic):
        known = [lag.lag_seconds for lag in by_topic[topic] if lag.lag_seconds is not None]
        records = [lag.lag_records for lag in by_topic[topic] if lag.lag_records is not None]
        worst = max(known) if known else None
        is_alerting = alert_seconds > 0 and worst is not None and worst > alert_seconds
        found.append(TopicLag(group, topic, worst, sum(records) if records else None, is_alerting))
    return found


def add_lag_times(described: group_pb2.DescribedGroup, tracker: LagTracker | None) -> group_pb2.DescribedGroup:
    """Fill DescribeGroups' lag_times (one per committed partition, as last measured; is_known
    False before the first measurement) and lag_alert_seconds; returns `described`."""
    if tracker is None:
        return described
    measured = tracker.lag_of(described.group_id)
    for offset in described.offsets:
        lag = measured.get((offset.topic, offset.partition))
        entry = described.lag_times.add(topic=offset.topic, partition=offset.partition, high_watermark=-1)
        if lag is None:
            continue                       # committed after the last refresh: not measured yet
        entry.high_watermark = lag.high_watermark
        entry.measured_at_ms = lag.measured_at_ms
        if 0 <= lag.high_watermark <= offset.offset:
            # Committed up to what the high watermark was then: caught up as of that measurement.
            entry.lag_seconds, entry.is_known = 0.0, True
        elif lag.lag_seconds is not None:
            # The lag as of measured_at_ms (at most one refresh interval old).
            entry.lag_seconds, entry.is_known = lag.lag_seconds, True
    described.lag_alert_seconds = tracker.alert_seconds(described.group_id)
    return described


class LagTracker:
    """Lag in time of the groups one coordinator serves (see the module docstring). Event loop only.

    Args:
        committed: the committed offsets of every group loaded here now.
        leader_of: the leader broker id of a partition in this node's metadata (NO_LEADER: none).
        ask: send one RecordTimestamps request to a leader broker.
        wall_clock_ms: the clock lag is measured against (record timestamps are wall-clock ms).
        interval_ms: the refresh interval now (read at every refresh: a dynamic config).
        alert_seconds: a group's lag.alert.seconds (0: no alert).
        ask_timeout_s: bound on one leader's answer; a leader that does not answer in time leaves
            its partitions unknown for this refresh.
    """

    def __init__(
        self,
        committed: Callable[[], CommittedOffsets],
        leader_of: Callable[[str, int], int],
        ask: Ask,
        wall_clock_ms: Callable[[], int],
        interval_ms: Callable[[], int],
        alert_seconds: Callable[[str], float],
        ask_timeout_s: float = 5.0,
    ) -> None:
        self._committed = committed
        self._leader_of = leader_of
        self._ask = ask
        self._wall_clock_ms = wall_clock_ms
        self._interval_ms = interval_ms
        self.alert_seconds = alert_seconds
        self._ask_timeout_s = ask_timeout_s
        self._lags: dict[str, dict[TopicPartition, PartitionLag]] = {}
        self._task: asyncio.Task | None = None
        self.refreshes = 0
        """Completed refreshes (tests and /status)."""

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        assert self._task is None
        self._task = asyncio.create_task(self._run(), name="group-lag-refresh")

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                # A bug in one refresh must not end lag tracking for good; the next one retries.
                logger.exception("consumer lag refresh failed")
            await asyncio.sleep(max(self._interval_ms(), 1) / 1000)

    # ---- reads ---------------------------------------------------------------------------------

    def lag_of(self, group_id: str) -> dict[TopicPartition, PartitionLag]:
        """The group's last measured lag per committed partition (empty before the first refresh)."""
        return dict(self._lags.get(group_id, {}))

    def topic_summaries(self) -> list[TopicLag]:
        """Per (group, topic) measured: the gauges' values, sorted by group then topic."""
        found = []
        for group_id in sorted(self._lags):
            found.extend(summarize(group_id, self._lags[group_id], self.alert_seconds(group_id)))
        return found

    # ---- the refresh ---------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Measure every committed partition of every group loaded here (see the module docstring)."""
        committed = {group: dict(offsets) for group, offsets in self._committed().items()}
        queries: dict[int, dict[tuple[str, int, int], None]] = {}
        for offsets in committed.values():
            for (topic, partition), offset in offsets.items():
                if offset < 0:
                    continue
                leader = self._leader_of(topic, partition)
                if leader != NO_LEADER:
                    queries.setdefault(leader, {})[(topic, partition, offset)] = None
        leaders = sorted(queries)
        answers = await asyncio.gather(*(self._ask_leader(leader, queries[leader]) for leader in leaders))
        now_ms = self._wall_clock_ms()
        measured: dict[tuple[str, int, int], replication_pb2.RecordTimestampResult] = {}
        for results in answers:
            for result in results:
                measured[(result.topic, result.partition, result.offset)] = result
        self._lags = {
            group: {
                tp: self._partition_lag(measured.get((tp[0], tp[1], offset)), offset, now_ms)
                for tp, offset in sorted(offsets.items())
                if offset >= 0
            }
            for group, offsets in committed.items()
        }
        self.refreshes += 1

    @staticmethod
    def _partition_lag(result: replication_pb2.RecordTimestampResult | None, offset: int, now_ms: int) -> PartitionLag:
        if result is None or result.error.code != common_pb2.ErrorCode.NONE:
            return PartitionLag(offset, None, -1, now_ms)
        return PartitionLag(offset, lag_seconds_of(result, now_ms), result.high_watermark, now_ms)

    async def _ask_leader(
        self, leader: int, wanted: Iterable[tuple[str, int, int]]
    ) -> list[replication_pb2.RecordTimestampResult]:
        request = replication_pb2.RecordTimestampsRequest(
            queries=[replication_pb2.RecordTimestampQuery(topic=t, partition=p, offset=o) for t, p, o in wanted]
        )
        try:
            response = await asyncio.wait_for(self._ask(leader, request), self._ask_timeout_s)
        except (grpc.RpcError, TimeoutError) as error:
            logger.info("consumer lag: broker %d did not answer RecordTimestamps: %r", leader, error)
            return []
        return list(response.results)
