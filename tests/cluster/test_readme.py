"""The README's Quick start, run as written against a live cluster, so it cannot rot.

Goal (issue 7): a newcomer who follows the Quick start sees what it says: a 3-node cluster, a
topic with RF 3, produce, consume --from-beginning, describe (Leader / Replicas / Isr), a killed
node's partitions get new leaders and the ISR shrinks, the restarted node rejoins every ISR; two
consumers of one group split the partitions, another group gets everything, group describe
shows the lag and reset-offsets makes the group read everything again.
Method: start the cluster of the first set-up command (`freshet cluster up`, in a temporary
directory with `.venv` linked to the venv running the tests) on free ports, then run every `sh`
block of the section in order with bash -euo pipefail, rewriting the README's ports (9092-9115)
to the cluster's and pointing FRESHET_BOOTSTRAP (the README relies on the default
localhost:9092) at it. After the kill and the restart blocks the test checks the claims itself,
from `topic describe --output json`. Every process is killed by pid at the end: the supervisor
and its nodes, and any process whose command line names the test's directory (the node the
README restarts).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.support.cli_harness import ClusterUp, run_cli

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"
README_BASE_PORT = 9092
# Each block takes seconds; the bound is for a machine shared by several test runs.
BLOCK_TIMEOUT_S = 150


def section(text: str, heading: str) -> str:
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def shell_blocks(markdown: str) -> list[str]:
    return [match.group(1) for match in re.finditer(r"^```sh\n(.*?)^```$", markdown, re.S | re.M)]


def rewrite_ports(block: str, base_port: int) -> str:
    """The README's layout (node i on 9092 + (i-1)*10, Raft +1, HTTP +2, Kafka +3) moved to base_port."""
    return re.sub(r"\b(909[2-5]|910[2-5]|911[2-5])\b", lambda m: str(base_port + int(m.group(1)) - README_BASE_PORT), block)


def kill_processes_in(directory: pathlib.Path) -> None:
    """SIGKILL every process whose working directory is `directory` (only this test's), or whose
    command line names it."""
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            is_ours = os.readlink(entry / "cwd") == str(directory) or str(directory).encode() in (entry / "cmdline").read_bytes()
            if is_ours:
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue


def describe(bootstrap: str) -> list[dict]:
    result = run_cli(["topic", "describe", "orders", "--output", "json"], bootstrap, timeout_s=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)[0]["partitions"]


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        time.sleep(0.5)


