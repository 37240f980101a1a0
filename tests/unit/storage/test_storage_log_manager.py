"""The log manager: a data directory of partition logs, deletion, checkpoints, periodic work."""

from __future__ import annotations

import os
import time

import pytest
from freshet.storage.clock import ManualClock
from freshet.storage.config import LogConfig
from freshet.storage.errors import CorruptCheckpointError, InconsistentTopicIdError, KafkaStorageError
from freshet.storage.log import CLEAN_SHUTDOWN_FILE_NAME
from freshet.storage.log_manager import (
    HIGH_WATERMARK_CHECKPOINT_FILE_NAME,
    LogManager,
    parse_partition_directory_name,
    partition_directory_name,
)

from tests.support.storage_helpers import batch, read_all

CONFIG = LogConfig(segment_bytes=4000, index_interval_bytes=256)


def test_partition_directory_names_round_trip_even_with_dashes_in_topics():
    """Goal: <topic>-<partition> parses from the last dash; other names (incl. -delete dirs) are not
    partitions.
    """
    assert partition_directory_name("orders", 3) == "orders-3"
    assert parse_partition_directory_name("my-topic.v2-12") == ("my-topic.v2", 12)
    assert parse_partition_directory_name("__consumer_offsets-49") == ("__consumer_offsets", 49)
    for name in ("orders", "orders-", "orders-x", "-3", "a b-1", "orders-3.abc-delete"):
        assert parse_partition_directory_name(name) is None


def test_logs_are_created_found_and_reopened(tmp_path):
    """Goal: the manager creates logs with their topic id, finds them, and reopens them all with
    their configs after a clean close.
    """
    clock = ManualClock()
    manager = LogManager.open(str(tmp_path), clock=clock, config_for_topic=lambda topic: CONFIG)
    orders = manager.get_or_create("orders", 0, "id-orders", CONFIG)
    manager.get_or_create("orders", 1, "id-orders", CONFIG)
    manager.get_or_create("my-events", 0, "id-events", CONFIG)
    orders.append_as_leader(batch(3), 1)
    assert manager.get_or_create("orders", 0, "id-orders", CONFIG) is orders
    assert manager.get("orders", 2) is None
    assert sorted(manager.all()) == [("my-events", 0), ("orders", 0), ("orders", 1)]
    manager.close()
    assert os.path.exists(tmp_path / "orders-0" / CLEAN_SHUTDOWN_FILE_NAME)
    reopened = LogManager.open(str(tmp_path), clock=clock, config_for_topic=lambda topic: CONFIG)
    assert sorted(reopened.all()) == [("my-events", 0), ("orders", 0), ("orders", 1)]
    assert reopened.get("orders", 0).log_end_offset == 3
    assert reopened.get("orders", 0).topic_id == "id-orders"
    assert reopened.get("orders", 0).config == CONFIG
    with pytest.raises(InconsistentTopicIdError):
        reopened.get_or_create("orders", 0, "another-id", CONFIG)
    reopened.close()


def test_get_or_create_applies_the_current_config(tmp_path):
    """Goal: metadata is the source of truth: an existing log takes the config it is asked with."""
    manager = LogManager.open(str(tmp_path))
    log = manager.get_or_create("t", 0, None, CONFIG)
    changed = CONFIG.with_changes(retention_ms=5)
    assert manager.get_or_create("t", 0, None, changed).config == changed
    assert log.config == changed
    manager.close()


def test_delete_renames_first_so_an_interrupted_delete_never_comes_back(tmp_path):
    """Goal: deletion renames to -delete before removing, and a leftover -delete directory is
    removed on open, never loaded.
    """
    manager = LogManager.open(str(tmp_path))
    log = manager.get_or_create("t", 0, "id", CONFIG)
    log.append_as_leader(batch(2), 0)
    assert manager.delete("t", 0)
    assert manager.get("t", 0) is None
    assert os.listdir(tmp_path) == []
    assert not manager.delete("t", 0)
    # A crash between the rename and the removal leaves a -delete directory: it is removed on open.
    leftover = tmp_path / "t-1.0123456789abcdef-delete"
    leftover.mkdir()
    (leftover / "00000000000000000000.log").write_bytes(bytes(batch(1)))
    manager.close()
    reopened = LogManager.open(str(tmp_path))
    assert reopened.all() == {}
    assert not leftover.exists()
    reopened.close()


