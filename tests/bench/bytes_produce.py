"""Produce throughput in bytes: RF 3, acks=all, 3 partitions, 1 / 16 / 64 KiB records (not a test).

    .venv/bin/python -m tests.bench.bytes_produce [--sizes 1024,16384,65536] [--mb 300]
        [--skip-wait] [--max-wait 120] [--skip-limits] [--profile-dir DIR] [--name NAME]

Issue 20's produce trial: `freshet cluster up --nodes 3`, one topic per record size with 3
partitions, replication factor 3 and min.insync.replicas=2 (each node leads one partition and
follows two), then `freshet perf produce --acks all` (its default batches: 1,000,000 bytes since
bytes6, 256 KiB before; linger 5 ms, 5 requests in flight per broker) with about --mb MB of
payload per size, and once more at the largest size with 256 KiB batches (--extra-batch-size,
the earlier default: per-batch costs over a quarter of the bytes). In the same run,
`../shared/bench/limits.py --only disk` measures the disk: the RF 3 limit is its fdatasync'd
sequential write rate (1 MiB writes) divided by 3, since every byte produced is written three
times to the same disk.

Per size it reports MB/s of payload, its fraction of that RF 3 limit, CPU seconds per MB of
payload for each node process and for the client process (from /proc; holds up better than MB/s
on a loaded 2-core box), and the cores other jobs used meanwhile (`other_cores_busy`). Helpers
(cluster, topic, phase measurement, idle gate) are tests/bench/broker_vs_jetstream.py's.

--profile-dir DIR: also run py-spy (`record -f raw --gil --native`: only the thread holding the GIL,
with C frames such as the CRC; kernel time, e.g. the pwrite copy, is not in it) on every node during the
largest size's phase and keep the raw profiles in DIR, with the top self-time frames of each in
the JSON. Profiling perturbs the figures: quote an unprofiled run.

`run(...)` returns the result dict (for a combined runner); `main()` prints it as ONE JSON line
and writes it to tests/bench/results/2026-12-07-NAME.json. Every process started is stopped by
pid; the temp dir is removed.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time
import types

from tests.bench.broker_vs_jetstream import (
    BENCH,
    FRESHET,
    PEER_PYTHON,
    create_topic,
    local_cluster,
    log,
    measured,
    proc_cpu_s,
    run_json,
    wait_for_quiet,
)

PY_SPY = str(pathlib.Path(sys.executable).with_name("py-spy"))
RESULTS = pathlib.Path(__file__).resolve().parent / "results"
PARTITIONS = 3
#: The RF 3 disk limit from ../shared/bench/README.md (2026-11-21, idle machine: fdatasync'd 1 MiB
#: writes at 1,134 MB/s, median of 6), beside the same-run figure, which other jobs' disk use can sink.
REFERENCE_RF3_LIMIT_MB_PER_S = round(1134 / 3, 1)


def disk_limit(tmp: str) -> dict:
    """limits.py --only disk (the peers' venv when present, else this interpreter: the disk test is stdlib)."""
    python = PEER_PYTHON if os.path.exists(PEER_PYTHON) else sys.executable
    result = run_json([python, str(BENCH / "limits.py"), "--only", "disk", "--tmp", tmp], 200)
    disk = result["disk"]
    fdatasync_mb_per_s = disk["write_fdatasync_1MiB"]["MB_per_s"]
    return {"write_fdatasync_1MiB_mb_per_s": fdatasync_mb_per_s,
            "rf3_limit_mb_per_s": round(fdatasync_mb_per_s / 3, 1), "limits": result}


def top_frames(path: str, count: int = 15) -> list[tuple[str, float]]:
    """The `count` frames with the most self samples in a py-spy raw profile, as (frame, share)."""
    totals: collections.Counter = collections.Counter()
    with open(path) as f:
        for line in f:
            stack, _, samples = line.rstrip("\n").rpartition(" ")
            if not stack or not samples.isdigit():
                continue
            totals[stack.rsplit(";", 1)[-1]] += int(samples)
    all_samples = sum(totals.values()) or 1
    return [(frame, round(n / all_samples, 3)) for frame, n in totals.most_common(count)]


def start_profilers(pids: list[int], profile_dir: str, label: str) -> list[tuple[subprocess.Popen, str]]:
    spies = []
    for number, pid in enumerate(pids, start=1):
        target = os.path.join(profile_dir, f"{label}-node{number}.txt")
        spy = subprocess.Popen([PY_SPY, "record", "--pid", str(pid), "-f", "raw", "--gil", "--native",
                                "-r", "100", "-o", target], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        spies.append((spy, target))
    time.sleep(1.0)                                         # attached before the phase starts
    return spies


def stop_profilers(spies: list[tuple[subprocess.Popen, str]]) -> dict:
    profiles = {}
    for spy, target in spies:
        spy.send_signal(signal.SIGINT)                      # py-spy writes its profile on SIGINT
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()
        if os.path.exists(target):
            profiles[os.path.basename(target)] = top_frames(target)
    return profiles


def produce_phase(cluster: dict, size: int, total_mb: float, profile_dir: str | None, batch_size: int | None = None,
                  partitions: int = PARTITIONS) -> dict:
    """One record size on its own topic: perf produce (its default batch size unless given), with
    per-process CPU per MB."""
    topic = f"bytes-{size}" if batch_size is None else f"bytes-{size}-batch-{batch_size}"
    create_topic(cluster["admin"], topic, 3, partitions)
    records = max(200, int(total_mb * 1e6 / size))
    argv = [FRESHET, "perf", "produce", "--topic", topic, "--num-records", str(records), "--record-size", str(size),
            "--acks", "all", "--bootstrap-server", cluster["bootstrap"], "--json"]
    if batch_size is not None:
        argv += ["--batch-size", str(batch_size)]
    pids = cluster["pids"]
    spies = start_profilers(pids, profile_dir, f"produce-{size}") if profile_dir else []
    before = [proc_cpu_s(pid) for pid in pids]
    try:
        result = measured(argv, pids)
    finally:
        profiles = stop_profilers(spies) if spies else None
    after = [proc_cpu_s(pid) for pid in pids]
    mb = result["records"] * size / 1e6
    if not mb:  # nothing acknowledged (e.g. a batch over the broker's request limit): say why
        raise SystemExit(f"perf produce of {size} B records acknowledged none: {result.get('first_error')}")
    # Every node leads or follows a partition: if one used almost no CPU, the client wrote to
    # another cluster (a port block taken by someone else between the scan and the bind).
    assert min(b - a for a, b in zip(before, after, strict=True)) > 0.002 * mb, (before, after, mb)
    result["node_cpu_s_per_mb"] = [round((b - a) / mb, 4) for a, b in zip(before, after, strict=True)]
    result["client_cpu_s_per_mb"] = round(result["client_process_cpu_s"] / mb, 4)
    if profiles is not None:
        result["profile_top_self"] = profiles
    return result


def run(sizes=(1024, 16384, 65536), total_mb: float = 300, tmp: str = "/tmp", skip_wait: bool = False,
        max_wait: float = 120, skip_limits: bool = False, profile_dir: str | None = None,
        extra_batch_size: int = 0, partitions: int = PARTITIONS) -> dict:
    """Run the benchmark (module docstring) and return its result dict."""
    gate = types.SimpleNamespace(skip_wait=skip_wait, max_wait=max_wait)
    wait_for_quiet(gate)
    started = time.monotonic()
    disk = None
    if not skip_limits:
        log("disk limit (limits.py --only disk)")
        disk = disk_limit(tmp)
        log(f"  fdatasync'd writes {disk['write_fdatasync_1MiB_mb_per_s']} MB/s -> RF 3 limit {disk['rf3_limit_mb_per_s']} MB/s")
    if profile_dir:
        os.makedirs(profile_dir, exist_ok=True)
    phases = {}
    # Ports away from the 21000 block the other benchmarks on this machine start their clusters in.
    with local_cluster(tmp, first_port=random.randrange(31000, 40000)) as cluster:
        for size in sizes:
            log(f"produce {size} B records")
            profile = profile_dir if profile_dir and size == max(sizes) else None
            phases[str(size)] = produce_phase(cluster, size, total_mb, profile, None, partitions)
            phase = phases[str(size)]
            log(f"  {phase['mb_per_s']} MB/s, node CPU s/MB {phase['node_cpu_s_per_mb']}, "
                f"other cores busy {phase['other_cores_busy']}")
        if extra_batch_size:
            log(f"produce {max(sizes)} B records in batches of {extra_batch_size} B")
            phases[f"{max(sizes)}@batch{extra_batch_size}"] = produce_phase(
                cluster, max(sizes), total_mb, None, extra_batch_size, partitions)
    table = {}
    for size, phase in phases.items():
        table[size] = {
            "mb_per_s": phase["mb_per_s"],
            "fraction_of_rf3_disk_limit": round(phase["mb_per_s"] / disk["rf3_limit_mb_per_s"], 3) if disk else None,
            "fraction_of_reference_rf3_disk_limit": round(phase["mb_per_s"] / REFERENCE_RF3_LIMIT_MB_PER_S, 3),
            "node_cpu_s_per_mb": phase["node_cpu_s_per_mb"],
            "client_cpu_s_per_mb": phase["client_cpu_s_per_mb"],
            "other_cores_busy": phase["other_cores_busy"],
            "errors": phase["errors"],
        }
    return {
        "bench": "bytes_produce", "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpus": os.cpu_count(),
        "partitions": partitions, "replicas": 3, "acks": "all", "total_mb_per_size": total_mb,
        "waited_for_quiet": not skip_wait, "max_wait_s": max_wait, "preflight_busy_cores": gate.preflight_busy_cores,
        "profiled": bool(profile_dir), "disk": disk, "reference_rf3_limit_mb_per_s": REFERENCE_RF3_LIMIT_MB_PER_S,
        "table": table, "phases": phases,
        "goal_64KiB_mb_per_s": 150, "total_s": round(time.monotonic() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1024,16384,65536", help="record sizes in bytes, comma-separated")
    parser.add_argument("--mb", type=float, default=300, help="MB of payload per size")
    parser.add_argument("--tmp", default="/tmp")
    parser.add_argument("--skip-wait", action="store_true", help="do not wait for an idle machine")
    parser.add_argument("--max-wait", type=float, default=120, help="give up waiting for an idle machine after this many s")
    parser.add_argument("--skip-limits", action="store_true", help="leave out limits.py (no fraction of the disk limit)")
    parser.add_argument("--profile-dir", help="py-spy every node during the largest size (see above)")
    parser.add_argument("--extra-batch-size", type=int, default=262_144,
                        help="also the largest size with this producer batch size (0: not)")
    parser.add_argument("--partitions", type=int, default=PARTITIONS, help="partitions per topic (the issue's trial: 3)")
    parser.add_argument("--name", default="bytes_produce", help="results file: tests/bench/results/2026-12-07-NAME.json")
    args = parser.parse_args()
    result = run(tuple(int(size) for size in args.sizes.split(",")), args.mb, args.tmp, args.skip_wait, args.max_wait,
                 args.skip_limits, args.profile_dir, args.extra_batch_size, args.partitions)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"2026-12-07-{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
