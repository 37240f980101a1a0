"""Kafka's own quick start, replayed against a live Freshet cluster with only the script name
replaced (issue 17, "Command line").

Goal: a Kafka user's first commands work unchanged: kafka-topics.sh --create/--describe/--list/
--alter/--delete, the console producer (stdin lines, --property parse.key), the console consumer
(--from-beginning --max-messages, --property print.*, --group), kafka-consumer-groups.sh --list/
--describe/--reset-offsets (--to-earliest, --shift-by on TOPIC:0, --dry-run) and
kafka-producer-perf-test.sh's --producer-props. Method: every line is written as Kafka's docs
print it (`bin/kafka-topics.sh ... --bootstrap-server localhost:9092`); the test swaps the script
for the `freshet` command (SCRIPTS) and localhost:9092 for the cluster's free-port address, runs
it as a subprocess and checks exit code and output. One 3-node `freshet cluster up` for the module.
"""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest

from tests.support.cli_harness import CLI, ClusterUp, run_cli

pytestmark = [pytest.mark.cluster]

#: Kafka's scripts -> the freshet command that replaces them (nothing else in a line changes).
SCRIPTS = {
    "bin/kafka-topics.sh": ["topic"],
    "bin/kafka-console-producer.sh": ["produce"],
    "bin/kafka-console-consumer.sh": ["consume"],
    "bin/kafka-consumer-groups.sh": ["group"],
    "bin/kafka-producer-perf-test.sh": ["perf", "produce"],
    "bin/kafka-consumer-perf-test.sh": ["perf", "consume"],
    "bin/kafka-configs.sh": ["config"],
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    up = ClusterUp(tmp_path_factory.mktemp("quickstart") / "freshet-data")
    try:
        up.wait_ready()
        yield up
    finally:
        up.close()


def kafka(cluster, line: str, *, input: str | None = None, expect: int = 0) -> subprocess.CompletedProcess:
    """Run one of Kafka's command lines with its script replaced by freshet; check the exit code.
    FRESHET_BOOTSTRAP is unset: the address comes from the line itself."""
    script, *args = shlex.split(line.replace("localhost:9092", cluster.bootstrap))
    result = run_cli([*SCRIPTS[script], *args], None, input=input, timeout_s=120)
    assert result.returncode == expect, f"{line}\n-> {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result


def test_kafka_quickstart_command_lines(cluster):
    # Step 3: create a topic, describe it.
    created = kafka(
        cluster, "bin/kafka-topics.sh --create --topic quickstart-events --bootstrap-server localhost:9092"
    )
    assert "created topic quickstart-events" in created.stdout
    described = kafka(
        cluster, "bin/kafka-topics.sh --describe --topic quickstart-events --bootstrap-server localhost:9092"
    )
    assert "quickstart-events" in described.stdout
    listed = kafka(cluster, "bin/kafka-topics.sh --list --bootstrap-server localhost:9092")
    assert "quickstart-events" in listed.stdout
    # Step 4: write events (the console producer reads stdin lines).
    kafka(
        cluster,
        "bin/kafka-console-producer.sh --topic quickstart-events --bootstrap-server localhost:9092",
        input="This is my first event\nThis is my second event\n",
    )
    # Step 5: read them (--max-messages ends it; the quick start uses Ctrl-C).
    consumed = kafka(
        cluster,
        "bin/kafka-console-consumer.sh --topic quickstart-events --from-beginning "
        "--max-messages 2 --timeout-ms 30000 --bootstrap-server localhost:9092",
    )
    assert consumed.stdout.splitlines() == ["This is my first event", "This is my second event"]
    assert "Processed a total of 2 messages" in consumed.stderr

    # The older --broker-list and the line reader's properties; the formatter's properties.
    kafka(
        cluster,
        "bin/kafka-console-producer.sh --broker-list localhost:9092 --topic quickstart-events "
        "--property parse.key=true --property key.separator=:",
        input="user1:third\nuser2:fourth\n",
    )
    printed = kafka(
        cluster,
        "bin/kafka-console-consumer.sh --bootstrap-server localhost:9092 --topic quickstart-events "
        "--from-beginning --max-messages 4 --timeout-ms 30000 --property print.key=true "
        "--property print.offset=true --property print.partition=true "
        "--property key.separator=|",
    )
    rows = [line.split("|") for line in printed.stdout.splitlines()]
    assert [row[2:] for row in rows] == [
        ["null", "This is my first event"],
        ["null", "This is my second event"],
        ["user1", "third"],
        ["user2", "fourth"],
    ]
    assert [row[1] for row in rows] == ["Offset:0", "Offset:1", "Offset:2", "Offset:3"]
    assert all(row[0].startswith("Partition:") for row in rows)

    # A named group reads and commits; kafka-consumer-groups lists, describes and resets it.
    kafka(
        cluster,
        "bin/kafka-console-consumer.sh --bootstrap-server localhost:9092 --topic quickstart-events "
        "--group my-group --from-beginning --max-messages 4 --timeout-ms 30000",
    )
    groups = kafka(cluster, "bin/kafka-consumer-groups.sh --bootstrap-server localhost:9092 --list")
    assert "my-group" in groups.stdout
    group = kafka(
        cluster, "bin/kafka-consumer-groups.sh --bootstrap-server localhost:9092 --describe --group my-group"
    )
    assert "quickstart-events" in group.stdout
    state = kafka(
        cluster,
        "bin/kafka-consumer-groups.sh --bootstrap-server localhost:9092 --describe --group my-group --state",
    )
    assert state.stdout.startswith("group my-group: empty") and "quickstart-events" not in state.stdout, (
        state.stdout
    )
    members = kafka(
        cluster,
        "bin/kafka-consumer-groups.sh --bootstrap-server localhost:9092 --describe --group my-group --members",
    )
    assert "MEMBER" in members.stdout and "quickstart-events" not in members.stdout, members.stdout
    every = kafka(
        cluster, "bin/kafka-consumer-groups.sh --bootstrap-server localhost:9092 --describe --all-groups"
    )
    assert "group my-group" in every.stdout
    committed = committed_offsets(cluster)
    assert sum(committed.values()) == 4, committed
    plan = kafka(
        cluster,
        "bin/kafka-consumer-groups.sh --bootstrap-server localhost:9092 --reset-offsets "
        "--group my-group --topic quickstart-events --to-earliest --dry-run",
    )
    assert "dry run" in plan.stdout and committed_offsets(cluster) == committed
    kafka(
        cluster,
        "bin/kafka-consumer-groups.sh --bootstrap-server localhost:9092 --reset-offsets "
        "--group my-group --topic quickstart-events --to-earliest --execute",
    )
    assert set(committed_offsets(cluster).values()) == {0}
    kafka(
        cluster,
        "bin/kafka-consumer-groups.sh --bootstrap-server localhost:9092 --reset-offsets "
        "--group my-group --all-topics --to-latest --execute",
    )
    assert committed_offsets(cluster) == committed
    kafka(
        cluster,
        "bin/kafka-consumer-groups.sh --bootstrap-server localhost:9092 --reset-offsets "
        "--group my-group --topic quickstart-events:0 --shift-by -1 --execute",
    )
    assert committed_offsets(cluster) == {0: committed[0] - 1}

    # kafka-producer-perf-test's --producer-props, kafka-consumer-perf-test as it is.
    kafka(
        cluster,
        "bin/kafka-producer-perf-test.sh --topic quickstart-events --num-records 200 --record-size 100 "
        "--throughput -1 --producer-props bootstrap.servers=localhost:9092 acks=all",
    )
    kafka(
        cluster,
        "bin/kafka-consumer-perf-test.sh --bootstrap-server localhost:9092 --topic quickstart-events "
        "--messages 204",
    )

    # kafka-configs: set, show and remove a topic config.
    kafka(
        cluster,
        "bin/kafka-configs.sh --bootstrap-server localhost:9092 --entity-type topics "
        "--entity-name quickstart-events --alter --add-config retention.ms=86400000,segment.ms=3600000",
    )
    shown = kafka(
        cluster,
        "bin/kafka-configs.sh --bootstrap-server localhost:9092 --entity-type topics "
        "--entity-name quickstart-events --describe",
    )
    assert "86400000" in shown.stdout and "3600000" in shown.stdout
    assert (topic_configs(cluster)["retention.ms"], topic_configs(cluster)["segment.ms"]) == (
        "86400000",
        "3600000",
    )
    kafka(
        cluster,
        "bin/kafka-configs.sh --bootstrap-server localhost:9092 --entity-type topics "
        "--entity-name quickstart-events --alter --delete-config segment.ms",
    )
    configs = topic_configs(cluster)
    assert configs["retention.ms"] == "86400000" and configs["segment.ms"] != "3600000", configs

    # Alter, then delete.
    kafka(
        cluster,
        "bin/kafka-topics.sh --bootstrap-server localhost:9092 --alter --topic quickstart-events --partitions 3",
    )
    [topic] = json.loads(
        run_cli(["topic", "describe", "quickstart-events", "-o", "json"], cluster.bootstrap).stdout
    )
    assert len(topic["partitions"]) == 3
    kafka(cluster, "bin/kafka-topics.sh --bootstrap-server localhost:9092 --delete --topic quickstart-events")
    assert (
        "quickstart-events"
        not in kafka(cluster, "bin/kafka-topics.sh --list --bootstrap-server localhost:9092").stdout
    )


def test_console_consumer_without_group_shows_a_generated_group_and_kafka_errors(cluster):
    kafka(
        cluster,
        "bin/kafka-topics.sh --create --topic idle --partitions 1 --replication-factor 1 "
        "--bootstrap-server localhost:9092",
    )
    # While a console consumer without --group runs, its console-consumer-NNNNN group is listed.
    names: list[str] = []
    environment_args = [
        *CLI,
        "consume",
        "--topic",
        "idle",
        "--bootstrap-server",
        cluster.bootstrap,
        "--timeout-ms",
        "60000",
    ]
    reader = subprocess.Popen(environment_args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        listed = ""
        for _ in range(100):
            listed = run_cli(["group", "list", "-o", "json"], cluster.bootstrap).stdout
            names = [g["group"] for g in json.loads(listed)]
            if any(name.startswith("console-consumer-") for name in names):
                break
            subprocess.run(["sleep", "0.2"], check=True)
        assert any(name.startswith("console-consumer-") and name[17:].isdigit() for name in names), listed
    finally:
        reader.terminate()
        out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    assert "Processed a total of 0 messages" in err
    # It committed nothing, and its group is gone once it ended (as Kafka drops such a group).
    [generated] = [name for name in names if name.startswith("console-consumer-")]
    remaining = [
        g["group"] for g in json.loads(run_cli(["group", "list", "-o", "json"], cluster.bootstrap).stdout)
    ]
    assert generated not in remaining, remaining
    # Unknown properties, two actions: exit 2 with one line naming them.
    bad = kafka(
        cluster,
        "bin/kafka-console-consumer.sh --topic idle --bootstrap-server localhost:9092 "
        "--property print.colour=true",
        expect=2,
    )
    assert "print.colour" in bad.stderr
    bad = kafka(
        cluster,
        "bin/kafka-topics.sh --create --list --topic idle --bootstrap-server localhost:9092",
        expect=2,
    )
    assert "--create and --list" in bad.stderr


def committed_offsets(cluster) -> dict[int, int]:
    document = json.loads(run_cli(["group", "describe", "my-group", "-o", "json"], cluster.bootstrap).stdout)
    return {
        o["partition"]: o["committed_offset"]
        for o in document["offsets"]
        if o["committed_offset"] is not None
    }


def topic_configs(cluster) -> dict[str, str]:
    """{key: value} of the quick start topic's configs (`topic config NAME -o json`)."""
    result = run_cli(["topic", "config", "quickstart-events", "-o", "json"], cluster.bootstrap)
    assert result.returncode == 0, result.stderr
    return {key: str(entry["value"]) for key, entry in json.loads(result.stdout).items()}