def test_high_watermark_checkpoint_round_trips_in_kafkas_format(tmp_path):
    """Goal: replication-offset-checkpoint uses Kafka's format (version, count, `topic partition
    offset`) and a damaged file is reported.
    """
    manager = LogManager.open(str(tmp_path))
    assert manager.read_high_watermarks() == {}
    manager.checkpoint_high_watermarks({("b-topic", 2): 7, ("a", 0): 100})
    text = (tmp_path / HIGH_WATERMARK_CHECKPOINT_FILE_NAME).read_text()
    assert text == "0\n2\na 0 100\nb-topic 2 7\n"
    assert manager.read_high_watermarks() == {("a", 0): 100, ("b-topic", 2): 7}
    (tmp_path / HIGH_WATERMARK_CHECKPOINT_FILE_NAME).write_text("0\n2\na 0 100\n")
    with pytest.raises(CorruptCheckpointError):
        manager.read_high_watermarks()
    manager.close()


def test_unclean_stop_recovers_only_what_was_not_closed(tmp_path, caplog):
    """Goal: per-partition clean-shutdown markers: only the partition that was not closed is
    recovered.
    """
    manager = LogManager.open(str(tmp_path), config_for_topic=lambda topic: CONFIG)
    for partition in range(2):
        log = manager.get_or_create("t", partition, None, CONFIG)
        for _ in range(10):
            log.append_as_leader(batch(2, value_size=100), 0)
    manager.get("t", 0).close()
    active = sorted(name for name in os.listdir(tmp_path / "t-1") if name.endswith(".log"))[-1]
    with open(tmp_path / "t-1" / active, "ab") as file:
        file.write(b"\x00" * 100)  # a torn write the crash left behind
    with caplog.at_level("WARNING", logger="freshet.storage"):
        reopened = LogManager.open(str(tmp_path), config_for_topic=lambda topic: CONFIG)
    # Named by their directories (the tmp path itself may end in "t-0", as pytest-of-root/pytest-0 does).
    assert str(tmp_path / "t-1") in caplog.text and str(tmp_path / "t-0") not in caplog.text
    assert [reopened.get("t", p).log_end_offset for p in range(2)] == [20, 20]
    assert reopened.get("t", 1).repairs[0][2] == 100
    reopened.close()


def test_a_partition_that_cannot_open_is_offline_and_the_rest_serve(tmp_path):
    """Goal: one unreadable partition does not stop the broker: it is reported offline and can be
    deleted.
    """
    manager = LogManager.open(str(tmp_path), config_for_topic=lambda topic: CONFIG)
    manager.get_or_create("good", 0, None, CONFIG).append_as_leader(batch(1), 0)
    manager.get_or_create("bad", 0, None, CONFIG)
    manager.close()
    os.unlink(tmp_path / "bad-0" / "00000000000000000000.log")
    os.mkdir(tmp_path / "bad-0" / "00000000000000000000.log")  # unreadable as a segment
    reopened = LogManager.open(str(tmp_path), config_for_topic=lambda topic: CONFIG)
    assert list(reopened.offline_partitions) == [("bad", 0)]
    assert reopened.get("good", 0).log_end_offset == 1
    with pytest.raises(KafkaStorageError):
        reopened.get_or_create("bad", 0, None, CONFIG)
    assert reopened.delete("bad", 0)
    assert sorted(os.listdir(tmp_path)) == ["good-0"]
    assert reopened.offline_partitions == {}
    reopened.close()


