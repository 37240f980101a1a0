#!/usr/bin/env python3
"""Benchmark of the metadata quorum; prints ONE JSON line on stdout (progress on stderr).

Usage (from the repository, with the dev install):
    .venv/bin/python -m tests.bench.metadata_perf [--commands 5000] [--window 16] [--repeat 2]
        [--failovers 10] [--partitions 10000]

Measures, in one run on this machine:
- committed commands/s of 3 voter processes on loopback, load generated on the leader with
  `window` commands in flight:
    raw_pysyncobj       plain pysyncobj, same transport settings as ours (password, unbatched
                        appends, tuned timeouts), its own FileJournal (no fsync), a no-op method
    freshet_noop        MetadataQuorum (fsync on), Noop commands
    freshet_noop_nofsync  MetadataQuorum with fsync=False (survives kill -9, not power loss)
    freshet_allocate    AllocateProducerIds (a realistic small command)
    freshet_isr         ChangePartition flipping the ISR of a 1000-partition topic (compare-and-set)
  (median of `repeat` runs each; the ratio compares freshet_noop with raw_pysyncobj).
- failover: kill -9 of the leader under load, `failovers` times: seconds until a survivor is
  leader (election) and until it has claimed the controller epoch (first committed write).
- snapshot of a state with `partitions` partitions (topics of 10 partitions, RF 3): bytes, encode
  time without the per-topic cache, decode (load) time, and the cost of one apply at that size.

The voters are tests/support/quorum_harness.py processes (the same program the kill -9 tests use).
Every process started is killed by pid before exiting; temp dirs are removed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

from freshet.metadata import commands as c
from freshet.metadata import snapshot, state_machine
from freshet.metadata.image import EMPTY_IMAGE

from tests.support.quorum_cluster import HarnessCluster


def log(message: str) -> None:
    print(f"[metadata_perf] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def throughput(root: pathlib.Path, kind: str, commands: int, window: int, raw: bool = False, fsync: bool = True) -> float:
    extra = (lambda node_id: []) if fsync else (lambda node_id: ["--no-fsync"])
    with HarnessCluster(root, raw=raw, extra_args=extra) as cluster:
        cluster.start_all()
        if raw:
            deadline = time.monotonic() + 15
            leader = None
            while leader is None and time.monotonic() < deadline:
                for process in cluster.processes.values():
                    status = process.request(op="status", timeout_s=5)
                    if status and status["is_leader"]:
                        leader = process
                        break
                time.sleep(0.05)
            assert leader is not None, "no raw leader"
        else:
            leader = cluster.leader(timeout_s=15)
        # A short warm-up (the ISR workload also creates its topic here), then the measured run.
        leader.send(op="load", prefix="warm", count=200, window=window, kind=kind, report=False)
        assert leader.wait_for(lambda e: e["event"] == "load_done" and e["prefix"] == "warm", 60), leader.log_tail()
        leader.send(op="load", prefix="run", count=commands, window=window, kind=kind, report=False)
        done = leader.wait_for(lambda e: e["event"] == "load_done" and e["prefix"] == "run", 300)
        assert done is not None and done["acked"] == commands, (done, leader.log_tail())
        return commands / done["seconds"]


def failover(root: pathlib.Path, kills: int, window: int) -> tuple[list[float], list[float]]:
    elections, first_writes = [], []
    with HarnessCluster(root) as cluster:
        cluster.start_all()
        for round_number in range(kills):
            leader = cluster.leader(timeout_s=20)
            prefix = f"f{round_number}"
            leader.send(op="load", prefix=prefix, count=1_000_000, window=window, kind="allocate")
            seen = [0]

            def enough(event: dict, seen: list[int] = seen) -> bool:
                seen[0] += event["event"] == "ack"
                return seen[0] >= 300

            leader.wait_for(enough, 20)
            old_term = max(e["term"] for e in leader.events if e["event"] == "leadership")
            killed_at = time.monotonic()
            cluster.kill(leader.node_id)
            elected = claimed = None
            deadline = time.monotonic() + 20
            while (elected is None or claimed is None) and time.monotonic() < deadline:
                for process in cluster.processes.values():
                    if not process.is_alive:
                        continue
                    elected = elected or process.wait_for(
                        lambda e, t=old_term: e["event"] == "leadership" and e["is_leader"] and e["term"] > t, 0.01
                    )
                    claimed = claimed or process.wait_for(lambda e, t=old_term: e["event"] == "claimed" and e["epoch"] > t, 0.01)
            assert elected is not None and claimed is not None, "no new leader"
            elections.append(elected["t"] - killed_at)
            first_writes.append(claimed["t"] - killed_at)
            log(f"failover {round_number + 1}/{kills}: elected after {elections[-1]:.3f} s, first write {first_writes[-1]:.3f} s")
            restarted = cluster.start(leader.node_id)
            assert restarted.wait_for(lambda e: e["event"] == "ready", 30)
    return elections, first_writes


def snapshot_figures(partition_count: int) -> dict:
    per_topic = 10
    image = EMPTY_IMAGE
    offset = 0

    def apply(command) -> None:
        nonlocal image, offset
        offset += 1
        image, result = state_machine.apply(image, command, offset)
        assert result.error_code == 0, result.error_message

    apply(c.claim_controller("claim", 1, 1))
    for node_id in range(1, 7):
        apply(c.register_broker(f"r{node_id}", 1, node_id, bytes([node_id]) * 16, "127.0.0.1", 9090 + node_id))
        apply(c.unfence_broker(f"u{node_id}", 1, node_id, image.brokers[node_id].broker_epoch))
    for t in range(partition_count // per_topic):
        replicas = [1 + (t + k) % 6 for k in range(3)]
        apply(c.create_topic(f"t{t}", 1, (t + 1).to_bytes(16, "big"), f"topic-{t:05d}", [(replicas, replicas, replicas[0])] * per_topic))
    assert image.partition_count == partition_count
    encoded = snapshot.encode_snapshot(image)
    fresh = snapshot.decode_snapshot(encoded)             # no per-topic cache: a cold encode
    started = time.perf_counter()
    cold = snapshot.encode_snapshot(fresh)
    encode_cold_s = time.perf_counter() - started
    assert cold == encoded
    started = time.perf_counter()
    snapshot.encode_snapshot(fresh)
    encode_cached_s = time.perf_counter() - started
    file_bytes = snapshot.encode_snapshot_file(snapshot.RaftEntry(b"b", 11, 1), snapshot.RaftEntry(b"a", 10, 1), ["a"], encoded)
    started = time.perf_counter()
    loaded = snapshot.decode_snapshot(snapshot.decode_snapshot_file(file_bytes).state)
    load_s = time.perf_counter() - started
    assert loaded == image
    topic_id = (7).to_bytes(16, "big")
    started = time.perf_counter()
    changes = 2000
    for i in range(changes):
        partition = image.topics_by_id[topic_id].partitions[i % per_topic]
        isr = partition.replicas[:2] if len(partition.isr) == 3 else partition.replicas
        apply(c.change_partition(f"cp{i}", 1, topic_id, i % per_topic, partition.partition_epoch, isr=list(isr)))
    apply_us = (time.perf_counter() - started) / changes * 1e6
    return {
        "partitions": partition_count,
        "topics": partition_count // per_topic,
        "snapshot_bytes": len(encoded),
        "snapshot_file_bytes": len(file_bytes),
        "encode_cold_ms": round(encode_cold_s * 1000, 1),
        "encode_cached_ms": round(encode_cached_s * 1000, 2),
        "load_ms": round(load_s * 1000, 1),
        "change_partition_apply_us": round(apply_us, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commands", type=int, default=5000)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--failovers", type=int, default=10)
    parser.add_argument("--partitions", type=int, default=10_000)
    options = parser.parse_args()

    load_before = os.getloadavg()[0]
    rates: dict[str, list[float]] = {}
    runs = [
        ("raw_pysyncobj", dict(kind="noop", raw=True)),
        ("freshet_noop", dict(kind="noop")),
        ("freshet_noop_nofsync", dict(kind="noop", fsync=False)),
        ("freshet_allocate", dict(kind="allocate")),
        ("freshet_isr", dict(kind="isr")),
    ]
    with tempfile.TemporaryDirectory(prefix="metadata-perf-") as tmp:
        root = pathlib.Path(tmp)
        for repetition in range(options.repeat):
            for name, settings in runs:         # interleaved, so drift affects all equally
                rate = throughput(root / f"{name}-{repetition}", commands=options.commands, window=options.window, **settings)
                rates.setdefault(name, []).append(rate)
                log(f"{name} run {repetition + 1}: {rate:.0f} commands/s")
        elections, first_writes = failover(root / "failover", options.failovers, options.window)
    log("snapshot figures ...")
    snap = snapshot_figures(options.partitions)
    medians = {name: round(statistics.median(values)) for name, values in rates.items()}
    result = {
        "bench": "metadata_quorum",
        "date": datetime.date.today().isoformat(),
        "voters": 3,
        "window": options.window,
        "commands_per_run": options.commands,
        "commands_per_s": medians,
        "commands_per_s_runs": {name: [round(v) for v in values] for name, values in rates.items()},
        "ratio_noop_to_raw": round(medians["freshet_noop"] / medians["raw_pysyncobj"], 3),
        "failover_election_s": {
            "p50": round(percentile(elections, 0.5), 3),
            "p99": round(percentile(elections, 0.99), 3),
            "max": round(max(elections), 3),
            "runs": [round(v, 3) for v in elections],
        },
        "failover_first_write_s": {
            "p50": round(percentile(first_writes, 0.5), 3),
            "p99": round(percentile(first_writes, 0.99), 3),
        },
        "snapshot": snap,
        "load_1m_before": round(load_before, 2),
        "load_1m_after": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
