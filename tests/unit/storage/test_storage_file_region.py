"""Reads handed out as FileRegions (the Kafka listener's zero-copy Fetch): the same bytes as a
copying read, and still readable after the segment is deleted, replaced or the log closed.

Goal: `PartitionLog.read(..., as_region=True)` plans exactly the bytes `read` returns, and the
region's own descriptor keeps them readable whatever happens to the segment before the send.
Method: a log of small segments on tmp_path; compare regions with copies over every offset and
a few byte limits and high watermarks; delete segments by retention and by DeleteRecords, close
the log, and read the regions taken before.
Reference: Kafka FileRecords.slice / writeTo (a FileChannel kept open while the segment may be
deleted asynchronously).
"""

from __future__ import annotations

import os

import pytest
from freshet.storage.clock import ManualClock
from freshet.storage.file_region import FileRegion
from freshet.storage.log import PartitionLog

from tests.support.storage_helpers import SMALL_CONFIG, batch, segment_files, verified_records

DAY_MS = 24 * 3600 * 1000


@pytest.fixture
def clock():
    return ManualClock(1_700_000_000_000)


def filled_log(tmp_path, clock, batches: int = 40) -> PartitionLog:
    log = PartitionLog.open(str(tmp_path / "t-0"), SMALL_CONFIG.with_changes(retention_ms=DAY_MS), clock)
    old = clock.now_ms() - 2 * DAY_MS
    for number in range(batches):
        log.append_as_leader(batch(3, value_size=100, timestamp=old, tag=number), 0)
    return log


@pytest.mark.parametrize("max_bytes", [1, 700, 4096, 1 << 20])
@pytest.mark.parametrize("max_offset", [None, 31, 61])
def test_a_region_holds_exactly_the_bytes_a_read_copies(tmp_path, clock, max_bytes, max_offset):
    log = filled_log(tmp_path, clock)
    assert len(log.segment_base_offsets()) > 3
    for offset in range(0, log.log_end_offset + 1, 4):
        copied = log.read(offset, max_bytes, max_offset)
        planned = log.read(offset, max_bytes, max_offset, as_region=True)
        assert planned[1:] == copied[1:]
        if not copied.records:
            assert planned.records == b""
            continue
        region = planned.records
        assert isinstance(region, FileRegion)
        try:
            assert len(region) == len(copied.records)
            assert region.read() == copied.records
        finally:
            region.close()
        assert region.is_closed


def test_regions_stay_readable_after_retention_deletes_their_segments_and_the_log_closes(tmp_path, clock):
    log = filled_log(tmp_path, clock)
    copies, regions = [], []
    offset = 0
    while offset < log.log_end_offset:
        copies.append(log.read(offset, 1 << 20).records)
        read = log.read(offset, 1 << 20, as_region=True)
        regions.append(read.records)
        offset = read.next_offset
    paths = {region.path for region in regions}
    assert len(paths) > 3
    assert log.delete_old_segments(clock.now_ms(), high_watermark=log.log_end_offset) > 0
    gone = paths - set(segment_files(log.directory))
    assert gone, "retention deleted the files the regions point into"
    log.close()
    try:
        for region, copy in zip(regions, copies, strict=True):
            assert region.read() == copy
        assert [record for region in regions for record in verified_records(region.read())][-1][0] == 119
    finally:
        for region in regions:
            region.close()


def test_a_region_owns_a_descriptor_of_its_own(tmp_path, clock):
    log = filled_log(tmp_path, clock, batches=3)
    region = log.read(0, 1 << 20, as_region=True).records
    descriptor = region.file.fileno()
    region.close()
    region.close()                                      # idempotent
    with pytest.raises(OSError):
        os.fstat(descriptor)
    assert log.read(0, 1 << 20).records                  # the segment's own descriptor is untouched
    log.close()
