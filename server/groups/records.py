"""The records of the internal compacted topic `__consumer_offsets`: keys, values, batches.

Owns the byte format of what the group coordinator persists, and the loading rule:

| record | key (JSON array, UTF-8) | value (JSON object, UTF-8) |
|---|---|---|
| committed offset | `[1, "offset", group, topic, partition]` | `{"offset", "leader_epoch", "metadata", "commit_timestamp_ms"}` |
| group membership | `[1, "group", group]` | `ConsumerGroup.to_record()`: epochs, members, subscriptions, assignments |

The leading 1 is the key format version. Keys are serialised canonically (no spaces, fixed field
order), so the same logical key is always the same bytes and compaction keeps only the latest
value per key. A null value is a tombstone: a deleted group's offsets and membership.

Loading (`GroupSnapshot.apply`) replays records in offset order; the last value of a key wins,
as compaction would leave it.

The coordinator partition of a group is `java_string_hash(group) & 0x7fffffff % partitions`: Kafka's
`Utils.abs(groupId.hashCode()) % offsets.topic.num.partitions`, stable across processes and Python
versions (Python's `hash()` of a str is salted per process and cannot be used).

Imports: standard library, `freshet.storage.record_batch` (the batch codec) and
`freshet.server.groups.state`.
Thread-safety: functions are pure; `GroupSnapshot` is not thread-safe (one loader).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from freshet.server.groups.state import ConsumerGroup, OffsetAndMetadata
from freshet.storage.record_batch import Record, decode_batch, encode_batch, iter_batches

OFFSETS_TOPIC = "__consumer_offsets"
_VERSION = 1


def java_string_hash(text: str) -> int:
    """Java's String.hashCode (UTF-16 code units, 32-bit wrap-around), as a signed int."""
    value = 0
    data = text.encode("utf-16-be")
    for position in range(0, len(data), 2):
        value = (31 * value + (data[position] << 8 | data[position + 1])) & 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def coordinator_partition(group_id: str, partitions: int) -> int:
    """The __consumer_offsets partition whose leader coordinates `group_id` (Kafka's formula)."""
    assert partitions > 0
    return (java_string_hash(group_id) & 0x7FFFFFFF) % partitions


def _dump(value) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def offset_key(group_id: str, topic: str, partition: int) -> bytes:
    return _dump([_VERSION, "offset", group_id, topic, partition])


def group_key(group_id: str) -> bytes:
    return _dump([_VERSION, "group", group_id])


def offset_value(value: OffsetAndMetadata) -> bytes:
    return _dump(
        {
            "offset": value.offset,
            "leader_epoch": value.leader_epoch,
            "metadata": value.metadata,
            "commit_timestamp_ms": value.commit_timestamp_ms,
        }
    )


def group_value(group: ConsumerGroup) -> bytes:
    return _dump(group.to_record())


def encode_records(records: Iterable[tuple[bytes, bytes | None]], timestamp_ms: int) -> bytearray:
    """One uncompressed batch of (key, value) records (value None: tombstone)."""
    return encode_batch([Record(timestamp_ms, key, value, []) for key, value in records])


def decode_records(data: bytes | memoryview) -> Iterable[tuple[int, bytes, bytes | None]]:
    """(offset, key, value) of every record in concatenated batches (control batches skipped)."""
    for header, view in iter_batches(data):
        if header.is_control:
            continue
        for offset, _timestamp, key, value, _headers in decode_batch(view, verify_crc=True).records:
            if key is not None:
                yield offset, bytes(key), None if value is None else bytes(value)


class GroupSnapshot:
    """Groups rebuilt from one __consumer_offsets partition's records. Not thread-safe."""

    def __init__(self) -> None:
        self.offsets: dict[str, dict[tuple[str, int], OffsetAndMetadata]] = {}
        self.groups: dict[str, dict] = {}

    def apply(self, key: bytes, value: bytes | None) -> None:
        """Replay one record (in offset order). Unknown record kinds or versions are skipped with
        no effect, so an older broker can load a partition a newer one wrote."""
        try:
            parsed = json.loads(key)
        except ValueError:
            return
        if not isinstance(parsed, list) or not parsed or parsed[0] != _VERSION:
            return
        kind = parsed[1]
        if kind == "offset":
            _, _, group_id, topic, partition = parsed
            offsets = self.offsets.setdefault(group_id, {})
            if value is None:
                offsets.pop((topic, partition), None)
                if not offsets:
                    del self.offsets[group_id]
            else:
                item = json.loads(value)
                offsets[(topic, partition)] = OffsetAndMetadata(
                    item["offset"], item["leader_epoch"], item["metadata"], item["commit_timestamp_ms"]
                )
        elif kind == "group":
            group_id = parsed[2]
            if value is None:
                self.groups.pop(group_id, None)
            else:
                self.groups[group_id] = json.loads(value)

    def build(self, now_ms: int) -> dict[str, ConsumerGroup]:
        """The groups, with members' sessions restarting at `now_ms`."""
        result: dict[str, ConsumerGroup] = {}
        for group_id in sorted(set(self.groups) | set(self.offsets)):
            group = ConsumerGroup(group_id)
            record = self.groups.get(group_id)
            if record is not None:
                group.load_record(record, now_ms)
            group.offsets = dict(self.offsets.get(group_id, {}))
            result[group_id] = group
        return result
