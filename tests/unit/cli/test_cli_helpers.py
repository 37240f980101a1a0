"""The CLI's pure parts: line splitting, record formatting (text and JSON), stdin reading with
interrupts, error lines and exit codes, k=v parsing, tables without colour off a terminal.

Goal: what `produce`/`consume` print and accept, and what every command says on failure, is
right without a cluster (the cluster tests check the same end to end). Method: call the
functions directly; read_lines gets a real pipe; the typer commands run in-process through
typer's CliRunner for usage errors that need no network; `--compression snappy` runs produce and
perf produce as child processes against the fake cluster (tests/support/fake_broker.py).
"""

from __future__ import annotations

import json
import os
import sys
import threading

import pytest
import typer
from freshet.cli import common, console
from freshet.cli.main import app
from freshet.client import errors
from freshet.client.structs import ConsumerRecord
from typer.testing import CliRunner


def record(key=b"k", value=b"v", headers=(), timestamp_type=0, partition=2, offset=7) -> ConsumerRecord:
    return ConsumerRecord("orders", partition, offset, 1700000000123, timestamp_type, key, value, list(headers), 0)


# -------------------------------------------------------------------------------------------------
# produce: lines.


def test_split_line_takes_the_first_separator_and_keeps_the_rest():
    assert console.split_line(b"k:v:w", b":") == (b"k", b"v:w")
    assert console.split_line(b":v", b":") == (b"", b"v")
    assert console.split_line(b"plain", None) == (None, b"plain")
    assert console.split_line(b"a\tb", b"\t") == (b"a", b"b")
    with pytest.raises(ValueError, match="no key separator ':'"):
        console.split_line(b"no separator", b":")


def test_read_lines_strips_endings_yields_a_last_line_without_newline_and_stops_on_request():
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"one\ntwo\r\nthr")
    os.write(write_fd, b"ee\nlast")
    os.close(write_fd)
    interrupts = console.Interrupts()
    assert list(console.read_lines(read_fd, interrupts)) == [b"one", b"two", b"three", b"last"]
    os.close(read_fd)

    # A stop request ends reading once what is already in the pipe has been taken, even though
    # the writer keeps the pipe open (an interactive Ctrl-C).
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"a\nb\n")
    interrupts = console.Interrupts()
    got: list[bytes] = []

    def reader() -> None:
        for line in console.read_lines(read_fd, interrupts, poll_s=0.01):
            got.append(line)

    thread = threading.Thread(target=reader)
    thread.start()
    while len(got) < 2:
        thread.join(0.01)
    os.write(write_fd, b"c\n")
    interrupts.requested = True
    thread.join(5)
    assert not thread.is_alive()
    assert got == [b"a", b"b", b"c"]
    os.close(write_fd)
    os.close(read_fd)


def test_a_second_interrupt_raises_at_once():
    interrupts = console.Interrupts()
    interrupts._on_signal(2, None)
    assert interrupts.requested
    with pytest.raises(KeyboardInterrupt):
        interrupts._on_signal(2, None)


# -------------------------------------------------------------------------------------------------
# consume: output.


def test_format_record_follows_kafkas_field_order_and_prints_null():
    every = console.RecordFormat(print_key=True, print_offset=True, print_partition=True, print_timestamp=True)
    assert console.format_record(record(key=None), every) == b"CreateTime:1700000000123\tPartition:2\tOffset:7\tnull\tv\n"
    assert console.format_record(
        record(value=None, timestamp_type=1), console.RecordFormat(print_timestamp=True, key_separator=" | ")
    ) == b"LogAppendTime:1700000000123 | null\n"
    assert console.format_record(record(), console.RecordFormat()) == b"v\n"


def test_record_json_has_interface_keys_and_base64_when_not_utf8():
    document = console.record_json(record(key=b"k\xc3\xa9", value=b"{}", headers=[("h", b"x"), ("n", None)]))
    assert document == {
        "topic": "orders", "partition": 2, "offset": 7, "timestamp": 1700000000123, "key": "ké", "value": "{}",
        "headers": [["h", "x"], ["n", None]], "encoding": "utf-8", "timestamp_type": "CreateTime",
    }
    json.dumps(document)
    binary = console.record_json(record(key=None, value=b"\xff\xfe", headers=[("h", b"x")]))
    assert (binary["key"], binary["value"], binary["headers"], binary["encoding"]) == (None, "//4=", [["h", "eA=="]], "base64")


# -------------------------------------------------------------------------------------------------
# Errors, exit codes, parsing, rendering.


def test_error_line_says_what_and_what_to_do():
    line = common.error_line(errors.InvalidReplicationFactorError("replication factor: 4 larger than available brokers: 3"))
    assert line == (
        "error: replication factor: 4 larger than available brokers: 3; lower --replication-factor or start more "
        "brokers (see freshet cluster status)"
    )
    assert common.error_line(errors.BrokerUnavailableError("cannot reach any broker at localhost:9092")).endswith(
        "; is the cluster running? pass --bootstrap HOST:PORT or set FRESHET_BOOTSTRAP (a TLS cluster needs --tls-ca FILE)"
    )
    assert common.error_line(errors.LeaderNotAvailableError("no leader\nfor orders-0")) == (
        "error: no leader for orders-0; this may pass if retried"
    )
    assert common.error_line(errors.InvalidRequestError("bad")) == "error: bad"


def test_reporting_errors_maps_refusals_to_1_and_bad_values_to_2(capsys):
    with pytest.raises(typer.Exit) as exit_info, common.reporting_errors():
        raise errors.UnknownTopicError("topic 'x' does not exist")
    assert exit_info.value.exit_code == 1
    assert capsys.readouterr().err == "error: topic 'x' does not exist; check the name with: freshet topic list\n"
    with pytest.raises(typer.Exit) as exit_info, common.reporting_errors():
        raise ValueError("acks must be 'all', -1, 1 or 0")
    assert exit_info.value.exit_code == 2


