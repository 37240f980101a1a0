"""Freshet's Kafka listener vs its gRPC front-end vs the NATS JetStream R3 peer, in one run (not a test).

    .venv/bin/python -m tests.bench.kafka_vs_grpc [--msgs 100000] [--size 1024] [--lat-samples 2000]
        [--skip-wait] [--max-wait 600] [--profile-dir DIR]

The issue's question: is the Kafka listener, driven by confluent-kafka (librdkafka), at least as
fast as the gRPC path driven by the Freshet SDK? Both run against the SAME 3-node cluster
(`freshet cluster up`), each on its own one-partition topic with RF=3 and min.insync.replicas=2,
with the JetStream R3 peer (../shared/bench/jetstream_bench.py, --replicas 3) measured in the
same run just before.

Steps (helpers imported from tests/bench/broker_vs_jetstream.py): wait for an idle machine
(../shared/bench/wait_quiet.py, at most --max-wait s; the load seen is recorded either way); the
peer; the cluster; then for each side, each phase in its own child process (so that the
client's CPU is its own; servers' CPU per record comes from /proc for the 3 node processes over
the phase, and `other_cores_busy` is what the rest of the machine used meanwhile):

- gRPC + SDK: `freshet perf produce --acks all` (256 KiB batches, linger 5 ms, 5 in flight),
  `perf consume` (assign, from the beginning), `perf produce --sync` (--lat-samples records).
- Kafka + confluent-kafka (tests/bench/kafka_client_perf.py): produce with acks=all,
  idempotence, linger.ms 5, batch.size 256 KiB, compression none, timed to the last delivery
  report with per-record send-to-ack latency; consume in assign mode from offset 0; sync (one
  record, then flush, --lat-samples times) for p50/p99.

--profile-dir DIR: also run py-spy (`.venv/bin/py-spy record --pid <partition leader> -f raw
--nonblocking --threads`) on each side's partition leader during its publish and latency phases
and keep the raw profiles in DIR. Profiling perturbs the figures: use it in a separate run, not the one you quote.

Prints ONE JSON line: every side's phases, a compact `table` (records/s, MB/s, p50/p99, CPU per
record) and the ratios kafka/grpc and kafka/peer (throughput: above 1 is better; latency and CPU:
below 1 is better). Progress on stderr. Every process started is stopped by pid; temp dirs are removed.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import signal
import subprocess
import sys
import time
from importlib.metadata import version

from tests.bench.broker_vs_jetstream import (
    BENCH,
    PEER_PYTHON,
    create_topic,
    local_cluster,
    log,
    run_json,
    run_phases,
    sdk_phases,
    wait_for_quiet,
)

PY_SPY = str(pathlib.Path(sys.executable).with_name("py-spy"))


def kafka_phases(bootstrap: str, topic: str, args) -> list[tuple[str, list[str]]]:
    """(phase, argv) of confluent-kafka against the Kafka listener, in the SDK side's order."""
    client = [sys.executable, "-m", "tests.bench.kafka_client_perf"]
    common = ["--bootstrap", bootstrap, "--topic", topic, "--record-size", str(args.size)]
    return [
        ("publish", [*client, "produce", *common, "--num-records", str(args.msgs)]),
        ("consume", [*client, "consume", *common, "--num-records", str(args.msgs)]),
        ("latency", [*client, "sync", *common, "--num-records", str(args.lat_samples)]),
    ]


def partition_leader(kafka_bootstrap: str, topic: str) -> int:
    """The node id leading partition 0 of `topic`, from the Kafka listener's Metadata."""
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(topic, timeout=10).topics[topic].partitions[0].leader


def run_side(phases, cluster: dict, topic: str, label: str, profile_dir: str | None) -> dict:
    """`run_phases`, with the publish and latency phases under py-spy on the partition leader when profiling."""
    leader = partition_leader(cluster["kafka_bootstrap"], topic)
    leader_pid = next(node["pid"] for node in cluster["nodes"] if node["id"] == leader)
    if profile_dir is None:
        return {"leader": leader, **run_phases(phases, cluster["pids"], label)}
    out: dict = {"leader": leader}
    for phase, argv in phases:
        spy = None
        if phase in ("publish", "latency"):
            target = os.path.join(profile_dir, f"{label}-{phase}-leader{leader}.txt")
            spy = subprocess.Popen([PY_SPY, "record", "--pid", str(leader_pid), "-f", "raw", "--nonblocking",
                                    "--threads", "-r", "250", "-o", target],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)                                 # py-spy attached before the phase starts
        try:
            out.update(run_phases([(phase, argv)], cluster["pids"], label))
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)              # py-spy writes its profile on SIGINT
                try:
                    spy.wait(30)
                except subprocess.TimeoutExpired:
                    spy.kill()
                    spy.wait()
    return out


