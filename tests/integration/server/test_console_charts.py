"""The console's charts, cluster-wide, on a real 3-node cluster (in-process, security off).

Goal: the /charts page of one node shows the throughput of partitions led by every node, not
only its own: each broker's History is fetched over Replication.ConsoleSeries and merged. Method:
the module's 3-node cluster; a topic whose 3 partitions are led by the 3 nodes gets records on
every partition; the samplers' threads are stopped so the test takes the samples itself (before
and after producing), then node 2's merged series is compared with the merge of what each node
sampled, and node 2's page is read over HTTP.
"""

from __future__ import annotations

import re
import time
import uuid

import pytest
from freshet.client import Producer
from freshet.server.http.console_data import actions, cluster_charts
from freshet.server.security.authorizer import Caller

from tests.support.waiting import wait_until


def test_the_charts_page_merges_the_throughput_of_every_leader(cluster):
    nodes = {node_id: cluster.nodes[node_id] for node_id in (1, 2, 3)}
    backend = nodes[2].console
    topic = f"console-charts-{uuid.uuid4().hex[:6]}"
    actions.create_topic(backend, Caller(), topic, partitions=3, replication_factor=1)
    image = wait_until(lambda: (i := backend.image()).topic(topic) and all(p.leader >= 0 for p in i.topic(topic).partitions) and i,
                       15, "topic with leaders")
    leaders = {p.partition: p.leader for p in image.topic(topic).partitions}
    assert set(leaders.values()) == {1, 2, 3}, f"placement put two partitions on one node: {leaders}"
    for node in nodes.values():
        node.history.stop()                       # the test samples itself from here on
        node.history.sample()                     # the baseline
    time.sleep(1.0)
    bootstrap = ",".join(f"127.0.0.1:{port}" for port in cluster.ports.values())
    with Producer(bootstrap, acks="all") as producer:
        for partition in range(3):
            for i in range(10 * (partition + 1)):
                producer.send(topic, value=f"v{i}".encode(), partition=partition).result(timeout=15)
    for node in nodes.values():
        node.history.sample()

    key = ("records_in_per_s", topic)
    local = {node_id: node.history.export(topics={topic}) for node_id, node in nodes.items()}
    for node_id, series_list in local.items():
        own = {data.key: data for data in series_list}
        assert key in own and own[key].last > 0, f"node {node_id} leads a partition of {topic} but sampled nothing"
    charts = cluster_charts.cluster_charts(backend)
    assert (charts.nodes, charts.missing) == ((1, 2, 3), ())
    expected = cluster_charts.merge(local, nodes[2].history.interval_s)[key]
    assert charts.series[key].points == expected.points
    assert sum(v for _, v in expected.points) == pytest.approx(sum(data.last for s in local.values() for data in s if data.key == key))

    # a repeat fetch asks only for the newer points and merges the same as a full one
    time.sleep(1.0)
    with Producer(bootstrap, acks="all") as producer:
        producer.send(topic, value=b"more", partition=0).result(timeout=15)
    for node in nodes.values():
        node.history.sample()
    local = {node_id: node.history.export(topics={topic}) for node_id, node in nodes.items()}
    again = cluster_charts.cluster_charts(backend)
    assert again.missing == ()
    assert again.series[key].points == cluster_charts.merge(local, nodes[2].history.interval_s)[key].points
    remote = cluster_charts.remote_series(nodes[2].history)
    for node_id in (1, 3):                  # what node 2 holds of the others reaches their newest sample
        newest = max(data.points[-1][0] for data in nodes[node_id].history.export())
        assert remote.since(node_id) == newest

    code, page = cluster.http(2, f"/charts?search={topic}")
    assert code == 200
    assert "Cluster-wide" in page and "Brokers merged: 1, 2, 3." in page and 'id="charts-missing"' not in page
    labels = re.findall(r'<svg [^>]*aria-label="([^"]+)"', page)
    assert f"{topic}: records in" in labels and f"{topic}: bytes in" in labels
