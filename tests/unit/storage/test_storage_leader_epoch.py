"""Leader-epoch cache and checkpoint files: Kafka's LeaderEpochFileCache and CheckpointFile rules.

Reference: KIP-101 (leader epoch for truncation), KIP-279 (OffsetsForLeaderEpoch returns the epoch).
"""

from __future__ import annotations

import os

import pytest
from freshet.storage.checkpoint import parse_int_fields, read_checkpoint, write_checkpoint
from freshet.storage.errors import CorruptCheckpointError
from freshet.storage.leader_epoch import LEADER_EPOCH_CHECKPOINT_FILE_NAME, LeaderEpochCache


def test_assign_appends_new_epochs_and_ignores_repeats(tmp_path):
    """Goal: Kafka's assign appends a new epoch, ignores the current one, and persists. Method:
    assign, reload from the checkpoint file.
    """
    cache = LeaderEpochCache(str(tmp_path))
    assert cache.assign(1, 0)
    assert not cache.assign(1, 5)  # same epoch, later offset: nothing to record
    assert cache.assign(3, 10)
    assert cache.entries == [(1, 0), (3, 10)]
    assert LeaderEpochCache.load(str(tmp_path)).entries == [(1, 0), (3, 10)]


def test_assign_of_an_older_history_removes_the_divergent_entries(tmp_path):
    """Goal: Kafka's assign removes entries with epoch >= new or start >= new start before appending."""
    cache = LeaderEpochCache(str(tmp_path), [(1, 0), (3, 10), (5, 20)])
    assert cache.assign(4, 15)
    assert cache.entries == [(1, 0), (3, 10), (4, 15)]
    assert cache.assign(4, 12)
    assert cache.entries == [(1, 0), (3, 10), (4, 12)]


def test_truncation_from_the_end_and_from_the_start(tmp_path):
    """Goal: truncateFromEnd drops epochs starting at or after the end; truncateFromStart keeps the
    epoch in force at the new start, moved there.
    """
    cache = LeaderEpochCache(str(tmp_path), [(1, 0), (3, 10), (5, 20)])
    cache.truncate_from_end(20)
    assert cache.entries == [(1, 0), (3, 10)]
    cache.truncate_from_start(12)
    assert cache.entries == [(3, 12)]
    cache.truncate_from_start(5)
    assert cache.entries == [(3, 12)]
    assert LeaderEpochCache.load(str(tmp_path)).entries == [(3, 12)]


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        (-1, (-1, -1)),
        (0, (0, 10)),  # older than every epoch: the start of the first one
        (2, (2, 20)),  # ends where epoch 3 starts
        (3, (3, 30)),
        (4, (3, 30)),  # largest epoch <= 4 is 3
        (6, (6, 35)),  # the latest epoch ends at the log end
        (7, (-1, -1)),  # newer than every epoch: unknown (Kafka)
    ],
)
def test_end_offset_for_an_epoch(tmp_path, requested, expected):
    """Goal: OffsetsForLeaderEpoch answers exactly as Kafka's endOffsetFor, including unknown and
    older-than-everything epochs.
    """
    cache = LeaderEpochCache(str(tmp_path), [(2, 10), (3, 20), (6, 30)])
    assert cache.end_offset_for(requested, log_end_offset=35) == expected


def test_epoch_for_offset(tmp_path):
    """Goal: the epoch in force at an offset is the last one starting at or before it."""
    cache = LeaderEpochCache(str(tmp_path), [(2, 10), (3, 20)])
    assert [cache.epoch_for_offset(offset) for offset in (5, 10, 19, 20, 99)] == [-1, 2, 2, 3, 3]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0\n",
        "1\n0\n",
        "0\n2\n1 0\n",
        "0\n1\n1 0",
        "0\n2\n3 10\n2 20\n",
        "0\n1\nx 1\n",
        "0\n1\n1 2 3\n",
        "0\n2\n1 10\n2 10\n",
    ],
)
def test_malformed_leader_epoch_checkpoints_are_corrupt(tmp_path, text):
    """Goal: any malformed checkpoint (version, count, torn last line, bad or out-of-order entries)
    raises CorruptCheckpointError, so the log rebuilds the cache.
    """
    (tmp_path / LEADER_EPOCH_CHECKPOINT_FILE_NAME).write_text(text)
    with pytest.raises(CorruptCheckpointError):
        LeaderEpochCache.load(str(tmp_path))


