"""The partition log against an in-memory model, under random operation sequences.

Hypothesis drives appends (several codecs, several batches per append), reads at random offsets
with random byte and offset bounds, truncations, rolls, retention, clean reopens, and unclean
reopens with and without a torn tail. The model is a list of stored batches; every read must
return a run of whole model batches starting with the one holding the offset.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
from freshet.storage.clock import ManualClock
from freshet.storage.compression import CompressionType
from freshet.storage.config import LogConfig
from freshet.storage.errors import RecordTooLargeError
from freshet.storage.log import PartitionLog
from freshet.storage.record_batch import iter_batches
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.support.storage_helpers import batch, crash, headers_of, read_all, segment_files

CONFIG = LogConfig(segment_bytes=2048, index_interval_bytes=150, segment_index_bytes=8 * 12, retention_ms=-1)


class LogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = tempfile.mkdtemp(prefix="freshet-log-machine-")
        self.directory = os.path.join(self.root, "topic-0")
        self.clock = ManualClock()
        self.log = PartitionLog.open(self.directory, CONFIG, self.clock)
        # Model: (base offset, last offset, bytes) of every stored batch, in order.
        self.batches: list[tuple[int, int, bytes]] = []
        self.log_start = 0
        self.epoch = 0
        self.tag = 0

    @property
    def log_end(self) -> int:
        return self.batches[-1][1] + 1 if self.batches else self.log_start

    def teardown(self) -> None:
        if not self.log.is_closed:
            self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)

    # --------------------------------------------------------------------------------------------

    @rule(
        shapes=st.lists(st.tuples(st.integers(1, 5), st.integers(0, 250)), min_size=1, max_size=3),
        codec=st.sampled_from([CompressionType.NONE, CompressionType.LZ4, CompressionType.ZSTD]),
        bump_epoch=st.booleans(),
    )
    def append(self, shapes, codec, bump_epoch):
        if bump_epoch:
            self.epoch += 1
        data = bytearray()
        for count, value_size in shapes:
            self.tag += 1
            data += batch(count, value_size=value_size, tag=self.tag, compression=codec)
        if len(data) > CONFIG.segment_bytes:
            with pytest.raises(RecordTooLargeError):
                self.log.append_as_leader(data, self.epoch)
            return
        info = self.log.append_as_leader(data, self.epoch)  # stamps `data` in place
        assert info.first_offset == self.log_end
        for header, view in iter_batches(data):
            self.batches.append((header.base_offset, header.last_offset, bytes(view)))
        assert info.last_offset + 1 == self.log_end

    @rule(data=st.data())
    def read(self, data):
        offset = data.draw(st.integers(self.log_start, self.log_end), label="offset")
        max_bytes = data.draw(st.integers(1, 3000), label="max_bytes")
        max_offset = data.draw(
            st.one_of(st.none(), st.integers(self.log_start, self.log_end)), label="max_offset"
        )
        result = self.log.read(offset, max_bytes, max_offset)
        assert (result.log_start_offset, result.log_end_offset) == (self.log_start, self.log_end)
        candidates = [entry for entry in self.batches if entry[1] >= offset]
        if max_offset is not None:
            candidates = [entry for entry in candidates if entry[1] < max_offset]
        returned = [bytes(view) for _, view in iter_batches(result.records)]
        if not candidates:
            assert returned == []
            assert (result.first_offset, result.next_offset) == (-1, offset)
            return
        assert returned, "at least one batch when one is readable"
        assert result.next_offset == headers_of(result.records)[-1].next_offset
        assert returned == [entry[2] for entry in candidates[: len(returned)]]
        assert len(returned) == 1 or len(result.records) <= max_bytes

    @rule(data=st.data())
    def truncate(self, data):
        offset = data.draw(st.integers(0, self.log_end + 2), label="truncate_to")
        changed = self.log.truncate_to(offset)
        if offset >= self.log_end:
            assert not changed
            return
        if offset < self.log_start:
            self.batches = []
            self.log_start = offset
        else:
            self.batches = [entry for entry in self.batches if entry[1] < offset]

    @rule()
    def roll(self):
        self.log.roll()

    @rule(retention_bytes=st.integers(0, 6000))
    def retention(self, retention_bytes):
        self.log.update_config(CONFIG.with_changes(retention_bytes=retention_bytes))
        self.log.delete_old_segments(self.clock.now_ms(), high_watermark=self.log_end)
        self.log.update_config(CONFIG)
        start = self.log.log_start_offset
        assert start >= self.log_start
        assert start == self.log_end or any(entry[0] == start for entry in self.batches)
        self.batches = [entry for entry in self.batches if entry[0] >= start]
        self.log_start = start

    @rule()
    def reopen_cleanly(self):
        self.log.close()
        self.log = PartitionLog.open(self.directory, CONFIG, self.clock)
        assert self.log.repairs == []

    @rule()
    def reopen_after_a_crash(self):
        crash(self.log)
        self.log = PartitionLog.open(self.directory, CONFIG, self.clock)
        assert self.log.repairs == []

    @precondition(lambda self: self.batches)
    @rule(data=st.data())
    def reopen_after_a_crash_that_tore_the_tail(self, data):
        crash(self.log)
        active = segment_files(self.directory)[-1]
        size = os.path.getsize(active)
        if size == 0:
            self.log = PartitionLog.open(self.directory, CONFIG, self.clock)
            return
        cut = data.draw(st.integers(1, size), label="bytes torn off")
        with open(active, "r+b") as file:
            file.truncate(size - cut)
        remaining = size - cut
        # Batches of the active segment are the model's last ones; keep those that end before the cut.
        kept_in_active = []
        position = 0
        in_active = self._batches_in_active_segment(size)
        for entry in in_active:
            position += len(entry[2])
            if position <= remaining:
                kept_in_active.append(entry)
        self.batches = self.batches[: len(self.batches) - len(in_active)] + kept_in_active
        self.log = PartitionLog.open(self.directory, CONFIG, self.clock)

    def _batches_in_active_segment(self, size: int) -> list[tuple[int, int, bytes]]:
        total = 0
        count = 0
        for entry in reversed(self.batches):
            if total + len(entry[2]) > size:
                break
            total += len(entry[2])
            count += 1
        assert total == size, "the active segment holds exactly the model's last batches"
        return self.batches[len(self.batches) - count :] if count else []

    # --------------------------------------------------------------------------------------------

    @invariant()
    def ends_match_the_model(self):
        assert self.log.log_start_offset == self.log_start
        assert self.log.log_end_offset == self.log_end

    @invariant()
    def everything_reads_back(self):
        served = read_all(self.log)
        assert served == b"".join(entry[2] for entry in self.batches)
        assert [header.base_offset for header in headers_of(served)] == [entry[0] for entry in self.batches]


LogMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_log_matches_the_model = pytest.mark.slow(LogMachine.TestCase)
