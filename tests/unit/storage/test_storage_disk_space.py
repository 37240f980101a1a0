"""The free-space monitor: low/high-water marks, hysteresis, burst accounting, the disk reserve.

Goal: produce is refused below the low-water mark and accepted again only at the high-water mark
(no flapping), a burst between two looks cannot run past the low mark, and the reserve file is
released when full and re-created only when there is room for it (README "A full disk").
Method: an injected statvfs whose free space the test sets; the reserve lives in tmp_path.
"""

from __future__ import annotations

import os

import pytest
from freshet.storage.disk_space import MIB, DiskSpaceLimits, DiskSpaceMonitor
from freshet.storage.errors import LogDirFullError

TOTAL = 100 * MIB


class _Filesystem:
    """A statvfs stand-in: 4 KiB blocks, `free` bytes available of TOTAL."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.calls = 0

    def __call__(self, path: str) -> os.statvfs_result:
        self.calls += 1
        blocks, free = TOTAL // 4096, self.free // 4096
        return os.statvfs_result((4096, 4096, blocks, free, free, 1000, 500, 500, 0, 255))


def _monitor(filesystem, *, reserve_path=None, free_min=10 * MIB, percent=0.0, reserve=0) -> DiskSpaceMonitor:
    return DiskSpaceMonitor("/data/logs", DiskSpaceLimits(free_min, percent, reserve), reserve_path=reserve_path,
                            statvfs=filesystem)


def test_marks_are_the_larger_of_bytes_and_percent_with_a_quarter_of_hysteresis():
    limits = DiskSpaceLimits(free_min_bytes=10 * MIB, free_min_percent=5.0, reserve_bytes=0)
    assert limits.low_water_bytes(100 * MIB) == 10 * MIB
    assert limits.low_water_bytes(1000 * MIB) == 50 * MIB
    assert limits.high_water_bytes(1000 * MIB) == 50 * MIB + 50 * MIB // 4
    assert DiskSpaceLimits(0, 0.0, 0).high_water_bytes(100 * MIB) == MIB          # at least 1 MiB apart
    assert DiskSpaceLimits(200 * MIB, 0.0, 0).high_water_bytes(100 * MIB) == 200 * MIB


def test_produce_is_refused_below_low_water_and_accepted_again_only_at_high_water():
    filesystem = _Filesystem(free=50 * MIB)
    monitor = _monitor(filesystem)
    assert monitor.poll().is_full is False
    monitor.check_append(MIB)
    filesystem.free = 9 * MIB
    state = monitor.poll()
    assert state.is_full is True
    assert state.label == "full"
    with pytest.raises(LogDirFullError) as raised:
        monitor.check_append(100)
    assert raised.value.free_bytes == 9 * MIB
    assert raised.value.low_water_bytes == 10 * MIB
    assert "/data/logs" in str(raised.value)
    assert str(9 * MIB) in str(raised.value)
    filesystem.free = 11 * MIB                                       # above low, below high (12.5 MiB)
    assert monitor.poll().is_full is True
    with pytest.raises(LogDirFullError):
        monitor.check_append(100)
    filesystem.free = 12 * MIB + MIB // 2
    assert monitor.poll().is_full is False                           # at high-water: ok again
    monitor.check_append(100)
    assert monitor.full_transitions == 1
    assert monitor.refused_appends == 2


def test_a_burst_between_two_looks_is_counted_and_stops_at_the_low_mark():
    filesystem = _Filesystem(free=20 * MIB)
    monitor = _monitor(filesystem)
    monitor.poll()
    accepted = 0
    with pytest.raises(LogDirFullError):
        for _ in range(100):
            monitor.check_append(MIB)
            monitor.note_appended(MIB)
            accepted += 1
    assert accepted == 10                                             # 20 MiB - 10 x 1 MiB = the low mark
    assert monitor.is_full
    assert monitor.state().free_bytes == 10 * MIB
    assert filesystem.calls == 1                                      # decided without looking again


def test_no_decision_before_the_first_look_and_a_failed_look_keeps_the_state():
    def broken(path):
        raise OSError(5, "Input/output error")

    monitor = DiskSpaceMonitor("/data/logs", DiskSpaceLimits(10 * MIB, 0.0, 0), statvfs=broken)
    monitor.check_append(MIB)                                         # nothing known: not refused
    state = monitor.poll()
    assert state.free_bytes == -1
    assert "Input/output error" in state.error
    assert state.is_full is False


def test_reserve_is_released_when_full_and_recreated_with_room_above_high_water(tmp_path):
    reserve = str(tmp_path / "disk-reserve")
    filesystem = _Filesystem(free=50 * MIB)
    monitor = _monitor(filesystem, reserve_path=reserve, reserve=4 * MIB)
    assert monitor.poll().reserve_bytes == 4 * MIB
    assert os.path.getsize(reserve) == 4 * MIB
    assert os.stat(reserve).st_blocks * 512 >= 4 * MIB               # allocated, not sparse
    filesystem.free = 5 * MIB
    assert monitor.poll().is_full
    assert not os.path.exists(reserve)
    filesystem.free = 13 * MIB                                        # ok again, but no room for the reserve
    state = monitor.poll()
    assert state.is_full is False
    assert state.reserve_bytes == 0
    filesystem.free = 12 * MIB + MIB // 2 + 4 * MIB                   # high-water + reserve
    assert monitor.poll().reserve_bytes == 4 * MIB
    monitor.set_limits(DiskSpaceLimits(10 * MIB, 0.0, 0))             # an operator turns it off
    assert monitor.poll().reserve_bytes == 0
    assert not os.path.exists(reserve)


def test_new_limits_apply_at_the_next_look():
    filesystem = _Filesystem(free=30 * MIB)
    monitor = _monitor(filesystem)
    assert not monitor.poll().is_full
    monitor.set_limits(DiskSpaceLimits(0, 40.0, 0))                   # 40 % of 100 MiB
    state = monitor.poll()
    assert state.is_full
    assert state.low_water_bytes == 40 * MIB
