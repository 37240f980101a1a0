"""The producer under failures: lost responses, leader moves, dead brokers, timeouts, broker data loss.

Goal: with idempotence every acknowledged record is in its partition exactly once and in send
order, whatever the transport does; retriable failures are retried within delivery_timeout_ms and
then fail with DeliveryTimeoutError; non-retriable ones fail only their batch. Method: the fake
cluster's fault injection (responses dropped after the append, NOT_LEADER after a leader move,
injected per-partition errors, stalled responses, killed servers), then the partition logs are
compared with what was sent. A control test shows the same faults duplicate records without
idempotence, so the faults are real.
Reference: KIP-98 (idempotent producer), KIP-91 (delivery.timeout.ms), Kafka's Sender and
TransactionManager (sequence handling on retries).
"""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from freshet.client.errors import (
    BrokerUnavailableError,
    ClusterAuthorizationFailedError,
    DeliveryTimeoutError,
    FreshetError,
    InvalidRecordError,
    MaxBlockTimeoutError,
    NotLeaderError,
    OutOfOrderSequenceError,
    RecordTooLargeError,
)
from freshet.client.producer import Producer
from freshet.v1 import common_pb2

pytestmark = pytest.mark.timeout(60)


def _values(cluster, topic, partition):
    return [value for _, _, value, _ in cluster.records(topic, partition)]


def _offsets(cluster, topic, partition):
    return {value: offset for offset, _, value, _ in cluster.records(topic, partition)}


def test_lost_responses_never_duplicate_or_reorder_records(cluster):
    """Responses lost after the append (the stream breaks) are retried; the leader recognises each
    retried batch by its sequence, so every partition holds exactly the records sent, in order,
    at the offsets the futures report."""
    cluster.create_topic("exactly-once", 3)
    cluster.faults.produce_delay_s = 0.002  # several requests in flight per stream
    stop = threading.Event()

    def inject():
        while not stop.is_set():
            cluster.faults.drop_produce_responses = 1
            time.sleep(0.03)

    injector = threading.Thread(target=inject, daemon=True)
    with Producer(cluster.bootstrap, linger_ms=1, batch_size=600, retry_backoff_ms=10) as producer:
        injector.start()
        try:
            futures = [producer.send("exactly-once", value=b"%05d" % n, partition=n % 3) for n in range(3000)]
            producer.flush(50)
        finally:
            stop.set()
            injector.join()
        metrics = producer.metrics()
    assert [future.exception() for future in futures if future.exception()] == []
    for partition in range(3):
        sent = [b"%05d" % n for n in range(partition, 3000, 3)]
        assert _values(cluster, "exactly-once", partition) == sent
        offsets = _offsets(cluster, "exactly-once", partition)
        for n in range(partition, 3000, 3):
            assert futures[n].result().offset == offsets[b"%05d" % n]
    assert cluster.count("dropped_responses") >= 3
    assert cluster.count("batches_duplicate") >= 1, "some retried batch had been appended already"
    assert metrics["record_retry_total"] > 0 and metrics["record_error_total"] == 0


def test_without_idempotence_the_same_faults_duplicate_records(cluster):
    """Control: a lost response after the append makes a non-idempotent retry write the batch twice."""
    cluster.create_topic("at-least-once", 1)
    with Producer(cluster.bootstrap, enable_idempotence=False, linger_ms=0, retry_backoff_ms=10) as producer:
        producer.send("at-least-once", value=b"first").result(10)
        cluster.faults.drop_produce_responses = 1
        assert producer.send("at-least-once", value=b"second").result(10).offset == 2
    assert _values(cluster, "at-least-once", 0) == [b"first", b"second", b"second"]


