"""Shared helpers of the storage tests: batch builders and whole-log readers.

Not a test module (no test_ prefix); imported by the storage unit tests.
"""

from __future__ import annotations

import os

from freshet.storage.config import LogConfig
from freshet.storage.log import PartitionLog
from freshet.storage.record_batch import (
    BatchHeader,
    Record,
    decode_batch,
    encode_batch,
    iter_batches,
    verify_crc,
)
from freshet.storage.segment import LOG_FILE_SUFFIX, parse_segment_file_name

SMALL_CONFIG = LogConfig(segment_bytes=4096, index_interval_bytes=256, segment_index_bytes=1024)


def batch(
    count: int = 1,
    *,
    value_size: int = 20,
    timestamp: int = 1_700_000_000_000,
    key: bytes | None = b"key",
    tag: int = 0,
    **encode_options: object,
) -> bytearray:
    """A producer batch of `count` records whose values identify (tag, record number)."""
    records = [
        Record(
            timestamp + number, key, (f"{tag}:{number}:".encode() + b"v" * value_size)[: max(value_size, 1)]
        )
        for number in range(count)
    ]
    return encode_batch(records, **encode_options)  # type: ignore[arg-type]


def read_all(log: PartitionLog, start: int | None = None) -> bytes:
    """Every byte the log serves from `start` (default: log start) to the log end, read by read()."""
    offset = log.log_start_offset if start is None else start
    chunks = []
    while offset < log.log_end_offset:
        result = log.read(offset, 1 << 20)
        if not result.records:
            break
        chunks.append(result.records)
        assert result.next_offset >= [header for header, _ in iter_batches(result.records)][-1].next_offset
        offset = result.next_offset
    return b"".join(chunks)


def headers_of(data: bytes) -> list[BatchHeader]:
    return [header for header, _ in iter_batches(data)]


def verified_records(data: bytes) -> list[tuple[int, bytes | None, bytes | None]]:
    """(offset, key, value) of every record, after checking every batch's CRC."""
    out = []
    for header, view in iter_batches(data):
        verify_crc(header, view)
        out.extend((record.offset, record.key, record.value) for record in decode_batch(view).records)
    return out


def segment_files(directory: str) -> list[str]:
    """Live `.log` files of a partition directory, in offset order."""
    names = []
    for name in os.listdir(directory):
        parsed = parse_segment_file_name(name)
        if parsed is not None and parsed[1] == LOG_FILE_SUFFIX and parsed[2] == "":
            names.append(name)
    return [os.path.join(directory, name) for name in sorted(names)]


def crash(log: PartitionLog) -> None:
    """Drop a log without closing it, as a kill -9 would: no marker, no index or snapshot writes.

    The bytes already written stay in the page cache (a process crash, not a power loss); file
    descriptors and mappings are released so the next open sees the files as they are.
    """
    with log._lock:
        for segment in log._segments:
            segment.release()
        log._is_closed = True
