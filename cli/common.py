"""What every `freshet` command shares: options, error reporting, exit codes and rendering.

Owns

- the common options: `--bootstrap/-b` (also `FRESHET_BOOTSTRAP`, default localhost:9092) and
  `--output/-o table|json` (`OutputOption`), so every command spells them the same way;
- the global client security options (`GLOBAL_CLIENT_OPTIONS`: `--tls-ca FILE`, `--user NAME`,
  `--password-file FILE`, env FRESHET_TLS_CA / FRESHET_USER / FRESHET_PASSWORD_FILE, or Kafka's
  `--command-config FILE`), accepted before the command (the root callback) or anywhere after it
  (main() lifts them out of argv, as --debug); `set_client_security` turns them into the SDK's
  keyword options (kafka-python's names) once, and `client_security()` gives them to every client
  the CLI makes;
- error reporting (`reporting_errors`): a `freshet.client.errors.FreshetError` becomes one line on
  stderr, `error: <what went wrong>; <what to do>`, and exit code 1 (the server said no, or
  could not be reached: the line names the bootstrap addresses tried); a bad argument found
  after parsing becomes exit code 2 (`usage_error`). With `--debug` (anywhere on the command
  line, or FRESHET_DEBUG=1) the traceback is printed too;
- rendering for people (`print_table`, rich, colour only on a terminal, NO_COLOR respected) and
  for scripts (`print_json`: one JSON document on stdout, keys in a stable order);
- small parsers (`parse_pairs` for k=v lists) and humanisers (`human_count`, `human_bytes`);
- the client security options every cluster command takes (`--user NAME`, `--password-file FILE`,
  env FRESHET_USER / FRESHET_PASSWORD_FILE, or Kafka's `--command-config FILE`): main() accepts
  them before or after the command, the root callback parses them once into `SECURITY`
  (`set_client_security`), and every client the CLI builds gets them (`client_security()`).

Imports: typer, rich, `freshet.client` only. Thread-safety: single-threaded (one CLI command).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import traceback
from collections.abc import Iterable, Iterator, Sequence
from enum import StrEnum
from typing import Annotated, Any, NamedTuple, NoReturn

import typer
from freshet.client import errors
from freshet.server.properties import parse_properties

#: Set by main() when --debug is on the command line (or FRESHET_DEBUG=1): print tracebacks.
DEBUG = {"enabled": os.environ.get("FRESHET_DEBUG", "") not in ("", "0")}

BOOTSTRAP_HELP = "Any live node(s), host:port[,host:port] (also --broker-list). Env: FRESHET_BOOTSTRAP."

#: Global client options that take a value: flag -> (CLIENT_SECURITY key, environment variable).
#: main() accepts them after the command too; the root callback defines them for --help.
GLOBAL_CLIENT_OPTIONS = {
    "--tls-ca": ("tls_ca", "FRESHET_TLS_CA"),
    "--user": ("user", "FRESHET_USER"),
    "--password-file": ("password_file", "FRESHET_PASSWORD_FILE"),
    "--command-config": ("command_config", None),
}
#: The global client options' values (set by the root callback; None: not given).
CLIENT_SECURITY: dict[str, str | None] = {"tls_ca": None, "user": None, "password_file": None, "command_config": None}


def lift_global_options(argv: list[str]) -> list[str]:
    """Move global client options written after the command (`freshet topic list --tls-ca X`) in
    front of it, where the root callback parses them. `--flag VALUE` and `--flag=VALUE`."""
    lifted: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(argv):
        item = argv[index]
        if item == "--":                                    # nothing after -- moves
            rest += argv[index:]
            break
        name, equals, value = item.partition("=")
        if name in GLOBAL_CLIENT_OPTIONS and index > 0:
            if equals:
                lifted += [name, value]
                index += 1
                continue
            if index + 1 < len(argv):
                lifted += [name, argv[index + 1]]
                index += 2
                continue
        rest.append(item)
        index += 1
    return lifted + rest


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


#: `bootstrap: Bootstrap = DEFAULT_BOOTSTRAP` in a command's signature. `--bootstrap-server` is
#: Kafka's tools' spelling, accepted too.
Bootstrap = Annotated[
    str,
    typer.Option(
        "--bootstrap", "-b", "--bootstrap-server", envvar="FRESHET_BOOTSTRAP", help=BOOTSTRAP_HELP, show_envvar=False
    ),
]
DEFAULT_BOOTSTRAP = "localhost:9092"

#: `output: Output = OutputFormat.table` in a read command's signature.
Output = Annotated[
    OutputFormat, typer.Option("--output", "-o", case_sensitive=False, help="table for people, json for scripts.")
]


# =================================================================================================
# Errors and exit codes.

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

_CONNECT_HINT = "is the cluster running? pass --bootstrap HOST:PORT or set FRESHET_BOOTSTRAP"

# What to do, per error class (the first class in the error's MRO that is listed wins).
_HINTS: list[tuple[type[errors.FreshetError], str]] = [
    (
        errors.InvalidReplicationFactorError,
        "lower --replication-factor or start more brokers (see freshet cluster status)",
    ),
    (
        errors.TopicAlreadyExistsError,
        "pick another name, or pass --if-not-exists to accept the existing topic",
    ),
    (errors.UnknownTopicError, "check the name with: freshet topic list"),
    (errors.UnknownTopicIdError, "check the name with: freshet topic list"),
    (errors.InvalidTopicError, "topic names use [a-zA-Z0-9._-], at most 249 characters"),
    (errors.InvalidPartitionsError, "the partition count can only grow: give a larger --partitions"),
    (errors.InvalidConfigError, "see the valid keys and values with: freshet topic config --help"),
    (errors.InvalidReplicaAssignmentError, "every replica must be a registered broker, once per partition"),
    (errors.ReassignmentInProgressError, "wait for it with --verify, or cancel it first"),
    (errors.NoReassignmentInProgressError, "nothing to cancel: check with --verify"),
    (errors.NotControllerError, "check the quorum with: freshet metadata quorum"),
    (errors.NoQuorumError, "check the quorum with: freshet metadata quorum"),
    (
        errors.NotEnoughReplicasError,
        "the ISR is smaller than min.insync.replicas: check freshet topic describe",
    ),
    (errors.RecordTooLargeError, "raise max.message.bytes on the topic, or send smaller records"),
    (errors.GroupIdNotFoundError, "check the name with: freshet group list"),
    (errors.NonEmptyGroupError, "stop the group's consumers first"),
    (
        errors.ClientTimeoutError,
        "the cluster did not answer in time: check freshet cluster status, then retry",
    ),
    (
        errors.RequestTimedOutError,
        "the cluster did not answer in time: check freshet cluster status, then retry",
    ),
    (errors.BrokerUnavailableError, _CONNECT_HINT),
    (
        errors.SaslAuthenticationFailedError,
        "check --user and --password-file (or FRESHET_USER / FRESHET_PASSWORD_FILE, or --command-config)",
    ),
]


def error_line(error: BaseException) -> str:
    """The one line printed for `error`: what went wrong; what to do."""
    text = error.message if isinstance(error, errors.FreshetError) else str(error)
    message = text.strip().replace("\n", " ") or type(error).__name__
    if isinstance(error, errors.FreshetError):
        for cls, hint in _HINTS:
            if isinstance(error, cls):
                if cls is errors.BrokerUnavailableError and not CLIENT_SECURITY.get("tls_ca"):
                    hint += " (a TLS cluster needs --tls-ca FILE)"
                return f"error: {message}; {hint}"
        if error.retriable:
            return f"error: {message}; this may pass if retried"
        return f"error: {message}"
    return f"error: {message}"


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print `error: message` on stderr and exit with `code`."""
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def usage_error(message: str) -> NoReturn:
    """A bad argument the parser could not catch: one line, exit 2."""
    fail(message, EXIT_USAGE)


