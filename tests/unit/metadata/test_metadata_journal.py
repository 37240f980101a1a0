"""The durable Raft journal: buffering and fsync, recovery of torn tails, atomic trims, meta.

These run without pysyncobj: the journal only implements the interface pysyncobj calls.
Reference: Raft §5 (persistent state: currentTerm, votedFor, log[] before answering RPCs).
"""

from __future__ import annotations

import json
import logging
import os

import pytest
from freshet.metadata import journal as journal_module
from freshet.metadata.errors import JournalError, JournalFullError
from freshet.metadata.journal import RaftJournal

from tests.support.filling_disk import FillingDisk


@pytest.fixture
def fsyncs(monkeypatch):
    """Record every fsync/fdatasync as (kind, path of the fd)."""
    calls: list[tuple[str, str]] = []
    real_fsync, real_fdatasync = os.fsync, os.fdatasync

    def path_of(fd: int) -> str:
        return os.readlink(f"/proc/self/fd/{fd}")

    def fsync(fd):
        calls.append(("fsync", path_of(fd)))
        return real_fsync(fd)

    def fdatasync(fd):
        calls.append(("fdatasync", path_of(fd)))
        return real_fdatasync(fd)

    monkeypatch.setattr(journal_module.os, "fsync", fsync)
    monkeypatch.setattr(journal_module.os, "fdatasync", fdatasync)
    return calls


def fill(journal: RaftJournal, first: int, last: int, term: int = 1) -> None:
    for index in range(first, last + 1):
        journal.add(f"cmd-{index}".encode(), index, term)


def test_entries_are_buffered_until_sync_which_writes_and_fdatasyncs_once(tmp_path, fsyncs):
    journal = RaftJournal(str(tmp_path))
    size_empty = os.path.getsize(journal.path)
    fsyncs.clear()
    fill(journal, 1, 5)
    assert os.path.getsize(journal.path) == size_empty           # nothing written yet
    assert journal.is_dirty and journal.durable_last_index == 0
    assert journal.sync() is True
    assert fsyncs == [("fdatasync", journal.path)]               # one fdatasync for the whole batch
    assert journal.durable_last_index == 5 and not journal.is_dirty
    assert journal.sync() is False and len(fsyncs) == 1
    journal.close()
    reopened = RaftJournal(str(tmp_path))
    assert [entry[1] for entry in reopened] == [1, 2, 3, 4, 5]
    assert reopened[2] == (b"cmd-3", 3, 1)
    assert reopened[-1][1] == 5 and reopened[1:3] == [(b"cmd-2", 2, 1), (b"cmd-3", 3, 1)]
    assert reopened.durable_last_index == 5


def test_fsync_disabled_writes_the_same_data_without_any_fsync(tmp_path, fsyncs):
    journal = RaftJournal(str(tmp_path), fsync=False)
    fill(journal, 1, 3)
    journal.sync()
    journal.setCurrentTerm(4, "a:1")
    journal.close()
    assert fsyncs == []
    reopened = RaftJournal(str(tmp_path), fsync=False)
    assert len(reopened) == 3 and reopened.getCurrentTerm() == 4


def test_term_and_vote_are_fsynced_before_set_current_term_returns(tmp_path, fsyncs):
    """Raft §5.1: a voter must not forget its vote; pysyncobj's MetaStorer never fsyncs."""
    journal = RaftJournal(str(tmp_path))
    fsyncs.clear()
    journal.setCurrentTerm(3, "127.0.0.1:5000")
    assert ("fsync", journal.meta_path + ".tmp") in fsyncs       # the new content, before the rename
    assert ("fsync", str(tmp_path)) in fsyncs                    # the rename itself
    reopened = RaftJournal(str(tmp_path))
    assert (reopened.getCurrentTerm(), reopened.getVotedForNodeId()) == (3, "127.0.0.1:5000")


