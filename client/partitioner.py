"""Kafka's default partitioning: murmur2 of the key, and sticky partitions for records without one.

Owns the partition choice of `Producer.send` when the caller gives no partition:

- a record with a key goes to `toPositive(murmur2(key)) % partition_count`, byte for byte what
  Kafka's Java client computes (`Utils.murmur2`, `Utils.toPositive`, `BuiltInPartitioner
  .partitionForKey`), so Freshet and Kafka clients agree on which partition holds a key. All
  partitions count, available or not, so a key never moves while its leader is down;
- a record without a key goes to the topic's current *sticky* partition (KIP-480): the producer
  keeps filling one partition's batch and picks another partition, at random among those with a
  live leader and never the same one twice in a row, only when a record would start a new batch
  there. Batches fill up instead of being split across every partition, which cuts latency and
  requests at the same throughput.

Imports: standard library and `freshet.client` only.
Forbidden: server, metadata, cli, pysyncobj, and storage beyond record_batch, compression
and errors (import-linter contracts).

Thread-safety: `murmur2` and `partition_for_key` are pure and thread-safe. `StickyPartitioner` is not
thread-safe: the producer calls it under its accumulator lock.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Sequence

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
# Structs for the whole-word part of keys up to 64 bytes, so a key costs one unpack, not one per word.
_WORDS = [struct.Struct(f"<{count}I") for count in range(17)]

#: A custom partitioner: (key bytes or None, all partitions, partitions with a live leader) -> partition.
PartitionerFunction = Callable[[bytes | None, Sequence[int], Sequence[int]], int]


def murmur2(data: bytes) -> int:
    """Kafka's `Utils.murmur2`: the 32-bit murmur2 hash of `data` with Kafka's seed, as a signed int32.

    Equal to the Java client's result for every input (test vectors from Kafka's UtilsTest).
    """
    length = len(data)
    h = (_SEED ^ length) & _MASK
    words = length >> 2
    if words:
        values = _WORDS[words].unpack_from(data) if words <= 16 else struct.unpack_from(f"<{words}I", data)
        for k in values:
            k = (k * _M) & _MASK
            k ^= k >> 24
            h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    rest = length & 3
    if rest:
        tail = length - rest
        if rest == 3:
            h ^= data[tail + 2] << 16
        if rest >= 2:
            h ^= data[tail + 1] << 8
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - 0x100000000 if h & 0x80000000 else h


def partition_for_key(key: bytes, partition_count: int) -> int:
    """Kafka's keyed partition: `toPositive(murmur2(key)) % partition_count`."""
    return (murmur2(key) & 0x7FFFFFFF) % partition_count


class StickyPartitioner:
    """The current sticky partition of each topic (Kafka's StickyPartitionCache). Not thread-safe."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self._current: dict[str, int] = {}

    def partition(self, topic: str, partition_count: int, available: Sequence[int]) -> int:
        """The topic's sticky partition, choosing one if there is none yet (or it no longer exists)."""
        current = self._current.get(topic)
        if current is None or current >= partition_count:
            return self.next_partition(topic, partition_count, available, -1)
        return current

    def next_partition(
        self, topic: str, partition_count: int, available: Sequence[int], previous: int
    ) -> int:
        """Move the topic off `previous` (a new batch would start there) and return the new choice.

        If the sticky partition already moved away from `previous` (another thread did it), it is
        kept. Otherwise a random partition with a live leader other than `previous` is chosen (any
        partition when none has a live leader).
        """
        current = self._current.get(topic)
        if current is not None and current != previous and current < partition_count:
            return current
        candidates: Sequence[int] = available if available else range(partition_count)
        if len(candidates) == 1:
            chosen = candidates[0]
        else:
            chosen = previous
            while chosen == previous:
                chosen = candidates[self._rng.randrange(len(candidates))]
        self._current[topic] = chosen
        return chosen
