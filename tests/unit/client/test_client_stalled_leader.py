"""Clients move off a stopped leader once metadata names a new one (issue 16's availability goal).

Goal: a leader that stops answering without closing its connections (SIGSTOP, a cut link) costs a
producer or consumer about the time the controller needs to elect a new leader, not
request_timeout_ms. Method: the fake cluster freezes a broker (every call to it hangs; it appends
nothing) and, a moment later, moves the partition's leadership to another broker as the controller
would after its session timeout; the clients run with request_timeout_ms=30 s, so only the stall
check can explain a fast recovery. The frozen broker also hangs Metadata, so a refresh that
asked it first must be cut short (`Metadata.suspect`). A control with the check effectively off
shows the test can fail. Reference: Kafka's producer waits request.timeout.ms (30 s) before it
closes a connection to an unresponsive broker, then refreshes metadata (NetworkClient).
"""

from __future__ import annotations

import threading
import time

import pytest
from freshet.client import Consumer, Producer, TopicPartition
from freshet.client._metadata import Metadata
from freshet.client._transport import Transport

pytestmark = pytest.mark.timeout(60)

MOVE_AFTER_S = 1.0


def _values(cluster, topic, partition):
    return [value for _, _, value, _ in cluster.records(topic, partition)]


def _freeze_then_move(cluster, topic: str, old: int, new: int) -> threading.Timer:
    cluster.freeze(old)
    timer = threading.Timer(MOVE_AFTER_S, cluster.move_leader, (topic, 0, new))
    timer.start()
    return timer


def test_a_producer_leaves_a_frozen_leader_once_the_partition_moves(cluster):
    """Pipelined idempotent batches stuck on a frozen leader are resent to the new leader soon
    after the move (well under request_timeout_ms), each record exactly once and in send order;
    the stale stream's late appends after the thaw are refused (NOT_LEADER), not duplicated."""
    cluster.create_topic("frozen", 1, leaders=[1])
    with Producer(cluster.bootstrap, linger_ms=1, batch_size=300, retry_backoff_ms=20,
                  request_timeout_ms=30000, stalled_request_ms=300) as producer:
        futures = [producer.send("frozen", value=b"%04d" % n) for n in range(100)]
        futures[-1].result(10)
        timer = _freeze_then_move(cluster, "frozen", 1, 2)
        start = time.monotonic()
        futures += [producer.send("frozen", value=b"%04d" % n) for n in range(100, 400)]
        futures[-1].result(10)
        recovered_s = time.monotonic() - start
        timer.join()
        cluster.thaw(1)
        futures += [producer.send("frozen", value=b"%04d" % n) for n in range(400, 500)]
        producer.flush(10)
        metrics = producer.metrics()
    assert [f.exception() for f in futures if f.exception()] == []
    assert _values(cluster, "frozen", 0) == [b"%04d" % n for n in range(500)]
    assert MOVE_AFTER_S <= recovered_s < MOVE_AFTER_S + 2.0, recovered_s
    assert metrics["stalled_stream_aborts_total"] >= 1


def test_without_the_stall_check_the_producer_waits_for_the_frozen_leader(cluster):
    """Control: stalled_request_ms longer than the test leaves the batch waiting on the frozen
    leader although the partition moved (what the check above avoids)."""
    cluster.create_topic("control", 1, leaders=[1])
    with Producer(cluster.bootstrap, linger_ms=0, retry_backoff_ms=20, request_timeout_ms=30000,
                  stalled_request_ms=30000) as producer:
        producer.send("control", value=b"before").result(10)
        timer = _freeze_then_move(cluster, "control", 1, 2)
        stuck = producer.send("control", value=b"stuck")
        time.sleep(MOVE_AFTER_S + 2.0)
        assert not stuck.done()
        timer.join()
        cluster.thaw(1)
        # The thawed old leader refuses it (NOT_LEADER) and the retry lands on the new leader.
        assert stuck.result(10).offset == 1
    assert _values(cluster, "control", 0) == [b"before", b"stuck"]


def test_a_consumer_leaves_a_frozen_leader_once_the_partition_moves(cluster):
    """A long poll parked on a frozen leader is cancelled once metadata names the new leader,
    and records appended there reach poll() soon after the move."""
    cluster.create_topic("frozen-read", 1, leaders=[1])
    cluster.append("frozen-read", 0, [b"a", b"b"])
    with Consumer(cluster.bootstrap, auto_offset_reset="earliest", request_timeout_ms=30000,
                  fetch_max_wait_ms=200, retry_backoff_ms=20, stalled_request_ms=300) as consumer:
        consumer.assign([TopicPartition("frozen-read", 0)])
        seen = []
        deadline = time.monotonic() + 10
        while len(seen) < 2 and time.monotonic() < deadline:
            seen += [r.value for r in consumer.poll(timeout_ms=200)]
        assert seen == [b"a", b"b"]
        timer = _freeze_then_move(cluster, "frozen-read", 1, 3)
        start = time.monotonic()
        timer.join()
        cluster.append("frozen-read", 0, [b"c"])
        while len(seen) < 3 and time.monotonic() < start + 10:
            seen += [r.value for r in consumer.poll(timeout_ms=100)]
        recovered_s = time.monotonic() - start
        cluster.thaw(1)
    assert seen == [b"a", b"b", b"c"]
    assert recovered_s < MOVE_AFTER_S + 2.0, recovered_s


def test_suspecting_an_address_cuts_a_refresh_waiting_on_it_short(cluster):
    """A refresh round whose first attempt hangs on a frozen broker moves on to the next address
    when that address is suspected, and later rounds ask it last."""
    cluster.create_topic("suspect", 1, leaders=[2])
    frozen_address = f"127.0.0.1:{cluster.brokers[1].port}"
    transport = Transport(frozen_address + "," + f"127.0.0.1:{cluster.brokers[2].port}", client_id="suspect-test")
    metadata = Metadata(transport, metadata_max_age_ms=300000, retry_backoff_ms=20, request_timeout_ms=30000)
    try:
        cluster.freeze(1)
        metadata.add_topics(["suspect"])  # the first round asks the frozen bootstrap address first
        time.sleep(0.3)
        assert "suspect" not in metadata.view.topics
        start = time.monotonic()
        metadata.suspect(frozen_address)
        while "suspect" not in metadata.view.topics and time.monotonic() < start + 5:
            time.sleep(0.01)
        assert time.monotonic() - start < 1.0
        version = metadata.view.version
        assert metadata.wait_for_update(version, 5).version > version  # asked broker 2 first
    finally:
        cluster.thaw(1)
        metadata.close()
        transport.close()
