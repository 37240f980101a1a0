"""Bootstrap parsing and the metadata cache: refresh triggers, rotation over brokers, epoch staleness.

Goal: clients find the cluster from any bootstrap address (argument, FRESHET_BOOTSTRAP, default),
keep leaders current (refresh on demand, periodically, after a broker dies) and never go back to
an older leader because a lagging broker answered. Method: parse_bootstrap directly; Metadata over
the fake cluster; _merge on hand-built responses.
Reference: INTERFACE.md (bootstrap), Kafka metadata.max.age.ms, KIP-320 (leader epoch in metadata).
"""

from __future__ import annotations

import threading
import time

import pytest
from freshet.client._metadata import ClusterView, Metadata, _merge
from freshet.client._transport import BOOTSTRAP_ENV, Transport, parse_bootstrap
from freshet.client.errors import InvalidTopicError, MaxBlockTimeoutError, UnknownTopicError
from freshet.client.structs import Node
from freshet.v1 import broker_pb2, common_pb2


def test_parse_bootstrap_accepts_lists_strings_and_ipv6():
    """Comma lists and sequences, duplicates dropped, IPv6 in brackets; malformed entries raise
    ValueError."""
    assert parse_bootstrap("a:1, b:2,,a:1") == ["a:1", "b:2"]
    assert parse_bootstrap(["h:9092", "[::1]:9093"]) == ["h:9092", "[::1]:9093"]
    for bad in ("nohost", "h:port", ":9092", "h:0", "h:70000", "::1:9092", ""):
        with pytest.raises(ValueError):
            parse_bootstrap(bad)


def test_bootstrap_comes_from_the_environment_then_the_default(monkeypatch):
    """INTERFACE.md: the argument, else FRESHET_BOOTSTRAP, else localhost:9092."""
    monkeypatch.setenv(BOOTSTRAP_ENV, "env-host:1234,other:5")
    assert parse_bootstrap(None) == ["env-host:1234", "other:5"]
    assert Transport(None, client_id="t").bootstrap_addresses == ["env-host:1234", "other:5"]
    assert parse_bootstrap("given:1") == ["given:1"]
    monkeypatch.delenv(BOOTSTRAP_ENV)
    assert parse_bootstrap(None) == ["localhost:9092"]
    assert Node(1, "::1", 9092).address == "[::1]:9092"


def _metadata(bootstrap: str, **overrides) -> Metadata:
    options = {"metadata_max_age_ms": 300000, "retry_backoff_ms": 50, "request_timeout_ms": 2000}
    options.update(overrides)
    return Metadata(Transport(bootstrap, client_id="test"), **options)


@pytest.mark.timeout(30)
def test_metadata_finds_leaders_through_any_bootstrap_address(cluster):
    """A dead first bootstrap address is skipped; the answer lists every broker and leader."""
    cluster.create_topic("orders", 3)
    metadata = _metadata("127.0.0.1:1," + cluster.bootstrap)
    try:
        info = metadata.wait_for_topic("orders", 10, 5)
        assert [p.partition for p in info.partitions] == [0, 1, 2]
        view = metadata.view
        assert set(view.brokers) == {1, 2, 3}
        node, epoch = view.leader("orders", 1)
        assert node.port == cluster.brokers[cluster.partition("orders", 1).leader_id].port
        assert epoch == 0
        assert view.leader("orders", 7) is None
    finally:
        metadata.close()


@pytest.mark.timeout(30)
def test_unknown_and_invalid_topics_are_reported_after_the_propagation_wait(cluster):
    """UNKNOWN_TOPIC is waited on for the propagation time (a new topic is found), other topic
    errors are raised at once."""
    metadata = _metadata(cluster.bootstrap)
    try:
        start = time.monotonic()
        with pytest.raises(UnknownTopicError):
            metadata.wait_for_topic("missing", 10, 0.3)
        assert 0.25 <= time.monotonic() - start < 5
        # A topic created while a sender waits is found (propagation).
        start = time.monotonic()
        timer = threading.Timer(0.3, lambda: cluster.create_topic("late", 2))
        timer.start()
        info = metadata.wait_for_topic("late", 10, 5)
        timer.join()
        assert len(info.partitions) == 2 and time.monotonic() - start >= 0.25
        # A topic-level error other than UNKNOWN_TOPIC is raised at once.
        start = time.monotonic()
        with pytest.raises(InvalidTopicError):
            metadata.wait_for_topic("bad name!", 10, 5)
        assert time.monotonic() - start < 2
    finally:
        metadata.close()


