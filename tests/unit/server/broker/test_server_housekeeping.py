"""Housekeeping's retention schedule and cleaner switch (server/broker/housekeeping.py).

Goal: retention runs every log.retention.check.interval.ms as read at each pass (so a dynamic
change applies from the next pass), not on a fixed period; log.cleaner.enable=false leaves the
compaction cleaner stopped. Method: a fake LogManager whose flush (called once per pass, about a
second apart) moves a ManualClock by 1000 ms, so pass N sees N seconds; count retention runs.
"""

from __future__ import annotations

import asyncio
import time

from freshet.server.broker.housekeeping import Housekeeping
from freshet.storage.clock import ManualClock


class FakeLogManager:
    """Records what Housekeeping asks of the logs. Thread-safe enough: one executor thread."""

    def __init__(self, clock: ManualClock, interval_from_pass: dict[int, int] | None = None) -> None:
        self.clock = clock
        self.interval_from_pass = interval_from_pass or {}
        self.interval_ms = 300_000
        self.passes = 0
        self.retention_runs: list[int] = []          # pass number of each run
        self.is_cleaner_started = False

    def flush_dirty_logs(self) -> int:
        self.passes += 1
        self.clock.advance(1000)
        # The dynamic change lands inside the pass, before its retention check: deterministic.
        self.interval_ms = self.interval_from_pass.get(self.passes, self.interval_ms)
        return 0

    def run_retention(self, now_ms: int, high_watermarks) -> int:
        self.retention_runs.append(self.passes)
        return 0

    def checkpoint_high_watermarks(self, high_watermarks) -> None:
        pass

    def start_cleaner(self) -> None:
        self.is_cleaner_started = True


async def run_passes(housekeeping: Housekeeping, logs: FakeLogManager, passes: int) -> None:
    """Run until `passes` passes have started (the ones before them are complete)."""
    housekeeping.start(asyncio.get_running_loop())
    deadline = time.monotonic() + passes * 1.0 + 10
    try:
        while logs.passes < passes:
            assert time.monotonic() < deadline, f"only {logs.passes} housekeeping passes"
            await asyncio.sleep(0.02)
    finally:
        await housekeeping.close()


def test_retention_follows_the_interval_read_at_every_pass():
    clock = ManualClock()
    logs = FakeLogManager(clock, interval_from_pass={3: 1000})
    housekeeping = Housekeeping(logs, dict, clock, 1, lambda: logs.interval_ms, True)
    asyncio.run(run_passes(housekeeping, logs, 5))
    # Passes 1 and 2 (1 s and 2 s after the start) are far inside 300 s; from pass 3 on the
    # interval is 1000 ms and every pass is 1000 ms after the last run. Pass 5 only started.
    assert logs.retention_runs[:2] == [3, 4], logs.retention_runs
    assert logs.is_cleaner_started


def test_cleaner_stays_stopped_when_disabled():
    clock = ManualClock()
    logs = FakeLogManager(clock)
    housekeeping = Housekeeping(logs, dict, clock, 1, lambda: 300_000, False)
    asyncio.run(run_passes(housekeeping, logs, 2))
    assert not logs.is_cleaner_started
    assert logs.retention_runs == []


def test_the_high_watermark_checkpoint_is_rewritten_only_after_a_high_watermark_moved(monkeypatch):
    """Goal: an idle broker with thousands of partitions does not rewrite (and fsync) the same
    replication-offset-checkpoint every 5 s; a moved high watermark is written at the next due
    pass, and close writes it whatever happened. Method: passes 10 ms apart, each moving the
    clock 1000 ms (a checkpoint is due every 5 passes); the high watermark moves at pass 12."""
    from freshet.server import limits

    monkeypatch.setattr(limits, "FLUSH_CHECK_INTERVAL_MS", 10)
    clock = ManualClock()
    marks = {("t", 0): 5}

    class Recording(FakeLogManager):
        def __init__(self) -> None:
            super().__init__(clock)
            self.checkpoints: list[tuple[int, dict]] = []

        def flush_dirty_logs(self) -> int:
            if self.passes == 11:
                marks[("t", 0)] = 9
            return super().flush_dirty_logs()

        def checkpoint_high_watermarks(self, high_watermarks) -> None:
            self.checkpoints.append((self.passes, dict(high_watermarks)))

    logs = Recording()
    housekeeping = Housekeeping(logs, lambda: dict(marks), clock, 1, lambda: 300_000, True)
    asyncio.run(run_passes(housekeeping, logs, 22))
    assert logs.checkpoints[:2] == [(5, {("t", 0): 5}), (15, {("t", 0): 9})], logs.checkpoints
    assert len(logs.checkpoints) == 3 and logs.checkpoints[2][1] == {("t", 0): 9}, "close writes it again"
