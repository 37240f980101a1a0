"""Durable mode (write.caching=false) vs the default (write caching), in one run (not a test).

    .venv/bin/python -m tests.bench.durable_fsync [--msgs 100000] [--size 1024] [--lat-samples 1000]
        [--skip-wait] [--max-wait 120] [--out FILE]

The issue's question: what does waiting for every in-sync replica's fsync (with group commit)
cost against acknowledging from the page cache? Goal: durable throughput >= 70% of the default's.

Steps (helpers from tests/bench/broker_vs_jetstream.py): wait for an idle machine
(../shared/bench/wait_quiet.py, at most --max-wait s; the load seen is recorded either way), then
`freshet cluster up --nodes 3`, two one-partition topics with RF 3 and min.insync.replicas=2, one
with write.caching=true (the default) and one with write.caching=false. Phases, each in its own
child process, in the order default, durable, durable, default (so that drift in the machine's
other load hits both sides alike): `freshet perf produce --acks all` (--msgs records of --size
bytes), then the same order for `perf produce --acks all --sync` (--lat-samples records, one at a
time: p50/p99 of one acknowledged write). Each phase records the 3 servers' CPU per record and the
cores other jobs kept busy (`other_cores_busy`); durable phases also record the group commit from
the nodes' /metrics: fsyncs and rounds the flushers made, and records per fsync.

Prints ONE JSON line (also written to --out, by default tests/bench/results/2026-12-07-durable_fsync.json): every
phase, the mean of each side's two runs and the ratios durable/default. Progress on stderr. Every
process started is stopped by pid; the temp dir is removed.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import time
import urllib.request

from freshet.v1 import controller_pb2

from tests.bench.broker_vs_jetstream import (
    FRESHET,
    local_cluster,
    log,
    measured,
    wait_for_quiet,
)

RESULTS = pathlib.Path(__file__).parent / "results" / "2026-12-07-durable_fsync.json"
TOPICS = {"default": "bench-write-caching", "durable": "bench-durable"}
FLUSH_METRICS = ("freshet_log_durable_flushes_total", "freshet_log_durable_flush_rounds_total")


def create_topics(admin) -> None:
    """Both topics: one partition, RF 3, min.insync.replicas=2; the durable one write.caching=false."""
    for side, name in TOPICS.items():
        topic = controller_pb2.CreatableTopic(name=name, num_partitions=1, replication_factor=3)
        topic.configs.add(key="min.insync.replicas", value="2")
        if side == "durable":
            topic.configs.add(key="write.caching", value="false")
        answer = admin.CreateTopics(controller_pb2.CreateTopicsRequest(topics=[topic]), timeout=30)
        assert answer.results[0].error.code == 0, answer
    time.sleep(1.0)


def flush_counters(nodes: list[dict]) -> dict[str, float]:
    """The durable flushers' counters summed over the nodes' /metrics."""
    totals = dict.fromkeys(FLUSH_METRICS, 0.0)
    for node in nodes:
        with urllib.request.urlopen(node["http"] + "/metrics", timeout=5) as answer:
            text = answer.read().decode()
        for name in FLUSH_METRICS:
            found = re.search(rf"^{name} (\S+)$", text, re.M)
            totals[name] += float(found.group(1)) if found else 0.0
    return totals


def phase_argv(bootstrap: str, side: str, args, is_sync: bool) -> list[str]:
    count = args.lat_samples if is_sync else args.msgs
    argv = [FRESHET, "perf", "produce", "--topic", TOPICS[side], "--num-records", str(count), "--record-size",
            str(args.size), "--acks", "all", "--bootstrap-server", bootstrap, "--json"]
    return [*argv, "--sync"] if is_sync else argv


def run_phase(cluster: dict, side: str, args, is_sync: bool) -> dict:
    before = flush_counters(cluster["nodes"])
    result = measured(phase_argv(cluster["bootstrap"], side, args, is_sync), cluster["pids"])
    after = flush_counters(cluster["nodes"])
    fsyncs = after[FLUSH_METRICS[0]] - before[FLUSH_METRICS[0]]
    result["fsyncs"] = int(fsyncs)
    result["flush_rounds"] = int(after[FLUSH_METRICS[1]] - before[FLUSH_METRICS[1]])
    # Three replicas each fsync the one partition: records per fsync of one replica.
    result["records_per_fsync"] = round(result["records"] * 3 / fsyncs, 1) if fsyncs else None
    log(f"  {side} {'sync' if is_sync else 'publish'}: "
        + json.dumps({k: result.get(k) for k in ("records_per_s", "p50_ms", "p99_ms", "records_per_fsync", "other_cores_busy")}))
    return result


def mean_of(runs: list[dict], key: str) -> float | None:
    values = [run[key] for run in runs if run.get(key) is not None]
    return round(sum(values) / len(values), 2) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--msgs", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--lat-samples", type=int, default=1000)
    parser.add_argument("--tmp", default="/tmp")
    parser.add_argument("--skip-wait", action="store_true", help="do not wait for an idle machine")
    parser.add_argument("--max-wait", type=float, default=120, help="give up waiting for an idle machine after this many s")
    parser.add_argument("--out", default=str(RESULTS), help="where the JSON line is also written")
    args = parser.parse_args()
    wait_for_quiet(args)
    phases: dict[str, dict[str, list[dict]]] = {side: {"publish": [], "sync": []} for side in TOPICS}
    with local_cluster(args.tmp) as cluster:
        create_topics(cluster["admin"])
        for kind, is_sync in (("publish", False), ("sync", True)):
            for side in ("default", "durable", "durable", "default"):
                phases[side][kind].append(run_phase(cluster, side, args, is_sync))
    table = {
        side: {
            "publish_records_per_s": mean_of(runs["publish"], "records_per_s"),
            "publish_mb_per_s": mean_of(runs["publish"], "mb_per_s"),
            "publish_p50_ms": mean_of(runs["publish"], "p50_ms"),
            "publish_p99_ms": mean_of(runs["publish"], "p99_ms"),
            "publish_servers_cpu_us_per_record": mean_of(runs["publish"], "servers_cpu_us_per_msg"),
            "publish_records_per_fsync": mean_of(runs["publish"], "records_per_fsync"),
            "sync_p50_ms": mean_of(runs["sync"], "p50_ms"),
            "sync_p99_ms": mean_of(runs["sync"], "p99_ms"),
            "other_cores_busy_max": max(run["other_cores_busy"] for kind in runs.values() for run in kind),
        }
        for side, runs in phases.items()
    }
    durable, default = table["durable"], table["default"]
    ratios = {key: round(durable[key] / default[key], 2) for key in
              ("publish_records_per_s", "publish_p50_ms", "publish_p99_ms", "publish_servers_cpu_us_per_record",
               "sync_p50_ms", "sync_p99_ms") if durable[key] and default[key]}
    document = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpus": os.cpu_count(), "msgs": args.msgs, "size": args.size,
        "lat_samples": args.lat_samples, "waited_for_quiet": not args.skip_wait,
        "preflight_busy_cores": args.preflight_busy_cores, "phases": phases, "table": table,
        "ratios_durable_over_default": ratios,
        "goal_throughput_ratio": 0.7, "goal_met": ratios.get("publish_records_per_s", 0) >= 0.7,
    }
    pathlib.Path(args.out).write_text(json.dumps(document, indent=1) + "\n")
    print(json.dumps(document), flush=True)


if __name__ == "__main__":
    main()
