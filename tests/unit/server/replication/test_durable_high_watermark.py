"""Durable mode (write.caching=false) in the pure replication core (server/replication/core.py).

Goal: for a durable topic the high watermark is min *durable* offset over the maximal ISR (the
leader's own from its flusher, each follower's from its acknowledgements), so nothing is
acknowledged before every ISR member fsynced it; with write caching it stays min LEO; switching
the mode takes effect at once; a follower's durable offset never counts past its log end.
Method: drive LeaderState with scripted positions.
"""

from __future__ import annotations

from freshet.server.replication.core import UNKNOWN_OFFSET, LeaderState


def durable_leader(leo: int = 100, hw: int = 50, durable_offset: int = UNKNOWN_OFFSET) -> LeaderState:
    return LeaderState(1, 5, 10, (1, 2, 3), (1, 2, 3), 0, hw, leo, 0, 1, is_durable=True, durable_offset=durable_offset)


def test_durable_high_watermark_waits_for_every_isr_members_fsync():
    state = durable_leader()
    assert state.on_follower_position(2, 100, 1, durable_offset=80) is False, "the leader's own fsync is unknown"
    assert state.on_follower_position(3, 100, 1, durable_offset=90) is False
    assert state.on_durable(100) is True
    assert state.high_watermark == 80, "min durable offset over the ISR, not min LEO (100)"
    assert state.on_follower_position(2, 100, 2, durable_offset=100) is True
    assert state.high_watermark == 90
    assert state.on_follower_position(3, 100, 3, durable_offset=100) is True
    assert state.high_watermark == 100


def test_a_follower_without_a_durable_offset_freezes_the_durable_high_watermark():
    state = durable_leader(durable_offset=100)
    state.on_follower_position(2, 100, 1, durable_offset=100)
    assert state.on_follower_position(3, 100, 1) is False, "an acknowledgement without durable_offset"
    assert state.high_watermark == 50


def test_a_durable_offset_never_counts_past_the_followers_log_end():
    state = durable_leader(durable_offset=100)
    state.on_follower_position(2, 70, 1, durable_offset=100)
    state.on_follower_position(3, 100, 1, durable_offset=100)
    assert state.high_watermark == 70


def test_the_leaders_durable_offset_is_capped_at_its_log_end_and_only_grows():
    state = durable_leader(leo=100, durable_offset=100)
    assert state.on_durable(150) is False
    assert state.durable_offset == 100
    assert state.on_durable(60) is False
    assert state.durable_offset == 100


def test_write_caching_commits_on_log_end_offsets_and_switching_mode_applies_at_once():
    state = durable_leader(durable_offset=60)
    state.on_follower_position(2, 100, 1, durable_offset=60)
    state.on_follower_position(3, 100, 1, durable_offset=60)
    assert state.high_watermark == 60
    assert state.set_durable(False) is True
    assert state.high_watermark == 100, "write caching: min LEO"
    state.on_append(120, 2)
    state.on_follower_position(2, 120, 2, durable_offset=60)
    state.on_follower_position(3, 120, 2, durable_offset=60)
    assert state.high_watermark == 120
    state.on_append(130, 3)
    assert state.set_durable(True) is False, "durable again: nothing moves until fsyncs are reported"
    state.on_follower_position(2, 130, 3, durable_offset=130)
    state.on_follower_position(3, 130, 3, durable_offset=130)
    assert state.high_watermark == 120
    assert state.on_durable(130) is True
    assert state.high_watermark == 130
