"""Controller benchmark (issue 4): topic creation, controller failover, partition leader failover.

Usage:
    .venv/bin/python -m tests.bench.controller_perf [--rounds 10] [--topics 5] [--partitions 1000]

Runs real `freshet server start` processes (3 combined nodes, default settings) on loopback and
prints one JSON line on stdout (progress on stderr):

- create_topic: a topic of --partitions partitions, RF 3, through a node that is not the active
  controller (so the request is forwarded): the CreateTopics call (committed in the metadata
  log), and until all three brokers host their replicas (logs created on disk); --topics runs.
- controller_failover: --rounds kill -9s of the active controller: the time until a survivor
  reports itself active controller (HTTP /status), and until a write through a survivor
  succeeds (a CreateTopics forwarded to the new controller). The killed node is restarted
  between rounds.
- leader_failover: --rounds kill -9s of a broker that is not the active controller and leads 10
  partitions (of a topic placed on it for that round): the time until the metadata log (watched
  by WatchMetadata, as brokers see it) shows every one of them led by another broker.
- leader_failover_on_the_controller_node: the same when the killed combined node is also the
  active controller (a controller failover first; the new controller gives that broker only the
  takeover grace because its voter is unreachable).

Percentiles are nearest-rank: with 10 samples p99 is the maximum.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import pathlib
import platform
import statistics
import sys
import tempfile
import time

from tests.support.node_cluster import MetadataRecorder, NodeCluster
from tests.support.waiting import wait_until


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def summary(values: list[float]) -> dict:
    return {
        "samples": len(values),
        "p50_s": round(percentile(values, 0.5), 3),
        "p99_s": round(percentile(values, 0.99), 3),
        "max_s": round(max(values), 3),
        "mean_s": round(statistics.fmean(values), 3),
    }


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def hosted(cluster: NodeCluster, node_id: int, topic: str) -> int:
    status = cluster.status(node_id)
    return 0 if status is None else sum(1 for r in status["replicas"] if r["topic"] == topic)


def bench_create(cluster: NodeCluster, topics: int, partitions: int) -> dict:
    calls, hosted_all = [], []
    for number in range(topics):
        controller = cluster.active_controller()
        via = next(n for n in cluster.alive() if n != controller)
        name = f"bench-{number}"
        started = time.monotonic()
        response = cluster.create_topic(via, name, partitions, 3, timeout_s=60)
        calls.append(time.monotonic() - started)
        assert response.results[0].error.code == 0, response
        wait_until(lambda name=name: all(hosted(cluster, n, name) == partitions for n in cluster.alive()), 120, "replicas", 0.02)
        hosted_all.append(time.monotonic() - started)
        progress(f"create {partitions} partitions: call {calls[-1]:.3f} s, hosted everywhere {hosted_all[-1]:.3f} s")
    return {"partitions": partitions, "replication_factor": 3, "call": summary(calls), "hosted_on_every_broker": summary(hosted_all)}


def bench_controller_failover(cluster: NodeCluster, rounds: int) -> dict:
    active, writable = [], []
    for number in range(rounds):
        victim = cluster.active_controller()
        survivors = [n for n in cluster.alive() if n != victim]
        started = time.monotonic()
        cluster.processes[victim].kill()
        cluster.active_controller(among=survivors, timeout_s=20)
        active.append(time.monotonic() - started)
        response = cluster.create_topic(survivors[0], f"after-failover-{number}", 1, 1, request_id=f"after-failover-{number}", timeout_s=20)
        assert response.results[0].error.code == 0, response
        writable.append(time.monotonic() - started)
        progress(f"controller failover {number + 1}: active {active[-1]:.3f} s, first write {writable[-1]:.3f} s")
        cluster.start(victim)
        cluster.wait_ready()
    return {"kills": rounds, "new_active_controller": summary(active), "first_write_through_a_survivor": summary(writable)}


def bench_leader_failover(cluster: NodeCluster, recorder: MetadataRecorder, rounds: int, kill_controller: bool) -> dict:
    moved = []
    for number in range(rounds):
        controller = cluster.active_controller()
        victim = controller if kill_controller else next(n for n in cluster.alive() if n != controller)
        others = [n for n in cluster.controller_ids if n != victim]
        topic = f"leaders-{'controller-' if kill_controller else ''}{number}"
        cluster.create_topic(controller, topic, assignments=[[victim, *others]] * 10, timeout_s=30)
        recorder.wait_for(lambda image, t=topic, v=victim: image.topic(t) and all(p.leader == v for p in image.topic(t).partitions), 20, "leaders")
        started = time.monotonic()
        cluster.processes[victim].kill()
        _, seen = recorder.wait_for(
            lambda image, t=topic, v=victim: all(p.leader not in (v, -1) for p in image.topic(t).partitions), 30, "new leaders"
        )
        moved.append(seen - started)
        progress(f"leader failover {number + 1}: {moved[-1]:.3f} s")
        cluster.start(victim)
        cluster.wait_ready()
    return {"kills": rounds, "partitions_per_kill": 10, "all_partitions_have_new_leaders": summary(moved)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--topics", type=int, default=5)
    parser.add_argument("--partitions", type=int, default=1000)
    parser.add_argument("--keep-dir", help="run in this (new) directory and keep the nodes' data and logs")
    options = parser.parse_args()
    with contextlib.ExitStack() as stack:
        if options.keep_dir:
            root = options.keep_dir
            os.makedirs(root)
        else:
            root = stack.enter_context(tempfile.TemporaryDirectory(prefix="freshet-controller-bench-"))
        cluster = stack.enter_context(NodeCluster(pathlib.Path(root)))
        for node_id in cluster.controller_ids:
            cluster.start(node_id)
        cluster.wait_ready()
        recorder = MetadataRecorder(cluster).start()
        try:
            result = {
                "date": time.strftime("%Y-%m-%d"),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "create_topic": bench_create(cluster, options.topics, options.partitions),
                "controller_failover": bench_controller_failover(cluster, options.rounds),
                "leader_failover": bench_leader_failover(cluster, recorder, options.rounds, kill_controller=False),
                "leader_failover_on_the_controller_node": bench_leader_failover(
                    cluster, recorder, options.rounds, kill_controller=True
                ),
            }
        finally:
            recorder.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
