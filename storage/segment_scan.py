"""Walking the batch headers of one segment file: the plain forward scan and recovery's verifying scan.

Owns the two loops that read a `.log` file in chunks through a `pread(size, position)` callable and
parse batch headers out of them: `scan_headers` (lookups, reads and tail state: headers only, no
CRC) and `RecoveryScan` (recovery: every batch read whole and checked, stopping at the first bad
one). `last_boundary_at_or_before` is the read path's search for where a size-bounded read ends.
They keep no file state; `LogSegment` owns the file, its indexes and what a scan's result means.

Imports: standard library and `freshet.storage`. Forbidden: grpc, wire types (freshet.v1), metadata,
server, client, cli (import-linter contract).

Thread-safety: not thread-safe; each scan is used by one thread, under its log's lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from freshet.storage.errors import CorruptRecordError
from freshet.storage.offset_index import RELATIVE_OFFSET_MAX
from freshet.storage.record_batch import BATCH_HEADER_SIZE, BatchHeader, is_crc_valid, parse_header

# Header scans read this much at a time, so that small batches cost one pread per few dozen.
_SCAN_CHUNK_BYTES = 8 * 1024
# Recovery verifies CRCs over chunks this large (a larger batch is read on its own).
_RECOVERY_CHUNK_BYTES = 8 * 1024 * 1024

Pread = Callable[[int, int], bytes]


def scan_headers(pread: Pread, position: int, end: int, path: str) -> Iterator[tuple[int, BatchHeader]]:
    """Yield (position, header) of each batch from `position` (a batch start) until `end`.

    Raises:
        CorruptRecordError: a header does not parse, or a batch runs past `end`.
    """
    chunk = b""
    chunk_start = position
    while position < end:
        offset_in_chunk = position - chunk_start
        if offset_in_chunk + BATCH_HEADER_SIZE > len(chunk):
            chunk = pread(min(_SCAN_CHUNK_BYTES, end - position), position)
            chunk_start = position
            offset_in_chunk = 0
        try:
            header = parse_header(chunk, offset_in_chunk)
        except CorruptRecordError as error:
            raise CorruptRecordError(error.reason, position=position, path=path) from None
        size = header.batch_length + 12
        if position + size > end:
            raise CorruptRecordError(
                f"batch of {size} bytes runs past the end of the segment at {end}",
                position=position,
                path=path,
            )
        yield position, header
        position += size


def last_boundary_at_or_before(
    headers: Iterator[tuple[int, BatchHeader]], position: int, limit: int
) -> tuple[int, int | None]:
    """The largest batch boundary <= `limit` among `headers` (scanned from the batch start `position`).

    Returns:
        (boundary position, base offset of the batch that starts there), the offset being None
        when the scan ended first (the boundary is then the scan's end).
    """
    boundary = position
    for found, header in headers:
        batch_end = found + header.batch_length + 12
        if batch_end > limit:
            return boundary, header.base_offset
        boundary = batch_end
    return boundary, None


class RecoveryScan:
    """Yields (position, header) of each intact batch of a segment file, from its start, in order.

    A batch is bad when its header does not parse, it runs past the end of the file (a torn
    write), its CRC does not match, its offsets do not continue the previous batch (with
    `allows_gaps`, for compacted logs, they only have to increase) or do not fit the segment, or
    it claims more records than offsets. The scan stops at the first bad batch; afterwards
    `end_position` is where the intact prefix ends and `reason` says why it stopped ("" at the end
    of the file). Not thread-safe.
    """

    def __init__(self, pread: Pread, file_size: int, base_offset: int, *, allows_gaps: bool) -> None:
        self._pread = pread
        self._file_size = file_size
        self._base_offset = base_offset
        self._allows_gaps = allows_gaps
        self.end_position = 0
        self.reason = ""

    def __iter__(self) -> Iterator[tuple[int, BatchHeader]]:
        pread, file_size = self._pread, self._file_size
        next_offset = self._base_offset
        position = 0
        chunk = b""
        chunk_start = 0
        while position < file_size:
            offset_in_chunk = position - chunk_start
            if offset_in_chunk + BATCH_HEADER_SIZE > len(chunk):
                chunk = pread(min(_RECOVERY_CHUNK_BYTES, file_size - position), position)
                chunk_start, offset_in_chunk = position, 0
            try:
                header = parse_header(chunk, offset_in_chunk)
            except CorruptRecordError as error:
                self.reason = error.reason
                break
            size = header.batch_length + 12
            if position + size > file_size:
                self.reason = f"batch of {size} bytes is torn: only {file_size - position} bytes were written"
                break
            if position + size > RELATIVE_OFFSET_MAX:
                self.reason = "the segment grows past what uint32 positions can address"
                break
            if offset_in_chunk + size > len(chunk):
                chunk = pread(max(min(_RECOVERY_CHUNK_BYTES, file_size - position), size), position)
                chunk_start, offset_in_chunk = position, 0
            batch = memoryview(chunk)[offset_in_chunk : offset_in_chunk + size]
            self.reason = self._check(header, batch, next_offset)
            if self.reason:
                break
            yield position, header
            next_offset = header.next_offset
            position += size
            self.end_position = position

    def _check(self, header: BatchHeader, batch: memoryview, next_offset: int) -> str:
        """Why the whole batch `batch` cannot follow a batch that ended at `next_offset` ("" if it can)."""
        if not is_crc_valid(header, batch):
            return "CRC mismatch"
        if header.base_offset < next_offset or (header.base_offset != next_offset and not self._allows_gaps):
            return f"base offset {header.base_offset} does not continue at {next_offset}"
        if not 0 <= header.next_offset - 1 - self._base_offset <= RELATIVE_OFFSET_MAX:
            return f"offsets up to {header.next_offset - 1} do not fit a segment based at {self._base_offset}"
        if header.record_count > header.last_offset_delta + 1:
            return f"{header.record_count} records cannot fit {header.last_offset_delta + 1} offsets"
        return ""