@contextlib.contextmanager
def reporting_errors() -> Iterator[None]:
    """Turn client errors into one line on stderr and exit 1; ValueError from the SDK (a bad
    option value) into exit 2. Everything else propagates to main()."""
    try:
        yield
    except errors.FreshetError as error:
        if DEBUG["enabled"]:
            traceback.print_exc()
        print(error_line(error), file=sys.stderr)
        raise typer.Exit(EXIT_FAILED) from None
    except ValueError as error:
        if DEBUG["enabled"]:
            traceback.print_exc()
        print(f"error: {error}", file=sys.stderr)
        raise typer.Exit(EXIT_USAGE) from None


# =================================================================================================
# Client security options (--user, --password-file, --command-config).

#: The SDK keyword arguments of every client this command builds (set by the root callback).
SECURITY: dict[str, str] = {}
_JAAS_FIELD = re.compile(r'\b(username|password)\s*=\s*"((?:[^"\\]|\\.)*)"')


def read_properties(path: str) -> dict[str, str]:
    """A Java properties file as a dict, parsed as `server start --config` parses
    server.properties (one parser: comments, `=`/`:`/space separators, backslash continuations
    such as a multi-line sasl.jaas.config, escapes; a later duplicate wins).

    Raises:
        ValueError: the file cannot be read or is malformed (one line naming it).
    """
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    try:
        entries = parse_properties(text)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    return {entry.key: entry.value for entry in entries}


