"""Helpers for in-process quorum tests: free loopback ports, voter configs, bounded waits.

Not a test module; imported by the integration tests of the metadata quorum.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator

from freshet.metadata import commands
from freshet.metadata.quorum import MetadataQuorum, QuorumConfig

PASSWORD = "test-raft-secret"


def free_ports(count: int) -> list[int]:
    """Ports the kernel just handed out on 127.0.0.1 (distinct; released before returning)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def voter_addresses(count: int) -> dict[int, str]:
    return {node_id: f"127.0.0.1:{port}" for node_id, port in enumerate(free_ports(count), start=1)}


def config(node_id: int, voters: dict[int, str], data_root, **overrides) -> QuorumConfig:
    values = dict(node_id=node_id, voters=voters, data_dir=str(data_root / f"voter-{node_id}"), password=PASSWORD)
    values.update(overrides)
    return QuorumConfig(**values)


def wait_until(predicate: Callable[[], object], timeout_s: float, what: str, interval_s: float = 0.01):
    """Poll `predicate` until it returns something truthy; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


def leader_of(quorums: dict[int, MetadataQuorum], timeout_s: float = 10.0) -> MetadataQuorum:
    """The single voter that believes it leads, once there is exactly one (with a known term)."""

    def single_leader():
        leaders = [q for q in quorums.values() if not q.is_closed and q.is_leader]
        return leaders[0] if len(leaders) == 1 else None

    return wait_until(single_leader, timeout_s, "a single leader")


def claim(leader: MetadataQuorum) -> int:
    """Make `leader` the active controller at its term; returns the controller epoch."""
    term = leader.term
    result = leader.propose(commands.claim_controller(f"claim-{leader.node_id}-{term}", leader.node_id, term)).result(10)
    assert result.error_code == 0, result.error_message
    return term


@contextlib.contextmanager
def running(configs: list[QuorumConfig]) -> Iterator[dict[int, MetadataQuorum]]:
    """Start every voter; close every one still open at the end (even on failure)."""
    quorums: dict[int, MetadataQuorum] = {}
    try:
        for cfg in configs:
            quorums[cfg.node_id] = MetadataQuorum(cfg)
        yield quorums
    finally:
        for quorum in quorums.values():
            quorum.close()
