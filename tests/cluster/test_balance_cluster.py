"""Self-balancing on a real cluster: a broker joins and gets replicas, another is decommissioned.

Goal (issue 19, self-balancing): with auto.balance.enable on (the default) the active controller
moves replicas onto a broker that joins and off a broker marked with `freshet broker decommission`,
as bounded batches of reassignments, while an acks=all idempotent producer keeps writing; the
producer sees only retriable errors (if any reach it) and every acknowledged record is read back
exactly once, in order, at its acknowledged offset.
Method: 3 combined nodes (the Raft voters) and a 4th broker-only node started later; one topic of
6 partitions, replication factor 3; a producer thread writes small records at a bounded rate the
whole time. Broker 4 starts -> wait (bounded) until it holds its share of replicas and leads some;
`freshet broker decommission 2` (the CLI) -> wait until `freshet broker list` shows broker 2
decommissioned with 0 replicas; restart the active controller and broker 2: the mark survives;
then stop the producer and read every partition from offset 0.
Reference: Kafka's reassignment steps (KIP-455) and Cruise Control's broker add/remove.
"""

from __future__ import annotations

import json
import pathlib
import threading
import time

import pytest
from freshet.client import Admin, Consumer, Producer, TopicPartition
from freshet.client.admin_results import ConfigResource
from freshet.client.errors import FreshetError

from tests.support.cli_harness import one_error_line, run_cli
from tests.support.node_cluster import NodeCluster
from tests.support.waiting import wait_until

pytestmark = pytest.mark.cluster

TOPIC = "moving"
PARTITIONS = 6
PRELOAD_BYTES_PER_PARTITION = 1536 * 1024      # what each move copies (plus what the producer adds)
THROTTLE_BYTES_PER_SECOND = 1024 * 1024


class ProducerLoop:
    """An acks=all idempotent producer writing "<partition>:<seq>" records round robin in small
    rounds until stopped; remembers what was acknowledged and every error. Thread-safe enough:
    the test thread reads the lists only after `stop()` joined the thread."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.acknowledged: list[tuple[int, int, bytes]] = []     # (partition, offset, value)
        self.errors: list[FreshetError] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="producer-loop", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        sequence = 0
        with Producer(self.bootstrap, acks="all", enable_idempotence=True, linger_ms=5) as producer:
            while not self._stop.is_set():
                pending = []
                for _ in range(PARTITIONS * 4):
                    partition = sequence % PARTITIONS
                    value = f"{partition}:{sequence:08d}:".encode() + b"x" * 200
                    pending.append((partition, value, producer.send(TOPIC, value=value, partition=partition)))
                    sequence += 1
                for partition, value, future in pending:
                    try:
                        metadata = future.result(120)
                    except FreshetError as error:
                        self.errors.append(error)
                        continue
                    assert metadata.partition == partition
                    self.acknowledged.append((partition, metadata.offset, value))
                time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(180)
        assert not self._thread.is_alive(), "the producer did not finish"


def _brokers(admin: Admin) -> dict[int, object]:
    return {b.node.node_id: b for b in admin.describe_cluster().brokers}


def _no_reassignment(admin: Admin) -> bool:
    return not admin.list_partition_reassignments()


class DiskSampler:
    """Samples the bytes of TOPIC's log segments under one node's data dir every 0.1 s (the bytes a
    new replica has received), on a thread until stopped."""

    def __init__(self, data_dir: pathlib.Path) -> None:
        self.data_dir = data_dir
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="disk-sampler", daemon=True)
        self._thread.start()

    def _bytes(self) -> int:
        total = 0
        for path in self.data_dir.rglob("*.log"):
            if path.parent.name.startswith(TOPIC + "-"):
                try:
                    total += path.stat().st_size
                except OSError:
                    pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self._bytes()))
            time.sleep(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def rate(self) -> tuple[float, int, float]:
        """(bytes/s, bytes, seconds) from the first byte to 95% of the last sample's bytes."""
        final = self.samples[-1][1]
        first = next(i for i, (_, size) in enumerate(self.samples) if size > 0)
        last = next(i for i, (_, size) in enumerate(self.samples) if size >= 0.95 * final)
        (t0, b0), (t1, b1) = self.samples[max(0, first - 1)], self.samples[last]
        return (b1 - b0) / (t1 - t0), b1 - b0, t1 - t0


