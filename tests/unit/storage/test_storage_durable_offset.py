"""The log's durable offset and `sync_durably` (group commit for write.caching=false).

Goal: the durable offset only vouches for fsynced data: after open it is the active segment's
base (sealed segments were fsynced when sealed), a roll or flush moves it, a truncation pulls it
back, and an fsync that raced a truncation does not vouch for the re-written tail; fsyncs go
through a duplicate descriptor outside the lock, so appends go on meanwhile.
Method: real logs in tmp_path; os.fdatasync replaced by a recorder that can run code mid-fsync.
"""

from __future__ import annotations

import os

import pytest
from freshet.storage.log import PartitionLog

from tests.support.storage_helpers import SMALL_CONFIG, batch


def test_sync_durably_fsyncs_the_active_segment_and_reaches_the_log_end(tmp_path, monkeypatch):
    log = PartitionLog.open(str(tmp_path / "t-0"), SMALL_CONFIG)
    synced = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real(fd)))
    assert log.durable_offset == 0
    log.append_as_leader(batch(3), 0)
    assert log.durable_offset == 0
    assert log.sync_durably() == 3
    assert log.durable_offset == 3
    assert synced == [os.path.join(str(tmp_path / "t-0"), "00000000000000000000.log")]
    assert log.sync_durably() == 3
    assert len(synced) == 1, "nothing new: no fsync"
    log.close()


def test_a_roll_and_a_flush_move_the_durable_offset_and_a_truncation_pulls_it_back(tmp_path):
    log = PartitionLog.open(str(tmp_path / "t-0"), SMALL_CONFIG)
    log.append_as_leader(batch(2), 0)
    log.roll()
    assert log.durable_offset == 2, "sealing fsynced the old segment"
    log.append_as_leader(batch(2), 0)
    log.flush()
    assert log.durable_offset == 4
    log.truncate_to(3)
    assert log.durable_offset == 2, "the batch holding offset 3 starts at 2"
    log.close()


def test_an_fsync_racing_a_truncation_does_not_vouch_for_the_rewritten_tail(tmp_path, monkeypatch):
    log = PartitionLog.open(str(tmp_path / "t-0"), SMALL_CONFIG)
    log.append_as_leader(batch(1), 0)
    assert log.sync_durably() == 1
    log.append_as_leader(batch(4), 0)
    real = os.fdatasync

    def truncate_and_rewrite_meanwhile(fd: int) -> None:
        monkeypatch.setattr(os, "fdatasync", real)
        log.truncate_to(1)                         # the lock is free while the disk works
        log.append_as_leader(batch(4), 1)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", truncate_and_rewrite_meanwhile)
    assert log.sync_durably() == 1, "the fsync started before the truncation: only offset 0 is vouched for"
    assert log.log_end_offset == 5
    assert log.sync_durably() == 5
    log.close()


def test_after_an_unclean_open_only_sealed_segments_count_as_durable(tmp_path):
    directory = str(tmp_path / "t-0")
    log = PartitionLog.open(directory, SMALL_CONFIG)
    log.append_as_leader(batch(2), 0)
    log.roll()
    log.append_as_leader(batch(3), 0)
    log._segments.release_all()                    # a crash: no close, no clean-shutdown marker
    reopened = PartitionLog.open(directory, SMALL_CONFIG)
    assert reopened.log_end_offset == 5
    assert reopened.durable_offset == 2
    assert reopened.sync_durably() == 5
    reopened.close()


def test_sync_durably_on_a_closed_log_raises(tmp_path):
    from freshet.storage.errors import LogClosedError

    log = PartitionLog.open(str(tmp_path / "t-0"), SMALL_CONFIG)
    log.close()
    with pytest.raises(LogClosedError):
        log.sync_durably()
