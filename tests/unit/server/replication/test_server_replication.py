"""The replication decisions as pure functions (server/replication/core.py): no network, no clock.

Goal: the high watermark is min LEO over the maximal ISR and never decreases (KIP-497); a new
leader's high watermark waits for every ISR member (Kafka); ISR shrink/expand follow Kafka's
isFollowerInSync rules with at most one AlterPartition in flight; a leader whose followers stop
acknowledging (a zombie) can never move its high watermark past what they acknowledged; the
leader's position checks and the follower's truncation follow KIP-101/279/320/595; the log start
offset (KIP-107) reaches followers up to their high watermark and the leader's low watermark is
the smallest start over live replicas (Kafka's lowWatermarkIfLeader).
Method: drive LeaderState and the functions with scripted and random (hypothesis) inputs.
"""

from __future__ import annotations

import hypothesis.strategies as st
from freshet.server.replication.core import (
    RETRY,
    START_AT,
    TRUNCATE_TO,
    UNKNOWN_OFFSET,
    LeaderState,
    PushCursor,
    check_follower_position,
    follower_log_start_offset,
    high_watermark,
    out_of_range_action,
    truncation_offset,
)
from freshet.v1 import common_pb2
from hypothesis import given, settings

E = common_pb2.ErrorCode
LAG_MS = 1000


def always(_replica: int) -> bool:
    return True


def leader(isr=(1, 2, 3), replicas=(1, 2, 3), leo=100, hw=90, epoch_start=100, now=0) -> LeaderState:
    return LeaderState(1, 5, 10, replicas, isr, epoch_start, hw, leo, now)


# -- high watermark ------------------------------------------------------------------------------


def test_high_watermark_is_min_over_the_maximal_isr_and_never_decreases():
    assert high_watermark(0, 1, 100, {2: 80, 3: 95}, (1, 2, 3)) == 80
    assert high_watermark(0, 1, 100, {2: 80, 3: 95}, (1, 3)) == 95, "replicas outside the ISR do not count"
    assert high_watermark(90, 1, 100, {2: 80, 3: 95}, (1, 2, 3)) == 90, "never decreases"
    assert high_watermark(10, 1, 100, {2: UNKNOWN_OFFSET, 3: 95}, (1, 2, 3)) == 10, "an unknown member freezes it"
    assert high_watermark(10, 1, 100, {}, (1,)) == 100, "a leader alone commits its whole log"


def test_a_new_leader_waits_for_every_isr_member_before_moving_its_high_watermark():
    """Kafka: follower LEOs are unknown after an election; the high watermark stays where the
    replica had it until each ISR member reported."""
    state = leader(hw=90)
    assert state.high_watermark == 90
    assert state.on_follower_position(2, 100, 1) is False
    assert state.high_watermark == 90
    assert state.on_follower_position(3, 97, 1) is True
    assert state.high_watermark == 97


def test_a_pending_expansion_counts_the_new_member_and_a_pending_shrink_does_not_drop_one():
    """KIP-497's maximal ISR: with an AlterPartition in flight the high watermark is computed over
    the committed ISR plus pending additions; a pending removal still counts until committed."""
    state = leader(isr=(1, 2), hw=100, leo=100)
    state.on_follower_position(2, 100, 0)
    state.on_follower_position(3, 100, 0)
    action = state.alter_isr(now_ms=0, lag_max_ms=LAG_MS, is_eligible=always)
    assert action is not None and action.added == (3,) and action.new_isr == (1, 2, 3)
    assert state.maximal_isr == (1, 2, 3)
    state.on_append(120, 1)
    state.on_follower_position(2, 120, 1)
    assert state.high_watermark == 100, "replica 3 is in the maximal ISR: its LEO holds the high watermark"
    state.on_follower_position(3, 110, 1)
    assert state.high_watermark == 110
    assert state.on_alter_isr_result(action, 2, E.NONE, 11, (1, 2, 3), 5) is False
    assert state.isr == (1, 2, 3) and state.pending is None and state.partition_epoch == 11
    # A shrink: replica 3 stops acknowledging.
    state.on_append(200, 3)
    state.on_follower_position(2, 200, 3)
    shrink = state.alter_isr(now_ms=3 + LAG_MS + 1, lag_max_ms=LAG_MS, is_eligible=always)
    assert shrink is not None and shrink.removed == (3,)
    assert state.maximal_isr == (1, 2, 3) and state.high_watermark == 110, "pending removal still counts"
    assert state.on_alter_isr_result(shrink, 3 + LAG_MS + 2, E.NONE, 12, (1, 2), 5) is True
    assert state.high_watermark == 200


