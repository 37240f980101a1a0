"""The consumer: polling, positions and resets, seeks, offset lookups, pause/resume, prefetch, faults.

Goal: poll() returns every committed record of the assigned partitions once, in offset order, with
all its fields; positions follow Kafka's rules (auto_offset_reset, seek, seek_to_*, lazy
evaluation); the background prefetch is bounded and long-polls instead of busy-polling; leader
moves, out-of-range offsets and corrupt batches are handled as Kafka's consumer does. Method: a
Consumer against the fake cluster, whose logs are filled directly (exact batches, timestamps,
epochs) or by the Producer; faults from the fake (leader moves, frozen high watermarks, truncated
logs, flipped bytes).
Reference: Kafka consumer configs and KafkaConsumer javadoc (seek/position/pause semantics),
KIP-320 (fencing fetches by leader epoch), KIP-74 (a fetch returns at least one batch).
"""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from freshet.client import Consumer, Producer, TopicPartition
from freshet.client.errors import (
    ClientTimeoutError,
    CorruptRecordError,
    IllegalStateError,
    NoOffsetForPartitionError,
    OffsetOutOfRangeError,
    UnknownTopicError,
)
from freshet.client.structs import ConsumerRecord, OffsetAndTimestamp
from freshet.storage.config import LogConfig
from freshet.storage.record_batch import TimestampType
from freshet.v1 import common_pb2

pytestmark = pytest.mark.timeout(60)
T0 = TopicPartition("orders", 0)
T1 = TopicPartition("orders", 1)


def _poll_until(consumer, count, timeout_s=10.0, **options):
    """Poll until `count` records arrived (or fail after timeout_s)."""
    records = []
    deadline = time.monotonic() + timeout_s
    while len(records) < count:
        assert time.monotonic() < deadline, f"only {len(records)} of {count} records arrived"
        records += consumer.poll(timeout_ms=200, **options)
    return records


def test_poll_returns_records_with_every_field(memory_cluster):
    """Every ConsumerRecord field comes from the stored batch: offset, CreateTime, key, value,
    repeated and null headers, and the leader epoch the leader stamped (0, then 1 after a leader
    change)."""
    memory_cluster.create_topic("orders", 2)
    memory_cluster.append("orders", 0, [b"a", None], key=b"k", timestamps=[1000, 1005], headers=[("h", b"x"), ("h", None)])
    memory_cluster.move_leader("orders", 0, memory_cluster.partition("orders", 0).leader_id)  # leader epoch 1
    memory_cluster.append("orders", 0, [b"c"], timestamps=[2000])
    with Consumer(transport=memory_cluster.transport(), group_id=None, auto_offset_reset="earliest", enable_auto_commit=False) as consumer:
        consumer.assign([T0])
        records = _poll_until(consumer, 3)
    assert records == [
        ConsumerRecord("orders", 0, 0, 1000, 0, b"k", b"a", [("h", b"x"), ("h", None)], 0),
        ConsumerRecord("orders", 0, 1, 1005, 0, b"k", None, [("h", b"x"), ("h", None)], 0),
        ConsumerRecord("orders", 0, 2, 2000, 0, None, b"c", [], 1),
    ]


def test_log_append_time_topics_report_the_broker_time(memory_cluster):
    """For a LogAppendTime topic every record reports the broker's append time and timestamp_type 1
    (Kafka's rule), not the producer's timestamps."""
    memory_cluster.create_topic("appended", 1, config=LogConfig(message_timestamp_type=TimestampType.LOG_APPEND_TIME))
    before = time.time_ns() // 1_000_000
    memory_cluster.append("appended", 0, [b"a", b"b"], timestamps=[5, 6])
    with Consumer(transport=memory_cluster.transport(), auto_offset_reset="earliest") as consumer:
        consumer.assign([TopicPartition("appended", 0)])
        records = _poll_until(consumer, 2)
    assert {record.timestamp_type for record in records} == {1}
    assert records[0].timestamp == records[1].timestamp >= before


