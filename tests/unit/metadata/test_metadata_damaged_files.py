"""Damaged Raft files on one voter (issue 16's disk faults): the voter starts and heals.

Goal: a bit flip in the journal header of a journal whose records check out is repaired in
place (no entry lost); a journal cut shorter than its header is set aside and the voter starts
empty; the commit index hint never names entries the voter no longer has; a damaged snapshot is
set aside with the journal's entries (which begin after it), so the voter starts empty and takes
the leader's snapshot instead of refusing to start. Each of these raised before.
Method: real files in tmp_path, damaged by hand.
"""

from __future__ import annotations

import os

from freshet.metadata import journal as journal_module
from freshet.metadata import snapshot
from freshet.metadata.image import EMPTY_IMAGE
from freshet.metadata.journal import RaftJournal
from freshet.metadata.quorum_snapshots import SnapshotStore


def written_journal(directory, last: int = 10) -> RaftJournal:
    journal = RaftJournal(str(directory))
    for index in range(1, last + 1):
        journal.add(f"cmd-{index}".encode(), index, 1)
    journal.sync()
    return journal


def test_a_bit_flip_in_the_journal_header_is_repaired_and_every_entry_kept(tmp_path):
    written_journal(tmp_path).close()
    path = tmp_path / journal_module.JOURNAL_FILE_NAME
    data = bytearray(path.read_bytes())
    data[2] ^= 0x10
    path.write_bytes(bytes(data))
    reopened = RaftJournal(str(tmp_path))
    assert [entry[1] for entry in reopened] == list(range(1, 11))
    assert path.read_bytes()[:8] == journal_module.JOURNAL_MAGIC
    reopened.close()


def test_a_journal_cut_inside_its_header_is_set_aside_and_the_voter_starts_empty(tmp_path):
    written_journal(tmp_path).close()
    path = tmp_path / journal_module.JOURNAL_FILE_NAME
    os.truncate(path, 5)
    reopened = RaftJournal(str(tmp_path))
    assert len(reopened) == 0
    assert (tmp_path / (journal_module.JOURNAL_FILE_NAME + ".damaged")).read_bytes() == b"FRSHJ"
    reopened.close()


def test_the_commit_index_hint_never_names_entries_recovery_cut(tmp_path):
    journal = written_journal(tmp_path, last=20)
    journal.setRaftCommitIndex(20)
    journal.onOneSecondTimer()
    journal.close()
    path = tmp_path / journal_module.JOURNAL_FILE_NAME
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF                                  # a record in the middle fails its CRC
    path.write_bytes(bytes(data))
    reopened = RaftJournal(str(tmp_path))
    assert 0 < reopened.last_index < 20
    assert reopened.getRaftCommitIndex() == reopened.last_index
    reopened.close()


def test_a_damaged_snapshot_is_set_aside_with_the_journal_and_the_voter_starts_empty(tmp_path):
    journal = written_journal(tmp_path, last=12)
    store = SnapshotStore(str(tmp_path / "metadata.snapshot"), ["127.0.0.1:1"], fsync=True)
    contents = snapshot.encode_snapshot_file(
        snapshot.RaftEntry(b"cmd-12", 12, 1), snapshot.RaftEntry(b"cmd-11", 11, 1), ["127.0.0.1:1"],
        snapshot.encode_snapshot(EMPTY_IMAGE),
    )
    damaged = bytearray(contents)
    damaged[-3] ^= 0x01
    (tmp_path / "metadata.snapshot").write_bytes(bytes(damaged))
    assert store.load_at_start(journal) is EMPTY_IMAGE
    assert len(journal) == 0
    assert not (tmp_path / "metadata.snapshot").exists()
    assert (tmp_path / "metadata.snapshot.damaged").read_bytes() == bytes(damaged)
    journal.close()
    assert len(RaftJournal(str(tmp_path))) == 0, "the emptied journal is durable"
