"""Sync produce latency of one Freshet cluster, with each process's CPU per acknowledgement (not a test).

    .venv/bin/python -m tests.bench.sync_latency [--samples 2000] [--rounds 3] [--replicas 3,1]
        [--profile-dir DIR] [--syscalls] [--grpc-floor] [--out FILE]

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
round of each topic. `--syscalls`: one more round per topic under `strace -c -f` on the leader,
one follower and the client, reported as system calls per record by name (futex: thread
hand-offs; write/epoll_wait: wake-ups); strace slows every process, so that round's latencies are
not reported. `--grpc-floor`: the same message pattern with no Freshet code
(tests/bench/grpc_floor.py), for the CPU one message pair costs a process on this machine.

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
import tempfile
import time
import urllib.request

from tests.bench import grpc_floor
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
#: System calls reported by name in the --syscalls round (the rest only in "total").
SYSCALLS_NAMED = ("futex", "write", "read", "epoll_wait", "epoll_pwait", "poll", "sendmsg", "recvmsg",
                  "getpid", "pread64", "pwrite64")


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


def strace_counts(path: str) -> dict[str, int]:
    """Calls per system call from an `strace -c` summary file."""
    counts: dict[str, int] = {}
    for line in pathlib.Path(path).read_text().splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
            counts[fields[-1]] = int(fields[3])
    return counts


def syscalls_round(argv: list[str], nodes: list[dict], leader: int, directory: str) -> dict:
    """One more run of `argv` with `strace -c -f` on the leader, one follower and the client:
    system calls per record of each (SYSCALLS_NAMED by name, all of them in "total")."""
    follower = next((node for node in nodes if node["id"] != leader), None)
    traced = {"leader": next(node for node in nodes if node["id"] == leader)}
    if follower is not None:
        traced["follower"] = follower
    tracers = {
        name: subprocess.Popen(["strace", "-c", "-f", "-o", os.path.join(directory, f"{name}.txt"), "-p", str(node["pid"])],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for name, node in traced.items()
    }
    time.sleep(1.0)                      # strace attaches to every thread first
    try:
        result = run_json(["strace", "-c", "-f", "-o", os.path.join(directory, "client.txt"), *argv], 600)
    finally:
        for tracer in tracers.values():
            tracer.send_signal(2)
            tracer.wait(60)
    records = max(result["records"], 1)
    out = {}
    for name in [*traced, "client"]:
        counts = strace_counts(os.path.join(directory, f"{name}.txt"))
        per_record = {call: round(counts.get(call, 0) / records, 2) for call in SYSCALLS_NAMED}
        per_record["total"] = round(sum(counts.values()) / records, 2)
        out[name] = per_record
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--replicas", default="3,1")
    parser.add_argument("--tmp", default="/tmp")
    parser.add_argument("--profile-dir")
    parser.add_argument("--syscalls", action="store_true", help="one more round per topic under strace -c -f")
    parser.add_argument("--grpc-floor", action="store_true", help="also measure grpc_floor (no Freshet code)")
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
            run = {"replicas": replicas, "leader": leader, "rounds": rounds}
            if args.syscalls:
                with tempfile.TemporaryDirectory(dir=args.tmp) as directory:
                    run["syscalls_per_record"] = syscalls_round(argv, cluster["nodes"], leader, directory)
                log(f"RF={replicas} syscalls per record: {json.dumps(run['syscalls_per_record'])}")
            out["runs"].append(run)
    if args.grpc_floor:
        out["grpc_floor"] = grpc_floor.measure(args.samples, args.size)
        log(f"gRPC floor: {json.dumps(out['grpc_floor'])}")
    line = json.dumps(out)
    if args.out:
        pathlib.Path(args.out).write_text(line + "\n")
    print(line, flush=True)


if __name__ == "__main__":
    main()