def test_leader_moves_while_producing_keep_every_record_once_and_in_order(cluster):
    """NOT_LEADER (with the new leader's hint) refreshes metadata and re-routes; nothing is lost,
    duplicated or reordered across several moves between brokers."""
    cluster.create_topic("moving", 2, leaders=[1, 2])
    stop = threading.Event()
    moves = []

    def move():
        leader = 1
        while not stop.is_set():
            time.sleep(0.04)
            leader = leader % 3 + 1
            cluster.move_leader("moving", 0, leader)
            moves.append(leader)

    mover = threading.Thread(target=move, daemon=True)
    with Producer(cluster.bootstrap, linger_ms=1, batch_size=800, retry_backoff_ms=10) as producer:
        mover.start()
        try:
            futures = []
            for n in range(2000):
                futures.append(producer.send("moving", value=b"%05d" % n, partition=n % 2))
                if n % 200 == 0:
                    time.sleep(0.02)
            producer.flush(50)
        finally:
            stop.set()
            mover.join()
        metrics = producer.metrics()
    assert len(moves) >= 3
    assert [future.exception() for future in futures if future.exception()] == []
    assert _values(cluster, "moving", 0) == [b"%05d" % n for n in range(0, 2000, 2)]
    assert _values(cluster, "moving", 1) == [b"%05d" % n for n in range(1, 2000, 2)]
    assert cluster.count("produce_error:NOT_LEADER") >= 1
    assert metrics["record_retry_total"] > 0


def test_a_failed_batch_ahead_of_pipelined_batches_is_retried_first(cluster):
    """NOT_ENOUGH_REPLICAS on one batch while later batches of the partition are in flight: the
    leader refuses the later ones (OUT_OF_ORDER_SEQUENCE, nothing appended); the producer retries
    them all in sequence order instead of failing them."""
    cluster.create_topic("pipelined", 1)
    with Producer(cluster.bootstrap, linger_ms=0, batch_size=300, retry_backoff_ms=20) as producer:
        producer.send("pipelined", value=b"first").result(10)  # the leader now knows our producer id
        cluster.faults.produce_delay_s = 0.01
        cluster.faults.produce_errors[("pipelined", 0)] = [common_pb2.NOT_ENOUGH_REPLICAS]
        futures = [producer.send("pipelined", value=b"%03d" % n) for n in range(60)]
        producer.flush(30)
        metrics = producer.metrics()
    assert [future.exception() for future in futures if future.exception()] == []
    assert _values(cluster, "pipelined", 0) == [b"first"] + [b"%03d" % n for n in range(60)]
    assert cluster.count("produce_error:NOT_ENOUGH_REPLICAS") == 1
    assert cluster.count("produce_error:OUT_OF_ORDER_SEQUENCE") >= 1, "later batches were in flight"
    assert metrics["record_retry_total"] > 0 and metrics["producer_id_resets_total"] == 0


def test_records_lost_by_the_broker_surface_as_out_of_order_and_the_partition_starts_over(cluster):
    """If the leader lost acknowledged records (acks=1 failover, unclean election), the next batch's
    sequence leaves a gap nothing can fill: it fails with OutOfOrderSequenceError, and the partition
    continues under a fresh producer id instead of failing forever."""
    cluster.create_topic("lossy", 1)
    with Producer(cluster.bootstrap, linger_ms=0) as producer:
        for n in range(10):
            producer.send("lossy", value=b"%d" % n).result(10)  # one batch each: sequences 0..9
        cluster.partition("lossy", 0).log.truncate_to(5)  # the broker forgets sequences 5..9
        cluster.partition("lossy", 0).high_watermark = 5
        doomed = producer.send("lossy", value=b"gap")
        with pytest.raises(OutOfOrderSequenceError):
            doomed.result(10)
        after = [producer.send("lossy", value=b"after-%d" % n) for n in range(3)]
        assert [future.result(10).offset for future in after] == [5, 6, 7]
        metrics = producer.metrics()
    assert _values(cluster, "lossy", 0) == [b"0", b"1", b"2", b"3", b"4", b"after-0", b"after-1", b"after-2"]
    assert metrics["producer_id_resets_total"] == 1
    assert cluster.count("InitProducerId") == 2