@pytest.mark.timeout(900)
def test_readme_quick_start_runs_as_written(tmp_path):
    text = README.read_text()
    assert ".venv/bin/freshet cluster up" in section(text, "## Set up")
    blocks = shell_blocks(section(text, "## Quick start"))
    assert len(blocks) >= 6, blocks
    work = tmp_path.resolve()
    venv = pathlib.Path(sys.prefix)
    assert (venv / "bin" / "activate").exists(), f"the tests must run from a venv, not {venv}"
    (work / ".venv").symlink_to(venv)
    cluster = ClusterUp(work / "freshet-data")
    try:
        bootstrap = cluster.wait_ready()
        environment = dict(os.environ, FRESHET_BOOTSTRAP=bootstrap, PATH=f"{venv / 'bin'}:{os.environ['PATH']}")
        environment.pop("FRESHET_DEBUG", None)
        for index, block in enumerate(blocks):
            script = rewrite_ports(block, cluster.base_port)
            # Output goes to files: a background process (the restarted node) may keep pipes open,
            # and a block that overruns still shows what it printed.
            out_path, err_path = work / f"block-{index}.out", work / f"block-{index}.err"
            with open(out_path, "w") as out, open(err_path, "w") as err:
                process = subprocess.Popen(
                    ["bash", "-euo", "pipefail", "-c", script], cwd=work, env=environment, stdout=out, stderr=err
                )
                try:
                    code = process.wait(BLOCK_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                    status = run_cli(["cluster", "status"], bootstrap, timeout_s=60)
                    raise AssertionError(
                        f"README block {index} ran over {BLOCK_TIMEOUT_S} s:\n{script}\nstdout: {out_path.read_text()}\n"
                        f"stderr: {err_path.read_text()}\ncluster status now: {status.stdout}{status.stderr}"
                    ) from None
            result = subprocess.CompletedProcess(script, code, out_path.read_text(), err_path.read_text())
            assert result.returncode == 0, f"README block {index} failed ({result.returncode}):\n{script}\n{result.stdout}\n{result.stderr}"
            assert "Traceback" not in result.stderr, result.stderr
            if "freshet consume orders --from-beginning --print-key" in block:
                lines = result.stdout.splitlines()[-3:]
                assert sorted(lines) == ["alice\t1 book", "alice\t3 lamp", "bob\t2 pens"], lines
                assert [line for line in lines if line.startswith("alice")] == ["alice\t1 book", "alice\t3 lamp"]
            if block.strip() == "freshet topic describe orders":
                for column in ("LEADER", "REPLICAS", "ISR", "LOG-START", "HW", "LEO"):
                    assert column in result.stdout
            if block.startswith("kill -9"):
                assert _cmdline(cluster.node_pids[3]) == b"", "node 3 was killed"
                partitions = describe(bootstrap)
                assert all(p["leader"] in (1, 2) for p in partitions), partitions
                assert all(3 not in p["isr"] and 3 in p["replicas"] for p in partitions), partitions
            if "freshet server start --node-id 3" in block:
                partitions = describe(bootstrap)
                assert all(sorted(p["isr"]) == [1, 2, 3] for p in partitions), partitions
                assert all(p["leader"] == p["replicas"][0] for p in partitions), "the preferred leaders lead again"
                assert sorted(result.stdout.splitlines()[-4:]) == ["1 book", "2 pens", "3 lamp", "4 desk"], result.stdout
            if "--group billing --from-beginning --print-partition" in block:
                billing = [(work / name).read_text().splitlines() for name in ("billing-1.txt", "billing-2.txt")]
                records = sorted(line.split("\t")[1] for lines in billing for line in lines)
                expected = sorted(["1 book", "2 pens", "3 lamp", "4 desk"] + [f"order {i}" for i in range(1, 31)])
                assert records == expected, "the two members of billing printed every record exactly once"
                assert all(billing), "both members of billing got partitions"
                assert sorted((work / "audit.txt").read_text().splitlines()) == expected, "audit got everything"
                assert result.stdout.split()[-2:] == ["34", "34"], result.stdout
            if "freshet group reset-offsets billing" in block:
                assert result.stdout.split()[-1] == "34", result.stdout
        wait_for(lambda: not restarted_node_3(work), 40, "the last block to stop the restarted node 3")
    finally:
        cluster.close()
        kill_processes_in(work)


def _cmdline(pid: int | str) -> bytes:
    """The command line of `pid`; empty once it has exited (a zombie's is empty too)."""
    try:
        return pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def restarted_node_3(work: pathlib.Path) -> list[int]:
    """Pids of live `server start --node-id 3` processes started in this test's directory."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or b"--node-id\x003\x00" not in _cmdline(pid):
            continue
        try:
            if os.readlink(f"/proc/{pid}/cwd") == str(work):
                found.append(int(pid))
        except OSError:
            continue
    return found


@pytest.mark.timeout(600)
def test_readme_kafka_clients_section_runs_as_written(tmp_path, kcat):
    """Goal: the "Using Kafka clients" examples (kcat, confluent-kafka, kafka-python, the Freshet
    CLI on one topic) run as written against `cluster up` and print what the text says. Method:
    every `sh` block of the section, in order, with the README's ports moved to free ones."""
    blocks = shell_blocks(section(README.read_text(), "## Using Kafka clients"))
    assert len(blocks) == 4, blocks
    work = tmp_path.resolve()
    venv = pathlib.Path(sys.prefix)
    (work / ".venv").symlink_to(venv)
    cluster = ClusterUp(work / "freshet-data")
    try:
        bootstrap = cluster.wait_ready()
        path = f"{venv / 'bin'}:{pathlib.Path(kcat).parent}:{os.environ['PATH']}"
        environment = dict(os.environ, FRESHET_BOOTSTRAP=bootstrap, PATH=path)
        outputs = []
        for index, block in enumerate(blocks):
            result = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", rewrite_ports(block, cluster.base_port)],
                cwd=work, env=environment, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S,
            )
            assert result.returncode == 0, f"block {index} failed:\n{block}\n{result.stdout}\n{result.stderr}"
            assert "Traceback" not in result.stderr, result.stderr
            outputs.append(result.stdout)
        kafka_addresses = cluster.kafka_bootstrap.split(",")
        listed = outputs[0]
        assert "3 brokers:" in listed, listed
        assert all(address in listed for address in kafka_addresses), listed
        assert 'topic "clicks" with 3 partitions' in listed, listed
        assert outputs[0].splitlines()[-2:] == ["k1=hello", "k2=world"], outputs[0]
        assert outputs[1].splitlines() == [
            f"{n} user-{n} click {n} {{'via': b'librdkafka'}}" for n in range(3)
        ], outputs[1]
        lines = outputs[2].splitlines()
        assert lines[0] == "from the freshet cli", lines
        assert lines[-2:] == ["from the freshet cli", "from kafka-python"], lines
        group = outputs[3]
        assert "7 records, from partitions [0, 1, 2]" in group, group
        assert "dashboard" in group and "LAG" in group, group
        described = run_cli(["group", "describe", "dashboard", "--output", "json"], bootstrap, timeout_s=60)
        assert described.returncode == 0, described.stderr
        document = json.loads(described.stdout)
        offsets = document[0]["offsets"] if isinstance(document, list) else document["offsets"]
        assert sum(item["lag"] for item in offsets) == 0, offsets
    finally:
        cluster.close()
