"""The time index of a segment: timestamp -> relative offset, for lookups by time.

Owns the `<base_offset>.timeindex` file. An entry is added next to each offset-index entry when the
largest timestamp seen in the segment has grown, and once more when the segment is sealed, so the
last entry always holds the segment's largest timestamp (retention by time and `offsets_for_time`
read it without scanning).

Entry layout (12 bytes, big-endian, `TimeIndex.ENTRY`):

    ====  ===============  ======  ================================================================
    pos   field            type    meaning
    ====  ===============  ======  ================================================================
    0     timestamp        int64   largest record timestamp (ms) in the segment up to this batch
    8     relative_offset  uint32  base offset of the batch that holds that timestamp - segment base
    ====  ===============  ======  ================================================================

Entries are strictly increasing in timestamp and non-decreasing in offset. Every batch at or before
an entry's offset has a max timestamp <= the entry's timestamp.

Imports: standard library and `freshet.storage` (errors, index_file, offset_index, record_batch).
Forbidden: grpc, wire types (freshet.v1), metadata, server, client, cli (import-linter contract).

Thread-safety: not thread-safe; guarded by the owning log's lock.
"""

from __future__ import annotations

import struct

from freshet.storage.errors import CorruptIndexError
from freshet.storage.index_file import IndexFile
from freshet.storage.offset_index import RELATIVE_OFFSET_MAX
from freshet.storage.record_batch import NO_TIMESTAMP


class TimeIndex(IndexFile):
    """Sparse map from timestamps to offsets for one segment. Not thread-safe."""

    ENTRY = struct.Struct(
        ">"
        "q"  # timestamp: largest record timestamp so far in the segment, ms
        "I"  # relative_offset: base offset of the batch holding it - segment base offset
    )

    def maybe_append(self, timestamp: int, offset: int, *, skip_full_check: bool = False) -> bool:
        """Add (timestamp, offset) if `timestamp` is larger than the last entry's; return whether it was added.

        Args:
            skip_full_check: allow one entry beyond the cap (the final entry written at seal, as
                Kafka does), so the last entry always holds the segment's largest timestamp.
        """
        relative = offset - self.base_offset
        assert 0 <= relative <= RELATIVE_OFFSET_MAX
        last = self.last_entry_or_none()
        if last is not None:
            if timestamp <= last[0]:
                return False
            assert relative >= last[1], f"time index offsets must not decrease: {offset} after {last[1]}"
        elif timestamp <= NO_TIMESTAMP:
            return False
        if self.is_full and not skip_full_check:
            return False
        self._append_entry(timestamp, relative, allow_overflow=skip_full_check)
        return True

    def lookup(self, timestamp: int) -> tuple[int, int]:
        """The entry with the largest timestamp <= `timestamp`, as (timestamp, offset).

        Returns (NO_TIMESTAMP, base offset) when every entry is newer.
        """
        count = self._count_at_most(timestamp, 0)
        if count == 0:
            return NO_TIMESTAMP, self.base_offset
        found, relative = self.entry(count - 1)
        return found, self.base_offset + relative

    def last_entry(self) -> tuple[int, int]:
        """(largest timestamp, its batch's offset), or (NO_TIMESTAMP, base offset) when empty."""
        last = self.last_entry_or_none()
        if last is None:
            return NO_TIMESTAMP, self.base_offset
        return last[0], self.base_offset + last[1]

    def truncate_to(self, offset: int) -> None:
        """Remove every entry whose offset is >= `offset`."""
        # Offsets are non-decreasing, so a binary search on them finds the prefix to keep.
        self.truncate_entries(self._count_below(offset - self.base_offset, 1))

    def sanity_check(self, next_offset: int) -> None:
        """Check that the last entry's offset lies inside the segment.

        Raises:
            CorruptIndexError: the last entry points at or past `next_offset`.
        """
        last = self._last_entry_from_disk()
        if last is not None and self.base_offset + last[1] >= next_offset:
            raise CorruptIndexError(
                self.path,
                f"last entry points at offset {self.base_offset + last[1]}, the segment ends before {next_offset}",
            )