def _preload(bootstrap: str) -> None:
    value = b"p" * 1024
    with Producer(bootstrap, acks="all", linger_ms=20, batch_size=65536) as producer:
        for partition in range(PARTITIONS):
            for _ in range(PRELOAD_BYTES_PER_PARTITION // len(value)):
                producer.send(TOPIC, value=value, partition=partition)
        producer.flush()


def _broker_rows(bootstrap: str) -> dict[int, dict]:
    """`freshet broker list --output json` by broker id."""
    listed = run_cli(["broker", "list", "--output", "json"], bootstrap)
    assert listed.returncode == 0, listed.stderr
    return {row["id"]: row for row in json.loads(listed.stdout)}


def _metric(cluster: NodeCluster, node_id: int, name: str) -> float:
    """One unlabelled sample of node `node_id`'s /metrics."""
    answer = cluster.http(node_id, "/metrics")
    assert answer is not None and answer[0] == 200
    for line in answer[1].splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"node {node_id} exports no {name}")


def _balancer_row(bootstrap: str) -> dict | None:
    """The first balancer reassignment `freshet partition reassign --verify -o json` lists."""
    listed = run_cli(["partition", "reassign", "--verify", "-o", "json"], bootstrap)
    assert listed.returncode == 0, listed.stderr
    return next((row for row in json.loads(listed.stdout) if row["started_by"] == "balancer"), None)


def _read_all(bootstrap: str, ends: dict[int, int]) -> dict[int, list[tuple[int, bytes]]]:
    """Every record of every partition, [0, end), as (offset, value)."""
    found: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(PARTITIONS)}
    with Consumer(bootstrap, enable_auto_commit=False) as consumer:
        consumer.assign([TopicPartition(TOPIC, p) for p in range(PARTITIONS)])
        consumer.seek_to_beginning()
        deadline = time.monotonic() + 60
        while any(len(found[p]) < ends[p] for p in found) and time.monotonic() < deadline:
            for record in consumer.poll(timeout_ms=500):
                found[record.partition].append((record.offset, record.value))
    return found


def _join(cluster: NodeCluster, admin: Admin, bootstrap: str, tmp_path: pathlib.Path) -> float:
    """Start broker 4; check --verify lists the balancer's throttled move with its progress, that
    broker 4 gets its share and leads some, and the bytes/s it received. Returns the seconds taken."""
    started = time.monotonic()
    sampler = DiskSampler(tmp_path / "node-4")
    cluster.start(4, "broker")
    cluster.wait_ready([4])
    # `partition reassign --verify` without a plan lists the balancer's move and its progress.
    moving = wait_until(lambda: _balancer_row(bootstrap), 30, "a balancer move listed by --verify", 0.1)
    assert moving["adding_replicas"] == [4] and len(moving["removing_replicas"]) == 1
    [progress] = moving["progress"]
    assert progress["broker"] == 4 and progress["error"] is None, progress
    assert progress["offsets_left"] >= 0 and progress["bytes_left"] >= 0
    wait_until(
        lambda: _brokers(admin).get(4) is not None
        and _brokers(admin)[4].replica_count >= 4
        and _brokers(admin)[4].leader_count >= 1
        and _no_reassignment(admin),
        60,
        "broker 4 to hold its share of replicas (>= 4 of 18) and lead some",
        0.2,
    )
    join_s = time.monotonic() - started
    sampler.stop()
    rate, copied, seconds = sampler.rate()
    print(f"broker 4 received {copied} bytes in {seconds:.1f} s: {rate / 1024:.0f} KiB/s "
          f"(throttle {THROTTLE_BYTES_PER_SECOND // 1024} KiB/s)")
    assert copied >= 4 * PRELOAD_BYTES_PER_PARTITION
    assert 0.5 * THROTTLE_BYTES_PER_SECOND <= rate <= 1.25 * THROTTLE_BYTES_PER_SECOND
    throttled = sum(_metric(cluster, n, "freshet_replication_throttled_bytes_total") for n in (1, 2, 3))
    assert throttled >= 3 * PRELOAD_BYTES_PER_PARTITION, throttled      # the copies went through it
    return join_s