@pytest.mark.parametrize("damage", ["cut_mid_record", "garbage_tail", "flipped_crc", "short_header"])
def test_recovery_truncates_exactly_at_the_first_invalid_record(tmp_path, damage, caplog):
    journal = RaftJournal(str(tmp_path))
    fill(journal, 1, 4)
    journal.sync()
    good_size = os.path.getsize(journal.path)
    fill(journal, 5, 5)
    journal.close()
    full_size = os.path.getsize(journal.path)
    with open(journal.path, "r+b") as f:
        if damage == "cut_mid_record":
            f.truncate(full_size - 3)
        elif damage == "garbage_tail":
            f.seek(full_size)
            f.write(b"\x00\x00\x00\x20garbage")
        elif damage == "flipped_crc":
            f.seek(full_size - 1)
            last = f.read(1)
            f.seek(full_size - 1)
            f.write(bytes([last[0] ^ 0xFF]))
        else:
            f.truncate(good_size + 5)
    with caplog.at_level(logging.WARNING, logger="freshet.metadata.journal"):
        recovered = RaftJournal(str(tmp_path))
    expected_size = full_size if damage == "garbage_tail" else good_size
    assert os.path.getsize(recovered.path) == expected_size
    assert [entry[1] for entry in recovered] == ([1, 2, 3, 4, 5] if damage == "garbage_tail" else [1, 2, 3, 4])
    assert f"position {expected_size}" in caplog.text
    recovered.add(b"next", recovered.last_index + 1, 2)          # appends after the cut
    recovered.close()
    assert RaftJournal(str(tmp_path))[-1] == (b"next", recovered.last_index, 2)


def test_a_journal_of_another_format_is_refused_not_discarded(tmp_path):
    (tmp_path / journal_module.JOURNAL_FILE_NAME).write_bytes(b"PYSYNCOBJ\x00" * 4)
    with pytest.raises(JournalError, match="not a Freshet journal"):
        RaftJournal(str(tmp_path))


def test_delete_entries_from_truncates_written_and_buffered_tails(tmp_path):
    journal = RaftJournal(str(tmp_path))
    fill(journal, 1, 6)
    journal.sync()
    fill(journal, 7, 8)
    journal.deleteEntriesFrom(7)                                  # list position 7 = index 8 (buffered)
    assert journal.last_index == 7
    journal.deleteEntriesFrom(3)                                  # written entries 4..7
    assert journal.last_index == 3 and journal.durable_last_index == 3 and journal.is_dirty
    fill(journal, 4, 5, term=2)
    journal.close()
    reopened = RaftJournal(str(tmp_path))
    assert list(reopened) == [(b"cmd-1", 1, 1), (b"cmd-2", 2, 1), (b"cmd-3", 3, 1), (b"cmd-4", 4, 2), (b"cmd-5", 5, 2)]


def test_clear_then_add_snapshot_entries(tmp_path):
    journal = RaftJournal(str(tmp_path))
    fill(journal, 1, 6)
    journal.sync()
    journal.clear()
    journal.add(b"prev", 41, 3)
    journal.add(b"last", 42, 3)
    journal.close()
    assert list(RaftJournal(str(tmp_path))) == [(b"prev", 41, 3), (b"last", 42, 3)]


def test_delete_entries_to_rewrites_atomically_after_making_the_directory_durable(tmp_path, fsyncs, monkeypatch):
    journal = RaftJournal(str(tmp_path))
    fill(journal, 1, 10)
    fsyncs.clear()
    journal.deleteEntriesTo(4)                                    # keep indexes 5..10
    assert [entry[1] for entry in journal] == [5, 6, 7, 8, 9, 10]
    # The directory is fsynced first (a snapshot's rename), then the new file, then the rename.
    assert fsyncs[0] == ("fdatasync", journal.path)               # pending entries first
    assert fsyncs[1] == ("fsync", str(tmp_path))
    assert ("fsync", journal.path + ".tmp") in fsyncs[2:]
    assert fsyncs[-1] == ("fsync", str(tmp_path))
    fill(journal, 11, 11)
    journal.close()
    assert [entry[1] for entry in RaftJournal(str(tmp_path))] == [5, 6, 7, 8, 9, 10, 11]


def test_a_crash_during_the_trim_rewrite_leaves_the_old_journal(tmp_path, monkeypatch):
    journal = RaftJournal(str(tmp_path))
    fill(journal, 1, 10)
    journal.sync()

    def crash(source, target):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(journal_module.os, "replace", crash)
    with pytest.raises(JournalError):
        journal.deleteEntriesTo(4)
    monkeypatch.undo()
    assert os.path.exists(journal.path + ".tmp")                  # the half-done rewrite
    reopened = RaftJournal(str(tmp_path))
    assert [entry[1] for entry in reopened] == list(range(1, 11))


