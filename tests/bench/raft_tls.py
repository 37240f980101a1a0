"""The Raft TLS tunnel's cost: metadata commit latency and failover, plaintext vs TLS.

Usage: python -m tests.bench.raft_tls [--trials 3] [--commits 300]

Per trial and mode: three MetadataQuorum voters in one process (loopback, free ports, fsync on as
in production), the leader claims the controller role, then commits `--commits` no-op commands one
after another (latency = propose -> result); then the leader is closed and the time until another
voter leads is measured. The TLS mode uses certificates from a fresh CA and the same RaftTls the
node builds (server/node.py); plaintext is pysyncobj's own TCP (both with the Fernet password).
Prints one JSON line per mode with p50/p99 commit latency and the failover times.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

from freshet.metadata import commands as c
from freshet.metadata.quorum import MetadataQuorum, QuorumConfig
from freshet.metadata.raft_tunnel import RaftTls
from freshet.server.security import certificates, tls

from tests.support.ports import free_ports


def make_tls(directory: str) -> RaftTls:
    ca = certificates.create_ca()
    node = certificates.issue(ca, "freshet-node", ("localhost", "127.0.0.1"))
    paths = {name: os.path.join(directory, name) for name in ("ca.pem", "node.pem", "node.key")}
    certificates.write_private(paths["ca.pem"], ca.certificate_pem)
    certificates.write_private(paths["node.pem"], node.certificate_pem)
    certificates.write_private(paths["node.key"], node.key_pem)
    material = tls.TlsMaterial(tls.TlsSettings(paths["node.pem"], paths["node.key"], paths["ca.pem"]))
    return RaftTls(lambda: material.server_context(client_auth=tls.CLIENT_AUTH_REQUIRED), material.client_context)


def wait_leader(voters: dict[int, MetadataQuorum], timeout_s: float = 20.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        leaders = [node_id for node_id, voter in voters.items() if voter.is_leader]
        if leaders:
            return leaders[0]
        time.sleep(0.002)
    raise TimeoutError("no leader")


def trial(is_tls: bool, commits: int) -> tuple[list[float], float]:
    with tempfile.TemporaryDirectory(prefix="raft-tls-bench-") as directory:
        raft_tls = make_tls(directory) if is_tls else None
        ports = free_ports(3)
        addresses = {i + 1: f"127.0.0.1:{port}" for i, port in enumerate(ports)}
        voters = {
            node_id: MetadataQuorum(
                QuorumConfig(
                    node_id=node_id, voters=addresses, data_dir=os.path.join(directory, f"v{node_id}"),
                    password="bench-secret", tls=raft_tls,
                )
            )
            for node_id in addresses
        }
        try:
            leader = wait_leader(voters)
            quorum = voters[leader]
            term = quorum.term
            quorum.propose(c.claim_controller(f"claim-{leader}-{term}", leader, term)).result(10)
            latencies = []
            for i in range(commits):
                started = time.perf_counter()
                quorum.propose(c.noop(f"noop-{i}", term)).result(10)
                latencies.append(time.perf_counter() - started)
            stopped = time.monotonic()
            quorum.close()
            others = {node_id: voter for node_id, voter in voters.items() if node_id != leader}
            wait_leader(others)
            failover = time.monotonic() - stopped
            return latencies, failover
        finally:
            for voter in voters.values():
                voter.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--commits", type=int, default=300)
    args = parser.parse_args()
    for is_tls in (False, True):
        latencies: list[float] = []
        failovers: list[float] = []
        for _ in range(args.trials):
            trial_latencies, failover = trial(is_tls, args.commits)
            latencies += trial_latencies
            failovers.append(failover)
        print(json.dumps({
            "mode": "tls" if is_tls else "plaintext",
            "commits": len(latencies),
            "commit_p50_ms": round(percentile(latencies, 0.5) * 1000, 2),
            "commit_p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
            "commit_mean_ms": round(statistics.fmean(latencies) * 1000, 2),
            "failover_s": [round(f, 3) for f in failovers],
            "failover_median_s": round(statistics.median(failovers), 3),
        }), flush=True)


if __name__ == "__main__":
    main()