@pytest.mark.timeout(30)
def test_metadata_times_out_with_the_last_error_when_no_broker_answers():
    """With no broker reachable the wait ends in MaxBlockTimeoutError naming every address tried."""
    metadata = _metadata("127.0.0.1:1,127.0.0.1:2")
    try:
        with pytest.raises(MaxBlockTimeoutError) as caught:
            metadata.wait_for_topic("orders", 0.5, 5)
        assert "127.0.0.1:1" in str(caught.value) and "127.0.0.1:2" in str(caught.value)
        assert metadata.rounds_failed >= 1
    finally:
        metadata.close()


@pytest.mark.timeout(30)
def test_metadata_refreshes_when_older_than_max_age(cluster):
    """metadata_max_age_ms: the view is re-read periodically even when nothing asks for it."""
    cluster.create_topic("orders", 1)
    metadata = _metadata(cluster.bootstrap, metadata_max_age_ms=100)
    try:
        metadata.wait_for_topic("orders", 10, 5)
        cluster.move_leader("orders", 0, 3)
        deadline = time.monotonic() + 5
        while metadata.view.leader("orders", 0)[1] != 1 and time.monotonic() < deadline:
            metadata.maybe_refresh()  # what the sender and fetcher loops do on every turn
            time.sleep(0.02)
        node, epoch = metadata.view.leader("orders", 0)
        assert (node.node_id, epoch) == (3, 1)
    finally:
        metadata.close()


def _response(offset: int, epoch: int, leader: int) -> broker_pb2.MetadataResponse:
    response = broker_pb2.MetadataResponse(metadata_offset=offset, cluster_id="c")
    for node_id in (1, 2, 3):
        response.brokers.append(common_pb2.BrokerEndpoint(node_id=node_id, host="h", port=9000 + node_id))
    topic = broker_pb2.TopicMetadata(name="t", topic_id=b"\x01" * 16)
    topic.partitions.append(broker_pb2.PartitionMetadata(partition=0, leader_id=leader, leader_epoch=epoch))
    response.topics.append(topic)
    return response


def test_a_lagging_broker_cannot_send_the_client_back_to_an_old_leader():
    """KIP-320: a partition whose cached leader epoch is newer than the answer's keeps its cached leader."""
    view = ClusterView("", -1, {}, {}, -1, 0)
    view = _merge(view, _response(offset=10, epoch=5, leader=2))
    assert view.leader("t", 0)[0].node_id == 2
    stale = _merge(view, _response(offset=8, epoch=4, leader=1))
    assert stale.leader("t", 0) == (Node(2, "h", 9002), 5)
    newer = _merge(stale, _response(offset=12, epoch=6, leader=3))
    assert newer.leader("t", 0)[1] == 6 and newer.leader("t", 0)[0].node_id == 3
    # A re-created topic (new id) starts its epochs again and replaces the cached one.
    recreated = _response(offset=13, epoch=0, leader=1)
    recreated.topics[0].topic_id = b"\x02" * 16
    assert _merge(newer, recreated).leader("t", 0)[0].node_id == 1
    assert newer.version == 3


def test_a_leader_hint_applies_only_when_its_epoch_is_newer():
    """KIP-951 hints update the view only with a newer leader epoch, and a lagging Metadata answer
    does not undo them (KIP-320)."""
    metadata = Metadata(Transport("h:1", client_id="t"), metadata_max_age_ms=300000, retry_backoff_ms=50, request_timeout_ms=100)
    try:
        metadata._view = _merge(metadata.view, _response(offset=10, epoch=5, leader=2))
        version = metadata.view.version
        assert not metadata.apply_leader_hint("t", 0, Node(1, "h", 9001), 5)
        assert not metadata.apply_leader_hint("t", 0, None, 9)
        assert metadata.view.version == version
        assert metadata.apply_leader_hint("t", 0, Node(3, "h", 9003), 6)
        assert metadata.view.leader("t", 0) == (Node(3, "h", 9003), 6)
        assert metadata.view.topics["t"].available_partitions == (0,)
        # A lagging answer afterwards does not undo it.
        metadata._view = _merge(metadata.view, _response(offset=11, epoch=5, leader=2))
        assert metadata.view.leader("t", 0) == (Node(3, "h", 9003), 6)
    finally:
        metadata.close()
