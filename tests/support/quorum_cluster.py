"""Runs quorum_harness.py voters as child processes on loopback and talks to them.

Not a test module; imported by the cluster tests and by tests/bench/metadata_perf.py. Every process it
starts is tracked by pid and killed in `close()` (use it as a context manager).
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from tests.support.ports import free_ports

HARNESS = pathlib.Path(__file__).resolve().parent / "quorum_harness.py"
PASSWORD = "cluster-test-secret"


class VoterProcess:
    """One harness child: its stdin for requests, a thread collecting its stdout events.

    Thread-safe for `wait_for` and `events` (guarded by a condition); send/kill from one thread.
    """

    def __init__(self, node_id: int, argv: list[str], log_path: pathlib.Path) -> None:
        self.node_id = node_id
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, str(HARNESS), *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
        )
        self.pid = self.process.pid
        self.events: list[dict] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, name=f"harness-{node_id}-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self._changed:
                self.events.append(event)
                self._changed.notify_all()
        with self._changed:
            self.events.append({"event": "eof", "node": self.node_id})
            self._changed.notify_all()

    @property
    def is_alive(self) -> bool:
        return self.process.poll() is None

    def send(self, **request) -> bool:
        """Write a request; False when the process is gone."""
        try:
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False

    def wait_for(self, predicate: Callable[[dict], bool], timeout_s: float, start: int = 0) -> dict | None:
        """The first event at index >= start satisfying predicate, waiting up to timeout_s."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            index = start
            while True:
                while index < len(self.events):
                    if predicate(self.events[index]):
                        return self.events[index]
                    index += 1
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.events and self.events[-1]["event"] == "eof"):
                    return None
                self._changed.wait(remaining)

    def request(self, timeout_s: float = 10.0, **request) -> dict | None:
        """Send a request that answers with an event named like its op; return that event."""
        start = len(self.events)
        if not self.send(**request):
            return None
        return self.wait_for(lambda e: e["event"] == request["op"], timeout_s, start)

    def kill(self) -> None:
        """SIGKILL (kill -9) and reap."""
        if self.is_alive:
            os.kill(self.pid, signal.SIGKILL)
        self.process.wait(10)
        self._reader.join(10)
        self._log.close()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask for a clean exit; SIGKILL if it does not come."""
        if self.is_alive:
            self.send(op="exit")
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class HarnessCluster:
    """N voters (processes) with fixed ports and data directories, restartable. Not thread-safe."""

    def __init__(self, root: pathlib.Path, size: int = 3, extra_args: Callable[[int], list[str]] | None = None,
                 raw: bool = False, snapshot_min_entries: int = 20_000) -> None:
        self.root = root
        self.voters = {n: f"127.0.0.1:{port}" for n, port in enumerate(free_ports(size), start=1)}
        self.extra_args = extra_args or (lambda node_id: [])
        self.raw = raw
        self.snapshot_min_entries = snapshot_min_entries
        self.processes: dict[int, VoterProcess] = {}
        self.all_processes: list[VoterProcess] = []
        root.mkdir(parents=True, exist_ok=True)

    def argv(self, node_id: int) -> list[str]:
        argv = [
            "--node-id", str(node_id),
            "--voters", ",".join(f"{n}={a}" for n, a in self.voters.items()),
            "--data-dir", str(self.root / f"voter-{node_id}"),
            "--password", PASSWORD,
            "--snapshot-min-entries", str(self.snapshot_min_entries),
        ]
        if self.raw:
            argv.append("--raw")
        return argv + self.extra_args(node_id)

    def start(self, node_id: int) -> VoterProcess:
        assert node_id not in self.processes or not self.processes[node_id].is_alive
        process = VoterProcess(node_id, self.argv(node_id), self.root / f"voter-{node_id}.log")
        self.processes[node_id] = process
        self.all_processes.append(process)
        return process

    def start_all(self, timeout_s: float = 30.0) -> None:
        for node_id in self.voters:
            self.start(node_id)
        for process in self.processes.values():
            if process.wait_for(lambda e: e["event"] == "ready", timeout_s) is None:
                raise AssertionError(f"voter {process.node_id} did not start:\n{process.log_tail()}")

    def kill(self, node_id: int) -> None:
        self.processes[node_id].kill()

    def kill_all(self) -> None:
        for process in self.processes.values():
            if process.is_alive:
                os.kill(process.pid, signal.SIGKILL)
        for process in self.processes.values():
            process.kill()

    def leader(self, timeout_s: float = 10.0, claimed: bool = True) -> VoterProcess:
        """The live voter that most recently became leader (and, by default, claimed)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            best = None
            for process in self.processes.values():
                if not process.is_alive:
                    continue
                marks = [e for e in process.events if e["event"] in ("leadership", "claimed")]
                if not marks:
                    continue
                last_leadership = next((e for e in reversed(marks) if e["event"] == "leadership"), None)
                if last_leadership is None or not last_leadership["is_leader"]:
                    continue
                if claimed and not any(e["event"] == "claimed" and e["epoch"] == last_leadership["term"] for e in marks):
                    continue
                if best is None or last_leadership["term"] > best[0]:
                    best = (last_leadership["term"], process)
            if best is not None:
                return best[1]
            time.sleep(0.01)
        logs = "\n".join(f"--- voter {p.node_id}\n{p.log_tail()}" for p in self.processes.values())
        raise AssertionError(f"no leader within {timeout_s} s\n{logs}")

    def acknowledged(self) -> dict[str, dict]:
        """Every acknowledged command across every process this cluster ever ran: rid -> ack."""
        acks: dict[str, dict] = {}
        for process in self.all_processes:
            for event in list(process.events):
                if event["event"] == "ack":
                    acks.setdefault(event["rid"], event)
        return acks

    def close(self) -> None:
        for process in self.all_processes:
            if process.is_alive:
                os.kill(process.pid, signal.SIGKILL)
        for process in self.all_processes:
            try:
                process.kill()
            except Exception:  # noqa: BLE001 - best effort cleanup of every child
                pass

    def __enter__(self) -> HarnessCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
