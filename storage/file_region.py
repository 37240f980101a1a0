"""A byte range of a segment file, held open for a zero-copy send (Kafka's FileRecords slice).

Owns one file descriptor: a `dup` of the segment's, taken under the log's lock when the read is
planned, so the range stays readable however long the send waits behind earlier responses,
even if retention deletes the segment, compaction replaces it or the log closes it meanwhile
(the inode lives until the last descriptor is closed). Everything below the high watermark in a
segment file is immutable, so the bytes are the ones the read planned. The segment's own I/O is
positional (pread/pwrite), so the file offset the duplicate shares is never relied upon.

The owner of a region closes it once it is sent or dropped (`close` is idempotent; a region
lost to garbage collection is closed by its FileIO).

Imports: standard library. Forbidden: grpc, wire types, metadata, server (import-linter contract).
Thread-safety: not thread-safe; one owner at a time.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable

from freshet.storage.errors import CorruptRecordError, KafkaStorageError


class FileRegion:
    """`count` bytes of `path` from `position`, over a private descriptor (module docstring)."""

    __slots__ = ("file", "position", "count", "path")

    def __init__(self, fd: int, position: int, count: int, path: str) -> None:
        """Take ownership of `fd` (closed by `close`)."""
        assert position >= 0
        assert count > 0
        self.file: io.FileIO = io.FileIO(fd, "rb", closefd=True)
        self.position = position
        self.count = count
        self.path = path

    @classmethod
    def of(cls, fd: int, position: int, count: int, path: str) -> FileRegion:
        """A region over a duplicate of `fd` (the caller keeps its own descriptor).

        Raises:
            KafkaStorageError: the descriptor cannot be duplicated (out of descriptors).
        """
        try:
            duplicate = os.dup(fd)
        except OSError as error:
            raise KafkaStorageError(path, "read", error) from error
        return cls(duplicate, position, count, path)

    def __len__(self) -> int:
        return self.count

    def read(self) -> bytes:
        """The bytes, copied into memory (the path where zero-copy cannot go: TLS).

        Raises:
            CorruptRecordError: the file is shorter than the region.
            KafkaStorageError: the read failed.
        """
        try:
            data = os.pread(self.file.fileno(), self.count, self.position)
        except OSError as error:
            raise KafkaStorageError(self.path, "read", error) from error
        if len(data) != self.count:
            raise CorruptRecordError(
                f"read {len(data)} of {self.count} bytes: the file is shorter than the segment",
                position=self.position,
                path=self.path,
            )
        return data

    @property
    def is_closed(self) -> bool:
        return self.file.closed

    def close(self) -> None:
        self.file.close()

    def __repr__(self) -> str:
        return f"FileRegion({self.path!r}, position={self.position}, count={self.count})"


def close_regions(parts: Iterable[object] | None) -> None:
    """Close every FileRegion among `parts` (anything else is skipped)."""
    for part in parts or ():
        if isinstance(part, FileRegion):
            part.close()
