"""The topic page's per-partition logs (console_data/logs.py) over a fake DescribeLogDirs.

Goal: log start, high watermark, log end and size are shown for EVERY partition, each from its
leader (not only those this node leads), a mute broker costs at most the page's budget and makes
its cells "?" with a note, and a reassignment shows what each adding replica still has to copy.
Method: secure_image's 3-broker cluster with topic "orders" re-led so that each broker leads one
partition; tests/support/fake_log_dirs.py answers DescribeLogDirs per broker address.
"""

from __future__ import annotations

import dataclasses
import time

from freshet.server.http import console_pages
from freshet.server.http.console_data import logs
from freshet.server.http.console_data.backend import ConsoleBackend

from tests.support.fake_log_dirs import FakeLogDirs, replica_log
from tests.support.secure_images import secure_image

CHROME = console_pages.Chrome(None, "t")


def three_partitions(moving: bool = False):
    """The image with "orders" in 3 partitions led by brokers 1, 2, 3; with `moving`, partition 2
    is being moved from replicas 3,2 to 3,2,1 (broker 1 being added, not yet in the ISR)."""
    image = secure_image()
    orders = image.topic("orders")
    first = orders.partitions[0]
    partitions = tuple(
        dataclasses.replace(first, partition=i, leader=leader, replicas=(leader, *[r for r in (1, 2, 3) if r != leader]))
        for i, leader in enumerate((1, 2, 3))
    )
    if moving:
        partitions = (*partitions[:2], dataclasses.replace(partitions[2], replicas=(3, 2, 1), isr=(3, 2), adding_replicas=(1,)))
    topic = dataclasses.replace(orders, partitions=partitions)
    return dataclasses.replace(image, topics_by_id={**image.topics_by_id, topic.topic_id: topic})


def address(image, broker_id: int) -> str:
    broker = image.brokers[broker_id]
    return f"{broker.host}:{broker.port}"


def backend_over(image, fake: FakeLogDirs, timeout_s: float = 1.0) -> ConsoleBackend:
    return ConsoleBackend(node_id=1, image=lambda: image, authorizer=None, loop=None, controller_service=None,
                          transport=fake, request_timeout_s=timeout_s)


def every_leader_answers(image) -> FakeLogDirs:
    return FakeLogDirs({
        (address(image, leader), "orders", leader - 1): replica_log("orders", leader - 1, True, 10 * leader, 100 * leader,
                                                                    100 * leader + 5, 4096 * leader)
        for leader in (1, 2, 3)
    })


def test_every_partition_shows_its_leaders_log_asking_each_leader_once():
    image = three_partitions()
    fake = every_leader_answers(image)
    found = logs.topic_logs(backend_over(image, fake), image.topic("orders"))
    assert found.unknown == {} and found.failures == ()
    assert found.partitions[1] == logs.PartitionLog(20, 200, 205, 8192)
    assert sorted(fake.asked) == [(address(image, b), [("orders", b - 1)]) for b in (1, 2, 3)]
    code, page = console_pages.topic_page(CHROME, image, "orders", found)
    text = page.decode()
    assert code == 200
    for leader in (1, 2, 3):
        cells = "".join(f'<td class="num">{v}</td>' for v in (f"{10 * leader}", f"{100 * leader}", f"{100 * leader + 5}",
                                                               f"{4096 * leader:,}"))
        assert cells in text, leader
    assert 'id="logs-note"' not in text


def test_a_mute_leader_makes_its_cells_unknown_within_the_budget_and_the_others_still_show():
    image = three_partitions()
    fake = every_leader_answers(image)
    fake.silent.add(address(image, 3))
    started = time.monotonic()
    try:
        found = logs.topic_logs(backend_over(image, fake), image.topic("orders"), budget_s=0.5)
    finally:
        fake.release()
    assert time.monotonic() - started < 2.0
    assert sorted(found.partitions) == [0, 1]
    assert [f.subject for f in found.failures] == [f"broker 3 at {address(image, 3)}"]
    assert found.failures[0].code_name == "REQUEST_TIMED_OUT"
    _, page = console_pages.topic_page(CHROME, image, "orders", found)
    text = page.decode()
    row = text[text.index("<tr><td>2</td>"):]
    row = row[:row.index("</tr>")]
    assert row.count(">?</td>") == 4
    assert f"broker 3 at {address(image, 3)}: no answer within" in text[text.index('id="logs-note"'):]


def test_a_broker_that_no_longer_leads_or_does_not_host_is_unknown_not_wrong():
    image = three_partitions()
    fake = every_leader_answers(image)
    fake.logs[(address(image, 1), "orders", 0)] = replica_log("orders", 0, False, 1, 2, 3, 4)
    del fake.logs[(address(image, 2), "orders", 1)]
    found = logs.topic_logs(backend_over(image, fake), image.topic("orders"))
    assert sorted(found.partitions) == [2]
    assert found.unknown[0] == "broker 1 no longer leads orders-0"
    assert "not hosted here" in found.unknown[1]
    assert found.failures == ()


def test_a_leaderless_partition_shows_dashes_and_asks_nobody():
    image = three_partitions()
    orders = image.topic("orders")
    offline = dataclasses.replace(orders.partitions[0], leader=-1, isr=())
    topic = dataclasses.replace(orders, partitions=(offline, *orders.partitions[1:]))
    image = dataclasses.replace(image, topics_by_id={**image.topics_by_id, topic.topic_id: topic})
    fake = every_leader_answers(image)
    found = logs.topic_logs(backend_over(image, fake), topic)
    assert found.unknown == {0: "no leader"}
    assert all(address_asked != address(image, 1) for address_asked, _ in fake.asked)
    _, page = console_pages.topic_page(CHROME, image, "orders", found)
    row = page.decode()[page.decode().index("<tr><td>0</td>"):]
    assert row[:row.index("</tr>")].count('<td class="num">-</td>') == 4


def test_a_reassignment_shows_what_each_adding_replica_still_has_to_copy():
    image = three_partitions(moving=True)
    fake = every_leader_answers(image)
    fake.logs[(address(image, 1), "orders", 2)] = replica_log("orders", 2, False, 30, 250, 255, 2048)
    found = logs.topic_logs(backend_over(image, fake), image.topic("orders"))
    [progress] = found.progress[2]
    assert (progress.broker_id, progress.log_end_offset, progress.offsets_left, progress.bytes_left) == (1, 255, 50, 10240)
    assert sorted(fake.asked)[0] == (address(image, 1), [("orders", 0), ("orders", 2)])   # one call per broker
    _, page = console_pages.topic_page(CHROME, image, "orders", found)
    assert "<td>0/1 new replicas in sync</td><td>1: 50 offsets, 10,240 bytes left</td>" in page.decode()
    fake.silent.add(address(image, 1))
    try:
        late = logs.topic_logs(backend_over(image, fake), image.topic("orders"), budget_s=0.3)
    finally:
        fake.release()
    [unknown] = late.progress[2]
    assert unknown.offsets_left is None and "no answer within" in unknown.error
    _, page = console_pages.topic_page(CHROME, image, "orders", late)
    assert "<td>1: ? (broker 1 at" in page.decode()
