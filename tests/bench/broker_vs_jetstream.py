"""Freshet vs the NATS JetStream R3 peer, in the same run on the same machine (not a test).

    .venv/bin/python -m tests.bench.broker_vs_jetstream [--msgs 200000] [--size 1024] [--lat-samples 2000]

Steps: wait for an idle machine (../shared/bench/wait_quiet.py); run the peer
(../shared/bench/jetstream_bench.py with its venv, /tmp/peers-venv, made by setup.sh: R3 and R1
file streams, async publish with at most 4000 acks outstanding, pull consume, sync-publish
latency); then `freshet cluster up --nodes 3` in a temp dir and, for a one-partition topic with
RF=3 (min.insync.replicas=2) and one with RF=1 (the peer's stream is one ordered log too):
`freshet perf produce --acks all` (async, the SDK's pipelining), `perf produce --sync` (one
record at a time, the peer's latency phase), `perf consume`. Server CPU per message comes from
/proc for the three node processes, as the peer's bench measures its servers, also per node
(`node_cpu_us_per_msg`, in `node_ids` order; `leader` names the partition's leader).

Prints ONE JSON line: both sides' figures and the ratios freshet/peer (throughput: higher is
better; latency: lower is better). Progress on stderr. Every process started is stopped by pid;
the temp dir is removed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import grpc
from freshet.v1 import broker_pb2, broker_pb2_grpc, controller_pb2, controller_pb2_grpc

REPO = pathlib.Path(__file__).resolve().parents[2]
BENCH = (REPO / ".." / "shared" / "bench").resolve()
PEER_PYTHON = os.environ.get("PEERS_PYTHON", "/tmp/peers-venv/bin/python")
FRESHET = str(pathlib.Path(sys.executable).with_name("freshet"))
CLK = os.sysconf("SC_CLK_TCK")


def log(*parts) -> None:
    print(f"[{pathlib.Path(sys.argv[0]).stem}]", *parts, file=sys.stderr, flush=True)


def proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def free_base_port(first: int = 21000) -> int:
    """A base port from `first` on whose 3 nodes' gRPC, Raft, HTTP and Kafka ports (base+(i-1)*10+0..3)
    are all free (at the time of asking: benchmarks of other branches on the machine scan too)."""
    for base in range(first, first + 9000, 37):
        ports = [base + i * 10 + j for i in range(3) for j in range(4)]
        sockets = []
        try:
            for port in ports:
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free port block")


def machine_ticks() -> list[int]:
    """/proc/stat's aggregate line: user nice system idle iowait irq softirq steal."""
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:9]]


def busy_cores(before: list[int], after: list[int]) -> float:
    """Cores busy on the whole machine between two `machine_ticks()` (idle and iowait excluded)."""
    d = [y - x for x, y in zip(before, after, strict=True)]
    return (sum(d) - d[3] - d[4]) / (sum(d) or 1) * (os.cpu_count() or 1)


def preflight_busy_cores(seconds: float = 2.0) -> float:
    """Cores busy on the whole machine over a short sample before we start anything (other jobs)."""
    before = machine_ticks()
    time.sleep(seconds)
    return round(busy_cores(before, machine_ticks()), 2)


def run_json(argv: list[str], timeout_s: float) -> dict:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"{argv[:4]} printed no JSON (exit {done.returncode}): {done.stderr[-2000:]}")
    return json.loads(lines[-1])