def test_produced_records_round_trip_with_every_codec(cluster):
    """Producer and Consumer together: compressed batches decode to what was sent, in order."""
    cluster.create_topic("orders", 2)
    sent = {}
    for codec in ("none", "gzip", "snappy", "lz4", "zstd"):
        with Producer(cluster.bootstrap, compression=codec, linger_ms=5) as producer:
            futures = []
            for n in range(200):
                value = f"{codec}-{n}-".encode() * (n % 7)
                future = producer.send("orders", value=value, key=b"%d" % n, headers={"codec": codec.encode()})
                futures.append((future, (b"%d" % n, value, [("codec", codec.encode())])))
            producer.flush(10)
        for future, record in futures:
            sent[(future.result().partition, future.result().offset)] = record
    with Consumer(cluster.bootstrap, auto_offset_reset="earliest") as consumer:
        consumer.assign([T0, T1])
        records = _poll_until(consumer, 1000)
    assert {(r.partition, r.offset): (r.key, r.value, r.headers) for r in records} == sent
    for partition in (0, 1):
        offsets = [r.offset for r in records if r.partition == partition]
        assert offsets == sorted(offsets) == list(range(len(offsets)))


def test_auto_offset_reset_earliest_latest_and_none(memory_cluster):
    """Without a position: earliest starts at the log start, latest (Kafka's default) at the high
    watermark, none raises NoOffsetForPartitionError until a seek."""
    memory_cluster.create_topic("orders", 1)
    memory_cluster.append("orders", 0, [b"%d" % n for n in range(5)])
    with Consumer(transport=memory_cluster.transport(), auto_offset_reset="earliest") as consumer:
        consumer.assign([T0])
        assert consumer.position(T0) == 0
        assert [r.offset for r in _poll_until(consumer, 5)] == [0, 1, 2, 3, 4]
    with Consumer(transport=memory_cluster.transport()) as consumer:  # Kafka's default: latest
        consumer.assign([T0])
        assert consumer.position(T0) == 5
        assert consumer.poll(timeout_ms=100) == []
        memory_cluster.append("orders", 0, [b"new"])
        assert [(r.offset, r.value) for r in _poll_until(consumer, 1)] == [(5, b"new")]
    with Consumer(transport=memory_cluster.transport(), auto_offset_reset="none") as consumer:
        consumer.assign([T0])
        with pytest.raises(NoOffsetForPartitionError):
            consumer.poll(timeout_ms=100)
        with pytest.raises(NoOffsetForPartitionError):
            consumer.position(T0)
        consumer.seek(T0, 3)
        assert [r.offset for r in _poll_until(consumer, 3)] == [3, 4, 5]


def test_seek_inside_a_batch_skips_the_records_before_it(memory_cluster):
    """A fetch returns whole batches: records below the position in the first batch are dropped.
    A seek cuts the parked long poll short instead of waiting fetch_max_wait_ms for it."""
    memory_cluster.create_topic("orders", 1)
    memory_cluster.append("orders", 0, [b"%d" % n for n in range(10)])  # one batch, offsets 0..9
    with Consumer(transport=memory_cluster.transport(), auto_offset_reset="earliest", fetch_max_wait_ms=5000) as consumer:
        consumer.assign([T0])
        consumer.seek(T0, 7)
        assert consumer.position(T0) == 7
        assert [r.offset for r in _poll_until(consumer, 3)] == [7, 8, 9]
        assert consumer.position(T0) == 10
        for _ in range(3):
            start = time.monotonic()
            consumer.seek(T0, 2)
            assert [r.value for r in _poll_until(consumer, 2, max_records=2)] == [b"2", b"3"]
            assert time.monotonic() - start < 2.5, "the seek waited for the parked fetch"
            assert consumer.position(T0) == 4
            time.sleep(0.05)  # the next long poll is parked at the broker again
        with pytest.raises(ValueError):
            consumer.seek(T0, -1)


def test_seek_to_beginning_and_end_without_arguments_mean_every_assigned_partition(memory_cluster):
    """kafka-python's rule for no arguments; with arguments only those partitions move; evaluation
    is lazy until poll() or position()."""
    memory_cluster.create_topic("orders", 2)
    memory_cluster.append("orders", 0, [b"a", b"b", b"c"])
    memory_cluster.append("orders", 1, [b"d", b"e"])
    with Consumer(transport=memory_cluster.transport(), auto_offset_reset="earliest") as consumer:
        consumer.assign([T0, T1])
        consumer.seek_to_end()
        assert (consumer.position(T0), consumer.position(T1)) == (3, 2)
        assert consumer.poll(timeout_ms=100) == []
        consumer.seek_to_beginning(T1)
        assert (consumer.position(T0), consumer.position(T1)) == (3, 0)
        consumer.seek_to_beginning()
        assert (consumer.position(T0), consumer.position(T1)) == (0, 0)
        assert len(_poll_until(consumer, 5)) == 5
        consumer.seek_to_end(T0)
        assert consumer.position(T0) == 3  # seek_to_end is lazy: position() evaluates it now
        memory_cluster.append("orders", 0, [b"f"])
        assert [r.value for r in _poll_until(consumer, 1)] == [b"f"]