def summary(publish: dict, consume: dict, latency: dict) -> dict:
    """One side's row of the table, from Freshet-style phase results (perf / kafka_client_perf)."""
    return {
        "publish_records_per_s": publish["records_per_s"],
        "publish_mb_per_s": publish["mb_per_s"],
        "publish_p50_ms": publish.get("p50_ms"),
        "publish_p99_ms": publish.get("p99_ms"),
        "sync_p50_ms": latency["p50_ms"],
        "sync_p99_ms": latency["p99_ms"],
        "publish_servers_cpu_us_per_record": publish["servers_cpu_us_per_msg"],
        "publish_client_cpu_us_per_record": publish["client_cpu_us_per_record"],
        "consume_records_per_s": consume["records_per_s"],
        "consume_mb_per_s": consume["mb_per_s"],
        "consume_servers_cpu_us_per_record": consume["servers_cpu_us_per_msg"],
        "consume_client_cpu_us_per_record": consume["client_cpu_us_per_record"],
        "other_cores_busy_max": max(publish["other_cores_busy"], consume["other_cores_busy"], latency["other_cores_busy"]),
    }


def peer_summary(peer: dict) -> dict | None:
    run = next((r for r in peer.get("runs", []) if r["replicas"] == 3), None)
    if run is None:
        return None
    publish, consume, latency = run["publish"][-1], run["consume"][-1], run.get("latency", {})
    return {
        "publish_records_per_s": publish["msgs_per_s"],
        "publish_mb_per_s": publish["MB_per_s"],
        "publish_p50_ms": None,                             # the peer does not time each async publish
        "publish_p99_ms": None,
        "sync_p50_ms": round(latency["p50_us"] / 1000, 3) if latency else None,
        "sync_p99_ms": round(latency["p99_us"] / 1000, 3) if latency else None,
        "publish_servers_cpu_us_per_record": publish["servers_cpu_us_per_msg"],
        "publish_client_cpu_us_per_record": publish["client_cpu_us_per_msg"],
        "consume_records_per_s": consume["msgs_per_s"],
        "consume_mb_per_s": consume["MB_per_s"],
        "consume_servers_cpu_us_per_record": consume["servers_cpu_us_per_msg"],
        "consume_client_cpu_us_per_record": consume["client_cpu_us_per_msg"],
        "other_cores_busy_max": max(publish["other_cores_busy"], consume["other_cores_busy"],
                                    latency.get("other_cores_busy", 0.0)),
    }


def ratios(mine: dict, theirs: dict | None) -> dict:
    if theirs is None:
        return {}
    return {
        key: round(mine[key] / theirs[key], 2)
        for key in mine
        if key != "other_cores_busy_max" and mine[key] is not None and theirs.get(key)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--msgs", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--lat-samples", type=int, default=2000)
    parser.add_argument("--tmp", default="/tmp")
    parser.add_argument("--skip-wait", action="store_true", help="do not wait for an idle machine")
    parser.add_argument("--max-wait", type=float, default=600, help="give up waiting for an idle machine after this many s")
    parser.add_argument("--skip-peer", action="store_true", help="leave out the JetStream peer (no kafka/peer ratios)")
    parser.add_argument("--profile-dir", help="py-spy the partition leaders during the publish and latency phases (see above)")
    args = parser.parse_args()
    if args.profile_dir:
        os.makedirs(args.profile_dir, exist_ok=True)
    wait_for_quiet(args)
    started = time.monotonic()
    peer: dict = {}
    if not args.skip_peer:
        log("JetStream peer (R3)")
        peer = run_json([PEER_PYTHON, str(BENCH / "jetstream_bench.py"), "--msgs", str(args.msgs), "--size", str(args.size),
                         "--windows", "4000", "--replicas", "3", "--lat-samples", str(args.lat_samples)], 200)
    log("Freshet cluster")
    with local_cluster(args.tmp) as cluster:
        for topic in ("bench-grpc", "bench-kafka"):
            create_topic(cluster["admin"], topic, 3)
        grpc_side = run_side(sdk_phases(cluster["bootstrap"], "bench-grpc", args), cluster, "bench-grpc",
                             "grpc", args.profile_dir)
        kafka_side = run_side(kafka_phases(cluster["kafka_bootstrap"], "bench-kafka", args), cluster, "bench-kafka",
                              "kafka", args.profile_dir)
    table = {
        "kafka_confluent": summary(kafka_side["publish"], kafka_side["consume"], kafka_side["latency"]),
        "grpc_sdk": summary(grpc_side["publish"], grpc_side["consume"], grpc_side["latency"]),
        "jetstream_r3": peer_summary(peer),
    }
    print(json.dumps({
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpus": os.cpu_count(), "msgs": args.msgs, "size": args.size,
        "lat_samples": args.lat_samples, "waited_for_quiet": not args.skip_wait, "max_wait_s": args.max_wait,
        "preflight_busy_cores": args.preflight_busy_cores, "profiled": bool(args.profile_dir),
        "versions": {"python": platform.python_version(), "confluent_kafka": version("confluent-kafka"),
                     "librdkafka": __import__("confluent_kafka").libversion()[0], "grpcio": version("grpcio")},
        "table": table,
        "ratios_kafka_over_grpc": ratios(table["kafka_confluent"], table["grpc_sdk"]),
        "ratios_kafka_over_peer": ratios(table["kafka_confluent"], table["jetstream_r3"]),
        "kafka": kafka_side, "grpc": grpc_side, "jetstream": peer,
        "total_s": round(time.monotonic() - started, 1),
    }), flush=True)


if __name__ == "__main__":
    main()