def test_isr_shrinks_only_after_the_lag_time_and_an_idle_follower_at_the_log_end_stays():
    state = leader(hw=100, leo=100, now=0)
    state.on_follower_position(2, 100, 0)
    state.on_follower_position(3, 100, 0)
    assert state.alter_isr(10 * LAG_MS, LAG_MS, always) is None, "idle partition: followers at the log end are in sync"
    state.on_append(150, 10 * LAG_MS)
    state.on_follower_position(2, 150, 10 * LAG_MS + 5)
    assert state.alter_isr(10 * LAG_MS + LAG_MS, LAG_MS, always) is None, "3 was caught up at the append time + lag"
    action = state.alter_isr(10 * LAG_MS + LAG_MS + 1, LAG_MS, always)
    assert action is not None and action.removed == (3,) and action.new_isr == (1, 2)
    assert state.alter_isr(10 * LAG_MS + 2 * LAG_MS, LAG_MS, always) is None, "one AlterPartition in flight"


def test_a_follower_that_keeps_acknowledging_with_a_small_lag_stays_in_sync():
    """Caught up at t means it acknowledged everything the leader had at t (Kafka's
    lastCaughtUpTime), even if it is never exactly at the log end under constant load."""
    state = leader(hw=100, leo=100, now=0)
    state.on_follower_position(2, 100, 0)
    state.on_follower_position(3, 100, 0)
    end = 100
    for now in range(20, 20 * LAG_MS, 20):
        state.on_follower_position(2, end, now)
        state.on_follower_position(3, end, now)
        end += 10
        state.on_append(end, now)               # the followers are always one append behind
        assert state.alter_isr(now, LAG_MS, always) is None, now


def test_expansion_needs_the_high_watermark_the_epoch_start_and_an_eligible_broker():
    state = leader(isr=(1, 2), leo=300, hw=200, epoch_start=250)
    state.on_follower_position(2, 300, 0)
    state.on_follower_position(3, 240, 0)
    assert state.high_watermark == 300
    assert state.alter_isr(0, LAG_MS, always) is None, "below the high watermark"
    state.on_follower_position(3, 300, 1)
    assert state.alter_isr(1, LAG_MS, lambda replica: replica != 3) is None, "a fenced or stopping broker cannot join"
    action = state.alter_isr(1, LAG_MS, always)
    assert action is not None and action.added == (3,)


def test_a_refused_change_waits_for_newer_metadata_and_a_lost_one_is_retried():
    state = leader(isr=(1, 2), leo=100, hw=100)
    state.on_follower_position(2, 100, 0)
    state.on_follower_position(3, 100, 0)
    action = state.alter_isr(0, LAG_MS, always)
    state.on_alter_isr_result(action, 1, E.INVALID_UPDATE_VERSION)
    assert state.pending is None and state.awaiting_metadata
    assert state.alter_isr(1, LAG_MS, always) is None
    assert state.update_partition((1, 2, 3), (1, 2), 11, 2) is False
    assert not state.awaiting_metadata
    again = state.alter_isr(2, LAG_MS, always)
    assert again is not None and again.partition_epoch == 11
    state.on_alter_isr_lost(again)
    assert state.alter_isr(3, LAG_MS, always) is not None


def test_metadata_adds_and_removes_followers_and_a_joining_member_counts_as_caught_up():
    state = leader(isr=(1, 2), replicas=(1, 2), leo=100, hw=100)
    state.on_follower_position(2, 100, 0)
    state.update_partition((1, 2, 4), (1, 2), 11, 5)
    assert sorted(state.followers) == [2, 4]
    state.on_follower_position(4, 100, 6)
    state.update_partition((1, 2, 4), (1, 2, 4), 12, 10 * LAG_MS)
    assert state.alter_isr(10 * LAG_MS + LAG_MS - 1, LAG_MS, always) is None
    state.update_partition((1, 4), (1, 4), 13, 10 * LAG_MS)
    assert sorted(state.followers) == [4]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["append", "ack2", "ack3", "tick", "result"]), st.integers(0, 50)), max_size=60))