def test_offset_lookups(memory_cluster):
    """beginning_offsets, end_offsets (the high watermark) and offsets_for_times."""
    memory_cluster.create_topic("orders", 2)
    memory_cluster.append("orders", 0, [b"a", b"b"], timestamps=[1000, 2000])
    memory_cluster.append("orders", 0, [b"c"], timestamps=[3000])
    memory_cluster.append("orders", 1, [b"d"], timestamps=[5000])
    memory_cluster.set_high_watermark("orders", 1, 0)  # appended but not yet committed
    with Consumer(transport=memory_cluster.transport()) as consumer:
        assert consumer.beginning_offsets([T0, T1]) == {T0: 0, T1: 0}
        assert consumer.end_offsets([T0, T1]) == {T0: 3, T1: 0}
        found = consumer.offsets_for_times({T0: 1500, T1: 0})
        assert found[T0] == OffsetAndTimestamp(1, 2000, 0)
        assert found[T1] is None, "the record at 5000 is above the high watermark"
        assert consumer.offsets_for_times({T0: 2500})[T0].offset == 2
        assert consumer.offsets_for_times({T0: 9999}) == {T0: None}
        with pytest.raises(ValueError):
            consumer.offsets_for_times({T0: -5})


def test_partitions_for_topic_and_an_unknown_topic(memory_cluster):
    memory_cluster.create_topic("orders", 3)
    with Consumer(transport=memory_cluster.transport(), default_api_timeout_ms=4000) as consumer:
        assert consumer.partitions_for_topic("orders") == {0, 1, 2}
        with pytest.raises(UnknownTopicError):
            consumer.partitions_for_topic("missing")


def test_pause_and_resume(memory_cluster):
    """A paused partition returns nothing (its data may still be buffered) and stays assigned;
    resume() hands its records out in order."""
    memory_cluster.create_topic("orders", 2)
    memory_cluster.append("orders", 0, [b"p0"] * 3)
    memory_cluster.append("orders", 1, [b"p1"] * 3)
    with Consumer(transport=memory_cluster.transport(), auto_offset_reset="earliest") as consumer:
        consumer.assign([T0, T1])
        consumer.pause(T0)
        assert consumer.paused() == {T0}
        records = _poll_until(consumer, 3)
        time.sleep(0.2)
        records += consumer.poll(timeout_ms=200)
        assert {r.partition for r in records} == {1} and len(records) == 3
        consumer.resume(T0)
        assert consumer.paused() == set()
        assert [r.value for r in _poll_until(consumer, 3)] == [b"p0"] * 3
        assert consumer.assignment() == {T0, T1}


def test_long_poll_delivers_new_records_promptly_without_busy_polling(cluster):
    """An idle consumer costs about one Fetch per fetch_max_wait_ms per broker; a new record ends the
    long poll at once."""
    cluster.create_topic("orders", 1)
    with Consumer(cluster.bootstrap, fetch_max_wait_ms=500) as consumer:
        consumer.assign([T0])
        assert consumer.position(T0) == 0
        consumer.poll(timeout_ms=100)
        fetches_before = cluster.count("Fetch")
        assert consumer.poll(timeout_ms=1000) == []
        idle_fetches = cluster.count("Fetch") - fetches_before
        assert idle_fetches <= 4, f"{idle_fetches} fetches in one idle second"
        timer = threading.Timer(0.3, lambda: cluster.append("orders", 0, [b"late"]))
        start = time.monotonic()
        timer.start()
        records = consumer.poll(timeout_ms=5000)
        latency = time.monotonic() - start
        timer.join()
    assert [r.value for r in records] == [b"late"]
    assert 0.25 <= latency < 1.5