def test_parse_pairs_and_int_lists():
    assert common.parse_pairs(["a=1", "b=x=y", " c =", ], "--set") == {"a": "1", "b": "x=y", "c": ""}
    assert common.parse_pairs(None, "--set") == {}
    with pytest.raises(typer.Exit) as exit_info:
        common.parse_pairs(["novalue"], "--set")
    assert exit_info.value.exit_code == 2
    assert common.parse_int_list("1,2, 3", "replicas") == [1, 2, 3]
    with pytest.raises(typer.Exit):
        common.parse_int_list("1,x", "replicas")


def test_tables_have_no_colour_off_a_terminal_and_align_numbers(capsys):
    common.print_table(["NAME", "COUNT", "RACK"], [("orders", 3, None), ("events", 12, None)])
    out = capsys.readouterr().out
    assert "\x1b[" not in out
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "COUNT", "RACK"]
    assert lines[2].split() == ["orders", "3", "-"] and lines[3].split() == ["events", "12", "-"]
    assert lines[2].index("3") == lines[3].index("12") + 1, "numbers are right-aligned"
    assert common.human_count(1234567) == "1,234,567" and common.human_count(None) == "-"
    assert common.human_bytes(1536) == "1.5 KiB" and common.human_bytes(10) == "10 B"


def test_colour_only_on_a_terminal_and_never_with_no_color(capsys, monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    common.print_table(["STATE", "TOPIC"], [(common.Styled("fenced", "red"), "a[b]")])
    out = capsys.readouterr().out
    assert "\x1b[31m" in out and "fenced" in out and "a[b]" in out, "red on a terminal; cells are not markup"
    monkeypatch.setenv("NO_COLOR", "1")
    common.print_table(["STATE"], [(common.Styled("fenced", "red"),)])
    assert "\x1b[31m" not in capsys.readouterr().out
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    common.print_table(["STATE"], [(common.Styled("fenced", "red"),)])
    common.print_text("Configs: pattern=[bold]x[/bold]")
    out = capsys.readouterr().out
    assert "\x1b[" not in out and "[bold]x[/bold]" in out


def test_usage_errors_in_process_exit_2_without_touching_the_network():
    runner = CliRunner()
    for args in (
        ["config"],
        ["consume", "t", "--offset", "5"],
        ["produce", "t", "--acks", "2"],
        ["partition", "elect-leaders", "--partition", "1"],
        ["topic", "create", "t", "--config", "oops"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)


# -------------------------------------------------------------------------------------------------
# --compression snappy through the SDK (fake cluster, real gRPC on loopback).


def _codecs_stored(cluster, topic: str) -> set[int]:
    from freshet.storage.record_batch import iter_batches

    log = cluster.partition(topic, 0).log
    return {header.compression for header, _ in iter_batches(log.read(log.log_start_offset, 1 << 30).records)}


def test_produce_and_perf_produce_write_snappy_batches(tmp_path):
    """Goal: `freshet produce --compression snappy` and `freshet perf produce --compression snappy`
    are accepted and store snappy batches (codec id 2) holding what was sent.

    Method: both commands as child processes (produce reads stdin by file descriptor) against
    tests/support/fake_broker.py's cluster.
    """
    import subprocess

    from tests.support.fake_broker import FakeCluster

    cli = [sys.executable, "-m", "freshet.cli.main"]
    with FakeCluster(str(tmp_path), broker_count=1) as cluster:
        cluster.create_topic("lines", 1)
        cluster.create_topic("bench", 1)
        produce = subprocess.run(
            [*cli, "produce", "lines", "--compression", "snappy", "-b", cluster.bootstrap],
            input=b"a\nb\nc\n", capture_output=True, timeout=60,
        )
        assert produce.returncode == 0, produce.stderr
        assert [value for _, _, value, _ in cluster.records("lines", 0)] == [b"a", b"b", b"c"]
        assert _codecs_stored(cluster, "lines") == {2}
        perf = subprocess.run(
            [*cli, "perf", "produce", "--topic", "bench", "--num-records", "50", "--record-size", "100",
             "--compression", "snappy", "--json", "-b", cluster.bootstrap],
            capture_output=True, timeout=60, stdin=subprocess.DEVNULL,
        )
        assert perf.returncode == 0, perf.stderr
        assert json.loads(perf.stdout)["records"] == 50
        assert len(cluster.records("bench", 0)) == 50
        assert _codecs_stored(cluster, "bench") == {2}


def test_lag_time_is_printed_for_people():
    """Goal: `group describe`'s LAG-TIME column: seconds, then minutes, hours and days, each with
    the next unit zero-padded; "-" when not measured."""
    from freshet.cli.group import format_lag_time

    assert [format_lag_time(s) for s in (None, 0.0, 0.4, 12.9, 60, 184, 3599, 3600, 7260, 86400 + 4 * 3600 + 59)] == [
        "-", "0s", "0s", "12s", "1m00s", "3m04s", "59m59s", "1h00m", "2h01m", "1d04h",
    ]


@pytest.mark.parametrize("args", [
    ["config", "--group", "g", "--cluster"],
    ["config", "--group", "g", "--broker", "1"],
    ["config"],
    ["config", "--group", ""],
])
def test_config_takes_exactly_one_resource(args):
    """Goal: `freshet config` names one resource (--broker, --group or --cluster): usage error 2
    with one line, before any network call."""
    result = CliRunner().invoke(app, [*args, "--bootstrap", "127.0.0.1:1"])
    assert result.exit_code == 2, result.output
    assert "--group" in result.output and "Traceback" not in result.output
