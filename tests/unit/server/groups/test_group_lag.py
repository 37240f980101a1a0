"""The coordinator's consumer lag in time (server/groups/lag.py) over a fake leader seam.

Goal: per group and partition, lag = (measurement clock - timestamp of the record at the committed
offset) in seconds, 0 when caught up, unknown when the leader cannot answer; one RecordTimestamps
call per leader broker per refresh, however many groups share a partition; the per-topic summary
(max in time, sum in records) and the alert against lag.alert.seconds; DescribeGroups' rows.
Method: a LagTracker with an injected wall clock and a fake `ask` recording every request and
answering from a table of (topic, partition, offset) -> (timestamp | caught up, high watermark).
Reference: the issue ("age of the oldest record not yet committed"), Burrow / kafka-lag-exporter's
time-lag estimates which this measures on the broker instead.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from freshet.server import status
from freshet.server.groups.lag import (
    NO_LEADER,
    LagTracker,
    add_lag_times,
    lag_seconds_of,
    summarize,
)
from freshet.v1 import common_pb2, group_pb2, replication_pb2

NOW_MS = 1_700_000_100_000
CAUGHT_UP = "caught up"


class FakeLeaders:
    """Leaders answering RecordTimestamps from `table`; records every request per leader."""

    def __init__(self, table, leaders, failing=()):
        self.table = table            # (topic, partition, offset) -> (timestamp | CAUGHT_UP, high watermark)
        self.leaders = leaders        # (topic, partition) -> leader id
        self.failing = set(failing)   # leader ids whose call fails
        self.requests: list[tuple[int, list[tuple[str, int, int]]]] = []

    def leader_of(self, topic, partition):
        return self.leaders.get((topic, partition), NO_LEADER)

    async def ask(self, leader, request):
        self.requests.append((leader, [(q.topic, q.partition, q.offset) for q in request.queries]))
        if leader in self.failing:
            raise TimeoutError(f"broker {leader} did not answer")
        response = replication_pb2.RecordTimestampsResponse()
        for query in request.queries:
            if self.leaders.get((query.topic, query.partition)) != leader:
                response.results.add(topic=query.topic, partition=query.partition, offset=query.offset,
                                     error=status.detail(common_pb2.ErrorCode.NOT_LEADER, "moved"))
                continue
            timestamp, high_watermark = self.table[(query.topic, query.partition, query.offset)]
            response.results.add(
                topic=query.topic, partition=query.partition, offset=query.offset, error=status.ok_detail(),
                high_watermark=high_watermark, is_caught_up=timestamp == CAUGHT_UP,
                timestamp=-1 if timestamp == CAUGHT_UP else timestamp,
            )
        return response


def make_tracker(fake, committed, alert=lambda group: 0.0, clock=lambda: NOW_MS):
    return LagTracker(
        committed=lambda: committed, leader_of=fake.leader_of, ask=fake.ask, wall_clock_ms=clock,
        interval_ms=lambda: 1000, alert_seconds=alert,
    )


def test_lag_is_clock_minus_the_timestamp_at_the_committed_offset_and_zero_when_caught_up():
    """Goal: the definition, per partition, for two groups; one call per leader broker."""
    fake = FakeLeaders(
        table={
            ("orders", 0, 10): (NOW_MS - 90_000, 50),
            ("orders", 1, 7): (CAUGHT_UP, 7),
            ("orders", 0, 50): (CAUGHT_UP, 50),
            ("audit", 0, 3): (NOW_MS - 1_500, 9),
        },
        leaders={("orders", 0): 1, ("orders", 1): 2, ("audit", 0): 1},
    )
    committed = {
        "billing": {("orders", 0): 10, ("orders", 1): 7, ("audit", 0): 3},
        "shipping": {("orders", 0): 50},
    }
    tracker = make_tracker(fake, committed)
    asyncio.run(tracker.refresh())
    billing = tracker.lag_of("billing")
    assert billing[("orders", 0)].lag_seconds == 90.0
    assert billing[("orders", 0)].lag_records == 40
    assert billing[("orders", 1)].lag_seconds == 0.0
    assert billing[("orders", 1)].lag_records == 0
    assert billing[("audit", 0)].lag_seconds == 1.5
    assert tracker.lag_of("shipping")[("orders", 0)].lag_seconds == 0.0
    assert sorted(leader for leader, _ in fake.requests) == [1, 2]
    assert sorted(next(q for leader, q in fake.requests if leader == 1)) == [
        ("audit", 0, 3), ("orders", 0, 10), ("orders", 0, 50),
    ]
    assert tracker.refreshes == 1


def test_two_groups_at_the_same_offset_cost_one_query():
    fake = FakeLeaders(table={("t", 0, 5): (NOW_MS - 2_000, 9)}, leaders={("t", 0): 3})
    tracker = make_tracker(fake, {"a": {("t", 0): 5}, "b": {("t", 0): 5}})
    asyncio.run(tracker.refresh())
    assert fake.requests == [(3, [("t", 0, 5)])]
    assert tracker.lag_of("a")[("t", 0)].lag_seconds == tracker.lag_of("b")[("t", 0)].lag_seconds == 2.0


def test_unreachable_leader_or_no_leader_leaves_the_lag_unknown_and_others_measured():
    fake = FakeLeaders(
        table={("t", 0, 1): (NOW_MS - 4_000, 2), ("t", 1, 1): (NOW_MS, 2)},
        leaders={("t", 0): 1, ("t", 1): 2},
        failing={2},
    )
    tracker = make_tracker(fake, {"g": {("t", 0): 1, ("t", 1): 1, ("t", 2): 0}})
    asyncio.run(tracker.refresh())
    lags = tracker.lag_of("g")
    assert lags[("t", 0)].lag_seconds == 4.0
    assert lags[("t", 1)].lag_seconds is None and lags[("t", 1)].lag_records is None
    assert lags[("t", 2)].lag_seconds is None             # no leader: not asked at all
    assert sorted(leader for leader, _ in fake.requests) == [1, 2]


def test_a_record_stamped_in_the_future_is_not_negative_lag_and_no_timestamp_is_unknown():
    ok = status.ok_detail()
    future = replication_pb2.RecordTimestampResult(error=ok, timestamp=NOW_MS + 60_000, high_watermark=5)
    assert lag_seconds_of(future, NOW_MS) == 0.0
    untimed = replication_pb2.RecordTimestampResult(error=ok, timestamp=-1, high_watermark=5)
    assert lag_seconds_of(untimed, NOW_MS) is None
    refused = replication_pb2.RecordTimestampResult(error=status.detail(common_pb2.ErrorCode.NOT_LEADER, "x"))
    assert lag_seconds_of(refused, NOW_MS) is None


def test_summaries_take_the_worst_partition_and_alert_above_the_threshold():
    """Goal: the gauges: max over partitions in time, sum in records, alert only when a threshold
    is set (> 0) and the worst partition is strictly above it."""
    fake = FakeLeaders(
        table={("t", 0, 0): (NOW_MS - 30_000, 10), ("t", 1, 4): (NOW_MS - 70_000, 10), ("u", 0, 0): (CAUGHT_UP, 0)},
        leaders={("t", 0): 1, ("t", 1): 1, ("u", 0): 1},
    )
    thresholds = {"g": 60.0, "h": 0.0}
    tracker = make_tracker(
        fake, {"g": {("t", 0): 0, ("t", 1): 4, ("u", 0): 0}, "h": {("t", 1): 4}}, alert=lambda group: thresholds[group]
    )
    asyncio.run(tracker.refresh())
    found = {(s.group, s.topic): s for s in tracker.topic_summaries()}
    assert (found[("g", "t")].lag_seconds, found[("g", "t")].lag_records, found[("g", "t")].is_alerting) == (70.0, 16, True)
    assert (found[("g", "u")].lag_seconds, found[("g", "u")].is_alerting) == (0.0, False)
    assert (found[("h", "t")].lag_seconds, found[("h", "t")].is_alerting) == (70.0, False)   # no threshold
    thresholds["g"] = 70.0
    assert not next(s for s in tracker.topic_summaries() if (s.group, s.topic) == ("g", "t")).is_alerting
    assert summarize("x", {}, 1.0) == []


def test_the_table_follows_the_groups_and_the_clock_between_refreshes():
    """Goal: a refresh replaces everything: a group gone from the coordinator disappears; the next
    measurement uses the clock of its own refresh."""
    clock = [NOW_MS]
    fake = FakeLeaders(table={("t", 0, 0): (NOW_MS - 1_000, 3)}, leaders={("t", 0): 1})
    committed = {"g": {("t", 0): 0}}
    tracker = make_tracker(fake, committed, clock=lambda: clock[0])
    asyncio.run(tracker.refresh())
    assert tracker.lag_of("g")[("t", 0)].lag_seconds == 1.0
    clock[0] += 5_000
    asyncio.run(tracker.refresh())
    assert tracker.lag_of("g")[("t", 0)].lag_seconds == 6.0
    assert tracker.lag_of("g")[("t", 0)].measured_at_ms == clock[0]
    committed.clear()
    asyncio.run(tracker.refresh())
    assert tracker.lag_of("g") == {}
    assert tracker.topic_summaries() == []


def test_describe_rows_carry_the_last_measurement_and_zero_once_committed_past_it():
    fake = FakeLeaders(table={("t", 0, 2): (NOW_MS - 12_000, 8), ("t", 1, 0): (NOW_MS - 3_000, 4)},
                       leaders={("t", 0): 1, ("t", 1): 1})
    tracker = make_tracker(fake, {"g": {("t", 0): 2, ("t", 1): 0}}, alert=lambda group: 30.0)
    asyncio.run(tracker.refresh())
    described = group_pb2.DescribedGroup(group_id="g")
    described.offsets.add(topic="t", partition=0, offset=2)
    described.offsets.add(topic="t", partition=1, offset=4)       # committed up to the measured HW since
    described.offsets.add(topic="t", partition=2, offset=0)       # committed after the refresh
    add_lag_times(described, tracker)
    rows = {(row.topic, row.partition): row for row in described.lag_times}
    assert (rows[("t", 0)].is_known, rows[("t", 0)].lag_seconds, rows[("t", 0)].measured_at_ms) == (True, 12.0, NOW_MS)
    assert (rows[("t", 1)].is_known, rows[("t", 1)].lag_seconds) == (True, 0.0)
    assert (rows[("t", 2)].is_known, rows[("t", 2)].high_watermark) == (False, -1)
    assert described.lag_alert_seconds == 30.0
    assert add_lag_times(group_pb2.DescribedGroup(group_id="g"), None).lag_times == []


def test_a_grpc_failure_of_one_leader_is_contained():
    class Failing(FakeLeaders):
        async def ask(self, leader, request):
            raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata())

    fake = Failing(table={}, leaders={("t", 0): 1})
    tracker = make_tracker(fake, {"g": {("t", 0): 0}})
    asyncio.run(tracker.refresh())
    assert tracker.lag_of("g")[("t", 0)].lag_seconds is None


def test_the_refresh_loop_runs_on_its_interval_and_stops():
    async def scenario():
        fake = FakeLeaders(table={("t", 0, 0): (CAUGHT_UP, 0)}, leaders={("t", 0): 1})
        tracker = LagTracker(lambda: {"g": {("t", 0): 0}}, fake.leader_of, fake.ask, lambda: NOW_MS,
                             interval_ms=lambda: 100, alert_seconds=lambda group: 0.0)
        tracker.start()
        await asyncio.sleep(0.35)
        await tracker.close()
        count = tracker.refreshes
        await asyncio.sleep(0.25)
        return count, tracker.refreshes

    count, later = asyncio.run(scenario())
    assert count >= 2                 # refreshes at 0, 100, 200, 300 ms (fewer on a loaded machine)
    assert later == count


@pytest.mark.parametrize("alert", [0.0, 5.0])
def test_describe_reports_the_threshold(alert):
    fake = FakeLeaders(table={}, leaders={})
    tracker = make_tracker(fake, {}, alert=lambda group: alert)
    assert add_lag_times(group_pb2.DescribedGroup(group_id="g"), tracker).lag_alert_seconds == alert
