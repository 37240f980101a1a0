"""The web console at `/`: what an operator must see at a glance, and nothing unescaped."""

from __future__ import annotations

import dataclasses

from freshet.metadata.image import EMPTY_IMAGE, NO_LEADER, BrokerRegistration, PartitionImage, TopicImage
from freshet.server.http import console_pages


def overview(image, status, groups, viewer=None) -> str:
    """The overview page as the server renders it (no viewer: security off)."""
    chrome = console_pages.Chrome(viewer, viewer.csrf_token if viewer is not None else "form-token")
    return console_pages.overview_page(chrome, image, status, groups).decode()


def _image():
    brokers = {
        node_id: BrokerRegistration(
            node_id=node_id, incarnation_id=b"\0" * 16, host="127.0.0.1", port=9090 + node_id,
            rack="r<1>" if node_id == 1 else "", broker_epoch=node_id, is_fenced=node_id == 3,
            in_controlled_shutdown=False,
        )
        for node_id in (1, 2, 3)
    }
    partitions = (
        PartitionImage(partition=0, replicas=(1, 2, 3), isr=(1, 2, 3), leader=1, leader_epoch=4, partition_epoch=7),
        PartitionImage(partition=1, replicas=(2, 3, 1), isr=(2, 1), leader=2, leader_epoch=2, partition_epoch=3),
        PartitionImage(partition=2, replicas=(3,), isr=(3,), leader=NO_LEADER, leader_epoch=9, partition_epoch=9),
    )
    topic = TopicImage(topic_id=b"\1" * 16, name="orders<script>", partitions=partitions, configs={})
    return dataclasses.replace(
        EMPTY_IMAGE, offset=42, cluster_id="c-1", controller_id=2, brokers=brokers,
        topics_by_id={topic.topic_id: topic}, topic_ids_by_name={topic.name: topic.topic_id},
    )


def test_the_page_shows_brokers_controller_quorum_partitions_and_flags_trouble():
    status = {"node_id": 2, "roles": ["broker", "controller"], "ready": True, "controller_id": 2,
              "quorum": {"leader": 1, "term": 5}}
    groups = [{"group": "billing", "state": "stable", "generation": 3, "members": 2, "lag": 17}]
    page = overview(_image(), status, groups)
    assert page.startswith("<!doctype html>")
    assert "active controller: <b id=\"controller\">2</b>" in page and "Raft leader: 1, term 5" in page
    assert "3 partitions, <span class=\"bad\">1 offline</span>, <span class=\"warn\">1 under-replicated</span>" in page
    assert '<td>1</td><td>2</td><td>2</td><td>2,3,1</td><td>2,1</td><td><span class="warn">under-replicated</span>' in page
    assert '<td>2</td><td><span class="bad">none</span></td>' in page
    assert '<td>3</td><td>127.0.0.1:9093</td><td>-</td><td><span class="bad">fenced</span></td>' in page
    assert "<td>billing</td><td>stable</td><td>3</td><td>2</td>" in page and ">17<" in page
    assert "<script>" not in page and "orders&lt;script&gt;" in page and "r&lt;1&gt;" in page


def test_a_node_that_is_not_ready_or_not_a_voter_says_so():
    status = {"node_id": 104, "roles": ["broker"], "ready": False, "readiness": "catching up on metadata"}
    page = overview(EMPTY_IMAGE, status, None)
    assert '<span class="bad">not ready</span>: catching up on metadata' in page
    assert "this node is not a voter" in page and "no topics" in page and "no broker registered" in page
    assert "no group coordinator on this node" in page


def test_the_summary_shows_this_nodes_log_directory_and_flags_a_full_one():
    disk = {"directory": "/data/logs", "state": "full", "free_bytes": 2**29, "total_bytes": 10 * 2**30,
            "low_water_bytes": 2**30, "high_water_bytes": 5 * 2**28, "reserve_bytes": 0, "error": ""}
    status = {"node_id": 1, "roles": ["broker"], "ready": True, "disk": disk}
    page = overview(EMPTY_IMAGE, status, None)
    assert ('log directory /data/logs: <span class="bad" id="disk-state">disk full</span>: produce refused until '
            "1.25 GiB are free, 0.50 GiB free of 10.00 GiB") in page
    status["disk"] = dict(disk, state="ok", free_bytes=8 * 2**30)
    page = overview(EMPTY_IMAGE, status, None)
    assert '<span class="ok" id="disk-state">disk ok</span>, 8.00 GiB free of 10.00 GiB' in page
    assert "log directory" not in overview(EMPTY_IMAGE, {"node_id": 2, "roles": ["controller"]}, None)


