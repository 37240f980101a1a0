"""A file of fixed-size, sorted entries: the storage shared by the offset index and the time index.

Owns how a segment's index entries live in memory and on disk:

- The **active** segment's entries are *mutable*: they live in a bytearray and reach the file only
  on `flush`, `seal` and `close`. Appends therefore cost no system call. This is safe because an
  unclean shutdown makes recovery rebuild the active segment's indexes from its log file, so an
  index file that lags its log is never trusted.
- A **sealed** segment's entries are read-only: the file is memory-mapped on first lookup (like
  Kafka's lazily loaded, mmapped indexes), so cold segments cost no memory until read. A mapping
  holds a duplicate of the file's descriptor (CPython's mmap), so it is one of the holders of the
  process's bounded cache of open files (`open_files`): a lookup pins it, and an idle one may be
  unmapped and mapped again on its next lookup.

Lookups are binary searches over one field of the entries. Subclasses define the entry layout.

Imports: standard library, `freshet.storage.errors` and `freshet.storage.open_files`. Forbidden: grpc, wire types (freshet.v1),
metadata, server, client, cli (import-linter contract).

Thread-safety: not thread-safe; the owning segment is guarded by its log's lock.
"""

from __future__ import annotations

import logging
import mmap
import os
import struct

from freshet.storage.errors import CorruptIndexError, KafkaStorageError, LogDirFullError, is_disk_full
from freshet.storage.open_files import OPEN_FILES

logger = logging.getLogger(__name__)