def test_a_leader_whose_followers_stop_acknowledging_never_commits_past_their_acknowledgements(steps):
    """The zombie-leader rule: once followers stop acknowledging (they follow a new leader), no
    sequence of appends, ISR decisions and refused AlterPartitions moves the high watermark past
    the smallest acknowledgement of the ISR members. Method: random prefix with acks, then a
    'pause' after which only the leader acts."""
    state = leader(isr=(1, 2, 3), leo=10, hw=0)
    now = 0
    acked = {2: 0, 3: 0}
    for kind, amount in steps:
        now += amount
        if kind == "append":
            state.on_append(state.log_end_offset + amount, now)
        elif kind in ("ack2", "ack3"):
            replica = 2 if kind == "ack2" else 3
            offset = min(state.log_end_offset, acked[replica] + amount)
            acked[replica] = offset
            state.on_follower_position(replica, offset, now)
    frozen = state.high_watermark
    floor = min(acked.values())
    for step, (kind, amount) in enumerate(steps):
        now += amount * 100
        if kind == "append":
            state.on_append(state.log_end_offset + amount + 1, now)
        action = state.alter_isr(now, LAG_MS, always)
        if action is not None and step % 2:
            state.on_alter_isr_result(action, now, E.FENCED_LEADER_EPOCH)
        elif action is not None:
            state.on_alter_isr_lost(action)
        assert state.high_watermark <= max(frozen, floor)
    assert state.high_watermark == frozen


# -- position checks and truncation --------------------------------------------------------------


def check(**overrides):
    values = dict(
        leader_epoch=5,
        topic_id=b"t" * 16,
        is_replica=True,
        log_start_offset=10,
        log_end_offset=100,
        end_offset_for_epoch=lambda epoch: {3: (3, 60), 4: (3, 60), 5: (5, 100)}.get(epoch, (-1, -1)),
        position_topic_id=b"t" * 16,
        position_leader_epoch=5,
        fetch_offset=50,
        last_fetched_epoch=3,
    )
    values.update(overrides)
    return check_follower_position(**values)


def test_position_checks_in_order():
    assert check().error_code == E.NONE and not check().is_diverging
    assert check(position_topic_id=b"x" * 16).error_code == E.UNKNOWN_TOPIC_ID
    assert check(position_leader_epoch=4).error_code == E.FENCED_LEADER_EPOCH
    assert check(position_leader_epoch=6).error_code == E.UNKNOWN_LEADER_EPOCH
    assert check(is_replica=False).error_code == E.UNKNOWN_LEADER_EPOCH
    diverging = check(fetch_offset=70)
    assert diverging.error_code == E.NONE and (diverging.diverging_epoch, diverging.diverging_end_offset) == (3, 60)
    older_epoch = check(fetch_offset=55, last_fetched_epoch=4)
    assert (older_epoch.diverging_epoch, older_epoch.diverging_end_offset) == (3, 60), "the leader never had epoch 4"
    assert check(last_fetched_epoch=9).error_code == E.OFFSET_OUT_OF_RANGE, "an epoch the leader cannot place"
    assert check(fetch_offset=5, last_fetched_epoch=-1).error_code == E.OFFSET_OUT_OF_RANGE
    ahead = check(fetch_offset=101, last_fetched_epoch=5)
    assert (ahead.diverging_epoch, ahead.diverging_end_offset) == (5, 100), "ahead in the same epoch: truncate"
    assert check(fetch_offset=101, last_fetched_epoch=-1).error_code == E.OFFSET_OUT_OF_RANGE
    assert check(fetch_offset=100, last_fetched_epoch=5).error_code == E.NONE


def test_truncation_follows_kafkas_rules_and_never_uses_the_high_watermark():
    # The follower has the leader's epoch: the smaller end of both.
    assert truncation_offset(3, 60, (3, 70), 80) == 60
    assert truncation_offset(3, 60, (3, 55), 80) == 55
    # The follower's largest epoch <= 3 is older: its own end of that epoch (another round follows).
    assert truncation_offset(3, 60, (2, 40), 80) == 40
    # The follower has no such epoch: the leader's end, at most its own log end.
    assert truncation_offset(3, 60, (-1, -1), 80) == 60
    assert truncation_offset(3, 60, (-1, -1), 50) == 50


