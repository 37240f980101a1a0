"""A consumer-group member as its own process, for tests/cluster/test_group_cluster.py.

Not a test module. Usage: python group_member.py BOOTSTRAP GROUP TOPIC NAME [session_timeout_ms]

Subscribes, polls forever with auto commit every 200 ms, and prints one JSON line per event on
stdout (flushed): {"event": "assigned"|"revoked"|"lost", "partitions": [..], "t": monotonic} and
{"event": "records", "partition": p, "first": o, "last": o, "count": n, "t": ...}. Exits on SIGTERM
(closing the consumer: commit, revoke, leave); a test kill -9s it to simulate a crash.
"""

from __future__ import annotations

import json
import signal
import sys
import time

from freshet.client import Consumer, ConsumerRebalanceListener


def emit(**fields) -> None:
    fields["t"] = time.monotonic()
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


class Listener(ConsumerRebalanceListener):
    def on_partitions_revoked(self, revoked):
        emit(event="revoked", partitions=sorted(tp.partition for tp in revoked))

    def on_partitions_assigned(self, assigned):
        emit(event="assigned", partitions=sorted(tp.partition for tp in assigned))

    def on_partitions_lost(self, lost):
        emit(event="lost", partitions=sorted(tp.partition for tp in lost))


def main() -> None:
    bootstrap, group, topic, name = sys.argv[1:5]
    session_timeout_ms = int(sys.argv[5]) if len(sys.argv) > 5 else 6000
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    consumer = Consumer(
        bootstrap,
        group_id=group,
        client_id=name,
        auto_offset_reset="earliest",
        auto_commit_interval_ms=200,
        session_timeout_ms=session_timeout_ms,
        fetch_max_wait_ms=100,
    )
    consumer.subscribe([topic], listener=Listener())
    emit(event="started")
    while not stopping:
        by_partition: dict[int, list[int]] = {}
        for record in consumer.poll(timeout_ms=100):
            by_partition.setdefault(record.partition, []).append(record.offset)
        for partition, offsets in sorted(by_partition.items()):
            emit(event="records", partition=partition, first=offsets[0], last=offsets[-1], count=len(offsets))
    consumer.close()
    emit(event="closed")


if __name__ == "__main__":
    main()