def test_prefetch_is_bounded_per_partition(cluster):
    """The fetcher stops fetching a partition holding max_partition_fetch_bytes of undelivered data,
    and goes on as poll() drains it."""
    cluster.create_topic("orders", 1)
    for n in range(100):
        cluster.append("orders", 0, [b"%03d" % n + b"x" * 1000])
    with Consumer(cluster.bootstrap, auto_offset_reset="earliest", max_partition_fetch_bytes=4096) as consumer:
        consumer.assign([T0])
        deadline = time.monotonic() + 5
        while consumer.metrics()["buffered_bytes"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)  # let the fetcher run ahead as far as it will
        buffered = consumer.metrics()["buffered_bytes"]
        assert 0 < buffered <= 2 * 4096 + 1100
        records = _poll_until(consumer, 100)
    assert [r.value[:3] for r in records] == [b"%03d" % n for n in range(100)]


def test_the_high_watermark_bounds_what_consumers_see(cluster):
    """Records above the high watermark (appended, not yet committed) are not returned until it
    advances; highwater() reports it."""
    cluster.create_topic("orders", 1)
    cluster.freeze_high_watermark("orders", 0)
    for n in range(6):
        cluster.append("orders", 0, [b"%d" % n])
    cluster.set_high_watermark("orders", 0, 3)
    with Consumer(cluster.bootstrap, auto_offset_reset="earliest", fetch_max_wait_ms=100) as consumer:
        consumer.assign([T0])
        records = _poll_until(consumer, 3)
        assert consumer.poll(timeout_ms=300) == []
        assert consumer.highwater(T0) == 3
        cluster.freeze_high_watermark("orders", 0, False)
        records += _poll_until(consumer, 3)
    assert [r.offset for r in records] == [0, 1, 2, 3, 4, 5]


def test_an_out_of_range_position_is_reset_by_the_policy(cluster):
    """OFFSET_OUT_OF_RANGE: earliest and latest reset through ListOffsets; none raises
    OffsetOutOfRangeError with the valid range from every poll() until a seek."""
    cluster.create_topic("orders", 1)
    for n in range(10):
        cluster.append("orders", 0, [b"%d" % n])
    with Consumer(cluster.bootstrap, auto_offset_reset="earliest") as consumer:
        consumer.assign([T0])
        consumer.seek(T0, 50)
        assert [r.offset for r in _poll_until(consumer, 10)] == list(range(10))
    with Consumer(cluster.bootstrap, auto_offset_reset="latest") as consumer:
        consumer.assign([T0])
        consumer.seek(T0, 50)
        assert consumer.poll(timeout_ms=500) == []
        assert consumer.position(T0) == 10
    with Consumer(cluster.bootstrap, auto_offset_reset="none") as consumer:
        consumer.assign([T0])
        consumer.seek(T0, 50)
        for _ in range(2):  # raised on every poll until the application seeks
            with pytest.raises(OffsetOutOfRangeError) as caught:
                _poll_until(consumer, 1, timeout_s=5)
            assert caught.value.topic_partition == T0
            assert (caught.value.log_start_offset, caught.value.log_end_offset) == (0, 10)
        consumer.seek(T0, 8)
        assert [r.offset for r in _poll_until(consumer, 2)] == [8, 9]


def test_a_log_start_moving_past_the_position_resets_to_the_new_start(cluster):
    """Retention (here: the log restarted at 20) puts the position below the log start."""
    cluster.create_topic("orders", 1)
    cluster.append("orders", 0, [b"%d" % n for n in range(5)])
    with Consumer(cluster.bootstrap, auto_offset_reset="earliest", max_poll_records=2) as consumer:
        consumer.assign([T0])
        assert [r.offset for r in _poll_until(consumer, 2, max_records=2)] == [0, 1]
        consumer.seek(T0, 2)
        with cluster.lock:
            cluster.partition("orders", 0).log.truncate_fully_and_start_at(20)
            cluster.partition("orders", 0).high_watermark = 20
        cluster.append("orders", 0, [b"twenty"])
        records = _poll_until(consumer, 1)
    assert [(r.offset, r.value) for r in records] == [(20, b"twenty")]