def test_retention_runs_only_where_a_high_watermark_is_known(tmp_path):
    """Goal: the manager applies retention per partition with that partition's high watermark, and
    skips partitions without one.
    """
    clock = ManualClock()
    config = CONFIG.with_changes(retention_ms=1000)
    manager = LogManager.open(str(tmp_path), clock=clock, config_for_topic=lambda topic: config)
    for partition in range(2):
        log = manager.get_or_create("t", partition, None, config)
        for _ in range(30):
            log.append_as_leader(batch(2, value_size=100, timestamp=clock.now_ms()), 0)
    clock.advance(2000)
    deleted = manager.run_retention(clock.now_ms(), {("t", 0): 60})
    assert deleted > 0
    assert manager.get("t", 0).log_start_offset == 60
    assert manager.get("t", 1).log_start_offset == 0
    assert read_all(manager.get("t", 0)) == b""
    manager.close()


def test_flush_dirty_logs_follows_flush_ms(tmp_path):
    """Goal: the periodic flush touches only logs with unflushed data whose flush.ms has passed."""
    clock = ManualClock()
    config = CONFIG.with_changes(flush_ms=100)
    manager = LogManager.open(str(tmp_path), clock=clock)
    manager.get_or_create("t", 0, None, config).append_as_leader(batch(1), 0)
    manager.get_or_create("t", 1, None, config)
    assert manager.flush_dirty_logs() == 0
    clock.advance(100)
    assert manager.flush_dirty_logs() == 1
    manager.close()


def test_the_cleaner_thread_compacts_logs_of_the_manager(tmp_path):
    """Goal: the manager's cleaner thread compacts a compacted topic (like __consumer_offsets) and
    stops at close.
    """
    from freshet.storage.cleaner import CleanerConfig
    from freshet.storage.record_batch import Record, encode_batch

    compacted = CONFIG.with_changes(cleanup_policy=frozenset({"compact"}), min_cleanable_dirty_ratio=0.1)
    manager = LogManager.open(str(tmp_path), cleaner_config=CleanerConfig(backoff_ms=20))
    log = manager.get_or_create("__consumer_offsets", 0, None, compacted)
    for round_number in range(20):
        records = [Record(0, b"group-%d" % key, b"%d" % round_number) for key in range(5)]
        log.append_as_leader(encode_batch(records), 0)
    log.roll()
    size_before = log.size_bytes
    manager.start_cleaner()
    deadline = time.monotonic() + 20
    while log.size_bytes >= size_before and time.monotonic() < deadline:
        time.sleep(0.02)
    manager.close()
    assert log.size_bytes < size_before
    assert not manager.cleaner.is_running


def test_open_missing_creates_many_logs_on_threads_and_leaves_failures_to_get_or_create(tmp_path):
    """Goal: `open_missing` (a new topic's thousands of replicas) creates every missing log on
    `open_threads` threads, each with its topic id and config, skips logs already open, and leaves
    a log it cannot open (a directory of another topic id) for `get_or_create` to raise about, as
    before. Logs created this way reopen like any other, also on threads at start.
    """
    data, side = tmp_path / "data", tmp_path / "side"
    manager = LogManager.open(str(data), open_threads=4, config_for_topic=lambda topic: CONFIG)
    existing = manager.get_or_create("t", 0, "id-t", CONFIG)
    other = LogManager.open(str(side))
    other.get_or_create("moved", 0, "id-old", CONFIG)
    other.close()
    os.rename(side / "moved-0", data / "moved-0")        # appears while the manager is open
    wanted = [("t", p, "id-t", CONFIG) for p in range(40)] + [("moved", 0, "id-new", CONFIG)]
    assert manager.open_missing(wanted) == 39
    assert manager.get("t", 0) is existing
    assert manager.get("moved", 0) is None
    assert sorted(manager.all()) == [("t", p) for p in range(40)]
    for number in range(40):
        log = manager.get("t", number)
        assert (log.topic_id, log.config, log.log_end_offset) == ("id-t", CONFIG, 0)
    with pytest.raises(InconsistentTopicIdError):
        manager.get_or_create("moved", 0, "id-new", CONFIG)
    manager.get("t", 7).append_as_leader(batch(2), 0)
    manager.close()
    reopened = LogManager.open(str(data), open_threads=4, config_for_topic=lambda topic: CONFIG)
    assert len(reopened.all()) == 41
    assert reopened.get("t", 7).log_end_offset == 2
    assert (reopened.get("t", 8).topic_id, reopened.get("moved", 0).topic_id) == ("id-t", "id-old")
    reopened.close()
