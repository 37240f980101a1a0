"""The `freshet` CLI end to end: every command of INTERFACE.md as a subprocess against a live
`freshet cluster up` cluster, with its exit code, its output (table and JSON shapes) and, for
failures, the one-line message.

Goal (issue 7): what a person types works and reads well; what a script parses is stable; a
refusal exits 1 with one `error: ...; what to do` line, bad usage exits 2, nothing prints a
traceback. Method: one 3-node cluster for the module (each test uses its own topic names, so the
tests stay independent); each command runs as `python -m freshet.cli.main` with FRESHET_BOOTSTRAP
pointing at the cluster, exactly as a user's shell would run it.

produce/consume/describe's offsets need the broker data plane (Produce, Fetch, ListOffsets).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from freshet.client import errors

from tests.support.cli_harness import CLI, ClusterUp, one_error_line, run_cli
from tests.support.ports import free_port_block

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

COMMANDS = [
    ["cluster", "status"],
    ["cluster", "up"],
    ["topic", "create"],
    ["topic", "list"],
    ["topic", "describe"],
    ["topic", "delete"],
    ["topic", "alter"],
    ["topic", "config"],
    ["partition", "reassign"],
    ["partition", "elect-leaders"],
    ["broker", "list"],
    ["broker", "decommission"],
    ["config"],
    ["produce"],
    ["consume"],
    ["metadata", "quorum"],
    ["metadata", "dump"],
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    up = ClusterUp(tmp_path_factory.mktemp("cli") / "freshet-data")
    try:
        up.wait_ready()
        yield up
    finally:
        up.close()


def cli(cluster, *args, **kwargs) -> subprocess.CompletedProcess:
    return run_cli(list(args), cluster.bootstrap, **kwargs)


def ok(cluster, *args, **kwargs) -> subprocess.CompletedProcess:
    result = cli(cluster, *args, **kwargs)
    assert result.returncode == 0, f"freshet {' '.join(args)} -> {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result


def as_json(result: subprocess.CompletedProcess):
    return json.loads(result.stdout)


# -------------------------------------------------------------------------------------------------
# Without a cluster: version, help, usage errors, unreachable bootstrap.


def test_version_and_help_with_examples_on_every_command():
    result = run_cli(["--version"], None)
    assert result.returncode == 0 and result.stdout.startswith("freshet 0."), result
    for command in COMMANDS:
        result = run_cli([*command, "--help"], None)
        assert result.returncode == 0, (command, result.stderr)
        assert "Example" in result.stdout, f"freshet {' '.join(command)} --help has no example"
    assert "--install-completion" in run_cli(["--help"], None).stdout


def test_usage_errors_exit_2_with_one_line():
    port = free_port_block(1)
    bootstrap = f"127.0.0.1:{port}"
    cases = [
        (["topic", "create", "x", "--partitions", "abc"], "--partitions"),
        (["topic", "create"], "Missing argument"),
        (["topic", "create", "x", "--config", "novalue"], "expected key=value"),
        (["config"], "exactly one of --broker ID, --group G or --cluster"),
        (["config", "--cluster", "--broker", "1"], "exactly one of --broker ID, --group G or --cluster"),
        (["consume", "t", "--offset", "3"], "--offset needs --partition"),
        (["consume", "t", "--partition", "0", "--offset", "x"], "--offset must be"),
        (["consume", "t", "--group", "g", "--partition", "0"], "do not go together"),
        (["produce", "t", "--acks", "2"], "--acks must be 0, 1 or all"),
        (["produce", "t", "--compression", "brotli"], "--compression must be one of"),
        (["partition", "elect-leaders", "--partition", "0"], "--partition needs --topic"),
        (["partition", "elect-leaders", "--type", "dirty"], "--type must be preferred or unclean"),
        (["partition", "reassign", "--file", "/nonexistent/plan.json"], "--file /nonexistent/plan.json"),
        (["partition", "reassign"], "give --file plan.json"),
        (["partition", "reassign", "--generate"], "--generate needs --topics-to-move-json-file"),
        (["partition", "reassign", "--verify", "--cancel"], "at most one of"),
        (["partition", "reassign", "--broker-list", "1,2"], "go with --generate"),
        (["partition", "reassign", "--generate", "--topics-to-move-json-file", "/nonexistent/t.json", "--broker-list", "1"],
         "--topics-to-move-json-file /nonexistent/t.json"),
        (["broker", "decommission", "two"], "Invalid value for 'ID'"),
        (["topic", "list", "--bootstrap", "nohostport"], "is not host:port"),
        (["topic", "list", "--output", "xml"], "--output"),
        (["topic", "nosuchcommand"], "No such command"),
    ]
    for args, expected in cases:
        result = run_cli(args, bootstrap, timeout_s=30)
        assert result.returncode == 2, (args, result.returncode, result.stderr)
        assert expected in one_error_line(result), (args, result.stderr)


def test_unreachable_bootstrap_names_the_address_and_exits_1():
    port = free_port_block(1)
    for args in (["topic", "list"], ["cluster", "status"], ["topic", "create", "x", "-p", "1", "-r", "1"]):
        result = run_cli(args, f"127.0.0.1:{port}", timeout_s=60)
        assert result.returncode == 1, (args, result.stderr)
        line = one_error_line(result)
        assert f"cannot reach any broker at 127.0.0.1:{port}" in line, line
        assert "FRESHET_BOOTSTRAP" in line, line
    # --bootstrap wins over the environment, and --debug prints the traceback.
    result = run_cli(["topic", "list", "--bootstrap", f"127.0.0.1:{port}", "--debug"], "127.0.0.1:1", timeout_s=60)
    assert result.returncode == 1 and "Traceback" in result.stderr
    assert f"cannot reach any broker at 127.0.0.1:{port}" in result.stderr.strip().splitlines()[-1]


# -------------------------------------------------------------------------------------------------
# Cluster and metadata.


def test_cluster_status_table_and_json(cluster):
    status = as_json(ok(cluster, "cluster", "status", "--output", "json"))
    for key in ("cluster_id", "active_controller", "quorum", "brokers", "topics", "partitions",
                "under_replicated_partitions", "offline_partitions"):
        assert key in status, key
    assert status["active_controller"] in (1, 2, 3)
    assert status["quorum"]["leader"] in (1, 2, 3) and status["quorum"]["term"] >= 1
    assert sorted(v["id"] for v in status["quorum"]["voters"]) == [1, 2, 3]
    assert all(set(v) >= {"id", "address", "lag"} for v in status["quorum"]["voters"])
    assert [(b["id"], b["address"], b["state"]) for b in status["brokers"]] == [
        (i, f"127.0.0.1:{cluster.port(i)}", "active") for i in (1, 2, 3)
    ]
    assert all("rack" in b for b in status["brokers"])
    table = ok(cluster, "cluster", "status").stdout
    assert f"active controller: {status['active_controller']}" in table
    assert "VOTER" in table and "BROKER" in table and f"127.0.0.1:{cluster.port(2)}" in table
    assert "\x1b[" not in table, "no colour when stdout is not a terminal"


def test_metadata_quorum_and_dump(cluster):
    quorum = as_json(ok(cluster, "metadata", "quorum", "--output", "json"))
    assert quorum["leader_id"] in (1, 2, 3) and quorum["has_quorum"] is True
    assert sorted(v["node_id"] for v in quorum["voters"]) == [1, 2, 3]
    assert all(v["lag"] is not None and v["lag"] >= 0 for v in quorum["voters"])
    table = ok(cluster, "metadata", "quorum").stdout
    assert f"leader: {quorum['leader_id']}" in table and "LAG" in table and "leader" in table
    ok(cluster, "topic", "create", "dumped", "-p", "2", "-r", "1")
    image = as_json(ok(cluster, "metadata", "dump"))
    assert image["cluster_id"] and image["offset"] > 0
    assert sorted(b["node_id"] for b in image["brokers"]) == [1, 2, 3]
    assert "dumped" in [t["name"] for t in image["topics"]]


# -------------------------------------------------------------------------------------------------
# Topics and configs.


def test_topic_create_list_describe_alter_config_delete(cluster):
    created = ok(cluster, "topic", "create", "orders", "--partitions", "3", "--replication-factor", "3",
                 "--config", "retention.ms=86400000")
    assert "created topic orders with 3 partitions, replication factor 3" in created.stdout
    listed = as_json(ok(cluster, "topic", "list", "--output", "json"))
    assert {"name": "orders", "partitions": 3, "replication_factor": 3} in listed
    assert "orders" in ok(cluster, "topic", "list").stdout

    [described] = as_json(ok(cluster, "topic", "describe", "orders", "--output", "json"))
    assert described["name"] == "orders" and len(described["topic_id"]) == 32
    assert described["configs"] == {"retention.ms": "86400000"}
    assert [p["partition"] for p in described["partitions"]] == [0, 1, 2]
    for p in described["partitions"]:
        assert set(p) >= {"partition", "leader", "leader_epoch", "replicas", "isr", "log_start_offset",
                          "log_end_offset", "high_watermark"}
        assert sorted(p["replicas"]) == [1, 2, 3] and p["leader"] in p["replicas"]
        assert sorted(p["isr"]) == [1, 2, 3]
        assert (p["log_start_offset"], p["high_watermark"], p["log_end_offset"], p["size_bytes"]) == (0, 0, 0, 0)
    # Leaders are spread: one partition per broker for a fresh 3x3 topic.
    assert sorted(p["leader"] for p in described["partitions"]) == [1, 2, 3]
    table = ok(cluster, "topic", "describe", "orders").stdout
    assert "Topic: orders" in table and "ReplicationFactor: 3" in table and "retention.ms=86400000" in table
    for column in ("PARTITION", "LEADER", "REPLICAS", "ISR", "LOG-START", "HW", "LEO", "SIZE"):
        assert column in table

    ok(cluster, "topic", "create", "orders", "-p", "3", "-r", "3", "--if-not-exists")
    assert "now has 5 partitions" in ok(cluster, "topic", "alter", "orders", "--partitions", "5").stdout
    [described] = as_json(ok(cluster, "topic", "describe", "orders", "-o", "json"))
    assert len(described["partitions"]) == 5

    ok(cluster, "topic", "config", "orders", "--set", "retention.ms=3600000", "--set", "cleanup.policy=compact")
    configs = as_json(ok(cluster, "topic", "config", "orders", "--output", "json"))
    assert configs["retention.ms"] == {"value": "3600000", "source": "dynamic_topic"}
    assert configs["cleanup.policy"] == {"value": "compact", "source": "dynamic_topic"}
    ok(cluster, "topic", "config", "orders", "--delete", "cleanup.policy")
    configs = as_json(ok(cluster, "topic", "config", "orders", "--output", "json"))
    assert configs["cleanup.policy"] == {"value": "delete", "source": "default"}
    assert "SOURCE" in ok(cluster, "topic", "config", "orders").stdout

    assert "deleted topic orders" in ok(cluster, "topic", "delete", "orders").stdout
    assert "orders" not in [t["name"] for t in as_json(ok(cluster, "topic", "list", "-o", "json"))]
    ok(cluster, "topic", "delete", "orders", "--if-exists")


def test_topic_refusals_exit_1_with_one_line(cluster):
    ok(cluster, "topic", "create", "refusals", "-p", "2", "-r", "2")
    cases = [
        (["topic", "create", "too-many", "-p", "1", "-r", "4"],
         "replication factor: 4 larger than available brokers: 3; lower --replication-factor"),
        (["topic", "create", "refusals", "-p", "1", "-r", "1"], "already exists; pick another name"),
        (["topic", "create", "bad name!", "-p", "1", "-r", "1"], "error: "),
        (["topic", "describe", "no-such-topic"], "topic 'no-such-topic' does not exist; check the name"),
        (["topic", "delete", "no-such-topic"], "does not exist"),
        (["topic", "alter", "refusals", "--partitions", "1"], "error: "),
        (["topic", "alter", "no-such-topic", "--partitions", "4"], "does not exist"),
        (["topic", "config", "refusals", "--set", "retention.ms=soon"], "invalid value 'soon' for configuration 'retention.ms'"),
        (["topic", "config", "refusals", "--set", "no.such.key=1"], "no.such.key"),
        (["topic", "config", "no-such-topic"], "does not exist"),
        (["config", "--broker", "1", "--set", "broker.heartbeat.interval.ms=minus"], "broker.heartbeat.interval.ms"),
        (["consume", "no-such-topic", "--from-beginning", "--timeout-ms", "1000"], "does not exist"),
        (["partition", "elect-leaders", "--topic", "no-such-topic"], "does not exist"),
    ]
    for args, expected in cases:
        result = cli(cluster, *args)
        assert result.returncode == 1, (args, result.returncode, result.stdout, result.stderr)
        line = one_error_line(result)
        assert expected in line, (args, line)


def test_broker_and_cluster_configs(cluster):
    ok(cluster, "config", "--cluster", "--set", "auto.create.topics.enable=false")
    configs = as_json(ok(cluster, "config", "--cluster", "--output", "json"))
    assert configs["auto.create.topics.enable"] == {"value": "false", "source": "dynamic_cluster"}
    ok(cluster, "config", "--broker", "2", "--set", "broker.session.timeout.ms=9000")
    configs = as_json(ok(cluster, "config", "--broker", "2", "-o", "json"))
    assert configs["broker.session.timeout.ms"] == {"value": "9000", "source": "dynamic_broker"}
    ok(cluster, "config", "--broker", "2", "--delete", "broker.session.timeout.ms")
    ok(cluster, "config", "--cluster", "--delete", "auto.create.topics.enable")
    configs = as_json(ok(cluster, "config", "--broker", "2", "-o", "json"))
    assert configs["broker.session.timeout.ms"]["source"] != "dynamic_broker"
    assert "KEY" in ok(cluster, "config", "--cluster").stdout


# -------------------------------------------------------------------------------------------------
# Partitions: leader election and reassignment.


def test_elect_leaders_and_reassign(cluster, tmp_path):
    ok(cluster, "topic", "create", "moving", "-p", "2", "-r", "2")
    elected = as_json(ok(cluster, "partition", "elect-leaders", "--topic", "moving", "-o", "json"))
    assert sorted(r["partition"] for r in elected) == [0, 1]
    assert all(r["result"] in ("not_needed", "elected") and r["leader"] in (1, 2, 3) for r in elected)
    one = as_json(ok(cluster, "partition", "elect-leaders", "--topic", "moving", "--partition", "1", "-o", "json"))
    assert [r["partition"] for r in one] == [1]

    [described] = as_json(ok(cluster, "topic", "describe", "moving", "-o", "json"))
    current = described["partitions"][0]["replicas"]
    target = [b for b in (1, 2, 3) if b not in current] + [current[0]]
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [{"topic": "moving", "partition": 0, "replicas": target}]}))
    dry = ok(cluster, "partition", "reassign", "--file", str(plan)).stdout
    assert "would_move" in dry and "dry run" in dry
    started = as_json(ok(cluster, "partition", "reassign", "--file", str(plan), "--execute", "-o", "json"))
    assert started == [{"topic": "moving", "partition": 0, "replicas": target, "result": "ok", "error": None}]
    deadline = time.monotonic() + 60
    while True:
        [status] = as_json(cli(cluster, "partition", "reassign", "--file", str(plan), "--verify", "-o", "json"))
        if status["state"] == "complete":
            break
        assert status["state"] == "in_progress", status
        assert time.monotonic() < deadline, f"reassignment not complete after 60 s: {status}"
        time.sleep(0.5)
    [described] = as_json(ok(cluster, "topic", "describe", "moving", "-o", "json"))
    assert described["partitions"][0]["replicas"] == target
    assert "complete" in ok(cluster, "partition", "reassign", "--file", str(plan), "--verify").stdout

    bad = tmp_path / "bad.json"
    bad.write_text('{"partitions": [{"topic": "moving", "partition": "zero", "replicas": [1]}]}')
    result = cli(cluster, "partition", "reassign", "--file", str(bad), "--execute")
    assert result.returncode == 2 and "partitions[0] needs topic" in one_error_line(result)
    bad.write_text("not json")
    result = cli(cluster, "partition", "reassign", "--file", str(bad))
    assert result.returncode == 2 and "not JSON" in one_error_line(result)
    refused = tmp_path / "refused.json"
    refused.write_text(json.dumps({"partitions": [{"topic": "moving", "partition": 1, "replicas": [7, 8]}]}))
    result = cli(cluster, "partition", "reassign", "--file", str(refused), "--execute")
    assert result.returncode == 1 and "1 of 1 reassignments refused" in one_error_line(result)


# -------------------------------------------------------------------------------------------------
# produce / consume (the data plane).


def test_produce_then_consume_from_beginning_with_keys_offsets_and_json(cluster):
    ok(cluster, "topic", "create", "console", "-p", "3", "-r", "3")
    lines = [f"k{i}:value-{i}" for i in range(30)]
    produced = ok(cluster, "produce", "console", "--key-separator", ":", "--acks", "all", "--verbose",
                  input="\n".join(lines) + "\n")
    assert produced.stdout == ""
    assert "30 records produced to console" in produced.stderr
    consumed = ok(cluster, "consume", "console", "--from-beginning", "--max-messages", "30", "--print-key",
                  "--timeout-ms", "20000")
    got = [line.split("\t") for line in consumed.stdout.splitlines()]
    assert sorted(got) == sorted([f"k{i}", f"value-{i}"] for i in range(30))
    assert "Processed a total of 30 messages" in consumed.stderr
    # One key always lands on one partition, in the order produced.
    records = [json.loads(line) for line in ok(
        cluster, "consume", "console", "--from-beginning", "--max-messages", "30", "--output", "json",
        "--timeout-ms", "20000").stdout.splitlines()]
    assert len(records) == 30
    for record in records:
        assert set(record) >= {"topic", "partition", "offset", "timestamp", "key", "value", "headers"}
        assert record["topic"] == "console" and record["encoding"] == "utf-8"
        assert record["value"] == "value-" + record["key"][1:]
    [described] = as_json(ok(cluster, "topic", "describe", "console", "-o", "json"))
    by_partition = {p["partition"]: p for p in described["partitions"]}
    assert sum(p["high_watermark"] for p in described["partitions"]) == 30
    assert [p["log_end_offset"] for p in described["partitions"]] == [
        p["high_watermark"] for p in described["partitions"]
    ], described["partitions"]
    # Size on disk: the records' batches plus their framing, only where records are.
    for p in described["partitions"]:
        assert (p["size_bytes"] > 10 * p["high_watermark"]) if p["high_watermark"] else p["size_bytes"] == 0, p
    busiest = max(by_partition.values(), key=lambda p: p["high_watermark"])
    # --partition / --offset: the last two records of the busiest partition, with offsets.
    start = busiest["high_watermark"] - 2
    tail = ok(cluster, "consume", "console", "--partition", str(busiest["partition"]), "--offset", str(start),
              "--max-messages", "2", "--print-offset", "--print-partition", "--timeout-ms", "20000").stdout
    assert [line.split("\t")[:2] for line in tail.splitlines()] == [
        [f"Partition:{busiest['partition']}", f"Offset:{start}"],
        [f"Partition:{busiest['partition']}", f"Offset:{start + 1}"],
    ]
    # --timeout-ms ends a consumer that has nothing more to read; exit 0.
    began = time.monotonic()
    idle = ok(cluster, "consume", "console", "--timeout-ms", "1500")
    assert idle.stdout == "" and time.monotonic() - began < 30
    assert "Processed a total of 0 messages" in idle.stderr


def test_produce_options_binary_values_and_failures(cluster):
    ok(cluster, "topic", "create", "options", "-p", "1", "-r", "2")
    ok(cluster, "produce", "options", "--acks", "1", "--compression", "zstd", "--partition", "0",
       input="a\nb\nlast-without-newline")
    ok(cluster, "produce", "options", "--acks", "0", "--compression", "gzip", input="c\n")
    assert ok(cluster, "produce", "options", input="").stderr == ""  # closed stdin at once: nothing, exit 0
    values = ok(cluster, "consume", "options", "--from-beginning", "--max-messages", "4", "--print-timestamp",
                "--timeout-ms", "20000").stdout.splitlines()
    assert [v.split("\t")[1] for v in values] == ["a", "b", "last-without-newline", "c"]
    assert all(v.startswith("CreateTime:") for v in values)
    # A line without the separator: the earlier lines are still delivered, exit 1.
    result = cli(cluster, "produce", "options", "--key-separator", "=", input="k=1\nno separator here\nk=2\n")
    assert result.returncode == 1 and "no key separator" in one_error_line(result)
    assert "1 earlier records sent" in result.stderr
    # Producing to a topic that does not exist fails with one line.
    result = cli(cluster, "produce", "no-such-topic", input="x\n")
    assert result.returncode == 1 and "does not exist" in one_error_line(result)
    # Values that are not UTF-8 come out as base64 in JSON.
    environment = dict(os.environ, FRESHET_BOOTSTRAP=cluster.bootstrap)
    subprocess.run([*CLI, "produce", "options"], input=b"\xff\xfe\n", env=environment, check=True, timeout=60,
                   capture_output=True)
    [record] = [json.loads(line) for line in ok(
        cluster, "consume", "options", "--partition", "0", "--offset", "5", "--max-messages", "1", "-o", "json",
        "--timeout-ms", "20000").stdout.splitlines()]
    assert record["encoding"] == "base64" and record["value"] == "//4="


def test_consume_in_a_pipe_and_ctrl_c_end_quietly(cluster):
    ok(cluster, "topic", "create", "piped", "-p", "1", "-r", "1")
    ok(cluster, "produce", "piped", input="".join(f"line-{i}\n" for i in range(200)))
    environment = dict(os.environ, FRESHET_BOOTSTRAP=cluster.bootstrap)
    command = " ".join(CLI) + " consume piped --from-beginning --timeout-ms 20000 | head -3"
    piped = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, env=environment,
                           timeout=90)
    assert piped.stdout.splitlines() == ["line-0", "line-1", "line-2"]
    assert "Traceback" not in piped.stderr and "Broken pipe" not in piped.stderr, piped.stderr
    assert piped.returncode == 0, piped.stderr
    for command in ("topic describe piped | head -1", "cluster status | grep -q active", "topic list -o json | head -1"):
        piped = subprocess.run(["bash", "-o", "pipefail", "-c", " ".join(CLI) + " " + command], capture_output=True,
                               text=True, env=environment, timeout=90)
        assert piped.returncode == 0 and piped.stderr == "", (command, piped.returncode, piped.stderr)

    consumer = subprocess.Popen([*CLI, "consume", "piped", "--from-beginning"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=environment)
    try:
        first = consumer.stdout.readline()
        assert first == "line-0\n"
        consumer.send_signal(signal.SIGINT)
        out, err = consumer.communicate(timeout=30)
        assert consumer.returncode == 0, err
        assert "Traceback" not in err and "Processed a total of" in err
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()


def test_produce_flushes_buffered_records_on_ctrl_c_and_sigterm(cluster):
    ok(cluster, "topic", "create", "interrupted", "-p", "1", "-r", "3")
    environment = dict(os.environ, FRESHET_BOOTSTRAP=cluster.bootstrap)
    sent = 0
    for signum in (signal.SIGINT, signal.SIGTERM):
        # A long linger keeps the records buffered in the producer when the signal arrives.
        producer = subprocess.Popen([*CLI, "produce", "interrupted", "--linger-ms", "60000", "--verbose"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env=environment)
        try:
            assert producer.stderr.readline().startswith("producing to interrupted"), "no start line"
            for i in range(25):
                producer.stdin.write(f"{signum.name}-{i}\n")
            producer.stdin.flush()
            time.sleep(1)  # stdin stays open: the producer holds the records, waiting for more lines
            producer.send_signal(signum)
            out, err = producer.communicate(timeout=60)
            assert producer.returncode == 0, err
            assert "25 records produced to interrupted (interrupted)" in err, err
            sent += 25
        finally:
            if producer.poll() is None:
                producer.kill()
                producer.wait()
    values = ok(cluster, "consume", "interrupted", "--from-beginning", "--max-messages", str(sent),
                "--timeout-ms", "20000").stdout.splitlines()
    assert values == [f"SIGINT-{i}" for i in range(25)] + [f"SIGTERM-{i}" for i in range(25)]



def test_consume_with_a_group_commits_what_it_printed(cluster):
    ok(cluster, "topic", "create", "grouped", "-p", "2", "-r", "2")
    ok(cluster, "produce", "grouped", "--key-separator", ":", input="".join(f"k{i}:v{i}\n" for i in range(20)))
    first = ok(cluster, "consume", "grouped", "--group", "readers", "--from-beginning", "--max-messages", "12",
               "--timeout-ms", "20000")
    assert len(first.stdout.splitlines()) == 12
    rest = ok(cluster, "consume", "grouped", "--group", "readers", "--from-beginning", "--timeout-ms", "5000")
    assert sorted(first.stdout.splitlines() + rest.stdout.splitlines()) == sorted(f"v{i}" for i in range(20)), (
        "the second run starts where the first one's commit left off: nothing twice, nothing missed"
    )
    described = as_json(ok(cluster, "group", "describe", "readers", "--output", "json"))
    assert described["group"] == "readers" and described["members"] == []
    assert sum(o["committed_offset"] for o in described["offsets"]) == 20
    assert all(o["lag"] == 0 for o in described["offsets"])
    # Another group gets everything again.
    other = ok(cluster, "consume", "grouped", "--group", "auditors", "--from-beginning", "--max-messages", "20",
               "--timeout-ms", "20000")
    assert sorted(other.stdout.splitlines()) == sorted(f"v{i}" for i in range(20))


def test_admin_sdk_raises_client_errors_only(cluster):
    from freshet.client import Admin, TopicPartition
    from freshet.client.admin import ConfigResource

    with Admin(cluster.bootstrap, request_timeout_ms=30000) as admin:
        created = admin.create_topic("sdk", partitions=2, replication_factor=3, configs={"retention.ms": "60000"})
        assert (created.name, created.partitions, created.replication_factor) == ("sdk", 2, 3)
        assert len(created.topic_id) == 32 and all(sorted(a) == [1, 2, 3] for a in created.assignments)
        with pytest.raises(errors.TopicAlreadyExistsError):
            admin.create_topic("sdk", partitions=2, replication_factor=3)
        with pytest.raises(errors.InvalidReplicationFactorError, match="larger than available brokers: 3"):
            admin.create_topic("sdk-big", partitions=1, replication_factor=5)
        assert admin.create_topic("sdk-dry", 1, 1, validate_only=True).topic_id == ""
        assert "sdk-dry" not in [t.name for t in admin.list_topics()]
        with pytest.raises(errors.UnknownTopicError):
            admin.describe_topics(["sdk-missing"])
        [topic] = admin.describe_topics(["sdk"])
        assert topic.configs == {"retention.ms": "60000"} and [p.partition for p in topic.partitions] == [0, 1]
        assert admin.create_partitions("sdk", 3) and len(admin.describe_topics(["sdk"])[0].partitions) == 3
        with pytest.raises(errors.InvalidPartitionsError):
            admin.create_partitions("sdk", 2)
        admin.alter_configs(ConfigResource.topic("sdk"), set={"retention.ms": "120000"})
        entries = {e.key: e for e in admin.describe_configs(ConfigResource.topic("sdk"))}
        assert (entries["retention.ms"].value, entries["retention.ms"].source) == ("120000", "dynamic_topic")
        with pytest.raises(errors.InvalidConfigError):
            admin.alter_configs(ConfigResource.topic("sdk"), set={"retention.ms": "soon"})
        results = admin.elect_leaders([TopicPartition("sdk", 0)])
        assert [(r.topic, r.partition) for r in results] == [("sdk", 0)]
        assert results[0].error is None or isinstance(results[0].error, errors.ElectionNotNeededError)
        cluster_info = admin.describe_cluster()
        assert [b.state for b in cluster_info.brokers] == ["active"] * 3 and cluster_info.controller_id in (1, 2, 3)
        quorum = admin.describe_quorum()
        assert quorum.leader_id in (1, 2, 3) and len(quorum.voters) == 3
        assert "sdk" in [t["name"] for t in admin.metadata_image()["topics"]]
        assert isinstance(admin.list_groups(), list)
        assert admin.delete_topic("sdk") == created.topic_id
        with pytest.raises(errors.UnknownTopicError):
            admin.delete_topic("sdk")
    port = free_port_block(1)
    with Admin(f"127.0.0.1:{port}", request_timeout_ms=5000) as admin:
        with pytest.raises(errors.BrokerUnavailableError, match=f"cannot reach any broker at 127.0.0.1:{port}"):
            admin.list_topics()
