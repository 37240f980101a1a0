"""Damaged Raft journal on one voter (issue 16's disk faults): the voter starts and heals.

Goal: a bit flip in the header of a journal whose records check out is repaired in place (no
entry lost; it raised JournalError before); the commit index hint never names entries that
recovery cut (it named them before). Damage that leaves nothing readable (a journal cut inside its
header, a damaged snapshot) still stops the voter with a clear error: starting empty could bring a
one-voter cluster back with no metadata (tests/integration/metadata/test_metadata_quorum.py).
Method: real files in tmp_path, damaged by hand.
"""

from __future__ import annotations

from freshet.metadata import journal as journal_module
from freshet.metadata.journal import RaftJournal


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