def test_a_non_retriable_error_fails_only_its_batch(cluster):
    """RECORD_TOO_LARGE from the leader fails that batch's records; other partitions are untouched and
    the same partition goes on (renumbered, since the failed batch left a sequence gap)."""
    cluster.create_topic("mixed", 2)
    with Producer(cluster.bootstrap, linger_ms=0) as producer:
        producer.send("mixed", value=b"ok-0", partition=0).result(10)
        cluster.faults.produce_errors[("mixed", 0)] = [common_pb2.RECORD_TOO_LARGE]
        failed = producer.send("mixed", value=b"refused", partition=0)
        with pytest.raises(RecordTooLargeError) as caught:
            failed.result(10)
        assert not caught.value.retriable and "injected" in str(caught.value)
        other = producer.send("mixed", value=b"other", partition=1)
        later = producer.send("mixed", value=b"ok-1", partition=0)
        assert other.result(10).offset == 0
        assert later.result(10).offset == 1
    assert _values(cluster, "mixed", 0) == [b"ok-0", b"ok-1"]


def test_a_stalled_response_times_out_the_stream_and_the_retry_is_deduplicated(cluster):
    """request_timeout_ms: no response in time aborts the stream (outcome unknown) and the batch is
    retried; it had been appended, so the retry returns the original offset."""
    cluster.create_topic("stalled", 1)
    with Producer(cluster.bootstrap, linger_ms=0, request_timeout_ms=300, delivery_timeout_ms=20000) as producer:
        producer.send("stalled", value=b"warm-up").result(10)
        cluster.faults.stall_produce.set()
        future = producer.send("stalled", value=b"slow")
        deadline = time.monotonic() + 5
        while cluster.count("batches_appended") < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.4)  # past request_timeout_ms: the producer gave up on the stream
        cluster.faults.stall_produce.clear()
        assert future.result(10).offset == 1
        metrics = producer.metrics()
    assert _values(cluster, "stalled", 0) == [b"warm-up", b"slow"]
    assert cluster.count("batches_duplicate") >= 1
    assert metrics["record_retry_total"] >= 1


def test_an_expired_batch_with_an_unknown_outcome_is_not_written_twice(cluster):
    """A batch that was appended but never acknowledged expires (DeliveryTimeoutError: outcome
    unknown). Its sequence number leaves the partition's chain open, so the partition moves to a
    fresh producer id; later records are written once, and the expired one stays written once."""
    cluster.create_topic("expired", 1)
    with Producer(
        cluster.bootstrap, linger_ms=0, request_timeout_ms=300, delivery_timeout_ms=900, retry_backoff_ms=20
    ) as producer:
        producer.send("expired", value=b"before").result(10)
        cluster.faults.stall_produce.set()
        try:
            doomed = producer.send("expired", value=b"unknown")
            with pytest.raises(DeliveryTimeoutError) as caught:
                doomed.result(10)
        finally:
            cluster.faults.stall_produce.clear()
        assert "900 ms has passed" in str(caught.value)
        later = [producer.send("expired", value=b"later-%d" % n) for n in range(3)]
        assert [future.result(10).offset for future in later] == [2, 3, 4]
        metrics = producer.metrics()
    assert _values(cluster, "expired", 0) == [b"before", b"unknown", b"later-0", b"later-1", b"later-2"]
    assert metrics["producer_id_resets_total"] == 1
    assert cluster.count("InitProducerId") == 2


