"""The producer against a healthy fake cluster: results, batching, options, back-pressure, lifecycle.

Goal: send() returns futures resolving to where each record landed; records are batched (linger,
batch_size, sticky partitions), compressed, keyed like Kafka; buffer_memory pushes back on
senders; flush/close deliver everything; callbacks, metrics and concurrency behave. Method: a
Producer against the fake cluster; the partition logs are read back directly (storage decode), so
these tests do not depend on the consumer. test_client_producer_faults.py covers failures.
Reference: Kafka producer configs (KIP-91 delivery.timeout.ms, KIP-480 sticky partitioner).
"""

from __future__ import annotations

import concurrent.futures
import threading
import time

import pytest
from freshet.client.errors import (
    BufferFullError,
    ClientTimeoutError,
    MaxBlockTimeoutError,
    ProducerClosedError,
    RecordTooLargeError,
    UnknownTopicError,
)
from freshet.client.partitioner import murmur2
from freshet.client.producer import Producer
from freshet.client.structs import RecordMetadata
from freshet.storage.record_batch import iter_batches

pytestmark = pytest.mark.timeout(60)


def _batches(cluster, topic, partition):
    """Headers of every batch stored in a partition, in offset order."""
    part = cluster.partition(topic, partition)
    result = part.log.read(part.log.log_start_offset, 1 << 30)
    return [header for header, _ in iter_batches(result.records)]


def test_send_returns_where_each_record_landed(cluster):
    """The future resolves to RecordMetadata(topic, partition, offset, timestamp); key, value and
    headers are stored as sent; an explicit partition and timestamp are kept."""
    cluster.create_topic("orders", 3)
    with Producer(cluster.bootstrap, acks="all", linger_ms=5, batch_size=65536, compression="zstd") as producer:
        before = time.time_ns() // 1_000_000
        metadata = producer.send("orders", value=b"v", key=b"k", headers={"h": b"x"}).result(10)
        after = time.time_ns() // 1_000_000
        producer.flush()
        other = (metadata.partition + 1) % 3
        explicit = producer.send("orders", value=b"w", partition=other, timestamp_ms=1_600_000_000_000).result(10)
    assert isinstance(metadata, RecordMetadata)
    assert metadata.topic == "orders"
    assert metadata.partition == (murmur2(b"k") & 0x7FFFFFFF) % 3
    assert metadata.offset == 0
    assert before <= metadata.timestamp <= after
    assert cluster.records("orders", metadata.partition) == [(0, b"k", b"v", [("h", b"x")])]
    assert explicit == RecordMetadata("orders", other, 0, 1_600_000_000_000)
    assert cluster.records("orders", other) == [(0, None, b"w", [])]


def test_records_are_batched_until_linger_or_batch_size(cluster):
    """200 records sent at once with a long linger go out in a handful of batches, not 200 requests."""
    cluster.create_topic("batched", 1)
    with Producer(cluster.bootstrap, linger_ms=200, batch_size=1 << 20) as producer:
        start = time.monotonic()
        futures = [producer.send("batched", value=b"%d" % n) for n in range(200)]
        first = futures[0].result(10)
        waited = time.monotonic() - start
        assert [future.result(10).offset for future in futures] == list(range(200))
    assert 0.15 <= waited < 5, "the batch waited about linger_ms before it was sent"
    assert first.offset == 0
    assert len(_batches(cluster, "batched", 0)) == 1
    # A full batch does not wait for linger.
    with Producer(cluster.bootstrap, linger_ms=60000, batch_size=4096) as producer:
        start = time.monotonic()
        futures = [producer.send("batched", value=b"x" * 100) for _ in range(200)]
        futures[0].result(10)
        assert time.monotonic() - start < 10
        producer.flush(10)
    assert len(_batches(cluster, "batched", 0)) >= 1 + 200 * 122 // 4096


