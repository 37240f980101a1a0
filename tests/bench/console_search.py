"""The console's message search: how far it scans and how fast (README "Message search").

Run: .venv/bin/python -m tests.bench.console_search [--records 1000000] [--value-bytes 200]

Method: one in-process combined node (real gRPC on loopback, tests/support/inprocess_nodes.py);
RECORDS records of VALUE_BYTES random-looking printable bytes with a 16-byte key, produced with
the SDK (batch.size 256 KiB, linger 20 ms, uncompressed) into one partition; every 1000th record
carries the word "needle" in its value, record 777 also a header "trace-id: marker". Then
`messages.browse` as the console calls it, each scan over the whole partition (budget wide open):

- absent:   a literal found nowhere: every batch is skipped on its raw bytes, never decoded;
- sparse:   "needle" (1 record in 1000): only batches holding it are decoded;
- regex:    a regular expression (every batch decoded, every record matched);
- nocase:   the literal, case-insensitive (raw bytes lower-cased, then the sparse path);
- header:   "marker" (found in one header only: raw filter, then one batch decoded);
- page:     one page of 50 rows, no search (newest first), the browser's common case.

Prints one JSON line per scenario: records and bytes scanned, seconds, records/s, MB/s, rows
found, batches skipped unread; and one for the load (records/s produced).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import random
import string
import tempfile
import time

from freshet.client import Producer
from freshet.server.http.console_data import actions, messages
from freshet.server.http.console_data.messages import BrowseQuery, ScanBudget, SearchSpec
from freshet.server.security.authorizer import Caller

from tests.support.inprocess_nodes import InProcessCluster

TOPIC = "console-search-bench"
WIDE_OPEN = ScanBudget(records_max=10**9, bytes_max=10**12, seconds_max=600)


def load(nodes: InProcessCluster, records: int, value_bytes: int) -> float:
    backend = nodes.nodes[1].console
    actions.create_topic(backend, Caller(), TOPIC, partitions=1, replication_factor=1)
    rng = random.Random(17)
    alphabet = (string.ascii_letters + string.digits + " ,.:;-").encode()
    pool = [bytes(rng.choice(alphabet) for _ in range(value_bytes)) for _ in range(64)]
    started = time.monotonic()
    with Producer(f"127.0.0.1:{nodes.ports[1]}", acks=1, linger_ms=20, batch_size=256 * 1024) as producer:
        for i in range(records):
            value = pool[i % 64]
            if i % 1000 == 500:
                value = b"needle " + value[7:]
            headers = [("trace-id", b"marker")] if i == 777 else None
            producer.send(TOPIC, value, key=b"key-%012d" % i, headers=headers, partition=0)
        producer.flush()
    return records / (time.monotonic() - started)


def scan(nodes: InProcessCluster, name: str, query: BrowseQuery) -> dict:
    backend = nodes.nodes[1].console
    page = messages.browse(backend, Caller(), query)
    stats = page.stats
    return {
        "scenario": name, "records": stats.records, "bytes": stats.bytes, "seconds": round(stats.seconds, 3),
        "records_per_s": round(stats.records_per_s), "mb_per_s": round(stats.megabytes_per_s, 1),
        "rows": len(page.rows), "batches_skipped": stats.batches_skipped, "stopped_by": page.stopped_by,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--value-bytes", type=int, default=200)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as root, InProcessCluster(pathlib.Path(root), controllers=1) as nodes:
        nodes.start_all()
        rate = load(nodes, arguments.records, arguments.value_bytes)
        print(json.dumps({"load_records": arguments.records, "value_bytes": arguments.value_bytes,
                          "produced_records_per_s": round(rate)}), flush=True)
        limit = messages.LIMIT_MAX
        scenarios = [
            ("absent", SearchSpec("zzqqxx-not-there")),
            ("sparse", SearchSpec("needle")),
            ("regex", SearchSpec(r"need[l]e", is_regex=True)),
            ("nocase", SearchSpec("NEEDLE", ignore_case=True)),
            ("header", SearchSpec("marker")),
        ]
        for name, spec in scenarios:
            print(json.dumps(scan(nodes, name, BrowseQuery(TOPIC, partition=0, limit=limit, search=spec, budget=WIDE_OPEN))), flush=True)
        print(json.dumps(scan(nodes, "page", BrowseQuery(TOPIC, partition=0, limit=50))), flush=True)


if __name__ == "__main__":
    main()