def test_an_unreachable_leader_fails_records_after_the_delivery_timeout(cluster):
    """A dead leader that metadata still names: retries until delivery_timeout_ms, then
    DeliveryTimeoutError whose cause names the connection failure; never a grpc.RpcError."""
    cluster.create_topic("dead", 2, leaders=[1, 2])
    with Producer(
        cluster.bootstrap, linger_ms=0, request_timeout_ms=400, delivery_timeout_ms=1500, retry_backoff_ms=50
    ) as producer:
        producer.send("dead", value=b"alive", partition=0).result(10)
        cluster.kill(1)
        start = time.monotonic()
        future = producer.send("dead", value=b"lost", partition=0)
        healthy = producer.send("dead", value=b"fine", partition=1)
        with pytest.raises(DeliveryTimeoutError) as caught:
            future.result(10)
        elapsed = time.monotonic() - start
        assert healthy.result(10).offset == 0
    assert 1.4 <= elapsed < 6
    assert "dead-0" in str(caught.value)
    assert isinstance(caught.value.__cause__, FreshetError)
    assert not isinstance(caught.value, grpc.RpcError) and not isinstance(caught.value.__cause__, grpc.RpcError)
    assert isinstance(caught.value.__cause__, BrokerUnavailableError)


def test_a_killed_leader_whose_partition_moves_loses_nothing(cluster):
    """The leader dies mid-stream and the partition moves to another broker (as the controller would
    do): the producer follows the new leader; every record is there once, in order."""
    cluster.create_topic("failover", 1, leaders=[1])
    with Producer(cluster.bootstrap, linger_ms=1, batch_size=500, retry_backoff_ms=20) as producer:
        futures = [producer.send("failover", value=b"%04d" % n) for n in range(300)]
        futures[50].result(10)
        cluster.kill(1)
        futures += [producer.send("failover", value=b"%04d" % n) for n in range(300, 600)]
        time.sleep(0.2)
        cluster.move_leader("failover", 0, 2)
        futures += [producer.send("failover", value=b"%04d" % n) for n in range(600, 900)]
        producer.flush(30)
        cluster.restart(1)
    assert [future.exception() for future in futures if future.exception()] == []
    assert _values(cluster, "failover", 0) == [b"%04d" % n for n in range(900)]


def test_retries_zero_fails_at_the_first_retriable_error(cluster):
    """retries=0 (without idempotence, which needs retries): the first retriable error fails the
    record; the next record goes through."""
    cluster.create_topic("no-retry", 1)
    with Producer(cluster.bootstrap, linger_ms=0, retries=0, enable_idempotence=False) as producer:
        cluster.faults.produce_errors[("no-retry", 0)] = [common_pb2.NOT_LEADER]
        with pytest.raises(NotLeaderError) as caught:
            producer.send("no-retry", value=b"v").result(10)
        assert caught.value.retriable
        assert producer.send("no-retry", value=b"w").result(10).offset == 0


def test_the_leader_named_by_not_leader_is_used_without_a_metadata_answer(cluster):
    """NOT_LEADER carries the new leader and its epoch (common.proto ErrorDetail): the producer
    re-routes with it even while every Metadata request fails (KIP-951)."""
    cluster.create_topic("hinted", 1, leaders=[1])
    with Producer(cluster.bootstrap, linger_ms=0, retry_backoff_ms=20) as producer:
        assert producer.send("hinted", value=b"a").result(10).offset == 0
        cluster.faults.metadata_errors.extend([common_pb2.NOT_CONTROLLER] * 10_000)
        cluster.move_leader("hinted", 0, 3)
        assert producer.send("hinted", value=b"b").result(10).offset == 1
    assert cluster.count("produce_error:NOT_LEADER") == 1
    assert _values(cluster, "hinted", 0) == [b"a", b"b"]