def test_leader_moves_while_consuming_lose_and_repeat_nothing(cluster):
    """NOT_LEADER / FENCED_LEADER_EPOCH refresh metadata and the fetch goes on at the new leader."""
    cluster.create_topic("orders", 1, leaders=[1])
    stop = threading.Event()

    def produce_and_move():
        n = 0
        leader = 1
        while not stop.is_set() and n < 600:
            cluster.append("orders", 0, [b"%04d" % (n + i) for i in range(10)])
            n += 10
            if n % 100 == 0:
                leader = leader % 3 + 1
                cluster.move_leader("orders", 0, leader)
            time.sleep(0.005)

    writer = threading.Thread(target=produce_and_move, daemon=True)
    with Consumer(cluster.bootstrap, auto_offset_reset="earliest", retry_backoff_ms=20) as consumer:
        consumer.assign([T0])
        writer.start()
        try:
            records = _poll_until(consumer, 600, timeout_s=30)
        finally:
            stop.set()
            writer.join()
    assert [r.value for r in records] == [b"%04d" % n for n in range(600)]
    assert cluster.count("fetch_error:NOT_LEADER") + cluster.count("fetch_error:FENCED_LEADER_EPOCH") >= 1


def test_a_corrupt_batch_raises_naming_the_partition_and_offset_until_skipped(cluster):
    """A batch whose CRC fails (one byte flipped by the fake) raises CorruptRecordError naming
    partition and offset from every poll(); seeking past it continues with the next batch."""
    cluster.create_topic("orders", 1)
    cluster.append("orders", 0, [b"good-0"])
    second = cluster.append("orders", 0, [b"bad-1", b"bad-2"])
    cluster.append("orders", 0, [b"good-3"])
    with Consumer(cluster.bootstrap, auto_offset_reset="earliest") as consumer:
        consumer.assign([T0])
        assert [r.value for r in _poll_until(consumer, 1, max_records=1)] == [b"good-0"]
        cluster.faults.corrupt_fetch.add(("orders", 0))
        consumer.seek(T0, second)
        for _ in range(2):
            with pytest.raises(CorruptRecordError) as caught:
                _poll_until(consumer, 1, timeout_s=5)
            assert caught.value.topic_partition == T0 and caught.value.offset == second
            assert "orders-0" in str(caught.value) and f"offset {second}" in str(caught.value)
        cluster.faults.corrupt_fetch.clear()
        consumer.seek(T0, second + 2)
        assert [r.value for r in _poll_until(consumer, 1)] == [b"good-3"]


def test_max_poll_records_and_partitions_take_turns(cluster):
    """max_poll_records caps each poll(); successive polls start from different partitions, so one
    busy partition cannot starve another."""
    cluster.create_topic("orders", 2)
    cluster.append("orders", 0, [b"a"] * 10)
    cluster.append("orders", 1, [b"b"] * 10)
    with Consumer(cluster.bootstrap, auto_offset_reset="earliest", max_poll_records=4) as consumer:
        consumer.assign([T0, T1])
        deadline = time.monotonic() + 5
        while None in (consumer.highwater(T0), consumer.highwater(T1)) and time.monotonic() < deadline:
            time.sleep(0.01)  # both partitions' first fetch is buffered
        first = consumer.poll(timeout_ms=1000)
        second = consumer.poll(timeout_ms=1000)
        assert len(first) == len(second) == 4
        assert {r.partition for r in first + second} == {0, 1}
        rest = _poll_until(consumer, 12)
        assert len(rest) == 12 and all(len(batch) <= 4 for batch in [first, second])


def test_assign_replaces_the_assignment_and_keeps_positions_of_partitions_that_stay(cluster):
    """assign() replaces the assignment; a partition that stays keeps its position; a dropped one is
    no longer usable."""
    cluster.create_topic("orders", 2)
    cluster.append("orders", 0, [b"a", b"b", b"c"])
    cluster.append("orders", 1, [b"d"])
    with Consumer(cluster.bootstrap, auto_offset_reset="earliest") as consumer:
        consumer.assign([T0])
        assert [r.value for r in _poll_until(consumer, 2, max_records=2)] == [b"a", b"b"]
        consumer.assign([T0, T1])
        records = _poll_until(consumer, 2)
        assert sorted(r.value for r in records) == [b"c", b"d"]
        consumer.assign([T1])
        assert consumer.assignment() == {T1}
        with pytest.raises(IllegalStateError):
            consumer.position(T0)


def test_a_partition_of_a_topic_created_later_is_read_once_it_exists(cluster):
    """UNKNOWN_TOPIC is retriable: the consumer keeps asking until the topic appears."""
    with Consumer(cluster.bootstrap, auto_offset_reset="earliest", retry_backoff_ms=20) as consumer:
        consumer.assign([TopicPartition("later", 0)])
        assert consumer.poll(timeout_ms=300) == []
        cluster.create_topic("later", 1)
        cluster.append("later", 0, [b"finally"])
        assert [r.value for r in _poll_until(consumer, 1)] == [b"finally"]


