"""`freshet produce` and `freshet consume`: records between a terminal (or a pipe) and a topic,
as kafka-console-producer.sh and kafka-console-consumer.sh.

Thin: parses, drives `freshet.client.Producer` / `Consumer`, formats. The formatting and the
line splitting are pure functions (`format_record`, `record_json`, `split_line`) so they are
tested without a cluster.

- produce: one record per stdin line (the newline is not part of the value; a final line
  without one still counts); with --key-separator the text before the first separator is the
  key. End of input, Ctrl-C and SIGTERM all flush what is buffered before exiting, so no read
  line is dropped; any record that could not be delivered makes the exit code 1.
- consume: without --group the partitions are assigned directly (all of them, or --partition)
  and start at the end (new records only), at the beginning (--from-beginning) or at --offset;
  with --group the consumer joins the group (the coordinator assigns its partitions), commits
  automatically (also before a partition moves to another member) and once more on exit.
  --max-messages and --timeout-ms (no record for that long) end it; so do Ctrl-C and SIGTERM,
  after committing. A closed stdout (`| head`) ends it quietly.

Imports: typer, `freshet.client`, `freshet.cli.common`. Thread-safety: single-threaded.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import random
import select
import signal
import sys
import time
from collections.abc import Callable
from typing import Annotated

import typer
from freshet.cli import common, kafka_properties
from freshet.cli.common import DEFAULT_BOOTSTRAP, Bootstrap, Output, OutputFormat, reporting_errors
from freshet.cli.kafka_properties import PropertyError, RecordFormat
from freshet.client import errors
from freshet.client.structs import ConsumerRecord, TopicPartition

_ACKS = {"0": 0, "1": 1, "all": "all", "-1": "all"}
_COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")


# =================================================================================================
# Pure helpers.


def split_line(line: bytes, key_separator: bytes | None) -> tuple[bytes | None, bytes]:
    """(key, value) of one input line without its line ending.

    Raises:
        ValueError: a key separator is given and the line does not contain it.
    """
    if key_separator is None:
        return None, line
    key, separator, value = line.partition(key_separator)
    if not separator:
        raise ValueError(f"no key separator {key_separator.decode(errors='replace')!r} in line {line[:60]!r}")
    return key, value


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8")


def record_json(record: ConsumerRecord) -> dict:
    """The INTERFACE.md JSON object of one record: key/value (and header values) as UTF-8 text
    when every one of them is valid UTF-8 (`"encoding": "utf-8"`), else all base64
    (`"encoding": "base64"`)."""
    try:
        key, value = _text(record.key), _text(record.value)
        headers = [[name, _text(data)] for name, data in record.headers]
        encoding = "utf-8"
    except UnicodeDecodeError:
        key, value = _b64(record.key), _b64(record.value)
        headers = [[name, _b64(data)] for name, data in record.headers]
        encoding = "base64"
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": key,
        "value": value,
        "headers": headers,
        "encoding": encoding,
        "timestamp_type": "LogAppendTime" if record.timestamp_type == 1 else "CreateTime",
    }


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def format_record(record: ConsumerRecord, form: RecordFormat) -> bytes:
    """One output line, with its line separator, as Kafka's DefaultMessageFormatter writes it:
    timestamp, partition, offset, headers, key, value, each only when asked for, joined by the
    key separator; a null key, value or header value prints as the null literal, a record without
    headers as NO_HEADERS."""
    null = form.null_literal.encode()
    parts: list[bytes] = []
    if form.print_timestamp:
        kind = "LogAppendTime" if record.timestamp_type == 1 else "CreateTime"
        parts.append(f"{kind}:{record.timestamp}".encode())
    if form.print_partition:
        parts.append(f"Partition:{record.partition}".encode())
    if form.print_offset:
        parts.append(f"Offset:{record.offset}".encode())
    if form.print_headers:
        headers = [name.encode() + b":" + (null if data is None else data) for name, data in record.headers]
        parts.append(form.headers_separator.encode().join(headers) if headers else b"NO_HEADERS")
    if form.print_key:
        parts.append(null if record.key is None else record.key)
    if form.print_value:
        parts.append(null if record.value is None else record.value)
    return form.key_separator.encode().join(parts) + form.line_separator.encode()


class Interrupts:
    """SIGINT (Ctrl-C) and SIGTERM while a command runs: the first one asks the command's loop to
    stop (`requested`; the loop finishes what it holds: flush, commit), a second one interrupts at
    once (KeyboardInterrupt). Never raising on the first signal means it cannot land in the
    middle of a send or a poll and lose what was read. Single-threaded (main thread only)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict = {}

    def __enter__(self) -> Interrupts:
        self._previous = {
            signum: signal.signal(signum, self._on_signal) for signum in (signal.SIGINT, signal.SIGTERM)
        }
        return self

    def _on_signal(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def read_lines(fd: int, interrupts: Interrupts, poll_s: float = 0.2):
    """Yield the lines of file descriptor `fd` (without their line ending: \n or \r\n) as they
    arrive, and the last line even without a newline; stop at end of input, or once
    `interrupts.requested` and every line already written to `fd` has been yielded.

    Reads with select + os.read, so a signal never strikes inside a half-done read.
    """
    pending = b""
    while True:
        # Once a stop is requested, take only what is already there (typed or piped), then end.
        # The request is read before the select: a stop requested while a waiting select timed out
        # gets one more look, so a line written just before the request is not dropped.
        stopping = interrupts.requested
        readable, _, _ = select.select([fd], [], [], 0 if stopping else poll_s)
        if not readable:
            if stopping:
                break
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line[:-1] if line.endswith(b"\r") else line
    if pending:
        yield pending[:-1] if pending.endswith(b"\r") else pending


# =================================================================================================
# produce


#: `--property k=v` (repeatable) on both console tools.
Properties = Annotated[
    list[str] | None,
    typer.Option("--property", help="A console tool property k=v (Kafka's names; repeatable): see the list above."),
]


def produce(
    topic: str = typer.Argument(..., help="The topic to write to (or --topic TOPIC)."),
    key_separator: str | None = typer.Option(
        None,
        "--key-separator",
        help="Split each line at the first SEP into key and value (e.g. ':' or a tab).",
    ),
    acks: str | None = typer.Option(
        None, "--acks", help="0 (no wait), 1 (leader) or all (every in-sync replica; the default)."
    ),
    partition: int | None = typer.Option(
        None, "--partition", min=0, help="Write every record to this partition."
    ),
    compression: str | None = typer.Option(
        None, "--compression", help="none (the default), gzip, snappy, lz4 or zstd (per batch)."
    ),
    linger_ms: int | None = typer.Option(
        None, "--linger-ms", min=0, help="How long a batch may wait for more records (default 5)."
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Print a summary on stderr (also printed when stdin is a terminal)."
    ),
    properties: Properties = None,
    producer_property: Annotated[
        list[str] | None,
        typer.Option(
            "--producer-property",
            help="A Kafka producer property k=v (acks, linger.ms, compression.type, ...; repeatable).",
        ),
    ] = None,
    producer_config: str | None = typer.Option(
        None, "--producer.config", metavar="FILE", help="A Kafka producer properties file."
    ),
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> None:
    """Write one record per line of stdin to TOPIC (kafka-console-producer).

    End of input, Ctrl-C or SIGTERM flush every line read before exiting. Exit 1 if any record
    could not be delivered (the first error is printed).

    --property (kafka-console-producer's): parse.key=true, key.separator=SEP (default a tab).

    Examples:

      echo hello | freshet produce orders

      printf 'k1:v1\\nk2:v2\\n' | freshet produce orders --key-separator :

      freshet produce --topic orders --property parse.key=true --property key.separator=: < keyed.txt

      freshet produce orders --acks 1 --compression zstd < records.txt
    """
    options, bootstrap = _producer_options(
        bootstrap, producer_config, producer_property, acks, compression, linger_ms
    )
    key_separator = _line_key_separator(properties, key_separator)
    separator = _produce_separator(str(options["acks"]), options["compression"], key_separator)
    common.make_admin(bootstrap).close()  # a malformed bootstrap list is a usage error
    is_interactive = sys.stdin.isatty()
    if is_interactive:
        print(f"type records for {topic}, one per line; Ctrl-D or Ctrl-C to finish", file=sys.stderr)
    outcome = _Deliveries()
    with reporting_errors(), Interrupts() as interrupts:
        producer = _open_producer(bootstrap, options)
        try:
            if verbose:
                print(f"producing to {topic}: one record per line of stdin", file=sys.stderr, flush=True)
            bad_line = _send_lines(producer, topic, partition, separator, interrupts, outcome)
            # Also after Ctrl-C / SIGTERM: every line read is delivered or reported.
            producer.flush()
        finally:
            producer.close()
    if verbose or is_interactive:
        _print_produce_summary(topic, outcome, interrupted=interrupts.requested)
    _exit_on_produce_failure(outcome, bad_line, key_separator)


def _line_key_separator(properties: list[str] | None, key_separator: str | None) -> str | None:
    """--key-separator, or the separator `--property parse.key=true [key.separator=SEP]` names."""
    try:
        from_properties = kafka_properties.producer_line_format(common.parse_pairs(properties, "--property"))
    except PropertyError as error:
        common.usage_error(str(error))
    return key_separator if key_separator is not None else from_properties


def _producer_options(
    bootstrap: str, config_file: str | None, pairs: list[str] | None, acks, compression, linger_ms
) -> tuple[dict, str]:
    """The Producer's keyword options: the console producer's defaults, under the Kafka
    properties (--producer.config, then --producer-property), under the explicit options
    (--acks, --compression, --linger-ms); and the bootstrap (bootstrap.servers when --bootstrap
    was not given)."""
    options, bootstrap = _client_options(
        bootstrap, config_file, pairs, "--producer-property", kafka_properties.PRODUCER_PROPERTIES
    )
    defaults = {"client_id": "freshet-console-producer", "acks": "all", "compression": "none", "linger_ms": 5}
    options = {**defaults, **options}
    explicit = {
        "acks": None if acks is None else _ACKS.get(acks, acks),
        "compression": compression,
        "linger_ms": linger_ms,
    }
    options.update({name: value for name, value in explicit.items() if value is not None})
    return options, bootstrap


def _client_options(
    bootstrap: str, config_file: str | None, pairs: list[str] | None, flag: str, table
) -> tuple[dict, str]:
    """SDK options (security merged over the global options) from Kafka client properties; a
    bad property is a usage error, an ignored one a warning line on stderr."""
    try:
        properties = kafka_properties.read_client_properties(config_file, pairs, flag)
        options, warnings = kafka_properties.client_options(properties, table)
    except PropertyError as error:
        common.usage_error(str(error))
    for warning in warnings:
        print(warning, file=sys.stderr)
    servers = options.pop("bootstrap_servers", None)
    if servers and bootstrap == DEFAULT_BOOTSTRAP and "FRESHET_BOOTSTRAP" not in os.environ:
        bootstrap = servers
    security_names = [name for name in options if name.startswith(("ssl_", "sasl_", "security_"))]
    security = {name: options.pop(name) for name in security_names}
    try:
        options.update(common.complete_security({**common.client_security(), **security}))
    except ValueError as error:
        common.usage_error(str(error))
    return options, bootstrap


def _produce_separator(acks: str, compression: str, key_separator: str | None) -> bytes | None:
    """Check produce's option values (a bad one is a usage error, exit 2); return the key
    separator as bytes (None: lines have no key)."""
    if acks not in _ACKS:
        common.usage_error(f"--acks must be 0, 1 or all, not {acks!r}")
    if compression not in _COMPRESSIONS:
        common.usage_error(f"--compression must be one of {', '.join(_COMPRESSIONS)}, not {compression!r}")
    if key_separator == "":
        common.usage_error("--key-separator must not be empty")
    return None if key_separator is None else key_separator.encode()


class _Deliveries:
    """Counts of a console produce: records sent, delivered and failed, and the first delivery
    error. `on_delivery` is the producer's callback. Not thread-safe: written only from the
    producer's callbacks, read after `close()`."""

    def __init__(self) -> None:
        self.sent = 0
        self.delivered = 0
        self.failed = 0
        self.first_error: BaseException | None = None

    def on_delivery(self, metadata, error) -> None:
        if error is None:
            self.delivered += 1
        else:
            self.failed += 1
            if self.first_error is None:
                self.first_error = error


def _open_producer(bootstrap: str, options: dict):
    from freshet.client import Producer

    delivery_timeout_ms = max(60000, options["linger_ms"] + 30000)
    options = {"max_block_ms": 30000, "delivery_timeout_ms": delivery_timeout_ms, **options}
    return Producer(bootstrap, **options)


def _send_lines(
    producer,
    topic: str,
    partition: int | None,
    separator: bytes | None,
    interrupts: Interrupts,
    outcome: _Deliveries,
) -> str | None:
    """Send one record per stdin line until end of input or a stop request; return the error of
    the first line without the key separator (which ends the input), else None."""
    for line in read_lines(sys.stdin.fileno(), interrupts):
        try:
            key, value = split_line(line, separator)
        except ValueError as error:
            return str(error)
        producer.send(topic, value=value, key=key, partition=partition, on_delivery=outcome.on_delivery)
        outcome.sent += 1
    return None


def _print_produce_summary(topic: str, outcome: _Deliveries, *, interrupted: bool) -> None:
    note = " (interrupted)" if interrupted else ""
    print(
        f"{outcome.delivered} record{'s' if outcome.delivered != 1 else ''} produced to {topic}"
        + (f", {outcome.failed} failed" if outcome.failed else "")
        + note,
        file=sys.stderr,
    )


def _exit_on_produce_failure(outcome: _Deliveries, bad_line: str | None, key_separator: str | None) -> None:
    """Exit 1 when a record was not delivered (naming the first error) or a line had no key
    separator; return when every line was delivered."""
    if outcome.first_error is not None:
        error = outcome.first_error
        line = common.error_line(error) if isinstance(error, errors.FreshetError) else f"error: {error}"
        print(f"{line} ({outcome.failed} of {outcome.sent} records not delivered)", file=sys.stderr)
        raise typer.Exit(common.EXIT_FAILED)
    if bad_line is not None:
        common.fail(
            f"{bad_line}; every line needs KEY{key_separator}VALUE ({outcome.sent} earlier records sent)"
        )


# =================================================================================================
# consume


def consume(
    topic: str = typer.Argument(..., help="The topic to read (or --topic TOPIC)."),
    group: str | None = typer.Option(
        None, "--group", "-g", help="Consume as a member of this consumer group (and commit)."
    ),
    from_beginning: bool = typer.Option(
        False,
        "--from-beginning",
        help="Start at the earliest offset (without a committed one for the group).",
    ),
    partition: int | None = typer.Option(None, "--partition", min=0, help="Read only this partition."),
    offset: str | None = typer.Option(
        None, "--offset", help="With --partition: start at this offset, or earliest / latest."
    ),
    max_messages: int | None = typer.Option(
        None, "--max-messages", min=1, help="Exit after this many records."
    ),
    timeout_ms: int | None = typer.Option(
        None, "--timeout-ms", min=1, help="Exit when no record arrives for this long."
    ),
    print_key: bool = typer.Option(False, "--print-key", help="Print the key before the value."),
    print_offset: bool = typer.Option(False, "--print-offset", help="Print Offset:N."),
    print_partition: bool = typer.Option(False, "--print-partition", help="Print Partition:N."),
    print_timestamp: bool = typer.Option(
        False, "--print-timestamp", help="Print CreateTime:MS (or LogAppendTime)."
    ),
    separator: str = typer.Option("\t", "--separator", help="Between the printed fields (default: a tab)."),
    properties: Properties = None,
    consumer_property: Annotated[
        list[str] | None,
        typer.Option(
            "--consumer-property",
            help="A Kafka consumer property k=v (group.id, auto.offset.reset, ...; repeatable).",
        ),
    ] = None,
    consumer_config: str | None = typer.Option(
        None, "--consumer.config", metavar="FILE", help="A Kafka consumer properties file."
    ),
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    output: Output = OutputFormat.table,
) -> None:
    """Print records of TOPIC, one per line (kafka-console-consumer).

    With --output json, one JSON object per line: topic, partition, offset, timestamp, key, value,
    headers, encoding (utf-8, or base64 when a key or value is not UTF-8).

    Without --group it joins a new group console-consumer-NNNNN (as Kafka's console consumer:
    it shows in freshet group list while it runs, and commits nothing unless
    --consumer-property enable.auto.commit=true); with --partition it reads that partition
    directly. It starts at the end (new records only) unless --from-beginning or --offset.
    Ctrl-C / SIGTERM end it cleanly (a named group's position is committed first).

    --property (kafka-console-consumer's): print.timestamp, print.partition, print.offset,
    print.headers, print.key, print.value (true|false), key.separator, line.separator,
    headers.separator, null.literal.

    Examples:

      freshet consume orders --from-beginning

      freshet consume orders --partition 0 --offset 42 --max-messages 10 --print-offset

      freshet consume --topic orders --from-beginning --property print.key=true --property print.offset=true

      freshet consume orders --group billing --from-beginning --output json | head -5
    """
    options, bootstrap = _client_options(
        bootstrap, consumer_config, consumer_property, "--consumer-property", kafka_properties.CONSUMER_PROPERTIES
    )
    group, is_named_group = _consumer_group(group, options.pop("group_id", None), partition)
    start = _consume_start(group if is_named_group else None, partition, offset, from_beginning)
    common.make_admin(bootstrap).close()  # a malformed bootstrap list is a usage error
    base = RecordFormat(
        print_timestamp=print_timestamp, print_partition=print_partition, print_offset=print_offset,
        print_key=print_key, key_separator=separator,
    )
    try:
        form = kafka_properties.consumer_record_format(common.parse_pairs(properties, "--property"), base)
    except PropertyError as error:
        common.usage_error(str(error))
    render = _record_renderer(as_json=output == OutputFormat.json, form=form)
    commits = options.get("enable_auto_commit", is_named_group) and group is not None
    # A generated group that committed nothing is deleted on exit (Kafka drops an empty group
    # without offsets by itself; Freshet's coordinator keeps it, so `group list` would fill up).
    generated = (bootstrap, group) if group is not None and not is_named_group and not commits else None
    consumer = None
    with reporting_errors(), Interrupts() as interrupts:
        try:
            consumer = _open_consumer(
                bootstrap, topic, group, partition, start, from_beginning, options, commits
            )
            count = _print_records(consumer, render, max_messages, timeout_ms, interrupts)
        except BrokenPipeError:
            _finish(consumer, commits, generated)
            consumer = None
            from freshet.cli.main import _quiet_broken_pipe

            _quiet_broken_pipe()
            raise typer.Exit(0) from None
        finally:
            if consumer is not None:
                _finish(consumer, commits, generated)
    print(f"Processed a total of {count} message{'s' if count != 1 else ''}", file=sys.stderr)


def _consumer_group(group: str | None, group_id: str | None, partition: int | None) -> tuple[str | None, bool]:
    """The group to consume in and whether the user named it (--group, or group.id in the
    consumer properties: they must agree, as in Kafka). Unnamed and without --partition: a new
    console-consumer-NNNNN group, as kafka-console-consumer; with --partition: no group."""
    if group is not None and group_id is not None and group != group_id:
        common.usage_error(f"--group {group!r} and group.id={group_id!r} in the consumer properties differ")
    named = group if group is not None else group_id
    if named is not None:
        return named, True
    if partition is not None:
        return None, False
    return f"console-consumer-{random.randrange(100000)}", False


def _consume_start(
    group: str | None, partition: int | None, offset: str | None, from_beginning: bool
) -> int | str | None:
    """Check how consume's options combine (a bad combination is a usage error, exit 2); return
    where to start: an offset, "earliest" / "latest", or None (--offset not given)."""
    if offset is not None and partition is None:
        common.usage_error("--offset needs --partition")
    if group is not None and partition is not None:
        common.usage_error("--group and --partition do not go together: a group assigns partitions itself")
    start: int | str | None = None
    if offset is not None:
        if offset in ("earliest", "latest"):
            start = offset
        elif offset.isdigit():
            start = int(offset)
        else:
            common.usage_error(f"--offset must be an offset >= 0, earliest or latest, not {offset!r}")
    if from_beginning and start is not None:
        common.usage_error("--from-beginning and --offset do not go together")
    return start


def _record_renderer(*, as_json: bool, form: RecordFormat) -> Callable[[ConsumerRecord], bytes]:
    """The function that turns one record into its output line (with its line separator): the
    INTERFACE.md JSON object, or `format_record` in `form`."""
    if as_json:
        return lambda record: json.dumps(record_json(record)).encode() + b"\n"
    return functools.partial(format_record, form=form)


def _print_records(
    consumer,
    render: Callable[[ConsumerRecord], bytes],
    max_messages: int | None,
    timeout_ms: int | None,
    interrupts: Interrupts,
) -> int:
    """Poll `consumer` and write each record to stdout, one line each, until `max_messages`
    records, `timeout_ms` without a record, or a stop request; return how many were written."""
    out = sys.stdout.buffer
    count = 0
    last_record_s = time.monotonic()
    while (max_messages is None or count < max_messages) and not interrupts.requested:
        wait_ms = 200
        if timeout_ms is not None:
            left_ms = timeout_ms - (time.monotonic() - last_record_s) * 1000
            if left_ms <= 0:
                break
            wait_ms = int(min(wait_ms, max(left_ms, 1)))
        limit = None if max_messages is None else max_messages - count
        records = consumer.poll(timeout_ms=wait_ms, max_records=limit)
        if not records:
            continue
        last_record_s = time.monotonic()
        for record in records:
            out.write(render(record))
            count += 1
        out.flush()
    return count


def _open_consumer(
    bootstrap: str, topic: str, group, partition, start, from_beginning: bool, options: dict, commits: bool
):
    """A Consumer of `topic`: subscribed in `group`, or (--partition, no group) assigned
    directly and positioned at `start` / the beginning / the end."""
    from freshet.client import Consumer

    options = {
        "client_id": "freshet-console-consumer",
        "auto_offset_reset": "earliest" if from_beginning else "latest",
        **options,
        "enable_auto_commit": commits,
    }
    if group is not None and commits:
        # As kafka-console-consumer: a named group commits automatically (which also commits
        # before a rebalance takes a partition away, so members never re-read each other's
        # records) and once more on exit; it waits for a topic that does not exist yet.
        consumer = Consumer(bootstrap, group_id=group, **options)
        consumer.subscribe([topic])
        return consumer
    admin = common.make_admin(bootstrap)
    try:
        described = admin.describe_topics([topic], with_offsets=False)[0]   # an unknown topic fails here
    finally:
        admin.close()
    if group is not None:
        consumer = Consumer(bootstrap, group_id=group, **options)
        consumer.subscribe([topic])
        return consumer
    known = [p.partition for p in described.partitions]
    if partition is not None and partition not in known:
        raise errors.UnknownTopicError(f"topic {topic!r} has no partition {partition} (it has {len(known)})")
    partitions = [TopicPartition(topic, p) for p in known if partition is None or p == partition]
    consumer = Consumer(bootstrap, **options)
    consumer.assign(partitions)
    if isinstance(start, int):
        for tp in partitions:
            consumer.seek(tp, start)
    elif start == "earliest" or from_beginning:
        consumer.seek_to_beginning()
    else:
        consumer.seek_to_end()
    return consumer


def _finish(consumer, commits: bool, generated: tuple[str, str] | None) -> None:
    """Commit the group's position (what was printed) and close; a failed commit is reported.
    `generated`: (bootstrap, group) of a console-consumer-NNNNN group to delete after closing."""
    try:
        if commits:
            try:
                consumer.commit()
            except errors.FreshetError as error:
                print(f"{common.error_line(error)} (offsets not committed)", file=sys.stderr)
    finally:
        consumer.close()
    if generated is not None:
        admin = common.make_admin(generated[0], timeout_ms=5000)
        try:
            admin.delete_group(generated[1])
        except errors.FreshetError:
            pass  # already gone, or another member (same name by chance) still in it: leave it
        finally:
            admin.close()
