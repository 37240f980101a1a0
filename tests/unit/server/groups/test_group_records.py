"""__consumer_offsets record codec: canonical keys, round trips through real record batches, and
loading with last-value-wins and tombstones (what compaction preserves)."""

from __future__ import annotations

from freshet.server.groups import records as group_records
from freshet.server.groups.state import ConsumerGroup, OffsetAndMetadata


def test_java_string_hash_matches_java():
    # Values computed by java.lang.String.hashCode.
    assert group_records.java_string_hash("") == 0
    assert group_records.java_string_hash("a") == 97
    assert group_records.java_string_hash("hello") == 99162322
    assert group_records.java_string_hash("polygenelubricants") == -2147483648
    assert group_records.coordinator_partition("polygenelubricants", 7) == 0
    assert group_records.coordinator_partition("billing", 10) == group_records.coordinator_partition("billing", 10)


def test_keys_are_canonical_bytes():
    assert group_records.offset_key("g", "t", 3) == b'[1,"offset","g","t",3]'
    assert group_records.group_key("g") == b'[1,"group","g"]'


def test_records_round_trip_through_a_batch_and_load_last_value_wins():
    group = ConsumerGroup("g")
    group.heartbeat(
        member_id="", member_epoch=0, new_member_id="m1", partition_counts={"t": 2}, now_ms=0,
        subscribed_topic_names=["t"], owned=[],
    )
    records = [
        (group_records.offset_key("g", "t", 0), group_records.offset_value(OffsetAndMetadata(5, 1, "x", 10))),
        (group_records.offset_key("g", "t", 0), group_records.offset_value(OffsetAndMetadata(9, 1, "", 11))),
        (group_records.offset_key("g", "t", 1), group_records.offset_value(OffsetAndMetadata(3))),
        (group_records.offset_key("g", "t", 1), None),
        (group_records.group_key("g"), group_records.group_value(group)),
        (group_records.offset_key("gone", "t", 0), group_records.offset_value(OffsetAndMetadata(1))),
        (group_records.offset_key("gone", "t", 0), None),
        (b"not json", b"ignored"),
    ]
    batch = group_records.encode_records(records, timestamp_ms=123)
    snapshot = group_records.GroupSnapshot()
    decoded = list(group_records.decode_records(bytes(batch)))
    assert [offset for offset, _, _ in decoded] == list(range(len(records)))
    for _offset, key, value in decoded:
        snapshot.apply(key, value)
    groups = snapshot.build(now_ms=1000)
    assert set(groups) == {"g"}
    assert groups["g"].offsets == {("t", 0): OffsetAndMetadata(9, 1, "", 11)}
    assert groups["g"].to_record() == group.to_record()
    assert groups["g"].members["m1"].session_deadline_ms == 1000 + 45000