def test_the_first_batches_of_a_partition_go_one_at_a_time_until_one_is_acknowledged(cluster):
    """A leader accepts any first sequence from a producer it does not know (Kafka KIP-360): were
    later batches in flight while the first one failed, the leader would take them first and the
    partition would be reordered. So until one batch is acknowledged only one is in flight."""
    cluster.create_topic("fresh", 1)
    cluster.faults.produce_delay_s = 0.01
    cluster.faults.produce_errors[("fresh", 0)] = [common_pb2.NOT_ENOUGH_REPLICAS]
    with Producer(cluster.bootstrap, linger_ms=0, batch_size=300, retry_backoff_ms=20) as producer:
        futures = [producer.send("fresh", value=b"%03d" % n) for n in range(60)]
        producer.flush(30)
    assert [future.exception() for future in futures if future.exception()] == []
    assert _values(cluster, "fresh", 0) == [b"%03d" % n for n in range(60)]
    assert cluster.count("produce_error:NOT_ENOUGH_REPLICAS") == 1


def test_batches_that_may_be_written_are_not_renumbered_behind_a_batch_that_failed(cluster):
    """X and Y are appended but their responses never arrive (the stream times out: outcome
    unknown). X's retry then fails for good. Renumbering Y under a fresh producer id would write it a
    second time, so Y fails with DeliveryTimeoutError (outcome unknown) instead; a later Z, never
    sent before, is renumbered and written once."""
    cluster.create_topic("unknown", 1)
    with Producer(
        cluster.bootstrap, linger_ms=0, request_timeout_ms=300, retry_backoff_ms=600, delivery_timeout_ms=30000
    ) as producer:
        producer.send("unknown", value=b"warm-up").result(10)
        cluster.faults.stall_produce.set()
        try:
            first = producer.send("unknown", value=b"X")
            _wait_for(lambda: cluster.count("batches_appended") == 2)
            second = producer.send("unknown", value=b"Y")
            _wait_for(lambda: cluster.count("batches_appended") == 3)
            # The stream times out; both go back to the queue for a retry after 600 ms.
            _wait_for(lambda: producer.metrics()["record_retry_total"] == 2)
            cluster.faults.produce_errors[("unknown", 0)] = [common_pb2.INVALID_RECORD]
        finally:
            cluster.faults.stall_produce.clear()
        with pytest.raises(InvalidRecordError):
            first.result(10)
        with pytest.raises(DeliveryTimeoutError, match="outcome unknown"):
            second.result(10)
        assert producer.send("unknown", value=b"Z").result(10).offset == 3
    assert _values(cluster, "unknown", 0) == [b"warm-up", b"X", b"Y", b"Z"]


def _wait_for(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def test_a_producer_with_no_reachable_broker_names_the_addresses_tried():
    """Connection failures surface as FreshetErrors naming every bootstrap address, never RpcErrors."""
    with Producer("127.0.0.1:1,127.0.0.1:2", max_block_ms=600, retry_backoff_ms=50) as producer:
        with pytest.raises(MaxBlockTimeoutError) as caught:
            producer.send("orders", b"v")
    message = str(caught.value)
    assert "127.0.0.1:1" in message and "127.0.0.1:2" in message
    assert isinstance(caught.value.__cause__, BrokerUnavailableError)
    assert not isinstance(caught.value, grpc.RpcError)


def test_a_refused_producer_id_fails_waiting_records_at_once_and_a_later_send_asks_again(cluster):
    """A principal refused IdempotentWrite (CLUSTER_AUTHORIZATION_FAILED, not retriable) learns it
    from its send, not from DeliveryTimeoutError after delivery_timeout_ms; once the right is
    granted the same producer gets an id and delivers (Kafka's producer would need a new one)."""
    cluster.create_topic("refused", 1)
    cluster.faults.producer_id_errors = [common_pb2.CLUSTER_AUTHORIZATION_FAILED]
    with Producer(cluster.bootstrap, delivery_timeout_ms=60000, retry_backoff_ms=10) as producer:
        started = time.monotonic()
        future = producer.send("refused", value=b"no")
        with pytest.raises(ClusterAuthorizationFailedError):
            future.result(10)
        assert time.monotonic() - started < 5
        assert producer.send("refused", value=b"yes").result(10).offset == 0
    assert _values(cluster, "refused", 0) == [b"yes"]
    assert cluster.count("InitProducerId") == 2