class IndexFile:
    """Sorted fixed-size entries of one segment, in memory (mutable) or memory-mapped (sealed).

    Not thread-safe.
    """

    ENTRY: struct.Struct = struct.Struct("")  # replaced by subclasses

    def __init__(self, path: str, base_offset: int, max_index_bytes: int, *, is_mutable: bool) -> None:
        """Open (or create, when mutable and missing) the index file at `path`.

        Args:
            path: the index file.
            base_offset: the segment's base offset; entries store offsets relative to it.
            max_index_bytes: size cap (segment.index.bytes); the index is full at that many bytes.
            is_mutable: whether this is the active segment's index (entries in memory).

        Raises:
            CorruptIndexError: the file size is not a whole number of entries.
            KafkaStorageError: the file cannot be read.
        """
        self.path = path
        self.base_offset = base_offset
        self.max_entries = max(max_index_bytes // self.ENTRY.size, 1)
        self._entry_size = self.ENTRY.size
        self._is_mutable = is_mutable
        # A sealed index's mapping (opened and closed by OPEN_FILES; used only while pinned) ...
        self._mmap: mmap.mmap | None = None
        self._pins = 0
        # ... or the entries in memory: a mutable index's, or b"" for an empty sealed one.
        self._buffer: bytearray | bytes | None = None
        self._persisted_bytes = 0
        # Cache of the last entry (appends compare with it); None when unknown.
        self._last_entry: tuple[int, ...] | None = None
        try:
            size = os.path.getsize(path) if os.path.exists(path) else 0
        except OSError as error:
            raise KafkaStorageError(path, "open index", error) from error
        if size % self._entry_size != 0:
            raise CorruptIndexError(
                path, f"size {size} is not a multiple of the entry size {self._entry_size}"
            )
        self.entries = size // self._entry_size
        if is_mutable:
            self._buffer = bytearray(self._read_file()) if size else bytearray()
            self._persisted_bytes = size
            if not os.path.exists(path):
                self._write_file(b"")

    # ---------------------------------------------------------------------------------------------
    # Reading entries.

    @property
    def is_full(self) -> bool:
        """Whether no more entries fit in segment.index.bytes."""
        return self.entries >= self.max_entries

    @property
    def is_mutable(self) -> bool:
        return self._is_mutable

    def entry(self, number: int) -> tuple[int, ...]:
        """Entry `number` (0-based), unpacked."""
        assert 0 <= number < self.entries
        buffer, is_pinned = self._acquire()
        try:
            return self.ENTRY.unpack_from(buffer, number * self._entry_size)
        finally:
            if is_pinned:
                OPEN_FILES.unpin(self)

    def last_entry_or_none(self) -> tuple[int, ...] | None:
        if self.entries == 0:
            return None
        if self._last_entry is None:
            self._last_entry = self.entry(self.entries - 1)
        return self._last_entry

    def _last_entry_from_disk(self) -> tuple[int, ...] | None:
        """The last entry without mapping the file (for sanity checks of sealed indexes at open)."""
        if self.entries == 0:
            return None
        if self._buffer is not None:
            return self.entry(self.entries - 1)
        try:
            with open(self.path, "rb") as file:
                file.seek((self.entries - 1) * self._entry_size)
                raw = file.read(self._entry_size)
        except OSError as error:
            raise KafkaStorageError(self.path, "read index", error) from error
        if len(raw) != self._entry_size:
            raise CorruptIndexError(self.path, "file shrank while reading its last entry")
        return self.ENTRY.unpack(raw)

    def _count_at_most(self, target: int, field: int) -> int:
        """Number of leading entries whose `field` is <= `target` (entries are sorted on it)."""
        buffer, is_pinned = self._acquire()
        unpack = self.ENTRY.unpack_from
        size = self._entry_size
        low, high = 0, self.entries
        try:
            while low < high:
                middle = (low + high) >> 1
                if unpack(buffer, middle * size)[field] <= target:
                    low = middle + 1
                else:
                    high = middle
        finally:
            if is_pinned:
                OPEN_FILES.unpin(self)
        return low

    def _count_below(self, target: int, field: int) -> int:
        """Number of leading entries whose `field` is < `target`."""
        return self._count_at_most(target - 1, field)

    def _acquire(self) -> tuple[bytearray | mmap.mmap | bytes, bool]:
        """The entries, and whether they are a mapping pinned until `OPEN_FILES.unpin(self)`."""
        if self._buffer is not None:
            return self._buffer, False
        if self.entries == 0:
            return b"", False
        try:
            OPEN_FILES.pin(self)
        except (OSError, ValueError) as error:
            raise KafkaStorageError(self.path, "map index", error) from error
        assert self._mmap is not None
        return self._mmap, True

    def _cache_open(self) -> None:
        """OPEN_FILES maps the file (read-only)."""
        with open(self.path, "rb") as file:
            self._mmap = mmap.mmap(file.fileno(), self.entries * self._entry_size, access=mmap.ACCESS_READ)

    def _cache_close(self) -> None:
        """OPEN_FILES unmaps it (nobody has it pinned)."""
        mapping, self._mmap = self._mmap, None
        if mapping is not None:
            mapping.close()

    # ---------------------------------------------------------------------------------------------
    # Changing entries (mutable indexes only).

    def _append_entry(self, *fields: int, allow_overflow: bool = False) -> None:
        assert self._is_mutable, "only the active segment's index takes appends"
        assert allow_overflow or not self.is_full
        buffer = self._buffer
        assert isinstance(buffer, bytearray)
        buffer += self.ENTRY.pack(*fields)
        self.entries += 1
        self._last_entry = fields

    def truncate_entries(self, count: int) -> None:
        """Keep only the first `count` entries."""
        assert self._is_mutable
        assert 0 <= count <= self.entries
        buffer = self._buffer
        assert isinstance(buffer, bytearray)
        del buffer[count * self._entry_size :]
        self.entries = count
        self._last_entry = None
        self._persisted_bytes = min(self._persisted_bytes, len(buffer))

    def reset(self) -> None:
        """Drop every entry (before a rebuild)."""
        if not self._is_mutable:
            self.unseal()
        self.truncate_entries(0)

    # ---------------------------------------------------------------------------------------------
    # Persistence.

    def flush(self) -> None:
        """Write entries not yet on disk, cut the file to the entry count and fsync it."""
        if not self._is_mutable:
            return
        buffer = self._buffer
        assert isinstance(buffer, bytearray)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                if self._persisted_bytes < len(buffer):
                    view = memoryview(buffer)[self._persisted_bytes :]
                    position = self._persisted_bytes
                    while view:
                        written = os.pwrite(fd, view, position)
                        view = view[written:]
                        position += written
                os.ftruncate(fd, len(buffer))
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as error:
            if is_disk_full(error):
                # The entries stay in memory and `_persisted_bytes` where it was: the next flush
                # rewrites them (a half-written entry on disk is overwritten or cut by ftruncate).
                # A fresh buffer, because this failure's traceback may keep views of the old one
                # alive, and a bytearray with views cannot grow (the next entry would fail).
                self._buffer = bytearray(buffer)
                raise LogDirFullError(self.path, "flush index", cause=error) from error
            raise KafkaStorageError(self.path, "flush index", error) from error
        self._persisted_bytes = len(buffer)

    def seal(self) -> None:
        """Flush and turn read-only: the entries are dropped from memory and mapped on next use."""
        if not self._is_mutable:
            return
        self.flush()
        self._is_mutable = False
        self._buffer = None

    def unseal(self) -> None:
        """Turn a sealed index back into a mutable one (the segment becomes active after truncation)."""
        if self._is_mutable:
            return
        buffer, is_pinned = self._acquire()
        try:
            data = bytes(buffer)
        finally:
            if is_pinned:
                OPEN_FILES.unpin(self)
        self._release_map()
        self._buffer = bytearray(data)
        self._persisted_bytes = len(data)
        self._is_mutable = True

    def close(self) -> None:
        """Flush a mutable index and release memory and mappings."""
        if self._is_mutable:
            self.flush()
        self._release_map()
        self._buffer = None
        self._is_mutable = False

    def release(self) -> None:
        """Release mappings and memory without writing (the segment is being deleted or replaced)."""
        self._release_map()
        self._buffer = None
        self._is_mutable = False

    def rename(self, path: str) -> None:
        """Rename the file (and keep using it under the new name)."""
        try:
            if os.path.exists(self.path):
                os.replace(self.path, path)
        except OSError as error:
            raise KafkaStorageError(self.path, "rename index", error) from error
        self.path = path

    def delete(self) -> None:
        """Release the index and delete its file."""
        self.release()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as error:
            raise KafkaStorageError(self.path, "delete index", error) from error

    def _release_map(self) -> None:
        OPEN_FILES.close(self)

    def _read_file(self) -> bytes:
        try:
            with open(self.path, "rb") as file:
                return file.read()
        except OSError as error:
            raise KafkaStorageError(self.path, "read index", error) from error

    def _write_file(self, data: bytes) -> None:
        try:
            with open(self.path, "wb") as file:
                file.write(data)
        except OSError as error:
            raise KafkaStorageError(self.path, "create index", error) from error
