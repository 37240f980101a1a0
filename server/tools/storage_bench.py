"""Storage benchmark: the partition log against raw file I/O, measured in the same process.

Owns `python -m freshet.server.tools.storage_bench` (also `freshet perf storage`). It prints one JSON line on
stdout (progress goes to stderr) with:

- append MB/s of 1 KiB records in 16 KiB, 64 KiB and 1 MiB batches, through `append_as_leader`
  (validates framing and the CRC, assigns offsets, stamps) and `append_as_follower` (framing and
  offsets only), next to plain sequential `os.write()` of the same bytes to a file in the same
  directory; each figure is the median of interleaved repeats;
- sequential read MB/s through `read(offset, 1 MiB)` next to plain `os.read()` of the same files,
  both from a warm page cache;
- random `read(offset)` latency p50/p99 for logs of 1e4, 1e6 and 1e7 small records (16-byte
  values, 100 per batch, 16 MiB segments), which must stay flat as the log grows;
- the record codec's cost per 1 KiB record (encode, decode with and without the CRC check) and
  the CRC-32C throughput, which bounds the leader's append rate.

Nothing is fsynced (neither side): like Kafka's defaults this measures the software path to the
page cache. Everything runs in a temporary directory that is removed at the end.

Imports: standard library, crcmod and `freshet.storage`. Forbidden: grpc, wire types (freshet.v1),
metadata, server, client, cli (import-linter contract).

Thread-safety: a command-line program; not for concurrent use.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

from freshet.storage.clock import SystemClock
from freshet.storage.config import LogConfig
from freshet.storage.log import PartitionLog
from freshet.storage.record_batch import Record, decode_batch, encode_batch, iter_batches

RECORD_VALUE_BYTES = 1024
BATCH_SIZES = {"16KiB": 16 * 1024, "64KiB": 64 * 1024, "1MiB": 1024 * 1024}
READ_BYTES_MAX = 1024 * 1024
SMALL_VALUE_BYTES = 16
SMALL_RECORDS_PER_BATCH = 100
RANDOM_READ_SEGMENT_BYTES = 16 * 1024 * 1024
GOAL_APPEND_RATIO = 0.70
GOAL_READ_RATIO = 0.80


def _progress(message: str) -> None:
    print(f"[freshet bench] {message}", file=sys.stderr, flush=True)


def _one_kib_batch(target_bytes: int, seed: int) -> bytes:
    """A batch of 1 KiB-value records whose size is close to `target_bytes`."""
    rng = random.Random(seed)
    count = max(1, (target_bytes - 61) // (RECORD_VALUE_BYTES + 12))
    now = int(time.time() * 1000)
    records = [Record(now, None, rng.randbytes(RECORD_VALUE_BYTES)) for _ in range(count)]
    return bytes(encode_batch(records))


def _settle() -> None:
    """Write back dirty pages left by earlier runs, so each timed run starts from a clean page cache.

    On a small VM the kernel throttles writers once a few hundred MB are dirty; without this the
    second run of a pair would pay for the first one's write-back.
    """
    os.sync()
    time.sleep(0.2)


def _timed(function: Callable[[], None]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def _raw_write(path: str, payloads: list[bytes]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write = os.write
        for payload in payloads:
            write(fd, payload)
    finally:
        os.close(fd)


def _config(segment_bytes: int = 1024 * 1024 * 1024) -> LogConfig:
    return LogConfig(segment_bytes=segment_bytes, max_message_bytes=2 * 1024 * 1024, retention_ms=-1)


def bench_append(directory: str, total_bytes: int, repeats: int) -> dict[str, dict[str, float]]:
    """Append throughput per batch size: leader, follower and raw write of the same bytes.

    Every side gets distinct buffers in memory, as a server gets from the network (writing one
    cache-hot buffer over and over would flatter the raw baseline).
    """
    results: dict[str, dict[str, float]] = {}
    for label, target in BATCH_SIZES.items():
        batch = _one_kib_batch(target, seed=target)
        count = max(1, total_bytes // len(batch))
        payloads = [bytes(bytearray(batch)) for _ in range(count)]
        volume_mb = count * len(batch) / 1e6
        raw_times, leader_times, follower_times = [], [], []
        for repeat in range(repeats):
            raw_path = os.path.join(directory, f"raw-{label}-{repeat}.bin")
            _settle()
            raw_times.append(_timed(lambda: _raw_write(raw_path, payloads)))  # noqa: B023
            os.unlink(raw_path)

            leader = PartitionLog.open(
                os.path.join(directory, f"leader-{label}-{repeat}"), _config(), SystemClock()
            )
            append = leader.append_as_leader
            _settle()
            leader_times.append(_timed(lambda: [append(payload, 1) for payload in payloads]))  # noqa: B023
            # The follower receives what the leader stored (stamped offsets), in the same batch sizes.
            stored = [bytes(view) for _, view in iter_batches(_read_everything(leader))]
            leader.delete()

            follower = PartitionLog.open(
                os.path.join(directory, f"follower-{label}-{repeat}"), _config(), SystemClock()
            )
            append_follower = follower.append_as_follower
            _settle()
            follower_times.append(_timed(lambda: [append_follower(data) for data in stored]))  # noqa: B023
            follower.delete()
        raw = volume_mb / statistics.median(raw_times)
        leader_rate = volume_mb / statistics.median(leader_times)
        follower_rate = volume_mb / statistics.median(follower_times)
        results[label] = {
            "batch_bytes": len(batch),
            "raw_write_mb_s": round(raw, 1),
            "leader_append_mb_s": round(leader_rate, 1),
            "follower_append_mb_s": round(follower_rate, 1),
            "leader_ratio": round(leader_rate / raw, 3),
            "follower_ratio": round(follower_rate / raw, 3),
        }
        _progress(f"append {label}: {results[label]}")
    return results


def _read_everything(log: PartitionLog) -> bytes:
    chunks = []
    offset = log.log_start_offset
    end = log.log_end_offset
    while offset < end:
        records = log.read(offset, READ_BYTES_MAX).records
        chunks.append(records)
        last = None
        for header, _ in iter_batches(records):
            last = header
        assert last is not None
        offset = last.next_offset
    return b"".join(chunks)


def bench_sequential_read(directory: str, total_bytes: int, repeats: int) -> dict[str, float]:
    """Whole-log read through read(offset, 1 MiB) against os.read of the same segment files."""
    batch = _one_kib_batch(BATCH_SIZES["64KiB"], seed=7)
    log = PartitionLog.open(os.path.join(directory, "read"), _config(64 * 1024 * 1024), SystemClock())
    for _ in range(max(1, total_bytes // len(batch))):
        log.append_as_leader(batch, 1)
    log.flush()
    files = sorted(
        os.path.join(log.directory, name) for name in os.listdir(log.directory) if name.endswith(".log")
    )
    volume = sum(os.path.getsize(path) for path in files)

    def raw_read() -> None:
        for path in files:
            fd = os.open(path, os.O_RDONLY)
            try:
                while os.read(fd, READ_BYTES_MAX):
                    pass
            finally:
                os.close(fd)

    def log_read() -> None:
        offset, end = log.log_start_offset, log.log_end_offset
        read = log.read
        while offset < end:
            offset = read(offset, READ_BYTES_MAX).next_offset

    _settle()
    raw_read()
    log_read()  # warm the page cache and the index mappings for both
    raw_times, log_times = [], []
    for _ in range(repeats):
        raw_times.append(_timed(raw_read))
        log_times.append(_timed(log_read))
    log.delete()
    raw = volume / 1e6 / statistics.median(raw_times)
    ours = volume / 1e6 / statistics.median(log_times)
    result = {
        "batch_bytes": len(batch),
        "max_bytes_per_read": READ_BYTES_MAX,
        "raw_read_mb_s": round(raw, 1),
        "log_read_mb_s": round(ours, 1),
        "ratio": round(ours / raw, 3),
    }
    _progress(f"sequential read: {result}")
    return result


def bench_random_read(directory: str, record_counts: list[int], samples: int) -> list[dict[str, float]]:
    """p50/p99 of read(offset, 1) at random offsets, for logs of growing size."""
    now = int(time.time() * 1000)
    rng = random.Random(3)
    template = bytes(
        encode_batch(
            [Record(now, None, rng.randbytes(SMALL_VALUE_BYTES)) for _ in range(SMALL_RECORDS_PER_BATCH)]
        )
    )
    results = []
    for records in record_counts:
        log = PartitionLog.open(
            os.path.join(directory, f"random-{records}"), _config(RANDOM_READ_SEGMENT_BYTES), SystemClock()
        )
        started = time.perf_counter()
        append = log.append_as_leader
        for _ in range(max(1, records // SMALL_RECORDS_PER_BATCH)):
            append(template, 1)
        build_s = time.perf_counter() - started
        end = log.log_end_offset
        read = log.read
        for _ in range(min(samples, 500)):
            read(rng.randrange(end), 1)
        latencies = []
        perf_counter = time.perf_counter
        for _ in range(samples):
            offset = rng.randrange(end)
            start = perf_counter()
            result = read(offset, 1)
            latencies.append(perf_counter() - start)
            assert result.records
        latencies.sort()
        entry = {
            "records": end,
            "segments": log.segment_count,
            "log_bytes": log.size_bytes,
            "build_s": round(build_s, 2),
            "p50_us": round(latencies[len(latencies) // 2] * 1e6, 1),
            "p99_us": round(latencies[int(len(latencies) * 0.99)] * 1e6, 1),
        }
        log.delete()
        results.append(entry)
        _progress(f"random read: {entry}")
    return results


def bench_codec(seconds: float) -> dict[str, float]:
    """Client-side cost per 1 KiB record: encode, decode (with/without CRC check); CRC-32C MB/s."""
    import crcmod.predefined

    rng = random.Random(5)
    now = int(time.time() * 1000)
    records = [Record(now + n, None, rng.randbytes(RECORD_VALUE_BYTES)) for n in range(64)]
    batch = encode_batch(records)

    def per_record(function: Callable[[], object]) -> float:
        iterations = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            function()
            iterations += 1
        return (time.perf_counter() - start) / iterations / len(records) * 1e6

    crc32c = crcmod.predefined.mkCrcFun("crc-32c")
    data = rng.randbytes(1024 * 1024)
    iterations = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        crc32c(data)
        iterations += 1
    crc_mb_s = iterations * len(data) / 1e6 / (time.perf_counter() - start)
    result = {
        "records_per_batch": len(records),
        "encode_us_per_record": round(per_record(lambda: encode_batch(records)), 2),
        "decode_us_per_record": round(per_record(lambda: decode_batch(batch)), 2),
        "decode_without_crc_us_per_record": round(
            per_record(lambda: decode_batch(batch, verify_crc=False)), 2
        ),
        "crc32c_mb_s": round(crc_mb_s, 1),
    }
    _progress(f"codec: {result}")
    return result


def run(*, quick: bool = False, directory: str | None = None) -> dict[str, object]:
    """Run every measurement and return the result document (see the module docstring)."""
    started = time.perf_counter()
    parent = directory or tempfile.gettempdir()
    workdir = tempfile.mkdtemp(prefix="freshet-bench-", dir=parent)
    try:
        # Runs stay below the few hundred MB of dirty pages a small VM buffers before throttling.
        append_bytes = 16 * 1024 * 1024 if quick else 96 * 1024 * 1024
        repeats = 1 if quick else 5
        record_counts = [10_000, 100_000, 1_000_000] if quick else [10_000, 1_000_000, 10_000_000]
        samples = 500 if quick else 3000
        result: dict[str, object] = {
            "bench": "freshet.storage",
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "quick": quick,
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "directory": parent,
            },
            "record_value_bytes": RECORD_VALUE_BYTES,
            "append_bytes_per_run": append_bytes,
            "repeats": repeats,
        }
        result["codec"] = bench_codec(0.2 if quick else 1.0)
        result["append"] = bench_append(workdir, append_bytes, repeats)
        result["sequential_read"] = bench_sequential_read(workdir, append_bytes, repeats)
        result["random_read"] = {
            "value_bytes": SMALL_VALUE_BYTES,
            "records_per_batch": SMALL_RECORDS_PER_BATCH,
            "segment_bytes": RANDOM_READ_SEGMENT_BYTES,
            "samples": samples,
            "logs": bench_random_read(workdir, record_counts, samples),
        }
        append_64 = result["append"]["64KiB"]  # type: ignore[index]
        read = result["sequential_read"]
        result["goals"] = {
            "append_ratio_min_at_64KiB": GOAL_APPEND_RATIO,
            "leader_append_met": append_64["leader_ratio"] >= GOAL_APPEND_RATIO,
            "follower_append_met": append_64["follower_ratio"] >= GOAL_APPEND_RATIO,
            "read_ratio_min": GOAL_READ_RATIO,
            "read_met": read["ratio"] >= GOAL_READ_RATIO,  # type: ignore[index]
        }
        result["elapsed_s"] = round(time.perf_counter() - started, 1)
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: print one JSON line with every figure."""
    parser = argparse.ArgumentParser(
        prog="python -m freshet.server.tools.storage_bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="a short run (smaller logs, one repeat)")
    parser.add_argument(
        "--dir", default=None, help="parent directory for the temporary files (default: the temp dir)"
    )
    arguments = parser.parse_args(argv)
    print(json.dumps(run(quick=arguments.quick, directory=arguments.dir)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
