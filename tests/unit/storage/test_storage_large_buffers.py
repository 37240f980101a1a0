"""storage/large_buffers.py: batch-sized buffers come from the heap once the thresholds are raised.

Each case runs in a child interpreter: the setting is process-wide and one-way, and the page-fault
counts must not include what this test process allocated before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

# Builds and serialises 200 produce requests carrying a 196 KiB batch (what the SDK does per batch)
# and reports the minor page faults taken meanwhile.
_CHILD = """
import json, os, resource, sys
from freshet.storage import large_buffers
is_set = large_buffers.keep_large_buffers() if sys.argv[1] == "tune" else None
from freshet.v1 import broker_pb2
data = os.urandom(3 * 65600)
def build():
    request = broker_pb2.ProduceRequest(acks=-1, partitions=[broker_pb2.PartitionRecords(topic="t", records=data)])
    return request.SerializeToString()
build()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(200):
    build()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"is_set": is_set, "faults": faults, "again": large_buffers.keep_large_buffers() if is_set else None}))
"""


def _child(mode: str, env: dict[str, str] | None = None) -> dict:
    done = subprocess.run([sys.executable, "-c", _CHILD, mode], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_keep_large_buffers_removes_the_page_faults_of_batch_sized_protobuf_messages():
    """Without the tuning glibc mmaps protobuf's arena blocks afresh for every message: 200
    requests of 196 KiB take thousands of minor faults; with it, reuse from the heap takes almost none."""
    plain = _child("plain")
    tuned = _child("tune")
    assert tuned["is_set"] is True
    assert tuned["again"] is True                      # idempotent: the second call reports the same
    assert plain["faults"] > 2000, plain
    assert tuned["faults"] < plain["faults"] / 10, (plain, tuned)


def test_the_environment_variable_turns_the_tuning_off():
    env = {**os.environ, "FRESHET_KEEP_LARGE_BUFFERS": "0"}
    off = _child("tune", env)
    assert off["is_set"] is False
    assert off["faults"] > 2000, off
