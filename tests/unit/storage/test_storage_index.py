"""Offset index and time index: lookups agree with a linear scan, in memory and memory-mapped."""

from __future__ import annotations

import os

import pytest
from freshet.storage.errors import CorruptIndexError
from freshet.storage.offset_index import OffsetIndex
from freshet.storage.time_index import TimeIndex
from hypothesis import given, settings
from hypothesis import strategies as st

BASE = 1_000_000


def _increasing(draw_list: list[int]) -> list[int]:
    values, total = [], 0
    for step in draw_list:
        total += step
        values.append(total)
    return values


steps = st.lists(st.integers(min_value=1, max_value=5_000), min_size=0, max_size=300)


@settings(max_examples=60, deadline=None)
@given(offset_steps=steps, data=st.data())
def test_offset_index_lookups_equal_a_linear_scan(tmp_path_factory, offset_steps, data):
    """Goal: lookup / lookup_by_position return the largest entry <= target, else (base, 0).

    Method: random strictly increasing entries; compare against a linear scan for random targets,
    first on the mutable index, then after sealing (memory-mapped) and unsealing.
    """
    directory = tmp_path_factory.mktemp("index")
    offsets = _increasing(offset_steps)
    positions = _increasing(
        data.draw(st.lists(st.integers(1, 10_000), min_size=len(offsets), max_size=len(offsets)))
    )
    index = OffsetIndex(str(directory / "x.index"), BASE, 10 * 1024 * 1024, is_mutable=True)
    for relative, position in zip(offsets, positions, strict=True):
        index.append(BASE + relative, position)
    entries = [(BASE + relative, position) for relative, position in zip(offsets, positions, strict=True)]
    targets = data.draw(
        st.lists(
            st.integers(min_value=BASE - 10, max_value=BASE + (offsets[-1] if offsets else 0) + 10),
            max_size=40,
        )
    )
    position_targets = data.draw(
        st.lists(st.integers(min_value=-5, max_value=(positions[-1] if positions else 0) + 10), max_size=40)
    )

    def expected(target: int, field: int) -> tuple[int, int]:
        found = [entry for entry in entries if entry[field] <= target]
        return found[-1] if found else (BASE, 0)

    for phase in ("mutable", "sealed", "unsealed"):
        if phase == "sealed":
            index.seal()
            assert os.path.getsize(index.path) == 8 * len(entries)
        if phase == "unsealed":
            index.unseal()
        for target in targets:
            assert index.lookup(target) == expected(target, 0), phase
        for target in position_targets:
            assert index.lookup_by_position(target) == expected(target, 1), phase
    index.close()


def test_offset_index_truncation_removes_exactly_the_entries_at_or_above(tmp_path):
    """Goal: truncation by offset and by position keep exactly the entries below. Method: ten
    entries, truncate twice, flush and check the file size.
    """
    index = OffsetIndex(str(tmp_path / "x.index"), 100, 1024, is_mutable=True)
    for n in range(10):
        index.append(100 + 10 * n, 1000 * n + 1)
    index.truncate_to(150)
    assert index.entries == 5
    assert index.lookup(10**9) == (140, 4001)
    index.truncate_to_position(2001)
    assert index.entries == 2
    assert index.lookup(10**9) == (110, 1001)
    index.flush()
    assert os.path.getsize(tmp_path / "x.index") == 16


def test_offset_index_is_full_at_segment_index_bytes(tmp_path):
    """Goal: segment.index.bytes caps the entries (the log rolls when an index is full)."""
    index = OffsetIndex(str(tmp_path / "x.index"), 0, 8 * 3 + 7, is_mutable=True)
    for n in range(3):
        assert not index.is_full
        index.append(n + 1, n + 1)
    assert index.is_full


def test_offset_index_entries_must_increase(tmp_path):
    """Goal: a non-increasing entry is a bug in the caller and trips an assertion."""
    index = OffsetIndex(str(tmp_path / "x.index"), 0, 1024, is_mutable=True)
    index.append(5, 100)
    with pytest.raises(AssertionError):
        index.append(5, 200)
    with pytest.raises(AssertionError):
        index.append(6, 100)


def test_index_file_of_a_partial_entry_is_corrupt(tmp_path):
    """Goal: a file that is not a whole number of entries is reported, not misread."""
    path = tmp_path / "x.index"
    path.write_bytes(b"\x00" * 13)
    with pytest.raises(CorruptIndexError, match="multiple"):
        OffsetIndex(str(path), 0, 1024, is_mutable=False)


def test_sanity_check_catches_an_entry_past_the_end_of_the_log(tmp_path):
    """Goal: an entry pointing at or past the end of its log file fails the sanity check (the
    segment then rebuilds its index).
    """
    index = OffsetIndex(str(tmp_path / "x.index"), 0, 1024, is_mutable=True)
    index.append(3, 500)
    index.seal()
    reopened = OffsetIndex(str(tmp_path / "x.index"), 0, 1024, is_mutable=False)
    reopened.sanity_check(501)
    with pytest.raises(CorruptIndexError, match="past the end|points at position 500"):
        reopened.sanity_check(500)


@settings(max_examples=60, deadline=None)
@given(
    appends=st.lists(st.tuples(st.integers(-3, 10_000), st.integers(0, 50)), max_size=200),
    targets=st.lists(st.integers(-5, 12_000), max_size=40),
)
def test_time_index_keeps_increasing_timestamps_and_lookups_equal_a_scan(tmp_path_factory, appends, targets):
    """Goal: entries only when the timestamp grows; lookup = largest timestamp <= target.

    Method: feed (timestamp, offset step) pairs, keep our own list of accepted entries, compare
    lookups before and after sealing.
    """
    directory = tmp_path_factory.mktemp("timeindex")
    index = TimeIndex(str(directory / "x.timeindex"), BASE, 1024 * 1024, is_mutable=True)
    accepted: list[tuple[int, int]] = []
    offset = BASE
    for timestamp, step in appends:
        offset += step
        added = index.maybe_append(timestamp, offset)
        should_add = timestamp >= 0 and (not accepted or timestamp > accepted[-1][0])
        assert added == should_add
        if added:
            accepted.append((timestamp, offset))

    def expected(target: int) -> tuple[int, int]:
        found = [entry for entry in accepted if entry[0] <= target]
        return found[-1] if found else (-1, BASE)

    for phase in ("mutable", "sealed"):
        if phase == "sealed":
            index.seal()
        for target in targets:
            assert index.lookup(target) == expected(target), phase
        assert index.last_entry() == (accepted[-1] if accepted else (-1, BASE))
    index.close()


def test_time_index_final_entry_may_exceed_the_cap(tmp_path):
    """Goal: sealing records the segment's largest timestamp even when the time index is full."""
    index = TimeIndex(str(tmp_path / "x.timeindex"), 0, 12 * 2, is_mutable=True)
    assert index.maybe_append(10, 1)
    assert index.maybe_append(20, 2)
    assert index.is_full
    assert not index.maybe_append(30, 3)
    assert index.maybe_append(30, 3, skip_full_check=True)
    assert index.last_entry() == (30, 3)


def test_time_index_truncation_drops_entries_of_removed_batches(tmp_path):
    """Goal: truncating the time index removes entries whose batch is gone."""
    index = TimeIndex(str(tmp_path / "x.timeindex"), 100, 1024, is_mutable=True)
    for n in range(5):
        index.maybe_append(1000 + n, 100 + 10 * n)
    index.truncate_to(120)
    assert index.entries == 2
    assert index.last_entry() == (1001, 110)