def _decommission_stopped_and_cancelled(admin: Admin, bootstrap: str) -> None:
    """Decommission broker 2 with the balancer switched off: nothing moves until it is on again;
    then the user stops it again and cancels the (throttled) move in progress."""
    unknown = run_cli(["broker", "decommission", "9"], bootstrap)
    assert unknown.returncode == 1 and "broker 9 is not registered" in one_error_line(unknown)
    admin.alter_configs(ConfigResource.cluster(), set={"auto.balance.enable": "false"})
    result = run_cli(["broker", "decommission", "2"], bootstrap)
    assert result.returncode == 0, result.stderr
    assert "decommissioning" in result.stdout
    time.sleep(1.0)
    assert _no_reassignment(admin) and _brokers(admin)[2].replica_count > 0
    admin.alter_configs(ConfigResource.cluster(), set={"auto.balance.enable": "true"})
    wait_until(lambda: not _no_reassignment(admin), 15, "the balancer to start moving off broker 2", 0.05)
    admin.alter_configs(ConfigResource.cluster(), set={"auto.balance.enable": "false"})
    cancelled = run_cli(["partition", "reassign", "--cancel", "-o", "json"], bootstrap)
    assert cancelled.returncode == 0, cancelled.stderr
    assert [row["result"] for row in json.loads(cancelled.stdout)] == ["ok"]
    assert _no_reassignment(admin) and _brokers(admin)[2].replica_count > 0
    nothing = run_cli(["partition", "reassign", "--verify"], bootstrap)
    assert nothing.returncode == 0 and "no reassignment in progress" in nothing.stdout


def _decommission(cluster: NodeCluster, admin: Admin, bootstrap: str) -> float:
    """Unthrottled, five moves at a time, balancer on: broker 2 empties. Returns the seconds taken."""
    started = time.monotonic()
    admin.alter_configs(ConfigResource.cluster(), delete=[
        "replication.throttle.bytes.per.second", "auto.balance.max.concurrent.moves", "auto.balance.enable",
    ])

    def decommissioned():
        rows = _broker_rows(bootstrap)
        return rows if rows[2]["state"] == "decommissioned" and rows[2]["replicas"] == 0 else None

    rows = wait_until(decommissioned, 60, "broker 2 to end with 0 replicas", 0.5)
    leave_s = time.monotonic() - started
    assert rows[2]["leaders"] == 0
    assert sum(row["replicas"] for row in rows.values()) == PARTITIONS * 3
    assert all(rows[n]["state"] == "active" for n in (1, 3, 4))
    assert rows[4]["bytes"] >= 4 * PRELOAD_BYTES_PER_PARTITION, rows[4]        # what it received, on disk
    assert _metric(cluster, 1, "freshet_decommissioning_broker_count") == 1
    # Placement never chooses a decommissioning broker for new topics.
    admin.create_topic("after", partitions=3, replication_factor=3)
    placed = admin.describe_topics(["after"], with_offsets=False)[0]
    assert all(2 not in p.replicas for p in placed.partitions)
    return leave_s


def _generate(bootstrap: str, tmp_path: pathlib.Path) -> None:
    """--generate proposes, on the same planner, a plan that --file reads."""
    topics_file = tmp_path / "topics.json"
    topics_file.write_text(json.dumps({"version": 1, "topics": [{"topic": TOPIC}]}))
    generate = ["partition", "reassign", "--generate", "--topics-to-move-json-file", str(topics_file), "--broker-list"]
    generated = run_cli([*generate, "1,2,3,4", "-o", "json"], bootstrap)
    assert generated.returncode == 0, generated.stderr
    document = json.loads(generated.stdout)
    assert [p["partition"] for p in document["current"]["partitions"]] == list(range(PARTITIONS))
    assert all(len(p["replicas"]) == 3 for p in document["proposed"]["partitions"])
    # Balanced among 1, 3, 4; broker 2 (empty) gets its share back because it is listed.
    assert sum(2 in p["replicas"] for p in document["proposed"]["partitions"]) >= 4
    refused = run_cli([*generate, "1,3"], bootstrap)
    assert refused.returncode == 1
    assert "replication factor: 3 larger than available brokers: 2" in one_error_line(refused)