def _read_password(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            password = file.read().rstrip("\r\n")
    except OSError as error:
        raise ValueError(f"--password-file: cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"--password-file: {path} is not UTF-8 text") from None
    if not password:
        raise ValueError(f"--password-file: {path} is empty")
    return password


def properties_security(properties: dict[str, str]) -> dict[str, str]:
    """The SDK's security kwargs named by Kafka client properties (a --command-config,
    --producer.config or --consumer.config file, or --producer-property/--consumer-property):
    security.protocol, sasl.mechanism, sasl.username / sasl.password (or sasl.jaas.config's
    username="..." password="...", as Kafka's tools read it), ssl.ca.location (or
    ssl.truststore.location with ssl.truststore.type=PEM), ssl.certificate.location and
    ssl.key.location.

    Raises:
        ValueError: a JKS/PKCS12 truststore (the SDK reads PEM).
    """
    options: dict[str, str] = {}
    jaas = dict(_JAAS_FIELD.findall(properties.get("sasl.jaas.config", "")))
    for key, name in (("security.protocol", "security_protocol"), ("sasl.mechanism", "sasl_mechanism")):
        if properties.get(key):
            options[name] = properties[key].upper()
    username = properties.get("sasl.username") or jaas.get("username")
    password = properties.get("sasl.password") or jaas.get("password")
    if username:
        options["sasl_plain_username"] = username
    if password:
        options["sasl_plain_password"] = password
    if properties.get("ssl.truststore.location"):
        if properties.get("ssl.truststore.type", "JKS").upper() != "PEM":
            raise ValueError(
                "ssl.truststore.location: only ssl.truststore.type=PEM is supported (or ssl.ca.location, or --tls-ca)"
            )
        options["ssl_cafile"] = properties["ssl.truststore.location"]
    for key, name in (
        ("ssl.ca.location", "ssl_cafile"),
        ("ssl.certificate.location", "ssl_certfile"),
        ("ssl.key.location", "ssl_keyfile"),
    ):
        if properties.get(key):
            options[name] = properties[key]
    return options


def security_options(
    tls_ca: str | None, user: str | None, password_file: str | None, command_config: str | None
) -> dict[str, str]:
    """The SDK's security kwargs from the global options; --tls-ca/--user/--password-file win
    over the --command-config file's properties (`properties_security`).

    Raises:
        ValueError: an unreadable file, a user without a password (or the reverse), an unknown
            security.protocol or sasl.mechanism (the message never holds the password).
    """
    options = properties_security(read_properties(command_config)) if command_config else {}
    if tls_ca:
        options["ssl_cafile"] = tls_ca
    if user:
        options["sasl_plain_username"] = user
    if password_file:
        options["sasl_plain_password"] = _read_password(password_file)
    try:
        return complete_security(options)
    except ValueError as error:
        if str(error).startswith("ssl_cafile") and tls_ca:
            raise ValueError(f"--tls-ca: {error}") from None
        raise


def complete_security(options: dict[str, str]) -> dict[str, str]:
    """Check security kwargs and fill in what they imply: a user means SASL_SSL with
    SCRAM-SHA-512, a CA file alone means SSL (`--tls-ca FILE` alone is TLS).

    Raises:
        ValueError: a user without a password (or the reverse), a bad protocol or mechanism.
    """
    options = dict(options)
    has_user, has_password = "sasl_plain_username" in options, "sasl_plain_password" in options
    if has_user and not has_password:
        raise ValueError("--user needs --password-file FILE (or FRESHET_PASSWORD_FILE, or sasl.password in --command-config)")
    if has_password and not has_user:
        raise ValueError("--password-file needs --user NAME (or FRESHET_USER, or sasl.username in --command-config)")
    if has_user:
        options.setdefault("security_protocol", "SASL_SSL")
        options.setdefault("sasl_mechanism", "SCRAM-SHA-512")
    elif "ssl_cafile" in options:
        options.setdefault("security_protocol", "SSL")
    from freshet.client._security import SecurityConfig

    SecurityConfig.from_options(options)                     # raises ValueError
    return options


def set_client_security(
    tls_ca: str | None, user: str | None, password_file: str | None, command_config: str | None
) -> None:
    """Parse the global security options once (root callback); a bad one is a usage error."""
    CLIENT_SECURITY.update(tls_ca=tls_ca, user=user, password_file=password_file, command_config=command_config)
    try:
        SECURITY.clear()
        SECURITY.update(security_options(tls_ca, user, password_file, command_config))
    except ValueError as error:
        usage_error(str(error))


def client_security() -> dict[str, str]:
    """The security kwargs for a Producer, Consumer or Admin of this command."""
    return dict(SECURITY)


def make_admin(bootstrap: str, timeout_ms: int = 30000):
    """An Admin client for `bootstrap`; a malformed bootstrap list is a usage error."""
    from freshet.client import Admin

    security = client_security()
    try:
        return Admin(bootstrap, client_id="freshet-cli", request_timeout_ms=timeout_ms, **security)
    except ValueError as error:
        if security and str(error).startswith("ssl_"):
            usage_error(f"--tls-ca: {error}")
        usage_error(f"--bootstrap {bootstrap!r}: {error}")


def parse_pairs(values: Iterable[str] | None, flag: str) -> dict[str, str]:
    """`["k=v", ...]` as a dict; a usage error (exit 2) for an item without '=' or an empty key."""
    pairs: dict[str, str] = {}
    for item in values or ():
        key, separator, value = item.partition("=")
        if not separator or not key.strip():
            usage_error(f"{flag} {item!r}: expected key=value")
        pairs[key.strip()] = value
    return pairs


def parse_int_list(text: str, what: str) -> list[int]:
    """ "1,2,3" as [1, 2, 3]; a usage error otherwise."""
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        usage_error(f"{what} {text!r}: expected comma-separated broker ids such as 1,2,3")


# =================================================================================================
# Rendering.


def stdout_console():
    """A rich console on stdout: colour and styles only on a terminal (and never with NO_COLOR)."""
    from rich.console import Console

    is_tty = sys.stdout.isatty()
    return Console(
        file=sys.stdout,
        force_terminal=is_tty,
        no_color=not is_tty or "NO_COLOR" in os.environ,
        highlight=False,
        soft_wrap=not is_tty,
        width=None if is_tty else 200,
    )


class Styled(NamedTuple):
    """A table cell with a style shown on a terminal only: `Styled("fenced", "red")`."""

    text: str
    style: str


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> None:
    """An aligned table; numeric columns right-aligned. None renders as '-'; a `Styled` cell is
    coloured on a terminal. Cells are plain text (never rich markup), whatever they contain."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    cells_by_row = [
        [cell if isinstance(cell, Styled) else Styled("-" if cell is None else str(cell), "") for cell in row]
        for row in rows
    ]
    table = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left", pad_edge=False, show_edge=False)
    for index, column in enumerate(columns):
        texts = [row[index].text for row in cells_by_row]
        is_numeric = any(text != "-" for text in texts) and all(_is_number(text) for text in texts)
        table.add_column(column, justify="right" if is_numeric else "left", no_wrap=True)
    for row in cells_by_row:
        table.add_row(*(Text(cell.text, style=cell.style) for cell in row))
    stdout_console().print(table)


def print_text(text: str) -> None:
    """A line of plain text (no rich markup: topic names and config values print as they are)."""
    stdout_console().print(text, markup=False)


def print_json(document: Any) -> None:
    """One JSON document on stdout (keys in the order built: stable)."""
    sys.stdout.write(json.dumps(document, indent=2) + "\n")
    sys.stdout.flush()


def _is_number(text: str) -> bool:
    return text.replace(",", "").replace(".", "", 1).lstrip("-").isdigit() or text == "-"


def human_count(value: int | None) -> str:
    """12345678 -> '12,345,678' (exact, grouped); None -> '-'."""
    return "-" if value is None else f"{value:,}"


def human_bytes(value: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def join_ids(ids: Iterable[int]) -> str:
    return ",".join(str(i) for i in ids)
