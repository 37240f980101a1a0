"""Default partitioning: murmur2 byte-identical to Kafka's Java client, and sticky null-key batches.

Goal: a keyed record lands on the partition Kafka's Java client would choose, and records without
a key fill one partition's batch before moving on (KIP-480). Method: Kafka's own murmur2 test
vectors (UtilsTest.testMurmur2) plus librdkafka's; partition choices computed with Java int
semantics. test_client_producer.py checks where records land end to end.
Reference: Kafka Utils.murmur2 / Utils.toPositive, BuiltInPartitioner.partitionForKey; KIP-480.
"""

from __future__ import annotations

import random

import pytest
from freshet.client.partitioner import StickyPartitioner, murmur2, partition_for_key

# Kafka's clients/src/test/.../utils/UtilsTest.java testMurmur2, and librdkafka's rdmurmur2.c cases
# (both assert the signed 32-bit Java result).
KAFKA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    bytes([ord("a"), ord("b"), ord("c")]): 479470107,
}
LIBRDKAFKA_VECTORS = {
    b"kafka": -798503068,
    b"giberish123456789": -1890243828,
    b"1234": -1614185708,
    b"234": -406844982,
    b"34": -2026295078,
    b"": 275646681,
}


@pytest.mark.parametrize("data,expected", list(KAFKA_VECTORS.items()) + list(LIBRDKAFKA_VECTORS.items()))
def test_murmur2_matches_the_java_client(data, expected):
    """Kafka's and librdkafka's published murmur2 vectors, as signed 32-bit Java ints."""
    assert murmur2(data) == expected


def _java_partition(key: bytes, count: int) -> int:
    """Kafka's formula written out with Java int semantics: toPositive is a mask, not abs()."""
    hashed = murmur2(key)
    to_positive = hashed & 0x7FFFFFFF
    return to_positive % count


def test_keyed_partition_uses_to_positive_not_abs():
    """-973932308 & 0x7fffffff is 1173551340: partition 1173551340 % 7 == 3, where abs() would give 6."""
    assert partition_for_key(b"21", 7) == 1173551340 % 7 == 3
    assert abs(murmur2(b"21")) % 7 != 3
    assert partition_for_key(b"foobar", 50) == 16  # the value other Kafka ports pin too
    for key in list(KAFKA_VECTORS) + list(LIBRDKAFKA_VECTORS):
        for count in (1, 2, 3, 12, 50, 1000):
            assert partition_for_key(key, count) == _java_partition(key, count)


def test_murmur2_handles_long_keys_and_every_tail_length():
    """Keys longer than the precompiled structs, and 0-3 trailing bytes, hash like the word loop."""
    rng = random.Random(7)
    for length in list(range(0, 12)) + [63, 64, 65, 67, 300]:
        data = bytes(rng.randrange(256) for _ in range(length))
        assert murmur2(data) == _reference_murmur2(data)


def _reference_murmur2(data: bytes) -> int:
    """A line-by-line transcription of Kafka's Utils.murmur2, one word at a time."""
    m, r = 0x5BD1E995, 24
    h = (0x9747B28C ^ len(data)) & 0xFFFFFFFF
    for i in range(len(data) // 4):
        k = int.from_bytes(data[4 * i : 4 * i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    tail = len(data) & ~3
    rest = len(data) % 4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h >= 1 << 31 else h


def test_sticky_partitioner_moves_only_when_asked_and_never_to_the_same_partition():
    """KIP-480's StickyPartitionCache rules: stay until a new batch would start, then move to
    another available partition; a move already made by another thread is kept."""
    sticky = StickyPartitioner(random.Random(1))
    first = sticky.partition("t", 4, (0, 1, 2, 3))
    assert sticky.partition("t", 4, (0, 1, 2, 3)) == first
    previous = first
    for _ in range(50):
        chosen = sticky.next_partition("t", 4, (0, 1, 2, 3), previous)
        assert chosen != previous
        assert sticky.partition("t", 4, (0, 1, 2, 3)) == chosen
        previous = chosen
    # Another thread already moved the topic: asking to move off an older partition keeps the new one.
    assert sticky.next_partition("t", 4, (0, 1, 2, 3), (previous + 1) % 4) == previous
    # Only partitions with a live leader are chosen; with a single one it is chosen even if repeated.
    assert {sticky.next_partition("u", 4, (2,), -1) for _ in range(5)} == {2}
    assert sticky.next_partition("u", 4, (2,), 2) == 2
