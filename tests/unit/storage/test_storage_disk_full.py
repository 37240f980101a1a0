"""A write that hits ENOSPC: rolled back, the log stays online, recovery finds a clean log.

Goal: a full disk (another process ate the space, or a burst outran the monitor) must not tear a
batch, take the log offline or lose an appended record (README "A full disk").
Method: `os.pwrite` / `os.write` are replaced for one call by a fake that writes part of the bytes
and then raises ENOSPC, as a filling filesystem does; the log is then used, closed or crashed and
reopened. Reference: Kafka LogSegment.recover (a torn tail is what recovery cuts; here none is left).
"""

from __future__ import annotations

import os

import pytest
from freshet.storage.checkpoint import write_atomically
from freshet.storage.errors import LogDirFullError
from freshet.storage.log import PartitionLog

from tests.support.filling_disk import FillingDisk
from tests.support.storage_helpers import SMALL_CONFIG, batch, crash, headers_of, read_all, segment_files


def test_append_that_hits_enospc_is_cut_back_and_the_log_stays_online(tmp_path, monkeypatch):
    directory = str(tmp_path / "t-0")
    log = PartitionLog.open(directory, SMALL_CONFIG)
    log.append_as_leader(batch(3, tag=1), leader_epoch=0)
    end, size = log.log_end_offset, log.size_bytes
    disk = FillingDisk(monkeypatch, "pwrite", room=40)       # part of the next batch fits
    with pytest.raises(LogDirFullError) as raised:
        log.append_as_leader(batch(3, tag=2), leader_epoch=0)
    assert disk.failures == 1
    assert "no space left on device writing" in str(raised.value)
    assert log.log_end_offset == end
    assert log.size_bytes == size
    active = [name for name in segment_files(directory) if name.endswith(".log")][-1]
    assert os.path.getsize(os.path.join(directory, active)) == size    # no torn bytes on disk
    monkeypatch.undo()                                                 # space is back
    info = log.append_as_leader(batch(3, tag=3), leader_epoch=0)
    assert info.first_offset == end
    crash(log)
    reopened = PartitionLog.open(directory, SMALL_CONFIG)
    assert reopened.repairs == []                                      # recovery found nothing to cut
    assert [h.base_offset for h in headers_of(read_all(reopened))] == [0, 3]
    reopened.close()


def test_follower_append_that_hits_enospc_can_be_retried(tmp_path, monkeypatch):
    leader = PartitionLog.open(str(tmp_path / "leader"), SMALL_CONFIG)
    leader.append_as_leader(batch(2, tag=1), leader_epoch=4)
    leader.append_as_leader(batch(2, tag=2), leader_epoch=4)
    data = read_all(leader)
    follower = PartitionLog.open(str(tmp_path / "follower"), SMALL_CONFIG)
    FillingDisk(monkeypatch, "pwrite", room=10)
    with pytest.raises(LogDirFullError):
        follower.append_as_follower(data)
    assert follower.log_end_offset == 0
    monkeypatch.undo()
    follower.append_as_follower(data)
    assert read_all(follower) == data
    assert follower.leader_epoch_entries == [(4, 0)]
    leader.close()
    follower.close()


def test_roll_whose_index_write_hits_enospc_leaves_the_active_segment_usable(tmp_path, monkeypatch):
    directory = str(tmp_path / "t-0")
    log = PartitionLog.open(directory, SMALL_CONFIG)
    for number in range(3):                                           # index entries not yet on disk
        log.append_as_leader(batch(4, value_size=100, tag=number), leader_epoch=0)
    disk = FillingDisk(monkeypatch, "pwrite", room=0)                 # sealing writes the indexes first
    with pytest.raises(LogDirFullError) as raised:                    # kept: its traceback holds views
        log.roll()
    assert "flush index" in str(raised.value)
    assert disk.failures == 1
    assert log.segment_count == 1                                     # no roll happened
    monkeypatch.undo()
    for number in range(3, 6):                                        # the same segment takes appends
        log.append_as_leader(batch(4, value_size=100, tag=number), leader_epoch=0)
    log.roll()
    log.append_as_leader(batch(4, value_size=100, tag=6), leader_epoch=0)
    assert log.segment_count == 2
    assert log.log_end_offset == 28
    crash(log)
    reopened = PartitionLog.open(directory, SMALL_CONFIG)
    assert reopened.repairs == []
    assert [h.base_offset for h in headers_of(read_all(reopened))] == list(range(0, 28, 4))
    assert reopened.read(8, 100).first_offset == 8                    # the rebuilt offset index finds it
    reopened.close()


def test_checkpoint_write_that_hits_enospc_keeps_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    path = str(tmp_path / "leader-epoch-checkpoint")
    write_atomically(path, b"0\n1\n0 0\n")
    FillingDisk(monkeypatch, "write", room=3)
    with pytest.raises(LogDirFullError):
        write_atomically(path, b"0\n2\n0 0\n1 10\n")
    monkeypatch.undo()
    assert open(path, "rb").read() == b"0\n1\n0 0\n"
    assert os.listdir(tmp_path) == ["leader-epoch-checkpoint"]


def test_new_epoch_whose_checkpoint_write_fails_writes_nothing_and_is_retried(tmp_path, monkeypatch):
    directory = str(tmp_path / "t-0")
    log = PartitionLog.open(directory, SMALL_CONFIG)
    log.append_as_leader(batch(1), leader_epoch=1)
    FillingDisk(monkeypatch, "write", room=0)                        # the epoch checkpoint cannot be written
    with pytest.raises(LogDirFullError):
        log.append_as_leader(batch(1), leader_epoch=2)
    assert log.log_end_offset == 1
    assert log.leader_epoch_entries == [(1, 0)]
    monkeypatch.undo()
    log.append_as_leader(batch(1), leader_epoch=2)
    assert log.leader_epoch_entries == [(1, 0), (2, 1)]
    log.close()
    reopened = PartitionLog.open(directory, SMALL_CONFIG)
    assert reopened.leader_epoch_entries == [(1, 0), (2, 1)]
    reopened.close()
