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
import select
import signal
import sys
import time
from collections.abc import Callable

import typer
from freshet.cli import common
from freshet.cli.common import DEFAULT_BOOTSTRAP, Bootstrap, Output, OutputFormat, reporting_errors
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


def format_record(
    record: ConsumerRecord,
    *,
    print_key: bool,
    print_offset: bool,
    print_partition: bool,
    print_timestamp: bool,
    separator: bytes,
) -> bytes:
    """One output line (without the newline) in Kafka's DefaultMessageFormatter order:
    timestamp, partition, offset, key, value; a null key or value prints as `null`."""
    parts: list[bytes] = []
    if print_timestamp:
        kind = "LogAppendTime" if record.timestamp_type == 1 else "CreateTime"
        parts.append(f"{kind}:{record.timestamp}".encode())
    if print_partition:
        parts.append(f"Partition:{record.partition}".encode())
    if print_offset:
        parts.append(f"Offset:{record.offset}".encode())
    if print_key:
        parts.append(b"null" if record.key is None else record.key)
    parts.append(b"null" if record.value is None else record.value)
    return separator.join(parts)


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


def produce(
    topic: str = typer.Argument(..., help="The topic to write to."),
    key_separator: str | None = typer.Option(
        None,
        "--key-separator",
        help="Split each line at the first SEP into key and value (e.g. ':' or a tab).",
    ),
    acks: str = typer.Option("all", "--acks", help="0 (no wait), 1 (leader) or all (every in-sync replica)."),
    partition: int | None = typer.Option(
        None, "--partition", min=0, help="Write every record to this partition."
    ),
    compression: str = typer.Option("none", "--compression", help="none, gzip, snappy, lz4 or zstd (per batch)."),
    linger_ms: int = typer.Option(
        5, "--linger-ms", min=0, help="How long a batch may wait for more records."
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Print a summary on stderr (also printed when stdin is a terminal)."
    ),
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> None:
    """Write one record per line of stdin to TOPIC (kafka-console-producer).

    End of input, Ctrl-C or SIGTERM flush every line read before exiting. Exit 1 if any record
    could not be delivered (the first error is printed).

    Examples:

      echo hello | freshet produce orders

      printf 'k1:v1\\nk2:v2\\n' | freshet produce orders --key-separator :

      freshet produce orders --acks 1 --compression zstd < records.txt
    """
    separator = _produce_separator(acks, compression, key_separator)
    common.make_admin(bootstrap).close()  # a malformed bootstrap list is a usage error
    is_interactive = sys.stdin.isatty()
    if is_interactive:
        print(f"type records for {topic}, one per line; Ctrl-D or Ctrl-C to finish", file=sys.stderr)
    outcome = _Deliveries()
    with reporting_errors(), Interrupts() as interrupts:
        producer = _open_producer(bootstrap, acks, compression, linger_ms)
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


def _open_producer(bootstrap: str, acks: str, compression: str, linger_ms: int):
    from freshet.client import Producer

    return Producer(
        bootstrap,
        client_id="freshet-console-producer",
        **common.client_security(),
        acks=_ACKS[acks],
        compression=compression,
        linger_ms=linger_ms,
        max_block_ms=30000,
        delivery_timeout_ms=max(60000, linger_ms + 30000),
    )


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
    topic: str = typer.Argument(..., help="The topic to read."),
    group: str | None = typer.Option(
        None, "--group", "-g", help="Consume as a member of this consumer group."
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
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    output: Output = OutputFormat.table,
) -> None:
    """Print records of TOPIC, one per line (kafka-console-consumer).

    With --output json, one JSON object per line: topic, partition, offset, timestamp, key, value,
    headers, encoding (utf-8, or base64 when a key or value is not UTF-8).

    Without --group it starts at the end (new records only) unless --from-beginning or --offset.
    Ctrl-C / SIGTERM end it cleanly (the group's position is committed first).

    Examples:

      freshet consume orders --from-beginning

      freshet consume orders --partition 0 --offset 42 --max-messages 10 --print-offset

      freshet consume orders --group billing --from-beginning --output json | head -5
    """
    start = _consume_start(group, partition, offset, from_beginning)
    common.make_admin(bootstrap).close()  # a malformed bootstrap list is a usage error
    render = _record_renderer(
        as_json=output == OutputFormat.json,
        print_key=print_key,
        print_offset=print_offset,
        print_partition=print_partition,
        print_timestamp=print_timestamp,
        separator=separator.encode(),
    )
    consumer = None
    with reporting_errors(), Interrupts() as interrupts:
        try:
            consumer = _open_consumer(bootstrap, topic, group, partition, start, from_beginning)
            count = _print_records(consumer, render, max_messages, timeout_ms, interrupts)
        except BrokenPipeError:
            _finish(consumer, group)
            consumer = None
            from freshet.cli.main import _quiet_broken_pipe

            _quiet_broken_pipe()
            raise typer.Exit(0) from None
        finally:
            if consumer is not None:
                _finish(consumer, group)
    print(f"Processed a total of {count} message{'s' if count != 1 else ''}", file=sys.stderr)


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


def _record_renderer(*, as_json: bool, **format_options) -> Callable[[ConsumerRecord], bytes]:
    """The function that turns one record into its output line (without the newline): the
    INTERFACE.md JSON object, or `format_record` with `format_options`."""
    if as_json:
        return lambda record: json.dumps(record_json(record)).encode()
    return functools.partial(format_record, **format_options)


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
            out.write(render(record) + b"\n")
            count += 1
        out.flush()
    return count


def _open_consumer(bootstrap: str, topic: str, group, partition, start, from_beginning: bool):
    from freshet.client import Consumer

    if group is not None:
        # As kafka-console-consumer: auto commit (which also commits before a rebalance takes a
        # partition away, so members never re-read each other's records), and a commit on exit.
        consumer = Consumer(
            bootstrap,
            group_id=group,
            client_id="freshet-console-consumer",
            **common.client_security(),
            auto_offset_reset="earliest" if from_beginning else "latest",
            enable_auto_commit=True,
        )
        consumer.subscribe([topic])
        return consumer
    admin = common.make_admin(bootstrap)
    try:
        described = admin.describe_topics([topic], with_offsets=False)[0]
    finally:
        admin.close()
    known = [p.partition for p in described.partitions]
    if partition is not None and partition not in known:
        raise errors.UnknownTopicError(f"topic {topic!r} has no partition {partition} (it has {len(known)})")
    partitions = [TopicPartition(topic, p) for p in known if partition is None or p == partition]
    consumer = Consumer(
        bootstrap,
        client_id="freshet-console-consumer",
        **common.client_security(),
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
    )
    consumer.assign(partitions)
    if isinstance(start, int):
        for tp in partitions:
            consumer.seek(tp, start)
    elif start == "earliest" or from_beginning:
        consumer.seek_to_beginning()
    else:
        consumer.seek_to_end()
    return consumer


def _finish(consumer, group: str | None) -> None:
    """Commit the group's position (what was printed) and close; a failed commit is reported."""
    try:
        if group is not None:
            try:
                consumer.commit()
            except errors.FreshetError as error:
                print(f"{common.error_line(error)} (offsets not committed)", file=sys.stderr)
    finally:
        consumer.close()