@pytest.mark.parametrize("compression", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_compressed_batches_round_trip(cluster, compression):
    """Every codec: batches are compressed with it (attribute bits) and decode to exactly the
    records sent, null keys and null header values included."""
    cluster.create_topic("c", 1)
    values = [bytes([n % 251]) * (n * 7 % 500) for n in range(300)]
    with Producer(cluster.bootstrap, compression=compression, linger_ms=50) as producer:
        for n, value in enumerate(values):
            producer.send("c", value=value, key=b"k%d" % n if n % 3 else None, headers=[("n", b"%d" % n), ("dup", None)])
        producer.flush(10)
    records = cluster.records("c", 0)
    assert [value for _, _, value, _ in records] == values
    assert [key for _, key, _, _ in records] == [b"k%d" % n if n % 3 else None for n in range(300)]
    assert records[5][3] == [("n", b"5"), ("dup", None)]
    codes = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
    assert {header.compression for header in _batches(cluster, "c", 0)} == {codes[compression]}


def test_acks_zero_and_one(cluster):
    """acks=0 completes without offsets (-1) and is not idempotent; acks=1 reports offsets; both
    records land."""
    cluster.create_topic("acks", 1)
    with Producer(cluster.bootstrap, acks=0, linger_ms=0) as producer:
        assert producer.config["enable_idempotence"] is False
        metadata = producer.send("acks", value=b"fire-and-forget").result(10)
        assert metadata.offset == -1 and metadata.partition == 0
        producer.flush(10)
    with Producer(cluster.bootstrap, acks=1, linger_ms=0) as producer:
        assert producer.config["enable_idempotence"] is False
        assert producer.send("acks", value=b"leader-only").result(10).offset == 1
    deadline = time.monotonic() + 5
    while len(cluster.records("acks", 0)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [value for _, _, value, _ in cluster.records("acks", 0)] == [b"fire-and-forget", b"leader-only"]


def test_idempotent_batches_carry_a_producer_id_and_sequences(cluster):
    """With idempotence every batch carries the producer id and a base sequence that continues the
    previous batch's (KIP-98)."""
    cluster.create_topic("idem", 1)
    with Producer(cluster.bootstrap, linger_ms=0, batch_size=200) as producer:
        assert producer.config["enable_idempotence"] is True
        for n in range(20):
            producer.send("idem", value=b"%03d" % n)
        producer.flush(10)
    headers = _batches(cluster, "idem", 0)
    assert len(headers) > 1
    assert len({header.producer_id for header in headers}) == 1 and headers[0].producer_id >= 0
    expected = 0
    for header in headers:
        assert header.base_sequence == expected
        expected += header.record_count
    assert expected == 20


def test_invalid_arguments_are_refused_in_send(cluster):
    """Wrong types, records over max_request_size and unknown partitions or topics fail in send()
    itself; bytes-like values are accepted."""
    cluster.create_topic("args", 2)
    with Producer(cluster.bootstrap, max_request_size=10_000, topic_metadata_propagation_max_ms=200) as producer:
        with pytest.raises(TypeError):
            producer.send("args", value="text is not bytes")
        with pytest.raises(TypeError):
            producer.send("args", value=b"v", headers={"h": "text"})
        with pytest.raises(TypeError):
            producer.send("args", value=b"v", headers={1: b"x"})
        with pytest.raises(RecordTooLargeError):
            producer.send("args", value=b"x" * 20_000)
        with pytest.raises(UnknownTopicError):
            producer.send("args", value=b"v", partition=2)
        with pytest.raises(UnknownTopicError):
            producer.send("no-such-topic", value=b"v")
        assert producer.send("args", value=bytearray(b"ok"), key=memoryview(b"k")).result(10).offset == 0
        assert producer.partitions_for("args") == [0, 1]


def test_configuration_is_validated():
    """Contradictory or out-of-range options raise ValueError at construction, as Kafka's
    ConfigException; idempotence silently defaults off when options conflict (Kafka 3.x)."""
    with pytest.raises(ValueError):
        Producer("h:1", acks=2)
    with pytest.raises(ValueError, match="one of none, gzip, snappy, lz4, zstd, not 'brotli'"):
        Producer("h:1", compression="brotli")
    with pytest.raises(ValueError):
        Producer("h:1", enable_idempotence=True, acks=1)
    with pytest.raises(ValueError):
        Producer("h:1", enable_idempotence=True, max_in_flight=6)
    with pytest.raises(ValueError):
        Producer("h:1", delivery_timeout_ms=1000, request_timeout_ms=30000)
    with pytest.raises(ValueError):
        Producer("h:1", batch_size=0)
    with Producer("h:1", max_in_flight=10) as producer:
        assert producer.config["enable_idempotence"] is False  # Kafka: off when configs conflict


def test_a_custom_partitioner_is_used(cluster):
    """A partitioner function replaces the default for keyed and null-key records, with the
    partition lists Kafka's interface gives."""
    cluster.create_topic("custom", 4)
    calls = []

    def last_partition(key, partitions, available):
        calls.append((key, list(partitions), list(available)))
        return partitions[-1]

    with Producer(cluster.bootstrap, partitioner=last_partition, linger_ms=0) as producer:
        assert producer.send("custom", value=b"v", key=b"k").result(10).partition == 3
        assert producer.send("custom", value=b"v").result(10).partition == 3
    assert calls == [(b"k", [0, 1, 2, 3], [0, 1, 2, 3]), (None, [0, 1, 2, 3], [0, 1, 2, 3])]


def test_keyed_records_land_where_the_java_client_puts_them(cluster):
    """End to end: the partition in RecordMetadata and in the log is Kafka's choice for the key."""
    cluster.create_topic("keyed", 5)
    keys = [f"customer-{n}".encode() for n in range(40)] + [b"21", b"foobar", b"abc"]
    with Producer(cluster.bootstrap, linger_ms=2) as producer:
        futures = [(key, producer.send("keyed", value=b"v", key=key)) for key in keys]
        for key, future in futures:
            assert future.result(10).partition == (murmur2(key) & 0x7FFFFFFF) % 5
    for partition in range(5):
        for _, key, _, _ in cluster.records("keyed", partition):
            assert (murmur2(key) & 0x7FFFFFFF) % 5 == partition


def test_null_key_records_fill_one_batch_before_moving_to_another_partition(cluster):
    """KIP-480: with a batch holding exactly 10 records, null-key records go in runs of 10 per partition,
    each run on a different partition than the one before."""
    cluster.create_topic("sticky", 4)
    value = b"x" * 100
    per_record = 22 + len(value)  # the accumulator's size estimate for this record
    with Producer(cluster.bootstrap, linger_ms=60000, batch_size=61 + 10 * per_record) as producer:
        futures = [producer.send("sticky", value=value) for _ in range(100)]
        producer.flush(30)
    partitions = [future.result().partition for future in futures]
    runs: list[list[int]] = []
    for partition in partitions:
        if runs and runs[-1][0] == partition:
            runs[-1][1] += 1
        else:
            runs.append([partition, 1])
    assert [length for _, length in runs] == [10] * 10
    assert all(a[0] != b[0] for a, b in zip(runs, runs[1:], strict=False))
    assert sum(len(cluster.records("sticky", p)) for p in range(4)) == 100
    for partition in range(4):
        assert all(header.record_count == 10 for header in _batches(cluster, "sticky", partition))


def test_full_buffer_blocks_send_then_raises_buffer_full(cluster):
    """buffer_memory is back-pressure: with the broker not answering, send() blocks max_block_ms and
    then raises BufferFullError; once the broker answers, blocked senders go on."""
    cluster.create_topic("slow", 1)
    cluster.faults.stall_produce.set()
    producer = Producer(cluster.bootstrap, buffer_memory=20_000, max_block_ms=1500, linger_ms=0, request_timeout_ms=20000)
    try:
        futures = []
        with pytest.raises(BufferFullError) as caught:
            for _ in range(100):
                started = time.monotonic()
                futures.append(producer.send("slow", value=b"x" * 1000))
        blocked = time.monotonic() - started
        assert 1.4 <= blocked < 5
        assert "buffer_memory" in str(caught.value)
        assert isinstance(caught.value, MaxBlockTimeoutError)
        assert 10 <= len(futures) <= 20
        assert producer.metrics()["buffer_available_bytes"] < 1100

        # A sender blocked for space proceeds as soon as acknowledgements free memory.
        blocked_result = []
        slow_producer_thread = threading.Thread(
            target=lambda: blocked_result.append(producer.send("slow", value=b"y" * 1000)), daemon=True
        )
        slow_producer_thread.start()
        deadline = time.monotonic() + 5
        while producer.metrics()["waiting_threads"] != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert producer.metrics()["waiting_threads"] == 1
        cluster.faults.stall_produce.clear()
        slow_producer_thread.join(10)
        assert blocked_result and blocked_result[0].result(10).offset == len(futures)
        assert [future.result(10).offset for future in futures] == list(range(len(futures)))
    finally:
        cluster.faults.stall_produce.clear()
        producer.close()


def test_flush_waits_for_every_earlier_record_and_can_time_out(cluster):
    """flush() sends lingering batches at once and returns when all earlier records completed; with
    a stalled broker it raises ClientTimeoutError naming what is left."""
    cluster.create_topic("flush", 2)
    with Producer(cluster.bootstrap, linger_ms=60000) as producer:
        futures = [producer.send("flush", value=b"%d" % n, partition=n % 2) for n in range(50)]
        assert not any(future.done() for future in futures)
        start = time.monotonic()
        producer.flush()
        assert time.monotonic() - start < 5, "flush sends at once instead of waiting for linger_ms"
        assert all(future.done() and future.exception() is None for future in futures)
        cluster.faults.stall_produce.set()
        try:
            producer.send("flush", value=b"stuck")
            with pytest.raises(ClientTimeoutError, match="1 record"):
                producer.flush(timeout=0.3)
        finally:
            cluster.faults.stall_produce.clear()
        producer.flush(10)


def test_close_delivers_buffered_records_and_refuses_new_ones(cluster):
    """close() sends what is buffered (linger notwithstanding), stops the sender thread, is
    idempotent, and send() afterwards raises ProducerClosedError."""
    cluster.create_topic("close", 1)
    producer = Producer(cluster.bootstrap, linger_ms=60000)
    futures = [producer.send("close", value=b"%d" % n) for n in range(30)]
    producer.close()
    assert [future.result(0).offset for future in futures] == list(range(30))
    with pytest.raises(ProducerClosedError):
        producer.send("close", value=b"late")
    producer.close()  # idempotent
    assert not producer._sender.thread.is_alive()


def test_close_with_a_timeout_fails_what_it_could_not_deliver(cluster):
    """close(timeout) gives up after the timeout and fails undelivered records with
    ProducerClosedError instead of hanging."""
    cluster.create_topic("stuck", 1)
    cluster.faults.stall_produce.set()
    try:
        producer = Producer(cluster.bootstrap, linger_ms=0)
        future = producer.send("stuck", value=b"never acknowledged")
        start = time.monotonic()
        producer.close(timeout=0.3)
        assert time.monotonic() - start < 5
        with pytest.raises(ProducerClosedError):
            future.result(0)
    finally:
        cluster.faults.stall_produce.clear()


def test_delivery_callbacks_run_on_the_sender_thread(cluster):
    """on_delivery(metadata, error) runs on the sender thread; a callback that raises is logged and
    does not stop the producer."""
    cluster.create_topic("cb", 1)
    seen = []

    def on_delivery(metadata, error):
        seen.append((threading.current_thread().name, metadata, error))

    def broken_callback(metadata, error):
        raise RuntimeError("a user bug must not kill the sender")

    with Producer(cluster.bootstrap, linger_ms=0, max_request_size=2000) as producer:
        producer.send("cb", value=b"a", on_delivery=broken_callback)
        future = producer.send("cb", value=b"b", on_delivery=on_delivery)
        future.result(10)
        producer.flush(10)
        assert producer.send("cb", value=b"c").result(10).offset == 2
    assert seen == [("freshet-producer-sender", RecordMetadata("cb", 0, 1, future.result().timestamp), None)]


def test_record_futures_work_with_concurrent_futures_and_cannot_be_cancelled(cluster):
    """Record futures are real concurrent.futures.Futures (wait, as_completed, done callbacks) that
    refuse cancel() once sent."""
    cluster.create_topic("futures", 1)
    with Producer(cluster.bootstrap, linger_ms=20) as producer:
        futures = [producer.send("futures", value=b"%d" % n) for n in range(10)]
        assert not futures[0].cancel()
        done_callbacks = []
        futures[3].add_done_callback(lambda f: done_callbacks.append(f.result().offset))
        done, not_done = concurrent.futures.wait(futures, timeout=10)
        assert len(done) == 10 and not not_done
        assert sorted(f.result().offset for f in concurrent.futures.as_completed(futures, timeout=10)) == list(range(10))
        assert done_callbacks == [3]
        assert not futures[0].cancelled()


def test_many_threads_can_send_at_once(cluster):
    """Thread-safe send(): every record lands exactly once and each thread's order is kept."""
    cluster.create_topic("threads", 3)
    threads_count, per_thread = 4, 1500
    with Producer(cluster.bootstrap, linger_ms=2, batch_size=8192) as producer:
        errors = []

        def work(thread_number):
            try:
                for n in range(per_thread):
                    producer.send("threads", value=b"%d:%d" % (thread_number, n), key=b"thread-%d" % thread_number)
            except Exception as error:  # surfaced below
                errors.append(error)

        workers = [threading.Thread(target=work, args=(t,)) for t in range(threads_count)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
        producer.flush(30)
        assert errors == []
        metrics = producer.metrics()
    assert metrics["record_send_total"] == threads_count * per_thread
    assert metrics["record_error_total"] == 0
    assert metrics["batch_send_total"] == metrics["request_total"] or metrics["batch_send_total"] > 0
    seen: dict[int, list[int]] = {}
    for partition in range(3):
        for _, _, value, _ in cluster.records("threads", partition):
            thread_number, n = map(int, value.split(b":"))
            seen.setdefault(thread_number, []).append(n)
    assert {t: sorted(ns) for t, ns in seen.items()} == {t: list(range(per_thread)) for t in range(threads_count)}
    assert all(ns == sorted(ns) for ns in seen.values()), "a thread's records stay in order in its partition"


def test_metrics_count_what_was_sent(cluster):
    """metrics() counts records, batches, requests, bytes and latency of what was acknowledged, and
    the buffer's state."""
    cluster.create_topic("metrics", 1)
    with Producer(cluster.bootstrap, linger_ms=0) as producer:
        for _ in range(5):
            producer.send("metrics", value=b"12345").result(10)
        metrics = producer.metrics()
    assert metrics["record_send_total"] == 5
    assert metrics["batch_send_total"] == 5
    assert metrics["request_total"] == 5
    assert metrics["byte_send_total"] > 5 * 61
    assert 0 < metrics["request_latency_avg_ms"] <= metrics["request_latency_max_ms"] < 10_000
    assert metrics["record_retry_total"] == metrics["record_error_total"] == 0
    assert metrics["buffer_available_bytes"] == metrics["buffer_total_bytes"] == 32 * 1024 * 1024
    assert metrics["records_queued"] == 0


def test_close_from_a_delivery_callback_does_not_deadlock(cluster):
    """Kafka's rule: close() from the sender thread cannot wait for itself; it returns and the sender
    finishes the buffered records, then releases threads and channels on its own."""
    cluster.create_topic("self-close", 1)
    producer = Producer(cluster.bootstrap, linger_ms=0)
    outcomes = []

    def on_delivery(metadata, error):
        try:
            producer.flush()
        except Exception as flush_error:
            outcomes.append(type(flush_error).__name__)
        producer.close()
        outcomes.append("closed")

    producer.send("self-close", value=b"a", on_delivery=on_delivery).result(10)
    producer._sender.thread.join(10)
    assert not producer._sender.thread.is_alive()
    assert outcomes == ["IllegalStateError", "closed"]
    with pytest.raises(ProducerClosedError):
        producer.send("self-close", value=b"b")
    producer.close()