def test_out_of_range_answers():
    assert out_of_range_action(120, 10, 100) == (TRUNCATE_TO, 100)
    assert out_of_range_action(5, 10, 100) == (START_AT, 10)
    assert out_of_range_action(50, 10, 100) == (RETRY, 50)


def test_push_cursor_windows_acknowledgements_and_resets():
    cursor = PushCursor()
    assert not cursor.wants_data(100, 1000), "nothing before the first reset position"
    cursor.reset(40)
    assert cursor.wants_data(100, 1000)
    cursor.on_sent(60, 600)
    cursor.on_sent(80, 500)
    assert cursor.in_flight_bytes == 1100 and not cursor.wants_data(100, 1000), "window full"
    cursor.acknowledge(60)
    assert cursor.in_flight_bytes == 500 and cursor.acknowledged == 60 and cursor.wants_data(100, 1000)
    cursor.refuse()
    assert cursor.awaiting_reset and cursor.in_flight_bytes == 0 and not cursor.wants_data(100, 1000)
    cursor.reset(70)
    assert (cursor.next_offset, cursor.acknowledged, cursor.in_flight_bytes) == (70, 70, 0)


def test_the_high_watermark_stays_while_the_isr_is_below_min_insync_replicas():
    """KIP-966: with min.insync.replicas=2 and the ISR shrunk to the leader, what the leader alone
    holds is not committed (an acks=all write that timed out before the shrink stays invisible);
    it commits once a second replica is back in the ISR and holds it."""
    assert high_watermark(5, 1, 9, {}, (1,), min_insync_replicas=2) == 5
    assert high_watermark(5, 1, 9, {2: 9}, (1, 2), min_insync_replicas=2) == 9
    state = LeaderState(1, 5, 10, (1, 2, 3), (1, 2, 3), 0, 0, 0, 0, min_insync_replicas=2)
    state.on_follower_position(2, 0, 0)
    state.on_follower_position(3, 0, 0)
    state.update_partition((1, 2, 3), (1,), 11, 1)
    assert state.on_append(4, 2) is False and state.high_watermark == 0
    state.update_partition((1, 2, 3), (1, 2), 12, 3)
    assert state.high_watermark == 0, "node 2 has not acknowledged offset 4 yet"
    assert state.on_follower_position(2, 4, 4) is True and state.high_watermark == 4
    assert LeaderState(1, 5, 10, (1,), (1,), 0, 0, 0, 0, min_insync_replicas=2).on_append(3, 1) is True, (
        "min.insync.replicas above the replica count is capped, or an RF=1 topic would never commit"
    )
    assert state.set_min_insync_replicas(3) is False


# -- log start offset (DeleteRecords, KIP-107) -------------------------------------------------


def test_a_follower_follows_the_leaders_log_start_only_forward_and_up_to_its_high_watermark():
    """Goal: Kafka's follower applies FetchResponse.logStartOffset with maybeIncrementLogStartOffset:
    forward only, never past what it knows to be committed. Method: table of cases."""
    assert follower_log_start_offset(40, 0, 100) == 40
    assert follower_log_start_offset(40, 40, 100) is None, "already there"
    assert follower_log_start_offset(30, 40, 100) is None, "never backwards"
    assert follower_log_start_offset(40, 0, 25) == 25, "only up to the follower's high watermark"
    assert follower_log_start_offset(40, 25, 25) is None


def test_the_low_watermark_is_the_smallest_start_over_the_leader_and_its_live_followers():
    """Goal: Kafka's lowWatermarkIfLeader: min log start over the leader and live followers; one
    that has not reported counts as -1 (DeleteRecords waits for it); a dead one does not count."""
    state = leader()
    assert state.low_watermark(40, always) == UNKNOWN_OFFSET, "followers have not reported"
    assert state.on_follower_log_start_offset(2, 40) is True
    assert state.on_follower_log_start_offset(2, 40) is False, "unchanged"
    assert state.low_watermark(40, always) == UNKNOWN_OFFSET
    assert state.low_watermark(40, lambda replica: replica != 3) == 40, "broker 3 is dead or fenced"
    state.on_follower_log_start_offset(3, 30)
    assert state.low_watermark(40, always) == 30
    state.on_follower_log_start_offset(3, 45)
    assert state.low_watermark(40, always) == 40, "the leader's own start bounds it"
    assert state.on_follower_log_start_offset(9, 10) is False, "not a replica"
