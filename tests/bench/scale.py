"""Thousands of partitions (issue 18): 3 nodes, one topic of N partitions at RF 3 (not a test).

    .venv/bin/python -m tests.bench.scale [--partitions 1000,5000,20000] [--msgs 100000]
        [--idle-seconds 20] [--skip-wait] [--max-wait 120] [--profile-dir DIR] [--out PATH]

For each N a fresh cluster of 3 combined nodes (`freshet server start` processes from
tests/support/node_cluster.py, default settings as a new user gets them, the replica balancer
on) and, in that cluster, a 3-partition topic beside the N-partition one (both RF 3,
min.insync.replicas=2). Phases, in order, each with the CPU the rest of the machine used
meanwhile (`other_cores_busy`: the machine's busy cores minus the 3 nodes and this process):

- create: the CreateTopics call, and until the topic is fully replicated: every node's
  Metadata shows every partition with a leader and all 3 replicas in the ISR, every node hosts
  its replica in the role the metadata gives it, and every leader knows both followers' log
  end offsets (their ReplicaFetch sessions reached it).
- idle: after a 5 s settle, CPU (cores) of each node over --idle-seconds and its resident memory
  (VmRSS); `cores_per_1000_replicas` is the 3 nodes' cores / (3 N / 1000).
- throughput: `freshet perf produce --acks all --round-robin` (1 KiB records spread evenly over
  every partition) into the 3-partition topic, then into the N-partition one; the same with the
  SDK's default sticky partitioner (whole 256 KiB batches to one partition at a time, so 100k
  records touch only ~400 partitions); then `perf consume` of each (phases from
  tests/bench/broker_vs_jetstream.py's `measured`: servers' CPU µs per record from /proc).
  `ratio_produce` (round-robin), `ratio_produce_sticky`, `ratio_consume` = N-partition / 3-partition.
- leader_failover: SIGSTOP a broker that is not the active controller; the time until the
  metadata (followed by WatchMetadata, as brokers see it) shows every partition it led with
  another leader; then SIGCONT and the time until fully replicated again.
- restart: kill -9 of a broker that is not the active controller; once the metadata shows it
  out of every ISR, restart it with its data; the time until it is ready and in the ISR of all
  its partitions (fully replicated again).
- controller_failover: SIGSTOP the active controller; the time until another node reports
  itself active controller and until a CreateTopics through a survivor succeeds; then SIGCONT.

--profile-dir DIR: py-spy (`record --nonblocking -f raw --threads`) on node 2 during the idle
phase, kept in DIR. Profiling perturbs the figures: use it in a separate run.
--keep-logs DIR: the nodes' logs are copied into DIR before the temp dir goes (where the time of a
phase went: the ISR changes each leader asked for and got, with timestamps).

Writes the raw results to --out (default tests/bench/results/2026-12-07-scale.json) and prints
ONE JSON line (the per-N summary and the goals). Progress on stderr. Every process started is
stopped by pid (NodeCluster.close); the temp dirs are removed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from freshet.metadata.configs import broker_config
from freshet.v1 import broker_pb2, common_pb2, controller_pb2

from tests.bench.broker_vs_jetstream import (
    FRESHET,
    busy_cores,
    log,
    machine_ticks,
    measured,
    proc_cpu_s,
    wait_for_quiet,
)
from tests.support.node_cluster import MetadataRecorder, NodeCluster
from tests.support.waiting import wait_until

REPO = pathlib.Path(__file__).resolve().parents[2]
PY_SPY = str(pathlib.Path(sys.executable).with_name("py-spy"))
BIG, SMALL = "scale-many", "scale-three"
E = common_pb2.ErrorCode
RETRIABLE_CREATE_ERRORS = frozenset({E.NOT_CONTROLLER, E.STALE_CONTROLLER_EPOCH, E.REQUEST_TIMED_OUT})


class PhaseLoad:
    """CPU of the cluster's node processes, this process and the whole machine over one phase.
    Nodes may die and restart inside a phase: each pid counts from when it was first seen to when
    it was last seen. Not thread-safe (the bench's main thread)."""

    def __init__(self, cluster: NodeCluster) -> None:
        self.cluster = cluster
        self.started_at = time.monotonic()
        self.ticks = machine_ticks()
        self.own = time.process_time()
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.sample(is_first=True)

    def sample(self, is_first: bool = False) -> None:
        """Read every node process's CPU; a pid first seen after the start counts from 0 (it started in the phase)."""
        for process in self.cluster.all_processes:
            with contextlib.suppress(OSError, ValueError, IndexError):
                cpu = proc_cpu_s(process.pid)
                self.first.setdefault(process.pid, cpu if is_first else 0.0)
                self.last[process.pid] = cpu

    def finish(self) -> dict:
        self.sample()
        wall = max(time.monotonic() - self.started_at, 1e-6)
        nodes = sum(self.last[pid] - self.first.get(pid, 0.0) for pid in self.last)
        own = time.process_time() - self.own
        machine = busy_cores(self.ticks, machine_ticks())
        return {"seconds": round(wall, 3), "nodes_cores": round(nodes / wall, 3), "bench_cores": round(own / wall, 3),
                "other_cores_busy": round(max(0.0, machine - (nodes + own) / wall), 2)}


def create_topic(cluster: NodeCluster, via: int, name: str, partitions: int) -> float:
    """Create `name` (RF 3, min.insync.replicas=2) through node `via`; the seconds the call took."""
    creatable = controller_pb2.CreatableTopic(name=name, num_partitions=partitions, replication_factor=3)
    creatable.configs.add(key="min.insync.replicas", value="2")
    request = controller_pb2.CreateTopicsRequest(request_id=f"scale-{name}-{time.time_ns()}", topics=[creatable])
    started = time.monotonic()
    for _ in range(10):
        # A controller that changed under the request answers a retriable error; the same
        # request id makes the retry idempotent (as the SDK's admin client does).
        error = cluster.admin(via).CreateTopics(request, timeout=300).results[0].error
        if error.code not in RETRIABLE_CREATE_ERRORS:
            break
        time.sleep(1.0)
    assert error.code == 0, error
    return time.monotonic() - started


def metadata_complete(cluster: NodeCluster, node_id: int, topic: str, partitions: int) -> dict | None:
    """{partition: leader} when `node_id`'s Metadata shows all partitions of `topic` led, with a full ISR."""
    try:
        answer = cluster.broker(node_id).Metadata(broker_pb2.MetadataRequest(topics=[topic]), timeout=30)
    except Exception:  # noqa: BLE001 - a paused or restarting node: not complete yet
        return None
    if len(answer.topics) != 1 or len(answer.topics[0].partitions) != partitions:
        return None
    leaders = {}
    for partition in answer.topics[0].partitions:
        if partition.leader_id < 0 or sorted(partition.isr) != sorted(partition.replicas):
            return None
        leaders[partition.partition] = partition.leader_id
    return leaders


def data_plane_complete(cluster: NodeCluster, node_id: int, topic: str, leaders: dict[int, int]) -> bool:
    """`node_id` hosts every partition of `topic` in the role `leaders` gives it, and leads with
    both followers' positions known."""
    status = cluster.status(node_id)
    if status is None or "data_plane" not in status:
        return False
    hosted = {entry["partition"]: entry for entry in status["data_plane"]["partitions"] if entry["topic"] == topic}
    if len(hosted) != len(leaders):
        return False
    for number, entry in hosted.items():
        if entry["leader"] != leaders[number]:
            return False
        if leaders[number] == node_id:
            positions = entry.get("follower_log_end_offsets") or {}
            if len(positions) != 2 or any(value is None for value in positions.values()):
                return False
    return True


def wait_fully_replicated(cluster: NodeCluster, topic: str, partitions: int, timeout_s: float) -> None:
    """Until every live node's view of `topic` is complete (see the module docstring)."""

    checked_logs_at = [time.monotonic()]

    def complete() -> bool:
        if time.monotonic() - checked_logs_at[0] > 5.0:
            checked_logs_at[0] = time.monotonic()
            fail_on_broken_nodes(cluster)
        for node_id in cluster.alive():
            leaders = metadata_complete(cluster, node_id, topic, partitions)
            if leaders is None or not data_plane_complete(cluster, node_id, topic, leaders):
                return False
        return True

    wait_until(complete, timeout_s, f"{topic} fully replicated", 0.25)


# What a node logs when it cannot go on (checked while waiting, so a broken run fails in seconds,
# not at the end of its timeout, and says where it broke).
BROKEN_MARKERS = ("Too many open files", "MemoryError")


def fail_on_broken_nodes(cluster: NodeCluster) -> None:
    """Raise RuntimeError with the first log line of a node that hit a BROKEN_MARKERS error, or that died."""
    for node_id, process in cluster.processes.items():
        if not process.is_alive:
            raise RuntimeError(f"node {node_id} exited ({process.process.returncode}): {process.log_tail(5)}")
        for line in process.log_text().splitlines():
            if any(marker in line for marker in BROKEN_MARKERS):
                raise RuntimeError(f"node {node_id}: {line[:500]}")


def phase_create(cluster: NodeCluster, partitions: int, timeout_s: float) -> dict:
    load = PhaseLoad(cluster)
    call_s = create_topic(cluster, 1, BIG, partitions)
    wait_fully_replicated(cluster, BIG, partitions, timeout_s)
    figures = load.finish()
    return {"call_s": round(call_s, 3), "fully_replicated_s": figures["seconds"], "load": figures}


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as file:
        line = next(line for line in file if line.startswith("VmRSS:"))
    return round(int(line.split()[1]) / 1024, 1)


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def phase_idle(cluster: NodeCluster, partitions: int, seconds: float, profile_dir: str | None) -> dict:
    time.sleep(5.0)
    spy = None
    if profile_dir:
        target = os.path.join(profile_dir, f"idle-{partitions}-node2.txt")
        spy = subprocess.Popen([PY_SPY, "record", "--pid", str(cluster.processes[2].pid), "-f", "raw", "--nonblocking",
                                "--threads", "-r", "100", "-d", str(int(seconds)), "-o", target],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pids = {node_id: process.pid for node_id, process in cluster.processes.items()}
    before = {node_id: proc_cpu_s(pid) for node_id, pid in pids.items()}
    load = PhaseLoad(cluster)
    time.sleep(seconds)
    figures = load.finish()
    if spy is not None:
        spy.wait(60)
    cores = {node_id: round((proc_cpu_s(pid) - before[node_id]) / figures["seconds"], 3) for node_id, pid in pids.items()}
    total = sum(cores.values())
    return {
        "cores_per_node": cores,
        "cores_total": round(total, 3),
        "cores_per_1000_replicas": round(total / (3 * partitions / 1000), 4),
        "rss_mib_per_node": {node_id: rss_mib(pid) for node_id, pid in pids.items()},
        "open_fds_per_node": {node_id: open_fds(pid) for node_id, pid in pids.items()},
        "load": figures,
    }


def phase_throughput(cluster: NodeCluster, msgs: int) -> dict:
    bootstrap = ",".join(f"127.0.0.1:{cluster.ports[n]}" for n in cluster.alive())
    pids = [process.pid for process in cluster.processes.values()]
    results = {}
    for suffix, flags in (("", ["--round-robin"]), ("_sticky", [])):
        for topic in (SMALL, BIG):
            argv = [FRESHET, "perf", "produce", "--topic", topic, "--num-records", str(msgs), "--record-size", "1024",
                    "--acks", "all", *flags, "--bootstrap-server", bootstrap, "--json"]
            results[f"produce{suffix}_{topic}"] = measured(argv, pids, timeout_s=900)
            log(f"  produce{suffix} {topic}: {results[f'produce{suffix}_{topic}']['records_per_s']} records/s")
    for topic in (SMALL, BIG):
        argv = [FRESHET, "perf", "consume", "--topic", topic, "--messages", str(msgs), "--bootstrap-server", bootstrap, "--json"]
        results[f"consume_{topic}"] = measured(argv, pids, timeout_s=900)
        log(f"  consume {topic}: {results[f'consume_{topic}']['records_per_s']} records/s")
    for kind in ("produce", "produce_sticky", "consume"):
        results[f"ratio_{kind}"] = round(results[f"{kind}_{BIG}"]["records_per_s"] / max(results[f"{kind}_{SMALL}"]["records_per_s"], 1), 3)
    return results


def leaders_seen_by(cluster: NodeCluster, node_id: int, topic: str) -> dict[int, int] | None:
    """{partition: leader} of `topic` in node `node_id`'s Metadata answer (None when it does not answer)."""
    try:
        answer = cluster.broker(node_id).Metadata(broker_pb2.MetadataRequest(topics=[topic]), timeout=10)
    except Exception:  # noqa: BLE001 - a busy node: ask again
        return None
    return {p.partition: p.leader_id for p in answer.topics[0].partitions} if len(answer.topics) == 1 else None


def phase_leader_failover(cluster: NodeCluster, partitions: int, timeout_s: float) -> dict:
    """SIGSTOP the broker (not the active controller) that leads the most partitions of BIG; the
    time until another node's Metadata shows them all led elsewhere (asked of the survivor, not
    through a metadata watch, which could hang on the paused node)."""
    controller = cluster.active_controller(timeout_s=60)
    seen = {n: leaders_seen_by(cluster, n, BIG) or {} for n in cluster.alive()}
    # Leadership may have moved in earlier phases (a broker fenced under load keeps no
    # leaderships until the next preferred-leader election).
    victim = max((n for n in sorted(cluster.alive()) if n != controller), key=lambda n: sum(1 for leader in seen[controller].values() if leader == n))
    led = [p for p, leader in seen[controller].items() if leader == victim]
    assert led, f"no broker but the controller leads a partition of {BIG}"
    load = PhaseLoad(cluster)
    started = time.monotonic()
    cluster.processes[victim].freeze()
    try:
        def moved() -> bool:
            leaders = leaders_seen_by(cluster, controller, BIG)
            return leaders is not None and all(leaders[p] not in (victim, -1) for p in led)

        wait_until(moved, 120, "new leaders for every partition the paused broker led", 0.1)
        moved_s = time.monotonic() - started
        moved_load = load.finish()
    finally:
        cluster.processes[victim].thaw()
    result = {"victim": victim, "partitions_led": len(led), "all_have_new_leaders_s": round(moved_s, 3), "load": moved_load}
    load = PhaseLoad(cluster)
    thawed = time.monotonic()
    try:
        wait_fully_replicated(cluster, BIG, partitions, timeout_s)
        result["fully_replicated_after_sigcont_s"] = round(time.monotonic() - thawed, 3)
    except AssertionError as error:
        result["fully_replicated_after_sigcont_s"] = None
        result["rejoin_error"] = str(error)
    result["rejoin_load"] = load.finish()
    return result


def phase_restart(cluster: NodeCluster, recorder: MetadataRecorder, partitions: int, timeout_s: float) -> dict:
    controller = cluster.active_controller(timeout_s=60)
    victim = next(n for n in sorted(cluster.alive(), reverse=True) if n != controller)
    killed = time.monotonic()
    cluster.processes[victim].kill()
    _, out_of_isr = recorder.wait_for(
        lambda image: all(victim not in p.isr for p in image.topic(BIG).partitions), 120, "victim out of every ISR")
    load = PhaseLoad(cluster)
    restarted = time.monotonic()
    cluster.start(victim)
    cluster.wait_ready([victim], timeout_s)
    ready = time.monotonic()
    _, back = recorder.wait_for(lambda image: all(victim in p.isr for p in image.topic(BIG).partitions), timeout_s, "victim in every ISR")
    wait_fully_replicated(cluster, BIG, partitions, timeout_s)
    return {"victim": victim, "out_of_every_isr_after_kill_s": round(out_of_isr - killed, 3),
            "ready_s": round(ready - restarted, 3), "back_in_every_isr_s": round(back - restarted, 3),
            "fully_replicated_s": round(time.monotonic() - restarted, 3), "load": load.finish()}


def phase_controller_failover(cluster: NodeCluster, partitions: int, timeout_s: float) -> dict:
    victim = cluster.active_controller(timeout_s=60)
    survivors = [n for n in cluster.alive() if n != victim]
    load = PhaseLoad(cluster)
    started = time.monotonic()
    cluster.processes[victim].freeze()
    try:
        cluster.active_controller(among=survivors, timeout_s=60)
        active = time.monotonic() - started
        create_topic(cluster, survivors[0], "after-controller-failover", 1)
        writable = time.monotonic() - started
        figures = load.finish()
    finally:
        cluster.processes[victim].thaw()
    thawed = time.monotonic()
    wait_fully_replicated(cluster, BIG, partitions, timeout_s)
    return {"victim": victim, "new_active_controller_s": round(active, 3), "first_write_s": round(writable, 3),
            "load": figures, "fully_replicated_after_sigcont_s": round(time.monotonic() - thawed, 3)}


def run_partitions(partitions: int, args) -> dict:
    """Every phase for one N, on a fresh cluster in a temp dir (removed afterwards)."""
    timeout_s = min(max(120.0, partitions * 0.06), 300.0)
    root = pathlib.Path(tempfile.mkdtemp(prefix=f"freshet-scale-{partitions}-", dir=args.tmp))
    result: dict = {"partitions": partitions, "replicas": 3 * partitions}
    try:
        with NodeCluster(root, auto_balance=True) as cluster:
            for node_id in cluster.controller_ids:
                cluster.start(node_id)
            cluster.wait_ready(timeout_s=180)       # the machine may be loaded by other jobs
            recorder = MetadataRecorder(cluster).start()
            try:
                create_topic(cluster, 1, SMALL, 3)
                wait_fully_replicated(cluster, SMALL, 3, 60)
                phases = [
                    ("create", lambda: phase_create(cluster, partitions, timeout_s)),
                    ("idle", lambda: phase_idle(cluster, partitions, args.idle_seconds, args.profile_dir)),
                    ("throughput", lambda: phase_throughput(cluster, args.msgs)),
                    ("leader_failover", lambda: phase_leader_failover(cluster, partitions, timeout_s)),
                    ("restart", lambda: phase_restart(cluster, recorder, partitions, timeout_s)),
                    ("controller_failover", lambda: phase_controller_failover(cluster, partitions, timeout_s)),
                ]
                for name, phase in phases:
                    if name not in args.phases:
                        continue
                    log(f"N={partitions}: {name}")
                    try:
                        result[name] = phase()
                    except (AssertionError, OSError, RuntimeError, subprocess.SubprocessError) as error:
                        # Reported, not hidden: the JSON says which phase broke and how; the
                        # nodes' logs' tails say where.
                        result[name] = {"error": f"{type(error).__name__}: {error}"[:2000],
                                        "node_log_tails": {n: p.log_tail(15) for n, p in cluster.processes.items()}}
                        log(f"  {name} failed: {result[name]['error'][:300]}")
                        if name == "create":
                            break                   # nothing to measure without the topic
                    log(f"  {json.dumps(result[name])[:600]}")
            finally:
                recorder.stop()
                if args.keep_logs:
                    for node_id, process in cluster.processes.items():
                        shutil.copy(process.log_path, pathlib.Path(args.keep_logs) / f"scale-{partitions}-node-{node_id}.log")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return result


def goals(runs: list[dict]) -> dict:
    """The issue's goals, checked against each N's figures (None when the phase did not run)."""
    session_s = broker_config({}, {}).broker_session_timeout_ms / 1000
    out = {}
    for run in runs:
        idle, throughput = run.get("idle", {}), run.get("throughput", {})
        leader, restart = run.get("leader_failover", {}), run.get("restart", {})
        out[str(run["partitions"])] = {
            "idle_cores_per_1000_replicas_le_0.05": idle.get("cores_per_1000_replicas"),
            "produce_ratio_ge_0.8": throughput.get("ratio_produce"),
            "produce_ratio_sticky": throughput.get("ratio_produce_sticky"),
            f"new_leaders_le_{session_s + 2:g}_s": leader.get("all_have_new_leaders_s"),
            "restart_in_sync_le_30_s": restart.get("back_in_every_isr_s"),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partitions", default="1000,5000,20000", help="comma-separated partition counts")
    parser.add_argument("--msgs", type=int, default=100_000, help="records per throughput phase (1 KiB each)")
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--phases", default="create,idle,throughput,leader_failover,restart,controller_failover")
    parser.add_argument("--tmp", default="/tmp")
    parser.add_argument("--profile-dir", help="py-spy node 2 during the idle phase; raw profiles go here")
    parser.add_argument("--keep-logs", help="copy every node's log into this directory at the end")
    parser.add_argument("--skip-wait", action="store_true", help="do not wait for an idle machine")
    parser.add_argument("--max-wait", type=float, default=120, help="give up waiting for an idle machine after this many s")
    parser.add_argument("--out", default=str(REPO / "tests" / "bench" / "results" / "2026-12-07-scale.json"))
    args = parser.parse_args()
    args.phases = set(args.phases.split(","))
    # SIGTERM unwinds like Ctrl-C, so that NodeCluster.close stops the nodes and the temp dir goes.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    for directory in (args.profile_dir, args.keep_logs):
        if directory:
            os.makedirs(directory, exist_ok=True)
    runs = []
    for partitions in [int(n) for n in args.partitions.split(",")]:
        wait_for_quiet(args)
        run = run_partitions(partitions, args)
        run["preflight_busy_cores"] = args.preflight_busy_cores
        runs.append(run)
    result = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "python": platform.python_version(), "cpus": os.cpu_count(),
              "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
              "msgs": args.msgs, "idle_seconds": args.idle_seconds, "runs": runs, "goals": goals(runs)}
    pathlib.Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    summary = {"time": result["time"], "out": args.out, "goals": result["goals"],
               "runs": [{k: v for k, v in run.items() if k != "throughput"} for run in runs]}
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
