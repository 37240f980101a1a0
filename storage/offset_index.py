"""The sparse offset index of a segment: relative offset -> byte position in the `.log` file.

Owns the `<base_offset>.index` file. One entry is added each time more than index.interval.bytes
of batches have been appended since the previous entry, so lookups land within about one interval
of the batch wanted, and a short scan of batch headers finishes the job.

Entry layout (8 bytes, big-endian, `OffsetIndex.ENTRY`):

    ====  ===============  ======  ================================================================
    pos   field            type    meaning
    ====  ===============  ======  ================================================================
    0     relative_offset  uint32  base offset of a batch - the segment's base offset
    4     position         uint32  byte position of that batch in the segment's `.log` file
    ====  ===============  ======  ================================================================

Entries are strictly increasing in both fields. Unlike Kafka, which indexes the *last* offset of
the batch at `position`, Freshet indexes the batch's *base* offset: consumers fetch at batch
boundaries (the next offset after their last batch), which this makes an exact hit.

Imports: standard library and `freshet.storage` (errors, index_file). Forbidden: grpc, wire types
(freshet.v1), metadata, server, client, cli (import-linter contract).

Thread-safety: not thread-safe; guarded by the owning log's lock.
"""

from __future__ import annotations

import struct

from freshet.storage.errors import CorruptIndexError
from freshet.storage.index_file import IndexFile

#: Largest relative offset an entry (and a segment) can hold.
RELATIVE_OFFSET_MAX = 2**32 - 1


class OffsetIndex(IndexFile):
    """Sparse map from offsets to `.log` positions for one segment. Not thread-safe."""

    ENTRY = struct.Struct(
        ">"
        "I"  # relative_offset: batch base offset - segment base offset
        "I"  # position: byte position of the batch in the .log file
    )

    def append(self, offset: int, position: int) -> None:
        """Add an entry for the batch with base offset `offset` that starts at `position`."""
        relative = offset - self.base_offset
        assert 0 <= relative <= RELATIVE_OFFSET_MAX
        assert 0 <= position <= RELATIVE_OFFSET_MAX
        last = self.last_entry_or_none()
        if last is not None:
            # Invariant: entries strictly increase in both offset and position.
            assert relative > last[0], f"offset index entries must increase: {offset} after {last[0]}"
            assert position > last[1]
        self._append_entry(relative, position)

    def lookup(self, offset: int) -> tuple[int, int]:
        """The entry with the largest offset <= `offset`, as (offset, position); (base offset, 0) if none."""
        count = self._count_at_most(offset - self.base_offset, 0)
        if count == 0:
            return self.base_offset, 0
        relative, position = self.entry(count - 1)
        return self.base_offset + relative, position

    def lookup_by_position(self, position: int) -> tuple[int, int]:
        """The entry with the largest position <= `position`, as (offset, position); (base offset, 0) if none."""
        count = self._count_at_most(position, 1)
        if count == 0:
            return self.base_offset, 0
        relative, found = self.entry(count - 1)
        return self.base_offset + relative, found

    def truncate_to(self, offset: int) -> None:
        """Remove every entry whose offset is >= `offset`."""
        self.truncate_entries(self._count_below(offset - self.base_offset, 0))

    def truncate_to_position(self, position: int) -> None:
        """Remove every entry whose position is >= `position`."""
        self.truncate_entries(self._count_below(position, 1))

    def sanity_check(self, log_size_bytes: int) -> None:
        """Check what can be checked cheaply: the last entry points inside the log file.

        Raises:
            CorruptIndexError: the last entry points at or past the end of the log.
        """
        last = self._last_entry_from_disk()
        if last is not None and last[1] >= log_size_bytes:
            raise CorruptIndexError(
                self.path, f"last entry points at position {last[1]}, the log has {log_size_bytes} bytes"
            )
