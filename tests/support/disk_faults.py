"""Disk faults for a STOPPED node: bit flips and truncation in the files Freshet keeps.

Each fault is a plain function `fault(data_dir, rng) -> str`: it damages one file under the node's
data directory (a broker node's `--data-dir`, or a metadata voter's directory), chosen with `rng`
(a seeded `random.Random`, so a run can be replayed), and returns a one-line description of what
it did. `FAULTS` names them all (the nemesis harness registers them as fault kinds). Call them only
while no process has the directory open.

Targets:
    segment          the newest `.log` of a random partition (the one recovery re-reads after an
                     unclean stop; older segments were fsynced when sealed and are not re-read at
                     start, as in Kafka, whose recovery starts at the recovery point)
    offset index     a random `.index` (sealed or not) of a random partition
    time index       a random `.timeindex`
    checkpoint       `replication-offset-checkpoint` (the high watermarks)
    raft journal     `raft.journal`
    raft snapshot    `metadata.snapshot`

A flip inverts 1 to 8 random bits of one random byte; a truncation cuts the file at a random
length shorter than it is. A target that does not exist (no snapshot written yet) raises
`NoTargetError`, so a test never believes it damaged something it did not.

Imports: standard library only. Thread-safety: functions are stateless (the rng is the caller's).
"""

from __future__ import annotations

import os
import pathlib
import random
from collections.abc import Callable

HIGH_WATERMARK_CHECKPOINT = "replication-offset-checkpoint"
RAFT_JOURNAL = "raft.journal"
RAFT_SNAPSHOT = "metadata.snapshot"


class NoTargetError(LookupError):
    """The data directory holds no (non-empty) file of the kind the fault damages."""


def _non_empty(paths) -> list[pathlib.Path]:
    return sorted(path for path in paths if path.is_file() and path.stat().st_size > 0)


def _newest_segments(data_dir: str) -> list[pathlib.Path]:
    newest = []
    for directory in sorted({path.parent for path in pathlib.Path(data_dir).rglob("*.log")}):
        segments = _non_empty(directory.glob("*.log"))
        if segments:
            newest.append(segments[-1])
    return newest


def _pick(candidates: list[pathlib.Path], rng: random.Random, what: str, data_dir: str) -> pathlib.Path:
    if not candidates:
        raise NoTargetError(f"no non-empty {what} under {data_dir}")
    return candidates[rng.randrange(len(candidates))]


def flip_bits(path: pathlib.Path, rng: random.Random, data_dir: str) -> str:
    """Invert 1-8 random bits of one random byte of `path`."""
    data = bytearray(path.read_bytes())
    position = rng.randrange(len(data))
    mask = 0
    while mask == 0:
        mask = rng.randrange(256) if rng.random() < 0.5 else 1 << rng.randrange(8)
    data[position] ^= mask
    path.write_bytes(bytes(data))
    return f"bit flip: {os.path.relpath(path, data_dir)} byte {position} of {len(data)} xor {mask:#04x}"


def truncate(path: pathlib.Path, rng: random.Random, data_dir: str) -> str:
    """Cut `path` to a random shorter length."""
    size = path.stat().st_size
    length = rng.randrange(size)
    os.truncate(path, length)
    return f"truncation: {os.path.relpath(path, data_dir)} {size} -> {length} bytes"


def _targets(kind: str, data_dir: str) -> list[pathlib.Path]:
    root = pathlib.Path(data_dir)
    if kind == "segment":
        return _newest_segments(data_dir)
    if kind == "offset index":
        return _non_empty(root.rglob("*.index"))
    if kind == "time index":
        return _non_empty(root.rglob("*.timeindex"))
    if kind == "checkpoint":
        return _non_empty(root.rglob(HIGH_WATERMARK_CHECKPOINT))
    if kind == "raft journal":
        return _non_empty(root.rglob(RAFT_JOURNAL))
    assert kind == "raft snapshot", kind
    return _non_empty(root.rglob(RAFT_SNAPSHOT))


def _fault(kind: str, damage: Callable[[pathlib.Path, random.Random, str], str]) -> Callable[[str, random.Random], str]:
    def fault(data_dir: str, rng: random.Random) -> str:
        return damage(_pick(_targets(kind, data_dir), rng, kind, data_dir), rng, data_dir)

    fault.__name__ = f"{damage.__name__}_{kind.replace(' ', '_')}"
    fault.__doc__ = f"{damage.__name__} in one {kind} file of a stopped node; returns what it did."
    return fault


flip_segment_bits = _fault("segment", flip_bits)
truncate_segment = _fault("segment", truncate)
flip_offset_index_bits = _fault("offset index", flip_bits)
truncate_offset_index = _fault("offset index", truncate)
flip_time_index_bits = _fault("time index", flip_bits)
truncate_time_index = _fault("time index", truncate)
flip_checkpoint_bits = _fault("checkpoint", flip_bits)
truncate_checkpoint = _fault("checkpoint", truncate)
flip_raft_journal_bits = _fault("raft journal", flip_bits)
truncate_raft_journal = _fault("raft journal", truncate)
flip_raft_snapshot_bits = _fault("raft snapshot", flip_bits)
truncate_raft_snapshot = _fault("raft snapshot", truncate)

#: Every fault by name: (data_dir, rng) -> description.
FAULTS: dict[str, Callable[[str, random.Random], str]] = {
    "segment bit flip": flip_segment_bits,
    "segment truncation": truncate_segment,
    "offset index bit flip": flip_offset_index_bits,
    "offset index truncation": truncate_offset_index,
    "time index bit flip": flip_time_index_bits,
    "time index truncation": truncate_time_index,
    "checkpoint bit flip": flip_checkpoint_bits,
    "checkpoint truncation": truncate_checkpoint,
    "raft journal bit flip": flip_raft_journal_bits,
    "raft journal truncation": truncate_raft_journal,
    "raft snapshot bit flip": flip_raft_snapshot_bits,
    "raft snapshot truncation": truncate_raft_snapshot,
}
#: The faults of partition data (a broker node), and of the metadata quorum's files (a voter).
BROKER_FAULTS = tuple(name for name in FAULTS if not name.startswith("raft"))
RAFT_FAULTS = tuple(name for name in FAULTS if name.startswith("raft"))