def test_checkpoint_write_is_atomic_and_leaves_no_temp_file(tmp_path, monkeypatch):
    """Goal: a failed write leaves the previous file intact (temp file + fsync + rename)."""
    path = str(tmp_path / "cp")
    write_checkpoint(path, 0, [(1, 2), (3, 4)])
    assert open(path).read() == "0\n2\n1 2\n3 4\n"
    assert os.listdir(tmp_path) == ["cp"]

    def failing_replace(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    from freshet.storage.errors import KafkaStorageError

    with pytest.raises(KafkaStorageError):
        write_checkpoint(path, 0, [(9, 9)])
    assert read_checkpoint(path, 0, parse_int_fields(2)) == [(1, 2), (3, 4)]


def test_assign_writes_without_fsync_and_the_log_syncs_the_epochs_before_its_own_fsyncs(tmp_path, monkeypatch):
    """Goal (Kafka's KAFKA-15046): assign, on the append path, writes the checkpoint but pays no
    fsync; the log fsyncs it before every fsync of its own (flush, roll, close), so the file is
    durable whenever the segments it describes are.

    Method: count os.fsync calls around an assign, a leader append in a new epoch, and a flush.
    """
    from freshet.storage.config import LogConfig
    from freshet.storage.log import PartitionLog

    from tests.support.storage_helpers import batch

    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    cache = LeaderEpochCache(str(tmp_path))
    assert cache.assign(3, 10)
    assert synced == []
    assert LeaderEpochCache.load(str(tmp_path)).entries == [(3, 10)]      # written, only not fsynced
    cache.sync()
    assert len(synced) == 2                                                # the file and its directory
    cache.sync()
    assert len(synced) == 2                                                # nothing new to sync
    log = PartitionLog.open(str(tmp_path / "log"), LogConfig(), topic_id="id")
    synced.clear()
    log.append_as_leader(batch(2), 5)
    assert synced == []
    log.flush()
    assert len(synced) >= 3                                                # epochs (file, directory), segment
    assert LeaderEpochCache.load(log.directory).entries == [(5, 0)]
    log.close()


def test_recovery_reassigns_the_epochs_of_the_unflushed_tail_when_the_checkpoint_lost_them(tmp_path):
    """Goal: after a machine crash the checkpoint may be older than the log's unflushed tail (it
    is no longer fsynced on every assign); recovery re-reads that tail and assigns its batches'
    epochs again (Kafka's LogSegment.recover), so OffsetsForLeaderEpoch answers as before.

    Method: epochs 1 then 4 are appended; the checkpoint file is put back to its state before
    epoch 4 (what a crash could leave), the log is dropped without a clean close, and reopened.
    """
    from freshet.storage.config import LogConfig
    from freshet.storage.log import PartitionLog

    from tests.support.storage_helpers import batch, crash

    log = PartitionLog.open(str(tmp_path / "log"), LogConfig(), topic_id="id")
    log.append_as_leader(batch(3), 1)
    log.flush()
    path = os.path.join(log.directory, LEADER_EPOCH_CHECKPOINT_FILE_NAME)
    with open(path, "rb") as file:
        synced_state = file.read()
    log.append_as_leader(batch(2), 4)
    log.append_as_leader(batch(2), 4)
    assert log.leader_epoch_entries == [(1, 0), (4, 3)]
    crash(log)
    with open(path, "wb") as file:
        file.write(synced_state)
    reopened = PartitionLog.open(log.directory, LogConfig(), topic_id="id")
    assert reopened.leader_epoch_entries == [(1, 0), (4, 3)]
    assert reopened.end_offset_for_epoch(1) == (1, 3)
    assert LeaderEpochCache.load(log.directory).entries == [(1, 0), (4, 3)]
    reopened.close()
