"""Consumer lag in time: what one refresh of the coordinator's LagTracker costs (not a timed test).

Run: .venv/bin/python -m tests.bench.lag_time_perf [--groups 100,1000] [--partitions 10]

Method: PARTITIONS real partition logs of 20,000 records (batches of 10) on local disk; GROUPS
groups each committed at a random offset of every partition; `LagTracker.refresh` with an `ask`
that answers every query the way the leader's FetchPath does (high watermark, then
`PartitionLog.timestamp_at`: offset index + header scan), leaders spread over 3 broker ids. No
network: the figure is the CPU of the coordinator's and the leaders' parts together, i.e. an upper
bound of what one broker spends when it is both. Also the single header lookup on its own.

Prints one JSON line: `lookup_us` (one timestamp_at), and per group count `refresh_ms`,
`committed_offsets`, `us_per_offset`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time

from freshet.server import status
from freshet.server.groups.lag import LagTracker
from freshet.storage.clock import ManualClock
from freshet.storage.config import LogConfig
from freshet.storage.log import PartitionLog
from freshet.storage.record_batch import Record, encode_batch
from freshet.v1 import replication_pb2

RECORDS_PER_PARTITION = 20_000
BATCH_RECORDS = 10
BASE_MS = 1_700_000_000_000


def build_logs(root: str, partitions: int) -> dict[tuple[str, int], PartitionLog]:
    logs = {}
    for partition in range(partitions):
        log = PartitionLog.open(f"{root}/t-{partition}", LogConfig(segment_bytes=16 * 1024 * 1024), ManualClock(BASE_MS))
        for batch in range(RECORDS_PER_PARTITION // BATCH_RECORDS):
            records = [Record(BASE_MS + batch * 10 + n, b"k", b"v" * 100) for n in range(BATCH_RECORDS)]
            log.append_as_leader(encode_batch(records), 0)
        logs[("t", partition)] = log
    return logs


def leader_answers(logs):
    ok = status.ok_detail()

    async def ask(leader: int, request: replication_pb2.RecordTimestampsRequest):
        response = replication_pb2.RecordTimestampsResponse()
        for query in request.queries:
            log = logs[(query.topic, query.partition)]
            high_watermark = log.log_end_offset
            found = log.timestamp_at(query.offset, high_watermark)
            response.results.add(
                topic=query.topic, partition=query.partition, offset=query.offset, error=ok,
                high_watermark=high_watermark, is_caught_up=found is None, timestamp=-1 if found is None else found,
            )
        return response

    return ask


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--groups", default="100,1000")
    parser.add_argument("--partitions", type=int, default=10)
    options = parser.parse_args()
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as root:
        logs = build_logs(root, options.partitions)
        first = logs[("t", 0)]
        offsets = [rng.randrange(RECORDS_PER_PARTITION) for _ in range(20_000)]
        start = time.perf_counter()
        for offset in offsets:
            first.timestamp_at(offset, RECORDS_PER_PARTITION)
        result = {"lookup_us": round((time.perf_counter() - start) / len(offsets) * 1e6, 1), "refreshes": []}
        for groups in (int(g) for g in options.groups.split(",")):
            committed = {
                f"g{n}": {("t", p): rng.randrange(RECORDS_PER_PARTITION) for p in range(options.partitions)}
                for n in range(groups)
            }
            tracker = LagTracker(
                lambda committed=committed: committed, lambda topic, partition: partition % 3, leader_answers(logs),
                lambda: BASE_MS + 600_000, lambda: 5000, lambda group: 0.0,
            )
            start = time.perf_counter()
            asyncio.run(tracker.refresh())
            took = time.perf_counter() - start
            count = groups * options.partitions
            result["refreshes"].append({
                "groups": groups, "committed_offsets": count, "refresh_ms": round(took * 1000, 1),
                "us_per_offset": round(took / count * 1e6, 1),
            })
        for log in logs.values():
            log.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
