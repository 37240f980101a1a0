"""Sync produce latency of one Freshet cluster, with each process's CPU per acknowledgement (not a test).

    .venv/bin/python -m tests.bench.sync_latency [--samples 2000] [--rounds 3] [--replicas 3,1]
        [--profile-dir DIR] [--out FILE]

What it answers: where the time of one acks=all record goes when a producer sends one record at a
time (`freshet perf produce --sync`), split by process: the partition leader, each follower, the
client. `broker_vs_jetstream` gives the ratio to the peer; this one gives the critical path's
cost, which holds up better than a latency on a shared 2-core machine.

Steps: `freshet cluster up --nodes 3` in a temp dir (broker_vs_jetstream's `local_cluster`), one
one-partition topic per replication factor (min.insync.replicas=min(2, RF)), then `--rounds`
runs of `perf produce --sync` with `--samples` records of `--size` bytes each. Per round: p50/p99
from the client, CPU µs per record of every node (from /proc, named leader / follower by the
topic's metadata) and of the client process, the leader's pushes and acknowledgements per record
(from its /metrics: `freshet_replication_pushes_total`, `freshet_network_requests_total`), and
the cores other jobs kept busy. `--profile-dir`: py-spy (`-f raw`) on the leader during the first
round of each topic.

Prints ONE JSON line (and writes it to --out when given). Every process started is stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import time
import urllib.request

from tests.bench.broker_vs_jetstream import (
    FRESHET,
    busy_cores,
    children_cpu_s,
    create_topic,
    local_cluster,
    log,
    machine_ticks,
    preflight_busy_cores,
    proc_cpu_s,
    run_json,
    topic_leader,
)

PY_SPY = str(pathlib.Path(sys.executable).with_name("py-spy"))


def leader_counters(http: str) -> dict[str, float]:
    """The leader's replication message counters from /metrics (0 when absent)."""
    with urllib.request.urlopen(f"{http}/metrics", timeout=10) as answer:
        text = answer.read().decode()

    def value(pattern: str) -> float:
        return sum(float(m.group(1)) for m in re.finditer(pattern + r"[^\n]* ([0-9.e+]+)\n", text))

    return {
        "pushes": value(r"freshet_replication_pushes_total"),
        "acks": value(r'freshet_network_requests_total\{api="ReplicaFetch"'),
    }


def one_round(argv: list[str], nodes: list[dict], leader: int, samples: int, spy_to: str | None) -> dict:
    leader_node = next(node for node in nodes if node["id"] == leader)
    counters_before = leader_counters(leader_node["http"])
    cpu_before = {node["id"]: proc_cpu_s(node["pid"]) for node in nodes}
    client_before, ticks_before, wall_before = children_cpu_s(), machine_ticks(), time.monotonic()
    spy = None
    if spy_to:
        spy = subprocess.Popen([PY_SPY, "record", "--pid", str(leader_node["pid"]), "-f", "raw", "--nonblocking",
                                "-r", "250", "-o", spy_to], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result = run_json(argv, 300)
    wall = time.monotonic() - wall_before
    if spy is not None:
        spy.send_signal(2)
        spy.wait(30)
    cpu = {node["id"]: proc_cpu_s(node["pid"]) - cpu_before[node["id"]] for node in nodes}
    client = children_cpu_s() - client_before
    counters = leader_counters(leader_node["http"])
    records = max(result["records"], 1)
    per_node = {
        f"{'leader' if node_id == leader else 'follower'}-{node_id}": round(seconds / records * 1e6, 1)
        for node_id, seconds in sorted(cpu.items())
    }
    return {
        "p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"], "records": result["records"],
        "node_cpu_us_per_record": per_node,
        "servers_cpu_us_per_record": round(sum(cpu.values()) / records * 1e6, 1),
        "client_process_cpu_us_per_record": round(client / records * 1e6, 1),
        "leader_pushes_per_record": round((counters["pushes"] - counters_before["pushes"]) / records, 2),
        "leader_acks_received_per_record": round((counters["acks"] - counters_before["acks"]) / records, 2),
        "other_cores_busy": round(max(0.0, busy_cores(ticks_before, machine_ticks()) - (sum(cpu.values()) + client) / wall), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--replicas", default="3,1")
    parser.add_argument("--tmp", default="/tmp")
    parser.add_argument("--profile-dir")
    parser.add_argument("--out")
    args = parser.parse_args()
    preflight = preflight_busy_cores()
    out: dict = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpus": os.cpu_count(), "samples": args.samples,
                 "size": args.size, "preflight_busy_cores": preflight, "runs": []}
    with local_cluster(args.tmp) as cluster:
        for replicas in [int(r) for r in args.replicas.split(",")]:
            topic = f"sync-r{replicas}"
            create_topic(cluster["admin"], topic, replicas)
            leader = topic_leader(cluster["bootstrap"], topic)
            argv = [FRESHET, "perf", "produce", "--topic", topic, "--num-records", str(args.samples), "--record-size",
                    str(args.size), "--acks", "all", "--sync", "--bootstrap-server", cluster["bootstrap"], "--json"]
            rounds = []
            for number in range(args.rounds):
                spy_to = None
                if args.profile_dir and number == 0:
                    os.makedirs(args.profile_dir, exist_ok=True)
                    spy_to = os.path.join(args.profile_dir, f"sync-r{replicas}-leader{leader}.txt")
                rounds.append(one_round(argv, cluster["nodes"], leader, args.samples, spy_to))
                log(f"RF={replicas} round {number}: {json.dumps(rounds[-1])}")
            out["runs"].append({"replicas": replicas, "leader": leader, "rounds": rounds})
    line = json.dumps(out)
    if args.out:
        pathlib.Path(args.out).write_text(line + "\n")
    print(line, flush=True)


if __name__ == "__main__":
    main()