def children_cpu_s() -> float:
    """User+system CPU seconds of this process's waited-for children (the perf clients)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measured(argv: list[str], pids: list[int], timeout_s: float = 300) -> dict:
    """Run one client phase (a child printing one JSON line with "records") and add what /proc
    saw: the 3 servers' CPU, the whole client process's CPU (startup included; the client's own
    in-phase figure is its "client_cpu_us_per_record"), and the cores busy with anything else."""
    os.sync()
    time.sleep(0.5)
    nodes_before, client_before, ticks_before, wall_before = (
        [proc_cpu_s(pid) for pid in pids], children_cpu_s(), machine_ticks(), time.monotonic())
    result = run_json(argv, timeout_s)
    nodes = [proc_cpu_s(pid) - before for pid, before in zip(pids, nodes_before, strict=True)]
    servers = sum(nodes)
    client = children_cpu_s() - client_before
    wall = time.monotonic() - wall_before
    records = max(result["records"], 1)
    result["servers_cpu_s"] = round(servers, 2)
    result["servers_cpu_us_per_msg"] = round(servers / records * 1e6, 1)
    result["node_cpu_us_per_msg"] = [round(seconds / records * 1e6, 1) for seconds in nodes]   # in `pids` order
    result["client_process_cpu_s"] = round(client, 2)
    result["client_process_cpu_us_per_msg"] = round(client / records * 1e6, 1)
    result["other_cores_busy"] = round(max(0.0, busy_cores(ticks_before, machine_ticks()) - (servers + client) / wall), 2)
    return result


@contextlib.contextmanager
def local_cluster(tmp: str, first_port: int = 21000):
    """`freshet cluster up --nodes 3 --json` in a temp dir under `tmp`, on ports from `first_port` on:
    yields its JSON line (with "pids" and "admin", a Controller stub on node 1, added); on exit
    stops it by pid and removes the dir."""
    directory = tempfile.mkdtemp(prefix="freshet-bench-", dir=tmp)
    cluster = subprocess.Popen(
        [FRESHET, "cluster", "up", "--nodes", "3", "--data-dir", directory, "--base-port", str(free_base_port(first_port)), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    channel = None
    try:
        info = json.loads(cluster.stdout.readline())
        info["pids"] = [node["pid"] for node in info["nodes"]]
        channel = grpc.insecure_channel(info["bootstrap"].split(",")[0])
        info["admin"] = controller_pb2_grpc.ControllerStub(channel)
        yield info
    finally:
        if channel is not None:
            channel.close()
        cluster.send_signal(signal.SIGTERM)
        try:
            cluster.wait(60)
        except subprocess.TimeoutExpired:
            cluster.kill()
        shutil.rmtree(directory, ignore_errors=True)


def create_topic(admin, topic: str, replicas: int, partitions: int = 1) -> None:
    """A topic (one partition unless told) with `replicas` replicas and min.insync.replicas=min(2, replicas)."""
    creatable = controller_pb2.CreatableTopic(name=topic, num_partitions=partitions, replication_factor=replicas)
    creatable.configs.add(key="min.insync.replicas", value=str(min(2, replicas)))
    answer = admin.CreateTopics(controller_pb2.CreateTopicsRequest(topics=[creatable]), timeout=30)
    assert answer.results[0].error.code == 0, answer
    time.sleep(1.0)


def topic_leader(bootstrap: str, topic: str) -> int:
    """The node id leading partition 0 of `topic` (Broker.Metadata)."""
    with grpc.insecure_channel(bootstrap.split(",")[0]) as channel:
        answer = broker_pb2_grpc.BrokerStub(channel).Metadata(broker_pb2.MetadataRequest(topics=[topic]), timeout=10)
    return answer.topics[0].partitions[0].leader_id


#: The SDK publisher's batch size: kafka_client_perf's default too, and `perf produce`'s until
#: bytes6 (now 1,000,000), so the peer comparisons and their history stay like for like.
PUBLISH_BATCH = ["--batch-size", "262144"]


def sdk_phases(bootstrap: str, topic: str, args) -> list[tuple[str, list[str]]]:
    """(phase, argv) of the Freshet SDK over gRPC: `perf produce --acks all`, `perf consume`, `perf produce --sync`."""
    common = ["--topic", topic, "--record-size", str(args.size), "--bootstrap-server", bootstrap, "--json"]
    return [
        ("publish", [FRESHET, "perf", "produce", "--num-records", str(args.msgs), "--acks", "all", *PUBLISH_BATCH, *common]),
        ("consume", [FRESHET, "perf", "consume", "--topic", topic, "--messages", str(args.msgs),
                     "--bootstrap-server", bootstrap, "--json"]),
        ("latency", [FRESHET, "perf", "produce", "--num-records", str(args.lat_samples), "--acks", "all", "--sync", *common]),
    ]


def run_phases(phases: list[tuple[str, list[str]]], pids: list[int], label: str) -> dict:
    entry: dict = {}
    for phase, argv in phases:
        log(f"{label} {phase}")
        result = measured(argv, pids)
        entry[phase] = result
        log(f"  {json.dumps({k: result.get(k) for k in ('records_per_s', 'mb_per_s', 'p50_ms', 'p99_ms', 'other_cores_busy')})}")
    return entry


def freshet_side(args) -> dict:
    out: dict = {"runs": []}
    with local_cluster(args.tmp) as cluster:
        for replicas in (3, 1):
            topic = f"bench-r{replicas}"
            create_topic(cluster["admin"], topic, replicas)
            leader = topic_leader(cluster["bootstrap"], topic)
            phases = run_phases(sdk_phases(cluster["bootstrap"], topic, args), cluster["pids"], f"RF={replicas}")
            out["runs"].append({"replicas": replicas, "leader": leader, "node_ids": [n["id"] for n in cluster["nodes"]], **phases})
    return out


def wait_for_quiet(args) -> None:
    """Wait (at most --max-wait s) for an idle machine unless --skip-wait, then sample the load
    other jobs put on it into `args.preflight_busy_cores` (it goes into the JSON line)."""
    if not args.skip_wait:
        subprocess.run([sys.executable, str(BENCH / "wait_quiet.py"), "--max-wait", str(args.max_wait)], check=False)
    args.preflight_busy_cores = preflight_busy_cores()
    log(f"machine busy before the run: {args.preflight_busy_cores} cores")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--msgs", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--lat-samples", type=int, default=2000)
    parser.add_argument("--tmp", default="/tmp")
    parser.add_argument("--skip-wait", action="store_true", help="do not wait for an idle machine")
    parser.add_argument("--max-wait", type=float, default=180, help="give up waiting for an idle machine after this many s")
    parser.add_argument("--out", help="also write the JSON line to this file (tests/bench/results/...)")
    parser.add_argument("--peer-max-seconds", type=int, default=170,
                        help="the peer's hard time limit (its --max-seconds; raise it on a loaded machine)")
    args = parser.parse_args()
    wait_for_quiet(args)
    log("JetStream peer")
    peer = run_json([PEER_PYTHON, str(BENCH / "jetstream_bench.py"), "--msgs", str(args.msgs), "--size", str(args.size),
                     "--windows", "4000", "--replicas", "3,1", "--lat-samples", str(args.lat_samples),
                     "--max-seconds", str(args.peer_max_seconds)], args.peer_max_seconds + 30)
    log("Freshet")
    ours = freshet_side(args)
    ratios = {}
    for mine in ours["runs"]:
        theirs = next((r for r in peer.get("runs", []) if r["replicas"] == mine["replicas"]), None)
        if theirs is None:
            continue
        publish, consume, latency = theirs["publish"][-1], theirs["consume"][-1], theirs.get("latency", {})
        ratios[f"R{mine['replicas']}"] = {
            "publish_msgs_per_s": round(mine["publish"]["records_per_s"] / publish["msgs_per_s"], 2),
            "consume_msgs_per_s": round(mine["consume"]["records_per_s"] / consume["msgs_per_s"], 2),
            "sync_p50": round(mine["latency"]["p50_ms"] * 1000 / latency["p50_us"], 2) if latency else None,
            "sync_p99": round(mine["latency"]["p99_ms"] * 1000 / latency["p99_us"], 2) if latency else None,
            "publish_servers_cpu_per_msg": round(mine["publish"]["servers_cpu_us_per_msg"] / publish["servers_cpu_us_per_msg"], 2),
        }
    line = json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpus": os.cpu_count(), "msgs": args.msgs,
                       "size": args.size, "waited_for_quiet": not args.skip_wait,
                       "preflight_busy_cores": args.preflight_busy_cores, "jetstream": peer, "freshet": ours,
                       "ratios_freshet_over_peer": ratios})
    if args.out:
        pathlib.Path(args.out).write_text(line + "\n")
    print(line, flush=True)


if __name__ == "__main__":
    main()
