"""Which segments retention deletes: the retention.ms and retention.bytes rules (cleanup.policy delete).

Owns the decision only (Kafka's UnifiedLog.deleteRetentionMsBreachedSegments and
deleteRetentionSizeBreachedSegments): `deletable_segment_count` says how many leading segments of a
log retention deletes. The rules, applied in this order:

- only a prefix of the segments, and only segments that end at or below the high watermark (data
  not yet on every in-sync replica is never deleted); never an empty active segment;
- retention.ms (>= 0): segments whose largest timestamp (file mtime if none) is more than
  retention.ms before now;
- retention.bytes (>= 0), on what retention.ms leaves: the oldest segments, as long as the log
  without them is still at least retention.bytes.

`PartitionLog.delete_old_segments` does the deleting (`LogSegments.delete_prefix`) and keeps the
leader-epoch cache, producer state and cleaner checkpoint in step.

Imports: standard library and `freshet.storage`. Forbidden: grpc, wire types (freshet.v1), metadata,
server, client, cli (import-linter contract).

Thread-safety: the functions keep no state; `PartitionLog` calls them under its lock because the
segments they are given are the log's.
"""

from __future__ import annotations

from collections.abc import Callable

from freshet.storage.config import LogConfig
from freshet.storage.log_segments import LogSegments
from freshet.storage.segment import LogSegment


def deletable_segment_count(
    segments: LogSegments, config: LogConfig, now_ms: int, high_watermark: int
) -> int:
    """How many leading segments retention deletes now (see the module docstring for the rules).

    Args:
        segments: the log's segments.
        config: the log's config (cleanup.policy, retention.ms, retention.bytes).
        now_ms: the current time.
        high_watermark: the partition's high watermark.

    Returns:
        A count in [0, len(segments)]; len(segments) only when the active segment is not empty
        (the caller rolls first so that the log keeps its end offset).
    """
    if not config.is_delete_enabled:
        return 0
    count = 0
    if config.retention_ms >= 0:
        retention_ms = config.retention_ms
        count = _deletable_prefix(
            segments, 0, lambda segment: now_ms - segment.largest_timestamp > retention_ms, high_watermark
        )
    if config.retention_bytes >= 0:
        excess = (
            segments.size_bytes - sum(segment.size for segment in segments[:count]) - config.retention_bytes
        )

        def is_over_size(segment: LogSegment) -> bool:
            nonlocal excess
            if excess - segment.size >= 0:
                excess -= segment.size
                return True
            return False

        count = _deletable_prefix(segments, count, is_over_size, high_watermark)
    return count


def _deletable_prefix(
    segments: LogSegments, start: int, should_delete: Callable[[LogSegment], bool], high_watermark: int
) -> int:
    """`start` plus how many segments from `start` on `should_delete` accepts and that end at or below `high_watermark`.

    Stops at the first segment that does not qualify and at an empty active segment.
    """
    count = start
    last = len(segments) - 1
    for number in range(start, len(segments)):
        segment = segments[number]
        upper_bound = segment.next_offset if number == last else segments[number + 1].base_offset
        if number == last and segment.size == 0:
            break
        if high_watermark < upper_bound or not should_delete(segment):
            break
        count += 1
    return count
