"""The console's message browser and search on a real 3-node cluster (in-process, security off).

Goal: pages come newest first from the partitions' leaders (whichever node serves the page), a
page's positions continue exactly where it stopped (no record lost or shown twice, also across
partitions), values render as JSON / text / hex, and the search finds keys, values and headers
within its budget, skipping batches whose raw bytes cannot match. Method: records produced with
the SDK (explicit partitions and timestamps; one batch per record where batch counts matter),
pages read through node 1's ConsoleBackend.
"""

from __future__ import annotations

import json
import uuid

import pytest
from freshet.client import Producer
from freshet.server.http.console_data import actions, messages
from freshet.server.http.console_data.backend import ActionRefused
from freshet.server.http.console_data.messages import BrowseQuery, ScanBudget, SearchSpec
from freshet.server.security.authorizer import Caller

VIEWER = Caller()
BASE_MS = 1_700_000_000_000


def _bootstrap(cluster) -> str:
    return ",".join(f"127.0.0.1:{port}" for port in cluster.ports.values())


@pytest.fixture(scope="module")
def topic(cluster):
    """Three partitions; partition p holds 20 records with offset i at BASE_MS + 1000 * (3 * i + p)
    (so timestamps interleave across partitions); record 7 of partition 1 has a JSON value, record 8
    a binary one, record 9 headers; each record is its own batch (sent one at a time)."""
    name = f"console-msgs-{uuid.uuid4().hex[:6]}"
    actions.create_topic(cluster.nodes[1].console, VIEWER, name, partitions=3, replication_factor=2)
    with Producer(_bootstrap(cluster), acks="all", linger_ms=0) as producer:
        for i in range(20):
            for p in range(3):
                value = f"value {p}/{i}".encode()
                headers = None
                if (p, i) == (1, 7):
                    value = json.dumps({"order": 7, "items": ["a", "b"]}).encode()
                elif (p, i) == (1, 8):
                    value = bytes(range(256)) * 2
                elif (p, i) == (1, 9):
                    headers = [("trace-id", b"needle-in-header"), ("needle-key", None)]
                key = f"key-{p}-{i}".encode() if i % 2 == 0 else None
                producer.send(name, value, key=key, headers=headers, partition=p,
                              timestamp_ms=BASE_MS + 1000 * (3 * i + p)).result(timeout=15)
    return name


def test_one_partition_pages_newest_first_and_continue_exactly(cluster, topic):
    backend = cluster.nodes[1].console
    first = messages.browse(backend, VIEWER, BrowseQuery(topic, partition=0, limit=8))
    assert [row.offset for row in first.rows] == list(range(19, 11, -1))
    assert first.stopped_by == "limit"
    (position,) = first.positions
    assert (position.next_offset, position.log_start_offset, position.high_watermark) == (12, 0, 20)
    second = messages.browse(backend, VIEWER, BrowseQuery(topic, partition=0, limit=8, resume={0: position.next_offset}))
    assert [row.offset for row in second.rows] == list(range(11, 3, -1))
    last = messages.browse(backend, VIEWER, BrowseQuery(topic, partition=0, limit=8, start_offset=3))
    assert [row.offset for row in last.rows] == [3, 2, 1, 0]
    assert last.stopped_by == "start_of_log" and not last.has_older
    row = first.rows[0]
    assert (row.partition, row.timestamp_ms, row.timestamp_type) == (0, BASE_MS + 1000 * 57, "CreateTime")
    assert (row.key.kind, row.value.kind, row.value.text) == ("null", "text", "value 0/19")
    assert messages.browse(backend, VIEWER, BrowseQuery(topic, partition=0, limit=1)).rows[0].offset == 19


def test_a_timestamp_start_shows_what_was_written_at_or_before_it(cluster, topic):
    backend = cluster.nodes[2].console
    page = messages.browse(backend, VIEWER, BrowseQuery(topic, partition=2, limit=3, start_timestamp_ms=BASE_MS + 1000 * 32))
    assert [row.offset for row in page.rows] == [10, 9, 8]            # offset 10 of partition 2 is at 3*10+2 = 32


def test_all_partitions_merge_by_time_and_resume_without_loss(cluster, topic):
    backend = cluster.nodes[3].console
    seen: list[tuple[int, int]] = []
    resume = None
    for _ in range(10):
        page = messages.browse(backend, VIEWER, BrowseQuery(topic, limit=7, resume=resume))
        stamps = [row.timestamp_ms for row in page.rows]
        assert stamps == sorted(stamps, reverse=True)
        seen += [(row.partition, row.offset) for row in page.rows]
        if not page.has_older:
            break
        resume = {p.partition: p.next_offset for p in page.positions if p.next_offset is not None}
        resume.update({p.partition: 0 for p in page.positions if p.next_offset is None})
    assert len(seen) == len(set(seen)) == 60
    assert seen[:4] == [(2, 19), (1, 19), (0, 19), (2, 18)]


