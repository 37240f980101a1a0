"""Reading a partition's replicas straight from their nodes: the durability checks' raw material.

Not a test module; shared by tests/cluster/test_replication_cluster.py (`verify_replicas`) and the
nemesis checker (tests/support/nemesis/). `segment_bytes` concatenates one replica's segment files
from its node's data directory (read after the cluster healed); `log_records` decodes them into
{offset: value}, checking that the log starts at offset 0 and its batches follow each other without gaps or
overlaps;
`replica_state` is one node's /status entry for a partition (role, ISR, log end offset, high
watermark). Thread-safe (no shared state).
"""

from __future__ import annotations

import pathlib

from freshet.storage.record_batch import decode_batch, iter_batches


def segment_bytes(root: pathlib.Path, node_id: int, topic: str, number: int) -> bytes:
    """Node `node_id`'s segments of topic-number, in offset order, as one byte string."""
    directory = pathlib.Path(root) / f"node-{node_id}" / "logs" / f"{topic}-{number}"
    return b"".join(path.read_bytes() for path in sorted(directory.glob("*.log")))


def log_records(image: bytes, where: str) -> tuple[dict[int, bytes | None], int]:
    """The records of a replica's segments as {offset: value}, and the log end offset.

    Raises AssertionError when a batch does not start where the one before it ended (a gap or an
    overlap), naming `where`."""
    values: dict[int, bytes | None] = {}
    expected = 0
    for header, view in iter_batches(image):
        assert header.base_offset == expected, (
            f"{where}: gap or overlap at {expected} (batch at {header.base_offset})")
        for record in decode_batch(view).records:
            values[record.offset] = record.value
        expected = header.base_offset + header.last_offset_delta + 1
    return values, expected


def replica_state(cluster, node_id: int, topic: str, number: int) -> dict | None:
    """`node_id`'s /status data-plane entry for topic-number (None when it does not answer)."""
    status = cluster.status(node_id)
    if status is None or "data_plane" not in status:
        return None
    for entry in status["data_plane"]["partitions"]:
        if (entry["topic"], entry["partition"]) == (topic, number):
            return entry
    return None
