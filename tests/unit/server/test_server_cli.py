"""The `freshet server start` / `freshet cluster up` command lines: usage errors and refusals.

Goal (INTERFACE.md): bad usage exits 2 and a refusal exits 1, each with one readable line on
stderr and never a traceback. Method: run the real console entry point as a subprocess.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest


def freshet(*args: str, timeout_s: float = 60.0, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "freshet.cli.main", *args], capture_output=True, text=True, timeout=timeout_s, cwd=cwd
    )


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["server", "start", "--bogus"], "No such option: --bogus"),
        (["server", "start", "--node-id", "x"], "--node-id"),
        (["server", "start", "--node-id", "1"], "--data-dir: is required"),
        (
            ["server", "start", "--node-id", "1", "--data-dir", "d", "--listen", "127.0.0.1:9092",
             "--controller-quorum", "1@127.0.0.1:9093", "--set", "broker.session.timeout.ms=fast"],
            "broker.session.timeout.ms: must be an integer",
        ),
        (
            ["server", "start", "--node-id", "1", "--data-dir", "d", "--listen", "127.0.0.1:9092",
             "--controller-quorum", "1@127.0.0.1:9093,2@127.0.0.1:9103"],
            "odd number",
        ),
        (["cluster", "up", "--nodes", "2"], "--nodes must be odd"),
        (["cluster", "up", "--base-port", "80"], "--base-port 80"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args, fragment, tmp_path):
    result = freshet(*args, cwd=tmp_path)
    assert result.returncode == 2, result
    assert fragment in one_line(result.stderr)


def test_a_node_that_cannot_listen_exits_1_and_says_why(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        http_port = port + 1 if port < 65535 else port - 1
        result = freshet(
            "server", "start", "--node-id", "4", "--roles", "broker", "--data-dir", str(tmp_path / "n4"),
            "--listen", f"127.0.0.1:{port}", "--http-listen", f"127.0.0.1:{http_port}",
            "--controller-quorum", "1@127.0.0.1:1",
        )
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    assert f"cannot listen on 127.0.0.1:{port} (gRPC)" in result.stderr


def test_a_data_directory_belongs_to_one_node_id(tmp_path):
    (tmp_path / "n").mkdir()
    (tmp_path / "n" / "node.json").write_text('{"node_id": 3, "version": 1}')
    result = freshet(
        "server", "start", "--node-id", "4", "--roles", "broker", "--data-dir", str(tmp_path / "n"),
        "--listen", "127.0.0.1:1", "--controller-quorum", "1@127.0.0.1:2",
    )
    assert result.returncode == 1
    assert "belongs to node 3, not node 4" in result.stderr and "Traceback" not in result.stderr


def test_from_env_names_the_missing_pod_variable_and_exits_2(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("POD_", "FRESHET_"))}
    env.update({"POD_NAME": "freshet-0", "FRESHET_SERVICE": "freshet-headless"})
    result = subprocess.run(
        [sys.executable, "-m", "freshet.cli.main", "server", "start", "--from-env"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env,
    )
    assert result.returncode == 2
    assert "FRESHET_QUORUM_REPLICAS: is required with --from-env" in one_line(result.stderr)
