"""Helpers for in-process quorum tests: voter addresses and configs, leaders, running voters.

Not a test module; imported by the integration tests of the metadata quorum.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from freshet.metadata import commands
from freshet.metadata.quorum import MetadataQuorum, QuorumConfig

from tests.support.ports import free_ports
from tests.support.waiting import wait_until

PASSWORD = "test-raft-secret"


def voter_addresses(count: int) -> dict[int, str]:
    return {node_id: f"127.0.0.1:{port}" for node_id, port in enumerate(free_ports(count), start=1)}


def config(node_id: int, voters: dict[int, str], data_root, **overrides) -> QuorumConfig:
    values = dict(node_id=node_id, voters=voters, data_dir=str(data_root / f"voter-{node_id}"), password=PASSWORD)
    values.update(overrides)
    return QuorumConfig(**values)


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