def test_values_render_as_json_hex_and_headers(cluster, topic):
    backend = cluster.nodes[1].console
    rows = {row.offset: row for row in messages.browse(backend, VIEWER, BrowseQuery(topic, partition=1, start_offset=9, limit=3)).rows}
    assert rows[7].value.kind == "json"
    assert json.loads(rows[7].value.text) == {"order": 7, "items": ["a", "b"]}
    assert "\n  " in rows[7].value.text
    assert rows[8].value.kind == "hex" and rows[8].value.size_bytes == 512
    assert rows[8].value.text.startswith("00 01 02") and not rows[8].value.is_truncated
    assert [(name, value.kind, value.text) for name, value in rows[9].headers] == [
        ("trace-id", "text", "needle-in-header"), ("needle-key", "null", "")
    ]
    assert (rows[8].key.kind, rows[8].key.text) == ("text", "key-1-8")


def test_search_finds_keys_values_and_headers_and_skips_batches_unread(cluster, topic):
    backend = cluster.nodes[1].console
    by_value = messages.browse(backend, VIEWER, BrowseQuery(topic, limit=50, search=SearchSpec("value 2/1")))
    assert sorted(row.offset for row in by_value.rows) == [1, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
    assert {row.partition for row in by_value.rows} == {2}
    assert by_value.stats.records == 60 and by_value.stats.batches_skipped == 49
    assert by_value.stopped_by == "start_of_log"
    by_header = messages.browse(backend, VIEWER, BrowseQuery(topic, limit=50, search=SearchSpec("needle")))
    assert [(row.partition, row.offset) for row in by_header.rows] == [(1, 9)]
    only_values = SearchSpec("needle", in_headers=False)
    assert messages.browse(backend, VIEWER, BrowseQuery(topic, limit=50, search=only_values)).rows == ()
    by_key = messages.browse(backend, VIEWER, BrowseQuery(topic, partition=0, limit=50, search=SearchSpec("KEY-0-1", ignore_case=True)))
    assert [row.offset for row in by_key.rows] == [18, 16, 14, 12, 10]
    by_regex = messages.browse(backend, VIEWER, BrowseQuery(topic, partition=1, limit=50, search=SearchSpec(r'"order":\s*7', is_regex=True)))
    assert [row.offset for row in by_regex.rows] == [7]


def test_search_stops_at_its_budget_and_scans_further_from_there(cluster, topic):
    backend = cluster.nodes[1].console
    spec = SearchSpec("value 0/0")
    query = BrowseQuery(topic, partition=0, limit=5, search=spec, budget=ScanBudget(records_max=6))
    page = messages.browse(backend, VIEWER, query)
    assert page.stopped_by == "records" and page.rows == ()
    assert page.stats.records == 6
    (position,) = page.positions
    assert position.next_offset == 14
    found = []
    while position.next_offset is not None:
        page = messages.browse(backend, VIEWER, BrowseQuery(topic, partition=0, limit=5, search=spec,
                                                            budget=ScanBudget(records_max=6), resume={0: position.next_offset}))
        found += [row.offset for row in page.rows]
        (position,) = page.positions
    assert found == [0]


def test_bad_queries_name_the_problem(cluster, topic):
    backend = cluster.nodes[1].console
    with pytest.raises(ValueError, match="limit"):
        messages.browse(backend, VIEWER, BrowseQuery(topic, limit=0))
    with pytest.raises(ValueError, match="regular expression"):
        messages.browse(backend, VIEWER, BrowseQuery(topic, search=SearchSpec("(", is_regex=True)))
    with pytest.raises(ValueError, match="empty"):
        messages.browse(backend, VIEWER, BrowseQuery(topic, search=SearchSpec("")))
    with pytest.raises(ActionRefused) as unknown:
        messages.browse(backend, VIEWER, BrowseQuery(topic + "-nope"))
    assert unknown.value.code_name == "UNKNOWN_TOPIC"
    with pytest.raises(ActionRefused) as no_partition:
        messages.browse(backend, VIEWER, BrowseQuery(topic, partition=9))
    assert no_partition.value.code_name == "UNKNOWN_TOPIC"


def test_the_nodes_history_samples_its_leaders_throughput(cluster, topic):
    """Every broker runs the sampler; the leader of a partition sees its records in."""
    backend = cluster.nodes[1].console
    leader = backend.image().topic(topic).partitions[0].leader
    history = cluster.nodes[leader].console.history
    assert history._thread is not None and history._thread.is_alive()
    history.sample()
    with Producer(_bootstrap(cluster), acks="all") as producer:
        for i in range(10):
            producer.send(topic, b"history %d" % i, partition=0).result(timeout=15)
    history.sample()
    assert history.series("records_in_per_s", topic).last > 0
    assert history.series("bytes_in_per_s", topic).last > 0