def _lag_group(is_alerting: bool) -> dict:
    return {
        "group": "billing<b>", "state": "stable", "generation": 3, "members": 2, "lag": 17,
        "lag_alert_seconds": 60.0, "is_lag_alerting": is_alerting,
        "lag_topics": [{"topic": "orders", "lag_seconds": 184.4, "lag_records": 17, "is_alerting": is_alerting}],
        "lag_partitions": [
            {"topic": "orders", "partition": 0, "committed_offset": 5, "lag_seconds": 184.4, "lag_records": 12},
            {"topic": "orders", "partition": 1, "committed_offset": 9, "lag_seconds": None, "lag_records": None},
        ],
    }


def test_the_groups_view_shows_lag_time_per_partition_and_warns_over_the_threshold():
    """Goal: consumer lag in time in the console: LAG-TIME per partition ("-" when unknown) and a
    visible warning naming the topic while the group is over its lag.alert.seconds."""
    status = {"node_id": 1, "roles": ["broker"], "ready": True, "controller_id": 1}
    page = overview(EMPTY_IMAGE, status, [_lag_group(True)])
    assert "<th>LAG-TIME</th>" in page and "alert above 60 s" in page
    assert '<td>orders</td><td>0</td><td class="num">5</td><td class="num">12</td><td class="num">184 s</td>' in page
    assert '<td>orders</td><td>1</td><td class="num">9</td><td class="num">-</td><td class="num">-</td>' in page
    assert 'class="bad lag-alert">warning: group billing&lt;b&gt; is more than 60 s behind (lag.alert.seconds) on orders' in page
    calm = overview(EMPTY_IMAGE, status, [_lag_group(False)])
    assert "<th>LAG-TIME</th>" in calm and "lag-alert" not in calm


def test_brokers_show_load_and_decommissioning_and_reassignments_are_listed():
    """Self-balancing on the console: per broker replica and leader counts and the decommission
    state; every reassignment in progress with who started it."""
    image = _image()
    brokers = dict(image.brokers)
    brokers[3] = dataclasses.replace(brokers[3], is_decommissioning=True)
    brokers[4] = dataclasses.replace(brokers[2], node_id=4, port=9094, is_decommissioning=True)
    topic = next(iter(image.topics_by_id.values()))
    moving = PartitionImage(
        partition=0, replicas=(1, 2, 4, 3), isr=(1, 2, 3), leader=1, leader_epoch=4, partition_epoch=8,
        adding_replicas=(4,), removing_replicas=(3,), is_balancer_move=True,
    )
    topic = dataclasses.replace(topic, partitions=(moving, *topic.partitions[1:]))
    image = dataclasses.replace(image, brokers=brokers, topics_by_id={topic.topic_id: topic})
    page = overview(image, {"node_id": 1, "roles": ["broker"], "ready": True}, None)
    assert '<td>1</td><td>127.0.0.1:9091</td><td>r&lt;1&gt;</td><td><span class="ok">active</span></td>' \
        '<td class="num">1</td><td class="num">2</td><td class="num">1</td>' in page      # epoch, replicas, leaders
    assert '<span class="warn">decommissioning</span></td><td class="num">3</td><td class="num">3</td>' in page
    assert '<td>4</td><td>127.0.0.1:9094</td><td>-</td><td><span class="warn">decommissioning</span>' in page
    assert "<h2>Reassignments</h2>" in page
    assert "<td>orders&lt;script&gt;-0</td><td>balancer</td><td>4</td><td>3</td><td>1,2,3</td>" in page
    plain = overview(_image(), {"node_id": 1, "roles": ["broker"], "ready": True}, None)
    assert "no reassignment in progress" in plain
    assert '<span class="muted">decommissioned</span>' in overview(
        dataclasses.replace(_image(), brokers={**_image().brokers, 5: dataclasses.replace(brokers[2], node_id=5, is_decommissioning=True)}),
        {"node_id": 1, "roles": ["broker"], "ready": True}, None,
    )