def test_align_with_snapshot_trims_only_when_the_log_holds_both_snapshot_entries(tmp_path):
    journal = RaftJournal(str(tmp_path))
    fill(journal, 1, 10)
    assert journal.align_with_snapshot((b"cmd-5", 5, 1), (b"cmd-6", 6, 2)) == 0      # term differs
    assert journal.align_with_snapshot((b"cmd-12", 12, 1), (b"cmd-13", 13, 1)) == 0  # log is behind
    assert journal.align_with_snapshot((b"cmd-1", 1, 1), (b"cmd-2", 2, 1)) == 0      # already aligned
    assert journal.align_with_snapshot((b"cmd-5", 5, 1), (b"cmd-6", 6, 1)) == 4
    assert journal[0] == (b"cmd-5", 5, 1) and journal[1] == (b"cmd-6", 6, 1) and journal.last_index == 10
    journal.close()
    assert len(RaftJournal(str(tmp_path))) == 6


def test_commit_index_hint_is_saved_lazily_and_never_above_the_durable_log(tmp_path):
    journal = RaftJournal(str(tmp_path))
    fill(journal, 1, 5)
    journal.setRaftCommitIndex(5)
    journal.setCurrentTerm(2, None)                               # writes meta before the log is durable
    assert json.loads((tmp_path / "raft.meta").read_text())["commit_raft_index"] == 1
    journal.onOneSecondTimer()                                    # syncs the log, then saves the hint
    assert json.loads((tmp_path / "raft.meta").read_text())["commit_raft_index"] == 5
    journal.close()
    assert RaftJournal(str(tmp_path)).getRaftCommitIndex() == 5


def test_an_applied_entry_may_be_truncated_and_rewritten_only_with_itself(tmp_path):
    """pysyncobj re-sends entries a follower already applied after each election; identical
    re-appends are harmless, a different entry would mean the state machine diverged."""
    journal = RaftJournal(str(tmp_path))
    fill(journal, 1, 8)
    journal.applied_index = lambda: 6
    journal.deleteEntriesFrom(4)                                   # indexes 5..8; 5 and 6 were applied
    journal.add(b"cmd-5", 5, 1)
    journal.add(b"cmd-6", 6, 1)
    journal.add(b"new-7", 7, 2)                                    # not applied: may differ
    assert journal.applied_entries_rewritten == 2
    journal.deleteEntriesFrom(4)
    journal.add(b"cmd-5", 5, 1)
    with pytest.raises(AssertionError, match="applied raft entry 6 replaced"):
        journal.add(b"a different command", 6, 3)


def test_a_full_disk_cuts_the_partial_write_back_and_the_next_sync_writes_everything(tmp_path, monkeypatch):
    """Goal: ENOSPC in the middle of a sync neither stops the voter nor leaves a torn record
    before later ones (recovery would stop there and drop them). Method: os.write writes 10
    bytes, then raises ENOSPC (FillingDisk); the entries stay buffered, nothing counts as durable, the file
    ends at its last whole record; once space is back, sync writes them and a reopen reads all."""
    journal = RaftJournal(str(tmp_path))
    fill(journal, 1, 3)
    journal.sync()
    size = os.path.getsize(journal.path)
    fill(journal, 4, 8)
    disk = FillingDisk(monkeypatch, "write", room=10)
    with pytest.raises(JournalFullError) as raised:   # kept: its traceback holds the write's buffers
        journal.sync()
    assert os.path.getsize(journal.path) == size
    assert journal.durable_last_index == 3
    assert journal.is_dirty
    fill(journal, 9, 10)                              # the quorum keeps appending meanwhile
    assert "write failed" in str(raised.value)
    monkeypatch.setattr(journal_module.os, "write", disk.real)
    assert journal.sync()
    assert journal.durable_last_index == 10
    journal.close()
    reopened = RaftJournal(str(tmp_path))
    assert [reopened[i][1] for i in range(len(reopened))] == list(range(1, 11))
    reopened.close()


def test_the_once_a_second_writes_wait_out_a_full_disk_and_leave_no_temp_file(tmp_path, monkeypatch):
    """Goal: the commit-index hint and the buffered records written once a second do not stop the
    voter on ENOSPC (a hint is not needed for safety; the records stay unacknowledged), and the
    meta file's temp file does not keep the space. Method: FillingDisk with no room at all."""
    journal = RaftJournal(str(tmp_path))
    fill(journal, 1, 3)
    journal.sync()
    journal.setRaftCommitIndex(3)
    fill(journal, 4, 5)
    disk = FillingDisk(monkeypatch, "write", room=0)
    journal.onOneSecondTimer()                        # returns: deferred, not raised
    assert disk.failures >= 1
    assert journal.durable_last_index == 3
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
    monkeypatch.setattr(journal_module.os, "write", disk.real)
    journal.onOneSecondTimer()
    assert journal.durable_last_index == 5
    assert json.loads(open(journal.meta_path).read())["commit_raft_index"] == 3
    journal.close()
