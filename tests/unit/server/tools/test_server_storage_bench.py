"""The storage benchmark and its `freshet perf storage` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from freshet.cli.main import app
from freshet.server.tools import storage_bench as bench
from typer.testing import CliRunner


@pytest.mark.slow
def test_quick_benchmark_prints_one_json_line_and_cleans_up(tmp_path):
    """Goal: `python -m freshet.server.tools.storage_bench --quick` runs end to end, prints exactly one JSON line
    on stdout with every figure the README table uses, and leaves no files behind.
    """
    result = subprocess.run(
        [sys.executable, "-m", "freshet.server.tools.storage_bench", "--quick", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    document = json.loads(lines[0])
    assert "codec" in result.stderr
    for size in ("16KiB", "64KiB", "1MiB"):
        figures = document["append"][size]
        assert figures["raw_write_mb_s"] > 0
        assert figures["leader_append_mb_s"] > 0
        assert figures["follower_append_mb_s"] > 0
        assert figures["leader_ratio"] == pytest.approx(
            figures["leader_append_mb_s"] / figures["raw_write_mb_s"], rel=0.01
        )
    assert document["sequential_read"]["log_read_mb_s"] > 0
    assert [entry["records"] for entry in document["random_read"]["logs"]] == [10_000, 100_000, 1_000_000]
    assert all(entry["p99_us"] >= entry["p50_us"] > 0 for entry in document["random_read"]["logs"])
    assert document["codec"]["encode_us_per_record"] > 0
    assert set(document["goals"]) >= {"leader_append_met", "follower_append_met", "read_met"}
    assert os.listdir(tmp_path) == []


def test_perf_storage_command_runs_the_benchmark_and_prints_its_json(monkeypatch, tmp_path):
    """Goal: the CLI passes its options through and prints the document as one JSON line."""
    calls = []

    def fake_run(*, quick: bool, directory: str | None) -> dict[str, object]:
        calls.append((quick, directory))
        return {"bench": "freshet.storage", "quick": quick}

    monkeypatch.setattr(bench, "run", fake_run)
    result = CliRunner().invoke(app, ["perf", "storage", "--quick", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert calls == [(True, str(tmp_path))]
    assert json.loads(result.stdout.strip()) == {"bench": "freshet.storage", "quick": True}
