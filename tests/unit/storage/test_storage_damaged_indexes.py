"""Damaged index files of a sealed segment (issue 16's disk faults): reads stay correct.

Goal: a bit flip anywhere in a sealed segment's offset index or time index, or a truncation at
any length, never makes `read`, `offsets_for_time` or the segment's max timestamp (which
retention trusts) answer differently from the undamaged log: an index entry that does not point at
its batch rebuilds the indexes from the batch headers. Before, 159 of 528 offset-index flips
returned wrong bytes for an offset and 109 raised CorruptRecordError; 481 of 792 time-index
flips answered offsets_for_time wrongly.
Method: one log of 120 batches in small segments; every 3rd byte of the first segment's index
files flipped (one bit) or cut every 5 bytes, on a copy; each copy reopened and read at every
offset and time. (The counts above are from the full sweep: every byte, three bits each.)
"""

from __future__ import annotations

import os
import shutil

import pytest
from freshet.storage.config import LogConfig
from freshet.storage.log import PartitionLog

from tests.support.storage_helpers import batch

CONFIG = LogConfig(segment_bytes=8192, index_interval_bytes=256, segment_index_bytes=1024)
STAMPS = [1_700_000_000_000 + t for t in range(-5, 1200, 7)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The undamaged log and what it answers: ({offset: bytes}, {timestamp: answer}, max timestamps)."""
    directory = str(tmp_path_factory.mktemp("indexes") / "t-0")
    log = PartitionLog.open(directory, CONFIG)
    for number in range(120):
        log.append_as_leader(batch(2, tag=number, timestamp=1_700_000_000_000 + number * 10), 0)
    log.close()
    log = PartitionLog.open(directory, CONFIG)
    answers = answers_of(log)
    log.close()
    return directory, answers


def answers_of(log: PartitionLog):
    reads = {offset: log.read(offset, 100).records for offset in range(log.log_end_offset)}
    times = {stamp: log.offsets_for_time(stamp) for stamp in STAMPS}
    maxima = [segment.max_timestamp for segment in list(log._segments)[:-1]]
    return reads, times, maxima


def damaged_copies(reference, suffix: str, tmp_path, damage):
    directory, _ = reference
    name = sorted(f for f in os.listdir(directory) if f.endswith(suffix))[0]
    size = os.path.getsize(os.path.join(directory, name))
    assert size >= 100, "the sealed segment's index has entries to damage"
    for variant in damage(size):
        copy = str(tmp_path / "copy")
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(directory, copy)
        path = os.path.join(copy, name)
        data = bytearray(open(path, "rb").read())
        if isinstance(variant, tuple):
            data[variant[0]] ^= 1 << variant[1]
        else:
            del data[variant:]
        with open(path, "wb") as file:
            file.write(data)
        yield variant, copy


def flips(size: int):
    """Every 3rd byte (cycling the entry fields), one bit each (the full sweep takes minutes)."""
    return [(position, (position * 5) % 8) for position in range(0, size, 3)]


def cuts(size: int):
    return list(range(0, size, 5))


@pytest.mark.parametrize("suffix", [".index", ".timeindex"])
@pytest.mark.parametrize("damage", [flips, cuts], ids=["bit flips", "truncations"])
def test_a_damaged_sealed_index_never_changes_an_answer(reference, tmp_path, suffix, damage):
    expected = reference[1]
    wrong = []
    for variant, copy in damaged_copies(reference, suffix, tmp_path, damage):
        log = PartitionLog.open(copy, CONFIG)
        answers = answers_of(log)
        if answers != expected:
            wrong.append((variant, [name for name, a, b in zip(("reads", "times", "maxima"), answers, expected, strict=True) if a != b]))
        log.close()
    assert wrong == [], f"{len(wrong)} damaged {suffix} files changed an answer, e.g. {wrong[:5]}"
