"""Kafka's spellings on the command line, without a cluster (issue 17, "Command line").

Goal: every alias in cli/kafka_argv.py's table maps to the Freshet command it stands for, every
--property / client property maps to the option it names (or fails naming the key), --help shows
no typer type labels, and group reset-offsets' new selectors parse. Method: `kafka_argv.rewrite`
and the pure helpers are called directly; whole command lines run in-process through `main()`
(the console script, argv rewrite included) for usage errors that stop before any network call;
`--help` of every command through typer's CliRunner.
"""

from __future__ import annotations

import datetime
import sys

import pytest
import typer
from freshet.cli import common, console, group, help_text, kafka_argv, kafka_properties
from freshet.cli.kafka_properties import PropertyError, RecordFormat
from freshet.cli.main import app, main
from freshet.client.structs import ConsumerRecord
from typer.main import get_command
from typer.testing import CliRunner


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """`freshet ARGS` in-process through the console script; (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["freshet", *args])
    monkeypatch.delenv("FRESHET_BOOTSTRAP", raising=False)
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err


# -------------------------------------------------------------------------------------------------
# The argv table.


@pytest.mark.parametrize(
    ("kafka", "freshet"),
    [
        (
            "topic --create --topic t --bootstrap-server b --partitions 3 --replication-factor 2 --config a=1",
            "topic create t --bootstrap-server b --partitions 3 --replication-factor 2 --config a=1",
        ),
        ("topic --describe --topic t", "topic describe t"),
        ("topic --describe", "topic describe"),
        ("topic --list --bootstrap-server b", "topic list --bootstrap-server b"),
        ("topic --bootstrap-server b --delete --topic t", "topic delete t --bootstrap-server b"),
        ("topic --alter --topic=t --partitions 6", "topic alter t --partitions 6"),
        ("topic create --topic t -p 1", "topic create t -p 1"),
        ("topic config --topic t --set a=1", "topic config t --set a=1"),
        (
            "topic config t --delete retention.ms",
            "topic config t --delete retention.ms",
        ),  # not an action here
        ("produce --topic t --broker-list b", "produce t --bootstrap b"),
        ("produce --broker-list=b --topic t", "produce t --bootstrap=b"),
        (
            "consume --topic t --from-beginning --property print.key=true",
            "consume t --from-beginning --property print.key=true",
        ),
        ("consume --topic t -- --topic x", "consume t -- --topic x"),
        ("group --list", "group list"),
        ("group --describe --group g", "group describe g"),
        ("group --describe --all-groups", "group describe --all-groups"),
        ("group --delete --group g", "group delete g"),
        (
            "group --reset-offsets --group g --topic t:0,2 --shift-by -1 --execute",
            "group reset-offsets g --topic t:0,2 --shift-by -1 --execute",
        ),
        ("--tls-ca ca.pem --debug topic --list", "--tls-ca ca.pem --debug topic list"),
        ("--command-config=c.properties group --list", "--command-config=c.properties group list"),
        (
            "partition reassign --generate --broker-list 1,2,3",
            "partition reassign --generate --broker-list 1,2,3",
        ),
        (
            "perf produce --topic t --num-records 10 --record-size 100 --throughput -1 --producer-props "
            "bootstrap.servers=b acks=all linger.ms=5 batch.size=1000 compression.type=lz4 --json",
            "perf produce --topic t --num-records 10 --record-size 100 --throughput -1 --bootstrap b --acks all "
            "--linger-ms 5 --batch-size 1000 --compression lz4 --json",
        ),
        (
            "perf consume --bootstrap-server b --topic t --messages 5",
            "perf consume --bootstrap-server b --topic t --messages 5",
        ),
        ("cluster status", "cluster status"),
        ("topic --describe --under-replicated-partitions", "topic describe --under-replicated"),
        ("topic --describe --unavailable-partitions --topic t", "topic describe t --unavailable"),
        ("produce --topic t --request-required-acks 1", "produce t --acks 1"),
        ("consume --topic t --request-required-acks 1", "consume t --request-required-acks 1"),
    ],
)
def test_rewrite_maps_kafkas_spellings(kafka, freshet):
    assert kafka_argv.rewrite(kafka.split()) == freshet.split()


@pytest.mark.parametrize(
    ("kafka", "freshet"),
    [
        (
            "config --bootstrap-server b --entity-type topics --entity-name t --alter "
            "--add-config retention.ms=1000,cleanup.policy=[compact,delete]",
            "topic config t --bootstrap-server b --set retention.ms=1000 --set cleanup.policy=compact,delete",
        ),
        (
            "config --bootstrap-server b --entity-type topics --entity-name t --describe",
            "topic config t --bootstrap-server b",
        ),
        (
            "config --topic t --alter --delete-config retention.ms,segment.ms",
            "topic config t --delete retention.ms --delete segment.ms",
        ),
        (
            "config --entity-type brokers --entity-name 2 --alter --add-config a=5",
            "config --broker 2 --set a=5",
        ),
        ("config --entity-type brokers --entity-default --describe", "config --cluster"),
        ("config --broker-defaults --alter --add-config=a=1", "config --cluster --set a=1"),
        (
            "config --entity-type groups --entity-name g --alter --add-config x=60",
            "config --group g --set x=60",
        ),
        ("config --broker 1 --alter --add-config a=1", "config --broker 1 --set a=1"),
        ("config --cluster --set a=1", "config --cluster --set a=1"),
        ("--debug config --entity-type topics --entity-name t -o json", "--debug topic config t -o json"),
    ],
)
def test_rewrite_maps_kafka_configs(kafka, freshet):
    assert kafka_argv.rewrite(kafka.split()) == freshet.split()


def test_kafka_configs_errors():
    with pytest.raises(kafka_argv.KafkaSpellingError, match="--entity-type users"):
        kafka_argv.rewrite("config --entity-type users --entity-name alice --describe".split())
    with pytest.raises(kafka_argv.KafkaSpellingError, match="needs --entity-name TOPIC"):
        kafka_argv.rewrite("config --entity-type topics --describe".split())
    with pytest.raises(kafka_argv.KafkaSpellingError, match="--add-config needs a value"):
        kafka_argv.rewrite("config --topic t --add-config".split())


def test_every_action_flag_and_positional_option_names_a_real_command():
    root = get_command(app)
    for command, flags in kafka_argv.ACTION_FLAGS.items():
        for subcommand in flags.values():
            assert subcommand in root.commands[command].commands, (command, subcommand)
    for path, option in kafka_argv.POSITIONAL_OPTIONS.items():
        target = root.commands[path[0]]
        for name in path[1:]:
            target = target.commands[name]
        assert any(p.param_type_name == "argument" for p in target.params), path
        assert all(option not in p.opts for p in target.params), (
            path,
            option,
        )  # else the option would be lost
    for path, renames in kafka_argv.COMMAND_OPTIONS.items():
        target = root.commands[path[0]]
        for name in path[1:]:
            target = target.commands[name]
        options = {opt for p in target.params for opt in p.opts}
        assert set(renames.values()) <= options and not set(renames) & options, path


def test_rewrite_refuses_two_actions_and_unknown_producer_props():
    with pytest.raises(kafka_argv.KafkaSpellingError, match="--create and --list"):
        kafka_argv.rewrite(["topic", "--create", "--list"])
    with pytest.raises(kafka_argv.KafkaSpellingError, match="'buffer.memory=1'"):
        kafka_argv.rewrite(["perf", "produce", "--producer-props", "buffer.memory=1"])
    with pytest.raises(kafka_argv.KafkaSpellingError, match="'acks'"):
        kafka_argv.rewrite(["perf", "produce", "--producer-props", "acks"])


def test_usage_errors_through_the_console_script_are_one_line_exit_2(monkeypatch, capsys):
    code, out, err = run_main(monkeypatch, capsys, "topic", "--create", "--delete", "--topic", "t")
    assert (code, err) == (2, "error: freshet topic: give one action, not --create and --delete\n")
    code, out, err = run_main(
        monkeypatch,
        capsys,
        "consume",
        "--topic",
        "t",
        "--broker-list",
        "127.0.0.1:1",
        "--property",
        "print.colour=true",
    )
    assert code == 2 and err.count("\n") == 1 and "--property print.colour" in err
    code, out, err = run_main(
        monkeypatch,
        capsys,
        "produce",
        "--topic",
        "t",
        "--bootstrap-server",
        "127.0.0.1:1",
        "--property",
        "parse.headers=true",
    )
    assert code == 2 and "--property parse.headers: not supported by freshet produce" in err
    code, out, err = run_main(
        monkeypatch, capsys, "produce", "--topic", "t", "--producer-property", "acks=most"
    )
    assert code == 2 and "acks='most'" in err
    code, out, err = run_main(
        monkeypatch, capsys, "consume", "--topic", "t", "--consumer-property", "no.such.key=1"
    )
    assert code == 2 and "unknown client property 'no.such.key'" in err
    code, out, err = run_main(
        monkeypatch, capsys, "consume", "--topic", "t", "--group", "a", "--consumer-property", "group.id=b"
    )
    assert code == 2 and "differ" in err
    code, out, err = run_main(
        monkeypatch, capsys, "produce", "--topic", "t", "--producer.config", "/no/such/file"
    )
    assert code == 2 and "cannot read /no/such/file" in err
    code, out, err = run_main(monkeypatch, capsys, "perf", "produce", "--producer-props", "nope=1")
    assert code == 2 and "nope=1" in err


# -------------------------------------------------------------------------------------------------
# --help.


def every_command(command, path: tuple[str, ...] = ()):
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from every_command(sub, (*path, name))


def test_no_help_output_shows_typer_type_labels():
    runner = CliRunner()
    paths = list(every_command(get_command(app)))
    assert ("group", "reset-offsets") in paths and ("consume",) in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], terminal_width=200)
        assert result.exit_code == 0, (path, result.output)
        for noise in help_text.NOISE:
            assert noise not in result.output, (path, noise, result.output)
    consume_help = runner.invoke(app, ["consume", "--help"], terminal_width=200).output
    assert "Examples:" in consume_help and "--max-messages" in consume_help and " N " in consume_help
    assert "table|json" in consume_help and "--property" in consume_help


# -------------------------------------------------------------------------------------------------
# --property.


def test_console_producer_properties():
    assert kafka_properties.producer_line_format({}) is None
    assert kafka_properties.producer_line_format({"parse.key": "true"}) == "\t"
    assert kafka_properties.producer_line_format({"parse.key": "TRUE", "key.separator": ":"}) == ":"
    assert kafka_properties.producer_line_format({"parse.key": "false", "key.separator": ":"}) is None
    with pytest.raises(PropertyError, match="parse.key='yes': expected true or false"):
        kafka_properties.producer_line_format({"parse.key": "yes"})
    with pytest.raises(PropertyError, match="ignore.error"):
        kafka_properties.producer_line_format({"ignore.error": "true"})
    with pytest.raises(PropertyError, match="must not be empty"):
        kafka_properties.producer_line_format({"parse.key": "true", "key.separator": ""})


def consumer_record(key=b"k", value=b"v", headers=()) -> ConsumerRecord:
    return ConsumerRecord("orders", 1, 3, 1700000000000, 0, key, value, list(headers), 0)


def test_console_consumer_properties_print_as_kafkas_default_message_formatter():
    every = kafka_properties.consumer_record_format(
        {
            "print.timestamp": "true",
            "print.partition": "true",
            "print.offset": "true",
            "print.key": "true",
            "print.headers": "true",
        },
        RecordFormat(),
    )
    line = console.format_record(consumer_record(headers=[("h1", b"x"), ("h2", None)]), every)
    assert line == b"CreateTime:1700000000000\tPartition:1\tOffset:3\th1:x,h2:null\tk\tv\n"
    assert console.format_record(consumer_record(), every).split(b"\t")[3] == b"NO_HEADERS"
    custom = kafka_properties.consumer_record_format(
        {
            "print.key": "true",
            "print.value": "false",
            "key.separator": " | ",
            "line.separator": ";",
            "null.literal": "<none>",
        },
        RecordFormat(),
    )
    assert console.format_record(consumer_record(key=None), custom) == b"<none>;"
    # The --print-* flags are the base; a property overrides them.
    base = RecordFormat(print_key=True, print_offset=True)
    form = kafka_properties.consumer_record_format({"print.offset": "false", "headers.separator": ";"}, base)
    assert (form.print_key, form.print_offset, form.headers_separator) == (True, False, ";")
    with pytest.raises(PropertyError, match="--property print.colour: not supported by freshet consume"):
        kafka_properties.consumer_record_format({"print.colour": "true"}, base)
    with pytest.raises(PropertyError, match="print.key='1'"):
        kafka_properties.consumer_record_format({"print.key": "1"}, base)


# -------------------------------------------------------------------------------------------------
# Kafka client properties.


def test_producer_and_consumer_properties_map_to_sdk_options():
    options, warnings = kafka_properties.client_options(
        {
            "acks": "-1",
            "linger.ms": "20",
            "batch.size": "16384",
            "compression.type": "ZSTD",
            "enable.idempotence": "true",
            "client.id": "me",
            "bootstrap.servers": "h:1",
            "key.serializer": "org.apache.kafka.StringSerializer",
        },
        kafka_properties.PRODUCER_PROPERTIES,
    )
    assert options == {
        "acks": "all",
        "linger_ms": 20,
        "batch_size": 16384,
        "compression": "zstd",
        "enable_idempotence": True,
        "client_id": "me",
        "bootstrap_servers": "h:1",
    }
    assert warnings == ["warning: key.serializer is not used by freshet (ignored)"]
    options, warnings = kafka_properties.client_options(
        {
            "group.id": "g",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": "false",
            "max.poll.records": "10",
            "acks": "1",
        },
        kafka_properties.CONSUMER_PROPERTIES,
    )
    assert options == {
        "group_id": "g",
        "auto_offset_reset": "earliest",
        "enable_auto_commit": False,
        "max_poll_records": 10,
    }
    assert warnings == ["warning: acks is not used by freshet (ignored)"]
    with pytest.raises(PropertyError, match="unknown client property 'lingerms'"):
        kafka_properties.client_options({"lingerms": "5"}, kafka_properties.PRODUCER_PROPERTIES)
    with pytest.raises(PropertyError, match="linger.ms='soon': expected an integer"):
        kafka_properties.client_options({"linger.ms": "soon"}, kafka_properties.PRODUCER_PROPERTIES)


def test_client_security_properties_use_the_command_config_parser(tmp_path):
    jaas = (
        'org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="s3cret";'
    )
    options, _ = kafka_properties.client_options(
        {
            "security.protocol": "sasl_ssl",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.jaas.config": jaas,
            "ssl.truststore.location": "/ca.pem",
            "ssl.truststore.type": "PEM",
        },
        kafka_properties.CONSUMER_PROPERTIES,
    )
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "alice",
        "sasl_plain_password": "s3cret",
        "ssl_cafile": "/ca.pem",
    }
    with pytest.raises(PropertyError, match="ssl.truststore.type=PEM"):
        kafka_properties.client_options(
            {"ssl.truststore.location": "/x.jks"}, kafka_properties.CONSUMER_PROPERTIES
        )
    config = tmp_path / "producer.properties"
    config.write_text("# a comment\nacks=1\nlinger.ms = 7\n")
    properties = kafka_properties.read_client_properties(str(config), ["linger.ms=9"], "--producer-property")
    assert properties == {"acks": "1", "linger.ms": "9"}
    with pytest.raises(typer.Exit) as exited:
        kafka_properties.read_client_properties(None, ["acks"], "--producer-property")
    assert exited.value.exit_code == 2


def test_producer_options_layer_defaults_properties_and_explicit_flags(monkeypatch):
    monkeypatch.delenv("FRESHET_BOOTSTRAP", raising=False)
    monkeypatch.setattr(common, "SECURITY", {})
    options, bootstrap = console._producer_options(
        common.DEFAULT_BOOTSTRAP,
        None,
        ["acks=1", "linger.ms=50", "bootstrap.servers=h:9"],
        None,
        "gzip",
        None,
    )
    assert bootstrap == "h:9"
    assert (options["acks"], options["linger_ms"], options["compression"]) == (1, 50, "gzip")
    options, bootstrap = console._producer_options(
        "other:1", None, ["bootstrap.servers=h:9"], "0", None, None
    )
    assert (bootstrap, options["acks"], options["compression"], options["linger_ms"]) == (
        "other:1",
        0,
        "none",
        5,
    )


# -------------------------------------------------------------------------------------------------
# consume's group; group reset-offsets' selectors.


def test_consume_without_group_joins_a_generated_console_consumer_group():
    generated, is_named = console._consumer_group(None, None, None)
    assert not is_named and generated.startswith("console-consumer-") and 0 <= int(generated[17:]) < 100000
    assert console._consumer_group("g", None, None) == ("g", True)
    assert console._consumer_group(None, "g", None) == ("g", True)
    assert console._consumer_group(None, None, 0) == (None, False)


def test_iso_durations_and_topic_selections():
    assert group.parse_iso_duration("PT1H") == datetime.timedelta(hours=1)
    assert group.parse_iso_duration("P1DT2H3M4.5S") == datetime.timedelta(
        days=1, hours=2, minutes=3, seconds=4.5
    )
    assert group.parse_iso_duration("pt30m") == datetime.timedelta(minutes=30)
    for bad in ("P", "PT", "1H", "PT1X", "P1W", ""):
        with pytest.raises(ValueError, match="ISO 8601 duration"):
            group.parse_iso_duration(bad)
    assert group._topic_selection("orders") == ("orders", None)
    assert group._topic_selection("orders:0,2") == ("orders", [0, 2])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--topic", "t", "--to-earliest", "--shift-by", "1"], "give exactly one of"),
        (["--topic", "t"], "give exactly one of"),
        (["--topic", "t", "--to-latest", "--execute", "--dry-run"], "not both"),
        (["--to-latest"], "--all-topics"),
        (["--topic", "t", "--all-topics", "--to-latest"], "--all-topics"),
        (["--topic", "t:a", "--to-latest"], "TOPIC:0,2"),
        (["--topic", "t:", "--to-latest"], "TOPIC:0,2"),
        (["--topic", "t", "--by-duration", "1 hour"], "--by-duration '1 hour'"),
        (["--topic", "t", "--to-datetime", "yesterday"], "not an ISO 8601 time"),
    ],
)
def test_reset_offsets_usage_errors(args, message):
    result = CliRunner().invoke(app, ["group", "reset-offsets", "g", *args, "--bootstrap", "127.0.0.1:1"])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_describe_takes_a_group_or_all_groups_and_one_view():
    for args in ([], ["g", "--all-groups"]):
        result = CliRunner().invoke(app, ["group", "describe", *args, "--bootstrap", "127.0.0.1:1"])
        assert result.exit_code == 2 and "--all-groups" in result.output
    result = CliRunner().invoke(
        app, ["group", "describe", "g", "--members", "--state", "--bootstrap", "127.0.0.1:1"]
    )
    assert result.exit_code == 2 and "at most one of --members, --state, --offsets" in result.output


def test_a_command_config_file_is_read_as_java_properties_with_continuations(tmp_path):
    """Kafka's client config files often split sasl.jaas.config over lines with a trailing
    backslash; --command-config and --producer.config read them with server.properties' parser."""
    config = tmp_path / "client.properties"
    config.write_text(
        "! a comment\n"
        "security.protocol: SASL_SSL\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n"
        '    username="alice" \\\n'
        '    password="s3cret";\n'
    )
    properties = common.read_properties(str(config))
    assert properties["security.protocol"] == "SASL_SSL"
    assert properties["sasl.jaas.config"] == (
        'org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="s3cret";'
    )
    assert common.properties_security(properties)["sasl_plain_password"] == "s3cret"
    bad = tmp_path / "bad.properties"
    bad.write_text("key=\\u12g4\n")
    with pytest.raises(ValueError, match="bad.properties: line 1: malformed"):
        common.read_properties(str(bad))