def _failover_keeps_the_mark(cluster: NodeCluster, bootstrap: str) -> None:
    """Stop the active controller and broker 2 (SIGTERM), start them again: the decommissioning
    mark is metadata, so broker 2 registers again still decommissioned, and the new controller's
    balancer puts nothing back on it."""
    controller = cluster.active_controller([1, 2, 3])
    for node_id in sorted({controller, 2}):
        assert cluster.processes[node_id].terminate(30) == 0
    for node_id in sorted({controller, 2}):
        cluster.start(node_id)
    cluster.wait_ready([1, 2, 3, 4])
    assert cluster.active_controller([1, 2, 3]) in (1, 2, 3)

    def settled():
        rows = _broker_rows(bootstrap)
        return rows if all(rows[n]["state"] == "active" for n in (1, 3, 4)) and rows[2]["state"] == "decommissioned" else None

    wait_until(settled, 60, "every broker back, broker 2 still decommissioned", 0.5)
    time.sleep(2.0)                                     # a balancer that forgot would move now
    rows = settled()
    assert rows is not None and rows[2]["replicas"] == 0 and rows[2]["is_decommissioning"], rows


def _check_everything_acknowledged_is_read_once_in_order(bootstrap: str, producer: ProducerLoop) -> None:
    ends: dict[int, int] = {p: 0 for p in range(PARTITIONS)}
    for partition, offset, _ in producer.acknowledged:
        ends[partition] = max(ends[partition], offset + 1)
    found = _read_all(bootstrap, ends)
    for partition in range(PARTITIONS):
        values = [value for _, value in sorted(found[partition]) if not value.startswith(b"p")]   # not the preload
        assert len(values) == len(set(values)), f"partition {partition}: a record appears twice"
        sequences = [int(value.split(b":")[1]) for value in values]
        assert sequences == sorted(sequences), f"partition {partition}: records out of order"
    for partition, offset, value in producer.acknowledged:
        assert found[partition] and dict(found[partition]).get(offset) == value, (
            f"acknowledged record {partition}@{offset} is missing or different"
        )


def test_balancer_fills_a_new_broker_and_empties_a_decommissioned_one_without_losing_acks(tmp_path):
    with NodeCluster(tmp_path, controllers=3, extra_nodes=1, auto_balance=True) as cluster:
        for node_id in (1, 2, 3):
            cluster.start(node_id)
        cluster.wait_ready([1, 2, 3])
        bootstrap = ",".join(f"127.0.0.1:{cluster.ports[n]}" for n in (1, 2, 3))
        admin = Admin(bootstrap)
        admin.create_topic(TOPIC, partitions=PARTITIONS, replication_factor=3, configs={"min.insync.replicas": "2"})
        _preload(bootstrap)
        # One move at a time, throttled: bytes/s into the new replica should stay near the rate.
        admin.alter_configs(ConfigResource.cluster(), set={
            "replication.throttle.bytes.per.second": str(THROTTLE_BYTES_PER_SECOND),
            "auto.balance.max.concurrent.moves": "1",
        })
        producer = ProducerLoop(bootstrap)
        producer.start()
        try:
            wait_until(lambda: len(producer.acknowledged) > 200, 30, "the producer's first acknowledgements")
            join_s = _join(cluster, admin, bootstrap, tmp_path)
            _decommission_stopped_and_cancelled(admin, bootstrap)
            leave_s = _decommission(cluster, admin, bootstrap)
            _generate(bootstrap, tmp_path)
            _failover_keeps_the_mark(cluster, bootstrap)
        finally:
            producer.stop()
            admin.close()
        print(f"broker 4 got its share in {join_s:.1f} s; broker 2 emptied in {leave_s:.1f} s; "
              f"{len(producer.acknowledged)} records acknowledged, {len(producer.errors)} errors")
        assert all(error.retriable for error in producer.errors), [repr(e) for e in producer.errors]
        _check_everything_acknowledged_is_read_once_in_order(bootstrap, producer)