def test_a_dead_leader_whose_partition_moves_is_followed(cluster):
    """The leader's server dies and the partition moves (as the controller would do): the fetcher
    fails over to the new leader."""
    cluster.create_topic("orders", 1, leaders=[2])
    cluster.append("orders", 0, [b"before"])
    with Consumer(cluster.bootstrap, auto_offset_reset="earliest", retry_backoff_ms=20, request_timeout_ms=2000) as consumer:
        consumer.assign([T0])
        assert [r.value for r in _poll_until(consumer, 1)] == [b"before"]
        cluster.kill(2)
        cluster.move_leader("orders", 0, 3)
        cluster.append("orders", 0, [b"after"])
        assert [r.value for r in _poll_until(consumer, 1)] == [b"after"]


def test_misuse_raises_clear_errors(cluster):
    """Group features need a group_id; unassigned partitions, bad arguments and a closed consumer
    raise IllegalStateError or ValueError."""
    with pytest.raises(ValueError):
        Consumer(cluster.bootstrap, auto_offset_reset="smallest")
    with pytest.raises(ValueError, match="group_remote_assignor"):
        Consumer(cluster.bootstrap, group_id="billing", group_remote_assignor="sticky")
    without_group = Consumer(cluster.bootstrap)
    with pytest.raises(IllegalStateError, match="group_id"):
        without_group.subscribe(["orders"])
    with pytest.raises(IllegalStateError, match="group_id"):
        without_group.commit()
    without_group.close()
    consumer = Consumer(cluster.bootstrap, group_id="billing", enable_auto_commit=False)
    assert consumer.group_id == "billing"
    with pytest.raises(ValueError, match="pattern="):
        consumer.subscribe("orders")
    with pytest.raises(IllegalStateError):
        consumer.seek(T0, 0)
    with pytest.raises(IllegalStateError):
        consumer.pause(T0)
    with pytest.raises(ValueError):
        consumer.assign([TopicPartition("orders", -1)])
    consumer.close()
    consumer.close()
    with pytest.raises(IllegalStateError):
        consumer.poll()
    with pytest.raises(IllegalStateError):
        consumer.assign([T0])


def test_the_leader_named_by_not_leader_is_used_without_a_metadata_answer(cluster):
    """The fetcher follows the leader a NOT_LEADER names (KIP-951) even while every Metadata request
    fails."""
    cluster.create_topic("orders", 1, leaders=[1])
    cluster.append("orders", 0, [b"a"])
    with Consumer(cluster.bootstrap, auto_offset_reset="earliest", retry_backoff_ms=20) as consumer:
        consumer.assign([T0])
        assert [r.value for r in _poll_until(consumer, 1)] == [b"a"]
        cluster.faults.metadata_errors.extend([common_pb2.NOT_CONTROLLER] * 10_000)
        cluster.move_leader("orders", 0, 2)
        cluster.append("orders", 0, [b"b"])
        assert [r.value for r in _poll_until(consumer, 1)] == [b"b"]


def test_a_consumer_with_no_reachable_broker_raises_freshet_errors():
    """Blocking lookups time out with ClientTimeoutError (never a grpc.RpcError); poll() just waits."""
    with Consumer("127.0.0.1:1", default_api_timeout_ms=500, retry_backoff_ms=50) as consumer:
        with pytest.raises(ClientTimeoutError) as caught:
            consumer.end_offsets([T0])
        assert not isinstance(caught.value, grpc.RpcError)
        assert "127.0.0.1:1" in str(caught.value.__cause__) or "127.0.0.1:1" in str(caught.value)
        consumer.assign([T0])
        with pytest.raises(ClientTimeoutError):
            consumer.position(T0, timeout_ms=300)
        assert consumer.poll(timeout_ms=100) == []


def test_polling_without_an_assignment_is_an_error(cluster):
    """As Kafka: poll() with nothing assigned is a programming error, not an empty result."""
    with Consumer(cluster.bootstrap) as consumer:
        with pytest.raises(IllegalStateError, match="assign"):
            consumer.poll(timeout_ms=10)
        consumer.assign([])
        with pytest.raises(IllegalStateError):
            consumer.poll(timeout_ms=10)
