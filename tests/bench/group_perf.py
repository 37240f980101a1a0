"""Consumer-group benchmark on a real 3-node cluster (not a timed test).

Run: .venv/bin/python -m tests.bench.group_perf [--records N] [--size BYTES] [--members M]

Prints one JSON line:
- consume: a one-member group subscribing to a 6-partition RF3 topic holding N records of SIZE
  bytes (acks=all), from subscribe() until every record was returned by poll(): records/s and MB/s
  (the join, the committed-offset lookup and auto commits included);
- settle: a group of M-1 members (threads, one Consumer each) on a 30-partition topic with a
  producer running; one more member joins; `settle_s` is the time from its subscribe() until every
  member owns its final share; `kept_partitions_revoked` counts partitions a member kept but was
  asked to revoke (KIP-848: must be 0); `max_gap_kept_s` is the longest pause between records of a
  kept partition during the settle window (the producer sends every 20 ms per partition).

Compare with the JetStream peer in the same run: ../shared/bench/jetstream_bench.py --replicas 3
--msgs N --size SIZE (its `consume` figure: a pull consumer, fetch batch 1000).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import threading
import time

from freshet.client import Consumer, ConsumerRebalanceListener, Producer

from tests.support.node_cluster import NodeCluster
from tests.support.waiting import wait_until


def measure_consume(bootstrap: str, cluster: NodeCluster, records: int, size: int) -> dict:
    cluster.create_topic(1, "perf-consume", 6, 3)
    value = b"x" * size
    with Producer(bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024) as producer:
        for n in range(records):
            producer.send("perf-consume", value=value, partition=n % 6)
        producer.flush()
    with Consumer(bootstrap, group_id="perf", auto_offset_reset="earliest", max_poll_records=5000) as consumer:
        started = time.perf_counter()
        consumer.subscribe(["perf-consume"])
        got = 0
        first_at = None
        while got < records:
            batch = consumer.poll(timeout_ms=1000)
            if batch and first_at is None:
                first_at = time.perf_counter()
            got += len(batch)
        elapsed = time.perf_counter() - started
    return {
        "records": records,
        "size": size,
        "seconds": round(elapsed, 3),
        "records_per_s": round(records / elapsed),
        "mb_per_s": round(records * size / elapsed / 1e6, 1),
        "first_record_after_s": round(first_at - started, 3),
        "records_per_s_after_first": round(records / (time.perf_counter() - first_at)) if first_at else None,
    }


class Member(ConsumerRebalanceListener):
    def __init__(self, bootstrap: str, name: str) -> None:
        self.name = name
        self.owned: set = set()
        self.revoked: list[set] = []
        self.arrivals: dict[int, list[float]] = {}
        self.lock = threading.Lock()
        self.consumer = Consumer(bootstrap, group_id="settle", auto_offset_reset="latest", fetch_max_wait_ms=100,
                                 session_timeout_ms=10000)
        self.stop = threading.Event()
        self.consumer.subscribe(["perf-settle"], listener=self)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def on_partitions_assigned(self, assigned):
        with self.lock:
            self.owned |= assigned

    def on_partitions_revoked(self, revoked):
        with self.lock:
            self.owned -= revoked
            self.revoked.append(set(revoked))

    def _run(self) -> None:
        while not self.stop.is_set():
            for record in self.consumer.poll(timeout_ms=100):
                self.arrivals.setdefault(record.partition, []).append(time.monotonic())

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.consumer.close()


def measure_settle(bootstrap: str, cluster: NodeCluster, members: int) -> dict:
    partitions = 30
    cluster.create_topic(1, "perf-settle", partitions, 3)
    stop = threading.Event()

    def produce():
        with Producer(bootstrap, acks=1, linger_ms=1) as producer:
            while not stop.is_set():
                for partition in range(partitions):
                    producer.send("perf-settle", value=b"s", partition=partition)
                time.sleep(0.02)

    producer_thread = threading.Thread(target=produce, daemon=True)
    producer_thread.start()
    group = [Member(bootstrap, f"m{i}") for i in range(members - 1)]
    try:
        share = partitions // (members - 1)
        wait_until(
            lambda: sum(len(m.owned) for m in group) == partitions and all(len(m.owned) in (share, share + 1) for m in group),
            120, "initial group stable", 0.05,
        )
        time.sleep(1.0)
        before = {m.name: set(m.owned) for m in group}
        revoked_before = {m.name: len(m.revoked) for m in group}
        joined_at = time.monotonic()
        newcomer = Member(bootstrap, "joiner")
        group.append(newcomer)
        final = partitions // members
        wait_until(
            lambda: sum(len(m.owned) for m in group) == partitions
            and all(final <= len(m.owned) <= final + 1 for m in group),
            60, "group settled after the join", 0.005,
        )
        settle_s = time.monotonic() - joined_at
        kept_revoked = 0
        max_gap = 0.0
        for member in group[:-1]:
            kept = member.owned & before[member.name]
            for revoked in member.revoked[revoked_before[member.name]:]:
                kept_revoked += len(revoked & kept)
            for tp in kept:
                times = [t for t in member.arrivals.get(tp.partition, []) if joined_at - 0.5 <= t <= joined_at + settle_s + 0.5]
                gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
                if gaps:
                    max_gap = max(max_gap, max(gaps))
        return {
            "members_after_join": members,
            "partitions": partitions,
            "settle_s": round(settle_s, 3),
            "kept_partitions_revoked": kept_revoked,
            "max_gap_kept_s": round(max_gap, 3),
        }
    finally:
        stop.set()
        producer_thread.join(10)
        for member in group:
            member.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--members", type=int, default=10)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="group-perf-") as root, NodeCluster(pathlib.Path(root)) as cluster:
        for node_id in (1, 2, 3):
            cluster.start(node_id)
        cluster.wait_ready()
        bootstrap = ",".join(f"127.0.0.1:{cluster.ports[n]}" for n in (1, 2, 3))
        consume = measure_consume(bootstrap, cluster, options.records, options.size)
        print(f"consume: {consume}", file=sys.stderr)
        settle = measure_settle(bootstrap, cluster, options.members)
        print(json.dumps({"bench": "freshet-groups", "consume": consume, "settle": settle}))


if __name__ == "__main__":
    main()
