"""A live `freshet cluster up` and a way to run the `freshet` CLI against it, for CLI tests.

Not a test module; imported by tests/cluster/test_cli_e2e.py and test_readme.py. The cluster runs
on a free block of loopback ports (tests.support.ports.free_port_block); every process started (the
supervisor and, by the pids it reports, its nodes, plus any node restarted by a test) is killed
by pid in `close()`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

from tests.support.ports import free_port_block

CLI = [sys.executable, "-m", "freshet.cli.main"]


class ClusterUp:
    """A `freshet cluster up --json` child with 3 nodes. Not thread-safe (one test thread)."""

    def __init__(self, data_dir, nodes: int = 3, base_port: int | None = None) -> None:
        """Start `cluster up` on `data_dir`; `base_port` (default: a free block) restarts a
        cluster on the ports its data was created with."""
        self.data_dir = data_dir
        self.base_port = base_port if base_port is not None else free_port_block(10 * (nodes - 1) + 4)
        self.process = subprocess.Popen(
            [*CLI, "cluster", "up", "--nodes", str(nodes), "--data-dir", str(data_dir),
             "--base-port", str(self.base_port), "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: list[str] = []
        self.errors: list[str] = []
        for stream, into in ((self.process.stdout, self.lines), (self.process.stderr, self.errors)):
            threading.Thread(target=self._read, args=(stream, into), daemon=True).start()
        self.node_pids: dict[int, int] = {}
        self.extra_pids: list[int] = []
        self.bootstrap = ""
        self.kafka_bootstrap = ""

    @staticmethod
    def _read(stream, into: list[str]) -> None:
        for line in stream:
            into.append(line)

    def wait_ready(self, timeout_s: float = 90) -> str:
        deadline = time.monotonic() + timeout_s
        while not self.lines:
            assert self.process.poll() is None, f"cluster up exited early: {''.join(self.errors)}"
            assert time.monotonic() < deadline, f"no bootstrap line after {timeout_s} s: {''.join(self.errors)}"
            time.sleep(0.05)
        found = json.loads(self.lines[0])
        self.node_pids = {node["id"]: node["pid"] for node in found["nodes"]}
        self.bootstrap = found["bootstrap"]
        self.kafka_bootstrap = found["kafka_bootstrap"]
        return self.bootstrap

    def port(self, node_id: int) -> int:
        """The gRPC port of node `node_id` (Raft +1, HTTP +2, Kafka +3)."""
        return self.base_port + (node_id - 1) * 10

    def close(self) -> None:
        """SIGTERM the supervisor (it stops its nodes), then SIGKILL everything still alive."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                pass
        for pid in [*self.node_pids.values(), *self.extra_pids, self.process.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(10)


def run_cli(
    args: list[str], bootstrap: str | None, *, input: str | None = None, timeout_s: float = 90, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run `freshet ARGS` to completion (FRESHET_BOOTSTRAP=bootstrap unless None)."""
    environment = dict(os.environ)
    environment.pop("FRESHET_BOOTSTRAP", None)
    environment.pop("FRESHET_DEBUG", None)
    if bootstrap is not None:
        environment["FRESHET_BOOTSTRAP"] = bootstrap
    environment.update(env or {})
    return subprocess.run(
        [*CLI, *args], input=input, capture_output=True, text=True, timeout=timeout_s, env=environment
    )


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The stderr of a failed command, asserted to be exactly one `error: ...` line."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one error line, got:\n{result.stderr}"
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in result.stderr
    return lines[0]
